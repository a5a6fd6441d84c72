"""Rate limiter: peak load in any sliding window, and use of the allowed rate, in one run.

Two worker processes hammer one account key through the shared Redis limiter (or the
per-process one with ``--local``, one process). The same load runs against a token bucket of
the same limit (full burst, continuous refill), the common choice, as the baseline. Printed
ratios, measured in this run:

- peak/limit: the most calls in any sliding window divided by the limit (must be <= 1.00);
- used/allowed: calls granted divided by what the limit allows over the run (target >= 0.95).

Usage: python bench/rate_limiter.py [--redis redis://127.0.0.1:6379/13] [--seconds 6]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LIMIT, WINDOW = 40, 1.0
# The limiter widens the window by RATE_LIMIT_SAFETY_SECONDS (1 s against 60 s windows in
# production); here the same proportion against a 1 s window, so the timestamps taken in the
# client after each grant (what a provider would see) stay inside the limit.
SAFETY = WINDOW / 60

TOKEN_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local rate = tonumber(ARGV[1]) / tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or tonumber(ARGV[1])
local ts = tonumber(b[2]) or now
tokens = math.min(tonumber(ARGV[1]), tokens + (now - ts) * rate)
if tokens >= 1 then
  redis.call('HSET', KEYS[1], 'tokens', tokens - 1, 'ts', now)
  return 0
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
return math.ceil((1 - tokens) / rate * 1000)
"""


def hammer(kind: str, url: str, key: str, until: float, out: mp.Queue) -> None:
    import redis

    from esp_forms.ratelimit import RedisLimiter

    granted = []
    if kind == "log":
        limiter = RedisLimiter(url)

        def acquire() -> float:
            return limiter.acquire(key, LIMIT, WINDOW + SAFETY)
    else:
        client = redis.Redis.from_url(url)
        script = client.register_script(TOKEN_BUCKET)

        def acquire() -> float:
            return int(script(keys=[key], args=[LIMIT, WINDOW])) / 1000.0
    while time.time() < until:
        wait = acquire()
        if wait == 0:
            granted.append(time.time())
        else:
            time.sleep(min(wait, max(0.0, until - time.time())))
    out.put(granted)


def peak(times: list[float], window: float) -> int:
    times, best, start = sorted(times), 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def run(kind: str, url: str, seconds: float) -> tuple[float, float]:
    key = f"bench:{kind}:{uuid.uuid4().hex}"
    until = time.time() + seconds
    out: mp.Queue = mp.Queue()
    procs = [mp.Process(target=hammer, args=(kind, url, key, until, out)) for _ in range(2)]
    for p in procs:
        p.start()
    times = [t for _ in procs for t in out.get()]
    for p in procs:
        p.join()
    allowed = LIMIT * seconds / WINDOW
    return peak(times, WINDOW) / LIMIT, len(times) / allowed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL",
                                                          "redis://127.0.0.1:6379/13"))
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    import redis

    try:
        redis.Redis.from_url(args.redis, socket_connect_timeout=2).ping()
    except Exception as err:
        print(f"Redis at {args.redis} unreachable ({err.__class__.__name__}); nothing measured.")
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    print(f"limit {LIMIT} calls per {WINDOW:.0f} s, 2 processes, {args.seconds:.0f} s each run; "
          "peak measured on client-side timestamps taken after each grant")
    print(f"{'algorithm':<26}{'peak/limit':>12}{'used/allowed':>14}")
    runs = (("log", "sliding-window log (ours)"), ("bucket", "token bucket (baseline)"))
    for kind, label in runs:
        peak_ratio, used = run(kind, args.redis, args.seconds)
        print(f"{label:<26}{peak_ratio:>12.2f}{used:>14.2f}")


if __name__ == "__main__":
    main()
