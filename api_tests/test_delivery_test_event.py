import datetime
import uuid

import pytest
from django.utils import timezone

from http_hooks.api import send_callbacks
from http_hooks.delivery import TEST_EVENT_TYPE, send_test_event
from http_hooks.models import Callback

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


def test_a_test_event_whose_process_died_is_not_tried_again(make_hook, receiver):
    """A web worker killed mid-test (a timeout, the OOM killer, a deploy) leaves its test
    event ``sending``: the sender that takes it over ends it, unsent, not as a retry
    that would answer nothing and count against the hook."""
    hook = make_hook()
    Callback.objects.create(
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
    report = send_callbacks()
    assert report.total == 0
    assert receiver.requests == []
    callback = Callback.objects.get()
    assert (callback.status, callback.attempts, callback.claim_token) == ("error", 0, None)
    assert callback.status_details.startswith("not sent again: a test event is tried once")
    hook.refresh_from_db()
    assert hook.consecutive_failures == 0
