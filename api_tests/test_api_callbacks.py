"""REST API: /api/callbacks/ (list, filters, retrieve, delete) and its operations:
resend (one and many), send, monitor, attempts and retention."""

from __future__ import annotations

import datetime
import threading
import uuid

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from http_hooks.delivery.claims import claim_batch
from http_hooks.models import Attempt, Callback, CallbackStatus
from shop.models import Customer, Order

from .receiver import Receiver
from .waiting import wait_until

pytestmark = pytest.mark.django_db

ONE_TRY = override_settings(
    HTTP_HOOKS={"BLOCK_PRIVATE_NETWORKS": False, "MAX_ATTEMPTS": 1, "RETRY_SCHEDULE": [1]}
)


def orders(count: int) -> list[Callback]:
    """Save ``count`` orders; return their callbacks, oldest first."""
    for index in range(count):
        Order.objects.create(name=f"order {index}")
    return list(Callback.objects.order_by("id"))


def send(client, **data):
    response = client.post("/api/callbacks/send/", data, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


@pytest.fixture
def sent_and_failed(staff_client, make_hook, receiver):
    """One sent and one failed (status error, HTTP 500) callback."""
    make_hook()
    receiver.respond("/fail", status=500, body=b"boom")
    failing = make_hook(model="shop.customer", target_url=receiver.url("/fail"))
    Order.objects.create(name="ok")
    Customer.objects.create(name="c")
    with ONE_TRY:
        send(staff_client)
    sent = Callback.objects.get(status=CallbackStatus.SENT)
    failed = Callback.objects.get(status=CallbackStatus.ERROR)
    assert failed.hook == failing
    return sent, failed


# --- list, retrieve, delete ------------------------------------------------------


def test_list_callbacks_newest_first_by_cursor(staff_client, make_hook):
    make_hook()
    first, second, third = orders(3)
    response = staff_client.get("/api/callbacks/", {"page_size": 2})
    assert response.status_code == 200
    body = response.json()
    assert [c["id"] for c in body["results"]] == [third.pk, second.pk]
    assert body["previous"] is None
    assert "count" not in body
    following = staff_client.get(body["next"]).json()
    assert [c["id"] for c in following["results"]] == [first.pk]
    assert following["next"] is None


def test_list_callbacks_oldest_first(staff_client, make_hook):
    make_hook()
    callbacks = orders(3)
    response = staff_client.get("/api/callbacks/", {"ordering": "id"})
    assert [c["id"] for c in response.json()["results"]] == [c.pk for c in callbacks]


def test_list_callbacks_refuses_a_forged_cursor(staff_client):
    response = staff_client.get("/api/callbacks/", {"cursor": "garbage"})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_retrieve_callback(staff_client, make_hook):
    hook = make_hook(headers={"X-A": "1"}, content_type="application/json")
    order = Order.objects.create(name="A")
    callback = Callback.objects.get()
    response = staff_client.get(f"/api/callbacks/{callback.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert body["hook"] == hook.pk
    assert body["event_id"] == str(callback.event_id)
    assert body["event_type"] == "created"
    assert body["object_type"] == "shop.order"
    assert body["object_id"] == str(order.pk)
    assert body["status"] == "waiting"
    assert "headers" not in body  # the hook's, read when a try goes out
    assert body["payload"] == callback.payload
    assert body["attempts"] == 0
    assert body["last_response_status"] is None
    assert "claim_token" not in body


def test_retrieve_unknown_callback_is_404(staff_client):
    assert staff_client.get("/api/callbacks/12345/").status_code == 404


def test_delete_callback(staff_client, make_hook):
    make_hook()
    (callback,) = orders(1)
    assert staff_client.delete(f"/api/callbacks/{callback.pk}/").status_code == 204
    assert not Callback.objects.exists()


def test_callbacks_cannot_be_written(staff_client, make_hook):
    make_hook()
    (callback,) = orders(1)
    response = staff_client.patch(
        f"/api/callbacks/{callback.pk}/", {"status": "sent"}, format="json"
    )
    assert response.status_code == 405
    assert staff_client.post("/api/callbacks/", {}, format="json").status_code == 405
    callback.refresh_from_db()
    assert callback.status == "waiting"


# --- filters ---------------------------------------------------------------------


def listed(client, **query) -> list[int]:
    response = client.get("/api/callbacks/", query)
    assert response.status_code == 200, response.json()
    return [c["id"] for c in response.json()["results"]]


def test_filter_by_status(staff_client, sent_and_failed):
    sent, failed = sent_and_failed
    assert listed(staff_client, status="sent") == [sent.pk]
    assert listed(staff_client, status="error") == [failed.pk]
    assert listed(staff_client, status="waiting") == []


def test_filter_by_hook(staff_client, sent_and_failed):
    _, failed = sent_and_failed
    assert listed(staff_client, hook=failed.hook_id) == [failed.pk]


def test_filter_by_response_status(staff_client, sent_and_failed):
    sent, failed = sent_and_failed
    assert listed(staff_client, response_status=500) == [failed.pk]
    assert listed(staff_client, response_status=200) == [sent.pk]


def test_filter_by_event_type_and_event_id(staff_client, make_hook):
    make_hook(signals=["django.db.models.signals.post_save"])
    order = Order.objects.create(name="A")
    order.save()
    created, updated = Callback.objects.order_by("id")
    assert listed(staff_client, event_type="updated") == [updated.pk]
    assert listed(staff_client, event_id=str(created.event_id)) == [created.pk]


def test_filter_by_created_and_updated_ranges(staff_client, make_hook):
    make_hook()
    old, new = orders(2)
    week_ago = timezone.now() - datetime.timedelta(days=7)
    Callback.objects.filter(pk=old.pk).update(create_datetime=week_ago, update_datetime=week_ago)
    day_ago = (timezone.now() - datetime.timedelta(days=1)).isoformat()
    assert listed(staff_client, created_after=day_ago) == [new.pk]
    assert listed(staff_client, created_before=day_ago) == [old.pk]
    assert listed(staff_client, updated_after=day_ago) == [new.pk]
    assert listed(staff_client, updated_before=day_ago) == [old.pk]


def test_updated_before_is_the_update_time_whatever_the_creation_time(staff_client, make_hook):
    """``updated_before`` takes the callbacks updated before the moment: those created
    long before and updated since are not among them, those created and updated just
    before it are; the bulk resend selects the same ones."""
    make_hook()
    early_updated_late, just_before, after = orders(3)
    now = timezone.now()
    moment = now - datetime.timedelta(days=1)
    stamps = {
        early_updated_late.pk: (now - datetime.timedelta(days=30), now),
        just_before.pk: (
            moment - datetime.timedelta(seconds=2),
            moment - datetime.timedelta(seconds=1),
        ),
        after.pk: (moment, moment),
    }
    for pk, (created, updated) in stamps.items():
        Callback.objects.filter(pk=pk).update(
            create_datetime=created, update_datetime=updated, status="error"
        )
    assert listed(staff_client, updated_before=moment.isoformat()) == [just_before.pk]
    response = staff_client.post(
        f"/api/callbacks/resend/?updated_before={moment.isoformat().replace('+', '%2B')}",
        {"confirm": True},
        format="json",
    )
    assert response.json() == {"count": 1}, response.json()
    assert set(Callback.objects.filter(status="waiting").values_list("pk", flat=True)) == {
        just_before.pk
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param({"status": "lost"}, "status", id="unknown-status"),
        pytest.param({"hook": "abc"}, "hook", id="hook-not-a-number"),
        pytest.param({"hook": "1.5"}, "hook", id="hook-not-whole"),
        pytest.param({"hook": "0"}, "hook", id="hook-zero"),
        pytest.param({"hook": str(2**64)}, "hook", id="hook-too-large"),
        pytest.param({"created_after": "yesterday"}, "created_after", id="date-unparsable"),
        pytest.param({"response_status": "99"}, "response_status", id="status-code-too-small"),
        pytest.param({"event_id": "not-a-uuid"}, "event_id", id="event-id-not-a-uuid"),
        pytest.param({"page_size": "x", "status": "nope"}, "status", id="with-other-params"),
    ],
)
def test_list_callbacks_refuses_bad_filter_values(staff_client, query, field):
    response = staff_client.get("/api/callbacks/", query)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


# --- resend ----------------------------------------------------------------------


def test_resend_callback_queues_it_again_with_the_same_event_id(
    staff_client, sent_and_failed, receiver
):
    _, failed = sent_and_failed
    receiver.respond("/fail", status=200)
    response = staff_client.post(f"/api/callbacks/{failed.pk}/resend/")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == failed.pk
    assert body["status"] == "waiting"
    assert body["attempts"] == 0
    assert send(staff_client)["sent"] == 1
    failed.refresh_from_db()
    assert failed.status == "sent"
    first_try, second_try = [r for r in receiver.requests if r.path == "/fail"]
    assert first_try.headers["webhook-id"] == second_try.headers["webhook-id"]


@override_settings(
    HTTP_HOOKS={"BLOCK_PRIVATE_NETWORKS": False, "MAX_ATTEMPTS": 2, "RETRY_SCHEDULE": [1]}
)
@pytest.mark.parametrize("how", ["one", "many"])
def test_resend_numbers_attempts_on_with_a_fresh_retry_budget(
    staff_client, make_hook, receiver, how
):
    receiver.respond("/fail", status=500)
    make_hook(target_url=receiver.url("/fail"))
    (callback,) = orders(1)
    for _ in range(2):
        Callback.objects.update(next_attempt_at=timezone.now() - datetime.timedelta(seconds=1))
        send(staff_client)
    callback.refresh_from_db()
    assert (callback.status, callback.attempts) == ("error", 2)
    if how == "one":
        response = staff_client.post(f"/api/callbacks/{callback.pk}/resend/")
    else:
        response = staff_client.post(
            "/api/callbacks/resend/", {"ids": [callback.pk]}, format="json"
        )
    assert response.status_code == 200
    send(staff_client)
    callback.refresh_from_db()
    # One try of a fresh budget of two: waiting for the second, not failed for good.
    assert (callback.status, callback.attempts) == ("waiting", 1)
    attempts = staff_client.get(f"/api/callbacks/{callback.pk}/attempts/").json()["results"]
    assert sorted(attempt["number"] for attempt in attempts) == [1, 2, 3]
    assert len(receiver.requests) == 3


def test_resend_callback_being_sent_is_a_conflict(staff_client, make_hook):
    make_hook()
    (callback,) = orders(1)
    Callback.objects.filter(pk=callback.pk).update(status=CallbackStatus.SENDING)
    response = staff_client.post(f"/api/callbacks/{callback.pk}/resend/")
    assert response.status_code == 409
    assert response.json()["code"] == "callback_sending"
    callback.refresh_from_db()
    assert callback.status == "sending"


def sending_under_a_lease(*, seconds: float) -> Callback:
    """A new order's callback, claimed by a sender under a lease that ends in ``seconds``
    (ran out, when negative)."""
    (callback,) = orders(1)
    Callback.objects.filter(pk=callback.pk).update(
        status=CallbackStatus.SENDING,
        claim_token=uuid.uuid4(),
        claimed_until=timezone.now() + datetime.timedelta(seconds=seconds),
    )
    return callback


@pytest.mark.parametrize("action", ["delete", "resend"])
def test_a_callback_left_sending_by_a_dead_sender_may_be_deleted_or_resent(
    staff_client, make_hook, action
):
    """Its lease ran out: no sender holds it (the 409 is for one that does)."""
    make_hook()
    callback = sending_under_a_lease(seconds=-1)
    if action == "delete":
        assert staff_client.delete(f"/api/callbacks/{callback.pk}/").status_code == 204
        assert not Callback.objects.exists()
    else:
        response = staff_client.post(f"/api/callbacks/{callback.pk}/resend/")
        assert response.status_code == 200
        assert response.json()["status"] == "waiting"


@pytest.mark.parametrize("action", ["delete", "resend"])
def test_a_callback_a_sender_holds_under_its_lease_is_a_conflict(staff_client, make_hook, action):
    make_hook()
    callback = sending_under_a_lease(seconds=300)
    if action == "delete":
        response = staff_client.delete(f"/api/callbacks/{callback.pk}/")
    else:
        response = staff_client.post(f"/api/callbacks/{callback.pk}/resend/")
    assert response.status_code == 409
    assert Callback.objects.get().status == "sending"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_claim_while_a_callback_is_deleted_never_takes_it(make_hook):
    """Django's delete reads the rows, then deletes them by id: a claim in between took
    the callback (one whose lease ran out is what a claim takes first), and it was
    deleted under the sender. Locked first, the claim passes it over."""
    from django.db import connection
    from django.db.models.signals import pre_delete

    from http_hooks import services
    from http_hooks.delivery import claim_batch

    make_hook()
    callback = sending_under_a_lease(seconds=-1)
    claimed = []

    def claim_meanwhile(**kwargs):
        def claim():
            try:
                claimed.extend(claim_batch())
            finally:
                connection.close()

        thread = threading.Thread(target=claim)
        thread.start()
        thread.join(30)

    pre_delete.connect(claim_meanwhile, sender=Callback, dispatch_uid="claim-meanwhile")
    try:
        assert services.delete_callback(callback) is True
    finally:
        pre_delete.disconnect(dispatch_uid="claim-meanwhile", sender=Callback)
    assert claimed == []
    assert not Callback.objects.exists()


def test_resend_unknown_callback_is_404(staff_client):
    assert staff_client.post("/api/callbacks/999/resend/").status_code == 404


def test_resend_many_by_filter(staff_client, sent_and_failed):
    sent, failed = sent_and_failed
    response = staff_client.post("/api/callbacks/resend/?status=error", {}, format="json")
    assert response.status_code == 200
    assert response.json() == {"count": 1}
    failed.refresh_from_db()
    sent.refresh_from_db()
    assert failed.status == "waiting"
    assert sent.status == "sent"


def test_resend_many_by_ids(staff_client, sent_and_failed):
    sent, _ = sent_and_failed
    response = staff_client.post("/api/callbacks/resend/", {"ids": [sent.pk]}, format="json")
    assert response.json() == {"count": 1}
    sent.refresh_from_db()
    assert sent.status == "waiting"


def test_resend_many_by_ids_and_filter_takes_both(staff_client, sent_and_failed):
    sent, _ = sent_and_failed
    response = staff_client.post(
        "/api/callbacks/resend/?status=error", {"ids": [sent.pk]}, format="json"
    )
    assert response.json() == {"count": 0}
    sent.refresh_from_db()
    assert sent.status == "sent"


@pytest.mark.parametrize(
    ("query", "data", "field"),
    [
        pytest.param("", {}, "non_field_errors", id="nothing-selected"),
        pytest.param("", {"ids": []}, "ids", id="ids-empty"),
        pytest.param("", {"ids": ["a"]}, "ids.0", id="id-not-a-number"),
        pytest.param("", {"ids": 5}, "ids", id="ids-not-a-list"),
        pytest.param("?status=lost", {}, "status", id="bad-filter"),
    ],
)
def test_resend_many_refuses_bad_selection(staff_client, sent_and_failed, query, data, field):
    response = staff_client.post(f"/api/callbacks/resend/{query}", data, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert not Callback.objects.filter(status="waiting").exists()


def failed_callbacks(count: int) -> list[int]:
    """``count`` callbacks in status error; their ids."""
    orders(count)
    Callback.objects.update(status=CallbackStatus.ERROR, attempts=8)
    return list(Callback.objects.order_by("pk").values_list("pk", flat=True))


@override_settings(HTTP_HOOKS={"BLOCK_PRIVATE_NETWORKS": False, "RESEND_LIMIT": 3, "BATCH_SIZE": 2})
def test_bulk_resend_above_the_limit_needs_confirm(staff_client, make_hook):
    make_hook()
    failed_callbacks(4)
    response = staff_client.post("/api/callbacks/resend/?status=error", {}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["errors"][0]["field"]) == ("too_many_callbacks", "confirm")
    assert "more than 3 callbacks match" in body["detail"]
    assert set(Callback.objects.values_list("status", flat=True)) == {"error"}
    response = staff_client.post(
        "/api/callbacks/resend/?status=error", {"confirm": True}, format="json"
    )
    assert response.json() == {"count": 4}
    assert set(Callback.objects.values_list("status", "attempts")) == {("waiting", 0)}


@override_settings(HTTP_HOOKS={"BLOCK_PRIVATE_NETWORKS": False, "RESEND_LIMIT": 3})
def test_bulk_resend_up_to_the_limit_needs_no_confirm(staff_client, make_hook):
    make_hook()
    ids = failed_callbacks(4)
    response = staff_client.post("/api/callbacks/resend/", {"ids": ids[:3]}, format="json")
    assert response.json() == {"count": 3}


@override_settings(HTTP_HOOKS={"BLOCK_PRIVATE_NETWORKS": False, "BATCH_SIZE": 2})
def test_bulk_resend_updates_batch_size_callbacks_at_a_time(staff_client, make_hook):
    make_hook()
    failed_callbacks(5)
    with CaptureQueriesContext(connection) as queries:
        response = staff_client.post("/api/callbacks/resend/?status=error", {}, format="json")
    assert response.json() == {"count": 5}
    updates = [q["sql"] for q in queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 3
    assert set(Callback.objects.values_list("status", flat=True)) == {"waiting"}


# --- send ------------------------------------------------------------------------


def test_send_delivers_due_callbacks_and_reports(staff_client, make_hook, receiver):
    make_hook()
    orders(2)
    report = send(staff_client)
    assert report["sent"] == 2
    assert report["retried"] == report["failed"] == 0
    assert report["total"] == 2
    assert report["duration"] >= 0
    assert len(receiver.wait_for(2)) == 2
    assert set(Callback.objects.values_list("status", flat=True)) == {"sent"}


def test_send_reports_retries(staff_client, make_hook, receiver):
    receiver.respond(status=500)
    make_hook()
    orders(1)
    assert send(staff_client)["retried"] == 1
    assert Callback.objects.get().status == "waiting"


def test_send_only_one_hook(staff_client, make_hook):
    make_hook()
    customers = make_hook(model="shop.customer")
    Order.objects.create(name="o")
    Customer.objects.create(name="c")
    assert send(staff_client, hook_id=customers.pk)["sent"] == 1
    assert Callback.objects.get(status="sent").hook == customers
    assert Callback.objects.get(status="waiting").object_type == "shop.order"


def test_send_only_listed_callbacks_even_if_not_due(staff_client, make_hook):
    make_hook()
    first, second = orders(2)
    Callback.objects.update(next_attempt_at=timezone.now() + datetime.timedelta(hours=1))
    assert send(staff_client)["total"] == 0
    assert send(staff_client, ids=[second.pk])["sent"] == 1
    assert Callback.objects.get(pk=first.pk).status == "waiting"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param({"hook_id": 999}, "hook_id", id="unknown-hook"),
        pytest.param({"hook_id": "x"}, "hook_id", id="hook-not-a-number"),
        pytest.param({"ids": "1"}, "ids", id="ids-not-a-list"),
        pytest.param({"ids": [0]}, "ids.0", id="id-zero"),
        pytest.param({"limit": 0}, "limit", id="limit-zero"),
        pytest.param({"limit": 3}, "limit", id="limit-over-batch-size"),
        pytest.param({"limit": "x"}, "limit", id="limit-not-a-number"),
        pytest.param({"callback_ids": [1]}, "callback_ids", id="old-name-of-ids"),
        pytest.param({"ids": [1], "idz": [2]}, "idz", id="unknown-key"),
    ],
)
@override_settings(HTTP_HOOKS={"BLOCK_PRIVATE_NETWORKS": False, "BATCH_SIZE": 2})
def test_send_refuses_bad_input(staff_client, make_hook, data, field):
    make_hook()
    orders(1)
    response = staff_client.post("/api/callbacks/send/", data, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert Callback.objects.get().status == "waiting"


@override_settings(HTTP_HOOKS={"BLOCK_PRIVATE_NETWORKS": False, "BATCH_SIZE": 2})
def test_send_sends_one_batch_per_request_and_says_when_more_are_due(
    staff_client, make_hook, receiver
):
    make_hook()
    orders(5)
    first = send(staff_client)
    assert (first["mode"], first["sent"], first["more"]) == ("sent", 2, True)
    assert len(receiver.wait_for(2)) == 2
    assert Callback.objects.filter(status="waiting").count() == 3
    assert send(staff_client, limit=1)["sent"] == 1
    assert Callback.objects.filter(status="waiting").count() == 2
    last = send(staff_client)
    assert (last["mode"], last["sent"], last["more"]) == ("sent", 2, False)
    assert set(Callback.objects.values_list("status", flat=True)) == {"sent"}
    assert len(receiver.requests) == 5


@override_settings(HTTP_HOOKS={"BLOCK_PRIVATE_NETWORKS": False, "BATCH_SIZE": 2})
def test_send_listed_callbacks_one_batch_at_a_time(staff_client, make_hook, receiver):
    make_hook()
    callbacks = orders(3)
    ids = [c.pk for c in callbacks]
    assert send(staff_client, ids=ids)["more"] is True
    assert send(staff_client, ids=ids)["more"] is False
    assert set(Callback.objects.values_list("status", flat=True)) == {"sent"}
    assert len(receiver.requests) == 3


# --- monitor ---------------------------------------------------------------------


def monitor(client, **query):
    return client.get("/api/callbacks/monitor/", query)


def test_monitor_counts_and_says_when_the_limit_is_reached(staff_client, sent_and_failed):
    response = monitor(staff_client, status="error", callbacks_limit=1)
    assert response.status_code == 200
    assert response.json() == {
        "status": "error",
        "count": 1,
        "callbacks_limit": 1,
        "minutes_ago": None,
        "exceeded": True,
    }
    assert monitor(staff_client, status="error", callbacks_limit=2).json()["exceeded"] is False


def test_monitor_default_limit_is_ten(staff_client, make_hook):
    make_hook()
    orders(10)
    body = monitor(staff_client, status="waiting").json()
    assert (body["count"], body["callbacks_limit"], body["exceeded"]) == (10, 10, True)


def test_monitor_counts_only_the_window(staff_client, make_hook):
    make_hook()
    old, _ = orders(2)
    Callback.objects.filter(pk=old.pk).update(
        update_datetime=timezone.now() - datetime.timedelta(minutes=30)
    )
    body = monitor(staff_client, status="waiting", minutes_ago=10, callbacks_limit=2).json()
    assert body == {
        "status": "waiting",
        "count": 1,
        "callbacks_limit": 2,
        "minutes_ago": 10,
        "exceeded": False,
    }
    body = monitor(staff_client, status="waiting", minutes_ago=0, callbacks_limit=2).json()
    assert (body["count"], body["minutes_ago"], body["exceeded"]) == (2, None, True)  # as before


def test_monitor_counts_the_callbacks_stuck_in_sending(staff_client, make_hook):
    """A sender that died leaves its claims ``sending``: once their lease has run out
    they are stuck, and counted (by the API and the command); a claim whose lease still
    runs is in flight, and is not."""
    make_hook()
    orders(3)
    with override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, "LEASE_SECONDS": 1}):
        claim_batch(size=2)
    claim_batch(size=1)
    assert Callback.objects.filter(status="sending").count() == 3

    def stuck() -> dict:
        return monitor(staff_client, status="sending", callbacks_limit=2).json()

    wait_until(lambda: stuck()["count"] == 2, timeout=30, message=lambda: str(stuck()))
    assert stuck()["exceeded"] is True
    with pytest.raises(CommandError, match="limit reached: 2 sending callbacks"):
        call_command("monitor_callbacks", "--status", "sending", "--callbacks_limit", "2")


def test_a_callback_stuck_longer_than_the_window_still_counts(staff_client, make_hook):
    """Stuck for 25 minutes, claimed 30 minutes ago: a window of 10 minutes once left it
    out, so the longer a callback was stuck the sooner it fell out of an alert."""
    make_hook()
    orders(1)
    now = timezone.now()
    Callback.objects.update(
        status="sending",
        update_datetime=now - datetime.timedelta(minutes=30),
        claimed_until=now - datetime.timedelta(minutes=25),
    )
    answer = monitor(staff_client, status="sending", callbacks_limit=1, minutes_ago=10).json()
    assert (answer["count"], answer["exceeded"]) == (1, True)
    # The list tells a stuck callback from one in flight by its lease.
    (listed,) = staff_client.get("/api/callbacks/", {"status": "sending"}).json()["results"]
    assert parse_datetime(listed["claimed_until"]) == now - datetime.timedelta(minutes=25)
    with pytest.raises(CommandError, match="limit reached: 1 sending callbacks"):
        call_command(
            "monitor_callbacks",
            "--status",
            "sending",
            "--callbacks_limit",
            "1",
            "--minutes_ago",
            "10",
        )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param({}, "status", id="status-missing"),
        pytest.param({"status": "sent"}, "status", id="status-not-monitored"),
        pytest.param({"status": "error", "callbacks_limit": 0}, "callbacks_limit", id="limit-zero"),
        pytest.param(
            {"status": "error", "callbacks_limit": "x"}, "callbacks_limit", id="limit-not-a-number"
        ),
        pytest.param({"status": "error", "minutes_ago": -1}, "minutes_ago", id="window-negative"),
        pytest.param(
            {"status": "error", "minutes_ago": 10**12}, "minutes_ago", id="window-too-large"
        ),
    ],
)
def test_monitor_refuses_bad_parameters(staff_client, query, field):
    response = monitor(staff_client, **query)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


# --- attempts --------------------------------------------------------------------


def test_attempts_of_a_callback_newest_first(staff_client, make_hook, receiver):
    receiver.respond(status=500, body=b"no")
    make_hook()
    (callback,) = orders(1)
    send(staff_client)
    receiver.respond(status=200, body=b"yes")
    send(staff_client, ids=[callback.pk])
    response = staff_client.get(f"/api/callbacks/{callback.pk}/attempts/")
    assert response.status_code == 200
    second, first = response.json()["results"]
    assert (first["number"], first["response_status"], first["response_body"]) == (1, 500, "no")
    assert first["succeeded"] is False
    assert first["error"]
    assert (second["number"], second["response_status"], second["succeeded"]) == (2, 200, True)
    assert second["request_headers"]["webhook-id"] == str(callback.event_id)
    assert Attempt.objects.filter(callback=callback).count() == 2


def test_attempts_of_unknown_callback_is_404(staff_client):
    assert staff_client.get("/api/callbacks/999/attempts/").status_code == 404


# --- retention -------------------------------------------------------------------


def test_delete_old_callbacks(staff_client, make_hook):
    make_hook()
    old, new = orders(2)
    Callback.objects.filter(pk=old.pk).update(
        status=CallbackStatus.SENT, create_datetime=timezone.now() - datetime.timedelta(days=31)
    )
    response = staff_client.post("/api/callbacks/delete-old/", {"days": 30}, format="json")
    assert response.status_code == 200
    assert response.json() == {"deleted": 1}
    assert list(Callback.objects.values_list("pk", flat=True)) == [new.pk]


def test_delete_old_callbacks_keeps_undelivered_unless_told(staff_client, make_hook):
    make_hook()
    _waiting, sending = orders(2)
    # Left by a sender whose lease ran out: one a sender holds is never deleted.
    Callback.objects.filter(pk=sending.pk).update(
        status=CallbackStatus.SENDING, claimed_until=timezone.now() - datetime.timedelta(hours=1)
    )
    Callback.objects.update(create_datetime=timezone.now() - datetime.timedelta(days=31))
    response = staff_client.post("/api/callbacks/delete-old/", {"days": 30}, format="json")
    assert response.json() == {"deleted": 0}
    assert Callback.objects.count() == 2
    response = staff_client.post(
        "/api/callbacks/delete-old/", {"days": 30, "include_undelivered": True}, format="json"
    )
    assert response.json() == {"deleted": 2}
    assert not Callback.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_delete_old_callbacks_runs_no_vacuum_inside_the_request(staff_client, make_hook):
    """Outside a transaction (no ATOMIC_REQUESTS) PostgreSQL would run VACUUM ANALYZE,
    which can take minutes on a big table: the command does it, the request does not."""
    make_hook()
    orders(1)
    Callback.objects.update(
        status=CallbackStatus.SENT, create_datetime=timezone.now() - datetime.timedelta(days=31)
    )
    with CaptureQueriesContext(connection) as queries:
        response = staff_client.post("/api/callbacks/delete-old/", {"days": 30}, format="json")
    assert response.json() == {"deleted": 1}
    assert not [q["sql"] for q in queries if "VACUUM" in q["sql"].upper()]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({}, id="days-missing"),
        pytest.param({"days": -1}, id="days-negative"),
        pytest.param({"days": "many"}, id="days-not-a-number"),
        pytest.param({"days": 10**9}, id="days-too-large"),
    ],
)
def test_delete_old_callbacks_refuses_bad_days(staff_client, make_hook, data):
    make_hook()
    orders(1)
    response = staff_client.post("/api/callbacks/delete-old/", data, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "days"
    assert Callback.objects.count() == 1


def test_unknown_uuid_filter_matches_nothing(staff_client, make_hook):
    make_hook()
    orders(1)
    assert listed(staff_client, event_id=str(uuid.uuid4())) == []


@pytest.mark.parametrize("query", ["?status=", "?hook=&status="], ids=["empty", "all-empty"])
def test_bulk_resend_with_empty_filter_values_is_refused(staff_client, make_hook, query):
    make_hook()
    Order.objects.create(name="x")
    Callback.objects.update(status="sent")
    response = staff_client.post(f"/api/callbacks/resend/{query}", {}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "blank"
    assert Callback.objects.get().status == "sent"


@pytest.mark.parametrize(
    ("url", "data"),
    [
        pytest.param("/api/callbacks/resend/", {"ids": [1], "callback_ids": [1]}, id="resend"),
        pytest.param("/api/callbacks/delete-old/", {"days": 0, "force": True}, id="delete-old"),
    ],
)
def test_action_bodies_refuse_unknown_keys(staff_client, make_hook, url, data):
    """A renamed or misspelt option is an error, never an option silently dropped."""
    make_hook()
    orders(1)
    Callback.objects.update(status="error")
    response = staff_client.post(url, data, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "unknown_field"
    assert Callback.objects.get().status == "error"


@override_settings(
    HTTP_HOOKS={
        "BLOCK_PRIVATE_NETWORKS": False,
        "TIMEOUT": (0.5, 0.5),
        "CONCURRENCY": 4,
        "HOOK_CONCURRENCY": 4,
    }
)
def test_send_starts_no_try_after_one_tries_time(staff_client, make_hook):
    """A receiver that never answers holds one web request for about two tries' time,
    not one wave of transfers after another through the whole batch."""
    hanging = Receiver().start()
    hanging.respond(hold=threading.Event())
    try:
        make_hook(target_url=hanging.url())
        orders(30)
        answer = send(staff_client)
    finally:
        hanging.stop()
    assert answer["mode"] == "sent"
    assert 0 < answer["total"] < 30
    assert answer["more"] is True
    assert max(Callback.objects.values_list("attempts", flat=True)) == 1
    assert Callback.objects.filter(status="sending").count() == 0


@pytest.mark.parametrize("bound", ["created_before", "updated_before"])
def test_list_callbacks_created_before_newest_first_by_creation_time(
    staff_client, make_hook, bound
):
    """With a bound on the creation time (``updated_before`` implies one), the cursor
    follows it: the second page starts where the first ended, even where ids and
    creation times disagree."""
    make_hook()
    callbacks = orders(4)
    now = timezone.now()
    for age, callback in zip([3, 1, 2, 4], callbacks, strict=True):
        created = now - datetime.timedelta(days=age)
        Callback.objects.filter(pk=callback.pk).update(
            create_datetime=created, update_datetime=created + datetime.timedelta(hours=1)
        )
    params = {bound: now.isoformat(), "page_size": 2}
    body = staff_client.get("/api/callbacks/", params).json()
    assert [c["id"] for c in body["results"]] == [callbacks[1].pk, callbacks[2].pk]
    following = staff_client.get(body["next"]).json()
    assert [c["id"] for c in following["results"]] == [callbacks[0].pk, callbacks[3].pk]
    assert following["next"] is None
    by_id = staff_client.get("/api/callbacks/", {**params, "ordering": "-id"}).json()
    assert [c["id"] for c in by_id["results"]] == [callbacks[3].pk, callbacks[2].pk]


def test_list_callbacks_refuses_a_forged_time_cursor(staff_client, make_hook):
    import base64

    make_hook()
    orders(1)
    for position in ("x", "2026-13-40"):
        cursor = base64.b64encode(f"p={position}".encode()).decode()
        response = staff_client.get(
            "/api/callbacks/", {"ordering": "-create_datetime", "cursor": cursor}
        )
        assert response.status_code == 404, position
