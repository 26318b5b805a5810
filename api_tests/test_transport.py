"""What goes on the wire: each request as its hook says, and nothing libcurl would add.

Every case sends to the real receiver on 127.0.0.1 and looks at what arrived.
"""

import socket

import pytest

from http_hooks.api import send_callbacks
from http_hooks.models import Attempt, Callback
from shop.models import Order

pytestmark = pytest.mark.django_db


def test_a_request_carries_only_the_headers_it_is_given(make_hook, receiver):
    """No Accept, no Expect: 100-continue for a large body, no form Content-Type."""
    make_hook(
        payload_template='{"note": "{{ instance.name }}", "pad": "' + "x" * 5000 + '"}',
        content_type="",
    )
    Order.objects.create(name="Tea")
    assert send_callbacks().sent == 1
    (request,) = receiver.requests
    assert set(request.headers) == {
        "host",
        "user-agent",
        "accept-encoding",
        "content-length",
        "webhook-id",
        "webhook-timestamp",
    }
    assert request.body == Callback.objects.get().payload.encode()
    assert len(request.body) > 5000


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "GET"])
def test_every_method_sends_the_payload(make_hook, receiver, method):
    make_hook(http_method=method, content_type="application/json")
    Order.objects.create(name="Tea")
    assert send_callbacks().sent == 1
    (request,) = receiver.requests
    assert request.method == method
    assert request.json()["object_serialization"]["name"] == "Tea"
    assert request.headers["content-type"] == "application/json"


def test_a_request_without_a_payload_sends_no_body(make_hook, receiver):
    make_hook(http_method="GET")
    Order.objects.create(name="Tea")
    Callback.objects.update(payload="")
    assert send_callbacks().sent == 1
    (request,) = receiver.requests
    assert request.method == "GET"
    assert request.body == b""
    assert "content-length" not in request.headers


def test_header_values_arrive_as_given(make_hook, receiver):
    make_hook(headers={"X-Empty": "", "X-Spaces": "  ", "X-Name": "café", "X-Colon": "a: b"})
    Order.objects.create(name="Tea")
    assert send_callbacks().sent == 1
    headers = receiver.requests[0].headers
    assert headers["x-empty"] == ""
    assert headers["x-spaces"] == ""
    assert headers["x-name"] == "café"
    assert headers["x-colon"] == "a: b"


def test_a_hook_header_replaces_ours_whatever_its_case(make_hook, receiver):
    make_hook(headers={"user-agent": "shop/1.0", "ACCEPT-ENCODING": "gzip"})
    Order.objects.create(name="Tea")
    assert send_callbacks().sent == 1
    headers = receiver.requests[0].headers
    assert headers["user-agent"] == "shop/1.0"
    assert headers["accept-encoding"] == "gzip"


def test_a_non_ascii_path_is_percent_encoded(make_hook, receiver):
    make_hook(target_url=receiver.url("/hooks/bücher?q=ü"))
    Order.objects.create(name="Tea")
    assert send_callbacks().sent == 1
    assert receiver.requests[0].path == "/hooks/b%C3%BCcher"


def test_proxies_from_the_environment_are_not_used(make_hook, receiver, monkeypatch):
    """Where a request goes is decided by its hook alone."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, nowhere)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    make_hook()
    Order.objects.create(name="Tea")
    assert send_callbacks().sent == 1
    assert len(receiver.requests) == 1


def test_one_bad_request_does_not_stop_the_batch(make_hook, receiver):
    make_hook()
    Order.objects.create(name="a")
    Order.objects.create(name="b")
    first = Callback.objects.order_by("pk").first()
    # A host name IDNA cannot encode (a label longer than 63 characters).
    Callback.objects.filter(pk=first.pk).update(target_url=f"http://{'ü' * 70}.example/hook")
    report = send_callbacks()
    assert (report.sent, report.retried) == (1, 1)
    assert Attempt.objects.get(callback=first).error.startswith("invalid request: ")
    assert len(receiver.requests) == 1
