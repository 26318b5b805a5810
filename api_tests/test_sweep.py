"""The sweep's turn on PostgreSQL: one sweeper at a time, and never one that stopped
answering for good (``delivery.sweep.sweep_turn``)."""

from __future__ import annotations

import threading

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


def test_one_sweeper_at_a_time():
    taken, done = threading.Event(), threading.Event()

    def other() -> None:
        try:
            with sweep_turn() as mine:
                assert mine
                taken.set()
                done.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert taken.wait(10)
        assert my_turn() is False
    finally:
        done.set()
        thread.join(30)
    # The session's own idle timeout (a database administrator's, say) is back after a turn.
    with connection.cursor() as cursor:
        cursor.execute("SET idle_session_timeout = '1h'")
        assert my_turn() is True
        cursor.execute("SHOW idle_session_timeout")
        assert cursor.fetchone() == ("1h",)
        cursor.execute("RESET idle_session_timeout")


@override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, "LEASE_SECONDS": 1})
def test_a_sweeper_that_stops_answering_leaves_its_turn_after_a_lease(caplog):
    """A sweeper frozen with the lock (here a thread that took it and waits, its session
    idle) keeps it only ``LEASE_SECONDS``: then PostgreSQL ends its session and another
    worker sweeps. Before, the lock stayed as long as the frozen session did."""
    taken, thawed, errors = threading.Event(), threading.Event(), []

    def frozen() -> None:
        try:
            with sweep_turn() as mine:
                assert mine
                taken.set()
                thawed.wait(30)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=frozen)
    thread.start()
    try:
        assert taken.wait(10)
        assert my_turn() is False
        wait_until(my_turn, timeout=20, message="the frozen sweeper kept the sweep's lock")
    finally:
        thawed.set()
        thread.join(30)
    # Thawed, it finds its session gone and says so; nothing raises into its worker.
    assert errors == []
    assert "the database ended this sweeper's session" in caplog.text
    assert my_turn() is True
