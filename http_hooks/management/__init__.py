"""What the app's management commands share: their exit status and one line for bad
arguments, and whole numbers read strictly."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from ..exceptions import HttpHooksError, Terminated, cut_short
from ..services import check_flag
from ..text import ascii_digits, first_line

# As argparse's own: 1 means what the command reports ("limit reached", a failed run).
BAD_ARGUMENTS = 2
# The exit status of a command stopped by SIGINT: 128 + its number, as a shell reports it.
INTERRUPTED = 130
# And by SIGTERM (``Terminated``).
TERMINATED = Terminated().code


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
    # False for a command that stops on SIGTERM by itself (``send_callbacks``).
    stopped_by_sigterm = True

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            self.check_flags(options)
            with self.sigterm_raised():
                return super().execute(*args, **options)
        except KeyboardInterrupt as exc:
            # Ctrl-C (SIGINT) of a command that does not stop on it by itself: what was
            # committed stays, the transaction it was in is rolled back (each command
            # says which), and the shell sees 128 + SIGINT, as for a process it killed.
            raise CommandError(
                "interrupted: what was done before stays done", returncode=INTERRUPTED
            ) from exc
        except Terminated as exc:
            raise CommandError(
                "terminated (SIGTERM): what was done before stays done", returncode=TERMINATED
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

    @contextmanager
    def sigterm_raised(self) -> Iterator[None]:
        """SIGTERM raises ``Terminated`` while the command runs, as SIGINT raises
        ``KeyboardInterrupt``: Python's default ended the process where it stood, with
        no word and no rollback of its own. Only for a command run from the command
        line (``manage.py``), in its main thread: ``call_command`` in a process of its
        own (a Celery worker's child, a web server's worker) leaves that process's
        SIGTERM to that process."""
        if not (
            self.stopped_by_sigterm
            and self._called_from_command_line
            and threading.current_thread() is threading.main_thread()
        ):
            yield
            return
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

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


def _raise_terminated(signum: int, frame: Any) -> NoReturn:
    raise Terminated


def _discard_stdout() -> None:
    """Send what is left for standard output to the null device."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no file descriptor: a StringIO
        pass
