"""``send_callbacks --processes N``: N sender processes under one command, no broker.

Each child is a plain ``python -m django send_callbacks [--loop]`` process with
the parent's settings module and the project's import path: the very sender a
user runs alone, with its checks, its error handling and its graceful stop,
started fresh. Not ``fork()``: a forked child would share the parent's
database connections and libcurl state. Not ``multiprocessing``: its spawn
start method starts a fresh interpreter too, but then runs a function that
must set Django up and handle errors and signals again, where the command
already does. Children share nothing but the database; the claims (``FOR
UPDATE SKIP LOCKED`` on PostgreSQL, conditional updates elsewhere) keep each
callback to one of them.

The supervisor:

- restarts a ``--loop`` child that exits, after a pause that doubles at each
  crash in a row (``RESTART_DELAY`` up to ``RESTART_DELAY_MAX``), so that a
  child that cannot start does not spin; a child that ran ``STEADY`` seconds
  starts the count again;
- does not restart a one-shot child: the others go on taking what is due
  until nothing is, so a restart would only find the callbacks the dead one
  held, which wait for their lease anyway. The failure is reported;
- on ``stop`` sends SIGTERM to every child (each finishes its requests in
  flight and gives back what it claimed and did not start), waits
  ``stop_grace()`` seconds, then sends SIGKILL to what is left;
- gives back at once what a child held when it ended, however it ended: each run
  of a child writes its claim token to a file of the supervisor's
  (``--token-file``) before it claims, after the tokens of its runs that failed
  (``run_failed``: what such a run held, its requests in flight and its outcomes
  unwritten, waits for its lease), and once the child is known to have ended (it
  has been waited for, so it holds nothing any more) its callbacks still
  ``sending`` under those tokens go back to waiting, instead of waiting out their
  lease (``LEASE_SECONDS``, 5 minutes by default) after an OOM kill, a crash, or
  a run that failed before a normal exit. Its requests in flight are sent again,
  as after a lease: delivery is at-least-once;
- sums the children's reports: each writes its own as JSON to a file of the
  supervisor's (``--report-file``) as it exits. A child that dies without
  writing one is a failure, and what it sent is missing from the sum.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError

from ..exceptions import InvalidFilterError
from ..settings import hooks_settings
from ..text import ascii_digits
from .claims import release_dead_claims
from .outcomes import DeliveryReport
from .reconnect import log_database_failure, with_reconnect

logger = logging.getLogger(__name__)

# More would mostly wait on each other and on the database (up to four connections each: its
# own, its lease keeper's and, on PostgreSQL, its outcome writer's and with --loop its listener's).
MAX_PROCESSES = 64
RESTART_DELAY = 1.0
RESTART_DELAY_MAX = 60.0
STEADY = 60.0
# How often the supervisor looks at its children.
TICK = 0.1
# Seconds between a child's looks at whether its supervisor is still its parent.
ORPHAN_CHECK = 1.0


def check_processes(value: Any) -> int:
    """A number of sender processes: a whole number from 1 to ``MAX_PROCESSES``."""
    text = str(value).strip()
    if not (ascii_digits(text) and len(text) < 6) or not (1 <= int(text) <= MAX_PROCESSES):
        raise InvalidFilterError(
            f"--processes takes a whole number from 1 to {MAX_PROCESSES}, not {value!r}"[:300],
            field="processes",
        )
    return int(text)


def stop_grace() -> float:
    """Seconds a stopping child gets to finish: the longest try (connect and read
    timeouts) and a few seconds to record it."""
    return hooks_settings.connect_timeout + hooks_settings.read_timeout + 5.0


def child_command(
    *, loop: bool, hook_id: int | None, report_file: Path, token_file: Path
) -> list[str]:
    command = [sys.executable, "-m", "django", "send_callbacks", "--quiet"]
    command += ["--report-file", str(report_file), "--token-file", str(token_file)]
    command += ["--supervisor", str(os.getpid())]
    if loop:
        command.append("--loop")
    if hook_id is not None:
        command += ["--hook_id", str(hook_id)]
    return command


def stop_when_orphaned(supervisor: int, stop: threading.Event) -> None:
    """Set ``stop`` once the process ``supervisor`` is no longer this one's parent: a
    supervisor killed with SIGKILL cannot stop its children, and a service manager that
    starts it again would otherwise add senders each time. Looked at every
    ``ORPHAN_CHECK`` seconds, in a thread; the child then stops as on SIGTERM."""

    def watch() -> None:
        while not stop.wait(ORPHAN_CHECK):
            if os.getppid() != supervisor:
                logger.warning("the supervisor (pid %s) is gone: stopping", supervisor)
                stop.set()

    if os.getppid() != supervisor:
        stop.set()
        return
    threading.Thread(target=watch, name="http_hooks supervisor watch", daemon=True).start()


# In a child: where each run writes its claim token for the supervisor (``--token-file``),
# and the tokens of its runs that failed, with when (``time.monotonic()``).
_token_file: Path | None = None
_failed_runs: dict[uuid.UUID, float] = {}


def write_tokens_to(path: Path | None) -> None:
    """In a child of ``--processes``: have every run write its claim token to ``path``
    (None: to no file again)."""
    global _token_file
    _token_file = path
    _failed_runs.clear()


def partial_token_file(path: Path) -> Path:
    """Where the claim tokens are written before they replace ``path``."""
    return path.with_name(path.name + ".new")


def write_tokens(current: uuid.UUID) -> None:
    """In a child: write, one a line, the tokens of its runs that failed less than
    ``LEASE_SECONDS`` ago (what they held may still be ``sending``; later, any sender's
    claim takes it) and ``current``, the token of the run going on. Replaced whole
    (``os.replace``), so that a child killed while writing leaves the last tokens,
    never half of them. Raises ``OSError``."""
    if _token_file is None:
        return
    oldest = time.monotonic() - int(hooks_settings.LEASE_SECONDS)
    for token, failed in list(_failed_runs.items()):
        if failed < oldest:
            del _failed_runs[token]
    tokens = [*(token for token in _failed_runs if token != current), current]
    partial = partial_token_file(_token_file)
    partial.write_text("".join(f"{token}\n" for token in tokens))
    os.replace(partial, _token_file)


def new_claim_token() -> uuid.UUID:
    """A run's claim token, written first where the supervisor reads it (in a child:
    ``write_tokens``). ``InvalidFilterError`` (field ``token_file``), before anything
    is claimed, when it cannot be written."""
    token = uuid.uuid4()
    try:
        write_tokens(token)
    except OSError as exc:
        raise InvalidFilterError(
            f"cannot write the claim token to {str(exc.filename)[:200]!r}: {exc.strerror}",
            field="token_file",
        ) from exc
    return token


def run_failed(token: uuid.UUID) -> None:
    """In a child: the run of ``token`` failed, and what it could not write or give back
    waits for its lease. Its token stays in the file (``write_tokens``) through the runs
    after it, so that the supervisor gives that back once the child has ended, however
    it ends (a loop worker that goes on and is asked to stop exits normally)."""
    if _token_file is None:
        return
    _failed_runs[token] = time.monotonic()
    try:
        write_tokens(token)
    except OSError:
        logger.warning("could not write the claim token of a failed run", exc_info=True)


def read_tokens(path: Path) -> list[uuid.UUID]:
    """The claim tokens a child wrote (``write_tokens``), none if it wrote none."""
    try:
        return [uuid.UUID(line) for line in path.read_text().split()]
    except (OSError, ValueError):
        return []


def child_environment() -> dict[str, str]:
    """The parent's environment, settings module and import path, as ``multiprocessing``
    passes them to a spawned child: the child imports what the parent does, however it
    was started (``manage.py``'s folder, ``--pythonpath``, ``--settings``)."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,
        "PYTHONPATH": os.pathsep.join(path for path in sys.path if path),
    }


def write_report(path: Path, report: DeliveryReport) -> None:
    """A child's counts, for the supervisor's ``read_report``."""
    path.write_text(
        json.dumps({"sent": report.sent, "retried": report.retried, "failed": report.failed})
    )


def read_report(path: Path) -> DeliveryReport | None:
    """The counts a child wrote, or None if it wrote none (it died first)."""
    try:
        counts = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return DeliveryReport(sent=counts["sent"], retried=counts["retried"], failed=counts["failed"])


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


@dataclass
class Child:
    """One slot of the supervisor and the process that fills it."""

    slot: int
    process: subprocess.Popen | None = None
    report_file: Path | None = None
    token_file: Path | None = None
    started: float = 0.0
    crashes_in_a_row: int = 0
    restart_at: float | None = None
    runs: int = 0


@dataclass
class Supervision:
    """What the children did: their reports summed, and each failure in a line."""

    report: DeliveryReport = field(default_factory=DeliveryReport)
    failures: list[str] = field(default_factory=list)


class Supervisor:
    def __init__(
        self,
        *,
        processes: int,
        loop: bool,
        hook_id: int | None,
        stop: threading.Event,
        folder: Path,
    ) -> None:
        self.loop = loop
        self.hook_id = hook_id
        self.stop = stop
        self.folder = folder
        self.children = [Child(slot) for slot in range(1, processes + 1)]
        self.result = Supervision()

    def run(self) -> Supervision:
        started = time.monotonic()
        for child in self.children:
            self.start(child)
        while not self.stop.is_set() and self.running():
            for child in self.children:
                self.watch(child)
            self.stop.wait(TICK)
        self.stop_all()
        self.result.report.duration = time.monotonic() - started
        return self.result

    def running(self) -> bool:
        """Whether any child runs or waits for its restart."""
        return any(c.process is not None or c.restart_at is not None for c in self.children)

    def start(self, child: Child) -> None:
        child.runs += 1
        child.report_file = self.folder / f"{child.slot}-{child.runs}.json"
        child.token_file = self.folder / f"{child.slot}-{child.runs}.token"
        child.process = subprocess.Popen(
            child_command(
                loop=self.loop,
                hook_id=self.hook_id,
                report_file=child.report_file,
                token_file=child.token_file,
            ),
            env=child_environment(),
        )
        child.started = time.monotonic()
        child.restart_at = None

    def watch(self, child: Child) -> None:
        if child.process is None:
            if child.restart_at is not None and time.monotonic() >= child.restart_at:
                self.start(child)
            return
        code = child.process.poll()
        if code is None:
            return
        self.ended(child, code)
        if not self.loop:
            return
        if code == 0:
            child.crashes_in_a_row = 0
        elif time.monotonic() - child.started >= STEADY:
            child.crashes_in_a_row = 1
        else:
            child.crashes_in_a_row += 1
        delay = min(RESTART_DELAY_MAX, RESTART_DELAY * 2 ** max(0, child.crashes_in_a_row - 1))
        logger.warning(
            "sender process %s (pid %s) %s; starting another in %.0f s",
            child.slot,
            child.process.pid,
            describe_exit(code),
            delay,
        )
        child.process = None
        child.restart_at = time.monotonic() + delay

    def ended(self, child: Child, code: int) -> None:
        """Count what an exited child did, and its failure; give back what it held."""
        assert child.process is not None and child.report_file is not None
        report = read_report(child.report_file)
        if report is not None:
            self.result.report.add(report)
        if code != 0 or report is None:
            self.result.failures.append(
                f"sender process {child.slot} (pid {child.process.pid}) {describe_exit(code)}"
            )
        self.give_back(child)
        if not self.loop:
            child.process = None

    def give_back(self, child: Child) -> None:
        """Make what an ended child held due again (see the module's docstring). A
        database that fails here only leaves it to the lease, as without a supervisor."""
        assert child.process is not None and child.token_file is not None
        tokens = read_tokens(child.token_file)
        if not tokens:
            return
        try:
            released = with_reconnect(
                lambda: release_dead_claims(tokens), what="giving back a dead sender's callbacks"
            )
        except DatabaseError:
            log_database_failure(
                logger,
                "could not give back what sender process %s (pid %s) held: it goes out "
                "again when its lease runs out",
                child.slot,
                child.process.pid,
            )
            return
        if released:
            logger.warning(
                "sender process %s (pid %s) held %s callback(s): due again",
                child.slot,
                child.process.pid,
                released,
            )

    def stop_all(self) -> None:
        """SIGTERM to every child, then SIGKILL to those still there after the grace."""
        live = [c for c in self.children if c.process is not None]
        for child in self.children:
            child.restart_at = None
        for child in live:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        if live:
            logger.info(
                "stopping %s sender process(es): SIGTERM sent, SIGKILL in %.0f s",
                len(live),
                stop_grace(),
            )
        deadline = time.monotonic() + stop_grace()
        for child in live:
            try:
                code = child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
                self.result.failures.append(
                    f"sender process {child.slot} (pid {child.process.pid}) did not stop "
                    f"within {stop_grace():.0f} s and was killed"
                )
                self.give_back(child)
            else:
                # Killed by the SIGTERM itself: it had not yet set up its handler, nor
                # claimed anything.
                if code != -signal.SIGTERM:
                    self.ended(child, code)
            child.process = None


def run_processes(
    *,
    processes: int,
    loop: bool,
    hook_id: int | None = None,
    stop: threading.Event,
) -> Supervision:
    """Run ``processes`` senders (``--loop`` workers with ``loop``) until they are done,
    or until ``stop`` is set and they have stopped."""
    with tempfile.TemporaryDirectory(prefix="http_hooks_senders_") as folder:
        supervisor = Supervisor(
            processes=processes, loop=loop, hook_id=hook_id, stop=stop, folder=Path(folder)
        )
        return supervisor.run()
