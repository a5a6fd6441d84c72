"""``manage.py esp_forms_consent export|erase|reference EMAIL``: one person's consent records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email

from esp_forms import consent


class Command(BaseCommand):
    help = ("Export (JSON) or erase everything held about one email address, matched "
            "case-insensitively. Erasing keeps the submissions' statuses, so counts stay.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["export", "erase", "reference"],
                            help="export: print the JSON document; erase: erase the personal "
                                 "data; reference: print the address's reference (as logged).")
        parser.add_argument("email")
        parser.add_argument("-o", "--output", help="export: write to this file, not stdout.")
        parser.add_argument("--yes", "--noinput", "--no-input", action="store_true",
                            dest="yes", help="erase: do not ask for confirmation.")

    def handle(self, *args: Any, action: str, email: str, output: str | None = None,
               yes: bool = False, **options: Any) -> None:
        try:
            validate_email(consent.normalise(email))
        except ValidationError as exc:
            raise CommandError(f"{email!r} is not an email address.") from exc
        if action == "reference":
            self.stdout.write(consent.email_reference(email))
        elif action == "export":
            self._export(email, output)
        else:
            self._erase(email, yes)

    def _export(self, email: str, output: str | None) -> None:
        text = consent.export_json([email])
        if output:
            try:
                Path(output).write_text(text + "\n", encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"Could not write {output}: {exc}") from exc
            held = consent.submissions_of(email).count()
            self.stderr.write(f"{held} submission(s) of {consent.normalise(email)} "
                              f"exported to {output}.")
        else:
            self.stdout.write(text)

    def _erase(self, email: str, yes: bool) -> None:
        held = consent.submissions_of(email).count()
        if not yes:
            self.stdout.write(f"This erases the personal data of {held} submission(s) of "
                              f"{consent.normalise(email)}. It cannot be undone.")
            try:
                answer = input("Type 'yes' to erase: ")
            except EOFError:
                answer = ""
            if answer.strip().lower() != "yes":
                raise CommandError("Nothing erased (not confirmed; --yes erases without "
                                   "asking).")
        result = consent.erase(email, by="esp_forms_consent")
        self.stdout.write(f"Erased {result.submissions} submission(s) and "
                          f"{result.sandbox_contacts} sandbox contact(s); logged under "
                          f"reference {result.reference}.")
