"""``manage.py import_legacy_hooks``: the hooks of infi.django_http_hooks, moved in."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS

from http_hooks.legacy import IMPORTED, REFUSED, SKIPPED, LegacyOutcome, import_legacy_hooks
from http_hooks.management import Command as HooksCommand


def describe(outcome: LegacyOutcome) -> str:
    legacy = outcome.legacy
    line = f"hook {legacy.id} {legacy.name or ''!r}: "
    if outcome.outcome == IMPORTED:
        copied = f" ({outcome.callbacks} waiting callbacks copied)" if outcome.callbacks else ""
        return f"{line}imported as hook {outcome.hook_id}{copied}"
    if outcome.outcome == SKIPPED:
        if outcome.hook_id is None:
            return f"{line}skipped: imported before (that hook was deleted since)"
        return f"{line}skipped: already imported as hook {outcome.hook_id}"
    return f"{line}refused: {outcome.reason}"


class Command(HooksCommand):
    help = (
        "Import the hooks of infi.django_http_hooks from its tables (hooks_hook, ...), each "
        "validated as a new hook, unsigned as before; hooks already imported are skipped. "
        "Exits 1 when a hook was refused, 2 when there is no hooks_hook table."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help="The database alias that holds the old tables (default: default).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Check and report everything, then roll it back.",
        )
        parser.add_argument(
            "--waiting-callbacks",
            action="store_true",
            help="Copy the old waiting callbacks of the hooks imported now, due at once.",
        )

    def handle(
        self, *args: Any, database: str, dry_run: bool, waiting_callbacks: bool, **options
    ) -> None:
        report = import_legacy_hooks(
            using=database, dry_run=dry_run, waiting_callbacks=waiting_callbacks
        )
        for outcome in report.outcomes:
            self.stdout.write(describe(outcome))
        summary = (
            f"{len(report.outcomes)} old hooks: {report.count(IMPORTED)} imported, "
            f"{report.count(SKIPPED)} skipped, {report.count(REFUSED)} refused"
        )
        if waiting_callbacks:
            summary += f"; {report.callbacks} waiting callbacks copied"
        if dry_run:
            summary += " (dry run: nothing stored)"
        self.stdout.write(summary)
        if report.count(REFUSED):
            # Django's CommandError prints the line on stderr and exits with 1.
            raise CommandError(
                f"{report.count(REFUSED)} old hooks refused (see above)", returncode=1
            )
