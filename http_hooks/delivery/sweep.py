"""The sweep of the worker dispatchers (``DISPATCH`` ``"celery"`` and ``"tasks"``).

With workers, a task carries each new callback to a sender. What no task
carries is still due: retries whose time has come, the callbacks of a worker
killed mid-task (their lease runs out), the tasks a dead worker had prefetched
(Redis gives them back only after its visibility timeout, an hour by default)
and the callbacks whose publish failed or was skipped while the broker was
down (``publishing``). So every ``SWEEP_SECONDS`` a thread of each worker
process looks for a callback due for longer than ``SWEEP_SECONDS``, or whose
lease ran out, and when it finds one it sends every due callback, there and
then, as ``send_callbacks`` does.

Why a thread in the worker, not a task for Celery beat: beat is one more
process to remember, and its task waits in the queue behind the backlog it is
meant to help with (on the default queue, where no worker may read, when
``CELERY_QUEUE`` names another one). Why "due for longer than
``SWEEP_SECONDS``": fresh callbacks are the tasks' work; the sweep only takes
up what they leave behind, or help when they fall behind.

One sweep at a time: on PostgreSQL a sweep holds a session advisory lock,
taken without waiting, so of many workers one sweeps and the others skip
their turn. Elsewhere concurrent sweeps are only more senders: the claims keep
them apart, each callback is sent by one of them.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta

from django.core.management import get_commands, load_command_class
from django.core.management.base import CommandError
from django.db import DatabaseError, close_old_connections, connection, connections
from django.utils import timezone
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV

from ..models import Callback, CallbackStatus
from ..settings import hooks_settings
from .claims import settle_left_behind
from .health import held_hooks
from .ids import among
from .outcomes import DeliveryReport
from .processes import stop_grace
from .sender import send_callbacks

logger = logging.getLogger(__name__)

# The key of the advisory lock of the sweep on PostgreSQL ("hhsw" in ASCII).
SWEEP_LOCK = 0x68687377

# The commands whose processes are workers of the ``tasks`` mode: django-tasks-db's.
TASKS_WORKER_COMMANDS = frozenset({"db_worker"})


def overdue() -> bool:
    """Whether a callback was left behind: due for longer than ``SWEEP_SECONDS``
    (``callback_due_idx``), or claimed by a sender whose lease ran out.

    Not those of a hook held now (paused, or disabled by http_hooks: ``held_hooks``),
    which no sender takes: a disabled hook's backlog would otherwise start a sweep
    that sends nothing every period, for as long as the hook stays disabled. A hook
    whose pause has passed with a callback due counts: its probe is the sweep's."""
    now = timezone.now()
    late = now - timedelta(seconds=float(hooks_settings.SWEEP_SECONDS))
    held = [pk for pk, until in held_hooks().items() if until is None or until > now]
    callbacks = Callback.objects.exclude(among("hook_id", held))
    waiting = callbacks.filter(status=CallbackStatus.WAITING, next_attempt_at__lte=late)
    expired = callbacks.filter(status=CallbackStatus.SENDING, claimed_until__lt=now)
    return waiting.exists() or expired.exists()


@contextmanager
def sweep_turn() -> Iterator[bool]:
    """Whether this process may sweep now: on PostgreSQL, whether it took the advisory
    lock (held until the block ends); elsewhere always.

    A sweeper that stops answering while it holds the lock (a frozen process or
    virtual machine, a host gone without closing its connection) must not stop
    every worker's sweeps for good: PostgreSQL would keep the lock as long as it
    keeps the session, which it does for hours without TCP keepalives. So while
    the lock is held, its session has an ``idle_session_timeout`` of
    ``LEASE_SECONDS`` (PostgreSQL 14 and later): idle for that long, the server
    ends the session and the lock with it, and the next worker's turn sweeps
    what was left (the callbacks of the frozen sweeper's claims as well, their
    lease over too). A live sweep is never idle that long unless a try takes
    longer (``TIMEOUT``); it then loses the lock, not its work: it reconnects,
    and goes on beside whoever sweeps next, the claims keeping them apart.
    """
    if connection.vendor != "postgresql":
        yield True
        return
    timeout = None  # the session's own, put back after the turn
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [SWEEP_LOCK])
        (taken,) = cursor.fetchone()
        if taken and connection.pg_version >= 140000:
            cursor.execute("SELECT current_setting('idle_session_timeout')")
            (timeout,) = cursor.fetchone()
            cursor.execute(
                "SELECT set_config('idle_session_timeout', %s, false)",
                [f"{int(hooks_settings.LEASE_SECONDS)}s"],
            )
    session = connection.connection
    try:
        yield taken
    finally:
        if taken and connection.connection is session:
            _release_turn(timeout)


def _release_turn(timeout: str | None) -> None:
    try:
        with connection.cursor() as cursor:
            if timeout is not None:
                cursor.execute("SELECT set_config('idle_session_timeout', %s, false)", [timeout])
            cursor.execute("SELECT pg_advisory_unlock(%s)", [SWEEP_LOCK])
    except DatabaseError:
        # The server ended the session (``idle_session_timeout``): the lock went with it.
        logger.warning(
            "sweep: the database ended this sweeper's session, idle for LEASE_SECONDS while "
            "it held the sweep's lock; the lock went with it"
        )
        connection.close()


def sweep(*, stop: Callable[[], bool] | None = None) -> DeliveryReport | None:
    """One sweep: when a callback was left behind, send every due one (until ``stop()``).
    None when another process sweeps or nothing was left behind."""
    with sweep_turn() as mine:
        if not mine:
            return None
        # The runs of queued tasks (listed callbacks) leave this to the sweep.
        settle_left_behind(held_hooks().keys())
        if not overdue():
            return None
        return send_callbacks(stop=stop)


class Sweeper(threading.Thread):
    """Sweeps every ``period`` seconds, in a thread (and on a database connection) of
    its own, until stopped. An error is logged and the next period tries again: a
    thread that died would leave the worker without recovery, silently."""

    def __init__(self, period: float) -> None:
        super().__init__(name="http_hooks sweep", daemon=True)
        self.period = period
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.period):
                close_old_connections()
                try:
                    report = sweep(stop=self.stopped.is_set)
                except Exception:
                    logger.exception("sweep failed; trying again in %s s", self.period)
                    connection.close()
                    continue
                if report is not None and report.total:
                    logger.info(
                        "sweep: sent %s, retried %s, failed %s",
                        report.sent,
                        report.retried,
                        report.failed,
                    )
        finally:
            connections.close_all()

    def stop(self) -> None:
        """Stop sweeping: a sweep under way finishes its transfers in flight (waited
        for as long as the longest try takes, ``stop_grace``)."""
        self.stopped.set()
        self.join(stop_grace())


_sweeper: Sweeper | None = None
_starting = threading.Lock()


def start_sweeper() -> bool:
    """Start this process's sweeper unless one runs or ``SWEEP_SECONDS`` is None; True
    when it started one. A forked child has no thread of its parent's, so it starts
    its own."""
    global _sweeper
    try:
        period = float(hooks_settings.SWEEP_SECONDS)
    except (TypeError, ValueError):
        # None: no sweep. Any other value that is no number is http_hooks.E033's to
        # report (a worker's command stops on it), not a traceback from apps.ready().
        return False
    if not period > 0:
        return False
    with _starting:
        if _sweeper is not None and _sweeper.is_alive():
            return False
        _sweeper = Sweeper(period)
        _sweeper.start()
        return True


def stop_sweeper() -> None:
    """Stop this process's sweeper, if it runs."""
    global _sweeper
    with _starting:
        if _sweeper is not None:
            _sweeper.stop()
            _sweeper = None


def tasks_worker_options(argv: Sequence[str]) -> argparse.Namespace | None:
    """The options of the tasks worker the command line ``argv`` (``manage.py
    db_worker ...``) runs in this process, as the command itself reads them
    (``--no-rel`` is ``--no-reload``); None when this process runs none: another
    command, options the command refuses, or ``db_worker``'s autoreloader (``--reload``,
    on by default with ``DEBUG``, off with ``--batch``), which only watches the files
    and runs the worker in a child of its own."""
    if len(argv) < 2 or argv[1] not in TASKS_WORKER_COMMANDS:
        return None
    try:
        command = load_command_class(get_commands()[argv[1]], argv[1])
        # Not called from the command line: a refused option raises, prints nothing.
        options, _ = command.create_parser(argv[0], argv[1]).parse_known_args(argv[2:])
    except (KeyError, ImportError, CommandError):
        return None
    reload = getattr(options, "reload", False) and not getattr(options, "batch", False)
    if reload and os.environ.get(DJANGO_AUTORELOAD_ENV) != "true":
        return None
    return options


def start_in_tasks_worker(argv: Sequence[str] | None = None) -> bool:
    """With ``DISPATCH`` ``"tasks"``, start the sweep when this process is a tasks
    worker (``tasks_worker_options``, of ``sys.argv`` by default); True when it started.

    Why at the start, not with the worker's first task: a worker restarted with
    retries due and nothing queued, a deploy on a quiet evening, would leave them
    until the next save queued a task. Neither Django's tasks framework nor
    django-tasks-db signals a worker's start, hence the command line. (A ``--batch``
    worker that exits before ``SWEEP_SECONDS`` has not swept: a sweep at exit would
    need new threads, which Python 3.12 refuses at interpreter shutdown.)"""
    if hooks_settings.DISPATCH != "tasks":
        return False
    if tasks_worker_options(sys.argv if argv is None else argv) is None:
        return False
    return start_sweeper()


# A worker that exits (SIGTERM to db_worker, or a Celery worker that skipped its
# shutdown signal) lets a sweep under way finish its transfers and record them,
# rather than leave its callbacks "sending" until their lease ends.
atexit.register(stop_sweeper)
