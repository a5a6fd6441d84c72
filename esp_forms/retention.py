"""Retention: erase the personal data of old submissions, keep the statistics."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from esp_forms import outbox
from esp_forms.conf import get_setting
from esp_forms.models import DeliveryStatus, EventKind, Submission, SubmissionEvent

logger = logging.getLogger("esp_forms.retention")

# Rows erased per claim and transaction: short transactions, bounded memory.
PURGE_BATCH_SIZE = 500

ERASED = "[erased]"
# What provider answers quote about a person: addresses in any case or form, and phone numbers
# in any notation (seven digits or more, with the usual separators).
_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"\+?\d(?:[\s().-]{0,3}\d){6,}")


def erase_personal_text(text: str, *, email: str = "", phone: str = "") -> str:
    """``text`` (an error or event message) without the email addresses, phone numbers and the
    given person's own address, local part and number, whatever their case."""
    if not text:
        return text
    text = _EMAIL.sub(ERASED, text)
    text = _PHONE.sub(ERASED, text)
    for value in (email, email.rpartition("@")[0], phone, phone.lstrip("+")):
        if len(value) >= 3:
            text = re.sub(re.escape(value), ERASED, text, flags=re.IGNORECASE)
    return text


def purge(*, days: int | None = None, dry_run: bool = False) -> int:
    """Erase email, phone, data, IPs and user agent of settled submissions older than
    ``days`` (default ``RETENTION_DAYS``), the provider exchanges in their event log, and
    what their error texts and event messages quote of them (provider answers repeat the
    address and number). Pending submissions are kept whole: they still have to be delivered
    (unless held by the abuse gate and never released).

    Rows are claimed through the outbox in batches (a row a worker is reading right now is
    skipped until the next run); a batch that raises is retried row by row, and a row that
    still raises is logged and left for the next run while the others are erased.
    """
    days = get_setting("RETENTION_DAYS") if days is None else days
    if days is None:
        return 0
    cutoff = timezone.now() - timedelta(days=float(days))
    # A held signup (esp_forms.abuse) nobody released in all that time is erased too.
    qs = Submission.objects.filter(created_at__lt=cutoff, purged_at__isnull=True).exclude(
        delivery_status=DeliveryStatus.PENDING, held_at__isnull=True)
    if dry_run:
        return qs.count()
    reason = f"Personal data erased after {days} days"
    owner = outbox.new_owner()
    count = 0
    failed: list[Any] = []
    while True:
        ids = outbox.claim(qs.exclude(pk__in=failed), owner=owner, limit=PURGE_BATCH_SIZE,
                           order_by=("created_at",))
        if not ids:
            return count
        try:
            count += erase_personal_data(ids, reason=reason, owner=owner)
        except outbox.INFRASTRUCTURE_ERRORS:
            raise
        except Exception:
            logger.warning("Purging a batch of %s raised; erasing its rows one by one.",
                           len(ids), exc_info=True)
            counts = outbox.for_each(
                ids, lambda pk: ("erased" if erase_personal_data([pk], reason=reason,
                                                                 owner=owner) else "skipped"),
                lambda pk, err: failed.append(pk))
            count += counts.get("erased", 0)
        # Rows that raised keep their lease (until it runs out) so the next batch skips them.
        Submission.objects.filter(pk__in=ids, lease_owner=owner).exclude(
            pk__in=failed).update(lease_owner="", lease_until=None)


def erase_personal_data(ids: list[Any], *, reason: str, owner: str | None = None) -> int:
    """Erase email, phone, data, IPs and user agent of these submissions and the provider
    exchanges in their event log, keeping the rows (so every count stays right); log
    ``reason`` as a ``purged`` event on each. ``owner``: only rows under that outbox lease
    (the purge), which is released. Also used by erasure on request (consent.py)."""
    now = timezone.now()
    with transaction.atomic():
        rows = Submission.objects.filter(pk__in=ids)
        if owner is not None:
            rows = rows.filter(lease_owner=owner)
        found = list(rows.values_list("pk", "email", "phone", "last_error"))
        ids = [pk for pk, *_ in found]
        people = {pk: (email, phone) for pk, email, phone, _error in found}
        events = list(SubmissionEvent.objects.filter(submission_id__in=ids).exclude(message="")
                      .only("pk", "submission_id", "message"))
        for event in events:
            email, phone = people[event.submission_id]
            event.message = erase_personal_text(event.message, email=email, phone=phone)
        SubmissionEvent.objects.bulk_update(events, ["message"], batch_size=500)
        errors = [Submission(pk=pk, last_error=erase_personal_text(error, email=email,
                                                                   phone=phone))
                  for pk, email, phone, error in found if error]
        Submission.objects.bulk_update(errors, ["last_error"], batch_size=500)
        count = Submission.objects.filter(pk__in=ids).update(
            email="", phone="", data={}, ip=None, user_agent="", confirm_ip=None,
            # Nothing is left to poll or deliver for an erased row.
            next_optin_check_at=None, purged_at=now)
        if owner is not None:
            Submission.objects.filter(pk__in=ids, lease_owner=owner).update(
                lease_owner="", lease_until=None)
        # An erasure on request leaves another worker's lease alone: that worker's finish sees
        # the row erased and records nothing (outbox.finish), then the lease is given back.
        SubmissionEvent.objects.filter(submission_id__in=ids).update(data={})
        SubmissionEvent.objects.bulk_create(
            SubmissionEvent(submission_id=pk, kind=EventKind.PURGED, message=reason)
            for pk in ids)
    return count
