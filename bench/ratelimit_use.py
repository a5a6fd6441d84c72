"""Rate-limit use: 1,000 backlogged submissions on an account limited to 300 per minute.

Time is scaled down 4 times (300 per 15 s; the workers run ``bench/scaled_worker.py``, the
demo's Celery app with every limiter window divided by 4) so a round takes a minute. Two
worker processes (``-c 2``) deliver to the emulator, which enforces the same 300 per 15 s and
answers 429 past it. Measured at the provider: the most calls in any sliding window (must not
exceed the limit), 429 answers (must be 0), and use: the shortest possible drain time for the
backlog at that limit over the measured one (target >= 0.95). Rounds, medians.

    .venv/bin/python bench/ratelimit_use.py [--rounds 2] [--count 1000]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import harness  # noqa: E402

LIMIT, MINUTE, SCALE = 300, 60.0, 4.0
WINDOW = MINUTE / SCALE


def max_in_window(times: list[float], window: float) -> int:
    best = start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def one_round(count: int, tag: str, emulator_url: str) -> tuple[int, int, float]:
    import requests

    from bench.delivery import delivered, store
    from esp_forms import outbox

    harness.reset_rows()
    requests.delete(emulator_url + "/_emulator/requests", timeout=10)
    time.sleep(WINDOW * 1.2)  # the previous round's calls leave both windows
    ids = store(count, tag)
    task = outbox.task_named(outbox.DELIVER_TASK)
    for pk in ids:
        outbox.send_task(task, pk)
    deadline = time.monotonic() + 20 * WINDOW + 60
    swept = time.monotonic()
    while delivered() < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {delivered()} of {count} delivered")
        if time.monotonic() - swept > WINDOW:
            # What beat does every 30 s (scaled): waits longer than MAX_COUNTDOWN are swept.
            outbox.send_task(outbox.task_named("esp_forms.sweep_outbox"), "x")
            swept = time.monotonic()
        time.sleep(0.1)
    calls = [r for r in requests.get(emulator_url + "/_emulator/requests?provider=esputnik",
                                     timeout=30).json()
             if r["path"] == "/api/v1/contact/subscribe"]
    times = sorted(r["time"] for r in calls if r["status"] == 200)
    refused = sum(1 for r in calls if r["status"] == 429)
    ideal = math.floor((count - 1) / LIMIT) * WINDOW
    use = ideal / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    return max_in_window(times, WINDOW), refused, use


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    import requests

    emulator, emulator_url = harness.start_emulator()
    harness.setup_django()
    harness.make_forms(emulator_url)
    from esp_forms.models import ProviderAccount

    ProviderAccount.objects.filter(name="Bench eSputnik").update(rate_limit_per_minute=LIMIT)
    requests.post(emulator_url + "/_emulator/rate-limits", timeout=5, json={
        "provider": "esputnik", "api_key": harness.ESPUTNIK_KEY, "limit": LIMIT,
        "window": WINDOW})
    import redis

    redis.Redis.from_url(harness.BROKER_URL).flushdb()
    scaled = {"ESP_FORMS_BENCH_TIME_SCALE": str(SCALE),
              "ESP_FORMS_JSON": '{"RATE_LIMIT_SAFETY_SECONDS": %s}' % (1.0 / SCALE)}
    worker = harness.Proc([sys.executable, "-m", "celery", "-A", "bench.scaled_worker", "worker",
                           "-l", "info", "--concurrency", "2", "--without-gossip",
                           "--without-mingle", "--without-heartbeat"], scaled, name="worker")
    results = []
    try:
        worker.wait_for("ready.", 60)
        for n in range(args.rounds):
            results.append(one_round(args.count, f"r{n}", emulator_url))
    finally:
        worker.stop()
        emulator.stop()
        harness.reset_rows()
    peak = max(r[0] for r in results)
    refused = sum(r[1] for r in results)
    use = harness.median([r[2] for r in results])
    print(f"rate-limit use: {args.count} backlogged, {LIMIT} per {MINUTE:g} s scaled to "
          f"{LIMIT} per {WINDOW:g} s, worker -c 2, {args.rounds} rounds (median use)")
    print(f"  peak calls in any {WINDOW:g} s window: {peak} (limit {LIMIT})   429 answers: "
          f"{refused}   use: {use:.2f}   rounds: " + ", ".join(f"{r[2]:.2f}" for r in results))
    harness.emit([harness.result_line("rate-limit use (backlog)", use, "of the limit",
                                      "ideal drain at the limit", 1.0,
                                      f"peak {peak}/{LIMIT} per window, {refused} x 429")])


if __name__ == "__main__":
    main()
