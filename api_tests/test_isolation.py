"""Delivery isolation: a hanging receiver never delays another, outcomes are written as
they happen, hooks share the sender fairly, and neither a database blip nor a crash
repeats more than what was in flight.

Every case runs against real receivers on 127.0.0.1; the multiprocess ones against a
real ``manage.py send_callbacks``.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import (
    IntegrityError,
    InternalError,
    OperationalError,
    ProgrammingError,
    connection,
    transaction,
)
from django.test import override_settings
from django.utils import timezone

from http_hooks import metrics
from http_hooks.api import send_callbacks
from http_hooks.delivery import claim_batch, outcomes, reconnect, recording
from http_hooks.delivery.claims import claim_probe, renew_lease
from http_hooks.delivery.outcomes import (
    DeliveryReport,
    insert_attempts,
    record_outcomes,
    write_states,
)
from http_hooks.delivery.reconnect import with_reconnect
from http_hooks.delivery.sender import OUTCOME_WINDOW_SIZE, Sender
from http_hooks.models import Attempt, Callback, Hook
from http_hooks.settings import hooks_settings as live_settings
from http_hooks.transport import Outcome
from shop.models import Order

from .backends import (
    database_closed,
    database_read_only,
    terminate_other_backends,
    terminate_this_backend,
    waiting_on_a_lock,
)
from .receiver import Behaviour, Receiver
from .waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(ROOT / "demo" / "manage.py"), "send_callbacks"]


def hooks_settings(**overrides):
    return override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, "RETRY_JITTER": 0.0, **overrides})


def save_orders(count: int) -> None:
    with transaction.atomic():
        for n in range(count):
            Order.objects.create(name=f"order {n}")


def due_in_turn(*hooks) -> None:
    """Make each hook's callbacks due a minute before the next hook's: claimed first
    come, first served, the first hook's would all go before any of the others'."""
    now = timezone.now()
    for n, hook in enumerate(hooks):
        due = now - datetime.timedelta(minutes=len(hooks) - n)
        Callback.objects.filter(hook=hook).update(next_attempt_at=due)


@pytest.fixture
def hanging():
    """A receiver that answers nothing until the test is over."""
    server = Receiver().start()
    server.respond(hold=threading.Event())
    yield server
    server.stop()


@contextmanager
def sending_meanwhile(hold: threading.Event, **overrides) -> Iterator[list]:
    """``send_callbacks()`` in a thread, with these settings, while the block runs; then
    it is stopped, ``hold`` is set (its held requests answered) and it must end. Yields
    the list its report goes into."""
    stop, reports = threading.Event(), []

    def sender() -> None:
        try:
            reports.append(send_callbacks(stop=stop.is_set))
        finally:
            connection.close()

    with hooks_settings(**{"TIMEOUT": (5.0, 60.0), **overrides}):
        thread = threading.Thread(target=sender)
        thread.start()
        try:
            yield reports
        finally:
            stop.set()
            hold.set()
            thread.join(timeout=30)
    assert not thread.is_alive()


def healthy_beside(hanging: Receiver, slow: list, hold: threading.Event, make_hook, **overrides):
    """With the ``slow`` hooks' callbacks due first, send (``sending_meanwhile``, 16
    transfers, these settings) until a healthy hook's 50 are sent, while ``hold``
    still holds the hanging receiver's requests; return those requests' paths,
    counted."""
    fast = make_hook()
    save_orders(50)
    due_in_turn(*slow, fast)
    healthy = Callback.objects.filter(hook=fast)
    try:
        with sending_meanwhile(hold, BATCH_SIZE=50, CONCURRENCY=16, **overrides):
            wait_until(
                lambda: healthy.filter(status="sent").count() == 50,
                timeout=45,
                message=lambda: (
                    f"healthy sent: {healthy.filter(status='sent').count()}, "
                    f"hanging requests: {Counter(r.path for r in hanging.requests)}"
                ),
            )
            seen = Counter(request.path for request in hanging.requests)
            assert not hold.is_set()
    finally:
        hanging.stop()
    assert Callback.objects.filter(hook=fast, status="sent").count() == 50
    return seen


def six_slow_hooks(make_hook, hold: threading.Event) -> tuple[Receiver, list]:
    """Six hooks whose one try each was slow (longer than the shorter timeout, 0.2 s)
    in a run that is over; from now on their receiver holds every request until
    ``hold`` is set."""
    hanging = Receiver().start()
    slow = []
    for name in "abcdef":
        hanging.respond(f"/{name}", delay=0.3)
        slow.append(make_hook(target_url=hanging.url(f"/{name}")))
    save_orders(1)
    with hooks_settings(TIMEOUT=(0.2, 60.0)):
        assert send_callbacks().sent == 6  # slow, all of them
    for name in "abcdef":
        hanging.respond(f"/{name}", hold=hold)
    return hanging, slow


@pytest.mark.django_db(transaction=True)
def test_a_hanging_hook_never_delays_a_healthy_one(make_hook, receiver):
    """100 callbacks to a hanging receiver, claimed first, and 100 to a healthy one:
    every healthy one is delivered and marked sent while the hanging hook's requests
    are all still held (their read timeout is a minute away), so none waited for them.
    How soon that is, is measured by ``bench/delivery.py`` (a healthy hook's latency
    beside a hanging one), not by a clock in a test."""
    hold = threading.Event()
    hanging = Receiver().start()
    hanging.respond(hold=hold)
    slow = make_hook(target_url=hanging.url())
    fast = make_hook()
    save_orders(100)
    due_in_turn(slow, fast)
    healthy = Callback.objects.filter(hook=fast)
    try:
        with sending_meanwhile(hold, BATCH_SIZE=50) as reports:
            wait_until(
                lambda: healthy.filter(status="sent").count() == 100,
                timeout=45,
                message="the healthy hook's callbacks were not all marked sent",
            )
            held_meanwhile = not hold.is_set() and len(hanging.requests) == 12
    finally:
        hanging.stop()
    # The hanging hook held its share (3/4 of 16) and no more, the whole time.
    assert held_meanwhile
    assert len(receiver.requests) == 100
    assert Callback.objects.filter(hook=slow, status="sending").count() == 0
    assert reports[0].sent >= 100


@pytest.mark.django_db(transaction=True)
def test_three_hanging_hooks_never_take_every_transfer_from_a_healthy_one(make_hook, receiver):
    """Three hooks whose receiver hangs, their callbacks claimed first: the first holds
    its share (12 of 16), and the last quarter of the transfers goes to hooks with none
    in flight, one each, so the healthy hook's 50 all go out while the 14 are held."""
    hold = threading.Event()
    hanging = Receiver().start()
    slow = []
    for name in ("a", "b", "c"):
        hanging.respond(f"/{name}", hold=hold)
        slow.append(make_hook(target_url=hanging.url(f"/{name}")))
    held = healthy_beside(hanging, slow, hold, make_hook)
    assert sorted(held.values()) == [1, 1, 12]
    assert len(receiver.requests) == 50


@pytest.mark.django_db(transaction=True)
def test_slow_hooks_never_take_the_last_transfers_however_many_hang(make_hook, receiver):
    """Six hooks whose receiver answers a first try slowly (longer than the shorter
    timeout) and hangs on every try after it, claimed first: once each has had its
    slow try, the last quarter of the transfers goes to the healthy hook alone, so
    that its 50 all go out while the hanging requests are held, never more than the
    first three quarters. Before, a hook with none in flight took one of the last
    transfers however long its tries took, and four such hooks took them all."""
    hold, answered, lock = threading.Event(), set(), threading.Lock()

    def first_slow_then_hang(request) -> Behaviour:
        with lock:
            first = request.path not in answered
            answered.add(request.path)
        return Behaviour(delay=0.3) if first else Behaviour(hold=hold)

    hanging = Receiver().start()
    slow = []
    for name in "abcdef":
        hanging.respond(f"/{name}", pick=first_slow_then_hang)
        slow.append(make_hook(target_url=hanging.url(f"/{name}")))
    seen = healthy_beside(hanging, slow, hold, make_hook, TIMEOUT=(0.2, 60.0))
    assert answered == {f"/{name}" for name in "abcdef"}
    assert seen.total() - len(answered) <= 12  # held: the first three quarters at most
    assert len(receiver.requests) == 50


@pytest.mark.django_db(transaction=True)
def test_a_run_knows_the_slow_hooks_of_the_runs_before_it(make_hook, receiver):
    """Runs are often short (a task's, a sweep's, a loop's poll), and a hanging try
    outlasts them: six hooks whose tries were slow in an earlier run of this process
    take none of the last transfers of the next run from its start, though every
    request of theirs now hangs, and the healthy hook's 50 go out meanwhile."""
    hold = threading.Event()
    hanging, slow = six_slow_hooks(make_hook, hold)
    seen = healthy_beside(hanging, slow, hold, make_hook, TIMEOUT=(0.2, 60.0))
    assert seen.total() - 6 <= 12  # held: the first three quarters at most
    assert len(receiver.requests) == 50


@pytest.mark.django_db(transaction=True)
def test_a_new_sender_knows_the_slow_hooks_other_senders_met(make_hook, receiver):
    """A sender that starts (a new process: a restart, a Celery worker, one of
    ``--processes``) knows nothing of its own; it reads the hooks' rows, where the
    sender that met their slow tries wrote ``slow_since``. Six such hooks take none of
    its last transfers from its start, though every request of theirs now hangs, and
    the healthy hook's 50 go out meanwhile. Before, each hook had to be found out
    again by a slow try in each process, while the six held every transfer."""
    from http_hooks.delivery.sender import SLOW_HOOKS

    hold = threading.Event()
    hanging, slow = six_slow_hooks(make_hook, hold)
    assert all(hook.slow_since for hook in Hook.objects.filter(pk__in=[h.pk for h in slow]))
    SLOW_HOOKS.clear()  # all that a new process knows
    seen = healthy_beside(hanging, slow, hold, make_hook, TIMEOUT=(0.2, 60.0))
    assert seen.total() - 6 <= 12  # held: the first three quarters at most
    assert len(receiver.requests) == 50


@pytest.mark.django_db(transaction=True)
def test_a_quick_try_clears_slow_since_and_a_slow_one_sets_it_once(
    make_hook, receiver, staff_client
):
    """``slow_since`` is written when a hook's tries turn slow and when they turn quick
    again, not at each slow try: it says since when. The hook's health shows it."""
    hook = make_hook()
    health = f"/api/hooks/{hook.pk}/health/"
    receiver.respond(delay=0.3)
    save_orders(1)
    with hooks_settings(TIMEOUT=(0.2, 60.0)):
        send_callbacks()
        hook.refresh_from_db()
        first = hook.slow_since
        assert first is not None
        assert staff_client.get(health).json()["slow_since"] is not None
        save_orders(1)
        send_callbacks()
        hook.refresh_from_db()
        assert hook.slow_since == first
        receiver.respond()
        save_orders(1)
        send_callbacks()
    hook.refresh_from_db()
    assert hook.slow_since is None
    assert staff_client.get(health).json()["slow_since"] is None
    assert Callback.objects.filter(hook=hook, status="sent").count() == 3


def test_the_last_transfers_skip_a_slow_hook_until_a_try_of_it_is_quick():
    """The queue's side: the last transfers (``idle_only``) skip a slow hook, even with
    none of its transfers in flight."""
    from http_hooks.delivery.sender import FairQueue

    queue = FairQueue(limit=2)
    callbacks = [Callback(pk=n, hook_id=hook_id) for n, hook_id in enumerate([1, 2, 1, 2])]
    queue.add(callbacks)
    queue.slow.add(1)
    assert queue.ready(idle_only=True)
    assert queue.take(idle_only=True).hook_id == 2
    assert not queue.ready(idle_only=True)  # 1 is slow, 2 has a transfer in flight
    assert queue.take(idle_only=True) is None
    assert queue.take().hook_id == 1  # the other transfers still go to it
    queue.slow.discard(1)
    queue.done(1)
    assert queue.take(idle_only=True).hook_id == 1


@pytest.mark.django_db(transaction=True)
def test_one_hook_never_holds_more_than_hook_concurrency(make_hook, receiver, hanging):
    slow = make_hook(target_url=hanging.url())
    fast = make_hook()
    save_orders(20)
    due_in_turn(slow, fast)
    stop = threading.Event()

    def sender() -> None:
        try:
            send_callbacks(stop=stop.is_set)
        finally:
            connection.close()

    with hooks_settings(TIMEOUT=(1.0, 3.0), CONCURRENCY=3, HOOK_CONCURRENCY=2):
        thread = threading.Thread(target=sender)
        thread.start()
        try:
            receiver.wait_for(20, timeout=30)
            assert len(hanging.requests) == 2
        finally:
            stop.set()
            thread.join(timeout=30)
    assert Callback.objects.filter(hook=fast, status="sent").count() == 20


@pytest.mark.django_db
def test_slots_go_round_robin_between_hooks(make_hook, receiver):
    """With one transfer at a time, the hooks take turns although the first one's
    callbacks are all due before the others'."""
    hooks = [make_hook(target_url=receiver.url(f"/{name}")) for name in "abc"]
    save_orders(4)
    due_in_turn(*hooks)
    with hooks_settings(CONCURRENCY=1):
        assert send_callbacks().sent == 12
    assert "".join(request.path[1:] for request in receiver.requests) == "abc" * 4


def test_hook_concurrency_defaults_to_three_quarters_of_concurrency():
    with hooks_settings(CONCURRENCY=16):
        assert live_settings.hook_concurrency == 12
    with hooks_settings(CONCURRENCY=1):
        assert live_settings.hook_concurrency == 1
    with hooks_settings(CONCURRENCY=16, HOOK_CONCURRENCY=16):
        assert live_settings.hook_concurrency == 16


@pytest.mark.django_db(transaction=True)
def test_a_failed_lease_renewal_is_tried_again_long_before_the_next_period(monkeypatch):
    """A renewal that failed (a dropped connection) is tried again after LEASE_RETRY,
    not a whole LEASE_SECONDS / 3 later: a second failure would let the lease run out.
    The keeper's waits are recorded instead of waited."""
    from http_hooks.delivery.claims import LEASE_RETRY

    keeper = scripted_keeper(monkeypatch, [OperationalError("server closed the connection")])
    keeper.run()
    assert keeper.stopped == [100.0, LEASE_RETRY, 100.0, 100.0]


@pytest.mark.django_db(transaction=True)
def test_failed_lease_renewals_are_said_once_and_their_end_too(monkeypatch, caplog):
    """A renewal is tried every second while the database is away: the first failure
    is a warning, the next ones DEBUG, and the renewal that goes through again a
    warning with their number."""
    failure = OperationalError("server closed the connection\nThis probably means...")
    keeper = scripted_keeper(monkeypatch, [failure] * 3)
    with caplog.at_level(logging.DEBUG, logger="http_hooks.delivery.claims"):
        keeper.run()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if "lease" in r.getMessage()]
    assert [level for level, _ in lines] == ["WARNING", "DEBUG", "DEBUG", "WARNING"], lines
    assert lines[0][1] == (
        f"renewing lease {keeper.token} failed (server closed the connection); "
        "trying again every 1 s"
    )
    assert lines[-1][1] == f"renewed lease {keeper.token} after 3 failures"


def scripted_keeper(monkeypatch, failures: list[Exception]):
    """A ``LeaseKeeper`` whose renewals raise ``failures`` in turn, then go through,
    and whose waits are recorded instead of waited (``stopped``); it stops at the
    wait after the third renewal that went through."""
    from http_hooks.delivery.claims import LeaseKeeper

    outcomes = iter([*failures, None, None, None])

    def renewal(token, probes):
        if (failure := next(outcomes)) is not None:
            raise failure

    class Waits(list):
        def wait(self, timeout):
            self.append(timeout)
            return len(self) > len(failures) + 2

        def set(self):
            pass

    monkeypatch.setattr("http_hooks.delivery.claims.renew_lease", renewal)
    with hooks_settings(LEASE_SECONDS=300):
        keeper = LeaseKeeper(uuid.uuid4())
    keeper.stopped = Waits()
    return keeper


@pytest.mark.django_db(transaction=True)
def test_a_blocked_lease_renewal_never_blocks_transfers(make_hook, receiver, monkeypatch):
    """The lease is renewed in a thread of its own: a renewal stuck on the database
    leaves the transfers (and the writing of their outcomes) running."""
    entered, release = threading.Event(), threading.Event()

    def stuck_renewal(token, probes):
        entered.set()
        release.wait(60)

    monkeypatch.setattr("http_hooks.delivery.claims.renew_lease", stuck_renewal)
    # The receiver answers once a renewal has started (and is stuck).
    receiver.respond(hold=entered)
    make_hook()
    save_orders(4)
    try:
        with hooks_settings(LEASE_SECONDS=1, TIMEOUT=(1.0, 30.0), CONCURRENCY=4):
            report = send_callbacks()
    finally:
        release.set()
    assert (report.sent, report.retried) == (4, 0)
    assert set(Attempt.objects.values_list("error", flat=True)) == {""}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_window_of_outcomes_waiting_for_the_database_never_stops_transfers(
    make_hook, receiver, monkeypatch
):
    """Windows of successes are written on a thread of their own: while one waits for
    the database (here a lock on the attempt log), the next window's requests go out;
    once the database answers, every outcome is written, once."""
    monkeypatch.setattr("http_hooks.delivery.sender.OUTCOME_WINDOW", 1.0)
    make_hook()
    save_orders(300)
    locker = connection.copy()
    result = {}
    with locker.cursor() as cursor:
        cursor.execute("BEGIN")
        # Readers pass; the attempts' COPY waits.
        cursor.execute("LOCK TABLE http_hooks_attempt IN SHARE ROW EXCLUSIVE MODE")

        def send() -> None:
            try:
                with hooks_settings(CONCURRENCY=4):
                    result["report"] = send_callbacks()
            finally:
                connection.close()

        sender = threading.Thread(target=send)
        sender.start()
        try:
            wait_until(
                lambda: waiting_on_a_lock('COPY "http_hooks_attempt"%'),
                timeout=30,
                message="an outcome write waiting for the attempt log",
            )
            blocked_at = len(receiver.requests)
            # Blocked in the sender's thread, at most the CONCURRENCY in flight would come.
            wait_until(
                lambda: len(receiver.requests) >= blocked_at + 30,
                timeout=30,
                message=lambda: (
                    f"requests after the write blocked at {blocked_at}: "
                    f"{len(receiver.requests) - blocked_at}"
                ),
            )
        finally:
            cursor.execute("COMMIT")
            sender.join(60)
            locker.close()
    assert result["report"].sent == 300
    assert Attempt.objects.count() == 300
    assert len(deliveries(receiver)) == 300
    assert not Callback.objects.exclude(status="sent").exists()
    # The run's writer ended with it, its connection closed.
    assert not writer_threads()


@pytest.mark.django_db(transaction=True)
def test_a_callback_whose_outcome_cannot_be_written_never_holds_back_its_window(
    make_hook, receiver, monkeypatch, caplog
):
    """One callback of a window whose outcome cannot be stored (here its attempt number,
    past what the column holds: a DataError on PostgreSQL, Python's OverflowError on
    SQLite) failed the whole window: its callbacks stayed ``sending``, went out again
    after the lease, and failed again, forever. The others are written, once; that one
    ends as ``error``, logged, and is not sent again. On PostgreSQL the window is
    written beside the transfers (``writer``), on SQLite by the sender's thread."""
    monkeypatch.setattr("http_hooks.delivery.sender.OUTCOME_WINDOW", 60.0)
    # All ten outcomes make one window: beside, its size is half this.
    monkeypatch.setattr("http_hooks.delivery.sender.OUTCOME_WINDOW_SIZE", 20)
    make_hook()
    save_orders(10)
    poison = Callback.objects.order_by("pk")[4]
    largest = 2**31 - 1 if connection.vendor == "postgresql" else 2**63 - 1
    Callback.objects.filter(pk=poison.pk).update(earlier_attempts=largest)
    with caplog.at_level(logging.ERROR):
        first = send_callbacks()
        # The lease of what the run left ``sending`` (nothing, now) run out, rather than
        # waited for: the next run takes it over.
        expired = timezone.now() - datetime.timedelta(seconds=1)
        Callback.objects.filter(status="sending").update(claimed_until=expired)
        second = send_callbacks()
    assert (first.sent, first.failed, second.total) == (9, 1, 0)
    counts = deliveries(receiver)
    assert (len(counts), set(counts.values())) == (10, {1})
    others = Callback.objects.exclude(pk=poison.pk)
    assert set(others.values_list("status", "attempts")) == {("sent", 1)}
    assert sorted(Attempt.objects.values_list("callback", flat=True)) == sorted(
        others.values_list("pk", flat=True)
    )
    poison.refresh_from_db()
    error = "DataError" if connection.vendor == "postgresql" else "OverflowError"
    assert (poison.status, poison.attempts, poison.claimed_until) == ("error", 1, None)
    assert poison.status_details == (
        f"http_hooks could not record the outcome of its last try ({error}, see the "
        "sender's log); not sent again unless resent"
    )
    (logged,) = [r for r in caplog.records if r.name == "http_hooks.delivery.recording"]
    assert f"callback {poison.pk} of hook {poison.hook_id}:" in logged.getMessage()
    assert logged.exc_info[0].__name__ == error
    writer = connection.vendor == "postgresql"
    assert logged.threadName.startswith("http_hooks outcome writer") == writer


@pytest.mark.django_db(transaction=True)
def test_a_window_that_failed_once_is_written_and_its_error_stands(
    make_hook, receiver, monkeypatch
):
    """A window's write that fails once, for none of its callbacks (an exception a
    signal raised in the middle of it, say): the window is written one callback at a
    time, none ends in ``error``, and the run still fails with that error."""
    monkeypatch.setattr("http_hooks.delivery.sender.OUTCOME_WINDOW", 60.0)
    monkeypatch.setattr("http_hooks.delivery.sender.OUTCOME_WINDOW_SIZE", 20)
    record_stats, calls = outcomes.record_stats, []

    def failing_once(*args, **kwargs):
        calls.append(None)
        if len(calls) == 1:
            raise Interrupted
        return record_stats(*args, **kwargs)

    monkeypatch.setattr(outcomes, "record_stats", failing_once)
    make_hook()
    save_orders(10)
    with pytest.raises(Interrupted):
        send_callbacks()
    expired = timezone.now() - datetime.timedelta(seconds=1)
    Callback.objects.filter(status="sending").update(claimed_until=expired)
    assert send_callbacks().total == 0
    assert set(Callback.objects.values_list("status", "attempts")) == {("sent", 1)}
    assert Attempt.objects.count() == 10
    assert set(deliveries(receiver).values()) == {1}


@pytest.mark.django_db(transaction=True)
def test_a_missing_table_ends_no_callback_as_error(make_hook, receiver):
    """The attempt log's table missing (a migration not run) fails every callback's
    outcome alike: that is the run's error, as it was, and no callback is ended as
    ``error`` for it after one try; they are sent again once it is fixed."""
    make_hook()
    save_orders(3)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE http_hooks_attempt RENAME TO http_hooks_attempt_away")
    try:
        with pytest.raises((OperationalError, ProgrammingError)):
            send_callbacks()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE http_hooks_attempt_away RENAME TO http_hooks_attempt")
    assert set(Callback.objects.values_list("status", flat=True)) == {"sending"}


@contextmanager
def refused(
    model, message: str, *, when: str = "true", sqlstate: str = "check_violation"
) -> Iterator[None]:
    """While the block runs, a trigger refuses the rows that ``model``'s table is given
    (inserted or updated) for which ``when`` holds (of ``NEW``), with ``message``: on
    PostgreSQL as an error of ``sqlstate``, on SQLite always an IntegrityError."""
    table = connection.ops.quote_name(model._meta.db_table)
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if postgres:
            cursor.execute(
                "CREATE FUNCTION refuse_a_row() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = '{sqlstate}'; END $$"
            )
            cursor.execute(
                f"CREATE TRIGGER refuse_a_row BEFORE INSERT OR UPDATE ON {table} "
                f"FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION refuse_a_row()"
            )
        else:
            for event in ("INSERT", "UPDATE"):
                cursor.execute(
                    f"CREATE TRIGGER refuse_a_row_{event} BEFORE {event} ON {table} "
                    f"FOR EACH ROW WHEN ({when}) BEGIN SELECT RAISE(ABORT, '{message}'); END"
                )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if postgres:
                cursor.execute(f"DROP TRIGGER refuse_a_row ON {table}")
                cursor.execute("DROP FUNCTION refuse_a_row()")
            else:
                cursor.execute("DROP TRIGGER refuse_a_row_INSERT")
                cursor.execute("DROP TRIGGER refuse_a_row_UPDATE")


def said(caplog) -> list[logging.LogRecord]:
    """What ``recording`` logged of callbacks whose outcome could not be written."""
    return [r for r in caplog.records if r.name == recording.__name__]


def lease_run_out() -> None:
    """The lease of what a run left ``sending`` run out, rather than waited for: the
    next run takes it over."""
    expired = timezone.now() - datetime.timedelta(seconds=1)
    Callback.objects.filter(status="sending").update(claimed_until=expired)


@pytest.mark.django_db(transaction=True)
def test_an_attempt_log_that_refuses_every_row_ends_no_callback_as_error(make_hook, receiver):
    """A CHECK constraint or trigger on the attempt log refusing every row (PostgreSQL
    says so when a partitioned table has no partition for now) is an IntegrityError
    like a row's own: written one at a time, each failed, and each callback ended as
    ``error`` after one try, those the receiver answered 200 too. It is the run's
    error; they are sent again once it is fixed."""
    make_hook()
    save_orders(5)
    with refused(Attempt, "no partition of relation found for row"), pytest.raises(IntegrityError):
        send_callbacks()
    assert len(receiver.requests) == 5
    assert set(Callback.objects.values_list("status", flat=True)) == {"sending"}
    assert not Attempt.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("sqlstate", "message"),
    [
        ("25006", "cannot execute COPY in a read-only transaction"),
        ("XX000", "could not read block 0 in file base/5/16384"),
    ],
    ids=["read-only", "internal-error"],
)
def test_a_database_wide_error_for_part_of_a_window_ends_no_callback_as_error(
    make_hook, receiver, monkeypatch, sqlstate, message
):
    """The database refusing the writes of some of a window's callbacks for what is none
    of theirs: turned read-only in the middle of it (a standby after a failover:
    read_only_sql_transaction) or failing on its own (internal_error), both an
    InternalError. Written one at a time, the others' outcomes went through, and each
    refused one was ended as ``error`` after one try, never to be sent again. It is the
    run's error, as the database away is: they are sent again after the lease."""
    monkeypatch.setattr(reconnect, "RECONNECT_DELAYS", (0.01, 0.01))
    monkeypatch.setattr("http_hooks.delivery.sender.OUTCOME_WINDOW", 60.0)
    monkeypatch.setattr("http_hooks.delivery.sender.OUTCOME_WINDOW_SIZE", 20)
    make_hook()
    save_orders(10)
    later = Callback.objects.order_by("pk").values_list("pk", flat=True)[5:]
    when = f"NEW.callback_id IN ({', '.join(map(str, later))})"
    with refused(Attempt, message, when=when, sqlstate=sqlstate):
        with pytest.raises(InternalError, match=message):
            send_callbacks()
        assert set(Callback.objects.values_list("status", flat=True)) == {"sending"}
    lease_run_out()
    assert send_callbacks().sent == 10
    assert set(Callback.objects.values_list("status", "attempts")) == {("sent", 1)}
    assert Attempt.objects.count() == 10
    assert set(deliveries(receiver).values()) == {2}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_callback_is_said_to_end_as_error_once_it_has(make_hook, receiver, monkeypatch, caplog):
    """The database turning read-only (a standby after a failover) once the others of a
    window were written one at a time, before the callback whose own outcome could not
    be written was ended as ``error``: the run fails, as for the database away, and that
    callback was said to end as error, though it was left ``sending``. It is said so only
    once it has, after its next try (in a window with others)."""
    monkeypatch.setattr(reconnect, "RECONNECT_DELAYS", (0.01, 0.01))
    monkeypatch.setattr("http_hooks.delivery.sender.OUTCOME_WINDOW", 60.0)
    monkeypatch.setattr("http_hooks.delivery.sender.OUTCOME_WINDOW_SIZE", 20)
    make_hook()
    save_orders(5)
    poison = Callback.objects.order_by("pk")[2]
    Callback.objects.filter(pk=poison.pk).update(earlier_attempts=2**31 - 1)
    read_only = "cannot execute UPDATE in a read-only transaction"
    with caplog.at_level(logging.ERROR, logger=recording.__name__):
        with refused(Callback, read_only, when="NEW.status = 'error'", sqlstate="25006"):
            with pytest.raises(InternalError, match=read_only):
                send_callbacks()
            assert not said(caplog)
            assert Callback.objects.get(pk=poison.pk).status == "sending"
        lease_run_out()
        save_orders(2)  # a window of one that cannot be written is the run's error
        second = send_callbacks()
    assert (second.sent, second.failed) == (2, 1)
    (logged,) = said(caplog)
    assert logged.getMessage() == (
        f"callback {poison.pk} of hook {poison.hook_id}: the outcome of its try could not be "
        "recorded; it ends as error and is not sent again unless resent"
    )
    poison.refresh_from_db()
    assert (poison.status, poison.attempts) == ("error", 1)
    assert set(Callback.objects.exclude(pk=poison.pk).values_list("status", flat=True)) == {"sent"}


@pytest.mark.django_db(transaction=True)
def test_a_callback_written_before_its_window_failed_is_never_said_to_end_as_error(
    make_hook, receiver, monkeypatch, caplog
):
    """Counting the tries (``metrics``) failing after a window's outcomes were committed,
    and again after one callback's own: that callback was said to end as ``error``, not
    to be sent again, though its outcome (``sent``) stood and the UPDATE ending it
    changed nothing. It is said to be left as it is."""
    monkeypatch.setattr("http_hooks.delivery.sender.OUTCOME_WINDOW", 60.0)
    monkeypatch.setattr("http_hooks.delivery.sender.OUTCOME_WINDOW_SIZE", 20)
    make_hook()
    save_orders(5)
    poison = Callback.objects.order_by("pk")[2]
    record_attempts = metrics.record_attempts

    def failing_for_poison(batch, outcomes, recorded):
        if any(callback.pk == poison.pk for callback in batch):
            raise Interrupted
        record_attempts(batch, outcomes, recorded)

    monkeypatch.setattr(metrics, "record_attempts", failing_for_poison)
    with caplog.at_level(logging.ERROR, logger=recording.__name__):
        report = send_callbacks()
    assert (report.sent, report.failed) == (5, 0)
    assert set(Callback.objects.values_list("status", "attempts")) == {("sent", 1)}
    (logged,) = said(caplog)
    message = logged.getMessage()
    assert message.startswith(f"callback {poison.pk} of hook {poison.hook_id}: writing the ")
    assert message.endswith("it is left as it is")
    assert logged.exc_info[0] is Interrupted


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_outcomes_met_by_a_standby_are_written_once_a_new_connection_writes(
    make_hook, receiver, monkeypatch, caplog
):
    """A failover while requests are in flight: the sender's new connection lands on a
    standby, which refuses the outcomes' write (read_only_sql_transaction, an
    InternalError). It is waited for as the database away is, reconnecting until a
    connection lands on the new primary: every outcome is written in the same run, and
    nothing is sent twice. It failed the run at once."""
    monkeypatch.setattr(reconnect, "RECONNECT_DELAYS", (0.2,) * 50)
    make_hook()
    save_orders(5)
    hold = threading.Event()
    receiver.respond(hold=hold)
    reports = []

    def send() -> None:
        try:
            reports.append(send_callbacks())
        finally:
            connection.close()

    def refused_as_read_only() -> bool:
        messages = [r.getMessage() for r in caplog.records if r.name == reconnect.__name__]
        return any("read-only transaction" in message for message in messages)

    sender = threading.Thread(target=send)
    with caplog.at_level(logging.DEBUG, logger=reconnect.__name__):
        sender.start()
        try:
            receiver.wait_for(5)
            with database_read_only() as writable:
                hold.set()
                wait_until(
                    lambda: refused_as_read_only() or not sender.is_alive(),
                    timeout=30,
                    message="an outcome write refused by the standby",
                )
                writable()
        finally:
            hold.set()
            sender.join(60)
    assert [(report.sent, report.failed) for report in reports] == [(5, 0)]
    assert set(Callback.objects.values_list("status", "attempts")) == {("sent", 1)}
    assert Attempt.objects.count() == 5
    assert set(deliveries(receiver).values()) == {1}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_run_with_autocommit_turned_off_writes_its_outcomes_on_its_own_connection(
    make_hook, receiver
):
    """With the caller's autocommit off, the claims are the caller's transaction's
    until it commits: a writer on another connection found none of its callbacks
    held and dropped their outcomes as taken over (6 of 600 counted), or would wait
    for their row locks while the sender waited for it."""
    make_hook()
    save_orders(600)
    result = {}

    def send() -> None:
        try:
            connection.set_autocommit(False)
            result["report"] = send_callbacks()
            connection.commit()
        finally:
            connection.close()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    sender.join(60)
    if sender.is_alive():
        terminate_other_backends()  # its locks, which would hold the test's teardown
        pytest.fail("the run waited for its own writer, which waited for the run's locks")
    assert result["report"].sent == 600
    assert Attempt.objects.count() == 600


class Interrupted(Exception):
    """What a signal handler raises in the sender's thread: Celery's soft time limit
    (``SoftTimeLimitExceeded``), or a ``KeyboardInterrupt`` where nothing handles SIGINT."""


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_run_interrupted_while_it_waits_for_a_window_keeps_that_window(
    make_hook, receiver, monkeypatch
):
    """A signal's exception raised while the sender waits for the window being written
    beside it: the run waits for that window again on its way out, and when the
    database was out of reach, keeps its outcomes with the others for the next run
    (``Sender.unwritten``) instead of losing them (sent again after the lease)."""
    monkeypatch.setattr("http_hooks.delivery.sender.OUTCOME_WINDOW", 1.0)
    monkeypatch.setattr(reconnect, "RECONNECT_DELAYS", (0.01,) * 3)
    make_hook()
    save_orders(300)
    sender_thread = threading.main_thread()
    locker = connection.copy()
    with locker.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute("LOCK TABLE http_hooks_attempt IN SHARE ROW EXCLUSIVE MODE")

    def joining() -> bool:
        frame = sys._current_frames().get(sender_thread.ident)
        while frame is not None and frame.f_code.co_name != "join_writing":
            frame = frame.f_back
        return frame is not None

    def interrupt() -> None:
        try:
            wait_until(
                lambda: waiting_on_a_lock('COPY "http_hooks_attempt"%'),
                timeout=30,
                message="a window waiting",
            )
            wait_until(joining, timeout=30, message="the sender waiting for that window")
            signal.pthread_kill(sender_thread.ident, signal.SIGUSR1)
            # The window's write fails for good: its connection (and the lock) ended,
            # new ones refused until the run is over.
            with database_closed():
                wait_until(
                    lambda: not writer_threads(), timeout=30, message="the run's writer ended"
                )
        finally:
            connection.close()

    def raise_interrupted(*_: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGUSR1, raise_interrupted)
    interrupter = threading.Thread(target=interrupt)
    try:
        with Sender() as sender, hooks_settings(CONCURRENCY=4):
            interrupter.start()
            with pytest.raises(Interrupted):
                sender.send()
            interrupter.join(60)
            kept = sum(len(callbacks) for callbacks, _, _ in sender.unwritten)
            report = sender.send()
    finally:
        signal.signal(signal.SIGUSR1, previous)
        locker.close()
    # Only the transfers in flight when the signal came (abandoned) wait for the lease.
    assert Callback.objects.filter(status="sending").count() <= 4, kept
    assert report.sent + Callback.objects.filter(status="sending").count() == 300
    assert Attempt.objects.count() == Callback.objects.filter(status="sent").count()


def writer_threads() -> list[threading.Thread]:
    """The outcome writers' threads alive (``delivery.writer``)."""
    return [t for t in threading.enumerate() if t.name.startswith("http_hooks outcome")]


@pytest.mark.django_db
def test_renewing_a_lease_moves_every_callback_the_sender_holds(make_hook):
    make_hook()
    save_orders(3)
    batch = claim_batch()
    before = {c.pk: c.claimed_until for c in Callback.objects.all()}
    Callback.objects.filter(pk=batch[0].pk).update(claimed_until=timezone.now())
    assert renew_lease(batch[0].claim_token) == 3
    for callback in Callback.objects.all():
        assert callback.claimed_until >= before[callback.pk]
    assert renew_lease(batch[0].claim_token.__class__(int=0)) == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_renewal_skips_the_rows_an_outcome_write_holds_instead_of_waiting(make_hook):
    """The outcome write locks its callbacks' rows in its own order and the renewal its
    own: waiting for each other's rows, the two deadlocked (a second's stall for both
    before PostgreSQL failed one)."""
    make_hook()
    save_orders(3)
    batch = claim_batch()
    writer = connection.copy()
    try:
        with writer.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(
                "SELECT id FROM http_hooks_callback WHERE id = %s FOR UPDATE", [batch[0].pk]
            )
            with connection.cursor() as ours:
                ours.execute("SET lock_timeout = '5s'")  # a wait fails, not hangs
            started = time.monotonic()
            assert renew_lease(batch[0].claim_token) == 2
            assert time.monotonic() - started < 1.0
            cursor.execute("ROLLBACK")
    finally:
        writer.close()
        with connection.cursor() as ours:
            ours.execute("SET lock_timeout = 0")
    assert renew_lease(batch[0].claim_token) == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_renewal_of_a_probes_hold_waits_for_its_hook_before_taking_callbacks(
    make_hook, monkeypatch
):
    """The outcome write of a paused hook's probe locks the hook, then the probe's row;
    the renewal, which moves the hook's hold forward, takes the hook first too. Taking
    the callbacks first, it held the probe's row and waited for the hook, while the
    write waited for the probe's row: a deadlock, PostgreSQL failing the renewal."""
    hook = make_hook()
    save_orders(1)
    paused_until = timezone.now() - datetime.timedelta(seconds=1)
    Hook.objects.filter(pk=hook.pk).update(paused_until=paused_until)
    token = uuid.uuid4()
    (probe,) = claim_probe(hook_id=hook.pk, paused_until=paused_until, token=token)
    hooks_locked, failed = threading.Event(), []

    def states_once_the_renewal_waits(*args):
        hooks_locked.set()
        wait_until(
            lambda: waiting_on_a_lock('UPDATE "http_hooks_hook" SET "paused_until"%'),
            message="the renewal never waited for the probe's hook",
        )
        return write_states(*args)

    monkeypatch.setattr(outcomes, "write_states", states_once_the_renewal_waits)

    def writer() -> None:
        try:
            outcome = Outcome(status_code=200)
            record_outcomes([probe], [outcome], DeliveryReport(), probes={probe.pk})
        except BaseException as exc:
            failed.append(exc)
            hooks_locked.set()
        finally:
            connection.close()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    assert hooks_locked.wait(30)
    assert renew_lease(token, [probe.pk]) == 0  # the probe was written meanwhile
    thread.join(30)
    assert failed == []
    assert Callback.objects.get().status == "sent"
    assert Hook.objects.get(pk=hook.pk).paused_until is None  # the probe's success ended it


def start_sender(env: dict, *args: str, **overrides) -> subprocess.Popen:
    return subprocess.Popen(
        [*MANAGE, *args],
        env={**env, "HTTP_HOOKS_OVERRIDES": json.dumps(overrides)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_deliveries(receiver, count: int, sender: subprocess.Popen) -> None:
    """``receiver.wait_for(count)``; when they do not come, the sender's stderr says why."""
    try:
        receiver.wait_for(count, timeout=60)
    except AssertionError as exc:
        sender.kill()
        _, stderr = sender.communicate(timeout=10)
        raise AssertionError(f"{exc}; sender exited {sender.returncode}:\n{stderr}") from None


def deliveries(receiver) -> Counter:
    """How many times each event arrived."""
    return Counter(request.headers["webhook-id"] for request in receiver.requests)


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_a_killed_sender_repeats_only_what_was_in_flight(make_hook, receiver, same_db_env):
    """kill -9 mid-run: the next sender repeats at most the requests in flight and the
    last unwritten window, never the whole claim (1,000 here)."""
    make_hook()
    save_orders(1000)
    concurrency = 8
    sender = start_sender(
        same_db_env, BATCH_SIZE=1000, CONCURRENCY=concurrency, HOOK_CONCURRENCY=concurrency
    )
    try:
        wait_for_deliveries(receiver, 400, sender)
    finally:
        sender.send_signal(signal.SIGKILL)
        sender.wait(timeout=10)
    # Its lease runs out (set here rather than waited for).
    expired = timezone.now() - datetime.timedelta(seconds=1)
    Callback.objects.filter(status="sending").update(claimed_until=expired)
    left = Callback.objects.exclude(status="sent").count()
    assert send_callbacks().sent == left

    assert set(Callback.objects.values_list("status", flat=True)) == {"sent"}
    counts = deliveries(receiver)
    assert len(counts) == 1000
    duplicates = sum(counts.values()) - len(counts)
    assert duplicates <= concurrency + OUTCOME_WINDOW_SIZE, f"{duplicates} sent twice"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_attempt_copy_reconnects_when_its_connection_was_dropped(make_hook):
    """The attempt log goes by COPY through the driver's own cursor: a dropped
    connection there is Django's OperationalError, which the outcome write
    reconnects on (it once escaped as the driver's error and ended the sender)."""
    make_hook()
    Order.objects.create(name="one")
    callback = Callback.objects.get()
    row = (callback.pk, 1, timezone.now(), 5, {}, 204, {}, "", "")

    terminate_this_backend()
    with pytest.raises(OperationalError):
        insert_attempts([row])

    connection.close()
    terminate_this_backend()
    with_reconnect(lambda: insert_attempts([row]), what="logging the attempt")
    assert list(Attempt.objects.values_list("callback", "response_status")) == [(callback.pk, 204)]


@pytest.mark.postgres
@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("loop", [False, True], ids=["one-shot", "loop"])
def test_a_database_blip_loses_no_outcome(make_hook, receiver, same_db_env, loop):
    """Three pg_terminate_backend on the sender's connection mid-run: it reconnects,
    writes every outcome and finishes (exit 0); nothing lost, nothing sent twice."""
    make_hook()
    save_orders(600)
    concurrency = 4
    sender = start_sender(
        same_db_env,
        *(["--loop"] if loop else []),
        CONCURRENCY=concurrency,
        HOOK_CONCURRENCY=concurrency,
        LOOP_MIN_SLEEP=0.1,
        LOOP_MAX_SLEEP=0.2,
    )
    try:
        for count in (100, 250, 400):
            wait_for_deliveries(receiver, count, sender)
            assert terminate_other_backends() >= 1
        if loop:
            wait_for_deliveries(receiver, 600, sender)
    finally:
        if loop:
            sender.send_signal(signal.SIGTERM)
        stdout, stderr = sender.communicate(timeout=60)
    assert sender.returncode == 0, stderr
    assert "sent 600, retried 0, failed 0" in stdout.splitlines()[-1]
    assert set(Callback.objects.values_list("status", "attempts")) == {("sent", 1)}
    assert Attempt.objects.count() == 600
    counts = deliveries(receiver)
    assert len(counts) == 600
    assert sum(counts.values()) - len(counts) <= concurrency


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_reconnections_are_said_when_they_begin_and_when_they_end(monkeypatch, caplog):
    """While the database is away, a sender's work reconnects six times in about 8 s,
    round after round: the first reconnection is a warning, the next ones DEBUG, and
    the database answering again after several is a warning too."""
    monkeypatch.setattr(reconnect, "RECONNECT_DELAYS", (0.01,) * 6)
    tries = []
    with database_closed(this_one_too=True) as reopen:

        def work() -> int:
            tries.append(None)
            if len(tries) == 4:
                reopen()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                return cursor.fetchone()[0]

        with caplog.at_level(logging.DEBUG, logger=reconnect.__name__):
            assert with_reconnect(work, what="writing outcomes") == 1
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == reconnect.__name__]
    assert [level for level, _ in lines] == ["WARNING", "DEBUG", "DEBUG", "WARNING"], lines
    assert lines[0][1].startswith("writing outcomes: database error (")
    assert "\n" not in lines[0][1]
    assert lines[-1][1] == "writing outcomes: the database answers again, after 3 reconnections"


def stderr_lines(process: subprocess.Popen) -> list[str]:
    """The lines of ``process``'s stderr as they come (read by a thread)."""
    lines: list[str] = []

    def read() -> None:
        with process.stderr:
            for line in process.stderr:
                lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


@pytest.mark.postgres
@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_an_outage_longer_than_reconnecting_loses_no_outcome_of_a_loop_worker(
    make_hook, receiver, same_db_env
):
    """The database refuses connections until the loop worker has given up
    reconnecting, with requests answered meanwhile: their outcomes, once thrown away
    (the callbacks sent again after the lease, the first tries never logged, the
    claimed ones not started left ``sending`` for the lease), are written once the
    database is back, and each callback reaches the receiver once."""
    make_hook()
    save_orders(40)
    hold = threading.Event()
    receiver.respond(hold=hold)
    concurrency = 4
    sender = start_sender(
        same_db_env,
        "--loop",
        CONCURRENCY=concurrency,
        HOOK_CONCURRENCY=concurrency,
        LEASE_SECONDS=2,
        LOOP_MIN_SLEEP=0.1,
        LOOP_MAX_SLEEP=0.2,
    )
    errors = stderr_lines(sender)
    try:
        receiver.wait_for(concurrency, timeout=60)
        with database_closed():
            hold.set()  # the requests in flight are answered while the database is away
            wait_until(
                lambda: any("send_callbacks loop: the database failed" in e for e in errors),
                message=lambda: f"the loop to give up reconnecting: {''.join(errors)}",
                alive=lambda: sender.poll() is None,
            )
        wait_until(
            lambda: Callback.objects.filter(status="sent").count() == 40,
            message=lambda: f"every callback sent: {''.join(errors)}",
            alive=lambda: sender.poll() is None,
        )
    finally:
        sender.send_signal(signal.SIGTERM)
        sender.wait(timeout=60)
        sender.stdout.close()
    counts = deliveries(receiver)
    assert len(counts) == 40
    assert sum(counts.values()) == 40, f"{sum(counts.values()) - 40} sent twice"
    assert set(Callback.objects.values_list("status", "attempts")) == {("sent", 1)}
    assert Attempt.objects.count() == 40
    assert not any("Traceback" in line for line in errors), "".join(errors)


@contextmanager
def worker_past_reconnecting(make_hook, receiver, same_db_env) -> Iterator[tuple]:
    """A loop worker that claimed 40 callbacks and sent 4, whose database went away
    (``database_closed``) while their answers came, and that gave up reconnecting: it
    holds their outcomes and its other claims, and waits a minute before it polls again.
    Yields it, the lines of its stderr, and the function that reopens the database (the
    block's end does too)."""
    make_hook()
    save_orders(40)
    hold = threading.Event()
    receiver.respond(hold=hold)
    concurrency = 4
    worker = start_sender(
        same_db_env,
        "--loop",
        CONCURRENCY=concurrency,
        HOOK_CONCURRENCY=concurrency,
        LOOP_MIN_SLEEP=0.1,
        LOOP_MAX_SLEEP=60,
    )
    errors = stderr_lines(worker)
    try:
        receiver.wait_for(concurrency, timeout=60)
        with database_closed() as reopen:
            hold.set()
            wait_until(
                lambda: any("send_callbacks loop: the database failed" in e for e in errors),
                message=lambda: f"the loop to give up reconnecting: {''.join(errors)}",
                alive=lambda: worker.poll() is None,
            )
            yield worker, errors, reopen
    finally:
        worker.kill()
        worker.wait(timeout=10)
        worker.stdout.close()


def stopped(worker: subprocess.Popen) -> str:
    """SIGTERM to ``worker``, which must end at once (with exit status 0); its stdout."""
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0
    return worker.stdout.read()


@pytest.mark.postgres
@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_a_worker_stopped_during_an_outage_says_what_it_could_not_write(
    make_hook, receiver, same_db_env
):
    """SIGTERM while the database is still away: the worker tries once more, ends at
    once, and says in one line how many outcomes and claims it could not write (they
    were dropped without a word). Those callbacks stay ``sending`` for their lease,
    then any sender takes them over, as a killed worker's: the ones whose outcome was
    lost are sent again, the others sent."""
    with worker_past_reconnecting(make_hook, receiver, same_db_env) as (worker, errors, _):
        stopped(worker)
        wait_until(lambda: any("ending without writing" in e for e in errors), timeout=10)
    (line,) = [e for e in errors if "ending without writing" in e]
    found = re.search(r"without writing (\d+) outcome\(s\) and (\d+) claimed callback", line)
    assert found, line
    outcomes, claims = map(int, found.groups())
    assert (outcomes + claims, outcomes >= 4) == (40, True)
    assert len(deliveries(receiver)) == outcomes
    assert Callback.objects.filter(status="sending").count() == 40
    expired = timezone.now() - datetime.timedelta(seconds=1)
    Callback.objects.update(claimed_until=expired)  # the lease run out, rather than waited for
    assert send_callbacks().sent == 40
    counts = deliveries(receiver)
    assert (len(counts), sum(counts.values())) == (40, 40 + outcomes)
    assert set(Callback.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.postgres
@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_a_worker_stopped_once_the_database_is_back_writes_what_it_held(
    make_hook, receiver, same_db_env
):
    """SIGTERM once the database is back, before the worker's next poll: it writes the
    outcomes it held and gives its other claims back before it ends (they were
    dropped: each answered callback left ``sending``, to be sent again after the
    lease, the others waiting for it), and counts them in its summary."""
    with worker_past_reconnecting(make_hook, receiver, same_db_env) as (worker, errors, reopen):
        reopen()
        summary = stopped(worker)
    sent = len(receiver.requests)
    assert sum(deliveries(receiver).values()) == len(deliveries(receiver)) == sent
    assert summary.splitlines()[-1].startswith(f"sent {sent}, retried 0, failed 0")
    assert Counter(Callback.objects.values_list("status", flat=True)) == {
        "sent": sent,
        "waiting": 40 - sent,
    }
    assert Attempt.objects.count() == sent
    assert not any("ending without writing" in e for e in errors), "".join(errors)


@pytest.mark.postgres
@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_a_sender_stalled_past_its_lease_never_sends_what_it_had_not_started(
    make_hook, receiver, same_db_env
):
    """A sender stopped (SIGSTOP: a paused machine, a long pause of the process) for
    longer than its lease, while another sent what it held: on waking it starts none
    of the callbacks it had claimed and not started; only the requests that were in
    flight when it stopped may go out twice. It once sent all 16 claimed and waiting
    again, once it ran."""
    hold = threading.Event()
    receiver.respond(hold=hold)
    make_hook()
    save_orders(20)
    in_flight = 4
    stalled = start_sender(
        same_db_env, LEASE_SECONDS=2, CONCURRENCY=in_flight, HOOK_CONCURRENCY=in_flight
    )
    try:
        wait_for_deliveries(receiver, in_flight, stalled)
        wait_until(
            lambda: Callback.objects.filter(status="sending").count() == 20,
            message="the sender did not claim all 20",
        )
        stalled.send_signal(signal.SIGSTOP)
        wait_until(
            lambda: not Callback.objects.filter(claimed_until__gt=timezone.now()).exists(),
            message="its lease did not run out",
        )
        receiver.respond()
        with hooks_settings(LEASE_SECONDS=2):
            assert send_callbacks().sent == 20  # another sender takes them over
        # Its lease keeper wakes with it and renews (what is still its own: nothing)
        # before the answers it waits for come: that renewal must not hide the lapse.
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("LOCK TABLE http_hooks_callback IN EXCLUSIVE MODE")
            stalled.send_signal(signal.SIGCONT)
            (keeper,) = wait_until(
                lambda: waiting_on_a_lock('UPDATE "http_hooks_callback" SET "claimed_until" %'),
                message="the lease keeper did not renew on waking",
            )
        wait_until(lambda: idle(keeper), message="the renewal did not end")
    finally:
        hold.set()
        stalled.send_signal(signal.SIGCONT)
        _, stderr = stalled.communicate(timeout=60)
    counts = deliveries(receiver)
    assert len(counts) == 20
    assert sum(counts.values()) - len(counts) <= in_flight, stderr
    assert set(Callback.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.postgres
@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_a_claim_that_ends_after_sigterm_starts_nothing(make_hook, receiver, same_db_env):
    """SIGTERM while the worker's claim waits for a lock on the callbacks table (a
    migration, a long transaction): what the claim brings once the lock goes is given
    back unstarted and the worker exits 0. It once sent it, and was killed past the
    grace period with the callback left ``sending``."""
    make_hook()
    Order.objects.create(name="due soon")
    # Due in a moment: the idle worker's question "anything due?" (a read, which the
    # lock lets through) says yes once the lock is taken, and its claim then waits.
    Callback.objects.update(next_attempt_at=timezone.now() + datetime.timedelta(seconds=2))
    worker = start_sender(same_db_env, "--loop", LOOP_LISTEN_MAX_SLEEP=0.2, LOOP_MAX_SLEEP=0.2)
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("LOCK TABLE http_hooks_callback IN EXCLUSIVE MODE")
            wait_until(waiting_on_a_lock, message="the worker's claim did not wait for the lock")
            worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, stderr
    assert receiver.requests == []
    assert list(Callback.objects.values_list("status", "attempts")) == [("waiting", 0)]


def idle(pid: int) -> bool:
    """Whether that connection is idle: its last transaction ended."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone() == ("idle",)
