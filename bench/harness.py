"""What the bench/ scripts share: the database, the forms, gunicorn, the emulator, the load tool.

Every script measures the app and its baseline in the same run, several rounds interleaved, and
prints medians. Services come from the environment:

- ``BENCH_DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/esp_forms_bench``, created
  if missing; its submissions are deleted between rounds);
- ``BENCH_BROKER_URL`` (default ``redis://127.0.0.1:6379/13``; flushed between rounds).

The load tool is ``wrk`` when installed (``apt-get install wrk``), else a Python keep-alive
client with the same threads and connections (it tops out lower: compare ratios, not figures).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL",
                              "postgres://postgres@127.0.0.1:5432/esp_forms_bench")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")
SETTINGS = "bench.benchsite.settings"
DEMO_DIR = Path(tempfile.gettempdir()) / f"esp_forms_bench_{os.getpid()}"
ESPUTNIK_KEY = "demo-esputnik-key"  # the emulator's --demo account
ESPUTNIK_GROUP = "Newsletter"
CAMPAIGN_HOURLY_BUDGET = 10_000_000


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": DATABASE_URL, "CELERY_BROKER_URL": BROKER_URL,
            "DJANGO_SETTINGS_MODULE": SETTINGS, "DJANGO_DEBUG": "0",
            "ESP_FORMS_DEMO_DIR": str(DEMO_DIR), "PYTHONUNBUFFERED": "1", **extra}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- database and forms -----------------------------------------------------------------------

def setup_django(**extra: str) -> None:
    """Create the database if needed, migrate it, and set Django up in this process."""
    import psycopg

    parts = urllib.parse.urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    with psycopg.connect(host=parts.hostname, port=parts.port or 5432,
                         user=parts.username or "postgres", dbname="postgres",
                         autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ.update(env(**extra))
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env(),
                   check=True)
    import django

    django.setup()


def make_forms(emulator_url: str | None = None) -> None:
    """bench-a..d on the sandbox (the submit and render benches never deliver), bench-es and
    bench-inline on the emulator's eSputnik account."""
    from esp_forms.models import FieldKind, FormField, ProviderAccount, SignupForm

    sandbox, _ = ProviderAccount.objects.get_or_create(name="Bench sandbox", provider="sandbox")
    es, _ = ProviderAccount.objects.get_or_create(
        name="Bench eSputnik", provider="esputnik", defaults={"api_key": ESPUTNIK_KEY})
    es.api_base_url = emulator_url or "http://127.0.0.1:9"
    es.rate_limit_per_minute = None
    es.save()
    specs = [(f"bench-{c}", sandbox) for c in "abcd"] + [("bench-es", es), ("bench-inline", es)]
    for form_type, account in specs:
        form, created = SignupForm.objects.update_or_create(
            form_type=form_type, defaults={"title": form_type.title(), "account": account,
                                           "lists": ESPUTNIK_GROUP if account == es else "",
                                           "is_active": True,
                                           # A campaign's form: its owner raised the hourly
                                           # budget (still counted on every signup), or
                                           # everything past the default 100 would be held.
                                           "hourly_budget": CAMPAIGN_HOURLY_BUDGET})
        if created:
            FormField.objects.create(form=form, name="email", label="Email",
                                     kind=FieldKind.EMAIL, required=True, order=0)
            FormField.objects.create(form=form, name="first_name", label="First name",
                                     kind=FieldKind.FIRST_NAME, order=1)


def reset_rows() -> None:
    """Forget every submission and queued task from the previous round."""
    import redis
    from django.db import DatabaseError, connection, transaction

    redis.Redis.from_url(BROKER_URL).flushdb()
    # DELETE, not TRUNCATE: a worker may still be finishing a row, and TRUNCATE's table lock
    # against its row locks can deadlock.
    for attempt in range(5):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("DELETE FROM esp_forms_submissionevent")
                cursor.execute("DELETE FROM esp_forms_submission")
            return
        except DatabaseError:  # a deadlock, or an event a worker wrote meanwhile
            if attempt == 4:
                raise
            time.sleep(0.5)


def stored_rows() -> int:
    from esp_forms.models import Submission

    return Submission.objects.count()


def form_token(form_type: str) -> str:
    from esp_forms import spam

    return spam.issue_token(form_type, issued_at=time.time() - 10)


# --- processes --------------------------------------------------------------------------------

class Proc:
    def __init__(self, args: list[str], extra_env: dict[str, str] | None = None,
                 name: str = "proc") -> None:
        self.log = Path(tempfile.gettempdir()) / f"esp_forms_bench_{name}_{os.getpid()}.log"
        self.process = subprocess.Popen(args, cwd=ROOT, env=env(**(extra_env or {})),
                                        stdout=self.log.open("w"), stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{self.process.args[:4]} did not start:\n"
                                 f"{self.output()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()


def start_emulator(latency: float = 0.0) -> tuple[Proc, str]:
    import requests

    port = free_port()
    proc = Proc([sys.executable, "-m", "esp_forms.emulator", "--port", str(port), "--demo",
                 "--quiet"], name="emulator")
    proc.wait_for("Ctrl-C", 30)
    url = f"http://127.0.0.1:{port}"
    # eSputnik's documented 200 calls/s would cap the loops: the rate-limit bench sets its own.
    requests.post(url + "/_emulator/rate-limits", timeout=5, json={
        "provider": "esputnik", "api_key": ESPUTNIK_KEY, "limit": 0, "window": 1})
    set_latency(url, latency)
    return proc, url


def set_latency(url: str, seconds: float) -> None:
    import requests

    requests.post(url + "/_emulator/latency", json={"seconds": seconds}, timeout=5)


def start_gunicorn(workers: int = 2, extra_env: dict[str, str] | None = None) -> tuple[Proc, str]:
    port = free_port()
    proc = Proc([sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind",
                 f"127.0.0.1:{port}", "--worker-class", "sync", "--log-level", "info",
                 "--timeout", "60", "project.wsgi"], extra_env, name="gunicorn")
    proc.wait_for("Booting worker", 30)
    time.sleep(1.0)
    return proc, f"http://127.0.0.1:{port}"


def start_worker(concurrency: int = 2, extra_env: dict[str, str] | None = None) -> Proc:
    proc = Proc([sys.executable, "-m", "celery", "-A", "project", "worker", "-l", "info",
                 "--concurrency", str(concurrency), "--pool", "prefork", "--without-gossip",
                 "--without-mingle", "--without-heartbeat"], extra_env, name="worker")
    proc.wait_for("ready.", 60)
    return proc


# --- load -------------------------------------------------------------------------------------

@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx answers and socket errors


POST_LUA = """
counter = 0
function setup(thread)
  n = (n or 0) + 1
  thread:set("tid", n)
end
function init(args)
  token = args[1]
  run = args[2]
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local body = string.format(
    '{"email":"u%s-%d-%d@example.com","first_name":"Ann","form_token":"%s"}',
    run, tid, counter, token)
  return wrk.format(nil, nil, nil, body)
end
"""


def load(url: str, seconds: float, *, post_token: str | None = None, connections: int = 16,
         threads: int = 2) -> Load:
    """Drive ``url`` for ``seconds``: GET, or POST of unique signups when ``post_token``."""
    if shutil.which("wrk"):
        return _wrk(url, seconds, post_token, connections, threads)
    return _python_load(url, seconds, post_token, connections, threads)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _wrk(url: str, seconds: float, post_token: str | None, connections: int,
         threads: int) -> Load:
    args = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
            "--latency", "--timeout", "10s"]
    script = None
    if post_token:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(POST_LUA)
        script.close()
        args += ["-s", script.name, url, "--", post_token, str(time.time_ns())]
    else:
        args.append(url)
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    if script:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    pct = {p: _ms(v, u) for p, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)\b", out)}
    errors = 0
    found = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(found.group(1)) if found else 0
    found = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors += sum(int(x) for x in found.groups()) if found else 0
    return Load(rps, pct.get("50", float("nan")), pct.get("99", float("nan")), total, errors)


def _python_load(url: str, seconds: float, post_token: str | None, connections: int,
                 threads: int) -> Load:
    import http.client

    parts = urllib.parse.urlsplit(url)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(cid: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        n = 0
        mine: list[float] = []
        while time.perf_counter() < deadline:
            n += 1
            started = time.perf_counter()
            try:
                if post_token:
                    body = json.dumps({"email": f"p{time.time_ns()}-{cid}-{n}@example.com",
                                       "first_name": "Ann", "form_token": post_token})
                    conn.request("POST", parts.path, body,
                                 {"Content-Type": "application/json"})
                else:
                    conn.request("GET", parts.path)
                response = conn.getresponse()
                response.read()
                if response.status >= 400:
                    with lock:
                        errors[0] += 1
            except OSError:
                with lock:
                    errors[0] += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    pool = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan")
    return Load(len(latencies) / elapsed, median(latencies) * 1000, p99, len(latencies),
                errors[0])


def wait_idle(url: str, timeout: float = 60) -> None:
    """Wait until the server has drained what the last load left queued (a sync worker keeps
    serving requests whose client already left), so it does not spill into the next round."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            requests.get(url + "/bench/bare/", timeout=timeout)
        except requests.RequestException:
            pass
        if time.perf_counter() - started < 0.5:
            return
    raise SystemExit(f"{url} stayed busy for {timeout} s")


def load_tool() -> str:
    return "wrk" if shutil.which("wrk") else "python keep-alive client"


def result_line(name: str, value: float, unit: str, baseline_name: str, baseline: float,
                note: str = "") -> dict[str, Any]:
    """One row of the `make bench` table, printed as JSON on the script's last line."""
    return {"figure": name, "value": round(value, 2), "unit": unit, "baseline": baseline_name,
            "baseline_value": round(baseline, 2),
            "ratio": round(value / baseline, 2) if baseline else None, "note": note}


def emit(rows: list[dict[str, Any]]) -> None:
    print("BENCH-RESULT " + json.dumps(rows))
