from django.core.management.base import BaseCommand, CommandError

from esp_forms import retention
from esp_forms.conf import get_setting


class Command(BaseCommand):
    help = ("Erase the personal data (email, phone, fields, IPs) of settled submissions older "
            "than ESP_FORMS['RETENTION_DAYS'].")

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None,
                            help="Override RETENTION_DAYS for this run.")
        parser.add_argument("--dry-run", action="store_true", help="Only count.")

    def handle(self, *args, days=None, dry_run=False, **options):
        days = get_setting("RETENTION_DAYS") if days is None else days
        if days is None:
            self.stdout.write("RETENTION_DAYS is None: personal data is kept; nothing to do.")
            return
        if days < 0:
            raise CommandError("--days must be zero or more.")
        count = retention.purge(days=days, dry_run=dry_run)
        verb = "would be erased" if dry_run else "erased"
        self.stdout.write(f"{count} submission(s) older than {days} days {verb}.")
