"""Rendering: what a page pays for the signup forms in it.

The same gunicorn (2 sync workers, DEBUG off, PostgreSQL) serves the same page template with
four ``{% esp_form %}`` tags and with four empty cards in their place; the same load tool
drives both, rounds interleaved. The schema endpoint (``GET /api/esp-forms/forms/bench-a/``)
is measured beside them. The forms come from each process's form cache: no query.

    .venv/bin/python bench/render.py [--rounds 3] [--seconds 4]
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
    harness.setup_django()
    harness.make_forms()
    server, url = harness.start_gunicorn()
    targets = {
        "page with four forms": url + "/bench/page-with-forms/",
        "same page without": url + "/bench/page-without-forms/",
        "schema endpoint": url + "/api/esp-forms/forms/bench-a/",
    }
    rps: dict[str, list[float]] = {name: [] for name in targets}
    errors = 0
    try:
        for target in targets.values():
            harness.load(target, 1)
        for _ in range(args.rounds):
            for name, target in targets.items():
                result = harness.load(target, args.seconds)
                rps[name].append(result.rps)
                errors += result.errors
    finally:
        server.stop()
    print(f"rendering, gunicorn 2 sync workers, PostgreSQL, {harness.load_tool()} 2 threads "
          f"16 connections, {args.rounds} rounds x {args.seconds:g} s (medians)")
    for name in targets:
        print(f"  {name:<22} {harness.median(rps[name]):8.0f} req/s   rounds: "
              + ", ".join(f"{v:.0f}" for v in rps[name]))
    with_forms = harness.median(rps["page with four forms"])
    without = harness.median(rps["same page without"])
    schema = harness.median(rps["schema endpoint"])
    print(f"  with / without: {with_forms / without:.2f}   errors: {errors}")
    harness.emit([
        harness.result_line("page with 4 forms", with_forms, "req/s", "same page without",
                            without),
        harness.result_line("schema endpoint", schema, "req/s", "same page without", without),
    ])


if __name__ == "__main__":
    main()
