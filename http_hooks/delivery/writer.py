"""Windows of outcomes written on a thread (and database connection) of their own.

Why: while the sender's thread waits for the database to write a window
(35-45 ms for 500 outcomes on PostgreSQL, every index of the callbacks table
touched twice a row), no transfer ends and none starts; with a fast receiver
the transfers sat idle for about a quarter of a run (``bench/delivery.py``).
The driver lets go of the GIL while it waits, so a window written beside the
transfers costs the sender only its CPU.

One window at a time: the next waits for the last, so outcomes are still
written in the order they came and a crash loses no more than before (the
window being written and the one collecting).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from typing import TypeVar

from django.db import DatabaseError, connections, router

from ..models import Callback

T = TypeVar("T")


def usable() -> bool:
    """Whether outcomes are written on another connection.

    Not inside the caller's transaction (a test case's, an ``atomic`` around
    ``send_callbacks``, autocommit turned off): another connection cannot see
    its claims, and would wait for their row locks while the sender waited for
    it. Not on SQLite, where one connection at a time may write: the sender's
    claims waited for the writer's commits, in the sleeps of SQLite's busy
    handler, and runs were slower with the writer than without
    (``bench/engines.py``: 0.88x in memory, 0.94x on disk; 1.15x on PostgreSQL).
    """
    db = connections[router.db_for_write(Callback)]
    return db.vendor != "sqlite" and db.get_autocommit() and not db.in_atomic_block


class OutcomeWriter:
    """One thread that runs the work it is given, in turn, on its own database
    connection, started at the first ``submit`` and closed by ``close``."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None

    def submit(self, work: Callable[[], T]) -> Future[T]:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="http_hooks outcome writer")
        return self._executor.submit(work)

    def close(self) -> None:
        """Wait for the work given, then close the thread's database connection and the
        thread. A connection that fails as it closes is closed all the same: the run's
        own outcome, or error, is what the caller hears of."""
        if self._executor is not None:
            with suppress(DatabaseError):
                self._executor.submit(connections.close_all).result()
            self._executor.shutdown()
            self._executor = None
