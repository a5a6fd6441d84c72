"""Every management command run the way people run it: ``python manage.py <cmd>`` in a subprocess.

``call_command`` skips the system checks and argument parsing that ``manage.py`` does, so a
command that breaks them (e.g. a method that shadows ``BaseCommand.check``) passes
``call_command`` tests and crashes for every user. Here each command runs in the demo project
on its own SQLite file, with system checks on; commands that call providers talk to the
emulator over real HTTP.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from esp_forms.emulator.demo import DEMO_ESPUTNIK_KEY, seed_demo

ROOT = Path(__file__).resolve().parent.parent
COMMANDS_DIR = ROOT / "esp_forms" / "management" / "commands"
TESTED = {"esp_forms_demo", "esp_forms_check_accounts", "esp_forms_dispatch",
          "esp_forms_refresh", "esp_forms_purge", "esp_forms_emulator", "esp_forms_reconcile",
          "esp_forms_consent"}
# Commands whose positional arguments argparse asks for before the system checks run.
NEEDS_ARGUMENTS = {"esp_forms_consent"}


class Project:
    """The demo project on a private SQLite database, driven through ``manage.py``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.env = {k: v for k, v in os.environ.items()
                    # The suite's own in-memory broker and mail settings are not what users run.
                    if k not in {"CELERY_BROKER_URL", "EMAIL_BACKEND", "DATABASE_URL",
                                 "ESP_FORMS_JSON"}}
        self.env.update({
            "DATABASE_URL": f"sqlite:///{directory / 'db.sqlite3'}",
            "ESP_FORMS_DEMO_DIR": str(directory / "demo"),
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "PYTHONUNBUFFERED": "1",
        })

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, str(ROOT / "manage.py"), *args]

    def manage(self, *args: str, ok: bool = True, timeout: float = 120
               ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.argv(*args), cwd=ROOT, env=self.env, capture_output=True,
                                text=True, timeout=timeout)
        if "SystemCheckError" not in result.stderr:  # Django prints check errors that way
            assert "Traceback" not in result.stderr, result.stderr
        if ok:
            assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        return result

    def shell(self, code: str) -> str:
        return self.manage("shell", "--no-imports", "-c", code).stdout.strip()


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    """One migrated database per module; every test gets a copy."""
    directory = tmp_path_factory.mktemp("commands-template")
    result = Project(directory).manage("migrate", "--noinput")
    assert "Applying esp_forms.0001_initial... OK" in result.stdout
    return directory / "db.sqlite3"


@pytest.fixture
def project(migrated, tmp_path) -> Project:
    shutil.copy(migrated, tmp_path / "db.sqlite3")
    return Project(tmp_path)


@pytest.fixture
def demo(project, emulator) -> Project:
    """The demo data (``esp_forms_demo``) with its emulator accounts on the test emulator."""
    seed_demo(emulator)
    result = project.manage("esp_forms_demo", "--emulator-url", emulator.url)
    assert "created form 'esputnik-news'" in result.stdout
    return project


def test_every_command_has_a_subprocess_test() -> None:
    shipped = {p.stem for p in COMMANDS_DIR.glob("esp_forms_*.py")}
    assert shipped == TESTED, "add a manage.py test here for each new command"


def test_help_of_every_command(project) -> None:
    for command in sorted(TESTED):
        result = project.manage(command, "--help")
        assert f"manage.py {command}" in result.stdout


def test_demo_seeds_once_then_has_nothing_to_do(project, emulator) -> None:
    first = project.manage("esp_forms_demo", "--emulator-url", emulator.url)
    for item in ("account 'Demo sandbox'", "form 'newsletter'", "form 'unisender-news'",
                 "superuser 'admin'"):
        assert f"  created {item}" in first.stdout
    password = (project.directory / "demo" / "admin-password.txt").read_text().strip()
    assert f"Demo admin: user 'admin', password '{password}'" in first.stdout
    again = project.manage("esp_forms_demo", "--emulator-url", emulator.url)
    assert "  nothing to do: the demo data is in place" in again.stdout


def test_check_accounts_passes_on_the_emulator_demo(demo) -> None:
    """The crash this file exists for: ``check(self, account)`` shadowed BaseCommand.check."""
    result = demo.manage("esp_forms_check_accounts")
    lines = result.stdout.splitlines()
    assert sum(line.endswith(": OK") for line in lines) == 3, result.stdout
    assert any("'Demo eSputnik (emulator)' (eSputnik): OK" in line for line in lines)


def test_check_accounts_fails_with_exit_status_1(demo, emulator) -> None:
    emulator.reset()  # the emulator forgot the demo keys
    result = demo.manage("esp_forms_check_accounts", ok=False)
    assert result.returncode == 1
    assert "CommandError: 2 of 3 account(s) failed the check." in result.stderr
    assert "  - problem: API key refused" in result.stdout
    missing = demo.manage("esp_forms_check_accounts", "--account", "999", ok=False)
    assert missing.returncode == 1
    assert "No provider account with id 999." in missing.stderr


def test_system_checks_run_and_an_error_stops_a_command(demo) -> None:
    """manage.py runs the system checks before each command; an error there stops it."""
    demo.env["ESP_FORMS_JSON"] = '{"RETRY_SCHEDULE": []}'
    for command in sorted(TESTED - {"esp_forms_emulator"}):  # the emulator needs no settings
        args = ("export", "nobody@example.com") if command in NEEDS_ARGUMENTS else ()
        result = demo.manage(command, *args, ok=False)
        assert result.returncode == 1, command
        assert "SystemCheckError" in result.stderr, command
        assert "(esp_forms.E005) ESP_FORMS['RETRY_SCHEDULE'] is invalid" in result.stderr


CREATE_SUBMISSION = (
    "from django.utils import timezone; from esp_forms.models import *; "
    "form = SignupForm.objects.get(form_type='esputnik-news'); "
    "s = Submission.objects.create(form=form, email='olena@example.com', "
    "optin_status=OptinStatus.UNCONFIRMED, next_attempt_at=timezone.now(), "
    "data={'first_name': 'Olena'}); print(s.pk)"
)


def test_dispatch_delivers_due_submissions_to_the_emulator(demo, emulator) -> None:
    pk = demo.shell(CREATE_SUBMISSION)
    result = demo.manage("esp_forms_dispatch")
    assert result.stdout.strip() == "1 submission(s) processed (delivered: 1)."
    request = emulator.last_request("esputnik")
    assert request.path.endswith("/contact/subscribe")
    assert "olena@example.com" in request.body.decode()
    assert demo.manage("esp_forms_dispatch").stdout.strip() == \
        "0 submission(s) processed (nothing due)."
    # --id forces one submission (here: already delivered, so nothing is sent again).
    forced = demo.manage("esp_forms_dispatch", "--id", pk)
    assert forced.stdout.startswith(f"{pk}: ")
    status = demo.shell(f"from esp_forms.models import Submission; "
                        f"print(Submission.objects.get(pk='{pk}').delivery_status)")
    assert status == "delivered"


def test_refresh_reads_the_optin_status_from_the_emulator(demo, emulator) -> None:
    pk = demo.shell(CREATE_SUBMISSION)
    demo.manage("esp_forms_dispatch")
    emulator.clear_requests()
    result = demo.manage("esp_forms_refresh", "--id", pk)
    assert result.stdout.startswith(f"{pk}: "), result.stdout
    assert emulator.requests("esputnik"), "the status was read from the provider"
    due = demo.manage("esp_forms_refresh")
    assert re.fullmatch(r"\d+ status read\(s\) \(.+\); \d+ expired\.", due.stdout.strip())


def test_purge(demo) -> None:
    demo.shell(CREATE_SUBMISSION)
    dry = demo.manage("esp_forms_purge", "--days", "30", "--dry-run")
    assert dry.stdout.strip() == "0 submission(s) older than 30 days would be erased."
    result = demo.manage("esp_forms_purge")
    assert re.fullmatch(r"\d+ submission\(s\) older than \d+ days erased\.",
                        result.stdout.strip())
    bad = demo.manage("esp_forms_purge", "--days", "-1", ok=False)
    assert bad.returncode == 1
    assert "--days must be zero or more." in bad.stderr


def test_reconcile_repairs_what_a_lost_webhook_left_unconfirmed(demo, emulator) -> None:
    pk = demo.shell(CREATE_SUBMISSION)
    demo.manage("esp_forms_dispatch")
    emulator.drop_webhooks(1.0)  # the confirmation webhook never arrives
    emulator.confirm("esputnik", DEMO_ESPUTNIK_KEY, "olena@example.com")
    status = ("from esp_forms.models import Submission; "
              f"print(Submission.objects.get(pk='{pk}').optin_status)")
    dry = demo.manage("esp_forms_reconcile", "--dry-run")
    assert "olena@example.com (esputnik-news): unconfirmed → confirmed" in dry.stdout, dry.stdout
    assert "1 would change" in dry.stdout
    assert demo.shell(status) == "unconfirmed"
    result = demo.manage("esp_forms_reconcile")
    assert "1 changed" in result.stdout, result.stdout
    assert demo.shell(status) == "confirmed"
    again = demo.manage("esp_forms_reconcile")
    assert "0 changed" in again.stdout, again.stdout


def test_consent_export_and_erase(demo) -> None:
    demo.shell(CREATE_SUBMISSION)
    exported = demo.manage("esp_forms_consent", "export", "OLENA@example.com")
    document = __import__("json").loads(exported.stdout)
    assert document["format"] == "esp_forms.consent_export"
    assert "olena@example.com" in exported.stdout
    refused = demo.manage("esp_forms_consent", "erase", "olena@example.com", ok=False)
    assert refused.returncode == 1  # no terminal to confirm on: nothing erased
    demo.manage("esp_forms_consent", "erase", "olena@example.com", "--yes")
    after = demo.manage("esp_forms_consent", "export", "olena@example.com")
    assert "olena@example.com" not in after.stdout.replace('"olena@example.com"', "", 1)


def test_emulator_serves_the_demo_accounts_until_interrupted(project) -> None:
    process = subprocess.Popen(project.argv("esp_forms_emulator", "--port", "0", "--demo"),
                               cwd=ROOT, env=project.env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()
        match = re.fullmatch(r"esp_forms provider emulator on (http://127\.0\.0\.1:\d+)\n", first)
        assert match, first + process.stderr.read()
        url = match.group(1)
        lines: list[str] = []
        # Ctrl-C is handled once serving; the banner's last line says when that is.
        while "Press Ctrl-C to stop.\n" not in lines:
            line = process.stdout.readline()
            assert line, "".join(lines) + process.stderr.read()  # the process ended early
            lines.append(line)
        assert (f"  demo eSputnik key {DEMO_ESPUTNIK_KEY!r}, group 'Newsletter', "
                "segment 'Confirmed'\n") in lines
        request = urllib.request.Request(f"{url}/api/v1/account/info", headers={
            "Authorization": "Basic " + __import__("base64").b64encode(
                f"user:{DEMO_ESPUTNIK_KEY}".encode()).decode(),
            "Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=15)
        assert process.returncode == 0, err
        assert "stopping" in out
        assert "Traceback" not in err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
