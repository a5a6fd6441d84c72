"""Metrics counted in real Celery worker processes reach the web process's scrape
(prometheus_client multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``)."""

from __future__ import annotations

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.services.conftest import wait_for
from tests.services.test_workers import statuses, store

pytestmark = pytest.mark.services
TOKEN = "services-metrics-token"


def scrape() -> dict[tuple[str, tuple], float]:
    response = Client().get("/esp-forms/metrics/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    samples: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            samples[key] = samples.get(key, 0.0) + s.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_worker_counters_reach_the_scrape(esputnik_form, emulator, start_worker, monkeypatch,
                                          settings, tmp_path):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))  # workers inherit it
    settings.ESP_FORMS = {**settings.ESP_FORMS, "METRICS_TOKEN": TOKEN}
    account = esputnik_form.account
    account.rate_limit_per_minute = 4
    account.save()
    emulator.fault("esputnik", status=503, times=1)
    start_worker("w1", concurrency=2)
    start_worker("w2", concurrency=2)
    ids = [store(esputnik_form, f"m{i}@example.com").pk for i in range(6)]

    def counted() -> bool:
        samples = scrape()
        return (value(samples, "esp_forms_provider_request_duration_seconds_count",
                      provider="esputnik", status="200") == 3
                and value(samples, "esp_forms_rate_limit_wait_seconds_count",
                          provider="esputnik") >= 2)

    # Four calls fit the minute: one 503, three deliveries; the rest wait for the limiter.
    wait_for(counted, 60, "the workers' counters in the scrape")
    assert statuses(ids).get("delivered") == 3
    samples = scrape()
    assert value(samples, "esp_forms_provider_request_duration_seconds_count",
                 provider="esputnik", status="503") == 1
    assert value(samples, "esp_forms_provider_errors_total", provider="esputnik",
                 kind="transient", code="http_503") == 1
    assert value(samples, "esp_forms_submissions", form="es-news", outcome="delivered") == 3
    assert value(samples, "esp_forms_queue_pending") == 3
    # The files are the workers' (one per process), not this test process's.
    assert len(list(directory.glob("*.db"))) >= 2
