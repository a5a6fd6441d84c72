"""Personal data and credentials in the provider exchanges the app keeps: a Basic-auth
credential echoed back by a provider is redacted before it is stored, and the retention purge
also erases the email and phone that error texts and event messages quote."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from esp_forms import delivery, retention
from esp_forms.models import DeliveryStatus, EventKind, Submission, SubmissionEvent
from esp_forms.providers.esputnik import BASIC_AUTH_USER
from tests.conftest import ESPUTNIK_KEY, make_submission

pytestmark = pytest.mark.django_db

CREDENTIAL = base64.b64encode(f"{BASIC_AUTH_USER}:{ESPUTNIK_KEY}".encode()).decode()


def stored_text(submission: Submission) -> str:
    events = SubmissionEvent.objects.filter(submission=submission)
    return submission.last_error + json.dumps(list(events.values("message", "data")),
                                              ensure_ascii=False)


@pytest.mark.parametrize("echo", [
    f"Authorization: Basic {CREDENTIAL}",
    f'{{"message": "bad request", "headers": {{"authorization": "Basic {CREDENTIAL}"}}}}',
    f"token {CREDENTIAL} rejected",
    f"basic%20{CREDENTIAL.replace('=', '%3D')}",
])
def test_echoed_basic_auth_credential_is_redacted_before_storing(esputnik_form, emulator, echo):
    emulator.fault("esputnik", status=400, body=echo, times=3)
    submission = make_submission(esputnik_form)
    delivery.deliver(submission.pk)
    submission.refresh_from_db()
    assert submission.delivery_status == DeliveryStatus.FAILED
    text = stored_text(submission)
    assert "HTTP 400" in submission.last_error
    assert CREDENTIAL not in text and CREDENTIAL.rstrip("=") not in text
    assert ESPUTNIK_KEY not in text
    assert "[redacted]" in text


def old_failed(form, email: str, phone: str, error: str) -> Submission:
    submission = make_submission(
        form, email, phone=phone, created_at=timezone.now() - timedelta(days=400),
        delivery_status=DeliveryStatus.FAILED, last_error=error)
    submission.events.create(kind=EventKind.FAILED, message=error,
                             data={"response": {"body": {"email": email}}})
    return submission


def test_purge_erases_personal_data_quoted_in_errors_and_event_messages(newsletter):
    error = ('Rejected (HTTP 400) response: {"errors": [{"email": "Olena.K+news@Example.com", '
             '"phone": "+38 (050) 123-45-67", "msg": "contact Olena.K+news@example.com '
             'exists"}]}')
    submission = old_failed(newsletter, "olena.k+news@example.com", "+380501234567", error)
    other = old_failed(newsletter, "ivan@example.com", "+380671112233",
                       "Rejected: 380671112233 is blocked for ivan@example.com")
    assert retention.purge() == 2
    for row in (submission, other):
        row.refresh_from_db()
        text = stored_text(row).lower()
        for fragment in ("olena", "example.com", "123-45-67", "380501234567", "ivan",
                         "380671112233", "671112233"):
            assert fragment not in text, (fragment, text)
        # What is not personal stays, so the admin still sees why it failed.
        assert "http 400" in row.last_error.lower() or "blocked" in row.last_error.lower()
        assert row.events.filter(kind=EventKind.PURGED).exists()
