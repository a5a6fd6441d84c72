"""Retention: erase the personal data of old submissions, keep the statistics."""

from __future__ import annotations

import logging
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


def purge(*, days: int | None = None, dry_run: bool = False) -> int:
    """Erase email, phone, data, IPs and user agent of settled submissions older than
    ``days`` (default ``RETENTION_DAYS``), and the provider exchanges in their event log.
    Pending submissions are kept whole: they still have to be delivered.

    Rows are claimed through the outbox in batches (a row a worker is reading right now is
    skipped until the next run); a batch that raises is retried row by row, and a row that
    still raises is logged and left for the next run while the others are erased.
    """
    days = get_setting("RETENTION_DAYS") if days is None else days
    if days is None:
        return 0
    cutoff = timezone.now() - timedelta(days=float(days))
    qs = Submission.objects.filter(created_at__lt=cutoff, purged_at__isnull=True).exclude(
        delivery_status=DeliveryStatus.PENDING)
    if dry_run:
        return qs.count()
    owner = outbox.new_owner()
    count = 0
    failed: list[Any] = []
    while True:
        ids = outbox.claim(qs.exclude(pk__in=failed), owner=owner, limit=PURGE_BATCH_SIZE,
                           order_by=("created_at",))
        if not ids:
            return count
        try:
            count += erase(ids, days=days, owner=owner)
        except outbox.INFRASTRUCTURE_ERRORS:
            raise
        except Exception:
            logger.warning("Purging a batch of %s raised; erasing its rows one by one.",
                           len(ids), exc_info=True)
            counts = outbox.for_each(
                ids, lambda pk: "erased" if erase([pk], days=days, owner=owner) else "skipped",
                lambda pk, err: failed.append(pk))
            count += counts.get("erased", 0)
        # Rows that raised keep their lease (until it runs out) so the next batch skips them.
        Submission.objects.filter(pk__in=ids, lease_owner=owner).exclude(
            pk__in=failed).update(lease_owner="", lease_until=None)


def erase(ids: list[Any], *, days: Any, owner: str) -> int:
    """Erase the claimed rows ``ids`` in one transaction; returns how many were erased."""
    now = timezone.now()
    with transaction.atomic():
        count = Submission.objects.filter(pk__in=ids, lease_owner=owner).update(
            email="", phone="", data={}, ip=None, user_agent="", confirm_ip=None,
            purged_at=now, lease_owner="", lease_until=None)
        SubmissionEvent.objects.filter(submission_id__in=ids).update(data={})
        SubmissionEvent.objects.bulk_create(
            SubmissionEvent(submission_id=pk, kind=EventKind.PURGED,
                            message=f"Personal data erased after {days} days")
            for pk in ids)
    return count
