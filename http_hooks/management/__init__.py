"""What the app's management commands share: their exit status and one line for bad
arguments, and whole numbers read strictly."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from ..exceptions import HttpHooksError
from ..text import ascii_digits, first_line

# As argparse's own: 1 means what the command reports ("limit reached", a failed run).
BAD_ARGUMENTS = 2


def whole_number_argument(text: str) -> int:
    """An argparse ``type``: a whole number in ASCII digits, after one "-" at most.
    ``int()`` also takes " 30 ", "3_0" and the digits of other scripts (Arabic-Indic ones)."""
    if not (ascii_digits(text, signed=True) and len(text) <= 20):
        raise argparse.ArgumentTypeError(f"{text[:50]!r} is not a whole number")
    return int(text)


class Command(BaseCommand):
    """A command whose errors are one line on stderr, never a traceback (a cron job's
    mail or a monitor's alert gets that line): argument errors (argparse prints its
    usage first) and the service layer's refusals (``HttpHooksError``) with exit status
    ``BAD_ARGUMENTS``; database failures (a database down, a lost connection that
    reconnecting did not cure) with ``database_failed``."""

    database_failed = 1

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except HttpHooksError as exc:
            raise CommandError(exc.message, returncode=BAD_ARGUMENTS) from exc
        except DatabaseError as exc:
            raise CommandError(
                f"the database failed: {first_line(exc)}"[:500], returncode=self.database_failed
            ) from exc

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any):
        parser = super().create_parser(prog_name, subcommand, **kwargs)

        def error(message: str) -> NoReturn:
            if not parser.called_from_command_line:
                raise CommandError(f"Error: {message}", returncode=BAD_ARGUMENTS)
            parser.exit(BAD_ARGUMENTS, f"{parser.prog}: error: {message} (see --help)\n")

        parser.error = error
        return parser
