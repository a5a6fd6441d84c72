"""``python -m project.run`` (what ``make run`` calls): the whole demo in one terminal.

It migrates, seeds the demo (``esp_forms_demo``), then runs three processes side by side:

- ``web``: ``manage.py runserver 127.0.0.1:$PORT --noreload`` (PORT, default 8000);
- ``worker``: ``celery -A project worker -B`` (delivery, polling and the periodic sweeps);
- ``emulator``: ``manage.py esp_forms_emulator --port $EMULATOR_PORT --demo`` (default 8025).

Each child runs in its own process group, so stopping one takes its own children (Celery's pool)
with it. Ctrl-C or SIGTERM stops them all and exits 0; if any child dies on its own, the rest are
stopped and the exit status is 1, so a broken demo never half-runs.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

BASE_DIR = Path(__file__).resolve().parent.parent
STOP_GRACE_SECONDS = 10.0
READY_TIMEOUT_SECONDS = 90.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in each child before exec: the kernel sends it SIGTERM if this process dies.

    Covers the case no signal handler can: this supervisor killed with SIGKILL (or crashing),
    which would otherwise leave a web server and a worker running with nobody to stop them.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the signal handlers still stop everything
        pass


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    pump: threading.Thread | None = field(default=None, repr=False)

    @property
    def pgid(self) -> int:
        assert self.process is not None
        # start_new_session makes the child the leader of its own group: pgid == pid.
        return self.process.pid

    def group_alive(self) -> bool:
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not _only_zombies(self.pgid)

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pgid, signum)
        except ProcessLookupError:
            pass


def _only_zombies(pgid: int) -> bool:
    """True when every process left in the group is a zombie (dead, waiting to be reaped).

    A child of the group leader that outlives it is reparented to init; in containers whose
    init does not reap, it stays a zombie, which still answers kill(0) but is no longer running.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return False
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may contain spaces) in parentheses.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            return False
    return True


class Supervisor:
    def __init__(self, children: list[Child], env: dict[str, str]) -> None:
        self.children = children
        self.env = env
        self.stop_requested = threading.Event()
        self.signals_received = 0
        self.output_lock = threading.Lock()

    def write(self, text: str) -> None:
        with self.output_lock:
            sys.stdout.write(text)
            sys.stdout.flush()

    def handle_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals_received += 1
        if self.signals_received == 1:
            self.write(f"\nStopping ({signal.Signals(signum).name})…\n")
        else:
            self.write("\nStopping now.\n")
        self.stop_requested.set()

    def start(self) -> None:
        for child in self.children:
            child.process = subprocess.Popen(
                child.argv, cwd=BASE_DIR, env=self.env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        # Started only after every fork: preexec_fn is not safe while other threads run.
        for child in self.children:
            child.pump = threading.Thread(target=self._pump, args=(child,), daemon=True,
                                          name=f"output-{child.name}")
            child.pump.start()

    def _pump(self, child: Child) -> None:
        """Copy a child's output line by line, prefixed with its name."""
        assert child.process is not None and child.process.stdout is not None
        width = max(len(c.name) for c in self.children)
        for raw in child.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.write(f"{child.name:>{width}} | {line}\n")

    def dead_child(self) -> Child | None:
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                return child
        return None

    def wait_until_ready(self, url: str) -> bool:
        """Poll the site until it answers; False if stopped or a child died first."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.stop_requested.is_set() or self.dead_child() is not None:
                return False
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return True
            except urllib.error.HTTPError:
                return True  # it answered, even if not with 200
            except OSError:
                self.stop_requested.wait(0.3)
        return False

    def run_until_stopped(self) -> int:
        while not self.stop_requested.wait(0.5):
            dead = self.dead_child()
            if dead is not None:
                assert dead.process is not None
                self.write(f"\n{dead.name} exited with status {dead.process.returncode}; "
                           "stopping the others.\n")
                return 1
        return 0

    def stop_all(self) -> None:
        """SIGINT every group (the same as Ctrl-C in its own terminal), wait, then SIGKILL."""
        running = [c for c in self.children if c.process is not None]
        for child in running:
            child.signal_group(signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        signals_at_start = self.signals_received
        while time.monotonic() < deadline and any(c.group_alive() for c in running):
            # A second Ctrl-C means "now": skip the rest of the grace period.
            if self.signals_received > signals_at_start:
                break
            for child in running:
                assert child.process is not None
                child.process.poll()
            time.sleep(0.1)
        for child in running:
            if child.group_alive():
                self.write(f"{child.name} did not stop in time; killing it.\n")
                child.signal_group(signal.SIGKILL)
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.write(f"{child.name} (pid {child.process.pid}) could not be reaped.\n")
            if child.pump is not None:
                child.pump.join(timeout=2)


def prepare() -> tuple[str, str]:
    """Migrate and seed in this process; return the admin's username and password."""
    import django
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    call_command("migrate", interactive=False, verbosity=1)
    call_command("esp_forms_demo")
    from esp_forms.management.commands.esp_forms_demo import ADMIN_USERNAME, admin_password

    # The children open their own connections; an open SQLite handle here would only hold a
    # file descriptor for nothing while they run.
    connections.close_all()
    return ADMIN_USERNAME, admin_password()[0]


def _fresh_metrics_dir() -> Path:
    """prometheus_client's multiprocess mode for the web server and the worker: one directory
    they share, emptied at start (its files are the counters of processes now gone)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory = Path(os.environ.get("ESP_FORMS_DEMO_DIR", BASE_DIR / ".demo")) / "metrics"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory


def main() -> int:
    port = os.environ.get("PORT") or "8000"
    emulator_port = os.environ.get("EMULATOR_PORT") or "8025"
    # Set before Django loads: settings (SITE_URL) and esp_forms_demo (emulator URL) read them.
    os.environ.update({"PORT": port, "EMULATOR_PORT": emulator_port,
                       "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE",
                                                                "project.settings")})
    metrics_dir = _fresh_metrics_dir()
    try:
        username, password = prepare()
    except KeyboardInterrupt:
        return 130

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    python = sys.executable
    manage = str(BASE_DIR / "manage.py")
    supervisor = Supervisor([
        # --insecure: with DJANGO_DEBUG=0 (trying the demo as production answers) runserver
        # would serve no static files, and the forms and admin would lose their CSS and script.
        Child("web", [python, manage, "runserver", f"127.0.0.1:{port}", "--noreload",
                      "--insecure"]),
        Child("worker", [python, "-m", "celery", "-A", "project", "worker", "-B", "-l", "info",
                         "--concurrency", "1"]),
        Child("emulator", [python, manage, "esp_forms_emulator", "--port", emulator_port,
                           "--demo"]),
    ], env)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, supervisor.handle_signal)

    site = f"http://127.0.0.1:{port}/"
    supervisor.start()
    status = 1
    try:
        if supervisor.wait_until_ready(site):
            supervisor.write(
                "\n"
                "  esp_forms demo is running\n"
                f"    site      {site}\n"
                f"    admin     {site}admin/   user '{username}', password '{password}'\n"
                f"    mailbox   {site}demo/mail/\n"
                f"    emulator  http://127.0.0.1:{emulator_port}/\n"
                f"    metrics   {site}esp-forms/metrics/   (from this machine; {metrics_dir})\n"
                "  Press Ctrl-C to stop.\n\n"
            )
            status = supervisor.run_until_stopped()
        elif supervisor.stop_requested.is_set():
            status = 0
        else:
            dead = supervisor.dead_child()
            reason = (f"{dead.name} exited with status {dead.process.returncode}"
                      if dead is not None and dead.process is not None
                      else f"{site} did not answer within {READY_TIMEOUT_SECONDS:.0f} s")
            supervisor.write(f"\nThe demo did not start: {reason}.\n")
    finally:
        supervisor.stop_all()
    if status == 0:
        supervisor.write("Stopped.\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
