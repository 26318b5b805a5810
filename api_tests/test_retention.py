"""Retention (``services.delete_old_callbacks``) in bounded batches."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from http_hooks.models import Attempt, Callback, CallbackStatus
from http_hooks.services import delete_old_callbacks
from shop.models import Order

from .waiting import wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture
def aged(make_hook):
    """13 callbacks: 10 old and sent (ages 31 to 40 days, one attempt each), one old
    waiting, one old sending left by a sender whose lease ran out, and one new; returns
    the old sent ones' ids and the kept."""
    make_hook()
    for i in range(13):
        Order.objects.create(name=f"o{i}")
    ids = list(Callback.objects.order_by("id").values_list("id", flat=True))
    now = timezone.now()
    for age, pk in enumerate(ids[:12]):
        Callback.objects.filter(pk=pk).update(
            status=CallbackStatus.SENT, create_datetime=now - datetime.timedelta(days=40 - age)
        )
    Callback.objects.filter(pk=ids[10]).update(status=CallbackStatus.WAITING)
    Callback.objects.filter(pk=ids[11]).update(
        status=CallbackStatus.SENDING, claimed_until=now - datetime.timedelta(hours=1)
    )
    Attempt.objects.bulk_create(Attempt(callback_id=pk, number=1) for pk in ids)
    return ids[:10], ids[10:]


def test_deletes_exactly_the_old_ones_and_their_attempts_in_batches(aged):
    _, kept = aged
    batches = []
    with CaptureQueriesContext(connection) as queries:
        deleted = delete_old_callbacks(days=30, batch_size=4, vacuum=False, on_batch=batches.append)
    assert (deleted, batches) == (10, [4, 4, 2])
    assert sorted(Callback.objects.values_list("id", flat=True)) == kept
    assert sorted(Attempt.objects.values_list("callback_id", flat=True)) == kept
    # No callback was loaded as an object to cascade: only ids were read.
    assert not [query for query in queries.captured_queries if '"payload"' in query["sql"]]
    deletes = [q for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len([q for q in deletes if "http_hooks_callback" in q["sql"].split("WHERE")[0]]) == 3


def test_callbacks_created_at_the_same_moment_are_all_deleted(aged):
    old, kept = aged
    Callback.objects.filter(pk__in=old + kept[:2]).update(
        create_datetime=timezone.now() - datetime.timedelta(days=50)
    )
    batches = []
    deleted = delete_old_callbacks(days=30, batch_size=3, vacuum=False, on_batch=batches.append)
    assert (deleted, batches) == (10, [3, 3, 3, 1])
    assert sorted(Callback.objects.values_list("id", flat=True)) == kept
    deleted = delete_old_callbacks(days=30, include_undelivered=True, batch_size=1, vacuum=False)
    assert deleted == 2
    assert list(Callback.objects.values_list("id", flat=True)) == kept[2:]


def test_a_stop_between_batches_leaves_whole_callbacks(aged):
    old, kept = aged

    def stop(count):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        delete_old_callbacks(days=30, batch_size=4, vacuum=False, on_batch=stop)
    # The oldest four are gone with their attempts; every other callback has its own.
    remaining = sorted(Callback.objects.values_list("id", flat=True))
    assert remaining == old[4:] + kept
    assert sorted(Attempt.objects.values_list("callback_id", flat=True)) == remaining


@pytest.mark.django_db(transaction=True)
def test_a_resend_during_a_batch_keeps_its_callback(aged):
    """On PostgreSQL a batch locks its callbacks: one that a resend (another
    transaction) queues again while the batch waits for it is kept, attempts too."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    import threading

    import psycopg

    old, kept = aged
    settings = connection.settings_dict

    def connect(**options):
        return psycopg.connect(
            host=settings["HOST"] or None,
            port=settings["PORT"] or None,
            user=settings["USER"],
            password=settings["PASSWORD"] or None,
            dbname=settings["NAME"],
            **options,
        )

    other = connect()
    other.execute("UPDATE http_hooks_callback SET status = 'waiting' WHERE id = %s", [old[0]])
    result = {}

    def retention():
        try:
            result["deleted"] = delete_old_callbacks(days=30, vacuum=False)
        finally:
            connection.close()

    thread = threading.Thread(target=retention)
    thread.start()
    watcher = connect(autocommit=True)
    # Until retention waits for the row that the other transaction holds.
    waiting = (
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = %s"
    )
    wait_until(
        lambda: watcher.execute(waiting, [settings["NAME"]]).fetchone()[0],
        alive=thread.is_alive,
        message=lambda: str(result),
    )
    other.commit()
    thread.join()
    other.close()
    watcher.close()
    assert result["deleted"] == 9
    remaining = sorted(Callback.objects.values_list("id", flat=True))
    assert remaining == [old[0], *kept]
    assert sorted(Attempt.objects.values_list("callback_id", flat=True)) == remaining


@pytest.mark.django_db(transaction=True)
def test_a_callback_in_flight_is_kept_even_with_the_undelivered(make_hook, receiver):
    """``include_undelivered`` deleted a callback a sender was sending: its outcome
    was dropped, and the next callback of its ordering key could go while it was in
    flight. As ``delete_callback`` does, one a sender holds is kept (one whose lease
    ran out is not held: ``test_callbacks_created_at_the_same_moment_are_all_deleted``)."""
    import threading

    from http_hooks.api import send_callbacks

    hold = threading.Event()
    receiver.respond("/held", hold=hold)
    make_hook(target_url=receiver.url("/held"))
    Order.objects.create(name="in flight")
    Callback.objects.update(create_datetime=timezone.now() - datetime.timedelta(days=40))
    (in_flight,) = Callback.objects.values_list("pk", flat=True)
    result = {}

    def send():
        try:
            result["report"] = send_callbacks()
        finally:
            connection.close()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        receiver.wait_for(1, timeout=60)
        deleted = delete_old_callbacks(days=30, include_undelivered=True, vacuum=False)
    finally:
        hold.set()
        sender.join()
    assert deleted == 0
    assert result["report"].sent == 1
    (kept,) = Callback.objects.all()
    assert (kept.pk, kept.status) == (in_flight, CallbackStatus.SENT)
    assert list(Attempt.objects.values_list("callback_id", flat=True)) == [in_flight]
