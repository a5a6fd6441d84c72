"""The sliding-window-log limiter (per-process fallback; the Redis one runs in tests/services)."""

import time

import pytest
from django.test import override_settings

from esp_forms import ratelimit


def max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_grants_up_to_the_limit_then_says_how_long_to_wait():
    limiter = ratelimit.LocalLimiter()
    assert [limiter.acquire("k", 3, 0.4) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("k", 3, 0.4)
    assert 0.3 < wait <= 0.4
    assert limiter.acquire("other", 3, 0.4) == 0.0  # per key
    time.sleep(wait + 0.01)
    assert limiter.acquire("k", 3, 0.4) == 0.0


def test_no_sliding_window_exceeds_the_limit_and_a_backlog_runs_at_full_rate():
    limiter = ratelimit.LocalLimiter()
    limit, window, granted = 20, 0.5, []
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        wait = limiter.acquire("k", limit, window)
        if wait == 0:
            granted.append(time.monotonic())
        else:
            time.sleep(min(wait, deadline - time.monotonic()) if wait else 0)
    assert max_in_any_window(granted, window) <= limit
    # A token bucket would allow 2x in some window; the log never does, yet stays busy:
    assert len(granted) >= 0.95 * limit * (2.0 / window)


def test_acquire_adds_the_safety_margin():
    with override_settings(ESP_FORMS={"RATE_LIMIT_SAFETY_SECONDS": 0.3}):
        assert ratelimit.acquire("acct", 1, 0.1) == 0.0
        assert ratelimit.acquire("acct", 1, 0.1) > 0.3


@pytest.mark.parametrize("broker,setting,expected", [
    ("memory://", None, None),
    ("redis://127.0.0.1:6379/3", None, "redis://127.0.0.1:6379/3"),
    ("memory://", "redis://r:6379/1", "redis://r:6379/1"),
])
def test_redis_url_choice(broker, setting, expected):
    with override_settings(CELERY_BROKER_URL=broker,
                           ESP_FORMS={"RATE_LIMIT_REDIS_URL": setting}):
        assert ratelimit.redis_url() == expected
