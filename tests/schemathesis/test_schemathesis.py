"""Schemathesis against the running demo (``-m schemathesis``; ``make test`` runs it).

The demo's web server runs as in production (``DJANGO_DEBUG=0``, behind project/wsgi.py) on
its own SQLite file; Schemathesis reads ``/api/esp-forms/schema/`` and runs every check it has
(server errors, status codes, content types, headers, response schemas, negative data rejected,
positive data accepted, unsupported methods...) in all its phases. Any disagreement between the
schema and the implementation fails the test with Schemathesis's report.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.schemathesis

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "60")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def demo(tmp_path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "DJANGO_DEBUG": "0", "ESP_FORMS_DEMO_DIR": str(tmp_path),
           "PORT": str(port), "ESP_FORMS_DEMO_PASSWORD": "schemathesis-demo",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
           "CELERY_BROKER_URL": "memory://",
           # Schemathesis sends hundreds of submissions from one address without waiting.
           "ESP_FORMS_JSON": json.dumps({"SUBMIT_THROTTLE": "1000000/min",
                                         "MIN_FILL_SECONDS": 0})}
    manage = [sys.executable, str(ROOT / "manage.py")]
    for command in (["migrate", "-v", "0"], ["esp_forms_demo"]):
        subprocess.run(manage + command, env=env, cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    server = subprocess.Popen(manage + ["runserver", f"127.0.0.1:{port}", "--noreload"],
                              env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "server.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/api/esp-forms/forms/newsletter/", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("the demo did not start: " + (tmp_path / "server.log").read_text())
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_schemathesis_finds_no_disagreement_and_no_server_error(demo, tmp_path):
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
    result = subprocess.run(
        [st, "--config-file", str(CONFIG), "run", f"{demo}/api/esp-forms/schema/?format=json",
         "--checks", "all", "--workers", "1", "--max-examples", MAX_EXAMPLES,
         "--seed", os.environ.get("SCHEMATHESIS_SEED", "20261203"), "--no-color"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    report = result.stdout + result.stderr
    print(report[-1200:])  # the summary, in the log of a passing run too (pytest -s)
    assert result.returncode == 0, report
    assert "passed" in report and "failed" not in report.split("SUMMARY")[-1], report
    server_log = (tmp_path / "server.log").read_text(errors="replace")
    assert "Traceback" not in server_log, server_log[-5000:]
