"""Delivery of stored submissions: over real HTTP to the emulator, in-process (no worker).

The same function runs in the Celery task, the sweeper and ``esp_forms_dispatch``; the
service-backed tests in tests/services run it in real worker processes.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from esp_forms import delivery, signals, tasks
from esp_forms.models import DeliveryStatus, DoubleOptIn, EventKind, OptinStatus, Submission
from tests.conftest import ESPUTNIK_KEY, make_submission

pytestmark = pytest.mark.django_db(transaction=True)


def events(submission: Submission) -> list[str]:
    return list(submission.events.values_list("kind", flat=True))


@pytest.mark.parametrize("form_fixture", ["esputnik_form", "unisender_form"])
def test_delivered_with_contact_id(request, emulator, form_fixture):
    form = request.getfixturevalue(form_fixture)
    received = []
    signals.submission_delivered.connect(lambda **kw: received.append(kw["submission"].pk),
                                         weak=False, dispatch_uid="t-delivered")
    try:
        submission = make_submission(form)
        outcome = delivery.deliver(submission.pk)
    finally:
        signals.submission_delivered.disconnect(dispatch_uid="t-delivered")
    submission.refresh_from_db()
    assert outcome.status == "delivered"
    assert submission.delivery_status == DeliveryStatus.DELIVERED
    assert submission.provider_contact_id
    assert submission.attempts == 1
    assert submission.next_attempt_at is None
    assert submission.next_optin_check_at is not None  # polling starts
    assert received == [submission.pk]
    assert events(submission) == [EventKind.ATTEMPT, EventKind.DELIVERED]
    # The event log keeps the exchange, without the key.
    logged = str(list(submission.events.values_list("data", flat=True)))
    assert "olena@example.com" in logged and ESPUTNIK_KEY not in logged
    assert "uni-test-key" not in logged
    assert len(emulator.requests(form.account.provider)) == 1


def test_second_delivery_makes_no_second_call(esputnik_form, emulator):
    submission = make_submission(esputnik_form)
    assert delivery.deliver(submission.pk).status == "delivered"
    assert delivery.deliver(submission.pk).status == "already-delivered"
    assert delivery.deliver(submission.pk, force=True).status == "already-delivered"
    assert len(emulator.requests("esputnik")) == 1


def test_transient_error_is_retried_then_delivered(esputnik_form, emulator):
    emulator.fault("esputnik", status=503, body="maintenance", times=1)
    submission = make_submission(esputnik_form)
    outcome = delivery.deliver(submission.pk)
    submission.refresh_from_db()
    assert outcome.status == "retry" and outcome.retry_in >= 30
    assert submission.delivery_status == DeliveryStatus.PENDING
    assert submission.attempts == 1
    assert submission.next_attempt_at > timezone.now() + timedelta(seconds=25)
    assert "HTTP 503" in submission.last_error
    # Not due yet: a duplicate message does nothing.
    assert delivery.deliver(submission.pk).status == "not-due"
    assert len(emulator.requests("esputnik")) == 1
    Submission.objects.filter(pk=submission.pk).update(next_attempt_at=timezone.now())
    assert delivery.deliver(submission.pk).status == "delivered"
    submission.refresh_from_db()
    assert submission.attempts == 2 and submission.last_error == ""


def test_timeout_is_transient(esputnik_form, emulator):
    emulator.fault("esputnik", delay=1.0)
    with override_settings(ESP_FORMS={"READ_TIMEOUT": 0.2}):
        outcome = delivery.deliver(make_submission(esputnik_form).pk)
    assert outcome.status == "retry"


def test_permanent_error_fails_with_the_providers_message(unisender_form, emulator):
    emulator.fault("unisender", unisender_code="invalid_arg",
                   unisender_message="Invalid value of field email")
    failures = []
    signals.submission_failed.connect(lambda **kw: failures.append(kw["error"]), weak=False,
                                      dispatch_uid="t-failed")
    try:
        submission = make_submission(unisender_form)
        assert delivery.deliver(submission.pk).status == "failed"
    finally:
        signals.submission_failed.disconnect(dispatch_uid="t-failed")
    submission.refresh_from_db()
    assert submission.delivery_status == DeliveryStatus.FAILED
    assert "Invalid value of field email" in submission.last_error
    assert failures == [submission.last_error]
    assert EventKind.FAILED in events(submission)


def test_exhausted_schedule_fails_clearly(esputnik_form, emulator):
    emulator.fault("esputnik", status=500, times=5)
    submission = make_submission(esputnik_form)
    with override_settings(ESP_FORMS={"RETRY_SCHEDULE": [1, 1]}):
        for _ in range(3):
            delivery.deliver(submission.pk, force=True)
    submission.refresh_from_db()
    assert submission.delivery_status == DeliveryStatus.FAILED
    assert submission.last_error.startswith("Gave up after 3 attempts")
    assert "HTTP 500" in submission.last_error


def test_configuration_error_fails_and_alerts_once_per_hour(esputnik_form, emulator):
    account = esputnik_form.account
    account.api_key = "wrong-key-wrong-key"
    account.save()
    first, second = make_submission(esputnik_form), make_submission(esputnik_form, "b@example.com")
    with override_settings(ESP_FORMS={"ALERT_EMAILS": ["ops@example.com"]}):
        assert delivery.deliver(first.pk).status == "failed"
        assert delivery.deliver(second.pk).status == "failed"
    account.refresh_from_db()
    assert account.config_error
    assert "wrong-key" not in account.config_error
    assert [m.to for m in mail.outbox] == [["ops@example.com"]]
    assert "eSputnik" in mail.outbox[0].body
    # Fixing the key and retrying delivers and clears the warning.
    account.api_key = ESPUTNIK_KEY
    account.save()
    assert delivery.retry_submissions(Submission.objects.filter(pk=first.pk)) == 1
    assert delivery.deliver(first.pk).status == "delivered"
    account.refresh_from_db()
    assert account.config_error == ""


def test_rate_limit_reschedules_without_an_attempt(esputnik_form, emulator):
    esputnik_form.account.rate_limit_per_minute = 1
    esputnik_form.account.save()
    a, b = make_submission(esputnik_form), make_submission(esputnik_form, "b@example.com")
    assert delivery.deliver(a.pk).status == "delivered"
    outcome = delivery.deliver(b.pk)
    b.refresh_from_db()
    assert outcome.status == "throttled" and 55 < outcome.retry_in <= 61
    assert b.attempts == 0 and b.delivery_status == DeliveryStatus.PENDING
    assert len(emulator.requests("esputnik")) == 1


def test_local_mode_holds_until_confirmed(esputnik_form, emulator):
    esputnik_form.double_opt_in = DoubleOptIn.LOCAL
    esputnik_form.save()
    submission = make_submission(esputnik_form)
    # The sweeper finds a row whose confirmation email was never sent (broker down): sends it.
    assert delivery.deliver(submission.pk).status == "awaiting-confirmation"
    assert len(mail.outbox) == 1
    assert emulator.requests("esputnik") == []
    submission.refresh_from_db()
    assert submission.next_attempt_at is None and submission.confirmation_sent_at


def test_sweeper_delivers_what_the_broker_lost(esputnik_form, emulator):
    old = make_submission(esputnik_form, next_attempt_at=timezone.now() - timedelta(minutes=5))
    fresh = make_submission(esputnik_form, "fresh@example.com")  # its task is still in flight
    counts = delivery.dispatch_due()
    assert counts == {"delivered": 1}
    assert Submission.objects.get(pk=old.pk).delivery_status == DeliveryStatus.DELIVERED
    assert Submission.objects.get(pk=fresh.pk).delivery_status == DeliveryStatus.PENDING


def test_dispatch_command(esputnik_form, emulator):
    make_submission(esputnik_form)
    make_submission(esputnik_form, "b@example.com")
    out = StringIO()
    call_command("esp_forms_dispatch", stdout=out)
    assert "2 submission(s) processed (delivered: 2)" in out.getvalue()


def test_task_reschedules_short_waits_with_a_countdown(esputnik_form, emulator, monkeypatch):
    sent = []
    monkeypatch.setattr(tasks.deliver_submission, "apply_async",
                        lambda args, **kw: sent.append((args, kw)))
    emulator.fault("esputnik", status=429)
    submission = make_submission(esputnik_form)
    result = tasks.deliver_submission.run(str(submission.pk))
    assert result.startswith("retry")
    assert sent and sent[0][0] == (str(submission.pk),)
    assert 30 <= sent[0][1]["countdown"] <= 600
    # A wait beyond MAX_COUNTDOWN is left to the sweeper (Redis visibility timeout).
    sent.clear()
    Submission.objects.filter(pk=submission.pk).update(attempts=4,
                                                       next_attempt_at=timezone.now())
    emulator.fault("esputnik", status=429)
    tasks.deliver_submission.run(str(submission.pk))
    assert sent == []


def test_broker_down_at_hand_off_keeps_the_row(esputnik_form, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.deliver_submission, "apply_async", broken)
    submission = make_submission(esputnik_form)
    assert delivery.send_task(tasks.deliver_submission, submission.pk) is False
    assert Submission.objects.get(pk=submission.pk).delivery_status == DeliveryStatus.PENDING


def test_unsubscribed_is_not_delivered(esputnik_form, emulator):
    submission = make_submission(esputnik_form, optin_status=OptinStatus.EXPIRED)
    assert delivery.deliver(submission.pk).status == "not-deliverable"
    assert emulator.requests("esputnik") == []


def test_inactive_account_holds(esputnik_form, emulator):
    esputnik_form.account.is_active = False
    esputnik_form.account.save()
    submission = make_submission(esputnik_form)
    assert delivery.deliver(submission.pk).status == "account-inactive"
    submission.refresh_from_db()
    assert submission.delivery_status == DeliveryStatus.PENDING
    assert "inactive" in submission.last_error


def test_sweeper_stops_an_account_at_its_rate_limit(esputnik_form, emulator):
    esputnik_form.account.rate_limit_per_minute = 1
    esputnik_form.account.save()
    for i in range(3):
        make_submission(esputnik_form, f"s{i}@example.com")
    assert delivery.dispatch_due(grace=0) == {"delivered": 1, "throttled": 2}
    assert len(emulator.requests("esputnik")) == 1
