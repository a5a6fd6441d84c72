"""Service-backed tests: PostgreSQL, a real Redis broker and real Celery worker processes.

``make test`` runs this folder with ``DATABASE_URL`` (PostgreSQL) and ``CELERY_BROKER_URL``
(Redis). With ``CI=true`` a missing service fails the run; elsewhere every test here is skipped
with a banner saying what was skipped and why.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = ROOT / "test-artifacts"
ARTIFACTS_DIR.mkdir(exist_ok=True)

# What the workers (and the test process, through the ``settings`` fixture) run with: a short
# retry schedule and no sweeper grace, so recoveries take seconds, not minutes.
WORKER_ESP_FORMS = {
    "RETRY_SCHEDULE": [1, 1, 2],
    "RETRY_JITTER": 0,
    "SWEEP_GRACE_SECONDS": 0,
    "POLL_INITIAL_DELAY": 0,
    "RATE_LIMIT_SAFETY_SECONDS": 0.5,
    "SITE_URL": "http://testserver",
    # A short outbox lease, still longer than one call's timeouts, so a killed worker's row
    # is taken over within seconds.
    "CONNECT_TIMEOUT": 2,
    "READ_TIMEOUT": 5,
    "LEASE_SECONDS": 8,
}


def _missing_services() -> list[str]:
    missing = []
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        missing.append("DATABASE_URL does not point at PostgreSQL")
    else:
        import psycopg

        try:
            psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432,
                            user=db["USER"], dbname="postgres", connect_timeout=3).close()
        except Exception as err:
            missing.append(f"PostgreSQL unreachable ({err.__class__.__name__})")
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith("redis://"):
        missing.append("CELERY_BROKER_URL is not a redis:// URL")
    else:
        import redis

        try:
            redis.Redis.from_url(broker, socket_connect_timeout=3).ping()
        except Exception as err:
            missing.append(f"Redis unreachable ({err.__class__.__name__})")
    return missing


_MISSING: list[str] = []


@pytest.hookimpl(trylast=True)  # after -m deselection: only what will really run counts
def pytest_collection_modifyitems(config, items):
    here = [item for item in items if str(ROOT / "tests" / "services") in str(item.fspath)]
    if not here:
        return
    _MISSING[:] = _missing_services()
    if not _MISSING:
        return
    reason = ("service-backed test SKIPPED: " + "; ".join(_MISSING)
              + ". Run 'make test' (it sets DATABASE_URL and CELERY_BROKER_URL) with "
                "PostgreSQL and Redis running.")
    if os.environ.get("CI") == "true":
        raise pytest.UsageError("CI=true but the services these tests need are missing: "
                                + "; ".join(_MISSING))
    for item in here:
        item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter):
    if _MISSING:
        terminalreporter.write_sep("!", "SERVICE-BACKED TESTS WERE SKIPPED", red=True, bold=True)
        terminalreporter.write_line("Skipped: every test in tests/services (real Celery workers on "
                                    "PostgreSQL and Redis).")
        terminalreporter.write_line("Why: " + "; ".join(_MISSING))


@pytest.fixture(autouse=True)
def _service_settings(settings, transactional_db):
    settings.ESP_FORMS = {**getattr(settings, "ESP_FORMS", {}), **WORKER_ESP_FORMS}
    import redis

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    yield


class Worker:
    def __init__(self, name: str, process: subprocess.Popen, log: Path) -> None:
        self.name, self.process, self.log = name, process, log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and its pool children), like an OOM kill."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def start_worker(tmp_path) -> Iterator[Callable[..., Worker]]:
    """Start ``celery -A project worker`` processes on the test database and broker."""
    workers: list[Worker] = []
    db_name = connection.settings_dict["NAME"]  # the test database pytest-django created
    db = settings.DATABASES["default"]

    def start(name: str = "w1", *, concurrency: int = 1, extra: dict | None = None,
              app: str = "project", database_url: str | None = None,
              env_extra: dict | None = None) -> Worker:
        env = {
            **os.environ,
            **(env_extra or {}),
            "DATABASE_URL": database_url or (
                f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
                f"{db['PORT'] or 5432}/{db_name}"),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "ESP_FORMS_JSON": json.dumps({**WORKER_ESP_FORMS, **(extra or {})}),
            "ESP_FORMS_DEMO_DIR": str(tmp_path / "demo"),
            "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
        }
        log = tmp_path / f"{name}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", app, "worker", "-l", "info",
             "-n", f"{name}@%h", "--concurrency", str(concurrency), "--pool", "prefork",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = Worker(name, process, log)
        workers.append(worker)
        deadline = time.monotonic() + 60
        while "ready." not in worker.output():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {name} did not start:\n{worker.output()[-3000:]}")
            time.sleep(0.2)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def wait_for(predicate: Callable[[], bool], timeout: float = 30, what: str = "condition"
             ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
