"""On PostgreSQL: an eSputnik unsubscribe that finds its submission row-locked waits for the
lock, or answers 503 so eSputnik sends it again; it is never answered 200 and dropped (eSputnik
cannot be asked later who unsubscribed).

Workers hold a lease, not a lock, during provider calls (an unsubscribe during one is applied
at once and kept: tests/test_leases.py); row locks are still taken by the short transactions
that apply a status read, a confirmation click or an expiry, which is what is simulated here."""

from __future__ import annotations

import base64
import json
import threading
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.urls import reverse
from django.utils import timezone

from esp_forms import delivery
from esp_forms.models import OptinStatus, Submission
from tests.conftest import make_submission

pytestmark = pytest.mark.services


def unsubscribe_body(email: str) -> str:
    return json.dumps([{"contactId": 1, "email": email, "activityStatus": "UNSUBSCRIBED",
                        "messageId": 1, "messageInstanceId": 11, "messageTag": "news",
                        "activityDateTime": (timezone.now() + timedelta(seconds=2)).isoformat()}])


def hold_lock(pk, release: threading.Event, locked: threading.Event) -> threading.Thread:
    """Another connection (e.g. a worker applying a status read) holds the row lock until
    ``release``."""
    def run() -> None:
        try:
            with transaction.atomic(using="default"):
                Submission.objects.select_for_update().get(pk=pk)
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert locked.wait(5)
    return thread


@pytest.fixture
def setup(client, esputnik_form, settings):
    settings.ESP_FORMS = {**settings.ESP_FORMS, "WEBHOOK_LOCK_TIMEOUT": 0.5}
    submission = make_submission(esputnik_form)
    assert delivery.deliver(submission.pk).status == "delivered"
    account = esputnik_form.account
    auth = "Basic " + base64.b64encode(f"esp_forms:{account.webhook_secret}".encode()).decode()

    def post():
        return client.post(reverse("esp_forms:webhook", args=["esputnik", account.pk]),
                           unsubscribe_body("olena@example.com"),
                           content_type="application/json", HTTP_AUTHORIZATION=auth)

    return submission, post


def test_a_locked_row_past_the_timeout_is_answered_503_then_applied_on_retry(setup):
    submission, post = setup
    release, locked = threading.Event(), threading.Event()
    thread = hold_lock(submission.pk, release, locked)
    try:
        response = post()
    finally:
        release.set()
        thread.join(5)
    assert response.status_code == 503  # eSputnik sends it again
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.UNCONFIRMED
    assert post().status_code == 200  # the retry, once the worker is done
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.UNSUBSCRIBED


def test_a_briefly_locked_row_is_waited_for(setup):
    submission, post = setup
    release, locked = threading.Event(), threading.Event()
    thread = hold_lock(submission.pk, release, locked)
    threading.Timer(0.2, release.set).start()  # the worker finishes within the timeout
    response = post()
    thread.join(5)
    assert response.status_code == 200
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.UNSUBSCRIBED
