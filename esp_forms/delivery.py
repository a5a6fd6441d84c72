"""Delivery of stored submissions to the provider.

Plain functions: the Celery tasks, the sweeper, ``esp_forms_dispatch`` and the admin all call
them. A delivery locks its row (``SELECT … FOR UPDATE SKIP LOCKED`` where the database has it),
re-checks the status, takes a rate-limit slot, calls the provider and records the outcome in the
same transaction, so a duplicate message, a redelivered task, a second worker or the sweeper
never makes a second accepted call for a delivered submission.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from esp_forms import alerts, ratelimit, signals
from esp_forms.conf import get_setting
from esp_forms.exceptions import (
    PermanentProviderError,
    ProviderConfigurationError,
    TransientProviderError,
)
from esp_forms.models import (
    DeliveryStatus,
    DoubleOptIn,
    EventKind,
    OptinStatus,
    Submission,
    SubmissionEvent,
)
from esp_forms.providers import get_provider

logger = logging.getLogger("esp_forms.delivery")

# A task that arrives this much before its row is due still runs (clocks, countdown rounding).
DUE_TOLERANCE = timedelta(seconds=2)


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt did. ``retry_in``: seconds until the row is due again."""

    status: str
    retry_in: float | None = None

    def __str__(self) -> str:
        return self.status if self.retry_in is None else f"{self.status} ({self.retry_in:.1f}s)"


def log_event(submission: Submission, kind: str, message: str = "", **data: Any
              ) -> SubmissionEvent:
    return SubmissionEvent.objects.create(submission=submission, kind=kind, message=message,
                                          data=data)


# --- hand-off ---------------------------------------------------------------------------------

def submission_stored(submission: Submission, *, created: bool) -> None:
    """Call inside the transaction that stored (or collapsed into) ``submission``.

    Queues the next step after commit: the confirmation email for local double opt-in, the
    provider delivery otherwise. If the broker is down the row stays pending for the sweeper.
    The abuse gate comes first: a held signup gets nothing queued until an admin releases it.
    """
    from esp_forms import abuse

    if abuse.admit(submission, created=created):
        hand_off(submission, created=created)


def hand_off(submission: Submission, *, created: bool) -> None:
    """Queue the next step for ``submission`` after commit (no gate: see submission_stored)."""
    from esp_forms import tasks

    if submission.form.double_opt_in == DoubleOptIn.LOCAL:
        if submission.optin_status == OptinStatus.UNCONFIRMED:
            transaction.on_commit(partial(send_task, tasks.send_confirmation, submission.pk))
    elif created:
        transaction.on_commit(partial(send_task, tasks.deliver_submission, submission.pk))


def send_task(task: Any, submission_id: Any, countdown: float | None = None) -> bool:
    """Queue a task for one submission; False (and a warning) when the broker is unreachable,
    in which case the sweeper finds the row later: nothing is lost."""
    options: dict[str, Any] = {}
    if countdown:
        options["countdown"] = countdown
    queue = get_setting("CELERY_QUEUE")
    if queue:
        options["queue"] = queue
    try:
        task.apply_async((str(submission_id),), **options)
        return True
    except Exception:
        logger.warning("Could not queue %s for submission %s; the sweeper will pick it up.",
                       task.name, submission_id, exc_info=True)
        return False


# --- one delivery -----------------------------------------------------------------------------

def _locked(queryset: QuerySet[Submission]) -> QuerySet[Submission]:
    if connection.features.has_select_for_update_skip_locked:
        return queryset.select_for_update(skip_locked=True, of=("self",))
    # SQLite serialises writers itself; the demo runs one worker.
    return queryset.select_for_update()


def retry_delay(attempts: int, retry_after: float | None = None) -> float | None:
    """Seconds before retry number ``attempts`` (1-based), with jitter; None when exhausted."""
    schedule = get_setting("RETRY_SCHEDULE")
    if attempts > len(schedule):
        return None
    base = float(schedule[attempts - 1])
    if retry_after:
        base = max(base, float(retry_after))
    return base * (1 + random.uniform(0, float(get_setting("RETRY_JITTER"))))


def deliver(submission_id: Any, *, force: bool = False) -> Outcome:
    """Deliver one submission if it is due. ``force`` ignores ``next_attempt_at``."""
    with transaction.atomic():
        submission = (
            _locked(Submission.objects.select_related("form__account"))
            .filter(pk=submission_id).first()
        )
        if submission is None:
            exists = Submission.objects.filter(pk=submission_id).exists()
            return Outcome("locked" if exists else "missing")
        return _deliver_locked(submission, force=force)


def _deliver_locked(submission: Submission, *, force: bool) -> Outcome:
    now = timezone.now()
    form, account = submission.form, submission.form.account
    if submission.delivery_status != DeliveryStatus.PENDING:
        return Outcome(f"already-{submission.delivery_status}")
    if submission.held_at is not None:
        # Held by the abuse gate: only an admin's release sends it (esp_forms.abuse).
        return Outcome("held")
    if form.double_opt_in == DoubleOptIn.LOCAL and submission.optin_status != OptinStatus.CONFIRMED:
        return _hold_for_confirmation(submission)
    if submission.optin_status in (OptinStatus.UNSUBSCRIBED, OptinStatus.EXPIRED):
        submission.next_attempt_at = None
        submission.save(update_fields=["next_attempt_at", "updated_at"])
        return Outcome("not-deliverable")
    due_at = submission.next_attempt_at
    if not force and due_at and due_at > now + DUE_TOLERANCE:
        return Outcome("not-due", (due_at - now).total_seconds())
    if not account.is_active:
        # Held, not failed: the owner may switch the account back on.
        wait = float(get_setting("RETRY_SCHEDULE")[-1])
        submission.next_attempt_at = now + timedelta(seconds=wait)
        submission.last_error = f"The provider account '{account.name}' is inactive."
        submission.save(update_fields=["next_attempt_at", "last_error", "updated_at"])
        return Outcome("account-inactive", wait)

    provider = get_provider(account)
    wait = ratelimit.acquire_for(provider)
    if wait > 0:
        # No capacity: come back when a slot frees; not an attempt, not a failure.
        submission.next_attempt_at = now + timedelta(seconds=wait)
        submission.save(update_fields=["next_attempt_at", "updated_at"])
        return Outcome("throttled", wait)

    submission.attempts += 1
    submission.last_attempt_at = now
    confirmed = form.double_opt_in == DoubleOptIn.LOCAL
    try:
        result = provider.subscribe(submission, confirmed=confirmed)
    except TransientProviderError as err:
        return _schedule_retry(submission, err)
    except PermanentProviderError as err:
        return _fail(submission, err, kind="refused")
    except ProviderConfigurationError as err:
        alerts.report_configuration_error(account, err)
        return _fail(submission, err, kind="configuration")
    except Exception as err:  # a bug must not lose the row: retry, then fail with the error
        logger.exception("Unexpected error delivering submission %s", submission.pk)
        return _schedule_retry(submission, err)

    submission.delivery_status = DeliveryStatus.DELIVERED
    submission.delivered_at = now
    submission.provider_contact_id = result.contact_id or submission.provider_contact_id
    submission.next_attempt_at = None
    submission.last_error = ""
    if result.optin_status and submission.optin_status == OptinStatus.UNCONFIRMED:
        submission.optin_status = result.optin_status
    if submission.optin_status == OptinStatus.UNCONFIRMED:
        submission.next_optin_check_at = now + timedelta(
            seconds=float(get_setting("POLL_INITIAL_DELAY")))
    submission.save()
    log_event(submission, EventKind.ATTEMPT, f"Attempt {submission.attempts}: accepted",
              **result.raw)
    log_event(submission, EventKind.DELIVERED,
              f"Delivered to {provider.verbose_name} (contact {result.contact_id or '?'})",
              contact_id=result.contact_id, is_new=result.is_new, warnings=result.warnings)
    if account.config_error:
        alerts.clear_configuration_error(account)
    transaction.on_commit(partial(signals.submission_delivered.send, sender=Submission,
                                  submission=submission))
    return Outcome("delivered")


def _hold_for_confirmation(submission: Submission) -> Outcome:
    """Local double opt-in: nothing goes to the provider before the click. A row whose
    confirmation email was never sent (broker down at submit time) gets it now."""
    from esp_forms import optin

    if submission.optin_status == OptinStatus.UNCONFIRMED and not submission.confirmation_sent_at:
        optin.send_confirmation_locked(submission)
    submission.next_attempt_at = None
    submission.save(update_fields=["next_attempt_at", "updated_at"])
    return Outcome("awaiting-confirmation")


def _error_data(err: Exception) -> dict[str, Any]:
    return {"error": str(err), "status": getattr(err, "status_code", None),
            "code": getattr(err, "code", None), "response": getattr(err, "response", None)}


def _schedule_retry(submission: Submission, err: Exception) -> Outcome:
    delay = retry_delay(submission.attempts, getattr(err, "retry_after", None))
    submission.last_error = str(err)
    if delay is None:
        submission.last_error = (f"Gave up after {submission.attempts} attempts. "
                                 f"Last error: {err}")
        return _fail(submission, err, kind="exhausted")
    submission.next_attempt_at = timezone.now() + timedelta(seconds=delay)
    submission.save()
    log_event(submission, EventKind.ATTEMPT,
              f"Attempt {submission.attempts}: temporary failure", **_error_data(err))
    log_event(submission, EventKind.RETRY, f"Retry in {delay:.0f} s: {err}", delay=delay)
    return Outcome("retry", delay)


def _fail(submission: Submission, err: Exception, *, kind: str) -> Outcome:
    submission.delivery_status = DeliveryStatus.FAILED
    submission.next_attempt_at = None
    if kind != "exhausted":
        submission.last_error = str(err)
    submission.save()
    log_event(submission, EventKind.ATTEMPT, f"Attempt {submission.attempts}: {kind}",
              **_error_data(err))
    log_event(submission, EventKind.FAILED, submission.last_error, reason=kind)
    transaction.on_commit(partial(signals.submission_failed.send, sender=Submission,
                                  submission=submission, error=submission.last_error))
    return Outcome("failed")


# --- the outbox sweeper -----------------------------------------------------------------------

def due_submissions(*, grace: float | None = None, limit: int | None = None
                    ) -> list[tuple[Any, int]]:
    """(id, account id) of pending submissions due ``grace`` seconds ago or earlier, oldest
    first."""
    if grace is None:
        grace = float(get_setting("SWEEP_GRACE_SECONDS"))
    cutoff = timezone.now() - timedelta(seconds=grace)
    qs = (Submission.objects.filter(delivery_status=DeliveryStatus.PENDING,
                                    next_attempt_at__lte=cutoff)
          .order_by("next_attempt_at").values_list("pk", "form__account_id"))
    return list(qs[: limit or int(get_setting("SWEEP_BATCH_SIZE"))])


def dispatch_due(*, grace: float | None = None, limit: int | None = None) -> dict[str, int]:
    """Deliver due pending submissions inline (the sweeper and ``esp_forms_dispatch``).

    Rows a worker is delivering right now are skipped (locked), so this never races the
    workers. Delivering inline rather than re-queueing means a lost task never turns into a
    growing pile of duplicate messages.
    """
    counts: dict[str, int] = {}
    throttled_accounts: set[int] = set()
    for pk, account_id in due_submissions(grace=grace, limit=limit):
        if account_id in throttled_accounts:
            counts["throttled"] = counts.get("throttled", 0) + 1
            continue
        outcome = deliver(pk)
        if outcome.status == "throttled":
            throttled_accounts.add(account_id)
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts


# --- admin actions ----------------------------------------------------------------------------

def retry_submissions(queryset: QuerySet[Submission]) -> int:
    """Put failed submissions back in the queue with a fresh retry schedule."""
    from esp_forms import tasks

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
            transaction.on_commit(partial(send_task, tasks.deliver_submission, submission.pk))
        count += 1
    return count
