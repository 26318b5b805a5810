"""The REST API of explicit events: POST /api/events/, GET /api/event-types/, and a
hook's event_types through /api/hooks/ and the admin."""

import decimal
import json

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.test import override_settings
from django.urls import reverse
from rest_framework.test import APIClient

from http_hooks.api import create_hook, send_event
from http_hooks.models import Callback, Hook

pytestmark = pytest.mark.django_db

POST_SAVE = "django.db.models.signals.post_save"
POST_DELETE = "django.db.models.signals.post_delete"


def client_with(*permissions, staff=False, name="user"):
    user = User.objects.create_user(name, is_staff=staff)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = APIClient()
    client.force_authenticate(User.objects.get(pk=user.pk))
    return client


def error(response, status, field=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "detail", "errors"}
    if field is not None:
        assert [e["field"] for e in body["errors"]] == [field]
    return body


@pytest.fixture
def event_hook(receiver):
    def make(*event_types, **kwargs):
        return create_hook(event_types=list(event_types), target_url=receiver.url(), **kwargs)

    return make


# --- POST /api/events/ ---------------------------------------------------------


def test_send_event_answers_202_with_the_callback_ids(staff_client, event_hook):
    first, second = event_hook("order.*"), event_hook("order.paid")
    event_hook("invoice.*")
    response = staff_client.post(
        "/api/events/",
        {"event_type": "order.paid", "payload": {"id": 1, "total": "9.90"}, "key": "1"},
        format="json",
    )
    assert response.status_code == 202, response.content
    ids = response.json()["ids"]
    callbacks = list(Callback.objects.order_by("id"))
    assert ids == [c.pk for c in callbacks]
    assert [c.hook_id for c in callbacks] == [first.pk, second.pk]
    assert json.loads(callbacks[0].payload)["data"] == {"id": 1, "total": "9.90"}
    assert callbacks[0].object_id == "1"


def test_an_event_no_hook_takes_is_a_202_with_no_ids(staff_client):
    response = staff_client.post(
        "/api/events/", {"event_type": "order.paid", "payload": None}, format="json"
    )
    assert (response.status_code, response.json()) == (202, {"ids": []})


@pytest.mark.parametrize(
    "body, field",
    [
        ({"event_type": "Order.Paid", "payload": {}}, "event_type"),
        ({"event_type": "order.*", "payload": {}}, "event_type"),
        ({"event_type": "x" * 201, "payload": {}}, "event_type"),
        ({"event_type": 7, "payload": {}}, "event_type"),
        ({"payload": {}}, "event_type"),
        ({"event_type": "order.paid"}, "payload"),
        ({"event_type": "order.paid", "payload": {}, "key": 7}, "key"),
        ({"event_type": "order.paid", "payload": {}, "key": "k" * 256}, "key"),
        ({"event_type": "order.paid", "payload": {}, "key": "a\x00"}, "key"),
        ({"event_type": "order.paid", "payload": {"x": "a\x00"}}, "payload"),
        ({"event_type": "order.paid", "payload": {"x": "\ud800"}}, "payload"),
        ({"event_type": "order.paid", "payload": {}, "key": "\udfff"}, "key"),
        ({"event_type": "order.paid", "payload": {}, "key": "7\r\n8"}, "key"),
        ({"event_type": "order.paid", "payload": {}, "key": "7\u200b"}, "key"),
        ({"event_type": "order.paid", "payload": {}, "owner": 7}, "owner"),
        ({"event_type": "order.paid", "payload": {}, "hook": 1}, "hook"),
    ],
    ids=[
        "uppercase",
        "wildcard",
        "too-long",
        "number",
        "no-type",
        "no-payload",
        "key-number",
        "key-too-long",
        "key-nul",
        "payload-nul",
        "payload-surrogate",
        "key-surrogate",
        "key-line-break",
        "key-zero-width-space",
        "owner-number",
        "unknown-field",
    ],
)
def test_bad_events_are_400s_and_store_nothing(staff_client, event_hook, body, field):
    event_hook("*")
    # As text: escapes such as a lone surrogate's stay escapes on the way.
    response = staff_client.post("/api/events/", json.dumps(body), content_type="application/json")
    error(response, 400, field)
    assert not Callback.objects.exists()


def test_a_body_that_is_not_json_is_a_400_or_415(staff_client):
    response = staff_client.post("/api/events/", "{", content_type="application/json")
    error(response, 400)
    response = staff_client.post("/api/events/", "x", content_type="text/plain")
    error(response, 415)


@pytest.mark.parametrize("word", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("shape", ['{{"x": {}}}', "[1, {}]", "{}"], ids=["object", "list", "bare"])
def test_a_non_finite_number_in_a_payload_is_a_400(staff_client, event_hook, word, shape):
    """JSON has no such words: no strict receiver could parse the body they would make."""
    event_hook("*")
    body = '{"event_type": "order.paid", "payload": ' + shape.format(word) + "}"
    response = staff_client.post("/api/events/", body, content_type="application/json")
    assert error(response, 400)["code"] == "parse_error"
    assert not Callback.objects.exists()


# Fractions no float holds as written, and how the payload's JSON writes them back: the
# same digits (``Decimal``'s spelling of an exponent, 1E-400, and the sign of -0.0 kept).
EXACT = (
    '{"amount": 12345678901234567.89, "rate": 0.10, "fine": 0.1000000000000000000000000001, '
    '"list": [2.50, -0.0, 1e-400]}'
)
EXACT_AS_SENT = EXACT.replace("1e-400", "1E-400")


def test_a_payloads_fractions_keep_the_clients_digits(staff_client, event_hook):
    """DRF's parser made them floats: 12345678901234567.89 was stored (and sent) as
    1.2345678901234568e+16, 0.10 as 0.1. The same payload from Python (``send_event``
    with decimals) is stored alike."""
    event_hook("*")
    body = '{"event_type": "order.paid", "payload": ' + EXACT + "}"
    response = staff_client.post("/api/events/", body, content_type="application/json")
    assert response.status_code == 202, response.content
    from_rest = Callback.objects.get(pk=response.json()["ids"][0])
    assert f'"data": {EXACT_AS_SENT}}}' in from_rest.payload
    (from_python,) = send_event("order.paid", json.loads(EXACT, parse_float=decimal.Decimal))
    assert from_python.payload.split('"data": ')[1] == from_rest.payload.split('"data": ')[1]


def test_conditions_on_a_payload_test_its_exact_fractions(staff_client, event_hook):
    """A condition sees the payload as the receiver will: 0.30 is 0.3, and
    12345678901234567.89 is not 12345678901234568 (as a float it was)."""
    event_hook("*", conditions={"rate": 0.3, "amount__lt": 12345678901234568})
    for amount, taken in [("12345678901234567.89", True), ("12345678901234568.00", False)]:
        payload = '{"rate": 0.30, "amount": ' + amount + "}"
        body = '{"event_type": "order.paid", "payload": ' + payload + "}"
        response = staff_client.post("/api/events/", body, content_type="application/json")
        assert (response.status_code, len(response.json()["ids"])) == (202, int(taken))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_rest_events_fractions_reach_the_receiver_as_the_client_wrote_them(
    live_server, receiver, settings
):
    """Over real HTTP at both ends: the event's bytes posted to the running server, sent
    by ``POST /api/callbacks/send/``, and the bytes the receiver got hold the client's
    digits, in the default body and where a template places the payload's values."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    User.objects.create_user("sender", password="sender-password", is_staff=True)
    create_hook(event_types=["order.paid"], target_url=receiver.url("/default"))
    create_hook(
        event_types=["order.paid"],
        target_url=receiver.url("/template"),
        content_type="application/json",
        payload_template='{"amount": {{payload.amount}}, "rate": "{{payload.rate}}", '
        '"list": {{payload.list}}}',
    )
    body = '{"event_type": "order.paid", "payload": ' + EXACT + "}"
    with requests.Session() as session:
        session.auth = ("sender", "sender-password")
        response = session.post(
            f"{live_server.url}/api/events/",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        response = session.post(f"{live_server.url}/api/callbacks/send/", json={}, timeout=30)
        assert (response.status_code, response.json()["sent"]) == (200, 2), response.text

    received = {request.path: request.body for request in receiver.wait_for(2)}
    assert f'"data": {EXACT_AS_SENT}}}'.encode() in received["/default"]
    assert received["/template"] == (
        b'{"amount": 12345678901234567.89, "rate": "0.10", "list": [2.50, -0.0, 1E-400]}'
    )


@pytest.mark.parametrize(
    "body, key",
    [
        ('{"event_type": "order.paid", "payload": {"a": 1, "a": 2}}', "a"),
        ('{"event_type": "order.paid", "payload": [{"x": {"a": 1, "b": 2, "a": 1}}]}', "a"),
        ('{"event_type": "order.paid", "payload": {}, "key": "1", "key": "2"}', "key"),
        (
            '{"event_type": "order.paid", "event_type": "order.refunded", "payload": {}}',
            "event_type",
        ),
    ],
    ids=["payload", "nested-same-value", "key", "event-type"],
)
def test_a_key_given_twice_is_a_400(staff_client, event_hook, body, key):
    """Python's ``json`` kept the last value and dropped the other without a word."""
    event_hook("*")
    response = staff_client.post("/api/events/", body, content_type="application/json")
    assert error(response, 400) == {
        "code": "parse_error",
        "detail": f"JSON parse error - an object has the key '{key}' twice in JSON",
        "errors": [],
    }
    assert not Callback.objects.exists()


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1.8e308", "1e9999999999999999999"])
@pytest.mark.parametrize("shape", ['{{"x": {}}}', "[1, {}]", "{}"], ids=["object", "list", "bare"])
def test_a_number_no_double_holds_is_a_400(staff_client, event_hook, number, shape):
    """A float read it as infinity (a 400 that blamed the payload's JSON); a decimal
    would keep it, and send a number that receivers read as infinity."""
    event_hook("*")
    body = '{"event_type": "order.paid", "payload": ' + shape.format(number) + "}"
    response = staff_client.post("/api/events/", body, content_type="application/json")
    assert error(response, 400) == {
        "code": "parse_error",
        "detail": f"JSON parse error - the number '{number}' is out of range (a double's "
        "largest is about 1.8e308)",
        "errors": [],
    }
    assert not Callback.objects.exists()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
@pytest.mark.parametrize(
    "payload", [{"x": "y" * 1000}, ["y" * 1000], "y" * 1000], ids=["object", "list", "text"]
)
def test_a_body_over_the_upload_limit_is_a_413_whatever_the_payloads_shape(
    staff_client, event_hook, payload
):
    event_hook("*")
    body = json.dumps({"event_type": "order.paid", "payload": payload})
    response = staff_client.post("/api/events/", body, content_type="application/json")
    assert error(response, 413)["code"] == "request_too_large"
    assert not Callback.objects.exists()


def test_sending_needs_the_send_event_permission(event_hook):
    event_hook("*")
    body = {"event_type": "order.paid", "payload": {}}
    assert APIClient().post("/api/events/", body, format="json").status_code in (401, 403)
    plain = client_with("add_callback", "change_callback", "add_hook", name="plain")
    error(plain.post("/api/events/", body, format="json"), 403)
    assert not Callback.objects.exists()
    allowed = client_with("send_event", name="sender")
    event_hook("*", owner=User.objects.get(username="sender"))
    assert allowed.post("/api/events/", body, format="json").status_code == 202
    assert Callback.objects.count() == 1


def test_a_tenant_sends_as_their_owner_staff_name_any(event_hook):
    ada = User.objects.create_user("ada")
    shared = event_hook("order.*")
    adas = event_hook("order.*")
    adas.owner = str(ada.pk)
    adas.save()
    body = {"event_type": "order.paid", "payload": {}, "owner": str(ada.pk)}

    # A user who acts for no owner (the default resolver: themself) cannot name Ada.
    sender = client_with("send_event", name="sender")
    error(sender.post("/api/events/", body, format="json"), 400, "owner")
    assert not Callback.objects.exists()
    # As themself they reach their own hooks only: none here, never the project's.
    del body["owner"]
    assert sender.post("/api/events/", body, format="json").json()["ids"] == []

    body["owner"] = str(ada.pk)
    overseer = client_with("send_event", "view_all_hooks", name="overseer")
    ids = overseer.post("/api/events/", body, format="json").json()["ids"]
    callbacks = Callback.objects.filter(pk__in=ids).order_by("id")
    assert list(callbacks.values_list("hook_id", "owner")) == [
        (shared.pk, ""),
        (adas.pk, str(ada.pk)),
    ]
    # An owner that does not exist is a 400, as for a hook: not an event that reaches
    # the project's hooks only.
    body["owner"] = "999999"
    error(overseer.post("/api/events/", body, format="json"), 400, "owner")
    assert Callback.objects.count() == 2


# --- GET /api/event-types/ -----------------------------------------------------


@override_settings(
    HTTP_HOOKS={
        **settings.HTTP_HOOKS,
        "EVENT_TYPES": {"order.paid": "An order was paid", "order.refunded": ""},
    }
)
def test_event_types_lists_declared_subscribed_and_model_signal_types(
    staff_client, event_hook, make_hook
):
    event_hook("order.paid", "invoice.sent", "order.*", "*")
    make_hook(signals=[POST_SAVE, POST_DELETE])
    make_hook(signals=["shop.signals.order_shipped"])
    response = staff_client.get("/api/event-types/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 7
    assert {t["name"]: (t["description"], t["sources"]) for t in body["results"]} == {
        "invoice.sent": ("", ["subscribed"]),
        "order.paid": ("An order was paid", ["declared", "subscribed"]),
        "order.refunded": ("", ["declared"]),
        "shop.order.created": ("", ["model_signal"]),
        "shop.order.updated": ("", ["model_signal"]),
        "shop.order.deleted": ("", ["model_signal"]),
        "shop.signals.order_shipped": ("", ["model_signal"]),
    }
    assert [t["name"] for t in body["results"]] == sorted(t["name"] for t in body["results"])


def test_event_types_are_paginated(staff_client, event_hook):
    event_hook(*(f"e{i:02}" for i in range(30)))
    first = staff_client.get("/api/event-types/", {"page_size": 20}).json()
    second = staff_client.get(first["next"]).json()
    assert [t["name"] for t in first["results"] + second["results"]] == [
        f"e{i:02}" for i in range(30)
    ]
    error(staff_client.get("/api/event-types/", {"page_size": 0}), 400)


def test_event_types_need_the_view_hook_permission():
    error(client_with("send_event", name="sender").get("/api/event-types/"), 403)
    assert client_with("view_hook", name="viewer").get("/api/event-types/").status_code == 200


# --- hooks with event types ----------------------------------------------------


def test_a_hook_with_event_types_only_is_created_and_shown(staff_client, receiver):
    response = staff_client.post(
        "/api/hooks/",
        {"event_types": ["order.*", "invoice.paid"], "target_url": receiver.url()},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["model"], body["signals"], body["event_types"]) == (
        None,
        [],
        ["order.*", "invoice.paid"],
    )
    hook = Hook.objects.get()
    response = staff_client.patch(f"/api/hooks/{hook.pk}/", {"event_types": ["Bad"]}, format="json")
    assert "event_types" in [e["field"] for e in error(response, 400)["errors"]]
    hook.refresh_from_db()
    assert hook.event_types == ["order.*", "invoice.paid"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "model"),
        ({"model": None}, "model"),
        ({"event_types": "order.paid"}, "event_types"),
        ({"event_types": ["order.*.x"]}, "event_types"),
        ({"event_types": [f"e{i}" for i in range(51)]}, "event_types"),
        ({"event_types": ["a"], "changed_fields": ["name"]}, "changed_fields"),
        ({"event_types": ["a"], "payload_template": "{{instance.id}}"}, "payload_template"),
    ],
    ids=[
        "neither",
        "null-model",
        "string",
        "inner-wildcard",
        "too-many",
        "changed-fields",
        "instance-template",
    ],
)
def test_bad_hooks_with_event_types_are_400s(staff_client, receiver, body, field):
    response = staff_client.post(
        "/api/hooks/", {"target_url": receiver.url(), **body}, format="json"
    )
    assert field in [e["field"] for e in error(response, 400)["errors"]]
    assert not Hook.objects.exists()


def test_hooks_filter_by_the_event_types_they_take(staff_client, event_hook, make_hook):
    exact, prefix, everything = event_hook("order.paid"), event_hook("order.*"), event_hook("*")
    event_hook("order.paid.late", "invoice.*")
    on_model = make_hook()

    def listed(**params):
        response = staff_client.get("/api/hooks/", params)
        assert response.status_code == 200, response.content
        return [hook["id"] for hook in response.json()["results"]]

    assert listed(event_type="order.paid") == [exact.pk, prefix.pk, everything.pk]
    assert listed(event_type="order.*") == [prefix.pk, everything.pk]
    assert listed(event_type="*") == [everything.pk]
    assert listed(has_model="true") == [on_model.pk]
    assert on_model.pk not in listed(has_model="false")
    for bad in ["Order", 'a"b', "a.*.b", "x" * 201]:
        body = error(staff_client.get("/api/hooks/", {"event_type": bad}), 400)
        assert {e["field"] for e in body["errors"]} == {"event_type"}


def test_a_hook_with_event_types_only_takes_a_test_event(staff_client, event_hook, receiver):
    hook = event_hook("order.*")
    response = staff_client.post(f"/api/hooks/{hook.pk}/test/")
    assert (response.status_code, response.json()["response_status"]) == (200, 200)
    (request,) = receiver.wait_for(1)
    assert request.json()["event_type"] == "http_hooks.test"


# --- the admin -----------------------------------------------------------------


def test_the_admin_creates_a_hook_with_event_types_only(admin_client, receiver):
    response = admin_client.post(
        reverse("admin:http_hooks_hook_add"),
        {
            "name": "events",
            "event_types": "order.*, invoice.paid",
            "target_url": receiver.url(),
            "http_method": "POST",
            "content_type": "",
            "enabled": "on",
            "sign": "on",
            "conditions": "{}",
        },
    )
    assert response.status_code == 200
    hook = Hook.objects.get()
    assert hook.secret in response.text  # the page showing it once, not the form again
    assert (hook.model, hook.event_types) == (None, ["order.*", "invoice.paid"])
    changelist = admin_client.get(reverse("admin:http_hooks_hook_changelist"))
    assert "order.*, invoice.paid" in changelist.content.decode()


def test_the_admin_refuses_bad_event_types_with_a_form_error(admin_client, receiver):
    response = admin_client.post(
        reverse("admin:http_hooks_hook_add"),
        {
            "event_types": "order.*, Bad!",
            "target_url": receiver.url(),
            "http_method": "POST",
            "conditions": "{}",
        },
    )
    assert response.status_code == 200
    assert "Bad!" in " ".join(response.context["adminform"].form.errors["event_types"])
    assert not Hook.objects.exists()
