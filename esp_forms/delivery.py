"""Delivery of stored submissions to the provider.

Plain functions: the Celery tasks, the sweeper, ``esp_forms_dispatch`` and the admin all call
them. A delivery claims its row through the outbox (a committed lease, never a lock held during
the call), re-checks the status, takes a rate-limit slot, commits the attempt, calls the
provider outside any transaction and records the outcome in one short transaction guarded by
the lease. A duplicate message, a redelivered task, a second worker or the sweeper therefore
never makes a second call for a row that is being delivered or was delivered; a call whose
outcome was lost is resolved by reading the provider before anything is sent again.
"""

from __future__ import annotations

import enum
import logging
import random
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from esp_forms import alerts, optin, outbox, ratelimit, signals
from esp_forms.conf import get_setting
from esp_forms.exceptions import (
    EspFormsError,
    PermanentProviderError,
    ProviderConfigurationError,
    TransientProviderError,
)
from esp_forms.models import DoubleOptIn, EventKind, Submission
from esp_forms.outbox import _locked, hand_off, log_event, send_task, submission_stored
from esp_forms.providers import get_provider
from esp_forms.providers.base import BaseProvider, SubscribeResult
from esp_forms.statuses import DeliveryStatus, OptinStatus

__all__ = [
    "DUE_TOLERANCE", "Outcome", "Result", "_locked", "deliver", "dispatch_due",
    "due_submissions", "hand_off", "log_event", "resolve_unknown_attempt", "retry_delay",
    "retry_submissions", "send_task", "submission_stored",
]

logger = logging.getLogger("esp_forms.delivery")

# A task that arrives this much before its row is due still runs (clocks, countdown rounding).
DUE_TOLERANCE = timedelta(seconds=2)


class Result(enum.StrEnum):
    """What one delivery run did with a submission."""

    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    THROTTLED = "throttled"
    NOT_DUE = "not-due"
    LOCKED = "locked"  # another claim holds the row
    MISSING = "missing"
    ALREADY_DELIVERED = "already-delivered"
    ALREADY_FAILED = "already-failed"
    AWAITING_CONFIRMATION = "awaiting-confirmation"
    NOT_DELIVERABLE = "not-deliverable"
    ACCOUNT_INACTIVE = "account-inactive"
    LEASE_LOST = "lease-lost"  # the lease ran out mid-call; the new owner records the outcome
    QUEUED = "queued"  # the sweeper handed the claimed row to a worker task
    ERROR = "error"  # raised outside the provider call: logged and backed off
    HELD = "held"  # held by the abuse gate until an admin releases it


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt did. ``retry_in``: seconds until the row is due again."""

    status: Result
    retry_in: float | None = None

    def __str__(self) -> str:
        return self.status if self.retry_in is None else f"{self.status} ({self.retry_in:.1f}s)"


def retry_delay(attempts: int, retry_after: float | None = None) -> float | None:
    """Seconds before retry number ``attempts`` (1-based), with jitter; None when exhausted."""
    schedule = get_setting("RETRY_SCHEDULE")
    if attempts > len(schedule):
        return None
    base = float(schedule[attempts - 1])
    if retry_after:
        base = max(base, float(retry_after))
    return base * (1 + random.uniform(0, float(get_setting("RETRY_JITTER"))))


# --- one delivery -----------------------------------------------------------------------------

def deliver(submission_id: Any, *, force: bool = False, owner: str | None = None) -> Outcome:
    """Deliver one submission if it is due. ``force`` ignores ``next_attempt_at``. ``owner``
    (e.g. the Celery task id) lets a retried task resume its own lease."""
    owner = owner or outbox.new_owner()
    submission = outbox.claim_one(submission_id, owner=owner, open_attempt=True)
    if submission is None:
        exists = Submission.objects.filter(pk=submission_id).exists()
        return Outcome(Result.LOCKED if exists else Result.MISSING)
    outcomes: list[Outcome] = []

    def work(pk: Any) -> str:
        outcomes.append(deliver_claimed(submission, owner=owner, force=force))
        return outcomes[-1].status

    # A row that raises outside the provider call is backed off here too, not left leased.
    outbox.for_each([submission.pk], work, lambda pk, err: _back_off(pk, owner, err))
    return outcomes[0] if outcomes else Outcome(Result.ERROR)


def deliver_claimed(submission: Submission, *, owner: str, force: bool = False) -> Outcome:
    """Deliver a row ``owner`` holds the lease of; always releases or records it."""
    now = timezone.now()
    form, account = submission.form, submission.form.account
    release = partial(outbox.release, submission, owner=owner)
    if submission.delivery_status != DeliveryStatus.PENDING:
        release()
        return Outcome(Result(f"already-{submission.delivery_status}"))
    if submission.held_at is not None:
        # Held by the abuse gate: only an admin's release sends it (esp_forms.abuse).
        release()
        return Outcome(Result.HELD)
    if form.double_opt_in == DoubleOptIn.LOCAL and submission.optin_status != OptinStatus.CONFIRMED:
        return _hold_for_confirmation(submission, owner)
    if submission.optin_status in (OptinStatus.UNSUBSCRIBED, OptinStatus.EXPIRED):
        release(next_attempt_at=None)
        return Outcome(Result.NOT_DELIVERABLE)
    due_at = submission.next_attempt_at
    if not force and due_at and due_at > now + DUE_TOLERANCE:
        release()
        return Outcome(Result.NOT_DUE, (due_at - now).total_seconds())
    if not account.is_active:
        # Held, not failed: the owner may switch the account back on.
        wait = float(get_setting("RETRY_SCHEDULE")[-1])
        release(next_attempt_at=now + timedelta(seconds=wait),
                last_error=f"The provider account '{account.name}' is inactive.")
        return Outcome(Result.ACCOUNT_INACTIVE, wait)

    provider = get_provider(account)
    confirmed = form.double_opt_in == DoubleOptIn.LOCAL
    if submission.attempt_started_at is not None:
        # A call was made and its outcome never recorded (a worker or the database died after
        # it): ask the provider before calling again, or the person could be invited twice.
        try:
            found = resolve_unknown_attempt(provider, submission, confirmed=confirmed)
        except EspFormsError as err:
            # Still unknown: the attempt stays open, so the next run reads again first.
            return _schedule_retry(submission, owner, err, note="outcome of the last "
                                   "attempt unknown and the provider could not be read",
                                   keep_open=True)
        if found is not None:
            return _delivered(submission, owner, provider, found, resolved=True)

    wait = ratelimit.acquire_for(provider)
    if wait > 0:
        # No capacity: come back when a slot frees; not an attempt, not a failure.
        release(next_attempt_at=now + timedelta(seconds=wait))
        return Outcome(Result.THROTTLED, wait)

    if not outbox.start_attempt(submission, owner=owner):
        return Outcome(Result.LEASE_LOST)
    try:
        result = provider.subscribe(submission, confirmed=confirmed)
    except TransientProviderError as err:
        return _schedule_retry(submission, owner, err)
    except PermanentProviderError as err:
        return _fail(submission, owner, err, kind="refused")
    except ProviderConfigurationError as err:
        return _fail(submission, owner, err, kind="configuration",
                     after_commit=[partial(alerts.report_configuration_error, account, err)])
    except Exception as err:  # a bug must not lose the row: retry, then fail with the error
        logger.exception("Unexpected error delivering submission %s", submission.pk)
        return _schedule_retry(submission, owner, err)
    return _delivered(submission, owner, provider, result)


def _delivered(submission: Submission, owner: str, provider: BaseProvider,
               result: SubscribeResult, *, resolved: bool = False) -> Outcome:
    now = timezone.now()
    account = submission.form.account
    fields: dict[str, Any] = {
        "delivery_status": DeliveryStatus.DELIVERED, "delivered_at": now,
        "provider_contact_id": result.contact_id or submission.provider_contact_id,
        "next_attempt_at": None, "last_error": "",
    }
    # Decided on the opt-in status read at claim time: written only if no webhook or click
    # changed it during the call (outbox.finish).
    optin_fields: dict[str, Any] = {}
    optin_status = submission.optin_status
    if result.optin_status and optin_status == OptinStatus.UNCONFIRMED:
        optin_status = optin_fields["optin_status"] = result.optin_status
    if optin_status == OptinStatus.UNCONFIRMED:
        optin_fields["next_optin_check_at"] = now + timedelta(
            seconds=float(get_setting("POLL_INITIAL_DELAY")))
    attempt = (f"Attempt {submission.attempts}: outcome was unknown; the provider has the "
               "contact, so nothing was sent again" if resolved
               else f"Attempt {submission.attempts}: accepted")
    events = [
        (EventKind.ATTEMPT, attempt, result.raw),
        (EventKind.DELIVERED,
         f"Delivered to {provider.verbose_name} (contact {result.contact_id or '?'})",
         {"contact_id": result.contact_id, "is_new": result.is_new,
          "warnings": result.warnings}),
    ]
    after: list[Any] = [partial(signals.submission_delivered.send, sender=Submission,
                                submission=submission)]
    if account.config_error:
        after.append(partial(alerts.clear_configuration_error, account))
    if not outbox.finish(submission, owner=owner, fields=fields, events=events,
                         after_commit=after, optin_fields=optin_fields):
        return Outcome(Result.LEASE_LOST)
    return Outcome(Result.DELIVERED)


def resolve_unknown_attempt(provider: BaseProvider, submission: Submission, *,
                            confirmed: bool) -> SubscribeResult | None:
    """Whether an earlier call whose answer was lost reached the provider: the contact as
    ``SubscribeResult`` when the provider has it in the form's lists, else None. Reads only
    (eSputnik contact search, UniSender ``getContact``); raises provider errors."""
    from esp_forms.models import SandboxContact

    if confirmed:
        optin = str(OptinStatus.CONFIRMED)
    elif submission.form.double_opt_in == DoubleOptIn.OFF:
        optin = str(OptinStatus.NOT_REQUIRED)
    else:
        optin = str(OptinStatus.UNCONFIRMED)
    note = "Found at the provider after an attempt whose outcome was unknown"
    if provider.name == "esputnik":
        contact, raw = provider.find_contact(submission.email)  # type: ignore[attr-defined]
        if contact is None or contact.get("id") is None:
            return None
        return SubscribeResult(contact_id=str(contact["id"]), optin_status=optin,
                               warnings=[note], raw={"lookup": raw})
    if provider.name == "unisender":
        from esp_forms.providers import unisender

        request = provider.api_request(  # type: ignore[attr-defined]
            "getContact", [("email", submission.email), ("include_lists", "1")])
        response = provider.send(request)
        raw = {"request": provider.redact_request(request), "response": provider.redact(response)}
        data = response.data if isinstance(response.data, dict) else {}
        if "error" in data:
            code = str(data.get("code") or "").strip()
            if code in (unisender.UNSPECIFIED_CODES | {"invalid_arg"}) and \
                    unisender._NOT_FOUND.search(str(data.get("error"))):
                return None
            provider.raise_for_api_error(response)  # type: ignore[attr-defined]
        status, lists = unisender.contact_state(data.get("result"))
        gone = unisender.UNSUBSCRIBED_STATUSES | {"excluded", "deleted"}
        # An invitation pending (the lists show up only once it is confirmed) or a place in
        # one of the form's lists: the call went through, and another would invite again.
        if status == "invited" or any(lists.get(list_id, "deleted") not in gone
                                      for list_id in submission.form.list_values):
            return SubscribeResult(contact_id="", optin_status=optin, warnings=[note],
                                   raw={"lookup": raw})
        return None
    contact = SandboxContact.objects.filter(account=provider.account,
                                            email__iexact=submission.email.strip()).first()
    if contact is None:
        return None
    return SubscribeResult(contact_id=str(contact.pk), optin_status=optin, warnings=[note])


def _hold_for_confirmation(submission: Submission, owner: str) -> Outcome:
    """Local double opt-in: nothing goes to the provider before the click. A row whose
    confirmation email was never sent (broker down at submit time) gets it now."""
    outbox.release(submission, owner=owner, next_attempt_at=None)
    if submission.optin_status == OptinStatus.UNCONFIRMED and not submission.confirmation_sent_at:
        optin.send_confirmation(submission.pk)
    return Outcome(Result.AWAITING_CONFIRMATION)


def _error_data(err: Exception) -> dict[str, Any]:
    return {"error": str(err), "status": getattr(err, "status_code", None),
            "code": getattr(err, "code", None), "response": getattr(err, "response", None)}


def _schedule_retry(submission: Submission, owner: str, err: Exception, *,
                    note: str = "temporary failure", keep_open: bool = False) -> Outcome:
    delay = retry_delay(max(submission.attempts, 1), getattr(err, "retry_after", None))
    if delay is None:
        submission.last_error = (f"Gave up after {submission.attempts} attempts. "
                                 f"Last error: {err}")
        return _fail(submission, owner, err, kind="exhausted")
    events = [(EventKind.ATTEMPT, f"Attempt {submission.attempts}: {note}", _error_data(err)),
              (EventKind.RETRY, f"Retry in {delay:.0f} s: {err}", {"delay": delay})]
    fields = {"last_error": str(err),
              "next_attempt_at": timezone.now() + timedelta(seconds=delay)}
    if keep_open:
        fields["attempt_started_at"] = submission.attempt_started_at
    if not outbox.finish(submission, owner=owner, events=events, fields=fields):
        return Outcome(Result.LEASE_LOST)
    return Outcome(Result.RETRY, delay)


def _fail(submission: Submission, owner: str, err: Exception, *, kind: str,
          after_commit: list[Any] | None = None) -> Outcome:
    last_error = submission.last_error if kind == "exhausted" else str(err)
    events = [(EventKind.ATTEMPT, f"Attempt {submission.attempts}: {kind}", _error_data(err)),
              (EventKind.FAILED, last_error, {"reason": kind})]
    after = [*(after_commit or []),
             partial(signals.submission_failed.send, sender=Submission, submission=submission,
                     error=last_error)]
    if not outbox.finish(submission, owner=owner, events=events, after_commit=after, fields={
            "delivery_status": DeliveryStatus.FAILED, "next_attempt_at": None,
            "last_error": last_error}):
        return Outcome(Result.LEASE_LOST)
    return Outcome(Result.FAILED)


# --- the outbox sweeper -----------------------------------------------------------------------

def _due(grace: float | None) -> QuerySet[Submission]:
    if grace is None:
        grace = float(get_setting("SWEEP_GRACE_SECONDS"))
    cutoff = timezone.now() - timedelta(seconds=grace)
    return Submission.objects.filter(delivery_status=DeliveryStatus.PENDING,
                                     next_attempt_at__lte=cutoff)


def due_submissions(*, grace: float | None = None, limit: int | None = None
                    ) -> list[tuple[Any, int]]:
    """(id, account id) of pending submissions due ``grace`` seconds ago or earlier, oldest
    first."""
    qs = _due(grace).order_by("next_attempt_at").values_list("pk", "form__account_id")
    return list(qs[: limit or int(get_setting("SWEEP_BATCH_SIZE"))])


def _back_off(pk: Any, owner: str, err: Exception) -> None:
    """A row whose delivery raised outside the provider call: due again later, lease freed."""
    attempts = Submission.objects.filter(pk=pk).values_list("attempts", flat=True).first() or 0
    delay = retry_delay(max(attempts, 1)) or float(get_setting("RETRY_SCHEDULE")[-1])
    Submission.objects.filter(pk=pk, lease_owner=owner).update(
        next_attempt_at=timezone.now() + timedelta(seconds=delay), lease_owner="",
        lease_until=None, last_error=f"Unexpected error: {err}"[:2000])


def dispatch_due(*, grace: float | None = None, limit: int | None = None,
                 fan_out: bool = False) -> dict[str, int]:
    """Deliver due pending submissions (the sweeper and ``esp_forms_dispatch``).

    One claim leases the batch (rows a worker holds are skipped, so this never races the
    workers). With ``fan_out`` (the periodic sweep) each claimed row goes to a worker task
    that takes over the claim, so all worker processes drain the batch; a row whose task
    cannot be queued is delivered here. Otherwise each row is delivered inline. Either way
    each row is isolated: one that raises is backed off and the rest go on. Because the lease
    travels with the task, a lost task only delays its row until the lease runs out; it never
    turns into a pile of duplicate messages.
    """
    owner = outbox.new_owner()
    ids = outbox.claim(_due(grace), owner=owner,
                       limit=limit or int(get_setting("SWEEP_BATCH_SIZE")),
                       order_by=("next_attempt_at",))
    if fan_out and ids:
        task = outbox.task_named(outbox.DELIVER_TASK)
        queued = [pk for pk in ids if outbox.send_task(task, pk, owner=owner)]
        ids = [pk for pk in ids if pk not in set(queued)]
        if not ids:
            return {Result.QUEUED: len(queued)}
        counts = dispatch_claimed(ids, owner)
        counts[Result.QUEUED] = len(queued)
        return counts
    return dispatch_claimed(ids, owner)


def dispatch_claimed(ids: list[Any], owner: str) -> dict[str, int]:
    """Deliver rows ``owner`` claimed, one by one, in isolation."""
    rows = {s.pk: s for s in Submission.objects.select_related("form__account")
            .filter(pk__in=ids)}
    throttled_accounts: set[int] = set()

    def work(pk: Any) -> str:
        submission = rows[pk]
        if submission.form.account_id in throttled_accounts:
            # The account has no capacity left this round: hand the row back untouched.
            outbox.release(submission, owner=owner)
            return Result.THROTTLED
        outcome = deliver_claimed(submission, owner=owner)
        if outcome.status == Result.THROTTLED:
            throttled_accounts.add(submission.form.account_id)
        return outcome.status

    try:
        return outbox.for_each([pk for pk in ids if pk in rows], work,
                               lambda pk, err: _back_off(pk, owner, err))
    finally:
        # Whatever the loop did not get to (a database error ended it) is handed back now.
        Submission.objects.filter(pk__in=ids, lease_owner=owner).update(lease_owner="",
                                                                        lease_until=None)


# --- admin actions ----------------------------------------------------------------------------

def retry_submissions(queryset: QuerySet[Submission]) -> int:
    """Put failed submissions back in the queue with a fresh retry schedule."""
    now = timezone.now()
    count = 0
    for submission in queryset.filter(delivery_status=DeliveryStatus.FAILED):
        with transaction.atomic():
            submission.delivery_status = DeliveryStatus.PENDING
            submission.attempts = 0
            submission.next_attempt_at = now
            submission.save(update_fields=["delivery_status", "attempts", "next_attempt_at",
                                           "updated_at"])
            log_event(submission, EventKind.ADMIN, "Retry requested by an admin",
                      previous_error=submission.last_error)
            outbox.enqueue_on_commit(outbox.DELIVER_TASK, submission.pk)
        count += 1
    return count
