"""Consent records of one person: export everything held about an email address, or erase it.

The export is a versioned JSON document (``FORMAT``/``VERSION``, described in
docs/consent.md). The erase empties the personal data of that person's submissions with the
retention purge's own function, so the rows, their statuses and therefore every count stay;
it is logged without the address, under a keyed hash of it (:func:`email_reference`).

Both match the address case-insensitively: the app stores the domain lower-cased but keeps the
local part as typed, and a person asking about ``Olena@Example.com`` means every spelling.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.crypto import salted_hmac

from esp_forms.models import DeliveryStatus, SandboxContact, Submission
from esp_forms.retention import erase_personal_data

logger = logging.getLogger("esp_forms.consent")

FORMAT = "esp_forms.consent_export"
VERSION = 1
# The Submission fields an export lists, in this order (besides id, form and events).
SUBMISSION_FIELDS = (
    "email", "phone", "data", "consent_text", "ip", "user_agent", "language", "created_at",
    "delivery_status", "optin_status", "attempts", "last_attempt_at", "delivered_at",
    "last_error", "provider_contact_id", "confirmation_sent_at", "confirmed_at", "confirm_ip",
    "unsubscribed_at", "held_at", "held_reason", "purged_at",
)


def normalise(email: str) -> str:
    return (email or "").strip().lower()


def email_reference(email: str) -> str:
    """A stable reference to an address that does not reveal it (keyed by SECRET_KEY): what
    the erase log shows, so an operator can later tell which request an entry answered."""
    return salted_hmac("esp_forms.consent", normalise(email)).hexdigest()[:16]


def submissions_of(email: str) -> QuerySet[Submission]:
    address = normalise(email)
    if not address:
        return Submission.objects.none()
    return Submission.objects.filter(email__iexact=address)


def _sandbox_contacts_of(email: str) -> QuerySet[SandboxContact]:
    address = normalise(email)
    if not address:
        return SandboxContact.objects.none()
    return SandboxContact.objects.filter(email__iexact=address)


# --- export -----------------------------------------------------------------------------------

def _submission_record(submission: Submission) -> dict[str, Any]:
    form = submission.form
    record: dict[str, Any] = {
        "id": str(submission.pk),
        "form": {"form_type": form.form_type, "title": form.title},
        "provider": form.account.provider,
    }
    record.update({name: getattr(submission, name) for name in SUBMISSION_FIELDS})
    # Provider exchanges were stored with keys and secrets already redacted (providers/base.py).
    record["events"] = [
        {"created_at": event.created_at, "kind": event.kind, "message": event.message,
         "data": event.data}
        for event in submission.events.all()
    ]
    return record


def person_record(email: str) -> dict[str, Any]:
    """Everything held about one address."""
    submissions = (submissions_of(email).select_related("form__account")
                   .prefetch_related("events").order_by("created_at"))
    contacts = _sandbox_contacts_of(email).select_related("account").order_by("created_at")
    return {
        "email": normalise(email),
        "submissions": [_submission_record(s) for s in submissions],
        "sandbox_contacts": [
            {"account": c.account.name, "email": c.email, "phone": c.phone, "status": c.status,
             "lists": c.lists, "fields": c.fields, "created_at": c.created_at,
             "updated_at": c.updated_at}
            for c in contacts
        ],
    }


def export(emails: list[str]) -> dict[str, Any]:
    """The export document for these addresses (each listed once, in the order given)."""
    seen: list[str] = []
    for email in emails:
        if normalise(email) and normalise(email) not in seen:
            seen.append(normalise(email))
    return {
        "format": FORMAT,
        "version": VERSION,
        "generated_at": timezone.now(),
        "people": [person_record(email) for email in seen],
    }


def export_json(emails: list[str]) -> str:
    return json.dumps(export(emails), cls=DjangoJSONEncoder, ensure_ascii=False, indent=2)


# --- erase ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Erasure:
    reference: str
    submissions: int
    sandbox_contacts: int


def erase(email: str, *, by: str = "") -> Erasure:
    """Erase the personal data held about ``email``; ``by`` names who asked (for the log).

    Submissions keep their rows and statuses; one still waiting for delivery is failed first
    (there is nothing left to deliver). Sandbox contacts stand in for a provider's database
    and are deleted. The address is also cut out of error texts and event messages, where a
    provider may have quoted it.
    """
    reference = email_reference(email)
    with transaction.atomic():
        submissions = list(submissions_of(email).select_for_update())
        ids = [s.pk for s in submissions]
        pending = [s.pk for s in submissions if s.delivery_status == DeliveryStatus.PENDING]
        Submission.objects.filter(pk__in=pending).update(
            delivery_status=DeliveryStatus.FAILED, next_attempt_at=None,
            last_error="Personal data erased on request before delivery.")
        # The error texts and event messages lose what they quote of the person there.
        count = erase_personal_data(ids, reason=f"Personal data erased on request "
                                                f"(reference {reference})")
        contacts, _by_model = _sandbox_contacts_of(email).delete()
    logger.info("Consent erase %s by %s: %d submission(s), %d sandbox contact(s)",
                reference, by or "unknown", count, contacts)
    return Erasure(reference=reference, submissions=count, sandbox_contacts=contacts)
