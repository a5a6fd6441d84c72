"""The Prometheus endpoint: access control, database gauges, provider and rate-limit hooks."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from esp_forms import delivery, metrics, ratelimit
from esp_forms.checks import Codes, check_metrics
from esp_forms.models import (
    DeliveryStatus,
    EventKind,
    OptinStatus,
    ProviderAccount,
    SpamCount,
    SubmissionEvent,
)
from esp_forms.providers import get_provider
from tests.conftest import make_submission

URL = "/esp-forms/metrics/"
TOKEN = "s3cret-metrics-token-0123"
pytestmark = pytest.mark.django_db


def with_metrics(**extra):
    return override_settings(ESP_FORMS={"METRICS_TOKEN": TOKEN, **extra})


def scrape(**headers) -> dict[tuple[str, tuple], float]:
    response = Client().get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "no-cache" in response["Cache-Control"]
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# --- access ---------------------------------------------------------------------------------

def test_off_by_default(db):
    assert Client().get(URL).status_code == 404


def test_token(db):
    with with_metrics():
        assert Client().get(URL).status_code == 401
        response = Client().get(URL, HTTP_AUTHORIZATION="Bearer wrong")
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert Client().get(URL, HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
        assert Client().get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
        assert Client().get(URL, HTTP_AUTHORIZATION=f"bearer  {TOKEN} ").status_code == 200
        assert Client(enforce_csrf_checks=True).post(
            URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_allowed_ips_and_networks(db):
    settings = {"METRICS_ALLOWED_IPS": ["10.1.2.3", "192.168.0.0/16", "::1"]}
    with override_settings(ESP_FORMS=settings):
        assert Client(REMOTE_ADDR="10.1.2.3").get(URL).status_code == 200
        assert Client(REMOTE_ADDR="192.168.44.5").get(URL).status_code == 200
        assert Client(REMOTE_ADDR="::1").get(URL).status_code == 200
        assert Client(REMOTE_ADDR="10.1.2.4").get(URL).status_code == 403
        # A forged X-Forwarded-For does not help while no proxy is trusted.
        assert Client(REMOTE_ADDR="203.0.113.9").get(
            URL, HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 403
    with override_settings(ESP_FORMS={**settings, "TRUSTED_PROXY_COUNT": 1}):
        assert Client(REMOTE_ADDR="172.16.0.1").get(
            URL, HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 200


def test_without_prometheus_client_the_endpoint_says_what_to_install(db, monkeypatch):
    monkeypatch.setattr(metrics, "AVAILABLE", False)
    with with_metrics():
        response = Client().get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 503
        assert "esp-forms[metrics]" in response.content.decode()
        assert [e.id for e in check_metrics()] == [Codes.METRICS_WITHOUT_LIBRARY]
    # The hooks do nothing rather than fail a delivery.
    metrics.observe_provider_call("esputnik", "200", 0.1)
    metrics.observe_rate_limit_wait("esputnik", 1.0)


# --- system checks --------------------------------------------------------------------------

def test_checks(monkeypatch):
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    assert check_metrics() == []
    with with_metrics():
        assert [e.id for e in check_metrics()] == [Codes.METRICS_SINGLE_PROCESS]
        monkeypatch.setenv(metrics.MULTIPROC_ENV, "/tmp")
        assert check_metrics() == []
    with override_settings(ESP_FORMS={"METRICS_ALLOWED_IPS": ["10.0.0.0/8", "intranet"]}):
        [error] = check_metrics()
        assert error.id == Codes.BAD_METRICS_ALLOWED_IPS and "intranet" in error.msg
    with override_settings(ESP_FORMS={"METRICS_ALLOWED_IPS": "127.0.0.1"}):
        assert check_metrics() == []


def test_check_without_the_library_in_a_real_process(tmp_path):
    """``manage.py check`` in a process where prometheus_client cannot be imported."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['prometheus_client'] = None\n")
    env = {"PYTHONPATH": str(tmp_path), "ESP_FORMS_JSON": json.dumps({"METRICS_TOKEN": "x"}),
           "ESP_FORMS_DEMO_DIR": str(tmp_path / "demo"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "manage.py", "check"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "esp_forms.E022" in result.stderr and "esp-forms[metrics]" in result.stderr


# --- what a scrape shows --------------------------------------------------------------------

def test_database_gauges(newsletter):
    now = timezone.now()
    make_submission(newsletter, "a@example.com", delivery_status=DeliveryStatus.DELIVERED)
    make_submission(newsletter, "b@example.com", delivery_status=DeliveryStatus.DELIVERED,
                    optin_status=OptinStatus.CONFIRMED)
    make_submission(newsletter, "c@example.com", created_at=now - timedelta(minutes=20),
                    attempts=1, next_attempt_at=now - timedelta(seconds=5))
    failed = make_submission(newsletter, "d@example.com", delivery_status=DeliveryStatus.FAILED)
    SubmissionEvent.objects.create(submission=failed, kind=EventKind.FAILED)
    SpamCount.objects.create(form=newsletter, reason="honeypot", count=3)
    ProviderAccount.objects.create(name="Broken", provider="unisender", api_key="k",
                                   config_error="Invalid API key")
    with with_metrics():
        samples = scrape()
    for outcome, n in {"delivered": 1, "confirmed": 1, "pending": 1, "failed": 1,
                       "spam": 3}.items():
        assert value(samples, "esp_forms_submissions", form="newsletter", outcome=outcome) == n
    assert value(samples, "esp_forms_queue_pending") == 1
    assert 1195 < value(samples, "esp_forms_queue_oldest_pending_age_seconds") < 1300
    assert value(samples, "esp_forms_queue_retries_due") == 1
    assert value(samples, "esp_forms_delivery_failures_last_hour") == 1
    assert value(samples, "esp_forms_accounts_with_configuration_errors") == 1
    assert value(samples, "esp_forms_optin_poll_backlog") == 0


def test_scrape_query_count_is_bounded(newsletter, django_assert_max_num_queries):
    for n in range(30):
        make_submission(newsletter, f"p{n}@example.com")
    with with_metrics(), django_assert_max_num_queries(5):
        scrape()


def test_provider_calls_latency_and_errors_by_code(esputnik_form, unisender_form, emulator):
    """Real HTTP to the emulator: a success, an HTTP error and a UniSender error code."""
    with with_metrics():
        before = scrape()
        ok = make_submission(esputnik_form, "ok@example.com")
        assert delivery.deliver(ok.pk).status == "delivered"
        emulator.fault("esputnik", status=503, times=1)
        retried = make_submission(esputnik_form, "retry@example.com")
        delivery.deliver(retried.pk)
        emulator.fault("unisender", unisender_code="invalid_api_key", times=1)
        broken = make_submission(unisender_form, "uni@example.com")
        delivery.deliver(broken.pk)
        after = scrape()

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("esp_forms_provider_request_duration_seconds_count",
                 provider="esputnik", status="200") >= 1
    assert delta("esp_forms_provider_request_duration_seconds_sum",
                 provider="esputnik", status="200") > 0
    assert delta("esp_forms_provider_request_duration_seconds_count",
                 provider="esputnik", status="503") == 1
    assert delta("esp_forms_provider_errors_total", provider="esputnik", kind="transient",
                 code="http_503") == 1
    assert delta("esp_forms_provider_errors_total", provider="unisender",
                 kind="configuration", code="invalid_api_key") == 1


def test_network_errors_are_counted(esputnik_form):
    account = esputnik_form.account
    account.api_base_url = "http://127.0.0.1:9"  # discard port: nothing listens
    account.save()
    before = metrics.PROVIDER_ERRORS.labels("esputnik", "transient", "network")._value.get()
    submission = make_submission(esputnik_form)
    with pytest.raises(Exception):  # noqa: B017 - the transient error itself
        get_provider(account).subscribe(submission)
    after = metrics.PROVIDER_ERRORS.labels("esputnik", "transient", "network")._value.get()
    assert after == before + 1


def test_rate_limit_waits(esputnik_form):
    account = esputnik_form.account
    account.rate_limit_per_minute = 1
    account.save()
    provider = get_provider(account)
    histogram = metrics.RATE_LIMIT_WAITS.labels("esputnik")
    count_before = sum(b.get() for b in histogram._buckets)
    assert ratelimit.acquire_for(provider) == 0
    wait = ratelimit.acquire_for(provider)
    assert wait > 50
    assert sum(b.get() for b in histogram._buckets) == count_before + 1
    assert histogram._sum.get() >= wait


def test_check_command_passes_with_the_endpoint_configured(monkeypatch, tmp_path):
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    with with_metrics():
        call_command("check")
    with override_settings(ESP_FORMS={"METRICS_ALLOWED_IPS": ["nope"]}), \
            pytest.raises(SystemCheckError):
        call_command("check")
