"""``manage.py delete_old_callbacks DAYS``: retention."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.template.defaultfilters import pluralize

from http_hooks.management import BAD_ARGUMENTS, whole_number_argument
from http_hooks.management import Command as HooksCommand
from http_hooks.services import MAX_DELETE_BATCH, delete_old_callbacks


class Command(HooksCommand):
    help = (
        "Delete callbacks (and their attempts) created more than DAYS days ago, in batches, "
        "then reclaim the space where the database supports it. Callbacks not delivered "
        "yet (waiting, sending) are kept unless --include-undelivered."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "days", type=whole_number_argument, help="Age in days of the oldest callbacks to keep."
        )
        parser.add_argument(
            "--include-undelivered",
            action="store_true",
            help="Delete old waiting and sending callbacks too (their events are lost), but "
            "not one a sender holds now (its lease running).",
        )
        parser.add_argument(
            "--batch-size",
            type=whole_number_argument,
            default=5000,
            help=f"Callbacks deleted per transaction (1 to {MAX_DELETE_BATCH}).",
        )

    def handle(
        self, *args: Any, days: int, include_undelivered: bool, batch_size: int, **options
    ) -> None:
        if not (isinstance(batch_size, int) and 1 <= batch_size <= MAX_DELETE_BATCH):
            raise CommandError(
                f"--batch-size must be a whole number from 1 to {MAX_DELETE_BATCH}",
                returncode=BAD_ARGUMENTS,
            )
        deleted = delete_old_callbacks(
            days=days, include_undelivered=include_undelivered, batch_size=batch_size
        )
        self.stdout.write(
            f"deleted {deleted} callback{pluralize(deleted)} "
            f"created more than {days} day{pluralize(days)} ago"
        )
