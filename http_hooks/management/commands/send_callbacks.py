"""``manage.py send_callbacks``: send due callbacks once (cron) or as a worker (``--loop``)."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.core.checks import Tags
from django.core.management.base import CommandError
from tqdm import tqdm

from http_hooks.exceptions import TransportError
from http_hooks.management import BAD_ARGUMENTS, whole_number_argument
from http_hooks.management import Command as HooksCommand
from http_hooks.services import (
    MAX_PROCESSES,
    DeliveryReport,
    check_processes,
    count_due,
    partial_token_file,
    run_sender,
    run_sender_processes,
    send_callbacks,
    stop_when_orphaned,
    write_report,
    write_tokens_to,
)
from http_hooks.text import is_listing
from http_hooks.validators import MAX_ID, is_row_id

# SIGHUP (the terminal closed) where there is one: not on Windows.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name)
)


def parse_id(value: Any, option: str) -> int:
    text = str(value).strip()
    if not is_row_id(text):
        raise CommandError(
            f"{option} takes ids (whole numbers from 1 to {MAX_ID}), not {value!r}"[:300],
            returncode=BAD_ARGUMENTS,
        )
    return int(text)


def writable(path: Any) -> bool:
    """Whether a file can be written at ``path`` (checked before sending, as its
    counts are written after): not a name too long for the system, a NUL (from
    ``call_command``) nor anything but a path."""
    if not isinstance(path, str | os.PathLike) or "\x00" in str(path):
        return False
    path = Path(path)
    try:
        if path.exists():
            return path.is_file() and os.access(path, os.W_OK)
        return path.parent.is_dir() and os.access(path.parent, os.W_OK)
    except (OSError, ValueError):
        return False


def summary(report: DeliveryReport) -> str:
    return (
        f"sent {report.sent}, retried {report.retried}, failed {report.failed} "
        f"in {report.duration:.2f} s ({report.rate:.1f}/s)"
    )


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event that SIGTERM, SIGINT and SIGHUP (the terminal closed) set while the
    block runs (in the main thread: elsewhere Python lets no one handle signals, and
    nothing sets it)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def failed_processes(failures: list[str]) -> str:
    shown = "; ".join(failures[:3])
    more = f"; and {len(failures) - 3} more" if len(failures) > 3 else ""
    return f"{len(failures)} sender process run(s) failed: {shown}{more}"


class Command(HooksCommand):
    help = (
        "Send the waiting callbacks that are due: all of them, those of one hook, or the "
        "listed ones (due or not). With --loop, keep sending until SIGTERM or SIGINT, "
        "which finish the requests in flight (as they do without --loop). With "
        "--processes N, run N sender processes."
    )
    # A sender serves no pages: checking the URLs would import the whole web layer
    # (the REST API, its schema) into every sender process for nothing.
    requires_system_checks = [Tags.models, Tags.compatibility, Tags.signals, Tags.caches]
    # It finishes its requests first (``stop_on_signals``).
    stopped_by_sigterm = False

    def add_arguments(self, parser) -> None:
        parser.add_argument("--hook_id", metavar="ID", help="Only the callbacks of this hook.")
        parser.add_argument(
            "--callbacks",
            "--callback",
            dest="callbacks",
            nargs="+",
            metavar="ID",
            help="Only these callbacks, whatever their retry time.",
        )
        parser.add_argument(
            "--loop",
            action="store_true",
            help="Run as a worker: poll for due callbacks until SIGTERM or SIGINT, which "
            "finish the requests in flight.",
        )
        parser.add_argument(
            "--processes",
            metavar="N",
            help=f"Run N sender processes (1 to {MAX_PROCESSES}) and sum up their work; "
            "with --loop, start another in the place of one that dies.",
        )
        parser.add_argument("--quiet", action="store_true", help="Print nothing but errors.")
        # Where a child of --processes writes its counts for the parent to sum.
        parser.add_argument("--report-file", type=Path, help=argparse.SUPPRESS)
        # Where it writes each run's claim token (and those of its runs that failed), for
        # the parent to give back what it held once it has ended.
        parser.add_argument("--token-file", type=Path, help=argparse.SUPPRESS)
        parser.add_argument("--supervisor", type=whole_number_argument, help=argparse.SUPPRESS)

    def handle(
        self,
        *args: Any,
        hook_id,
        callbacks,
        loop: bool,
        processes,
        quiet: bool,
        report_file: Path | None,
        token_file: Path | None,
        supervisor: int | None,
        **options,
    ) -> None:
        hook_id = None if hook_id is None else parse_id(hook_id, "--hook_id")
        if callbacks is not None and not is_listing(callbacks):
            callbacks = [callbacks]  # one id, from call_command: "12" is 12, not 1 and 2
        callback_ids = (
            None if callbacks is None else [parse_id(c, "--callbacks") for c in callbacks]
        )
        supervisor = None if supervisor is None else parse_id(supervisor, "--supervisor")
        for option, given in (("--loop", loop), ("--processes", processes is not None)):
            if given and callback_ids is not None:
                raise CommandError(
                    f"{option} sends whatever is due; it does not take --callbacks",
                    returncode=BAD_ARGUMENTS,
                )
        for path in (report_file, token_file):
            # A claim token is written beside its file first, then moved over it.
            if path is not None and not (
                writable(path) and (path is report_file or writable(partial_token_file(Path(path))))
            ):
                raise CommandError(f"cannot write {str(path)[:200]!r}", returncode=BAD_ARGUMENTS)
        failures: list[str] = []
        try:
            with stop_on_signals() as stop:
                if supervisor is not None:
                    stop_when_orphaned(supervisor, stop)
                if token_file is not None:
                    write_tokens_to(Path(token_file))
                if processes is not None:
                    processes = check_processes(processes)  # before the banner
                    if loop and not quiet:
                        self.stdout.write(
                            f"{processes} sender processes sending due callbacks until "
                            "SIGTERM or SIGINT (Ctrl-C)"
                        )
                    supervision = run_sender_processes(
                        processes=processes, loop=loop, stop=stop, hook_id=hook_id
                    )
                    report, failures = supervision.report, supervision.failures
                elif loop:
                    report = self.loop(hook_id=hook_id, quiet=quiet, stop=stop)
                else:
                    report = self.send_once(
                        hook_id=hook_id, callback_ids=callback_ids, quiet=quiet, stop=stop
                    )
        except TransportError as exc:
            raise CommandError(exc.message) from exc
        finally:
            write_tokens_to(None)
        if report_file is not None:
            try:
                write_report(Path(report_file), report)
            except OSError as exc:
                raise CommandError(f"cannot write {exc.filename!r}: {exc.strerror}") from exc
        if not quiet:
            self.stdout.write(summary(report))
        if failures:
            raise CommandError(failed_processes(failures))

    def send_once(
        self,
        *,
        hook_id: int | None,
        callback_ids: list[int] | None,
        quiet: bool,
        stop: threading.Event,
    ) -> DeliveryReport:
        """One run; with a progress bar (on stderr, like any) when the output is a terminal."""
        if quiet or not self.stdout.isatty():
            return send_callbacks(hook_id=hook_id, ids=callback_ids, stop=stop.is_set)
        total = count_due(hook_id=hook_id, ids=callback_ids)
        with tqdm(total=total, unit="callback") as bar:
            return send_callbacks(
                hook_id=hook_id, ids=callback_ids, progress=bar.update, stop=stop.is_set
            )

    def loop(self, *, hook_id: int | None, quiet: bool, stop: threading.Event) -> DeliveryReport:
        if not quiet:
            self.stdout.write("sending due callbacks until SIGTERM or SIGINT (Ctrl-C)")
        return run_sender(
            stop=stop,
            hook_id=hook_id,
            on_report=None if quiet else lambda report: self.stdout.write(summary(report)),
        )
