"""eSputnik's activity method (GET v2/contacts/activity) and the reconciliation that reads it:
an unsubscribe whose webhook was lost is applied within one run, over real HTTP to the
emulator."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from esp_forms import delivery, optin, reconcile
from esp_forms.models import EventKind, OptinStatus, ProviderAccount, Submission
from esp_forms.providers import get_provider
from tests.conftest import ESPUTNIK_KEY, make_submission
from tests.provider_contract import load_payload

pytestmark = pytest.mark.django_db(transaction=True)

WINDOW = (datetime(2026, 11, 20, 0, 0, tzinfo=UTC), datetime(2026, 11, 21, 0, 0, tzinfo=UTC))


def activity_of(emulator) -> list[dict]:
    return emulator.state.esputnik[ESPUTNIK_KEY].activity


def subscribed(form, emulator, email: str = "olena@example.com") -> Submission:
    submission = make_submission(form, email)
    assert delivery.deliver(submission.pk).status == "delivered"
    emulator.confirm("esputnik", ESPUTNIK_KEY, email)
    assert optin.refresh(submission.pk) == OptinStatus.CONFIRMED
    submission.refresh_from_db()
    return submission


def test_the_pull_reads_the_recorded_shape(esputnik_form, emulator):
    recorded = load_payload("esputnik_activity_pull.json", "items")
    junk = [{"email": "x@example.com"}, {"activityStatus": "UNSUBSCRIBED"},
            {"email": "", "activityStatus": "SPAM"}, {"email": 5, "activityStatus": "SPAM"}]
    activity_of(emulator).extend(recorded + [
        {**item, "activityDateTime": "2026-11-20T11:00:00"} for item in junk])
    activity_of(emulator).append({**recorded[0], "activityDateTime": "2026-11-22T09:00:00"})
    provider = get_provider(esputnik_form.account)

    items = provider.read_activity(*WINDOW)

    # Every recorded item, unknown keys kept; junk skipped; the later day is outside.
    assert sorted(items, key=lambda i: i["activityDateTime"]) == recorded
    request = emulator.last_request("esputnik")
    assert (request.method, request.path) == ("GET", "/api/v2/contacts/activity")
    assert request.query == {"dateFrom": ["2026-11-20T00:00:00"],
                             "dateTo": ["2026-11-21T00:00:00"], "maxrows": ["1000"]}
    user, _, password = base64.b64decode(
        request.headers["Authorization"].split()[1]).decode().partition(":")
    assert password == ESPUTNIK_KEY


def test_the_emulator_serves_the_webhook_item_plus_media_type(esputnik_form, emulator):
    submission = subscribed(esputnik_form, emulator)
    emulator.unsubscribe("esputnik", ESPUTNIK_KEY, submission.email)
    now = timezone.now()
    [item] = get_provider(esputnik_form.account).read_activity(now - timedelta(minutes=5),
                                                              now + timedelta(minutes=1))
    assert item["activityStatus"] == "UNSUBSCRIBED" and item["mediaType"] == "email"
    recorded_keys = set().union(*load_payload("esputnik_activity_pull.json", "items"))
    webhook_keys = set().union(*load_payload("esputnik_activity_webhook.json", "items"))
    assert set(item) <= recorded_keys and set(item) - {"mediaType"} <= webhook_keys


def test_long_and_full_windows_are_split(esputnik_form, emulator):
    start = WINDOW[0]
    # 1500 items within the first day: more than one request of 1000 can hold.
    activity_of(emulator).extend(
        {"email": f"p{n}@example.com", "activityStatus": "READ",
         "activityDateTime": (start + timedelta(seconds=37 * n + 1)).isoformat()}
        for n in range(1500))
    emulator.clear_requests()
    items = get_provider(esputnik_form.account).read_activity(start, start + timedelta(days=2.5))
    assert len(items) == 1500 and len({i["email"] for i in items}) == 1500
    windows = [(r.query["dateFrom"][0], r.query["dateTo"][0])
               for r in emulator.requests("esputnik")]
    # No request spans more than a day; the full first day was read again in two halves.
    assert all(datetime.fromisoformat(b) - datetime.fromisoformat(a) <= timedelta(days=1)
               for a, b in windows)
    assert windows[:2] == [("2026-11-20T00:00:00", "2026-11-21T00:00:00"),
                           ("2026-11-20T00:00:00", "2026-11-20T12:00:00")]
    assert ("2026-11-20T12:00:00", "2026-11-21T00:00:00") in windows
    assert windows[-1] == ("2026-11-22T00:00:00", "2026-11-22T12:00:00")


def test_reconcile_applies_a_lost_unsubscribe(esputnik_form, emulator):
    submission = subscribed(esputnik_form, emulator)
    # No activity webhook is set up: the unsubscribe reaches us by no other way.
    emulator.unsubscribe("esputnik", ESPUTNIK_KEY, submission.email)

    [report] = reconcile.reconcile()
    assert [str(c) for c in report.changes] == [
        "olena@example.com (es-news): confirmed → unsubscribed"]
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.UNSUBSCRIBED
    assert submission.events.filter(kind=EventKind.UNSUBSCRIBED,
                                    message__contains="reconcile").exists()
    account = ProviderAccount.objects.get(pk=esputnik_form.account.pk)
    assert account.activity_read_until is not None
    # Read again (the windows overlap): nothing changes twice.
    [again] = reconcile.reconcile()
    assert again.changes == [] and again.errors == []


def test_dry_run_reports_and_keeps_the_cursor(esputnik_form, emulator):
    submission = subscribed(esputnik_form, emulator)
    emulator.unsubscribe("esputnik", ESPUTNIK_KEY, submission.email)
    [report] = reconcile.reconcile(dry_run=True)
    assert len(report.changes) == 1
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.CONFIRMED
    assert ProviderAccount.objects.get(pk=esputnik_form.account.pk).activity_read_until is None


def test_a_stale_item_never_undoes_a_later_signup(esputnik_form, emulator):
    earlier = subscribed(esputnik_form, emulator)
    Submission.objects.filter(pk=earlier.pk).update(
        created_at=timezone.now() - timedelta(hours=3))
    later = make_submission(esputnik_form, "olena@example.com")
    assert delivery.deliver(later.pk).status == "delivered"
    # An unsubscribe from an hour ago: before the later signup, after the earlier one.
    happened = (timezone.now() - timedelta(hours=1)).astimezone(UTC).replace(microsecond=0)
    activity_of(emulator).append({"contactId": 1, "email": "olena@example.com",
                                  "activityStatus": "UNSUBSCRIBED",
                                  "activityDateTime": happened.isoformat()})
    ProviderAccount.objects.filter(pk=esputnik_form.account.pk).update(
        activity_read_until=timezone.now() - timedelta(hours=2))

    reconcile.reconcile()
    earlier.refresh_from_db()
    later.refresh_from_db()
    assert earlier.optin_status == OptinStatus.UNSUBSCRIBED
    # (The status read may confirm it: the contact is in the confirmed segment.)
    assert later.optin_status != OptinStatus.UNSUBSCRIBED
    assert not later.events.filter(kind=EventKind.UNSUBSCRIBED).exists()


def test_a_disabled_activity_method_is_reported_not_raised(esputnik_form, emulator):
    submission = subscribed(esputnik_form, emulator)
    emulator.state.esputnik[ESPUTNIK_KEY].activity_method_enabled = False
    emulator.unsubscribe("esputnik", ESPUTNIK_KEY, submission.email)
    expired = make_submission(esputnik_form, "late@example.com")
    assert delivery.deliver(expired.pk).status == "delivered"
    emulator.confirm("esputnik", ESPUTNIK_KEY, "late@example.com")
    Submission.objects.filter(pk=expired.pk).update(optin_status=OptinStatus.EXPIRED)

    [report] = reconcile.reconcile()

    [error] = report.errors  # said once
    assert "HTTP 403" in error and "not enabled for this account" in error
    assert "eSputnik support" in error
    # The status reads still ran; the cursor did not move.
    assert [str(c) for c in report.changes] == [
        "late@example.com (es-news): expired → confirmed"]
    assert ProviderAccount.objects.get(pk=esputnik_form.account.pk).activity_read_until is None
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.CONFIRMED


def test_the_activity_read_stays_inside_the_rate_limit(esputnik_form, emulator):
    submission = subscribed(esputnik_form, emulator)
    emulator.unsubscribe("esputnik", ESPUTNIK_KEY, submission.email)
    account = esputnik_form.account
    account.rate_limit_per_minute = 1  # the delivery already took this minute's only call
    account.save()
    emulator.clear_requests()
    [report] = reconcile.reconcile()
    assert report.throttled and report.changes == []
    assert emulator.requests("esputnik") == []
    assert ProviderAccount.objects.get(pk=account.pk).activity_read_until is None


def test_the_read_position_moves_a_complete_day_at_a_time(esputnik_form, emulator):
    from esp_forms import ratelimit

    account = esputnik_form.account
    before = timezone.now().replace(microsecond=0) - timedelta(days=2, hours=12)
    ProviderAccount.objects.filter(pk=account.pk).update(activity_read_until=before,
                                                         rate_limit_per_minute=2)
    ratelimit._limiter_for.cache_clear()
    emulator.clear_requests()
    [report] = reconcile.reconcile()
    # Two one-day windows fit in the limit; the third (the last half day) waits.
    assert report.throttled and len(emulator.requests("esputnik")) == 2
    account.refresh_from_db()
    assert account.activity_read_until == before - reconcile.ACTIVITY_OVERLAP + timedelta(days=2)
