"""The admin dashboard: per-day outcome counts, confirmation rates, queue health, the page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from esp_forms import charts, stats
from esp_forms.models import (
    DeliveryStatus,
    EventKind,
    OptinStatus,
    ProviderAccount,
    SpamCount,
    Submission,
    SubmissionEvent,
)
from tests.conftest import make_form, make_submission

URL = "/admin/esp_forms/signupform/dashboard/"
pytestmark = pytest.mark.django_db


def at(days_ago: int, hour: int = 12):
    today = timezone.localdate()
    day = today - timedelta(days=days_ago)
    return timezone.make_aware(timezone.datetime(day.year, day.month, day.day, hour))


@pytest.fixture
def history(newsletter):
    """Three days of signups with every outcome."""
    sub = make_submission
    sub(newsletter, "a@example.com", created_at=at(0), delivery_status=DeliveryStatus.DELIVERED)
    sub(newsletter, "b@example.com", created_at=at(0), delivery_status=DeliveryStatus.DELIVERED,
        optin_status=OptinStatus.CONFIRMED)
    sub(newsletter, "c@example.com", created_at=at(0), delivery_status=DeliveryStatus.FAILED)
    sub(newsletter, "d@example.com", created_at=at(2), delivery_status=DeliveryStatus.DELIVERED,
        optin_status=OptinStatus.CONFIRMED)
    sub(newsletter, "e@example.com", created_at=at(2), delivery_status=DeliveryStatus.DELIVERED,
        optin_status=OptinStatus.EXPIRED)
    sub(newsletter, "f@example.com", created_at=at(2))  # pending
    sub(newsletter, "old@example.com", created_at=at(20), delivery_status=DeliveryStatus.FAILED)
    SpamCount.objects.create(form=newsletter, reason="honeypot", day=at(0).date(), count=4)
    SpamCount.objects.create(form=newsletter, reason="too_fast", day=at(0).date(), count=1)
    SpamCount.objects.create(form=newsletter, reason="too_fast", day=at(1).date(), count=2)
    return newsletter


def test_signups_per_day_by_outcome(history):
    [series] = stats.signups_per_day([history], days=7)
    assert series.days[-1] == timezone.localdate() and len(series.days) == 7
    assert series.counts["delivered"][-3:] == [1, 0, 1]   # expired still counts as delivered
    assert series.counts["confirmed"][-3:] == [1, 0, 1]
    assert series.counts["failed"][-3:] == [0, 0, 1]      # the 20-day-old one is outside
    assert series.counts["pending"][-3:] == [1, 0, 0]
    assert series.counts["spam"][-3:] == [0, 2, 5]
    assert series.totals == {"failed": 1, "confirmed": 2, "delivered": 2, "held": 0, "pending": 1,
                             "spam": 7}
    # Confirmed out of everyone asked to confirm (confirmed, unconfirmed, expired).
    assert series.confirmed[-3:] == [1, 0, 1] and series.asked[-3:] == [3, 0, 3]
    assert series.confirmation_rate == pytest.approx(2 / 6)
    assert series.daily_confirmation_rate()[-3:] == [pytest.approx(1 / 3), None,
                                                     pytest.approx(1 / 3)]
    [longer] = stats.signups_per_day([history], days=30)
    assert longer.totals["failed"] == 2


def test_every_submission_state_maps_to_one_outcome():
    keys = [o.key for o in stats.OUTCOMES]
    assert len(keys) == len(set(keys))
    assert {"delivered", "confirmed", "failed", "spam", "pending"} <= set(keys)
    assert stats.OTHER in keys
    for status in DeliveryStatus.values:
        assert any(o.when is not None and ("delivery_status", status) in o.when.children
                   for o in stats.OUTCOMES), status


@pytest.mark.django_db
def test_held_signups_are_their_own_outcome(newsletter):
    now = timezone.now()
    make_submission(newsletter, "held@example.com", held_at=now, held_reason="mailbox_budget")
    make_submission(newsletter, "waiting@example.com")
    counts = dict(Submission.objects.annotate(outcome=stats.outcome_expression())
                  .values_list("email", "outcome"))
    assert counts == {"held@example.com": "held", "waiting@example.com": "pending"}


def test_queue_health(newsletter):
    now = timezone.now()
    make_submission(newsletter, "old@example.com", created_at=now - timedelta(minutes=30),
                    attempts=2, next_attempt_at=now - timedelta(minutes=1))
    make_submission(newsletter, "new@example.com", created_at=now - timedelta(seconds=5),
                    next_attempt_at=now + timedelta(minutes=5))
    failed = make_submission(newsletter, "bad@example.com",
                             delivery_status=DeliveryStatus.FAILED)
    SubmissionEvent.objects.create(submission=failed, kind=EventKind.FAILED)
    SubmissionEvent.objects.create(submission=failed, kind=EventKind.FAILED,
                                   created_at=now - timedelta(hours=2))
    make_submission(newsletter, "poll@example.com", delivery_status=DeliveryStatus.DELIVERED,
                    next_optin_check_at=now - timedelta(minutes=1))
    make_submission(newsletter, "later@example.com", delivery_status=DeliveryStatus.DELIVERED,
                    next_optin_check_at=now + timedelta(hours=1))
    ProviderAccount.objects.create(name="Broken", provider="unisender", api_key="k",
                                   config_error="Invalid API key")
    health = stats.queue_health(now)
    assert health.pending == 2
    assert health.oldest_pending_seconds == pytest.approx(1800, abs=1)
    assert health.retries_due == 1
    assert health.failures_last_hour == 1
    assert health.poll_backlog == 1
    assert [a.name for a in health.failing_accounts] == ["Broken"]


def test_empty_queue_is_healthy(db):
    health = stats.queue_health()
    assert (health.pending, health.oldest_pending_seconds, health.retries_due,
            health.failures_last_hour, health.poll_backlog, health.failing_accounts) == (
        0, 0.0, 0, 0, 0, [])


def test_dashboard_page(admin_client, history):
    page = admin_client.get(URL).content.decode()
    assert "<title>Signups dashboard" in page
    # Queue health, in words as well as colour.
    assert 'data-health="oldest_pending"' in page and "Needs attention" in page
    assert "Accounts with configuration errors" in page and "All accounts work" in page
    # The form's panel: legend with totals, two accessible SVG charts, the numbers in a table.
    panel = page[page.index('data-form="newsletter"'):]
    assert '<li data-outcome="spam">' in panel and "spam: <strong>7</strong>" in panel
    assert "confirmation rate <strong>33%</strong> (2 of 6 asked)" in panel
    svgs = re.findall(r"<svg class=\"esp-chart.*?</svg>", panel, re.S)
    assert len(svgs) == 2
    for svg in svgs:
        assert 'role="img"' in svg and "<title id=" in svg and "<desc id=" in svg
    assert "Signups per day for newsletter</title>" in svgs[0]
    assert "1 failed, 2 confirmed, 2 delivered, 0 held, 1 pending, 7 spam." in svgs[0]
    assert re.search(r"<rect [^>]*fill=\"#CC79A7\"><title>\d\d\.\d\d: 5 spam</title>", svgs[0])
    assert "<th scope=\"col\" class=\"num\">spam</th>" in panel


def test_dashboard_period_choice(admin_client, history):
    page = admin_client.get(URL + "?days=30").content.decode()
    assert '<a href="?days=30" aria-current="page">30 days</a>' in page
    assert "failed: <strong>2</strong>" in page
    # Anything else falls back to the default, never an error.
    for bad in ("abc", "1000", "-1"):
        response = admin_client.get(URL + f"?days={bad}")
        assert response.status_code == 200
        assert '<a href="?days=14" aria-current="page">' in response.content.decode()


def test_dashboard_in_russian_and_ukrainian(admin_client, history):
    page = admin_client.get(URL, HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "Состояние очереди" in page and "спам: <strong>7</strong>" in page
    page = admin_client.get(URL, HTTP_ACCEPT_LANGUAGE="uk").content.decode()
    assert "Стан черги" in page and "спам: <strong>7</strong>" in page


def test_dashboard_is_linked_from_the_app_index_and_the_form_list(admin_client, newsletter):
    for page in ("/admin/esp_forms/", "/admin/esp_forms/signupform/"):
        assert f'href="{URL}"' in admin_client.get(page).content.decode()


def test_dashboard_needs_the_view_permission(client, newsletter):
    assert client.get(URL).status_code == 302  # to the login page
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(URL).status_code == 403
    assert URL not in client.get("/admin/esp_forms/").content.decode()
    staff.user_permissions.add(Permission.objects.get(codename="view_signupform"))
    assert client.get(URL).status_code == 200


def test_dashboard_query_count_does_not_grow_with_forms_or_submissions(admin_client,
                                                                       sandbox_account):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(URL + "?days=90").status_code == 200
        return len(ctx.captured_queries)

    form = make_form(sandbox_account, "one")
    make_submission(form, created_at=at(3))
    few = queries()
    for n in range(6):
        other = make_form(sandbox_account, f"form-{n}")
        for day in range(0, 60, 7):
            make_submission(other, f"p{n}-{day}@example.com", created_at=at(day),
                            delivery_status=DeliveryStatus.DELIVERED)
        SpamCount.objects.create(form=other, reason="honeypot", day=at(1).date(), count=3)
    ProviderAccount.objects.create(name="Broken", provider="unisender", api_key="k",
                                   config_error="Invalid API key")
    assert queries() == few
    # Session and user, the forms, three aggregates for the charts, three for queue health.
    assert few <= 9


def test_svg_escapes_what_admins_typed():
    svg = charts.stacked_bars([timezone.localdate()], [charts.Series("<b>x</b>", "#000", [1])],
                              title="<script>", desc="a & b")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a &amp; b" in svg
    assert "&lt;b&gt;x&lt;/b&gt;" in svg


@pytest.mark.parametrize(("value", "ceiling"), [(0, 4), (3, 4), (5, 8), (7, 8), (11, 12),
                                                (21, 24), (26, 32), (101, 120), (240, 240),
                                                (241, 320), (1234, 1600)])
def test_axis_ceiling(value, ceiling):
    assert charts.nice_ceiling(value) == ceiling


@pytest.mark.django_db
def test_a_held_signup_is_counted_once_not_also_as_spam(newsletter):
    """The abuse gate counts each hold's reason in SpamCount; charts and metrics count only the
    reasons that drop a signup as spam."""
    from esp_forms import abuse

    submission = make_submission(newsletter, "held@example.com")
    abuse.hold(submission, "mailbox_budget", detail="test")
    [series] = stats.signups_per_day([newsletter], days=1)
    counts = {key: sum(values) for key, values in series.counts.items() if sum(values)}
    assert counts == {"held": 1}


@pytest.mark.django_db
def test_held_signups_are_not_the_delivery_queue(newsletter):
    """A held row waits for an admin, not for a worker: it does not age "oldest pending"."""
    from esp_forms import abuse

    submission = make_submission(newsletter, "held@example.com",
                                 created_at=timezone.now() - timedelta(days=2))
    abuse.hold(submission, "form_budget", detail="test")
    health = stats.queue_health()
    assert health.pending == 0
    assert health.oldest_pending_seconds == 0
