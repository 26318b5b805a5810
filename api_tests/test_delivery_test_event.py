import pytest

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
