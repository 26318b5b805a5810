"""``manage.py monitor_callbacks``: exit 1 when too many callbacks have a status (alerting)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from http_hooks.management import Command as HooksCommand
from http_hooks.management import whole_number_argument
from http_hooks.models import CallbackStatus
from http_hooks.services import MONITORED_STATUSES, monitor_callbacks


class Command(HooksCommand):
    help = (
        "Exit with status 1 when at least --callbacks_limit callbacks with --status were "
        "updated in the last --minutes_ago minutes (in the whole table without it or with 0); "
        "2 for bad arguments, 3 when the database fails. --status sending counts the stuck "
        "ones, their sender's lease run out, all of them whatever --minutes_ago."
    )
    # Not 1: an alert on "too many errors" must not stand for a database that is down.
    database_failed = 3
    # Nor for an "ok" line its reader did not wait for: the result is not known to it.
    output_closed = 3

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--status", required=True, choices=[status.value for status in MONITORED_STATUSES]
        )
        parser.add_argument("--callbacks_limit", type=whole_number_argument, default=10)
        parser.add_argument("--minutes_ago", type=whole_number_argument, default=None)

    def handle(self, *args: Any, status: str, callbacks_limit: int, minutes_ago, **options):
        result = monitor_callbacks(
            status=status, callbacks_limit=callbacks_limit, minutes_ago=minutes_ago
        )
        if status == CallbackStatus.SENDING:
            counted = "stuck, their lease run out"
        elif result.minutes_ago is None:
            counted = "updated in all"
        else:
            counted = f"updated in the last {minutes_ago} minutes"
        message = f"{result.count} {status} callbacks {counted} (limit {callbacks_limit})"
        if result.exceeded:
            # Django's CommandError prints the line on stderr and exits with 1.
            raise CommandError(f"limit reached: {message}", returncode=1)
        self.stdout.write(f"ok: {message}")
