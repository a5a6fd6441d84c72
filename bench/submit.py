"""Submit throughput: the app's JSON endpoint against the floor view and the bare view.

One gunicorn (2 sync workers, DEBUG off) on PostgreSQL with the Redis broker serves all three;
the same load tool (wrk, 2 threads, 16 connections) drives each in turn, rounds interleaved:

- app: ``POST /api/esp-forms/forms/bench-a/submissions/`` (throttle, token check, validation,
  the stored row and its event, the Celery hand-off after commit);
- floor: a DRF view with the same validation, one committed row, one Redis push after commit;
- bare: the same validation, nothing stored.

Each signup has a unique email. After every app round the stored rows are counted: every
accepted submission must be stored (and none twice). Prints req/s medians and app / floor.

    .venv/bin/python bench/submit.py [--rounds 3] [--seconds 5]
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
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    harness.setup_django()
    harness.make_forms()
    token = harness.form_token("bench-a")
    server, url = harness.start_gunicorn()
    targets = {
        "app": url + "/api/esp-forms/forms/bench-a/submissions/",
        "floor": url + "/bench/floor/",
        "bare": url + "/bench/bare/",
    }
    results: dict[str, list[float]] = {name: [] for name in targets}
    p99: dict[str, list[float]] = {name: [] for name in targets}
    lost = errors = 0
    try:
        for target in targets.values():  # warm up every worker and code path
            harness.load(target, 1, post_token=token)
        for _ in range(args.rounds):
            for name, target in targets.items():
                harness.reset_rows()
                result = harness.load(target, args.seconds, post_token=token)
                results[name].append(result.rps)
                p99[name].append(result.p99_ms)
                if name == "app":
                    errors += result.errors
                    # wrk counts answers it read; a request cut at the deadline may still
                    # commit, so stored may exceed answered by up to the connection count.
                    stored = harness.stored_rows()
                    accepted = result.requests - result.errors
                    lost += max(0, accepted - stored)
    finally:
        server.stop()
        harness.reset_rows()
    app, floor, bare = (harness.median(results[n]) for n in ("app", "floor", "bare"))
    print(f"submit, gunicorn 2 sync workers, PostgreSQL, Redis broker, {harness.load_tool()} "
          f"2 threads 16 connections, {args.rounds} rounds x {args.seconds:g} s (medians)")
    for name in targets:
        print(f"  {name:<6} {harness.median(results[name]):8.0f} req/s   "
              f"p99 {harness.median(p99[name]):7.1f} ms   rounds: "
              + ", ".join(f"{v:.0f}" for v in results[name]))
    print(f"  app / floor: {app / floor:.2f}   app / bare: {app / bare:.2f}   "
          f"app errors: {errors}   accepted but not stored: {lost}")
    harness.emit([
        harness.result_line("submit (app)", app, "req/s", "floor view", floor,
                            f"errors {errors}, lost {lost}"),
        harness.result_line("submit (floor)", floor, "req/s", "bare view", bare),
    ])


if __name__ == "__main__":
    main()
