"""Dropping the suite's own database connections on PostgreSQL, as an outage or a
restart of the server would, and locking SQLite's file, as a long writer would, for
the tests of what comes after."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from django.db import connection


def terminate_other_backends() -> int:
    """``pg_terminate_backend`` on every other connection to this test's database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def waiting_on_a_lock(statement: str = "%") -> list[int]:
    """The other connections to this test's database that wait for a lock, running a
    statement ``LIKE statement`` (read afresh: a transaction sees one snapshot of
    ``pg_stat_activity`` unless told otherwise)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query LIKE %s",
            [statement],
        )
        return [pid for (pid,) in cursor.fetchall()]


def terminate_this_backend() -> None:
    """``pg_terminate_backend`` on this test's connection, from another one."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    other = connection.copy()
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()


@contextmanager
def database_closed(*, this_one_too: bool = False) -> Iterator[Callable[[], None]]:
    """This test's database refuses new connections, and every other one is ended
    (this test's own too with ``this_one_too``), until the block exits or calls the
    function it is given."""
    with on_the_server() as (server, dbname, name):

        def reopen() -> None:
            server.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")

        server.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        try:
            if this_one_too:
                terminate_every_backend(server, dbname)
            else:
                terminate_other_backends()
            yield reopen
        finally:
            reopen()


@contextmanager
def database_read_only() -> Iterator[Callable[[], None]]:
    """This test's database answers as a standby would after a failover: every
    connection is ended, this test's too, and the new ones refuse writes (SQLSTATE
    25006, read_only_sql_transaction), until the block exits or calls the function it
    is given (the new primary: connections made after it write again). On SQLite, this
    thread's connection refuses writes (``PRAGMA query_only``: SQLITE_READONLY, as a
    read-only file), until then."""
    if connection.vendor == "sqlite":
        with sqlite_query_only() as writable:
            yield writable
        return
    with on_the_server() as (server, dbname, name):

        def writable() -> None:
            server.execute(f"ALTER DATABASE {name} RESET default_transaction_read_only")

        server.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        try:
            terminate_every_backend(server, dbname)
            connection.close()
            yield writable
        finally:
            writable()
            connection.close()  # made in the block, it would still refuse writes


@contextmanager
def sqlite_query_only() -> Iterator[Callable[[], None]]:
    def writable() -> None:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA query_only = OFF")

    with connection.cursor() as cursor:
        cursor.execute("PRAGMA query_only = ON")
    try:
        yield writable
    finally:
        writable()


@contextmanager
def on_the_server() -> Iterator[tuple[Any, str, str]]:
    """A connection to the server, in autocommit, from another database (PostgreSQL
    will not alter or close the current one); with this test's database's name, as
    is and quoted."""
    import psycopg

    params = connection.get_connection_params()
    dbname = params.pop("dbname")
    with psycopg.connect(**{**params, "dbname": "postgres"}, autocommit=True) as server:
        yield server, dbname, connection.ops.quote_name(dbname)


def terminate_every_backend(server: Any, dbname: str) -> None:
    server.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [dbname]
    )


@contextmanager
def sqlite_locked(*, begin: str = "EXCLUSIVE", timeout: float = 0.01) -> Iterator[None]:
    """The test database's file locked by another connection, and this one's busy
    timeout cut to ``timeout`` (20 s in the demo's settings), as under a long writer.
    ``begin="IMMEDIATE"``: the lock of a writer in the middle of its transaction,
    which readers pass and other writers wait for."""
    options = connection.settings_dict["OPTIONS"]
    busy_timeout = options.get("timeout")
    connection.close()
    options["timeout"] = timeout
    # Unlocked by whichever thread ends the block (``outage_on_call``).
    other = sqlite3.connect(
        connection.settings_dict["NAME"], isolation_level=None, check_same_thread=False
    )
    try:
        other.execute(f"BEGIN {begin}")
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()
        connection.close()
        if busy_timeout is None:
            options.pop("timeout")
        else:
            options["timeout"] = busy_timeout


@contextmanager
def outage_on_call() -> Iterator[Callable[[], None]]:
    """The database goes away when the function the block is given is first called (in
    any thread), and comes back when the block exits: on PostgreSQL it refuses
    connections and ends every one, this test's too (``database_closed``); on SQLite
    another connection holds the file's lock (``sqlite_locked``)."""
    with ExitStack() as stack:
        gone = threading.Lock()

        def go_away() -> None:
            if not gone.acquire(blocking=False):
                return
            if connection.vendor == "postgresql":
                stack.enter_context(database_closed(this_one_too=True))
            else:
                stack.enter_context(sqlite_locked())

        yield go_away
