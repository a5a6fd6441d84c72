"""A Celery app for bench/ratelimit_use.py: the demo's app with every account's rate-limit
window divided by ``ESP_FORMS_BENCH_TIME_SCALE``, so a 300-per-minute backlog drains in seconds
with the same limiter, tasks and sweeper."""

from __future__ import annotations

import os

from project.celery import app  # noqa: F401  (the app this module stands for)

SCALE = float(os.environ.get("ESP_FORMS_BENCH_TIME_SCALE", "1"))


def _install() -> None:
    import django

    django.setup()
    from esp_forms.providers.base import BaseProvider

    unscaled = BaseProvider.rate_limit

    def scaled(self: BaseProvider) -> tuple[int, float]:
        limit, window = unscaled.fget(self)  # type: ignore[attr-defined]
        return limit, window / SCALE

    BaseProvider.rate_limit = property(scaled)  # type: ignore[assignment,method-assign]


_install()
