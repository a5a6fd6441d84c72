"""A rate limiter per provider account, shared by every worker process through Redis.

The algorithm is a sliding-window *log*: each granted call is a timestamp in a sorted set, and a
call is granted only while fewer than ``limit`` timestamps lie in the last ``window`` seconds.
Unlike a token bucket (whose full burst on top of a full refill lets 2x the limit through in
some 60-second span), no sliding window ever holds more than ``limit`` calls, which is exactly
what the providers count. A backlog still runs at the full rate: a slot frees the moment the
oldest call leaves the window. The check and the insert run in one Lua script, on the Redis
server's clock, so two workers can never both take the last slot.

``RATE_LIMIT_SAFETY_SECONDS`` widens the window a little, so network jitter between our clock
and the provider's never makes a window on their side hold one call too many.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from functools import lru_cache
from typing import TYPE_CHECKING

from django.conf import settings

from esp_forms import metrics
from esp_forms.conf import get_setting

if TYPE_CHECKING:
    from esp_forms.providers.base import BaseProvider

_ACQUIRE = """
local t = redis.call('TIME')
-- Microseconds: millisecond scores would let a slot free up to 1 ms early.
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


def redis_url() -> str | None:
    """The Redis the limiter uses, or None for the per-process fallback."""
    url = get_setting("RATE_LIMIT_REDIS_URL")
    if url:
        return url
    broker = getattr(settings, "CELERY_BROKER_URL", "") or ""
    if broker.startswith(("redis://", "rediss://")):
        return broker
    return None


class RedisLimiter:
    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.script = self.client.register_script(_ACQUIRE)

    def acquire(self, key: str, limit: int, window: float) -> float:
        """Take a slot: 0.0 when granted, else the seconds until one frees up."""
        wait_us = self.script(keys=[f"esp_forms:rl:{key}"],
                              args=[limit, int(window * 1_000_000), uuid.uuid4().hex])
        return int(wait_us) / 1_000_000

    def reset(self, key: str) -> None:
        self.client.delete(f"esp_forms:rl:{key}")


class LocalLimiter:
    """The same sliding-window log in process memory, for one worker without Redis."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: dict[str, deque[float]] = {}

    def acquire(self, key: str, limit: int, window: float) -> float:
        now = time.monotonic()
        with self.lock:
            calls = self.calls.setdefault(key, deque())
            while calls and calls[0] <= now - window:
                calls.popleft()
            if len(calls) < limit:
                calls.append(now)
                return 0.0
            return max(0.001, calls[0] + window - now)

    def reset(self, key: str) -> None:
        with self.lock:
            self.calls.pop(key, None)


@lru_cache(maxsize=4)
def _limiter_for(url: str | None) -> RedisLimiter | LocalLimiter:
    return RedisLimiter(url) if url else LocalLimiter()


def get_limiter() -> RedisLimiter | LocalLimiter:
    return _limiter_for(redis_url())


def acquire(account_key: str, limit: int, window: float) -> float:
    """Take a slot for one provider call on this account; returns seconds to wait (0: go)."""
    safety = float(get_setting("RATE_LIMIT_SAFETY_SECONDS"))
    return get_limiter().acquire(account_key, int(limit), float(window) + safety)


def acquire_for(provider: BaseProvider) -> float:
    """Take a slot for one call through ``provider``: deliveries and status reads of an account
    share one budget, the account's limit or the provider's documented one."""
    limit, window = provider.rate_limit
    wait = acquire(f"account:{provider.account.pk}", limit, window)
    if wait > 0:
        metrics.observe_rate_limit_wait(provider.name, wait)
    return wait
