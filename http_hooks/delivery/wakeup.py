"""Near-instant pickup: a transaction that stores callbacks wakes the idle ``--loop``
workers as it commits, on PostgreSQL (``LISTEN``/``NOTIFY``).

The sending side: ``dispatch.enqueue_on_commit()`` has the commit send one ``NOTIFY`` on
``NOTIFY_CHANNEL``, however many callbacks the transaction stored (one
``pg_notify`` a transaction, after the commit, so a rolled-back one wakes
nobody), and a process at most one per ``NOTIFY_INTERVAL``: a commit that
follows its last one sooner sends none, and the workers that notification
woke poll again within that interval. The listening side: ``Waiter.wait()``,
the loop's pause between polls, waits for a notification on a connection of its
own instead of only sleeping; a notification ends the pause at once. The polling stays: retries
fall due and leases expire without any NOTIFY, and a notification can be missed
(the connection drops, a ``NOTIFY`` fails after the commit): the next poll finds
those callbacks within ``LOOP_MAX_SLEEP``. A lost connection is opened again
at most once per ``LOOP_MAX_SLEEP``; until then the worker polls.

Other databases, psycopg 2 and ``NOTIFY_CHANNEL = None`` poll only.
"""

from __future__ import annotations

import logging
import math
import select
import threading
import time
from collections.abc import Sequence

from django.db import DEFAULT_DB_ALIAS, connections, router

from ..models import Callback
from ..settings import hooks_settings
from ..text import first_line

try:
    import psycopg
    from psycopg import sql
except ImportError:  # psycopg 2, or no PostgreSQL at all: the worker polls.
    psycopg = None

logger = logging.getLogger(__name__)

# The longest the waiter waits before it looks at ``stop`` (set by a signal handler,
# which runs only once the wait returns).
SLICE = 0.5


def can_notify(using: str) -> bool:
    """Whether a commit on ``using`` wakes the idle workers: on PostgreSQL, with a
    ``NOTIFY_CHANNEL``. ``dispatch.enqueue_on_commit`` sends it once per transaction."""
    return hooks_settings.NOTIFY_CHANNEL is not None and connections[using].vendor == "postgresql"


def notify(ids: Sequence[int] = (), *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Wake the idle workers listening on the database of ``using``, unless this
    process did less than ``NOTIFY_INTERVAL`` seconds ago.

    PostgreSQL commits the transactions that notify one at a time (a global lock
    held through the commit's flush), so a NOTIFY per save would line up every
    busy process's commits behind each other. A commit that sends none is covered
    by the workers the previous one woke: they poll again within
    ``NOTIFY_INTERVAL`` (``Waiter.wait``), and find its callbacks.
    """
    sent = hooks_settings.derived("notify_sent", dict)
    now = time.monotonic()
    if now - sent.get(using, -math.inf) < float(hooks_settings.NOTIFY_INTERVAL):
        return
    sent[using] = now
    try:
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [hooks_settings.NOTIFY_CHANNEL])
    except Exception:
        sent.pop(using, None)  # nobody was woken: the next commit notifies
        raise


def can_listen(using: str) -> bool:
    """Whether a worker on the database of ``using`` can wait for notifications."""
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return (
        hooks_settings.NOTIFY_CHANNEL is not None
        and connections[using].vendor == "postgresql"
        and is_psycopg3
    )


def listen_connection(using: str) -> psycopg.Connection:
    """A new autocommit connection to the database of ``using``, listening on
    ``NOTIFY_CHANNEL``."""
    listener = psycopg.connect(**connections[using].get_connection_params(), autocommit=True)
    listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(hooks_settings.NOTIFY_CHANNEL)))
    return listener


class Waiter:
    """The loop worker's pause between polls: ``wait()`` returns after ``timeout``
    seconds, when ``stop`` is set, or (on PostgreSQL) when callbacks are stored."""

    def __init__(self) -> None:
        self.using = router.db_for_write(Callback)
        self.enabled = can_listen(self.using)
        self.listener: psycopg.Connection | None = None
        self.reconnect_at = 0.0
        self.notified = False

    def __enter__(self) -> Waiter:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def connect(self) -> bool:
        """Open the listening connection; whether it is open now."""
        if not self.enabled:
            return False
        self.reconnect_at = time.monotonic() + float(hooks_settings.LOOP_MAX_SLEEP)
        try:
            self.listener = listen_connection(self.using)
        except psycopg.Error as exc:
            logger.warning("send_callbacks loop: cannot LISTEN (%s); polling", first_line(exc))
            self.listener = None
        return self.listener is not None

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    def longest_pause(self) -> float:
        """How long an idle worker may wait between polls now."""
        name = "LOOP_LISTEN_MAX_SLEEP" if self.listener is not None else "LOOP_MAX_SLEEP"
        return float(getattr(hooks_settings, name))

    def wait(self, timeout: float, stop: threading.Event) -> None:
        """Pause up to ``timeout`` seconds; after a pause that a notification ended,
        the next one lasts ``NOTIFY_INTERVAL`` at most: the process that notified
        sends no other NOTIFY for that long, and its commits meanwhile wait for
        this worker's next poll (``notify``)."""
        if self.notified:
            timeout = min(timeout, float(hooks_settings.NOTIFY_INTERVAL))
        self.notified = False
        if self.listener is None and time.monotonic() >= self.reconnect_at and self.connect():
            # Back after a loss: callbacks may have been stored meanwhile, poll now.
            return
        if self.listener is None:
            stop.wait(timeout)
            return
        deadline = time.monotonic() + timeout
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            try:
                # select() on the socket, not the driver's own wait, which wakes
                # every 0.1 s; then read what came, every notification at once.
                readable, _, _ = select.select([self.listener.fileno()], [], [], min(left, SLICE))
                if readable and list(self.listener.notifies(timeout=0)):
                    self.notified = True
                    return
            except (psycopg.Error, OSError) as exc:
                logger.warning(
                    "send_callbacks loop: lost the LISTEN connection (%s); polling", first_line(exc)
                )
                self.listener.close()
                self.listener = None
                stop.wait(max(0.0, deadline - time.monotonic()))
                return
