"""Double opt-in: where each submission stands, and how it gets there.

- provider mode: the provider sends the confirmation email. Webhooks are *hints* that trigger a
  status read (:func:`refresh`); periodic polling (:func:`poll_due`) is the safety net.
- local mode: this site sends a signed, expiring link (:func:`send_confirmation`); the POST of
  the confirmation page (:func:`confirm`) confirms and releases the delivery.
- every mode: unconfirmed submissions expire (:func:`expire_unconfirmed`).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial
from typing import Any
from urllib.parse import urljoin

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import QuerySet
from django.template.loader import select_template
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from esp_forms import outbox, ratelimit, signals
from esp_forms.conf import get_setting, site_url
from esp_forms.exceptions import EspFormsError, ProviderConfigurationError
from esp_forms.models import (
    DeliveryStatus,
    DoubleOptIn,
    EventKind,
    OptinStatus,
    ProviderAccount,
    Submission,
)
from esp_forms.outbox import _locked, log_event, send_task
from esp_forms.providers import get_provider

logger = logging.getLogger("esp_forms.optin")

TOKEN_SALT = "esp_forms.confirm"


# --- applying a status ------------------------------------------------------------------------

def apply_status(submission: Submission, status: str, *, source: str, ip: str | None = None,
                 data: dict[str, Any] | None = None) -> bool:
    """Move a (locked) submission to ``status``; True when it changed. Idempotent."""
    if status == submission.optin_status or status == OptinStatus.UNCONFIRMED:
        return False
    if submission.optin_status in (OptinStatus.UNSUBSCRIBED, OptinStatus.EXPIRED) and \
            status == OptinStatus.CONFIRMED and source not in ("provider", "reconcile"):
        # Only the provider's own reading may revive an ended subscription.
        return False
    now = timezone.now()
    previous = submission.optin_status
    submission.optin_status = status
    submission.next_optin_check_at = None
    if status == OptinStatus.CONFIRMED:
        submission.confirmed_at = now
        submission.confirm_ip = ip or submission.confirm_ip
        kind, signal = EventKind.CONFIRMED, signals.optin_confirmed
    elif status == OptinStatus.UNSUBSCRIBED:
        submission.unsubscribed_at = now
        kind, signal = EventKind.UNSUBSCRIBED, signals.optin_unsubscribed
    elif status == OptinStatus.EXPIRED:
        kind, signal = EventKind.EXPIRED, None
    else:
        return False
    submission.save()
    log_event(submission, kind, f"{previous} → {status} ({source})", source=source,
              details=data or {})
    if signal is not None:
        transaction.on_commit(partial(signal.send, sender=Submission, submission=submission))
    return True


# --- reading the provider ---------------------------------------------------------------------

def next_check_delay(submission: Submission) -> float:
    """Poll young submissions often and old ones rarely: a quarter of their age, bounded."""
    age = (timezone.now() - submission.created_at).total_seconds()
    return min(float(get_setting("POLL_MAX_INTERVAL")),
               max(float(get_setting("POLL_INITIAL_DELAY")), age / 4))


def _expired(submission: Submission) -> bool:
    age = (timezone.now() - submission.created_at).total_seconds()
    return age > float(get_setting("UNCONFIRMED_EXPIRY"))


def refresh(submission_id: Any, *, owner: str | None = None) -> str:
    """Read one delivered submission's opt-in status from its provider and apply it.

    The row is claimed through the outbox (a lease, no lock held), the provider is read outside
    any transaction, and the answer is applied in one short transaction guarded by the lease.
    """
    owner = owner or outbox.new_owner()
    submission = outbox.claim_one(submission_id, owner=owner)
    if submission is None:
        return "missing-or-locked"
    counts = outbox.for_each([submission.pk], lambda pk: refresh_claimed(submission, owner),
                             lambda pk, err: _back_off(submission, owner))
    return next(iter(counts))


def _back_off(submission: Submission, owner: str) -> None:
    """A status read that raised: try again at the next polling interval."""
    outbox.release(submission, owner=owner, next_optin_check_at=timezone.now() + timedelta(
        seconds=next_check_delay(submission)))


def refresh_claimed(submission: Submission, owner: str) -> str:
    """:func:`refresh` for a row ``owner`` holds the lease of; releases it in every case."""
    now = timezone.now()
    release = partial(outbox.release, submission, owner=owner)
    if submission.delivery_status != DeliveryStatus.DELIVERED:
        release()
        return "not-delivered"
    if submission.form.double_opt_in != DoubleOptIn.PROVIDER and \
            submission.optin_status != OptinStatus.CONFIRMED:
        release()
        return "not-tracked"
    if submission.optin_status in (OptinStatus.NOT_REQUIRED, OptinStatus.EXPIRED,
                                   OptinStatus.UNSUBSCRIBED):
        release()
        return "settled"
    account = submission.form.account
    provider = get_provider(account)
    wait = ratelimit.acquire_for(provider)
    if wait > 0:
        release(next_optin_check_at=now + timedelta(seconds=wait))
        return "throttled"
    try:
        status = provider.get_contact_status(submission)
    except (EspFormsError, ProviderConfigurationError) as err:
        outbox.finish(submission, owner=owner, fields={
            "next_optin_check_at": now + timedelta(seconds=next_check_delay(submission)),
            "optin_checked_at": now,
        }, events=[(EventKind.STATUS_CHECKED, f"Status check failed: {err}",
                    {"error": str(err)})])
        return "error"
    with transaction.atomic():
        # Re-read under a short row lock: a webhook or a click may have moved the row while
        # the provider was being read, and the status rules decide on the current state.
        fresh = (Submission.objects.select_for_update(of=("self",))
                 .select_related("form__account").filter(pk=submission.pk, lease_owner=owner)
                 .first())
        if fresh is None:
            return "lease-lost"
        outcome = _apply_read(fresh, status, now)
        Submission.objects.filter(pk=fresh.pk).update(lease_owner="", lease_until=None)
    return outcome


def _apply_read(submission: Submission, status: Any, now: Any) -> str:
    if submission.purged_at is not None:
        return "erased"  # erased while the provider was read: nothing of it is recorded
    if submission.optin_status in (OptinStatus.NOT_REQUIRED, OptinStatus.EXPIRED,
                                   OptinStatus.UNSUBSCRIBED):
        return "settled"
    submission.optin_checked_at = now
    if status.contact_id and not submission.provider_contact_id:
        submission.provider_contact_id = status.contact_id
    changed = apply_status(submission, status.optin_status, source="provider",
                           data=status.raw)
    if not changed and submission.optin_status == OptinStatus.UNCONFIRMED:
        if _expired(submission):
            apply_status(submission, OptinStatus.EXPIRED, source="expiry")
            return "expired"
        submission.next_optin_check_at = now + timedelta(seconds=next_check_delay(submission))
        submission.save(update_fields=["next_optin_check_at", "optin_checked_at",
                                       "provider_contact_id", "updated_at"])
        log_event(submission, EventKind.STATUS_CHECKED, f"Still {status.optin_status}",
                  details=status.raw)
    elif not changed:
        submission.save(update_fields=["optin_checked_at", "updated_at"])
    return status.optin_status if changed else "unchanged"


def poll_due(*, limit: int | None = None) -> dict[str, int]:
    """The polling safety net: check unconfirmed submissions whose next check is due.

    One claim leases the batch; each row is read in isolation (one that raises is backed off
    to its next interval and the rest go on). A throttled account ends the round: the limiter
    is shared with deliveries, and the unread rows are handed back for the next one.
    """
    now = timezone.now()
    owner = outbox.new_owner()
    ids = outbox.claim(
        Submission.objects.filter(
            delivery_status=DeliveryStatus.DELIVERED, optin_status=OptinStatus.UNCONFIRMED,
            form__double_opt_in=DoubleOptIn.PROVIDER, next_optin_check_at__lte=now),
        owner=owner, limit=limit or int(get_setting("POLL_BATCH_SIZE")),
        order_by=("next_optin_check_at",))
    rows = {s.pk: s for s in Submission.objects.select_related("form__account")
            .filter(pk__in=ids)}
    try:
        return outbox.for_each(
            [pk for pk in ids if pk in rows], lambda pk: refresh_claimed(rows[pk], owner),
            lambda pk, err: _back_off(rows[pk], owner), stop=lambda out: out == "throttled")
    finally:
        Submission.objects.filter(pk__in=ids, lease_owner=owner).update(lease_owner="",
                                                                        lease_until=None)


def request_refresh(account: ProviderAccount, email: str, *, reason: str = "webhook",
                    data: dict[str, Any] | None = None) -> int:
    """A hint (webhook, sandbox click) that ``email``'s status changed at ``account``: queue a
    status read for its delivered submissions. The hint itself changes nothing."""
    submissions = list(Submission.objects.filter(
        form__account=account, email__iexact=email.strip(),
        delivery_status=DeliveryStatus.DELIVERED,
    ).exclude(optin_status__in=[OptinStatus.NOT_REQUIRED, OptinStatus.EXPIRED,
                                OptinStatus.UNSUBSCRIBED]))
    now = timezone.now()
    for submission in submissions:
        log_event(submission, EventKind.WEBHOOK, f"Hint from {reason}; checking the provider",
                  details=data or {})
        # If the broker loses the task, polling still looks at it right away.
        Submission.objects.filter(pk=submission.pk).update(next_optin_check_at=now)
        transaction.on_commit(partial(send_task, outbox.task_named(outbox.REFRESH_TASK),
                                      submission.pk))
    return len(submissions)


def refresh_now(queryset: QuerySet[Submission]) -> int:
    """Admin action: read the status of these submissions now."""
    count = 0
    for pk in queryset.filter(delivery_status=DeliveryStatus.DELIVERED).values_list("pk",
                                                                                    flat=True):
        refresh(pk)
        count += 1
    return count


# --- local double opt-in ----------------------------------------------------------------------

def make_token(submission: Submission) -> str:
    return signing.dumps(str(submission.pk), salt=TOKEN_SALT, compress=False)


def read_token(token: str) -> str:
    """The submission id in ``token``; raises ``signing.BadSignature`` (or its subclass
    ``SignatureExpired``) for forged or old links."""
    return signing.loads(token, salt=TOKEN_SALT,
                         max_age=float(get_setting("CONFIRMATION_MAX_AGE")))


def confirmation_url(submission: Submission) -> str:
    return urljoin(site_url() + "/", reverse("esp_forms:confirm", args=[make_token(submission)]))


def send_confirmation(submission_id: Any) -> str:
    with transaction.atomic():
        submission = (_locked(Submission.objects.select_related("form"))
                      .filter(pk=submission_id).first())
        if submission is None:
            return "missing-or-locked"
        return send_confirmation_locked(submission)


def send_confirmation_locked(submission: Submission) -> str:
    if submission.form.double_opt_in != DoubleOptIn.LOCAL:
        return "not-local"
    if submission.optin_status != OptinStatus.UNCONFIRMED or submission.purged_at:
        return "settled"
    now = timezone.now()
    cooldown = timedelta(seconds=float(get_setting("RESEND_COOLDOWN")))
    if submission.confirmation_sent_at and now - submission.confirmation_sent_at < cooldown:
        return "cooldown"
    form = submission.form
    context = {"submission": submission, "form": form,
               "confirm_url": confirmation_url(submission),
               "expires_days": round(float(get_setting("CONFIRMATION_MAX_AGE")) / 86400)}

    def render(name: str) -> str:
        return select_template([f"esp_forms/email/{form.form_type}/{name}",
                                f"esp_forms/email/{name}"]).render(context)

    # In the language the visitor signed up in (else the site's LANGUAGE_CODE), whoever sends
    # it: a worker, or an admin browsing in another language who resends it.
    with translation.override(submission.language or settings.LANGUAGE_CODE):
        message = EmailMultiAlternatives(
            subject=" ".join(render("confirm_subject.txt").split()),
            body=render("confirm_body.txt"),
            from_email=get_setting("FROM_EMAIL") or settings.DEFAULT_FROM_EMAIL,
            to=[submission.email],
        )
        message.attach_alternative(render("confirm_body.html"), "text/html")
    message.send()
    first = submission.confirmation_sent_at is None
    submission.confirmation_sent_at = now
    submission.save(update_fields=["confirmation_sent_at", "updated_at"])
    log_event(submission, EventKind.CONFIRMATION_SENT,
              "Confirmation email sent" if first else "Confirmation email sent again")
    return "sent"


def resend_confirmations(queryset: QuerySet[Submission]) -> int:
    """Admin action: send the confirmation email again (the cooldown still applies)."""
    return sum(send_confirmation(pk) == "sent"
               for pk in queryset.values_list("pk", flat=True))


class ConfirmationError(Exception):
    """A confirmation link that cannot confirm; the message is shown to the person."""


def confirm(token: str, *, ip: str | None) -> Submission:
    """Confirm the submission behind a local double opt-in link and release its delivery."""
    try:
        submission_id = read_token(token)
    except signing.SignatureExpired:
        raise ConfirmationError(
            _("This confirmation link has expired. Please sign up again.")) from None
    except signing.BadSignature:
        raise ConfirmationError(_("This confirmation link is not valid.")) from None
    with transaction.atomic():
        submission = (Submission.objects.select_for_update().select_related("form")
                      .filter(pk=submission_id).first())
        if submission is None or submission.purged_at:
            raise ConfirmationError(_("This confirmation link is not valid any more."))
        if submission.optin_status == OptinStatus.CONFIRMED:
            return submission  # a second click is fine
        if submission.optin_status != OptinStatus.UNCONFIRMED:
            raise ConfirmationError(_("This subscription can no longer be confirmed. "
                                      "Please sign up again."))
        apply_status(submission, OptinStatus.CONFIRMED, source="link", ip=ip)
        if submission.delivery_status == DeliveryStatus.PENDING:
            submission.next_attempt_at = timezone.now()
            submission.save(update_fields=["next_attempt_at", "updated_at"])
            transaction.on_commit(partial(send_task, outbox.task_named(outbox.DELIVER_TASK),
                                          submission.pk))
    return submission


# --- expiry -----------------------------------------------------------------------------------

def expire_unconfirmed() -> int:
    """Unconfirmed submissions older than ``UNCONFIRMED_EXPIRY`` become expired."""
    cutoff = timezone.now() - timedelta(seconds=float(get_setting("UNCONFIRMED_EXPIRY")))
    count = 0
    ids = Submission.objects.filter(optin_status=OptinStatus.UNCONFIRMED,
                                    created_at__lt=cutoff).values_list("pk", flat=True)
    for pk in list(ids):
        with transaction.atomic():
            submission = _locked(Submission.objects.filter(pk=pk)).first()
            if submission and submission.optin_status == OptinStatus.UNCONFIRMED:
                count += apply_status(submission, OptinStatus.EXPIRED, source="expiry")
                if submission.delivery_status == DeliveryStatus.PENDING:
                    Submission.objects.filter(pk=pk).update(next_attempt_at=None)
    return count

