"""Abuse gate: what counting the budgets costs the submit path, in one run.

Threads store signups concurrently through ``esp_forms.submissions.store_submission`` (the
code every endpoint runs; broker hand-off stubbed out) into one fresh form per run, every
signup a different mailbox. Each round runs twice: with the gate switched off
(``FORM_HOURLY_BUDGET`` 0, ``MAILBOX_BUDGET`` None: the baseline) and with both budgets
counting, the form's budget equal to the run's signups (the most it ever counts; nothing is
held, so both runs do the same work otherwise). Printed: signups per second of each, medians
of the rounds, and their ratio.

Needs a database where it may create and drop a scratch test database, e.g.
DATABASE_URL=postgres://postgres@127.0.0.1:5432/esp_forms python bench/abuse_gate.py

Usage: python bench/abuse_gate.py [--threads 8] [--signups 400] [--rounds 6] [--api]
       [--redis redis://127.0.0.1:6379/13]
(--api posts each signup through the JSON API endpoint, the whole request path)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
os.environ.setdefault("CELERY_BROKER_URL", "memory://")

THROUGH_API = False
OFF = {"FORM_HOURLY_BUDGET": 0, "MAILBOX_BUDGET": None}
ON = {"FORM_HOURLY_BUDGET": None, "MAILBOX_BUDGET": 10**9}  # None: the run's signups


def run(account, settings_override: dict, threads: int, signups: int) -> float:
    from django.db import connection
    from django.test import Client, override_settings

    from esp_forms.models import DoubleOptIn
    from esp_forms.submissions import store_submission
    from tests.conftest import make_form, token

    tag = uuid.uuid4().hex[:8]
    form = make_form(account, f"bench-{tag}", double_opt_in=DoubleOptIn.PROVIDER)
    if settings_override.get("FORM_HOURLY_BUDGET", 0) is None:
        settings_override = {**settings_override, "FORM_HOURLY_BUDGET": signups}
    per_thread = signups // threads
    barrier = threading.Barrier(threads + 1)

    def work(number: int) -> None:
        client = Client()
        barrier.wait()
        for i in range(per_thread):
            email = f"p{number}-{i}-{tag}@example.com"
            if THROUGH_API:
                response = client.post(
                    f"/api/esp-forms/forms/{form.form_type}/submissions/",
                    json.dumps({"email": email, "form_token": token(form.form_type)}),
                    content_type="application/json", REMOTE_ADDR=f"10.0.{number}.{i % 250}")
                assert response.status_code == 202, response.content
            else:
                store_submission(form, {"email": email, "phone": "", "data": {}},
                                 ip="203.0.113.1", user_agent="bench")
        connection.close()

    with override_settings(ESP_FORMS={"DUPLICATE_WINDOW": 0, "SUBMIT_THROTTLE": None,
                                      **settings_override}):
        pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for thread in pool:
            thread.start()
        barrier.wait()
        start = time.perf_counter()
        for thread in pool:
            thread.join()
        elapsed = time.perf_counter() - start
    return per_thread * threads / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--signups", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--redis", default=None,
                        help="count the form budget in this Redis (as with the rate limiter's)")
    parser.add_argument("--api", action="store_true",
                        help="post through the JSON API endpoint instead of storing directly")
    args = parser.parse_args()
    global THROUGH_API
    THROUGH_API = args.api
    if args.redis:
        OFF["RATE_LIMIT_REDIS_URL"] = ON["RATE_LIMIT_REDIS_URL"] = args.redis

    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    from esp_forms import delivery
    from esp_forms.models import ProviderAccount

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    delivery.send_task = lambda *a, **k: True  # measure the submit path, not the broker
    try:
        account = ProviderAccount.objects.create(name="Bench", provider="sandbox")
        run(account, OFF, args.threads, args.threads * 5)  # warm up
        off, on = [], []
        for number in range(args.rounds):
            # Alternate which goes first, so a trend in the machine's load (or the tables'
            # growth) does not favour either.
            pair = [(off, OFF), (on, ON)] if number % 2 == 0 else [(on, ON), (off, OFF)]
            for results, override in pair:
                results.append(run(account, override, args.threads, args.signups))
        base, gated = statistics.median(off), statistics.median(on)
        print(f"database: {connection.vendor}, {args.threads} threads, {args.signups} signups "
              f"per run, {args.rounds} rounds, "
              f"{'through the JSON API' if args.api else 'store_submission only'}, "
              f"form budget counted in {'Redis' if args.redis else 'the database'}")
        print(f"gate off (baseline): {base:8.1f} signups/s (median)")
        print(f"gate on:             {gated:8.1f} signups/s (median)")
        print(f"ratio on/off:        {gated / base:8.2f}")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
