"""Retention: erase the personal data of old submissions, keep the statistics."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from esp_forms.conf import get_setting
from esp_forms.models import DeliveryStatus, EventKind, Submission, SubmissionEvent


def purge(*, days: int | None = None, dry_run: bool = False) -> int:
    """Erase email, phone, data, IPs and user agent of settled submissions older than
    ``days`` (default ``RETENTION_DAYS``), and the provider exchanges in their event log.
    Pending submissions are kept whole: they still have to be delivered (unless held by the
    abuse gate and never released)."""
    days = get_setting("RETENTION_DAYS") if days is None else days
    if days is None:
        return 0
    cutoff = timezone.now() - timedelta(days=float(days))
    # A held signup (esp_forms.abuse) nobody released in all that time is erased too.
    qs = Submission.objects.filter(created_at__lt=cutoff, purged_at__isnull=True).exclude(
        delivery_status=DeliveryStatus.PENDING, held_at__isnull=True)
    if dry_run:
        return qs.count()
    with transaction.atomic():
        ids = list(qs.values_list("pk", flat=True))
        return erase_personal_data(ids, reason=f"Personal data erased after {days} days")


def erase_personal_data(ids: list[Any], *, reason: str) -> int:
    """Erase email, phone, data, IPs and user agent of these submissions and the provider
    exchanges in their event log, keeping the rows (so every count stays right); log
    ``reason`` as a ``purged`` event on each. Also used by erasure on request (consent.py)."""
    now = timezone.now()
    with transaction.atomic():
        SubmissionEvent.objects.filter(submission_id__in=ids).update(data={})
        count = Submission.objects.filter(pk__in=ids).update(
            email="", phone="", data={}, ip=None, user_agent="", confirm_ip=None,
            # Nothing is left to poll or deliver for an erased row.
            next_optin_check_at=None, purged_at=now)
        SubmissionEvent.objects.bulk_create(
            SubmissionEvent(submission_id=pk, kind=EventKind.PURGED, message=reason)
            for pk in ids)
    return count
