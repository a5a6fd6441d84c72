"""Prometheus metrics: what the database says at scrape time, plus what worker processes count.

Two kinds of numbers, chosen so that both are right with any number of web and worker processes:

- **State** (submissions by outcome, queue age, retries due, failures in the last hour, failing
  accounts, polling backlog) is read from the database when Prometheus scrapes, by the same
  queries as the admin dashboard (``esp_forms.stats``). Nothing to aggregate across processes.
- **Events** that only a worker sees (provider call latency by status, provider errors by code,
  rate-limit waits) are ``prometheus_client`` counters and histograms incremented where they
  happen. Celery's prefork workers are separate processes, so set ``PROMETHEUS_MULTIPROC_DIR``
  (the same empty directory for the web server and the workers, on one host) and
  ``prometheus_client`` keeps them in shared files that the scrape sums up (its documented
  multiprocess mode). Without it each process counts alone and the endpoint shows the web
  process's own counts only (system check ``esp_forms.W020``).

``prometheus_client`` is optional (``pip install esp-forms[metrics]``): without it the hooks do
nothing and the endpoint answers 503 (system check ``esp_forms.E022``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

from esp_forms.exceptions import EspFormsError, ProviderConfigurationError, TransientProviderError

logger = logging.getLogger(__name__)

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.core import GaugeMetricFamily
except ImportError:  # pragma: no cover - exercised by the system check test
    prometheus_client = None

AVAILABLE = prometheus_client is not None
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

if AVAILABLE:
    # Provider answers take from a few milliseconds (the emulator) to READ_TIMEOUT (15 s).
    PROVIDER_LATENCY = Histogram(
        "esp_forms_provider_request_duration_seconds",
        "Time of one HTTP call to a provider, by provider and HTTP status "
        "(or timeout / network when there was no answer).",
        ["provider", "status"],
        buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0),
    )
    PROVIDER_ERRORS = Counter(
        "esp_forms_provider_errors",
        "Provider calls that failed, by provider, kind (transient, permanent, configuration) "
        "and code (the provider's error code, http_<status>, timeout or network).",
        ["provider", "kind", "code"],
    )
    RATE_LIMIT_WAITS = Histogram(
        "esp_forms_rate_limit_wait_seconds",
        "Calls that found an account's rate limit full, and how long they were told to wait.",
        ["provider"],
        buckets=(0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0),
    )


# --- hooks (called by the provider layer and the rate limiter; never raise) ------------------

def observe_provider_call(provider: str, status: str, seconds: float) -> None:
    if AVAILABLE:
        try:
            PROVIDER_LATENCY.labels(provider, status).observe(seconds)
        except Exception:  # a metrics problem must never fail a delivery
            logger.exception("Could not record a provider call metric")


def error_kind(error: EspFormsError) -> str:
    if isinstance(error, ProviderConfigurationError):
        return "configuration"
    if isinstance(error, TransientProviderError):
        return "transient"
    return "permanent"


def error_code(error: EspFormsError, default: str = "unknown") -> str:
    if error.code:
        return str(error.code)[:64]
    if error.status_code is not None:
        return f"http_{error.status_code}"
    return default


def count_provider_error(provider: str, error: EspFormsError, default_code: str = "unknown"
                         ) -> None:
    if AVAILABLE:
        try:
            PROVIDER_ERRORS.labels(provider, error_kind(error),
                                   error_code(error, default_code)).inc()
        except Exception:
            logger.exception("Could not record a provider error metric")


def observe_rate_limit_wait(provider: str, seconds: float) -> None:
    if AVAILABLE:
        try:
            RATE_LIMIT_WAITS.labels(provider).observe(seconds)
        except Exception:
            logger.exception("Could not record a rate-limit metric")


# --- scrape ------------------------------------------------------------------------------------

class DatabaseCollector:
    """Gauges read from the database at scrape time (a handful of aggregate queries)."""

    def collect(self) -> Iterator[Any]:
        from django.db.models import Count, Sum

        from esp_forms import stats
        from esp_forms.models import SpamCount, Submission

        outcomes = GaugeMetricFamily(
            "esp_forms_submissions",
            "Signups by form and outcome (spam: answered like a success but dropped). Outcomes "
            "move (delivered becomes confirmed): use it as a gauge, and increase() only on "
            "outcomes that are final for a row.",
            labels=["form", "outcome"])
        by_outcome = (Submission.objects.annotate(outcome=stats.outcome_expression())
                      .values("form__form_type", "outcome").annotate(n=Count("pk")).order_by())
        for row in by_outcome:
            outcomes.add_metric([row["form__form_type"], row["outcome"]], row["n"])
        for row in (SpamCount.objects.filter(reason__in=SpamCount.SPAM_REASONS)
                    .values("form__form_type").annotate(n=Sum("count"))
                    .order_by()):
            outcomes.add_metric([row["form__form_type"], "spam"], row["n"] or 0)
        yield outcomes

        health = stats.queue_health()
        for name, help_text, value in (
            ("esp_forms_queue_pending", "Submissions waiting for delivery.", health.pending),
            ("esp_forms_queue_oldest_pending_age_seconds",
             "Age of the oldest submission waiting for delivery (0 when none waits).",
             health.oldest_pending_seconds),
            ("esp_forms_queue_retries_due",
             "Pending submissions whose retry time has come but that no worker has taken.",
             health.retries_due),
            ("esp_forms_delivery_failures_last_hour",
             "Submissions marked failed in the last hour.", health.failures_last_hour),
            ("esp_forms_accounts_with_configuration_errors",
             "Provider accounts whose last call failed on their configuration.",
             len(health.failing_accounts)),
            ("esp_forms_optin_poll_backlog",
             "Delivered, unconfirmed submissions whose opt-in status read is overdue.",
             health.poll_backlog),
        ):
            yield GaugeMetricFamily(name, help_text, value=value)


def registry() -> CollectorRegistry:
    """The registry one scrape renders: this process's (or, in multiprocess mode, every
    process's) event counters, and the database gauges."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
    else:
        reg = CollectorRegistry()
        for metric in (PROVIDER_LATENCY, PROVIDER_ERRORS, RATE_LIMIT_WAITS):
            reg.register(metric)
    reg.register(DatabaseCollector())
    return reg


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry()), CONTENT_TYPE_LATEST
