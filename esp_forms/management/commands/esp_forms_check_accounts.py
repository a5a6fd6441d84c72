"""``manage.py esp_forms_check_accounts [--account ID]``: validate accounts against the provider.

For each active account (or the one given): does the API key work, do the lists/groups of its
active forms exist, plus provider caveats. One line per problem; exits non-zero when any
account fails, so it can gate a deploy or run from cron.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from esp_forms.exceptions import EspFormsError
from esp_forms.models import ProviderAccount
from esp_forms.providers import get_provider
from esp_forms.providers.base import AccountCheck


class Command(BaseCommand):
    help = ("Check each active provider account: the API key, the lists/groups its forms use, "
            "and known setup caveats. Exits with status 1 when any account fails.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", type=int, metavar="ID",
                            help="Check only this account (even when it is inactive).")

    def handle(self, *args: Any, **options: Any) -> None:
        accounts = ProviderAccount.objects.order_by("pk")
        if options["account"] is not None:
            accounts = accounts.filter(pk=options["account"])
            if not accounts.exists():
                raise CommandError(f"No provider account with id {options['account']}.")
        else:
            accounts = accounts.filter(is_active=True)
        failed = 0
        checked = 0
        for account in accounts:
            checked += 1
            # Not named ``check``: that would override BaseCommand.check (the system checks),
            # which ``manage.py`` calls before handle().
            check = self.check_account(account)
            label = f"Account {account.pk} '{account.name}' ({account.get_provider_display()})"
            if check.ok:
                self.stdout.write(self.style.SUCCESS(f"{label}: OK"))
            else:
                failed += 1
                self.stdout.write(self.style.ERROR(f"{label}: FAILED"))
            for problem in check.problems:
                self.stdout.write(f"  - problem: {problem}")
            for warning in check.warnings:
                self.stdout.write(f"  - warning: {warning}")
            if options["verbosity"] >= 2:
                for key, value in check.info.items():
                    if not isinstance(value, (list, dict)):
                        self.stdout.write(f"  - {key}: {value}")
            if check.ok and account.config_error:
                # The check passed, so the error an earlier failing call recorded is stale
                # (the system check esp_forms.W004 points people here to clear it).
                account.config_error = ""
                account.config_error_at = None
                account.save(update_fields=["config_error", "config_error_at", "updated_at"])
                self.stdout.write("  - cleared the earlier configuration error")
        if not checked:
            self.stdout.write("No active provider accounts to check.")
        if failed:
            raise CommandError(f"{failed} of {checked} account(s) failed the check.")

    def check_account(self, account: ProviderAccount) -> AccountCheck:
        forms = list(account.forms.filter(is_active=True).prefetch_related("fields"))
        try:
            check = get_provider(account).check_account(forms)
        except EspFormsError as err:
            # Providers report problems in the result; this is only for the unexpected ones.
            check = AccountCheck(ok=False, problems=[str(err)])
        if not account.is_active:
            check.warnings.append("The account is inactive: its forms deliver nothing.")
        return check
