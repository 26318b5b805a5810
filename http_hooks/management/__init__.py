"""What the app's management commands share: their exit status and one line for bad
arguments, and whole numbers read strictly."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from ..exceptions import HttpHooksError, cut_short
from ..services import check_flag
from ..text import ascii_digits, first_line

# As argparse's own: 1 means what the command reports ("limit reached", a failed run).
BAD_ARGUMENTS = 2
# The exit status of a command stopped by SIGINT: 128 + its number, as a shell reports it.
INTERRUPTED = 130


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
    # The exit status when the output cannot be written (its reader went away: a pipe
    # closed, ``| head -0``): the work is done, its report lost.
    output_closed = 1

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            self.check_flags(options)
            return super().execute(*args, **options)
        except KeyboardInterrupt as exc:
            # Ctrl-C (SIGINT) of a command that does not stop on it by itself: what was
            # committed stays, the transaction it was in is rolled back (each command
            # says which), and the shell sees 128 + SIGINT, as for a process it killed.
            raise CommandError(
                "interrupted: what was done before stays done", returncode=INTERRUPTED
            ) from exc
        except BrokenPipeError as exc:
            # Whatever is still buffered for the closed pipe would fail again when Python
            # flushes it at exit ("Exception ignored ... BrokenPipeError" on stderr).
            _discard_stdout()
            raise CommandError(
                "the output was closed before it was all written", returncode=self.output_closed
            ) from exc
        except HttpHooksError as exc:
            raise CommandError(exc.message, returncode=BAD_ARGUMENTS) from exc
        except DatabaseError as exc:
            raise CommandError(
                f"the database failed: {first_line(exc)}"[:500], returncode=self.database_failed
            ) from exc

    def check_flags(self, options: dict[str, Any]) -> None:
        """The switches (``--loop``, ``--dry-run``, ...) are True or False: ``call_command``
        hands them over as given, and ``loop="no"`` ran a worker."""
        for action in self.create_parser("manage.py", "")._actions:
            if action.nargs == 0 and isinstance(action.default, bool):
                check_flag(options.get(action.dest, action.default), action.dest)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any):
        parser = super().create_parser(prog_name, subcommand, **kwargs)

        def error(message: str) -> NoReturn:
            message = cut_short(message)  # argparse quotes a bad value whole
            if not parser.called_from_command_line:
                raise CommandError(f"Error: {message}", returncode=BAD_ARGUMENTS)
            parser.exit(BAD_ARGUMENTS, f"{parser.prog}: error: {message} (see --help)\n")

        parser.error = error
        return parser


def _discard_stdout() -> None:
    """Send what is left for standard output to the null device."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no file descriptor: a StringIO
        pass
