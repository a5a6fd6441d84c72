"""Delivery throughput: one Celery worker with two processes against a plain loop.

Both deliver the same number of stored eSputnik submissions to the provider emulator (its own
process, no latency, its rate limit off) on PostgreSQL:

- app: the submissions' tasks wait in Redis; ``celery -A project worker -c 2`` delivers them
  (claim with a lease, rate-limit slot, attempt committed, call outside any transaction,
  outcome and events in one transaction);
- plain loop: one process doing the same HTTP call (the same provider class and session) and
  one row UPDATE per call, nothing else.

The account's limit is raised for the run (eSputnik's documented 200/s would cap the app, not
the loop); the shared Redis limiter still runs for every call. Rounds interleaved, medians.

    .venv/bin/python bench/delivery.py [--rounds 3] [--count 600]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import harness  # noqa: E402


def store(count: int, tag: str) -> list[str]:
    from django.utils import timezone

    from esp_forms.models import SignupForm, Submission

    form = SignupForm.objects.get(form_type="bench-es")
    now = timezone.now()
    rows = Submission.objects.bulk_create(
        Submission(form=form, email=f"d{tag}-{i}@example.com", data={"first_name": "Ann"},
                   next_attempt_at=now) for i in range(count))
    return [str(r.pk) for r in rows]


def delivered() -> int:
    from esp_forms.models import Submission

    return Submission.objects.filter(delivery_status="delivered").count()


def app_round(count: int, tag: str) -> float:
    from esp_forms import outbox

    ids = store(count, tag)
    task = outbox.task_named(outbox.DELIVER_TASK)
    started = time.perf_counter()
    for pk in ids:
        outbox.send_task(task, pk)
    deadline = started + 300
    while delivered() < count:
        if time.perf_counter() > deadline:
            raise SystemExit(f"the worker delivered only {delivered()} of {count}")
        time.sleep(0.05)
    return count / (time.perf_counter() - started)


def loop_round(count: int, tag: str) -> float:
    from django.utils import timezone

    from esp_forms.models import SignupForm, Submission
    from esp_forms.providers import get_provider

    ids = store(count, tag)
    form = SignupForm.objects.select_related("account").get(form_type="bench-es")
    provider = get_provider(form.account)
    started = time.perf_counter()
    for submission in Submission.objects.filter(pk__in=ids).select_related("form__account"):
        result = provider.subscribe(submission)
        Submission.objects.filter(pk=submission.pk).update(
            delivery_status="delivered", provider_contact_id=result.contact_id,
            delivered_at=timezone.now())
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=600)
    args = parser.parse_args()
    emulator, emulator_url = harness.start_emulator()
    harness.setup_django()
    harness.make_forms(emulator_url)
    from esp_forms.models import ProviderAccount

    ProviderAccount.objects.filter(name="Bench eSputnik").update(rate_limit_per_minute=10**7)
    worker = None
    rates: dict[str, list[float]] = {"app": [], "loop": []}
    try:
        harness.reset_rows()
        worker = harness.start_worker(concurrency=2)
        app_round(50, "warm")
        for n in range(args.rounds):
            harness.reset_rows()
            rates["app"].append(app_round(args.count, f"a{n}"))
            harness.reset_rows()
            rates["loop"].append(loop_round(args.count, f"l{n}"))
    finally:
        if worker:
            worker.stop()
        emulator.stop()
        harness.reset_rows()
    app, loop = harness.median(rates["app"]), harness.median(rates["loop"])
    print(f"delivery of {args.count} eSputnik submissions to the emulator, PostgreSQL, "
          f"{args.rounds} rounds (medians)")
    print(f"  worker -c 2   {app:7.0f} deliveries/s   rounds: "
          + ", ".join(f"{v:.0f}" for v in rates["app"]))
    print(f"  plain loop    {loop:7.0f} deliveries/s   rounds: "
          + ", ".join(f"{v:.0f}" for v in rates["loop"]))
    print(f"  worker / loop: {app / loop:.2f}")
    harness.emit([harness.result_line("delivery (worker -c 2)", app, "deliveries/s",
                                      "plain loop", loop)])


if __name__ == "__main__":
    main()
