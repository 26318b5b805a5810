"""Dropping the suite's own database connections on PostgreSQL, as an outage or a
restart of the server would, for the tests of what comes after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import connection


def terminate_other_backends() -> int:
    """``pg_terminate_backend`` on every other connection to this test's database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


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
    import psycopg

    params = connection.get_connection_params()
    dbname = params.pop("dbname")
    name = connection.ops.quote_name(dbname)
    # From another database: PostgreSQL will not close the current one.
    with psycopg.connect(**{**params, "dbname": "postgres"}, autocommit=True) as server:

        def reopen() -> None:
            server.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")

        server.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        try:
            if this_one_too:
                server.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    [dbname],
                )
            else:
                terminate_other_backends()
            yield reopen
        finally:
            reopen()
