"""Reconciliation: compare every tracked submission with the provider and repair drift.

Webhooks get lost (an outage on our side, a provider that gave up retrying), and polling only
looks at unconfirmed submissions. This reads the provider's status of every tracked submission of
an account, least recently checked first, inside the account's rate limit, and applies what the
provider says under the same rules as polling (``optin.apply_status``):

- unconfirmed or expired, and the provider shows the person subscribed: confirmed ("no one
  expired who is subscribed");
- confirmed (or not requiring confirmation), and the provider shows the person unsubscribed or
  removed from the form's lists: unsubscribed;
- never back to unconfirmed: a provider answer that says less (eSputnik has no unsubscribe
  field; a segment an owner emptied) repairs nothing.

eSputnik's contact shows no unsubscribe, so for an eSputnik account reconciliation also reads
the account's activity (``GET v2/contacts/activity``) since the last window it read completely
(``ProviderAccount.activity_read_until``) and applies ``UNSUBSCRIBED``/``SPAM`` items exactly as
the activity webhook does (``webhooks.apply_unsubscribe``): an unsubscribe whose webhook was
lost is reflected within one run.

What it changed is returned (and printed by ``esp_forms_reconcile``) and logged on each
submission. Rows are claimed through the outbox like the workers' (a row a worker holds the
lease of is left for the next run), the provider is read outside any transaction, and each
answer is applied in one short transaction guarded by the lease.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import OperationalError, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from esp_forms import optin, outbox, ratelimit, webhooks
from esp_forms.conf import get_setting
from esp_forms.exceptions import EspFormsError, ProviderConfigurationError
from esp_forms.models import (
    DeliveryStatus,
    DoubleOptIn,
    OptinStatus,
    ProviderAccount,
    Submission,
)
from esp_forms.providers import get_provider

logger = logging.getLogger("esp_forms.reconcile")

# How far back the first activity read of an eSputnik account goes (at most).
ACTIVITY_FIRST_READ = timedelta(days=3)
# Each read starts this much before the last complete window ended: an item eSputnik records a
# little late is still seen, and reading one twice changes nothing.
ACTIVITY_OVERLAP = timedelta(minutes=10)
# One window per read-and-apply step (the provider's longest request), and how far back
# eSputnik keeps activity (its docs: a window of at most three months).
ACTIVITY_WINDOW = timedelta(days=1)
ACTIVITY_KEPT = timedelta(days=89)

# Local states a provider reading may correct, and where each may go.
REPAIRS: dict[str, set[str]] = {
    OptinStatus.UNCONFIRMED: {OptinStatus.CONFIRMED, OptinStatus.UNSUBSCRIBED},
    OptinStatus.EXPIRED: {OptinStatus.CONFIRMED, OptinStatus.UNSUBSCRIBED},
    OptinStatus.CONFIRMED: {OptinStatus.UNSUBSCRIBED},
    OptinStatus.NOT_REQUIRED: {OptinStatus.UNSUBSCRIBED},
}


@dataclass
class Change:
    submission_id: str
    email: str
    form_type: str
    before: str
    after: str

    def __str__(self) -> str:
        return f"{self.email} ({self.form_type}): {self.before} → {self.after}"


@dataclass
class AccountReport:
    account: str
    checked: int = 0
    changes: list[Change] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # True when the rate limit stopped the run early; the rest waits for the next run.
    throttled: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"account": self.account, "checked": self.checked,
                "changed": [str(c) for c in self.changes], "errors": list(self.errors),
                "throttled": self.throttled}


def tracked(account: ProviderAccount) -> QuerySet[Submission]:
    """Submissions whose provider status means something here: delivered, personal data still
    there, and either provider double opt-in or already subscribed (a local confirmation or
    "off" mode, whose unsubscribes still count)."""
    states = list(REPAIRS)
    if account.provider == "esputnik":
        # eSputnik's contact shows no unsubscribes (the activity read finds those), so reading
        # subscribed rows could never repair anything: spend the rate limit on the ones a
        # confirmed segment can still confirm.
        states = [OptinStatus.UNCONFIRMED, OptinStatus.EXPIRED]
    return (Submission.objects
            .filter(form__account=account, delivery_status=DeliveryStatus.DELIVERED,
                    purged_at__isnull=True, optin_status__in=states)
            .filter(Q(form__double_opt_in=DoubleOptIn.PROVIDER)
                    | Q(optin_status__in=[OptinStatus.CONFIRMED, OptinStatus.NOT_REQUIRED])))


def reconcile_account(account: ProviderAccount, *, limit: int | None = None,
                      dry_run: bool = False) -> AccountReport:
    """Read up to ``limit`` (``RECONCILE_BATCH_SIZE``) tracked submissions of ``account``, least
    recently checked first, and repair drift. ``dry_run`` reads and reports without changing."""
    report = AccountReport(account=account.name)
    provider = get_provider(account)
    if account.provider == "esputnik":
        read_activity(account, provider, report, dry_run=dry_run)
        if report.throttled:
            return report
    batch = limit or int(get_setting("RECONCILE_BATCH_SIZE"))
    order = (F("optin_checked_at").asc(nulls_first=True), "created_at")
    owner = outbox.new_owner()
    if dry_run:
        # Nothing is written, not even a lease; a row a worker holds is still left alone.
        now = timezone.now()
        ids = list(tracked(account).filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
                   .order_by(*order).values_list("pk", flat=True)[:batch])
    else:
        ids = outbox.claim(tracked(account), owner=owner, limit=batch, order_by=order)
    rows = {s.pk: s for s in Submission.objects.select_related("form__account")
            .filter(pk__in=ids)}
    try:
        for pk in ids:
            if pk not in rows:
                continue
            if ratelimit.acquire_for(provider) > 0:
                report.throttled = True
                break
            if not _reconcile_one(rows[pk], provider, report, owner=owner, dry_run=dry_run):
                break
    finally:
        # Rows not reached (throttled, stopped) go back for the next run.
        Submission.objects.filter(pk__in=ids, lease_owner=owner).update(lease_owner="",
                                                                        lease_until=None)
    return report


def _reconcile_one(submission: Submission, provider: Any, report: AccountReport, *,
                   owner: str, dry_run: bool) -> bool:
    """Read one claimed row's status outside any transaction, then apply it in one short
    transaction guarded by the lease (as ``optin.refresh_claimed``). False: stop the run."""
    try:
        status = provider.get_contact_status(submission)
    except (EspFormsError, ProviderConfigurationError) as err:
        report.errors.append(f"{submission.email}: {err}")
        # A configuration error: every further read of this account would fail the same way.
        return not isinstance(err, ProviderConfigurationError)
    report.checked += 1
    if dry_run:
        _repair(submission, status, report, dry_run=True)
        return True
    with transaction.atomic():
        # Re-read under a short row lock: a webhook or a click may have moved the row while
        # the provider was read, and the repair rules decide on the current state.
        fresh = (Submission.objects.select_for_update(of=("self",))
                 .select_related("form__account")
                 .filter(pk=submission.pk, lease_owner=owner, purged_at__isnull=True).first())
        if fresh is None:
            return True  # the lease ran out or the row was erased: nothing is recorded
        _repair(fresh, status, report, dry_run=False)
        update: dict[str, Any] = {"optin_checked_at": timezone.now(), "lease_owner": "",
                                  "lease_until": None}
        if status.contact_id and not fresh.provider_contact_id:
            update["provider_contact_id"] = status.contact_id
        Submission.objects.filter(pk=fresh.pk).update(**update)
    return True


def _repair(submission: Submission, status: Any, report: AccountReport, *,
            dry_run: bool) -> None:
    before = submission.optin_status
    after = status.optin_status
    if after != before and after in REPAIRS.get(before, set()):
        report.changes.append(Change(str(submission.pk), submission.email,
                                     submission.form.form_type, before, after))
        if not dry_run:
            optin.apply_status(submission, after, source="reconcile",
                               data={"provider": status.raw})


class _Throttled(Exception):
    pass


def activity_start(account: ProviderAccount, now: datetime) -> datetime:
    """Where the next activity read starts: shortly before the last complete window ended, or
    on the first run at the oldest submission an unsubscribe could still change (3 days back
    at most)."""
    if account.activity_read_until is not None:
        return account.activity_read_until - ACTIVITY_OVERLAP
    oldest = (Submission.objects
              .filter(form__account=account,
                      delivery_status__in=[DeliveryStatus.DELIVERED, DeliveryStatus.PENDING])
              .exclude(optin_status=OptinStatus.UNSUBSCRIBED)
              .order_by("created_at").values_list("created_at", flat=True).first())
    return max(oldest or now, now - ACTIVITY_FIRST_READ)


def read_activity(account: ProviderAccount, provider: Any, report: AccountReport, *,
                  dry_run: bool = False) -> None:
    """Read eSputnik's activity since the last complete window, a day at a time, and apply its
    unsubscribes; the read position moves past a day only once it was read and applied whole."""
    # The method takes whole seconds: end at the next one, so nothing in this one is missed.
    now = (timezone.now() + timedelta(seconds=1)).replace(microsecond=0)
    # eSputnik keeps activity about three months: older is not there to read.
    start = max(activity_start(account, now), now - ACTIVITY_KEPT)

    def take_slot() -> None:
        if ratelimit.acquire_for(provider) > 0:
            raise _Throttled

    while start < now:
        end = min(start + ACTIVITY_WINDOW, now)
        try:
            items = provider.read_activity(start, end, before_call=take_slot)
        except _Throttled:
            report.throttled = True
            return
        except ProviderConfigurationError as err:
            # Not enabled for this account (403/404): said once per run, status reads go on.
            logger.warning("eSputnik activity read for account %s: %s", account.pk, err)
            report.errors.append(f"activity: {err}")
            return
        except EspFormsError as err:
            report.errors.append(f"activity: {err}")
            return
        events = [e for e in webhooks.esputnik_events(items) if e.kind == "unsubscribe"]
        try:
            for event in events:
                with transaction.atomic():
                    changed, _stale = webhooks.apply_unsubscribe(
                        account, event, source="reconcile", dry_run=dry_run)
                report.changes += [Change(str(s.pk), s.email, s.form.form_type, before,
                                          OptinStatus.UNSUBSCRIBED) for s, before in changed]
        except OperationalError:
            # A row stayed locked: this window is read again next run, nothing is skipped.
            report.errors.append("activity: a submission stayed locked; read again next run")
            return
        if not dry_run:
            ProviderAccount.objects.filter(pk=account.pk).update(activity_read_until=end)
            account.activity_read_until = end
        start = end


def reconcile(*, account_id: int | None = None, limit: int | None = None,
              dry_run: bool = False) -> list[AccountReport]:
    """Reconcile every active provider account (or one)."""
    accounts = ProviderAccount.objects.filter(is_active=True).exclude(provider="sandbox")
    if account_id is not None:
        accounts = accounts.filter(pk=account_id)
    return [reconcile_account(account, limit=limit, dry_run=dry_run)
            for account in accounts.order_by("pk")]
