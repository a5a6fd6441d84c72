"""The README's "Add it to your site", run as a new user would (marker ``readme``).

Builds the wheel, installs it with the README's pip command in a fresh virtualenv, runs
``django-admin startproject mysite``, applies the README's marked blocks as they stand in
README.md (see ``blocks.py``), migrates, runs ``check --deploy``, renders the template tag,
posts through the JSON API by running the README's curl block, and sees a real
``celery -A mysite worker`` deliver to the provider emulator.

What the test changes, and only that: the resources of this machine. The settings block is
appended verbatim; then a few lines point its PostgreSQL database, its Redis URLs (broker,
limiter and cache share the test's one Redis database) at ``DATABASE_URL`` and
``CELERY_BROKER_URL``, and the curl block's ``127.0.0.1:8000`` at the test's server port.

``check --deploy`` must report nothing from esp_forms (and no error). The warnings it may
report are the fresh project's own deployment settings, which the README leaves to the site:
``DEPLOY_WARNINGS_OF_THE_PROJECT`` below.

``make test`` runs it with the service URLs; without PostgreSQL and Redis it is skipped, and
with ``CI=true`` it fails instead.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from esp_forms.emulator.demo import DEMO_ESPUTNIK_GROUP, DEMO_ESPUTNIK_KEY, seed_demo
from tests.readme.blocks import Block, commands, one, parse_curl_block, readme_blocks
from tests.wheel import build_wheel

pytestmark = pytest.mark.readme

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "mysite"
# security.W004 HSTS, W008 SSL redirect, W009 SECRET_KEY (startproject's "django-insecure-"),
# W012/W016 secure session/CSRF cookies, W018 DEBUG, W020 empty ALLOWED_HOSTS: the site's
# deployment, not esp_forms'.
DEPLOY_WARNINGS_OF_THE_PROJECT = {"security.W004", "security.W008", "security.W009",
                                  "security.W012", "security.W016", "security.W018",
                                  "security.W020"}
README_PORT = "127.0.0.1:8000"


def _services() -> tuple[dict[str, str], str]:
    """PostgreSQL connection parameters and the Redis URL, or skip (fail with CI=true)."""
    problems = []
    database = urlsplit(os.environ.get("DATABASE_URL", ""))
    broker = os.environ.get("CELERY_BROKER_URL", "")
    db = {"NAME": database.path.lstrip("/"), "USER": database.username or "postgres",
          "PASSWORD": database.password or "", "HOST": database.hostname or "127.0.0.1",
          "PORT": str(database.port or 5432)}
    if database.scheme not in ("postgres", "postgresql"):
        problems.append("DATABASE_URL is not a postgres:// URL")
    else:
        import psycopg

        try:
            psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"],
                            password=db["PASSWORD"] or None, dbname="postgres",
                            connect_timeout=3).close()
        except Exception as err:
            problems.append(f"PostgreSQL unreachable ({err.__class__.__name__})")
    if not broker.startswith("redis://"):
        problems.append("CELERY_BROKER_URL is not a redis:// URL")
    else:
        import redis

        try:
            redis.Redis.from_url(broker, socket_connect_timeout=3).ping()
        except Exception as err:
            problems.append(f"Redis unreachable ({err.__class__.__name__})")
    if problems:
        why = "; ".join(problems) + " (make test passes TEST_DATABASE_URL and TEST_BROKER_URL)"
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but the README test cannot run: " + why, pytrace=False)
        pytest.skip("README test SKIPPED: " + why)
    return db, broker


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Site:
    """The fresh project: its directory, its virtualenv and the processes started in it."""

    def __init__(self, directory: Path, venv: Path) -> None:
        self.directory = directory
        self.venv = venv
        self.processes: list[tuple[subprocess.Popen, Path]] = []
        # What a new user's shell has: no DJANGO_SETTINGS_MODULE, DATABASE_URL or the suite's
        # own settings; the venv first on PATH, as after "source venv/bin/activate".
        self.env = {k: os.environ[k] for k in ("HOME", "LANG", "LC_ALL", "TMPDIR", "PIP_FIND_LINKS",
                                                "PIP_CERT", "PIP_DEFAULT_TIMEOUT",
                                                "PIP_DISABLE_PIP_VERSION_CHECK")
                    if k in os.environ}
        self.env.update({"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
                         "VIRTUAL_ENV": str(venv), "PYTHONUNBUFFERED": "1"})

    def run(self, command: str | list[str], *, timeout: float = 300, ok: bool = True
            ) -> subprocess.CompletedProcess[str]:
        argv = shlex.split(command) if isinstance(command, str) else command
        result = subprocess.run(argv, cwd=self.directory, env=self.env, capture_output=True,
                                text=True, timeout=timeout)
        if ok:
            assert result.returncode == 0, (f"{command} exited {result.returncode}:\n"
                                            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def start(self, command: str, name: str, ready: str, timeout: float = 90) -> Path:
        log = self.directory.parent / f"{name}.log"
        process = subprocess.Popen(shlex.split(command), cwd=self.directory, env=self.env,
                                   stdout=log.open("w"), stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes.append((process, log))
        deadline = time.monotonic() + timeout
        while ready not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{command} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        return log

    def shell(self, code: str) -> str:
        return self.run(["python", "manage.py", "shell", "--no-imports", "-c", code]
                        ).stdout.strip()

    def stop(self) -> None:
        for process, _log in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)


@pytest.fixture
def database() -> Iterator[tuple[dict[str, str], str]]:
    """A database of its own for the fresh project (dropped afterwards), and the Redis URL."""
    import psycopg
    import redis

    db, broker = _services()
    db = {**db, "NAME": f"test_{db['NAME'] or 'esp_forms'}_readme"}

    def admin(sql: str) -> None:
        with psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"],
                             password=db["PASSWORD"] or None, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(sql)

    admin(f'DROP DATABASE IF EXISTS "{db["NAME"]}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{db["NAME"]}"')
    redis.Redis.from_url(broker).flushdb()
    yield db, broker
    admin(f'DROP DATABASE IF EXISTS "{db["NAME"]}" WITH (FORCE)')


@pytest.fixture
def site(tmp_path) -> Iterator[Site]:
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site = Site(tmp_path / PROJECT, venv)
    site.directory.mkdir()
    install = commands(one(readme_blocks(), "install"))
    for line in install:
        argv = shlex.split(line)
        # The one change: the package the README names is the wheel just built.
        argv = [str(wheel) + arg[len("esp-forms"):] if arg.startswith("esp-forms") else arg
                for arg in argv]
        assert argv[:2] == ["pip", "install"] and str(wheel) in " ".join(argv), line
        site.run(argv, timeout=600)
    site.run(["django-admin", "startproject", PROJECT, "."])
    try:
        yield site
    finally:
        site.stop()


def apply_blocks(site: Site, blocks: list[Block], db: dict[str, str], broker: str) -> None:
    for block in blocks:
        if block.action not in ("append", "create"):
            continue
        target = site.directory / block.path
        if block.action == "create":
            target.write_text(block.body)
        else:
            assert target.exists(), f"{block.path} is not a file startproject makes"
            target.write_text(target.read_text() + "\n" + block.body)
    settings = site.directory / PROJECT / "settings.py"
    settings.write_text(settings.read_text() + f"""

# --- tests/readme: this machine's services instead of the README's example addresses.
assert DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
DATABASES["default"].update({json.dumps(db)})
assert CELERY_BROKER_URL.startswith("redis://")
CELERY_BROKER_URL = {broker!r}
assert CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
CACHES["default"]["LOCATION"] = {broker!r}
""")


def run_curl_block(block: Block, base: str) -> str:
    """Run the README's curl example against ``base`` and return what it printed."""
    script = block.body.replace(f"http://{README_PORT}", base)
    assert script != block.body, f"the curl example no longer talks to {README_PORT}"
    if shutil.which("curl"):
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout
    # No curl on this machine: do what the block says, step by step, read from the block.
    steps = parse_curl_block(script)
    with urllib.request.urlopen(steps.get_url, timeout=10) as answer:
        token = json.load(answer)["form_token"]
    time.sleep(steps.wait)
    request = urllib.request.Request(steps.post_url, data=steps.body(token).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.read().decode()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def test_the_readme_works_in_a_fresh_project(site, database, emulator):
    db, broker = database
    blocks = readme_blocks()
    apply_blocks(site, blocks, db, broker)

    run = commands(one(blocks, "run"))
    assert run[0] == "python manage.py migrate"
    migrate = site.run(run[0])
    assert "Applying esp_forms.0001_initial... OK" in migrate.stdout

    # "In the admin, add a provider account and a signup form with its fields": the same
    # models, saved with the admin's validation; the account points at the emulator.
    seed_demo(emulator)
    site.shell(f"""
from esp_forms.models import FormField, ProviderAccount, SignupForm
account = ProviderAccount(name="Shop", provider="esputnik", api_key={DEMO_ESPUTNIK_KEY!r},
                          api_base_url={emulator.url!r})
account.full_clean(); account.save()
form = SignupForm(account=account, form_type="newsletter", title="Newsletter",
                  lists={DEMO_ESPUTNIK_GROUP!r})
form.full_clean(); form.save()
FormField.objects.create(form=form, name="email", label="Email", kind="email", required=True)
FormField.objects.create(form=form, name="first_name", label="First name", kind="first_name",
                         order=1)
""")
    checked = site.run("python manage.py esp_forms_check_accounts")
    assert "'Shop' (eSputnik): OK" in checked.stdout, checked.stdout

    # As the README's settings stand (startproject's DEBUG = True), then as deployed: the
    # esp_forms checks that only speak outside DEBUG (the throttle's cache) run too.
    (site.directory / PROJECT / "settings_deployed.py").write_text(
        "from .settings import *  # noqa\nDEBUG = False\nALLOWED_HOSTS = ['www.example.com']\n"
        "ESP_FORMS['SITE_URL'] = 'https://www.example.com'\n")
    for extra in ([], ["--settings", f"{PROJECT}.settings_deployed"]):
        deploy = site.run(["python", "manage.py", "check", "--deploy", "--database", "default",
                           *extra], ok=False)
        output = deploy.stdout + deploy.stderr
        reported = set(re.findall(r"\(([a-z_]+\.[EWCI]\d+)\)", output))
        assert deploy.returncode == 0, output
        assert not {i for i in reported if i.startswith("esp_forms.")}, output
        assert reported <= DEPLOY_WARNINGS_OF_THE_PROJECT, output
    assert "security.W018" not in reported  # the second run really was without DEBUG

    template = one(blocks, "template").body
    html = site.shell(
        "from django.template import engines\n"
        "from django.test import RequestFactory\n"
        f"page = engines['django'].from_string({template!r})\n"
        "print(page.render({}, RequestFactory().get('/', HTTP_HOST='localhost')))")
    assert re.search(r"<form[^>]+method=\"post\"", html), html
    for name in ("email", "first_name", "form_token"):
        assert f'name="{name}"' in html, name

    for line in run[1:]:
        assert line.startswith(f"celery -A {PROJECT} "), line
        kind = line.split()[3]
        site.start(line, kind, ready="ready." if kind == "worker" else "beat: Starting")
    port = _free_port()
    server_log = site.start(f"python manage.py runserver 127.0.0.1:{port} --noreload",
                            "web", ready="Quit the server with")
    base = f"http://127.0.0.1:{port}"

    answer = json.loads(run_curl_block(one(blocks, "curl"), base))
    assert answer["ok"] is True and answer["delivery_status"] == "pending", answer
    status_url = f"{base}/api/esp-forms/submissions/{answer['id']}/"
    # Well inside the sweeper's 60 s grace: the task queued at submit time did it, so the web
    # process found the Celery app (the mysite/__init__.py import) and the worker its task.
    deadline = time.monotonic() + 30
    while get_json(status_url)["delivery_status"] != "delivered":
        assert time.monotonic() < deadline, (
            "the worker did not deliver:\n" + (site.directory.parent / "worker.log").read_text())
        time.sleep(0.5)
    sent = [r for r in emulator.requests("esputnik") if r.path.endswith("/contact/subscribe")]
    assert len(sent) == 1
    assert json.loads(sent[0].body)["contact"]["channels"] == [
        {"type": "email", "value": "olena@example.com"}]

    # Without the README's wait the signup "succeeds" and vanishes: the log says why.
    hasty = one(blocks, "curl")
    hasty = Block(hasty.action, hasty.path, hasty.lang,
                  re.sub(r"^sleep .*$", "", hasty.body, flags=re.M))
    dropped = json.loads(run_curl_block(hasty, base))
    assert dropped["ok"] is True
    assert get_json(f"{base}/api/esp-forms/submissions/{dropped['id']}/")[
        "delivery_status"] == "pending"
    assert ("Dropped a submission to form newsletter as spam (too_fast)"
            in server_log.read_text()), server_log.read_text()[-3000:]
    counted = site.shell("from esp_forms.models import SpamCount; "
                         "print(list(SpamCount.objects.values_list('reason', 'count')))")
    assert counted == "[('too_fast', 1)]"
