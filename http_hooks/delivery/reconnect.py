"""Database work that survives a dropped connection (a restart, a failover, a
killed backend): the sender reconnects and tries again, a bounded number of
times, before it gives up.

Why it matters: a sender that threw its outcomes away on a blip would send
every one of them again after the lease, and a one-shot sender would exit
with an error in the middle of its run.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import TypeVar

from django.db import (
    DatabaseError,
    InterfaceError,
    InternalError,
    OperationalError,
    connections,
    router,
)

from ..models import Callback
from ..text import first_line

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Seconds to wait before each new try: about 8 s in all, then the error stands.
RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0, 4.0)
# A sender that stops with work it could not write (``Sender.let_go``) tries once more,
# and once on a new connection: a worker asked to stop must stop soon.
LAST_TRY_DELAYS = (0.5,)
# PostgreSQL's read_only_sql_transaction: a standby (a failover under way, a connection
# that landed on a replica) or a database set read-only refusing a write.
READ_ONLY_SQLSTATE = "25006"


def with_reconnect(
    work: Callable[[], T],
    *,
    what: str,
    undo: Callable[[], object] | None = None,
    delays: Sequence[float] | None = None,
) -> T:
    """``work()``; when the database is out of reach under it (``out_of_reach``: the
    connection failed, a lock, a standby refusing writes), reconnect and try again
    after each of ``delays`` (``RECONNECT_DELAYS``). ``work`` must be one transaction
    (or none), so that a failed try left nothing behind, or come with an ``undo``,
    called before each new try: a connection lost while the answer to a COMMIT
    (or to a statement in autocommit) was on its way leaves the work done, and
    its result lost (``claims.lost_claims``).

    Inside an outer transaction (a test case's, a caller's ``atomic``) nothing
    is retried: closing the connection would lose that transaction.
    """
    db = connections[router.db_for_write(Callback)]
    for number, delay in enumerate((*(RECONNECT_DELAYS if delays is None else delays), None)):
        try:
            if number and undo is not None:
                undo()
            result = work()
        except DatabaseError as exc:
            if delay is None or db.in_atomic_block or not out_of_reach(exc):
                raise
            # The first reconnection says so; the next ones of the same work (six in
            # about 8 s, round after round while the database is away) go to DEBUG.
            logger.log(
                logging.WARNING if number == 0 else logging.DEBUG,
                "%s: database error (%s); reconnecting in %g s",
                what,
                first_line(exc),
                delay,
            )
            with suppress(DatabaseError):
                db.close()
            time.sleep(delay)
            continue
        if number > 1:
            logger.warning("%s: the database answers again, after %d reconnections", what, number)
        return result
    raise AssertionError("unreachable")


def out_of_reach(exc: BaseException | None) -> bool:
    """Whether ``exc`` says the database is out of reach, busy or read-only for now, so
    that the same work may pass later, on a new connection: a dropped or refused
    connection, a lock, a deadlock, a timeout (Django's ``OperationalError`` and
    ``InterfaceError``), a write refused as read-only (PostgreSQL's ``InternalError``
    of ``READ_ONLY_SQLSTATE``, where a new connection may reach the new primary;
    SQLite's ``SQLITE_READONLY`` is an ``OperationalError``). Not SQLite's plain
    ``SQLITE_ERROR``, an ``OperationalError`` too, which says the statement is wrong
    ("no such table": a migration not run), whenever it is tried; nor one that Python's
    ``sqlite3`` raises itself, without SQLite's error code ("Could not decode to UTF-8":
    a row whose text is no UTF-8), which fails whenever that row is read; nor any other
    ``InternalError`` (XX000, the database's own failure)."""
    if isinstance(exc, InternalError):
        return read_only(exc)
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    cause = exc.__cause__
    if not isinstance(cause, sqlite3.Error):
        return True
    code = getattr(cause, "sqlite_errorcode", None)
    return code is not None and code & 0xFF != sqlite3.SQLITE_ERROR


def read_only(exc: BaseException | None) -> bool:
    """Whether ``exc`` is PostgreSQL refusing a write as read-only (``READ_ONLY_SQLSTATE``):
    the connection answers, on a standby, and only a new one may reach the primary."""
    return isinstance(exc, InternalError) and sqlstate(exc.__cause__) == READ_ONLY_SQLSTATE


def sqlstate(error: BaseException | None) -> str | None:
    """The SQLSTATE of a PostgreSQL driver's error (psycopg's ``sqlstate``, psycopg2's
    ``pgcode``), None for any other."""
    return getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)


def log_database_failure(log: logging.Logger, message: str, *args: object) -> None:
    """In an ``except DatabaseError`` block: log ``message`` as an error, with the first
    line of the error when the database is out of reach (each reconnection was logged
    already, and a traceback at each round would fill the logs of an outage), with the
    traceback for any other database error."""
    exc = sys.exc_info()[1]
    if out_of_reach(exc):
        log.error(f"{message} (%s)", *args, first_line(exc))
    else:
        log.exception(message, *args)
