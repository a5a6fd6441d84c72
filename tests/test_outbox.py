"""The outbox's claim-call-record rules, against the emulator (real HTTP)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from esp_forms import delivery, optin, outbox, retention
from esp_forms.models import DeliveryStatus, EventKind, Submission
from tests.conftest import make_submission


def subscribe_calls(emulator, provider="esputnik"):
    path = "/api/v1/contact/subscribe" if provider == "esputnik" else "/en/api/subscribe"
    return [r for r in emulator.requests(provider) if r.path == path]


def test_a_leased_row_is_left_alone_until_the_lease_runs_out(esputnik_form, emulator):
    submission = make_submission(esputnik_form)
    assert outbox.claim_one(submission.pk, owner="worker-a") is not None
    assert delivery.deliver(submission.pk).status == "locked"
    assert delivery.dispatch_due(grace=0) == {}
    assert subscribe_calls(emulator) == []
    # The same owner (a retried task) resumes its own claim.
    assert delivery.deliver(submission.pk, owner="worker-a").status == "delivered"
    submission.refresh_from_db()
    assert submission.lease_owner == "" and submission.lease_until is None


def test_an_expired_lease_is_taken_over(esputnik_form, emulator):
    submission = make_submission(esputnik_form)
    Submission.objects.filter(pk=submission.pk).update(
        lease_owner="dead-worker", lease_until=timezone.now() - timedelta(seconds=1))
    assert delivery.dispatch_due(grace=0) == {"delivered": 1}
    assert len(subscribe_calls(emulator)) == 1


def test_a_finish_whose_lease_was_lost_records_nothing(esputnik_form):
    submission = make_submission(esputnik_form)
    claimed = outbox.claim_one(submission.pk, owner="slow")
    Submission.objects.filter(pk=submission.pk).update(lease_owner="someone-else")
    assert not outbox.finish(claimed, owner="slow",
                             fields={"delivery_status": DeliveryStatus.DELIVERED},
                             events=[(EventKind.DELIVERED, "x", {})])
    submission.refresh_from_db()
    assert submission.delivery_status == DeliveryStatus.PENDING
    assert not submission.events.exists()


def test_the_attempt_is_committed_before_the_call(esputnik_form, emulator, monkeypatch):
    submission = make_submission(esputnik_form)
    seen = []
    from esp_forms.providers.esputnik import ESputnikProvider

    original = ESputnikProvider.subscribe

    def spy(self, sub, **kwargs):
        row = Submission.objects.get(pk=sub.pk)
        seen.append((row.attempts, row.attempt_started_at is not None, bool(row.lease_owner)))
        return original(self, sub, **kwargs)

    monkeypatch.setattr(ESputnikProvider, "subscribe", spy)
    assert delivery.deliver(submission.pk).status == "delivered"
    assert seen == [(1, True, True)]
    submission.refresh_from_db()
    assert submission.attempt_started_at is None and submission.attempts == 1


@pytest.mark.parametrize("provider", ["esputnik", "unisender"])
def test_an_unknown_outcome_is_resolved_by_reading_the_provider(provider, esputnik_form,
                                                                unisender_form, emulator):
    form = esputnik_form if provider == "esputnik" else unisender_form
    submission = make_submission(form)
    # A first delivery reached the provider, but its outcome was never recorded.
    assert delivery.deliver(submission.pk).status == "delivered"
    Submission.objects.filter(pk=submission.pk).update(
        delivery_status=DeliveryStatus.PENDING, attempt_started_at=timezone.now(),
        delivered_at=None)
    assert delivery.deliver(submission.pk).status == "delivered"
    assert len(subscribe_calls(emulator, provider)) == 1  # read, not called again
    assert submission.events.filter(message__contains="outcome was unknown").exists()


def test_an_unknown_outcome_the_provider_never_saw_is_sent(esputnik_form, emulator):
    submission = make_submission(esputnik_form)
    Submission.objects.filter(pk=submission.pk).update(attempts=1,
                                                       attempt_started_at=timezone.now())
    assert delivery.deliver(submission.pk).status == "delivered"
    assert len(subscribe_calls(emulator)) == 1
    submission.refresh_from_db()
    assert submission.attempts == 2


def test_an_unknown_outcome_the_provider_could_not_be_read_stays_unknown(esputnik_form,
                                                                       emulator):
    submission = make_submission(esputnik_form)
    started = timezone.now() - timedelta(minutes=1)
    Submission.objects.filter(pk=submission.pk).update(attempts=1, attempt_started_at=started)
    emulator.fault("esputnik", status=503, path_contains="/api/v1/contacts")
    assert delivery.deliver(submission.pk).status == "retry"
    submission.refresh_from_db()
    # Still open: the next run reads the provider again before it sends anything.
    assert submission.attempt_started_at == started and submission.lease_owner == ""
    assert subscribe_calls(emulator) == []
    assert delivery.deliver(submission.pk, force=True).status == "delivered"
    assert [r.path for r in emulator.requests("esputnik")][-2:] == [
        "/api/v1/contacts", "/api/v1/contact/subscribe"]


@pytest.mark.parametrize("why", ["throttled", "not-due", "already-delivered"])
def test_a_claim_that_makes_no_call_leaves_no_attempt(why, esputnik_form, emulator):
    """On PostgreSQL the claim itself opens the attempt; without a call it is taken back."""
    earlier = timezone.now() - timedelta(days=1)
    submission = make_submission(esputnik_form, attempts=2, last_attempt_at=earlier)
    if why == "throttled":
        esputnik_form.account.rate_limit_per_minute = 1
        esputnik_form.account.save()
        assert delivery.deliver(make_submission(esputnik_form, "first@example.com").pk
                                ).status == "delivered"
    elif why == "not-due":
        Submission.objects.filter(pk=submission.pk).update(
            next_attempt_at=timezone.now() + timedelta(hours=1))
    else:
        Submission.objects.filter(pk=submission.pk).update(
            delivery_status=DeliveryStatus.DELIVERED)
    assert delivery.deliver(submission.pk).status == why
    submission.refresh_from_db()
    assert (submission.attempts, submission.attempt_started_at, submission.last_attempt_at,
            submission.lease_owner) == (2, None, earlier, "")
    # And the next delivery sends at once, with no read first: nothing was left unknown.
    Submission.objects.filter(pk=submission.pk).update(
        delivery_status=DeliveryStatus.PENDING, next_attempt_at=timezone.now())
    esputnik_form.account.rate_limit_per_minute = None
    esputnik_form.account.save()
    calls = len(emulator.requests("esputnik"))
    assert delivery.deliver(submission.pk).status == "delivered"
    assert [r.path for r in emulator.requests("esputnik")[calls:]] == [
        "/api/v1/contact/subscribe"]
    submission.refresh_from_db()
    assert submission.attempts == 3 and submission.last_attempt_at > earlier


def test_a_row_that_raises_is_backed_off_and_the_batch_goes_on(esputnik_form, emulator,
                                                               monkeypatch):
    past = timezone.now() - timedelta(minutes=5)
    bad = make_submission(esputnik_form, "bad@example.com", next_attempt_at=past)
    good = make_submission(esputnik_form, "good@example.com", next_attempt_at=past)
    original = delivery.deliver_claimed

    def flaky(submission, **kwargs):
        if submission.email == "bad@example.com":
            raise KeyError("unexpected")
        return original(submission, **kwargs)

    monkeypatch.setattr(delivery, "deliver_claimed", flaky)
    assert delivery.dispatch_due(grace=0) == {"error": 1, "delivered": 1}
    bad.refresh_from_db()
    good.refresh_from_db()
    assert good.delivery_status == DeliveryStatus.DELIVERED
    assert bad.delivery_status == DeliveryStatus.PENDING and bad.lease_owner == ""
    assert bad.next_attempt_at > timezone.now() and "unexpected" in bad.last_error


def test_a_status_read_that_raises_is_backed_off(esputnik_form, emulator, monkeypatch):
    submission = make_submission(esputnik_form)
    delivery.deliver(submission.pk)
    Submission.objects.filter(pk=submission.pk).update(next_optin_check_at=timezone.now())
    from esp_forms.providers.esputnik import ESputnikProvider

    monkeypatch.setattr(ESputnikProvider, "get_contact_status",
                        lambda self, sub: (_ for _ in ()).throw(ValueError("garbled")))
    assert optin.poll_due() == {"error": 1}
    submission.refresh_from_db()
    assert submission.lease_owner == "" and submission.next_optin_check_at > timezone.now()


def test_purge_erases_around_a_row_that_raises(esputnik_form, monkeypatch):
    old = timezone.now() - timedelta(days=400)
    rows = [make_submission(esputnik_form, f"p{i}@example.com", created_at=old,
                            delivery_status=DeliveryStatus.DELIVERED) for i in range(3)]
    original = retention.erase_personal_data

    def flaky(ids, **kwargs):
        if rows[1].pk in ids:
            raise RuntimeError("cannot erase this one")
        return original(ids, **kwargs)

    monkeypatch.setattr(retention, "erase_personal_data", flaky)
    assert retention.purge() == 2
    erased = set(Submission.objects.filter(purged_at__isnull=False).values_list("pk", flat=True))
    assert erased == {rows[0].pk, rows[2].pk}


def test_the_modules_import_one_way():
    """Delivery and opt-in never import the task module (the outbox enqueues by name)."""
    import ast
    from pathlib import Path

    root = Path(outbox.__file__).parent
    for name in ("outbox.py", "delivery.py", "optin.py", "retention.py"):
        tree = ast.parse((root / name).read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    for alias in node.names} | {
            node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert "tasks" not in imported and "esp_forms.tasks" not in imported, name
    assert "delivery" not in (root / "optin.py").read_text().split('"""', 2)[2].split(
        "logger")[0]



def test_checks_catch_a_short_lease_and_a_connection_per_request(settings):
    from esp_forms.checks import check_outbox

    settings.ESP_FORMS = {"LEASE_SECONDS": 5, "CONNECT_TIMEOUT": 5, "READ_TIMEOUT": 15}
    settings.DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql",
                                      "CONN_MAX_AGE": 0}}
    assert sorted(e.id for e in check_outbox()) == ["esp_forms.E019", "esp_forms.W017"]
    settings.ESP_FORMS = {"LEASE_SECONDS": None}
    settings.DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql",
                                      "CONN_MAX_AGE": 600}}
    assert check_outbox() == []


def test_check_warns_when_celery_closes_the_connection_around_every_task(settings):
    from celery import Celery

    from esp_forms.checks import check_outbox

    settings.DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql",
                                      "CONN_MAX_AGE": 600}}
    del settings.CELERY_DB_REUSE_MAX
    from celery import current_app

    previous = current_app._get_current_object()
    try:
        bare = Celery("bare", set_as_current=True)  # an app that never set DB_REUSE_MAX
        assert [e.id for e in check_outbox()] == ["esp_forms.W018"]
        bare.conf.db_reuse_max = 1000
        assert check_outbox() == []
    finally:
        previous.set_current()
    settings.CELERY_DB_REUSE_MAX = 1000
    assert check_outbox() == []


# --- the cached form configuration ------------------------------------------------------------

def test_the_template_tag_and_schema_answer_from_the_cached_form(newsletter, client,
                                                                 django_assert_num_queries):
    from django.template import Context, Template

    from esp_forms import formcache

    formcache.clear()
    template = Template('{% load esp_forms %}{% esp_form "newsletter" %}')
    template.render(Context({}))  # the first render reads the form once
    with django_assert_num_queries(0):
        html = template.render(Context({}))
        assert 'name="email"' in html
        assert client.get("/api/esp-forms/forms/newsletter/").status_code == 200


def test_saving_a_form_or_field_clears_the_cache(newsletter):
    from esp_forms import formcache

    assert formcache.active_form("newsletter").title == newsletter.title
    newsletter.title = "Weekly news"
    newsletter.save()
    assert formcache.active_form("newsletter").title == "Weekly news"
    field = newsletter.fields.get(name="phone")
    field.label = "Mobile"
    field.save()
    labels = [f.label for f in formcache.active_form("newsletter").fields.all()]
    assert "Mobile" in labels
    newsletter.is_active = False
    newsletter.save()
    assert formcache.active_form("newsletter") is None


def test_a_cached_form_render_matches_a_fresh_one(newsletter, rf, settings):
    import re

    from django.template import Context, Template

    from esp_forms import spam

    template = Template('{% load esp_forms %}'
                        '{% esp_form "newsletter" %}{% esp_form "newsletter" %}')

    def page() -> str:
        request = rf.get("/")
        return template.render(Context({"request": request}))

    cached_first, cached_second = page(), page()
    settings.ESP_FORMS = {"FORM_CACHE_SECONDS": 0}
    fresh = page()
    volatile = r'value="[^"]*"'  # tokens differ on every render
    assert re.sub(volatile, "", cached_second) == re.sub(volatile, "", fresh)
    assert 'id="esp-newsletter"' in cached_first and 'id="esp-newsletter-2"' in cached_first
    assert "0c4ch3d" not in cached_first + cached_second
    tokens = re.findall(r'name="form_token" value="([^"]+)"', cached_first + cached_second)
    assert len(tokens) == 4  # issued per render (same-millisecond ones may be equal)
    assert all(spam.check_token(t, "newsletter") in (None, "too_fast") for t in tokens)
    assert cached_first.count('name="csrfmiddlewaretoken"') == 2


def test_the_sweep_fans_the_claimed_batch_out_to_tasks_that_take_over_the_claim(
        esputnik_form, emulator, monkeypatch):
    from esp_forms import tasks

    past = timezone.now() - timedelta(minutes=5)
    rows = [make_submission(esputnik_form, f"f{i}@example.com", next_attempt_at=past)
            for i in range(3)]
    sent = []
    monkeypatch.setattr(tasks.deliver_submission, "apply_async",
                        lambda args, **options: sent.append((args[0], options["kwargs"])))
    assert delivery.dispatch_due(grace=0, fan_out=True) == {"queued": 3}
    assert delivery.dispatch_due(grace=0, fan_out=True) == {}  # leased: not queued twice
    assert subscribe_calls(emulator) == []
    for pk, kwargs in sent:  # what the worker runs
        assert tasks.deliver_submission.run(pk, **kwargs).startswith("delivered")
    assert {r.pk for r in rows} == set(Submission.objects.filter(
        delivery_status=DeliveryStatus.DELIVERED).values_list("pk", flat=True))
    assert len(subscribe_calls(emulator)) == 3


# --- database connections around tasks -------------------------------------------------------

def test_tasks_keep_their_connection_and_check_it_only_after_a_pause(monkeypatch):
    """Celery's own fixup would close the connection around every task; esp_forms' handlers
    apply CONN_MAX_AGE instead, and skip the health-check query while tasks run back to back."""
    from types import SimpleNamespace

    from esp_forms import tasks

    class Conn:
        health_check_done = False

    conn = Conn()
    closed = []
    monkeypatch.setattr(tasks, "close_old_connections", lambda: closed.append(1) or setattr(
        conn, "health_check_done", False))
    monkeypatch.setattr(tasks, "connections", SimpleNamespace(
        all=lambda initialized_only=False: [conn]))
    clock = [1000.0]
    monkeypatch.setattr(tasks.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(tasks, "_released_at", float("-inf"))
    ours = SimpleNamespace(name="esp_forms.deliver_submission",
                           request=SimpleNamespace(is_eager=False))

    tasks._before_task(sender=ours)
    assert conn.health_check_done is False  # the first task checks its connection
    tasks._after_task(sender=ours)
    clock[0] += 0.2
    tasks._before_task(sender=ours)
    assert conn.health_check_done is True  # back to back: no check query
    tasks._after_task(sender=ours)
    clock[0] += tasks.CHECK_AFTER_IDLE + 1
    tasks._before_task(sender=ours)
    assert conn.health_check_done is False  # after a pause: checked again
    assert len(closed) == 5  # CONN_MAX_AGE and broken connections handled every time

    closed.clear()
    for other in (SimpleNamespace(name="myapp.report", request=SimpleNamespace(is_eager=False)),
                  SimpleNamespace(name="esp_forms.purge", request=SimpleNamespace(is_eager=True))):
        tasks._before_task(sender=other)
        tasks._after_task(sender=other)
    assert closed == []  # other apps' tasks and eager runs are left as they are
