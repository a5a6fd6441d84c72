"""``manage.py esp_forms_emulator``: run the eSputnik/UniSender emulator in the foreground."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from esp_forms.emulator import cli


class Command(BaseCommand):
    help = ("Run the provider emulator (eSputnik and UniSender APIs on one port) until Ctrl-C. "
            "Point a ProviderAccount's API base URL at the printed address.")
    # The emulator touches neither the database nor the app's settings, so the project's
    # checks (and their warnings) are noise here.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        cli.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        def write(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        quiet = options["quiet"] or options["verbosity"] == 0
        cli.run(options["host"], options["port"], demo=options["demo"],
                latency=options["latency"], quiet=quiet, write=write)
