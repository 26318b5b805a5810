"""The sweep's turn on PostgreSQL: one sweeper at a time, and never one that stopped
answering for good (``delivery.sweep.sweep_turn``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings

from http_hooks.delivery.sweep import sweep_turn

from .waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def my_turn() -> bool:
    with sweep_turn() as mine:
        return mine


@contextmanager
def another_sweeper_in_its_turn() -> Iterator[list[BaseException]]:
    """A thread that takes the sweep's turn and waits in it, its session idle (as a
    frozen sweeper's is), until the block ends; yields what the thread raised."""
    taken, release, raised = threading.Event(), threading.Event(), []

    def sweeper() -> None:
        try:
            with sweep_turn() as mine:
                assert mine
                taken.set()
                release.wait(30)
        except BaseException as exc:  # reported to the test
            raised.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=sweeper)
    thread.start()
    try:
        assert taken.wait(10)
        yield raised
    finally:
        release.set()
        thread.join(30)


def test_one_sweeper_at_a_time():
    with another_sweeper_in_its_turn() as raised:
        assert my_turn() is False
    assert raised == []
    # The session's own idle timeout (a database administrator's, say) is back after a turn.
    with connection.cursor() as cursor:
        cursor.execute("SET idle_session_timeout = '1h'")
        assert my_turn() is True
        cursor.execute("SHOW idle_session_timeout")
        assert cursor.fetchone() == ("1h",)
        cursor.execute("RESET idle_session_timeout")


@override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, "LEASE_SECONDS": 1})
def test_a_sweeper_that_stops_answering_leaves_its_turn_after_a_lease(caplog):
    """A sweeper frozen in its turn keeps it only ``LEASE_SECONDS``: then PostgreSQL
    ends its session and another worker sweeps. Before, the lock stayed as long as the
    frozen session did."""
    with another_sweeper_in_its_turn() as raised:
        assert my_turn() is False
        wait_until(my_turn, timeout=20, message="the frozen sweeper kept the sweep's lock")
    # Thawed, it finds its session gone and says so; nothing raises into its worker.
    assert raised == []
    assert "the database ended this sweeper's session" in caplog.text
    assert my_turn() is True
