from django.core.management.base import BaseCommand

from esp_forms import optin


class Command(BaseCommand):
    help = ("Poll the double opt-in status of unconfirmed submissions that are due, "
            "and expire old ones.")

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=None,
                            help="At most this many status reads (default POLL_BATCH_SIZE).")
        parser.add_argument("--id", dest="ids", action="append", default=[],
                            help="Read this submission's status now, whether due or not.")

    def handle(self, *args, limit=None, ids=(), **options):
        if ids:
            for pk in ids:
                self.stdout.write(f"{pk}: {optin.refresh(pk)}")
            return
        counts = optin.poll_due(limit=limit)
        expired = optin.expire_unconfirmed()
        summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "nothing due"
        self.stdout.write(f"{sum(counts.values())} status read(s) ({summary}); "
                          f"{expired} expired.")
