"""Run the emulator in the foreground: shared by ``manage.py esp_forms_emulator`` and
``python -m esp_forms.emulator`` (which needs no Django settings)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from esp_forms.emulator.demo import (
    DEMO_ESPUTNIK_CONFIRMED_GROUP,
    DEMO_ESPUTNIK_GROUP,
    DEMO_ESPUTNIK_KEY,
    DEMO_UNISENDER_KEY,
    DEMO_UNISENDER_LIST_ID,
    seed_demo,
)
from esp_forms.emulator.server import EmulatorServer

DEFAULT_PORT = 8025


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port to bind ({DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--demo", action="store_true",
                        help="seed the demo eSputnik and UniSender accounts")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds added to every provider answer")
    parser.add_argument("--quiet", action="store_true", help="do not print each request")


def run(host: str, port: int, *, demo: bool = False, latency: float = 0.0, quiet: bool = False,
        write: Callable[[str], None] = print, tcp_nodelay: bool = True,
        split_writes: bool = False) -> None:
    """Serve until Ctrl-C. Every provider request is printed as one redacted line."""
    server = EmulatorServer(host, port, latency=latency, tcp_nodelay=tcp_nodelay,
                            split_writes=split_writes,
                            access_log=None if quiet else write)
    try:
        server.start()
    except OSError as err:
        raise SystemExit(f"esp_forms emulator: cannot listen on {host}:{port}: {err}") from err
    # Ctrl-C can come at any moment, even while the banner is printed: stop cleanly then too.
    try:
        write(f"esp_forms provider emulator on {server.url}")
        write(f"  eSputnik:  {server.url}/api/v1/...   UniSender: {server.url}/en/api/<method>")
        write(f"  control:   {server.url}/_emulator/   (docs/emulator.md)")
        if demo:
            seed_demo(server)
            # Demo keys are public constants from esp_forms.emulator.demo, not secrets.
            write(f"  demo eSputnik key {DEMO_ESPUTNIK_KEY!r}, group {DEMO_ESPUTNIK_GROUP!r}, "
                  f"segment {DEMO_ESPUTNIK_CONFIRMED_GROUP!r}")
            write(f"  demo UniSender key {DEMO_UNISENDER_KEY!r}, list {DEMO_UNISENDER_LIST_ID}")
        if latency:
            write(f"  latency: {latency:g} s per provider request")
        write("Press Ctrl-C to stop.")
        # The serving thread does the work; the main thread only waits, so Ctrl-C lands here.
        while server._thread is not None and server._thread.is_alive():
            server._thread.join(0.5)
    except KeyboardInterrupt:
        write("stopping")
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m esp_forms.emulator",
                                     description="eSputnik and UniSender API emulator")
    add_arguments(parser)
    # Benchmark baselines only: reproduce the stdlib's Nagle stall.
    parser.add_argument("--no-tcp-nodelay", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--split-writes", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    run(args.host, args.port, demo=args.demo, latency=args.latency, quiet=args.quiet,
        write=lambda line: print(line, flush=True), tcp_nodelay=not args.no_tcp_nodelay,
        split_writes=args.split_writes)
