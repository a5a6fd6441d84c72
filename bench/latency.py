"""Submit latency does not follow the provider's: p99 with a 0 ms and a 1,000 ms provider.

gunicorn (2 sync workers, DEBUG off, PostgreSQL, Redis broker) serves the app's JSON endpoint
for an eSputnik form while a Celery worker (-c 2) delivers what it stores to the emulator,
whose every answer is delayed by 0 ms, then 1,000 ms. Beside it, the same server's inline view
does what many signup plugins do: it calls the provider inside the request. Same load tool
(wrk, 2 threads, 16 connections), rounds interleaved, medians of p99.

    .venv/bin/python bench/latency.py [--rounds 3] [--seconds 4]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import harness  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    emulator, emulator_url = harness.start_emulator()
    harness.setup_django()
    harness.make_forms(emulator_url)
    app_token, inline_token = harness.form_token("bench-es"), harness.form_token("bench-inline")
    server = worker = None
    p99: dict[str, list[float]] = {}
    errors = 0
    try:
        server, url = harness.start_gunicorn()
        worker = harness.start_worker(concurrency=2)
        app_url = url + "/api/esp-forms/forms/bench-es/submissions/"
        inline_url = url + "/bench/inline/"
        harness.load(app_url, 1, post_token=app_token)
        for _ in range(args.rounds):
            for latency in (0.0, 1.0):
                harness.set_latency(emulator_url, latency)
                for name, target, token in (("app", app_url, app_token),
                                            ("inline", inline_url, inline_token)):
                    harness.wait_idle(url)
                    harness.reset_rows()
                    result = harness.load(target, args.seconds, post_token=token)
                    p99.setdefault(f"{name} {latency * 1000:.0f} ms", []).append(result.p99_ms)
                    print(f"    {name} at {latency * 1000:.0f} ms: {result.requests} requests, "
                          f"p99 {result.p99_ms:.0f} ms, {result.errors} errors", flush=True)
                    if name == "app":
                        errors += result.errors
    finally:
        for proc in (worker, server, emulator):
            if proc:
                proc.stop()
        harness.reset_rows()
    print(f"submit p99 while the provider answers in 0 ms and in 1,000 ms, "
          f"{harness.load_tool()} 2 threads 16 connections, {args.rounds} rounds x "
          f"{args.seconds:g} s (medians)")
    for name, values in p99.items():
        print(f"  {name:<14} p99 {harness.median(values):8.1f} ms   rounds: "
              + ", ".join(f"{v:.0f}" for v in values))
    fast, slow = harness.median(p99["app 0 ms"]), harness.median(p99["app 1000 ms"])
    inline = harness.median(p99["inline 1000 ms"])
    print(f"  app p99 1,000 ms / 0 ms provider: {slow / fast:.2f}   "
          f"inline p99 at 1,000 ms / app: {inline / slow:.1f}   app errors: {errors}")
    harness.emit([
        harness.result_line("submit p99, 1 s provider", slow, "ms", "submit p99, 0 ms provider",
                            fast),
        harness.result_line("inline view p99, 1 s provider", inline, "ms",
                            "app p99, 1 s provider", slow),
    ])


if __name__ == "__main__":
    main()
