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

What it changed is returned (and printed by ``esp_forms_reconcile``) and logged on each
submission. Each row is read in its own short transaction with the same lock the workers use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from esp_forms import optin, ratelimit
from esp_forms.conf import get_setting
from esp_forms.delivery import _locked
from esp_forms.exceptions import EspFormsError, ProviderConfigurationError
from esp_forms.models import (
    DeliveryStatus,
    DoubleOptIn,
    OptinStatus,
    ProviderAccount,
    Submission,
)
from esp_forms.providers import get_provider

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
        # eSputnik's API shows no unsubscribes, so reading subscribed rows could never repair
        # anything: spend the rate limit on the ones a confirmed segment can still confirm.
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
    batch = limit or int(get_setting("RECONCILE_BATCH_SIZE"))
    ids = list(tracked(account)
               .order_by(F("optin_checked_at").asc(nulls_first=True), "created_at")
               .values_list("pk", flat=True)[:batch])
    for pk in ids:
        if ratelimit.acquire_for(provider) > 0:
            report.throttled = True
            break
        with transaction.atomic():
            submission = (_locked(Submission.objects.select_related("form__account"))
                          .filter(pk=pk).first())
            if submission is None:
                continue  # a worker is on it right now; the next run looks again
            try:
                status = provider.get_contact_status(submission)
            except (EspFormsError, ProviderConfigurationError) as err:
                report.errors.append(f"{submission.email}: {err}")
                if isinstance(err, ProviderConfigurationError):
                    break  # every further read of this account would fail the same way
                continue
            report.checked += 1
            before = submission.optin_status
            after = status.optin_status
            if after != before and after in REPAIRS.get(before, set()):
                report.changes.append(Change(str(submission.pk), submission.email,
                                             submission.form.form_type, before, after))
                if not dry_run:
                    optin.apply_status(submission, after, source="reconcile",
                                       data={"provider": status.raw})
            if not dry_run:
                Submission.objects.filter(pk=pk).update(optin_checked_at=timezone.now())
                if status.contact_id and not submission.provider_contact_id:
                    Submission.objects.filter(pk=pk).update(
                        provider_contact_id=status.contact_id)
    return report


def reconcile(*, account_id: int | None = None, limit: int | None = None,
              dry_run: bool = False) -> list[AccountReport]:
    """Reconcile every active provider account (or one)."""
    accounts = ProviderAccount.objects.filter(is_active=True).exclude(provider="sandbox")
    if account_id is not None:
        accounts = accounts.filter(pk=account_id)
    return [reconcile_account(account, limit=limit, dry_run=dry_run)
            for account in accounts.order_by("pk")]
