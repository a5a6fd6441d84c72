"""Faults around the outbox, with real Celery workers: a row that raises in every batch, and a
PostgreSQL server restarted while a worker delivers hundreds of submissions.

The restart test runs its own throwaway PostgreSQL cluster (initdb into a temporary directory,
a free port), never the shared server.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from esp_forms import tasks
from esp_forms.models import DeliveryStatus, OptinStatus, Submission
from tests.conftest import ESPUTNIK_KEY, make_submission
from tests.services.conftest import ROOT, WORKER_ESP_FORMS, wait_for
from tests.services.test_workers import statuses, subscribe_calls

pytestmark = pytest.mark.services

POISON = "poison@example.com"


# --- one row that raises ----------------------------------------------------------------------

def test_one_row_raising_in_every_batch_never_blocks_the_others(esputnik_form, emulator,
                                                               start_worker):
    start_worker("w1", app="tests.services.poison",
                 env_extra={"ESP_FORMS_POISON_EMAIL": POISON})
    past = timezone.now() - timedelta(minutes=5)
    # First in line in every batch: the oldest due row.
    poison = make_submission(esputnik_form, POISON, next_attempt_at=past - timedelta(minutes=1))
    others = [make_submission(esputnik_form, f"ok{i}@example.com", next_attempt_at=past).pk
              for i in range(10)]

    # Delivery: the sweeper's batch delivers the others; the poisoned row is backed off.
    sweep_started = timezone.now()
    tasks.sweep_outbox.delay()
    wait_for(lambda: statuses(others) == {"delivered": 10}, 60, "the others' delivery")
    poison.refresh_from_db()
    assert poison.delivery_status == DeliveryStatus.PENDING
    # Backed off (by the retry schedule: a second in this test's settings), lease freed.
    assert poison.next_attempt_at > sweep_started and poison.lease_owner == ""
    assert "poisoned row" in poison.last_error
    assert all(c.json["contact"]["channels"][0]["value"] != POISON
               for c in subscribe_calls(emulator))

    # Polling: the poisoned row is first in line again; the others are read and confirmed.
    for i in range(10):
        emulator.confirm("esputnik", ESPUTNIK_KEY, f"ok{i}@example.com", group="Confirmed")
    Submission.objects.filter(pk=poison.pk).update(
        delivery_status=DeliveryStatus.DELIVERED, next_attempt_at=None,
        next_optin_check_at=past - timedelta(minutes=1))
    Submission.objects.filter(pk__in=others).update(next_optin_check_at=past)
    poll_started = timezone.now()
    tasks.poll_optin.delay()
    wait_for(lambda: Counter(Submission.objects.filter(pk__in=others)
                             .values_list("optin_status", flat=True))
             == {OptinStatus.CONFIRMED: 10}, 60, "the others' status reads")
    poison.refresh_from_db()
    assert poison.optin_status == OptinStatus.UNCONFIRMED
    # Backed off to its next interval (a quarter of its age: tiny in this test's settings).
    assert poison.next_optin_check_at >= poll_started and poison.lease_owner == ""

    # Retention: the batch holding the poisoned row is erased row by row around it.
    Submission.objects.update(created_at=timezone.now() - timedelta(days=400))
    tasks.purge.delay()
    wait_for(lambda: not Submission.objects.filter(pk__in=others, purged_at__isnull=True)
             .exists(), 60, "the others' purge")
    poison.refresh_from_db()
    assert poison.purged_at is None and poison.email == POISON
    assert set(Submission.objects.filter(pk__in=others).values_list("email", flat=True)) == {""}


# --- PostgreSQL restarted mid-delivery --------------------------------------------------------

def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(f"{folder}/{name}"):
            return f"{folder}/{name}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A throwaway PostgreSQL server: its own data directory and port."""

    def __init__(self, initdb: str, pg_ctl: str) -> None:
        self.pg_ctl = pg_ctl
        self.root = Path(tempfile.mkdtemp(prefix="esp_forms_pg_"))
        self.data = self.root / "data"
        self.port = _free_port()
        # initdb refuses to run as root: run the server as the postgres OS user then.
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                        f"-c fsync=off -c max_connections=50")
        self.start()

    def start(self) -> None:
        # With a log file: a server writing to our pipe would keep it open for good.
        self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", self.options, "-w", "start")

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def restart(self) -> None:
        # ``immediate``: the server dies like a crash (no checkpoint), then recovers.
        self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        time.sleep(1.0)  # down for a moment: connections fail, not just reset
        self.start()

    def stop(self) -> None:
        try:
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def own_postgres():
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if not (initdb and pg_ctl):
        message = ("PostgreSQL restart test SKIPPED: initdb/pg_ctl not found (install the "
                   "PostgreSQL server package)")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    cluster = Cluster(initdb, pg_ctl)
    yield cluster
    cluster.stop()


SETUP = """
import json
from django.utils import timezone
from esp_forms.models import *
account = ProviderAccount.objects.create(name="eSputnik", provider="esputnik",
                                         api_key={key!r}, api_base_url={url!r})
form = SignupForm.objects.create(account=account, form_type="es-news", title="News",
                                 lists="Newsletter", double_opt_in=DoubleOptIn.PROVIDER)
FormField.objects.create(form=form, name="email", label="Email", kind="email", required=True)
now = timezone.now()
rows = Submission.objects.bulk_create(
    Submission(form=form, email=f"r{{i}}@example.com", next_attempt_at=now,
               optin_status=OptinStatus.UNCONFIRMED) for i in range({n}))
print(json.dumps([str(r.pk) for r in rows]))
"""


def test_postgres_restarted_while_a_worker_delivers_hundreds(emulator, start_worker,
                                                             own_postgres):
    import psycopg

    count = 300
    url = own_postgres.url("faults")
    subprocess.run([*own_postgres.as_user, "createdb", "-h", "127.0.0.1", "-p",
                    str(own_postgres.port), "-U", "postgres", "faults"], check=True)
    env = {**os.environ, "DATABASE_URL": url, "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "ESP_FORMS_JSON": json.dumps(WORKER_ESP_FORMS)}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env,
                   check=True)
    emulator.add_esputnik_account(ESPUTNIK_KEY, groups=["Newsletter"])
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         SETUP.format(key=ESPUTNIK_KEY, url=emulator.url, n=count)],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    ids = json.loads(out.strip().splitlines()[-1])
    emulator.set_latency(0.02)  # a few seconds of work, so the restart lands mid-run
    start_worker("w1", concurrency=2, database_url=url)

    def delivered() -> int:
        try:
            with psycopg.connect(host="127.0.0.1", port=own_postgres.port, user="postgres",
                                 dbname="faults", connect_timeout=3) as conn:
                return conn.execute("SELECT count(*) FROM esp_forms_submission "
                                    "WHERE delivery_status = 'delivered'").fetchone()[0]
        except psycopg.OperationalError:
            return -1  # restarting

    for pk in ids:
        tasks.deliver_submission.delay(pk)
    wait_for(lambda: delivered() >= count // 4, 120, "a quarter delivered")
    own_postgres.restart()
    restarted_at = delivered()
    assert restarted_at < count, "the restart came too late to test anything"
    wait_for(lambda: delivered() >= count // 2, 120, "half delivered after the restart")
    own_postgres.restart()

    # Rows whose task gave up during the outage wait for the sweeper (beat's job).
    deadline = time.monotonic() + 180
    while delivered() < count and time.monotonic() < deadline:
        tasks.sweep_outbox.delay()
        time.sleep(3)
    assert delivered() == count
    calls = Counter(c.json["contact"]["channels"][0]["value"] for c in subscribe_calls(emulator))
    assert len(calls) == count
    twice = {email: n for email, n in calls.items() if n > 1}
    assert not twice, f"called more than once: {twice}"


def test_outcome_and_events_recorded_in_one_statement(esputnik_form, emulator):
    """Outside a transaction on PostgreSQL the finish is one guarded statement: the events are
    written with the row, and not at all for a lost lease."""
    from esp_forms import delivery, outbox
    from esp_forms.models import EventKind

    submission = make_submission(esputnik_form, "one@example.com")
    assert delivery.deliver(submission.pk).status == "delivered"
    submission.refresh_from_db()
    assert submission.lease_owner == "" and submission.attempt_started_at is None
    assert set(submission.events.values_list("kind", flat=True)) == {
        EventKind.ATTEMPT, EventKind.DELIVERED}

    other = make_submission(esputnik_form, "two@example.com")
    claimed = outbox.claim_one(other.pk, owner="slow")
    Submission.objects.filter(pk=other.pk).update(lease_owner="someone-else")
    assert not outbox.finish(claimed, owner="slow", events=[(EventKind.DELIVERED, "x", {})],
                             fields={"delivery_status": DeliveryStatus.DELIVERED})
    other.refresh_from_db()
    assert other.delivery_status == DeliveryStatus.PENDING and not other.events.exists()
