from django.core.management.base import BaseCommand

from esp_forms import reconcile


class Command(BaseCommand):
    help = ("Compare the opt-in status of every tracked submission with the provider's and "
            "repair drift (lost webhooks), inside each account's rate limit.")

    def add_arguments(self, parser):
        parser.add_argument("--account", type=int, default=None,
                            help="Only this provider account (its id).")
        parser.add_argument("--limit", type=int, default=None,
                            help="At most this many status reads per account "
                                 "(default RECONCILE_BATCH_SIZE).")
        parser.add_argument("--dry-run", action="store_true",
                            help="Read and report, change nothing.")

    def handle(self, *args, account=None, limit=None, dry_run=False, **options):
        reports = reconcile.reconcile(account_id=account, limit=limit, dry_run=dry_run)
        if not reports:
            self.stdout.write("No active provider account to reconcile.")
            return
        verb = "would change" if dry_run else "changed"
        for report in reports:
            line = (f"{report.account}: {report.checked} read, {len(report.changes)} {verb}"
                    + (", stopped at the rate limit" if report.throttled else "")
                    + (f", {len(report.errors)} error(s)" if report.errors else ""))
            self.stdout.write(line)
            for change in report.changes:
                self.stdout.write(f"  {change}")
            for error in report.errors:
                self.stderr.write(f"  error: {error}")
