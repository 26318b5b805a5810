import datetime
import threading
import uuid

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from http_hooks.api import resend_callbacks, send_callbacks
from http_hooks.delivery import TEST_EVENT_TYPE, send_test_event
from http_hooks.models import Callback
from http_hooks.settings import hooks_settings

from .test_delivery import refused_url

pytestmark = pytest.mark.django_db


def test_test_event_is_delivered_now_and_returns_its_attempt(make_hook, receiver):
    hook = make_hook(name="orders", headers={"X-Team": "shop"})
    attempt = send_test_event(hook)
    (request,) = receiver.wait_for(1)
    assert request.json()["event_type"] == TEST_EVENT_TYPE
    assert request.json()["hook_id"] == hook.pk
    assert request.headers["x-team"] == "shop"
    assert request.headers["webhook-id"] == str(attempt.callback.event_id)
    assert attempt.response_status == 200
    assert attempt.error == ""
    callback = Callback.objects.get()
    assert (callback.event_type, callback.status, callback.attempts) == (TEST_EVENT_TYPE, "sent", 1)


def test_failed_test_event_is_not_retried(make_hook, receiver):
    receiver.respond(status=500)
    attempt = send_test_event(make_hook())
    assert attempt.response_status == 500
    assert attempt.error == "HTTP 500"
    assert Callback.objects.get().status == "error"


@pytest.mark.parametrize(
    "receiver_does, error",
    [
        ({"status": 503}, "HTTP 503"),
        ({"status": 503, "headers": {"Retry-After": "120"}}, "HTTP 503"),
        ({"hold": "until the read timeout"}, "read timeout (1 s)"),
        ({"refuse": True}, "connection error: Connection refused"),
    ],
    ids=["503", "503-retry-after", "hangs", "refuses"],
)
def test_a_failed_test_event_ends_in_error_with_its_attempt_through_the_api(
    make_hook, receiver, staff_client, receiver_does, error
):
    """Tried once: whatever the receiver does, the callback ends ``error`` (never left
    ``sending``, nor waiting for a retry or a Retry-After), its one attempt logged, and
    the API answers 200 with that attempt."""
    hold = threading.Event()
    target = refused_url() if receiver_does.pop("refuse", False) else receiver.url()
    if receiver_does.pop("hold", None):
        receiver_does["hold"] = hold
    receiver.respond(**receiver_does)
    hook = make_hook(target_url=target)
    try:
        with override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, "TIMEOUT": (5, 1)}):
            response = staff_client.post(f"/api/hooks/{hook.pk}/test/")
    finally:
        hold.set()
    assert response.status_code == 200, response.json()
    assert response.json()["error"].startswith(error)
    callback = Callback.objects.get()
    assert (callback.status, callback.attempts, callback.claimed_until) == ("error", 1, None)
    assert callback.status_details.startswith(error)
    (attempt,) = callback.attempt_log.all()
    assert attempt.pk == response.json()["id"]


def test_a_test_events_answer_counts_for_the_hooks_health(make_hook, receiver):
    """As any try's, documented: a failure counts toward the breaker, a success resets
    the count, a 410 disables the hook."""
    hook = make_hook()
    receiver.respond(status=500)
    send_test_event(hook)
    hook.refresh_from_db()
    assert hook.consecutive_failures == 1
    receiver.respond(status=204)
    send_test_event(hook)
    hook.refresh_from_db()
    assert hook.consecutive_failures == 0
    receiver.respond(status=410)
    send_test_event(hook)
    hook.refresh_from_db()
    assert (hook.enabled, hook.disabled_reason) == (False, "gone")


def left_behind_test_event(hook) -> Callback:
    """A test event whose process died mid-try: ``sending``, its lease run out."""
    return Callback.objects.create(
        hook=hook,
        event_type=TEST_EVENT_TYPE,
        target_url=hook.target_url,
        http_method="POST",
        payload="{}",
        content_type="application/json",
        status="sending",
        claim_token=uuid.uuid4(),
        claimed_until=timezone.now() - datetime.timedelta(seconds=1),
    )


def test_a_test_event_whose_process_died_is_not_tried_again(make_hook, receiver):
    """A web worker killed mid-test (a timeout, the OOM killer, a deploy) leaves its test
    event ``sending``: the sender that takes it over ends it, unsent, not as a retry
    that would answer nothing and count against the hook."""
    hook = make_hook()
    left_behind_test_event(hook)
    report = send_callbacks()
    assert report.total == 0
    assert receiver.requests == []
    callback = Callback.objects.get()
    assert (callback.status, callback.attempts, callback.claim_token) == ("error", 0, None)
    assert callback.status_details.startswith("not sent again: a test event is tried once")
    hook.refresh_from_db()
    assert hook.consecutive_failures == 0


def test_a_test_event_resent_by_hand_goes_out_like_any_callback(make_hook, receiver):
    receiver.respond(status=500)
    hook = make_hook()
    send_test_event(hook)
    receiver.respond()
    assert resend_callbacks(ids=[Callback.objects.get().pk]) == 1
    assert send_callbacks().sent == 1
    assert len(receiver.requests) == 2
    assert Callback.objects.get().status == "sent"


@pytest.mark.django_db(transaction=True)
def test_a_test_event_is_leased_past_its_one_try_however_short_the_lease(make_hook, receiver):
    """No lease keeper renews it: with a lease shorter than its try, a sender running
    beside it ended it as left behind while its request was out (and the test's
    caller got no attempt)."""
    hold = threading.Event()
    receiver.respond(hold=hold)
    with override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, "LEASE_SECONDS": 1}):
        hook = make_hook()
        attempts = []

        def test_in_a_thread() -> None:
            try:
                attempts.append(send_test_event(hook))
            finally:
                connection.close()  # the thread's own: left open, it outlives the test

        tester = threading.Thread(target=test_in_a_thread)
        tester.start()
        try:
            receiver.wait_for(1)
            callback = Callback.objects.get()
            try_takes = hooks_settings.connect_timeout + hooks_settings.read_timeout
            assert callback.claimed_until >= callback.create_datetime + datetime.timedelta(
                seconds=1 + try_takes
            )
            assert send_callbacks().total == 0
            assert Callback.objects.get().status == "sending"
        finally:
            hold.set()
            tester.join(timeout=60)
    (attempt,) = attempts
    assert attempt.response_status == 200
    assert Callback.objects.get().status == "sent"


@pytest.mark.django_db(transaction=True)
def test_a_hook_deleted_while_its_test_event_is_out_is_a_404_not_a_500(
    make_hook, receiver, staff_client
):
    """Its callback goes with it, so no attempt is kept: the API says the hook is gone,
    as for any deleted hook, instead of failing to return the attempt."""
    hold = threading.Event()
    receiver.respond(hold=hold)
    hook = make_hook()
    staff_client.raise_request_exception = False  # a 500 is an answer here
    responses = []

    def test_in_a_thread() -> None:
        try:
            responses.append(staff_client.post(f"/api/hooks/{hook.pk}/test/"))
        finally:
            connection.close()

    tester = threading.Thread(target=test_in_a_thread)
    tester.start()
    try:
        receiver.wait_for(1)
        hook.delete()
    finally:
        hold.set()
        tester.join(timeout=30)
    (response,) = responses
    assert response.status_code == 404, response.content
    assert not Callback.objects.exists()
