"""Retention: erase the personal data of old submissions, keep the statistics."""

from __future__ import annotations

import re
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from esp_forms.conf import get_setting
from esp_forms.models import DeliveryStatus, EventKind, Submission, SubmissionEvent

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
    address and number). Pending submissions are kept whole: they still have to be
    delivered."""
    days = get_setting("RETENTION_DAYS") if days is None else days
    if days is None:
        return 0
    cutoff = timezone.now() - timedelta(days=float(days))
    qs = Submission.objects.filter(created_at__lt=cutoff, purged_at__isnull=True).exclude(
        delivery_status=DeliveryStatus.PENDING)
    if dry_run:
        return qs.count()
    now = timezone.now()
    with transaction.atomic():
        rows = list(qs.values_list("pk", "email", "phone", "last_error"))
        ids = [pk for pk, *_ in rows]
        people = {pk: (email, phone) for pk, email, phone, _error in rows}
        events = list(SubmissionEvent.objects.filter(submission_id__in=ids).exclude(message="")
                      .only("pk", "submission_id", "message"))
        for event in events:
            email, phone = people[event.submission_id]
            event.message = erase_personal_text(event.message, email=email, phone=phone)
        SubmissionEvent.objects.bulk_update(events, ["message"], batch_size=500)
        SubmissionEvent.objects.filter(submission_id__in=ids).update(data={})
        errors = [Submission(pk=pk, last_error=erase_personal_text(error, email=email,
                                                                   phone=phone))
                  for pk, email, phone, error in rows if error]
        Submission.objects.bulk_update(errors, ["last_error"], batch_size=500)
        count = Submission.objects.filter(pk__in=ids).update(
            email="", phone="", data={}, ip=None, user_agent="", confirm_ip=None,
            purged_at=now)
        SubmissionEvent.objects.bulk_create(
            SubmissionEvent(submission_id=pk, kind=EventKind.PURGED,
                            message=f"Personal data erased after {days} days")
            for pk in ids)
    return count
