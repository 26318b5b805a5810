from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import pluralize

from http_hooks.exceptions import HttpHooksError
from http_hooks.services import delete_old_callbacks


class Command(BaseCommand):
    help = (
        "Delete callbacks (and their attempts) created more than DAYS days ago, in batches, "
        "then reclaim the space where the database supports it."
    )

    def add_arguments(self, parser):
        parser.add_argument("days", type=int, help="Age in days of the oldest callbacks to keep.")
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *args, days, batch_size, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        try:
            deleted = delete_old_callbacks(days=days, batch_size=batch_size)
        except HttpHooksError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"deleted {deleted} callback{pluralize(deleted)} "
            f"created more than {days} day{pluralize(days)} ago"
        )
