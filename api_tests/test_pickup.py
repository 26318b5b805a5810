"""Near-instant pickup: a commit that stores callbacks sends one NOTIFY (PostgreSQL),
at most one per ``NOTIFY_INTERVAL`` and process, which wakes an idle ``--loop`` worker
at once; elsewhere the worker polls."""

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from http_hooks.api import resend_callbacks
from http_hooks.models import Callback
from shop.models import Order

from .waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(ROOT / "demo" / "manage.py"), "send_callbacks", "--loop"]


# Every commit notifies: the tests that count them see each one.
EACH_COMMIT = override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, "NOTIFY_INTERVAL": 0})


def notifies(queries: CaptureQueriesContext) -> int:
    return sum("pg_notify" in q["sql"] for q in queries.captured_queries)


def on_postgres(count: int) -> int:
    return count if connection.vendor == "postgresql" else 0


@pytest.mark.django_db(transaction=True)
@EACH_COMMIT
def test_a_transaction_that_stores_callbacks_notifies_once_at_commit(make_hook):
    make_hook()
    make_hook()
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        for n in range(3):
            Order.objects.create(name=f"order {n}")
        assert notifies(queries) == 0, "a NOTIFY before the commit"
    assert Callback.objects.count() == 6
    assert notifies(queries) == on_postgres(1)


@pytest.mark.django_db(transaction=True)
@EACH_COMMIT
def test_each_save_in_autocommit_notifies_once_without_an_interval(make_hook):
    make_hook()
    with CaptureQueriesContext(connection) as queries:
        Order.objects.create(name="one")
        Order.objects.create(name="two")
    assert notifies(queries) == on_postgres(2)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@EACH_COMMIT
def test_a_notify_that_fails_never_fails_the_users_save(make_hook, caplog):
    """The save is committed when the NOTIFY goes: in autocommit as in a transaction, a
    NOTIFY that fails is logged (the workers' poll finds the callbacks), never raised
    into the code that saved. In autocommit it was."""

    def refuse_notify(execute, sql, params, many, context):
        if "pg_notify" in sql:
            raise DatabaseError("the NOTIFY failed")
        return execute(sql, params, many, context)

    make_hook()
    with connection.execute_wrapper(refuse_notify):
        Order.objects.create(name="autocommit")
        with transaction.atomic():
            Order.objects.create(name="in a transaction")
    assert Callback.objects.count() == 2
    logged = [r for r in caplog.records if r.name == "http_hooks.dispatch"]
    assert [str(r.exc_info[1]) for r in logged] == ["the NOTIFY failed"] * 2


@pytest.mark.django_db(transaction=True)
@override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, "NOTIFY_INTERVAL": 3600})
def test_a_process_notifies_once_per_interval(make_hook):
    make_hook()
    with CaptureQueriesContext(connection) as queries:
        for n in range(3):
            Order.objects.create(name=f"order {n}")
        with transaction.atomic():
            Order.objects.create(name="in a transaction")
    assert Callback.objects.count() == 4
    assert notifies(queries) == on_postgres(1)


@pytest.mark.django_db(transaction=True)
@EACH_COMMIT
def test_no_notify_without_callbacks_or_after_a_rollback(make_hook):
    with CaptureQueriesContext(connection) as queries:
        Order.objects.create(name="no hook yet")
        make_hook()
        with pytest.raises(RuntimeError), transaction.atomic():
            Order.objects.create(name="rolled back")
            raise RuntimeError
    assert Callback.objects.count() == 0
    assert notifies(queries) == 0


@pytest.mark.django_db(transaction=True)
@EACH_COMMIT
def test_a_resend_notifies_once_per_chunk(make_hook):
    make_hook()
    Order.objects.create(name="one")
    Order.objects.create(name="two")
    Callback.objects.update(status="error")
    with CaptureQueriesContext(connection) as queries:
        assert resend_callbacks(ids=list(Callback.objects.values_list("pk", flat=True))) == 2
    assert notifies(queries) == on_postgres(1)


# --- an idle worker -----------------------------------------------------------------


def start_loop(env: dict, *, stdout: int = subprocess.DEVNULL, **overrides) -> subprocess.Popen:
    return subprocess.Popen(
        MANAGE,
        env={**env, "HTTP_HOOKS_OVERRIDES": json.dumps(overrides), "PYTHONUNBUFFERED": "1"},
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def lines_as_they_come(stream: IO[str]) -> list[str]:
    """The lines of ``stream``, appended by a thread as the process writes them."""
    lines: list[str] = []

    def read() -> None:
        for line in stream:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def stop(worker: subprocess.Popen) -> str:
    """SIGTERM; the worker must exit 0. Returns what it wrote to stderr."""
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr
    return stderr


def pickup(receiver, name: str) -> float:
    """Seconds from the commit of a new callback to its request at the receiver."""
    expected = len(receiver.requests) + 1
    started = time.monotonic()
    Order.objects.create(name=name)
    receiver.wait_for(expected, timeout=60)
    return time.monotonic() - started


def listening_backends() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE 'LISTEN %%'"
        )
        return [pid for (pid,) in cursor.fetchall()]


@pytest.mark.multiprocess
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_idle_worker_wakes_on_notify_well_before_its_next_poll(make_hook, receiver, same_db_env):
    """The worker polls every 60 s here: only the NOTIFY can wake it in time."""
    make_hook()
    worker = start_loop(same_db_env, LOOP_MIN_SLEEP=60, LOOP_MAX_SLEEP=60, LOOP_LISTEN_MAX_SLEEP=60)
    try:
        wait_until(
            listening_backends,
            message="the worker never listened",
            alive=lambda: worker.poll() is None,
        )
        pickup(receiver, "first")  # whether the first poll or the NOTIFY takes it
        for n in range(3):
            assert pickup(receiver, f"order {n}") < 1.0
    finally:
        stop(worker)


@pytest.mark.multiprocess
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, "NOTIFY_INTERVAL": 1})
def test_a_commit_that_sends_no_notify_is_taken_by_the_woken_worker(
    make_hook, receiver, same_db_env
):
    """Saves less than ``NOTIFY_INTERVAL`` (1 s) after this process's last NOTIFY send
    none: the worker that NOTIFY woke polls again within the interval, not 60 s later."""
    make_hook()
    worker = start_loop(
        same_db_env,
        LOOP_MIN_SLEEP=60,
        LOOP_MAX_SLEEP=60,
        LOOP_LISTEN_MAX_SLEEP=60,
        NOTIFY_INTERVAL=1,
        stdout=subprocess.PIPE,
    )
    output = lines_as_they_come(worker.stdout)
    try:
        wait_until(listening_backends, alive=lambda: worker.poll() is None)
        pickup(receiver, "first")
        latencies = []
        with CaptureQueriesContext(connection) as queries:
            for n in range(3):
                # The run that sent the last one has ended (it prints its summary just
                # before the pause): the worker waits again.
                wait_until(
                    lambda n=n: sum(line.startswith("sent ") for line in output) > n,
                    message=lambda: f"the run that sent the last one went on: {output}",
                    alive=lambda: worker.poll() is None,
                )
                latencies.append(pickup(receiver, f"order {n}"))
    finally:
        stop(worker)
    assert notifies(queries) < 3, "every save notified: none was left to the worker's poll"
    # The interval, and room for a loaded machine to claim and send.
    assert max(latencies) < 1 + 2, latencies


@pytest.mark.multiprocess
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_lost_listen_connection_is_opened_again(make_hook, receiver, same_db_env):
    make_hook()
    worker = start_loop(same_db_env, LOOP_MIN_SLEEP=5, LOOP_MAX_SLEEP=5)
    try:
        (first,) = wait_until(listening_backends, alive=lambda: worker.poll() is None)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [first])
        wait_until(
            lambda: listening_backends() not in ([], [first]),
            message="the worker did not listen again",
            alive=lambda: worker.poll() is None,
        )
        assert pickup(receiver, "after the loss") < 1.0
    finally:
        stderr = stop(worker)
    # One line: the driver's message for a killed backend runs over three.
    (lost,) = [line for line in stderr.splitlines() if "LISTEN connection" in line]
    assert lost.endswith("; polling"), stderr


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_without_notify_an_idle_worker_picks_up_within_its_polling_bound(
    make_hook, receiver, same_db_env
):
    """Any database, NOTIFY off: the worker polls at most ``LOOP_MAX_SLEEP`` (0.5 s) apart."""
    make_hook()
    worker = start_loop(same_db_env, NOTIFY_CHANNEL=None)
    try:
        pickup(receiver, "first")
        latencies = [pickup(receiver, f"order {n}") for n in range(3)]
    finally:
        stop(worker)
    # The bound, and room for a loaded machine to claim and send.
    assert max(latencies) < 0.5 + 0.5, latencies


# The idle worker's sessions, told apart from any other process's by their name
# (libpq's PGAPPNAME): a process another test left behind may be connected too.
APP_NAME = "http_hooks idle poll test"


def idle_poll_connection() -> list[int]:
    """The worker's one session once it is idle, its last query the poll's question."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, query FROM pg_stat_activity WHERE application_name = %s", [APP_NAME]
        )
        sessions = cursor.fetchall()
    if len(sessions) == 1 and sessions[0][1].startswith("SELECT EXISTS"):
        return [sessions[0][0]]
    return []


@pytest.mark.multiprocess
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_idle_worker_whose_connection_is_killed_reconnects_and_goes_on(
    make_hook, receiver, same_db_env
):
    """The idle poll's question (``anything_due``) reconnects like the sender does: no
    error logged as a failed loop, and the next callback goes out as before. With
    persistent connections: otherwise every poll opens a new one."""
    make_hook()
    env = {**same_db_env, "HTTP_HOOKS_PG_CONN_MAX_AGE": "600", "PGAPPNAME": APP_NAME}
    worker = start_loop(env, NOTIFY_CHANNEL=None, LOOP_MAX_SLEEP=0.3)
    try:
        pickup(receiver, "first")
        (killed,) = wait_until(idle_poll_connection, alive=lambda: worker.poll() is None)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [killed])
        wait_until(
            lambda: (pids := idle_poll_connection()) and pids != [killed],
            message="the worker did not connect again",
            alive=lambda: worker.poll() is None,
        )
        assert pickup(receiver, "after the loss") < 2.0
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr
    assert "looking for due callbacks: database error" in stderr, stderr
    assert "database error, trying again" not in stderr, stderr
    assert "Traceback" not in stderr, stderr
