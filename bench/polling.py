"""Opt-in polling: provider requests and database queries per cycle, 1,000 to 10,000 waiting.

For each size, that many delivered, unconfirmed eSputnik submissions are due for a status
read; one polling cycle (``optin.poll_due``, what beat runs every minute) is measured: the
emulator's request count, the queries (Django's query log) and the time. The baseline, counted
in the same run, is what a poll-everything loop would send: one read per waiting submission.

    .venv/bin/python bench/polling.py [--sizes 1000 10000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import harness  # noqa: E402


def cycle(size: int, emulator_url: str) -> tuple[int, int, float, int]:
    import requests
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from esp_forms import optin
    from esp_forms.models import SignupForm, Submission

    harness.reset_rows()
    form = SignupForm.objects.get(form_type="bench-es")
    now = timezone.now()
    Submission.objects.bulk_create(
        (Submission(form=form, email=f"w{size}-{i}@example.com", delivery_status="delivered",
                    optin_status="unconfirmed",
                    next_optin_check_at=now, created_at=now)
         for i in range(size)), batch_size=2000)
    waiting = Submission.objects.filter(optin_status="unconfirmed",
                                        next_optin_check_at__lte=timezone.now()).count()
    requests.delete(emulator_url + "/_emulator/requests", timeout=10)
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        optin.poll_due()
    elapsed = time.perf_counter() - started
    calls = len(requests.get(emulator_url + "/_emulator/requests", timeout=30).json())
    return calls, len(queries.captured_queries), elapsed, waiting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    emulator, emulator_url = harness.start_emulator()
    rows = []
    try:
        harness.setup_django()
        harness.make_forms(emulator_url)
        from esp_forms.conf import get_setting

        batch = int(get_setting("POLL_BATCH_SIZE"))
        print(f"one polling cycle (POLL_BATCH_SIZE {batch}), eSputnik emulator, PostgreSQL")
        for size in args.sizes:
            calls, queries, elapsed, waiting = cycle(size, emulator_url)
            print(f"  {waiting:6d} waiting: {calls:4d} provider requests, {queries:4d} queries, "
                  f"{elapsed * 1000:7.0f} ms per cycle   (poll-everything: {waiting} requests)")
            rows.append(harness.result_line(
                f"polling, {waiting} waiting", calls, "requests/cycle",
                "poll-everything loop", waiting, f"{queries} queries, {elapsed:.1f} s"))
    finally:
        emulator.stop()
        harness.reset_rows()
    harness.emit(rows)


if __name__ == "__main__":
    main()
