"""End to end with PostgreSQL, Redis and real ``celery -A project worker`` processes.

Submissions are stored the way the views store them (a committed row, then the on_commit
hand-off to the Redis broker); workers deliver them to the emulator over HTTP.
"""

from __future__ import annotations

import time

import pytest
from django.db import transaction
from django.utils import timezone

from esp_forms import delivery, optin, tasks
from esp_forms.models import DeliveryStatus, DoubleOptIn, OptinStatus, Submission
from tests.conftest import ESPUTNIK_KEY, UNISENDER_KEY, make_submission
from tests.services.conftest import wait_for

pytestmark = pytest.mark.services


def store(form, email: str) -> Submission:
    """What submissions.store_submission does: commit the row, hand off after commit."""
    with transaction.atomic():
        submission = make_submission(form, email)
        delivery.submission_stored(submission, created=True)
    return submission


def statuses(ids) -> dict[str, int]:
    out: dict[str, int] = {}
    for status in Submission.objects.filter(pk__in=ids).values_list("delivery_status", flat=True):
        out[status] = out.get(status, 0) + 1
    return out


def subscribe_calls(emulator, provider="esputnik"):
    path = "/api/v1/contact/subscribe" if provider == "esputnik" else "/en/api/subscribe"
    return [r for r in emulator.requests(provider) if r.path == path]


def test_batch_is_delivered_once_even_with_duplicate_tasks_and_racing_workers(
        esputnik_form, emulator, start_worker):
    start_worker("w1", concurrency=2)
    start_worker("w2", concurrency=2)
    ids = [store(esputnik_form, f"user{i}@example.com").pk for i in range(30)]
    for pk in ids:  # every task sent a second time: a duplicate message per submission
        tasks.deliver_submission.delay(str(pk))
    wait_for(lambda: statuses(ids) == {"delivered": 30}, 60, "30 deliveries")
    time.sleep(1.0)  # let any straggling duplicate run
    calls = subscribe_calls(emulator)
    assert len(calls) == 30
    assert sorted(c.json["contact"]["channels"][0]["value"] for c in calls) == sorted(
        f"user{i}@example.com" for i in range(30))
    assert set(Submission.objects.filter(pk__in=ids).values_list("attempts", flat=True)) == {1}


def test_broker_down_at_submit_then_the_sweeper_delivers(esputnik_form, emulator, start_worker,
                                                         monkeypatch):
    def broker_down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(tasks.deliver_submission, "apply_async", broker_down)
    submission = store(esputnik_form, "lost@example.com")  # the visitor still got success
    monkeypatch.undo()
    assert Submission.objects.get(pk=submission.pk).delivery_status == DeliveryStatus.PENDING
    start_worker()
    tasks.sweep_outbox.delay()  # what beat sends every 30 s
    wait_for(lambda: statuses([submission.pk]) == {"delivered": 1}, 30, "the sweeper")
    assert len(subscribe_calls(emulator)) == 1


def test_worker_sigkilled_mid_call_then_another_takes_the_row_after_its_lease(
        esputnik_form, emulator, start_worker):
    emulator.set_latency(3.0)
    worker = start_worker("doomed")
    submission = store(esputnik_form, "crash@example.com")
    wait_for(lambda: len(subscribe_calls(emulator)) == 1, 20, "the provider call to start")
    worker.kill()  # mid-call, like an OOM kill: no chance to record anything
    emulator.set_latency(0.0)
    row = Submission.objects.get(pk=submission.pk)
    # The attempt was committed before the call, and the dead worker's lease still holds.
    assert row.delivery_status == DeliveryStatus.PENDING and row.attempts == 1
    assert row.attempt_started_at is not None and row.lease_until > timezone.now()
    start_worker("rescuer")
    tasks.sweep_outbox.delay()
    time.sleep(2.0)
    row.refresh_from_db()
    assert row.delivery_status == DeliveryStatus.PENDING  # nobody touches a leased row
    wait_for(lambda: timezone.now() > Submission.objects.get(pk=submission.pk).lease_until,
             15, "the lease to run out")
    tasks.sweep_outbox.delay()
    wait_for(lambda: statuses([submission.pk]) == {"delivered": 1}, 30, "recovery")
    row.refresh_from_db()
    # Delivered once: the rescuer read the provider (contact search), found the contact the
    # first call created and sent nothing again.
    assert len(subscribe_calls(emulator)) == 1
    searches = [r for r in emulator.requests("esputnik") if r.path == "/api/v1/contacts"]
    assert len(searches) >= 1
    assert row.provider_contact_id and row.attempts == 1 and row.attempt_started_at is None
    assert row.events.filter(message__contains="outcome was unknown").exists()


def test_transient_errors_retried_then_delivered_and_permanent_failed(
        unisender_form, emulator, start_worker):
    start_worker()
    emulator.fault("unisender", unisender_code="retry_later", times=2,
                   path_contains="subscribe")
    retried = store(unisender_form, "retry@example.com")
    wait_for(lambda: statuses([retried.pk]) == {"delivered": 1}, 40, "retries")
    retried.refresh_from_db()
    assert retried.attempts == 3 and retried.last_error == ""

    emulator.fault("unisender", unisender_code="invalid_arg",
                   unisender_message="Invalid email address", path_contains="subscribe")
    refused = store(unisender_form, "refused@example.com")
    wait_for(lambda: statuses([refused.pk]) == {"failed": 1}, 30, "the failure")
    refused.refresh_from_db()
    assert "Invalid email address" in refused.last_error


def max_in_window(times: list[float], window: float) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_rate_limit_holds_across_two_worker_processes(esputnik_form, emulator, start_worker):
    limit = 12
    account = esputnik_form.account
    account.rate_limit_per_minute = limit
    account.save()
    start_worker("w1", concurrency=2)
    start_worker("w2", concurrency=2)
    ids = [store(esputnik_form, f"rl{i}@example.com").pk for i in range(limit + 6)]
    wait_for(lambda: statuses(ids) == {"delivered": limit + 6}, 120, "the backlog")
    times = sorted(c.time for c in subscribe_calls(emulator))
    assert len(times) == limit + 6
    # Measured at the provider: no sliding 60-second window holds more than the limit...
    assert max_in_window(times, 60.0) <= limit
    # ...and the backlog used the capacity: the first call after the full window came as soon
    # as the window (plus the 0.5 s safety margin and a worker's reaction time) allowed.
    assert times[limit] - times[0] < 60.0 * 1.05


def test_optin_confirmed_through_the_webhook(esputnik_form, emulator, start_worker,
                                             live_server):
    account = esputnik_form.account
    emulator.set_esputnik_webhooks(
        ESPUTNIK_KEY, secret=account.webhook_secret,
        workflow_url=f"{live_server.url}/webhooks/esputnik/{account.pk}/")
    start_worker()
    submission = store(esputnik_form, "hook@example.com")
    wait_for(lambda: statuses([submission.pk]) == {"delivered": 1}, 30, "delivery")
    emulator.confirm("esputnik", ESPUTNIK_KEY, "hook@example.com", group="Confirmed")
    wait_for(lambda: Submission.objects.get(pk=submission.pk).optin_status
             == OptinStatus.CONFIRMED, 30, "the webhook-triggered status check")


def test_optin_confirmed_through_polling_when_the_webhook_was_lost(
        unisender_form, emulator, start_worker):
    start_worker()
    submission = store(unisender_form, "poll@example.com")
    wait_for(lambda: statuses([submission.pk]) == {"delivered": 1}, 30, "delivery")
    emulator.confirm("unisender", UNISENDER_KEY, "poll@example.com")  # no hook configured
    tasks.poll_optin.delay()  # what beat sends every minute
    wait_for(lambda: Submission.objects.get(pk=submission.pk).optin_status
             == OptinStatus.CONFIRMED, 30, "polling")
    emulator.unsubscribe("unisender", UNISENDER_KEY, "poll@example.com")
    Submission.objects.filter(pk=submission.pk).update(next_optin_check_at=timezone.now())
    tasks.refresh_optin.delay(str(submission.pk))
    wait_for(lambda: Submission.objects.get(pk=submission.pk).optin_status
             == OptinStatus.UNSUBSCRIBED, 30, "the unsubscribe")


def test_local_double_optin_through_the_link(esputnik_form, emulator, start_worker, client):
    esputnik_form.double_opt_in = DoubleOptIn.LOCAL
    esputnik_form.save()
    start_worker()
    submission = store(esputnik_form, "local@example.com")
    wait_for(lambda: Submission.objects.get(pk=submission.pk).confirmation_sent_at is not None,
             30, "the confirmation email")
    assert emulator.requests("esputnik") == []  # nothing reaches the provider before the click
    response = client.post(f"/confirm/{optin.make_token(submission)}/")
    assert response.status_code == 200
    wait_for(lambda: statuses([submission.pk]) == {"delivered": 1}, 30, "delivery")
    posted = [r for r in emulator.requests("esputnik") if r.method == "POST"]
    assert [r.path for r in posted] == ["/api/v1/contacts"]
    assert Submission.objects.get(pk=submission.pk).optin_status == OptinStatus.CONFIRMED


def test_unconfirmed_expire(esputnik_form, emulator, start_worker):
    start_worker()
    submission = store(esputnik_form, "late@example.com")
    wait_for(lambda: statuses([submission.pk]) == {"delivered": 1}, 30, "delivery")
    Submission.objects.filter(pk=submission.pk).update(
        created_at=timezone.now() - timezone.timedelta(days=31))
    tasks.expire_unconfirmed.delay()
    wait_for(lambda: Submission.objects.get(pk=submission.pk).optin_status
             == OptinStatus.EXPIRED, 30, "expiry")
