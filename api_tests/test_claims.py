"""Claims: any number of senders against one database deliver each callback once, and a
sender killed mid-batch loses nothing (its lease expires and another sender sends)."""

import json
import re
import signal
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from http_hooks.api import send_callbacks
from http_hooks.delivery import claim_batch, claims
from http_hooks.delivery.reconnect import with_reconnect
from http_hooks.models import Attempt, Callback
from shop.models import Order

from .waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(ROOT / "demo" / "manage.py"), "send_callbacks"]

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]


def save_orders(count: int) -> None:
    with transaction.atomic():
        for n in range(count):
            Order.objects.create(name=f"order {n}")


def start_sender(env: dict, **overrides) -> subprocess.Popen:
    return subprocess.Popen(
        MANAGE,
        env={**env, "HTTP_HOOKS_OVERRIDES": json.dumps(overrides)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_senders(env: dict, processes: int, receiver, **overrides) -> list[int]:
    """Start the senders at once; return how many callbacks each one sent.

    The receiver holds every request until more are in flight than one sender
    may have (``CONCURRENCY``): then at least two senders are sending side by
    side, however late the machine started the second one.
    """
    hold = threading.Event()
    receiver.respond(hold=hold)
    senders = [start_sender(env, **overrides) for _ in range(processes)]
    try:
        receiver.wait_for(int(overrides["CONCURRENCY"]) + 1, timeout=120)
    finally:
        hold.set()
    sent = []
    for sender in senders:
        stdout, stderr = sender.communicate(timeout=120)
        assert sender.returncode == 0, stderr
        sent.append(int(re.match(r"sent (\d+), retried 0, failed 0", stdout).group(1)))
    return sent


def assert_each_delivered_once(receiver, count: int) -> None:
    event_ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(event_ids) == count, f"{len(event_ids) - len(set(event_ids))} duplicates"
    assert set(event_ids) == {str(e) for e in Callback.objects.values_list("event_id", flat=True)}
    assert set(Callback.objects.values_list("status", "attempts")) == {("sent", 1)}
    assert Attempt.objects.count() == count


@pytest.mark.postgres
def test_four_senders_deliver_2000_callbacks_each_exactly_once(make_hook, receiver, same_db_env):
    make_hook()
    save_orders(2000)
    sent = run_senders(same_db_env, 4, receiver, BATCH_SIZE=50, CONCURRENCY=8)
    assert sum(sent) == 2000
    assert sum(1 for n in sent if n) >= 2, f"the senders did not run side by side: {sent}"
    assert_each_delivered_once(receiver, 2000)


def test_two_senders_on_any_database_deliver_each_callback_once(make_hook, receiver, same_db_env):
    """On SQLite, without SKIP LOCKED, the conditional claiming UPDATE keeps claims exclusive."""
    make_hook()
    save_orders(300)
    sent = run_senders(same_db_env, 2, receiver, BATCH_SIZE=20, CONCURRENCY=4)
    assert sum(sent) == 300
    assert all(sent), f"the senders did not run side by side: {sent}"
    assert_each_delivered_once(receiver, 300)


@pytest.mark.parametrize("returning", [True, False], ids=["update-returning", "conditional-update"])
def test_concurrent_claimers_never_share_a_callback(make_hook, monkeypatch, returning):
    """Both ways of claiming: one ``UPDATE ... RETURNING`` (PostgreSQL, SQLite 3.35+),
    and the conditional ``UPDATE`` of databases without it."""
    if returning:
        assert claims.updates_return_rows(connection), "this database cannot claim in one statement"
    monkeypatch.setattr(claims, "updates_return_rows", lambda db: returning)
    make_hook()
    save_orders(200)
    claimed: list[list[int]] = [[] for _ in range(4)]
    # Every thread claims a first batch before any goes on: they run side by side.
    all_started = threading.Barrier(len(claimed), timeout=60)

    def claim_all(mine: list[int]) -> None:
        try:
            mine.extend(c.pk for c in claim_batch())
            all_started.wait()
            while batch := claim_batch():
                mine.extend(c.pk for c in batch)
        finally:
            connection.close()

    hooks = {**settings.HTTP_HOOKS, "BATCH_SIZE": 7}
    with override_settings(HTTP_HOOKS=hooks):
        threads = [threading.Thread(target=claim_all, args=(m,)) for m in claimed]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    everything = [pk for mine in claimed for pk in mine]
    assert len(everything) == 200
    assert set(everything) == set(Callback.objects.values_list("pk", flat=True))
    assert all(claimed)
    assert set(Callback.objects.values_list("status", flat=True)) == {"sending"}


@pytest.mark.parametrize("returning", [True, False], ids=["update-returning", "conditional-update"])
def test_claimed_callbacks_are_model_instances_as_the_orm_reads_them(
    make_hook, monkeypatch, returning
):
    """A claim builds its instances without ``Model.__init__`` (``claims.loaded``): they
    must still be what ``from_db`` makes (stored, of their database, with their hook,
    the fields a claim does not read loaded on access) and save like any other."""
    monkeypatch.setattr(claims, "updates_return_rows", lambda db: returning)
    hook = make_hook()
    save_orders(1)
    stored = Callback.objects.get()

    (claimed,) = claim_batch()

    assert isinstance(claimed, Callback)
    assert not claimed._state.adding
    assert claimed._state.db == "default"
    assert (claimed.pk, claimed.event_id, claimed.payload) == (
        stored.pk,
        stored.event_id,
        stored.payload,
    )
    assert claimed.claim_token is not None and claimed.attempts == 0
    assert claimed.hook == hook and claimed.hook.target_url == hook.target_url
    assert "create_datetime" in claimed.get_deferred_fields()
    assert claimed.create_datetime == stored.create_datetime  # read on access
    assert claimed.object_type == "shop.order"
    claimed.status_details = "edited"
    claimed.save(update_fields=["status_details"])
    assert Callback.objects.get().status_details == "edited"
    assert claimed == stored and hash(claimed) == hash(stored)


@pytest.mark.parametrize("returning", [True, False], ids=["update-returning", "conditional-update"])
def test_a_claim_takes_its_size_expired_leases_first_then_the_oldest_due(
    make_hook, monkeypatch, returning
):
    """Exactly ``size`` callbacks: those of a dead sender's expired lease, then the
    waiting ones in the order they fell due; never one that is not due yet or whose
    lease still runs."""
    monkeypatch.setattr(claims, "updates_return_rows", lambda db: returning)
    make_hook()
    save_orders(12)
    now = timezone.now()
    first, *rest = Callback.objects.order_by("pk")
    expired, live, future, *due = rest
    Callback.objects.filter(pk=expired.pk).update(
        status="sending", claimed_until=now - timedelta(seconds=1)
    )
    Callback.objects.filter(pk=live.pk).update(
        status="sending", claimed_until=now + timedelta(hours=1)
    )
    Callback.objects.filter(pk=future.pk).update(next_attempt_at=now + timedelta(hours=1))
    # Due in the reverse order of their ids, and ``first`` the latest.
    for offset, callback in enumerate([first, *due]):
        Callback.objects.filter(pk=callback.pk).update(
            next_attempt_at=now - timedelta(minutes=len(due) + 1 - offset)
        )

    taken = claim_batch(size=4)

    assert {c.pk for c in taken} == {expired.pk, first.pk, due[0].pk, due[1].pk}
    assert Callback.objects.filter(status="sending").count() == 5  # with ``live``
    everything_else = claim_batch(size=100)
    assert {c.pk for c in everything_else} == {c.pk for c in due[2:]}


def test_a_sender_killed_mid_batch_loses_nothing(make_hook, receiver, same_db_env):
    hold = threading.Event()
    receiver.respond(hold=hold)
    make_hook()
    save_orders(10)
    sender = start_sender(
        same_db_env, LEASE_SECONDS=600, BATCH_SIZE=10, CONCURRENCY=10, HOOK_CONCURRENCY=10
    )
    try:
        held = receiver.wait_for(10, timeout=60)
    finally:
        sender.send_signal(signal.SIGKILL)
        sender.wait(timeout=30)
        hold.set()
    assert set(Callback.objects.values_list("status", flat=True)) == {"sending"}

    receiver.respond(status=200)
    assert send_callbacks().total == 0, "a live lease was taken"
    # The dead sender's lease runs out.
    Callback.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))
    report = send_callbacks()

    assert report.sent == 10
    assert set(Callback.objects.values_list("status", flat=True)) == {"sent"}
    resent = receiver.requests[10:]
    assert {r.headers["webhook-id"] for r in resent} == {r.headers["webhook-id"] for r in held}


def _claimed_until_reaches(moment: datetime, timeout: float = 60.0) -> datetime:
    """Wait until the lease in the database reaches ``moment``; return the lease seen."""

    def reached() -> datetime | None:
        lease = Callback.objects.get().claimed_until
        return lease if lease >= moment else None

    return wait_until(reached, timeout=timeout, message=f"the lease stayed short of {moment}")


def test_a_live_sender_keeps_its_claims_past_the_lease(make_hook, receiver):
    """The lease is renewed while a batch is in flight, past the end of the first one."""
    hold = threading.Event()
    receiver.respond(hold=hold)
    make_hook()
    save_orders(1)
    reports = []

    def send() -> None:
        try:
            reports.append(send_callbacks())
        finally:
            connection.close()

    hooks = {**settings.HTTP_HOOKS, "LEASE_SECONDS": 1}
    with override_settings(HTTP_HOOKS=hooks):
        sender = threading.Thread(target=send)
        sender.start()
        try:
            receiver.wait_for(1, timeout=60)
            first_lease = Callback.objects.get().claimed_until
            # Renewed after the first lease had run out: the sender still holds it.
            _claimed_until_reaches(first_lease + timedelta(seconds=2))
            assert Callback.objects.get().status == "sending"
        finally:
            hold.set()
            sender.join(timeout=60)
    assert reports[0].sent == 1
    assert len(receiver.requests) == 1
    assert Attempt.objects.count() == 1


def test_anything_due_says_whether_a_run_would_find_a_callback(make_hook):
    """What an idle loop asks before a run: a waiting callback whose time has come, or a
    ``sending`` one whose lease ran out, of any hook or of the one given."""
    from http_hooks.delivery.claims import anything_due

    hook, other = make_hook(), make_hook()
    assert not anything_due()
    Order.objects.create(name="one")
    now = timezone.now()
    callbacks = Callback.objects.filter(hook=hook)
    Callback.objects.filter(hook=other).delete()
    callbacks.update(next_attempt_at=now + timedelta(minutes=1))
    assert not anything_due()
    callbacks.update(next_attempt_at=now - timedelta(seconds=1))
    assert anything_due() and anything_due(hook_id=hook.pk)
    assert not anything_due(hook_id=other.pk)
    callbacks.update(status="sending", claimed_until=now + timedelta(minutes=1))
    assert not anything_due()
    callbacks.update(claimed_until=now - timedelta(seconds=1))
    assert anything_due() and anything_due(hook_id=hook.pk)
    assert not anything_due(hook_id=other.pk)
    callbacks.update(status="sent")
    assert not anything_due()


def claim_losing_the_first_answer(token: uuid.UUID) -> list[Callback]:
    """A claim of 2 tried by ``with_reconnect`` as a sender's is, whose first try is done
    and its answer lost with the connection."""
    tries = []

    def claim() -> list[Callback]:
        batch = claim_batch(size=2, token=token)
        tries.append(batch)
        if len(tries) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return batch

    return with_reconnect(claim, what="claiming", undo=claims.lost_claims(token))


def held_by(token: uuid.UUID) -> list[int]:
    return sorted(
        Callback.objects.filter(claim_token=token, status="sending").values_list("pk", flat=True)
    )


@pytest.mark.django_db(transaction=True)
def test_a_claim_whose_answer_was_lost_gives_its_rows_back_before_it_is_tried_again(make_hook):
    """The connection drops after the claim was done: its rows were never seen. Tried
    again as it is, the claim took others, and the lost ones stayed ``sending`` under
    the sender's token, their lease renewed for as long as its run lasted."""
    make_hook()
    save_orders(4)
    token = uuid.uuid4()
    batch = claim_losing_the_first_answer(token)
    assert held_by(token) == sorted(c.pk for c in batch)
    assert Callback.objects.filter(status="waiting").count() == 2


@pytest.mark.django_db(transaction=True)
def test_an_undone_lost_claim_leaves_earlier_claims_alone_when_the_clock_is_set_back(
    make_hook, monkeypatch
):
    """The lost rows are found by their claim's stamp, later than every stamp the
    process gave before whatever the clock did: a clock set back once put the
    sender's earlier claims, still in flight, in the range, and they went out twice."""
    make_hook()
    save_orders(4)
    Callback.objects.update(next_attempt_at=timezone.now() - timedelta(hours=1))
    token = uuid.uuid4()
    earlier = claim_batch(size=2, token=token)
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() - timedelta(minutes=5))
    batch = claim_losing_the_first_answer(token)
    assert len(batch) == 2
    assert held_by(token) == sorted(c.pk for c in earlier + batch)
