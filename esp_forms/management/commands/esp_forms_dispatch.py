from django.core.management.base import BaseCommand

from esp_forms import delivery


class Command(BaseCommand):
    help = ("Deliver pending submissions that are due now (for cron users and operators). "
            "Safe beside running workers: rows they hold are skipped.")

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=None,
                            help="At most this many submissions (default SWEEP_BATCH_SIZE).")
        parser.add_argument("--id", dest="ids", action="append", default=[],
                            help="Deliver this submission now, even if its retry is not due.")

    def handle(self, *args, limit=None, ids=(), **options):
        if ids:
            for pk in ids:
                self.stdout.write(f"{pk}: {delivery.deliver(pk, force=True)}")
            return
        counts = delivery.dispatch_due(grace=0, limit=limit)
        total = sum(counts.values())
        summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "nothing due"
        self.stdout.write(f"{total} submission(s) processed ({summary}).")
