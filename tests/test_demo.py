"""The demo: seeding command, the demo site's pages and ``python -m project.run``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.urls import reverse

from esp_forms.emulator.demo import DEMO_ESPUTNIK_KEY, DEMO_UNISENDER_LIST_ID
from esp_forms.management.commands.esp_forms_demo import PASSWORD_ENV, PASSWORD_FILE
from esp_forms.models import DoubleOptIn, FieldKind, ProviderAccount, SignupForm

BASE_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture
def demo_dir(settings, tmp_path, monkeypatch) -> Path:
    settings.DEMO_DIR = tmp_path
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.delenv("EMULATOR_PORT", raising=False)
    return tmp_path


def run_demo_command() -> str:
    out = StringIO()
    call_command("esp_forms_demo", stdout=out)
    return out.getvalue()


# --- esp_forms_demo --------------------------------------------------------------------------


@pytest.mark.django_db
def test_demo_command_seeds_accounts_forms_and_admin(demo_dir):
    output = run_demo_command()

    forms = {f.form_type: f for f in SignupForm.objects.select_related("account")}
    assert set(forms) == {"newsletter", "product-updates", "esputnik-news", "unisender-news"}
    assert forms["newsletter"].account.provider == "sandbox"
    assert forms["newsletter"].double_opt_in == DoubleOptIn.PROVIDER
    assert list(forms["newsletter"].fields.values_list("kind", flat=True)) == [
        FieldKind.EMAIL, FieldKind.FIRST_NAME]
    updates = forms["product-updates"]
    assert updates.double_opt_in == DoubleOptIn.LOCAL and updates.consent_text
    assert set(updates.fields.values_list("kind", flat=True)) == {
        FieldKind.EMAIL, FieldKind.PHONE, FieldKind.CHOICE}
    esputnik = forms["esputnik-news"].account
    assert (esputnik.provider, esputnik.api_key, esputnik.api_base_url) == (
        "esputnik", DEMO_ESPUTNIK_KEY, "http://127.0.0.1:8025")
    assert forms["unisender-news"].lists == str(DEMO_UNISENDER_LIST_ID)

    password = (demo_dir / PASSWORD_FILE).read_text().strip()
    assert len(password) >= 12
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    assert password in output


@pytest.mark.django_db
def test_demo_command_is_idempotent(demo_dir, monkeypatch):
    run_demo_command()
    password = (demo_dir / PASSWORD_FILE).read_text()
    counts = (ProviderAccount.objects.count(), SignupForm.objects.count(),
              get_user_model().objects.count())

    output = run_demo_command()
    assert "nothing to do" in output
    assert (demo_dir / PASSWORD_FILE).read_text() == password
    assert (ProviderAccount.objects.count(), SignupForm.objects.count(),
            get_user_model().objects.count()) == counts

    # A different emulator port on the next run moves the emulator accounts, nothing else.
    monkeypatch.setenv("EMULATOR_PORT", "9125")
    run_demo_command()
    urls = set(ProviderAccount.objects.exclude(provider="sandbox")
               .values_list("api_base_url", flat=True))
    assert urls == {"http://127.0.0.1:9125"}
    assert SignupForm.objects.count() == counts[1]


@pytest.mark.django_db
def test_demo_password_from_the_environment(demo_dir, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "correct-horse-battery")
    output = run_demo_command()
    assert get_user_model().objects.get(username="admin").check_password("correct-horse-battery")
    assert not (demo_dir / PASSWORD_FILE).exists()
    assert f"${PASSWORD_ENV}" in output

    # Changing the variable changes the password on the next run, so the printout stays true.
    monkeypatch.setenv(PASSWORD_ENV, "another-one-entirely")
    run_demo_command()
    assert get_user_model().objects.get(username="admin").check_password("another-one-entirely")


# --- demo pages ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_home_page_embeds_both_forms_and_links(client, demo_dir):
    run_demo_command()
    page = client.get("/").content.decode()
    for form_type in ("newsletter", "product-updates", "esputnik-news", "unisender-news"):
        assert f'data-esp-form="{form_type}"' in page
    for link in ("/admin/", "/api/esp-forms/schema/", "/demo/mail/"):
        assert f'href="{link}"' in page


@pytest.mark.django_db
def test_language_switcher_offers_english_ukrainian_and_russian(client, demo_dir):
    run_demo_command()
    page = client.get("/").content.decode()
    assert '<html lang="en">' in page
    for code in ("en", "uk", "ru"):
        assert f'name="language" value="{code}"' in page
    response = client.post("/i18n/setlang/", {"language": "ru", "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    page = client.get("/").content.decode()
    assert '<html lang="ru">' in page and ">Подписаться</button>" in page
    assert 'value="ru" lang="ru" aria-pressed="true"' in page


@pytest.mark.django_db
def test_home_page_without_demo_data_explains_what_to_run(client):
    page = client.get("/").content.decode()
    assert "esp_forms_demo" in page
    assert "data-esp-form" not in page


def test_mailbox_lists_file_backend_emails_newest_first(client, settings, tmp_path):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = tmp_path
    mail.send_mail("First", "Hello\nConfirm: http://127.0.0.1:8000/confirm/abc/",
                   "news@example.com", ["first@example.com"])
    # The same connection writes both messages into one file: order inside it matters too.
    with mail.get_connection() as connection:
        mail.EmailMessage("Second", "Plain body", "news@example.com", ["second@example.com"],
                          connection=connection).send()
        html_only = mail.EmailMultiAlternatives(
            "Third", "", "news@example.com", ["third@example.com"], connection=connection)
        html_only.attach_alternative('<p>Go <a href="http://x.test/c/">here</a></p>',
                                     "text/html")
        html_only.send()
    # Files are ordered by modification time; make the first one clearly older.
    first = min(tmp_path.iterdir(), key=lambda p: p.stat().st_mtime)
    os.utime(first, (time.time() - 60, time.time() - 60))

    page = client.get(reverse("demo_mail")).content.decode()
    assert page.index("Third") < page.index("Second") < page.index("First")
    assert '<a href="http://127.0.0.1:8000/confirm/abc/"' in page
    assert "first@example.com" in page


def test_mailbox_without_file_backend_says_so(client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    page = client.get(reverse("demo_mail")).content.decode()
    assert "not using the file-based email backend" in page


# --- python -m project.run -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc), however deep."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[-1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


class Demo:
    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.emulator_port = free_port()
        self.log = tmp_path / "run.log"
        env = {k: v for k, v in os.environ.items()
               # The test run's own memory broker, locmem email and any service database
               # must not leak into the demo: it runs on its own files, as `make run` does.
               if k not in ("CELERY_BROKER_URL", "EMAIL_BACKEND", "DATABASE_URL",
                            "PROMETHEUS_MULTIPROC_DIR")}
        env.update(ESP_FORMS_DEMO_DIR=str(tmp_path / "demo"), PORT=str(self.port),
                   EMULATOR_PORT=str(self.emulator_port), ESP_FORMS_DEMO_PASSWORD="demo-test-pw")
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "project.run"], cwd=BASE_DIR, env=env, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}/"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"project.run exited early:\n{self.output()}"
            try:
                if get(self.url)[0] == 200 and "Press Ctrl-C to stop" in self.output():
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"the demo did not answer in {timeout} s:\n{self.output()}")

    def kill(self) -> None:
        """Last resort after a failed test: no demo may outlive the test run."""
        for pid in descendants(self.process.pid) | {self.process.pid}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)


@pytest.fixture
def demo(tmp_path):
    started = Demo(tmp_path)
    try:
        started.wait_ready()
        yield started
    finally:
        if started.process.poll() is None:
            started.kill()


def wait_all_gone(pids: set[int], timeout: float = 20) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {pid for pid in pids if running(pid)}
        if not left:
            return left
        time.sleep(0.2)
    return {pid for pid in pids if running(pid)}


def test_make_run_serves_the_demo_and_ctrl_c_stops_everything(demo):
    status, home = get(demo.url)
    assert status == 200 and 'data-esp-form="newsletter"' in home
    assert get(demo.url + "forms/newsletter/")[0] == 200
    status, login = get(demo.url + "admin/login/")
    assert status == 200 and 'name="password"' in login
    assert get(f"http://127.0.0.1:{demo.emulator_port}/_emulator/health")[0] == 200
    # Prometheus metrics for this machine, the web server and worker sharing one directory.
    status, metrics_text = get(demo.url + "esp-forms/metrics/")
    assert status == 200 and "esp_forms_queue_pending 0.0" in metrics_text
    output = demo.output()
    assert demo.url in output and "demo-test-pw" in output

    children = descendants(demo.process.pid)
    commands = " ".join(cmdline(pid) for pid in children)
    assert "runserver" in commands and "celery" in commands and "esp_forms_emulator" in commands

    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(timeout=30) == 0, demo.output()
    assert wait_all_gone(children) == set(), [cmdline(p) for p in children if running(p)]


def test_when_one_child_dies_the_rest_stop_and_the_exit_status_says_so(demo):
    children = descendants(demo.process.pid)
    emulator = next(pid for pid in children if "esp_forms_emulator" in cmdline(pid))
    os.kill(emulator, signal.SIGKILL)

    assert demo.process.wait(timeout=30) == 1, demo.output()
    assert "emulator exited" in demo.output()
    assert wait_all_gone(children) == set(), [cmdline(p) for p in children if running(p)]
