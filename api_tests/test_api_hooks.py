"""REST API: /api/hooks/ (CRUD, filters, test and rotate-secret actions)."""

from __future__ import annotations

import pytest
from django.test import override_settings
from standardwebhooks import Webhook

from http_hooks.api import send_callbacks
from http_hooks.headers import MASKED
from http_hooks.models import Callback, Hook
from shop.models import Order

pytestmark = pytest.mark.django_db

POST_SAVE = "django.db.models.signals.post_save"
POST_DELETE = "django.db.models.signals.post_delete"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def hook_data():
    return {
        "name": "orders",
        "model": "shop.order",
        "signals": [POST_SAVE],
        "target_url": "http://127.0.0.1:9/hook",
        "content_type": "application/json",
    }


def create(client, data):
    return client.post("/api/hooks/", data, format="json")


def assert_no_secret(response):
    """Neither the secret nor the previous one appears in an answer."""
    body = response.content.decode()
    assert 'previous_secret"' not in body
    for hook in Hook.objects.all():
        for secret in (hook.secret, hook.previous_secret):
            if secret:
                assert secret not in body


# --- create ----------------------------------------------------------------------


def test_create_hook_answers_with_a_generated_secret(staff_client, hook_data):
    response = create(staff_client, hook_data)
    assert response.status_code == 201, response.json()
    body = response.json()
    hook = Hook.objects.get()
    assert body["id"] == hook.pk
    assert body["model"] == "shop.order"
    assert body["signals"] == [POST_SAVE]
    assert body["has_secret"] is True
    assert body["secret"].startswith("whsec_")
    assert body["secret"] == hook.secret
    assert hook.name == "orders"
    assert hook.content_type == "application/json"


def test_create_hook_keeps_a_given_secret(staff_client, hook_data):
    response = create(staff_client, {**hook_data, "secret": SECRET})
    assert response.status_code == 201
    assert response.json()["secret"] == SECRET
    assert Hook.objects.get().secret == SECRET


def test_create_hook_accepts_headers_as_object(staff_client, hook_data):
    headers = {"X-Token": "12345", "X-Link": "https://example.com/a"}
    response = create(staff_client, {**hook_data, "headers": headers})
    assert response.status_code == 201
    assert response.json()["headers"] == {"X-Token": MASKED, "X-Link": "https://example.com/a"}
    assert Hook.objects.get().headers == headers


def test_create_hook_accepts_legacy_header_text(staff_client, hook_data):
    response = create(staff_client, {**hook_data, "headers": "X-Team: 12345\r\nX-Other: a:b"})
    assert response.status_code == 201
    assert response.json()["headers"] == {"X-Team": "12345", "X-Other": "a:b"}


@pytest.mark.parametrize(
    "value", [5, 1.5, True, None, [], {}], ids=["int", "float", "bool", "null", "list", "object"]
)
def test_header_values_in_an_object_must_be_strings(staff_client, hook_data, value):
    """The schema says an object of strings; anything else is a 400, not a header."""
    response = create(staff_client, {**hook_data, "headers": {"X-Team": value}})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "headers"
    assert not Hook.objects.exists()


@pytest.mark.parametrize(
    "headers",
    [{"X-Team": "a", "x-team": "b"}, "X-Team: a\r\nx-team: b", "X-Team: a\nX-Team: b"],
    ids=["object", "text", "text-same-case"],
)
def test_a_header_name_given_twice_is_refused(staff_client, hook_data, headers):
    """Names ignore case: both would go out, and a masked update could keep either."""
    response = create(staff_client, {**hook_data, "headers": headers})
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["field"] == "headers"
    assert "given twice" in error["message"]
    assert not Hook.objects.exists()


def test_hook_created_through_the_api_fires_and_signs(staff_client, hook_data, receiver):
    secret = create(staff_client, {**hook_data, "target_url": receiver.url()}).json()["secret"]
    order = Order.objects.create(name="A")
    assert send_callbacks().sent == 1
    (request,) = receiver.wait_for(1)
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["object_id"] == order.pk
    assert payload["event_type"] == "created"


# --- bad input -------------------------------------------------------------------

BAD_HOOKS = [
    pytest.param(
        {"target_url": "ftp://example.com/x"}, "target_url", "invalid_target_url", id="url-not-http"
    ),
    pytest.param(
        {"target_url": "/relative"}, "target_url", "invalid_target_url", id="url-relative"
    ),
    pytest.param(
        {"target_url": "http://e.com/" + "a" * 2000}, "target_url", "max_length", id="url-too-long"
    ),
    pytest.param({"target_url": 42}, "target_url", "invalid", id="url-a-number"),
    pytest.param({"name": 42}, "name", "invalid", id="name-a-number"),
    pytest.param({"enabled": 1}, "enabled", "invalid", id="enabled-a-number"),
    pytest.param(
        {"signals": ["no.such.signal"]}, "signals", "invalid_signal", id="signal-does-not-import"
    ),
    pytest.param(
        {"signals": ["django.db.models.Model"]},
        "signals",
        "invalid_signal",
        id="signal-not-a-signal",
    ),
    pytest.param({"signals": []}, "signals", "invalid_signal", id="signals-empty"),
    pytest.param({"signals": POST_SAVE}, "signals", "not_a_list", id="signals-a-string"),
    pytest.param({"signals": [{"path": POST_SAVE}]}, "signals.0", "invalid", id="signal-an-object"),
    pytest.param(
        {"headers": "Bad Header: x"}, "headers", "invalid_headers", id="header-name-not-a-token"
    ),
    pytest.param(
        {"headers": "no colon here"}, "headers", "invalid_headers", id="header-line-malformed"
    ),
    pytest.param(
        {"headers": {"X-A": "a\r\nX-Injected: b"}},
        "headers",
        "invalid_headers",
        id="header-value-with-crlf",
    ),
    pytest.param({"headers": ["X-A: b"]}, "headers", "invalid_headers", id="headers-a-list"),
    pytest.param(
        {"headers": {f"X-{i}": "v" for i in range(101)}},
        "headers",
        "invalid_headers",
        id="headers-too-many",
    ),
    pytest.param(
        {"payload_template": '{"id": {{instance.id}}'},
        "payload_template",
        "invalid_payload",
        id="template-not-json",
    ),
    pytest.param(
        {"payload_template": "<a>{{instance.id}}</b>", "content_type": "application/xml"},
        "payload_template",
        "invalid_payload",
        id="template-not-xml",
    ),
    pytest.param(
        {"payload_template": '{"x": "{{instance.nope}}"}'},
        "payload_template",
        "invalid_payload",
        id="template-unknown-attribute",
    ),
    pytest.param(
        {"payload_template": "x" * 100_001},
        "payload_template",
        "max_length",
        id="template-too-long",
    ),
    pytest.param(
        {"serializer_class": "shop.serializers.Nope"},
        "serializer_class",
        "invalid_payload",
        id="serializer-does-not-import",
    ),
    pytest.param(
        {"serializer_class": "shop.models.Order"},
        "serializer_class",
        "invalid_payload",
        id="serializer-not-a-serializer",
    ),
    pytest.param({"model": "shop.nope"}, "model", "invalid_model", id="model-unknown"),
    pytest.param(
        {"model": "http_hooks.callback"}, "model", "invalid_model", id="model-of-http-hooks"
    ),
    pytest.param({"model": ["shop.order"]}, "model", "invalid", id="model-a-list"),
    pytest.param({"http_method": "FETCH"}, "http_method", "invalid_choice", id="method-unknown"),
    pytest.param(
        {"content_type": "application/pdf"},
        "content_type",
        "invalid_choice",
        id="content-type-unknown",
    ),
    pytest.param({"enabled": "maybe"}, "enabled", "invalid", id="enabled-not-a-boolean"),
    pytest.param({"name": "n" * 201}, "name", "max_length", id="name-too-long"),
    pytest.param({"secret": "abc"}, "secret", "invalid_hook", id="secret-without-prefix"),
    pytest.param({"secret": "whsec_c2hvcnQ="}, "secret", "invalid_hook", id="secret-too-short"),
]


@pytest.mark.parametrize(("changes", "field", "code"), BAD_HOOKS)
def test_create_hook_refuses_bad_input(staff_client, hook_data, changes, field, code):
    response = create(staff_client, {**hook_data, **changes})
    assert response.status_code == 400
    body = response.json()
    assert {"field": field, "code": code} == {k: body["errors"][0][k] for k in ("field", "code")}, (
        body
    )
    assert body["code"] == code
    assert body["errors"][0]["message"]
    assert not Hook.objects.exists()


@pytest.mark.parametrize(
    "field, code, message",
    [
        ("model", "invalid_model", "a hook with signals needs a model"),
        ("signals", "invalid_signal", "a hook on a model needs at least one signal"),
        ("target_url", "required", "This field is required."),
    ],
)
def test_create_hook_requires_field(staff_client, hook_data, field, code, message):
    del hook_data[field]
    response = create(staff_client, hook_data)
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": field, "code": code, "message": message}]


def test_create_hook_reports_every_bad_field_at_once(staff_client, hook_data):
    response = create(
        staff_client, {**hook_data, "model": "shop.nope", "signals": ["x.y"], "enabled": "?"}
    )
    assert response.status_code == 400
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"model", "signals", "enabled"}


def test_create_hook_refuses_a_private_target_when_the_network_policy_blocks_it(
    staff_client, hook_data
):
    with override_settings(HTTP_HOOKS={"BLOCK_PRIVATE_NETWORKS": True}):
        response = create(staff_client, hook_data)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "target_url"
    assert response.json()["code"] == "blocked_network"
    assert not Hook.objects.exists()


def test_create_hook_refuses_a_body_that_is_not_an_object(staff_client):
    response = staff_client.post("/api/hooks/", "[1, 2]", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "non_field_errors"


def test_create_hook_refuses_malformed_json(staff_client):
    response = staff_client.post("/api/hooks/", "{", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


# --- read ------------------------------------------------------------------------


def test_retrieve_hook(staff_client, make_hook):
    hook = make_hook(name="h", signals=[POST_SAVE, POST_DELETE], headers="X-A: 1", secret=SECRET)
    response = staff_client.get(f"/api/hooks/{hook.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "id": hook.pk,
        "name": "h",
        "model": "shop.order",
        "signals": [POST_DELETE, POST_SAVE],
        "event_types": [],
        "enabled": True,
        "target_url": hook.target_url,
        "http_method": "POST",
        "headers": {"X-A": "1"},
        "secret_headers": [],
        "content_type": "",
        "payload_template": "",
        "serializer_class": "",
        "rate_limit": None,
        "changed_fields": [],
        "conditions": {},
        "ordering_key": "",
        "has_secret": True,
        "owner": "",
        "paused_until": None,
        "consecutive_failures": 0,
        "disabled_reason": "",
        "disabled_at": None,
        "create_datetime": body["create_datetime"],
        "update_datetime": body["update_datetime"],
    }
    assert_no_secret(response)


def test_retrieve_unknown_hook_is_404(staff_client):
    response = staff_client.get("/api/hooks/999/")
    assert response.status_code == 404
    assert response.json() == {
        "code": "not_found",
        "detail": response.json()["detail"],
        "errors": [],
    }


def test_list_hooks_is_paginated_and_never_shows_secrets(staff_client, make_hook):
    for index in range(3):
        make_hook(name=f"h{index}", secret=SECRET)
    response = staff_client.get("/api/hooks/", {"page_size": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [hook["name"] for hook in body["results"]] == ["h0", "h1"]
    assert body["next"]
    assert_no_secret(response)
    assert staff_client.get(body["next"]).json()["results"][0]["name"] == "h2"


# --- filters ---------------------------------------------------------------------


@pytest.fixture
def three_hooks(make_hook, receiver):
    return {
        "orders": make_hook(name="orders", target_url=receiver.url("/orders")),
        "customers": make_hook(
            name="customers", model="shop.customer", signals=[POST_DELETE], http_method="PUT"
        ),
        "off": make_hook(name="disabled orders", enabled=False),
    }


@pytest.mark.parametrize(
    ("query", "names"),
    [
        pytest.param({"name": "orders"}, ["orders"], id="name"),
        pytest.param(
            {"name__icontains": "ORDERS"}, ["orders", "disabled orders"], id="name-contains"
        ),
        pytest.param({"model": "shop.customer"}, ["customers"], id="model"),
        pytest.param({"model": "customer"}, ["customers"], id="model-by-name"),
        pytest.param({"enabled": "false"}, ["disabled orders"], id="enabled"),
        pytest.param({"signal": POST_DELETE}, ["customers"], id="signal"),
        pytest.param({"target_url__icontains": "/orders"}, ["orders"], id="target-url-contains"),
        pytest.param({"http_method": "PUT"}, ["customers"], id="http-method"),
        pytest.param({"search": "disabled"}, ["disabled orders"], id="search"),
        pytest.param(
            {"ordering": "-name"}, ["orders", "disabled orders", "customers"], id="ordering"
        ),
    ],
)
def test_list_hooks_filters(staff_client, three_hooks, query, names):
    response = staff_client.get("/api/hooks/", query)
    assert response.status_code == 200
    found = [hook["name"] for hook in response.json()["results"]]
    assert found == names if "ordering" in query else sorted(found) == sorted(names)


def test_list_hooks_filter_by_exact_target_url(staff_client, three_hooks):
    url = three_hooks["orders"].target_url
    response = staff_client.get("/api/hooks/", {"target_url": url})
    assert [hook["id"] for hook in response.json()["results"]] == [three_hooks["orders"].pk]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param({"model": "shop.nope"}, "model", id="unknown-model"),
        pytest.param({"model": "http_hooks.hook"}, "model", id="own-model"),
        pytest.param({"enabled": "perhaps"}, "enabled", id="enabled-not-boolean"),
        pytest.param({"http_method": "FETCH"}, "http_method", id="unknown-method"),
    ],
)
def test_list_hooks_refuses_bad_filter_values(staff_client, three_hooks, query, field):
    response = staff_client.get("/api/hooks/", query)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


# --- update and delete -----------------------------------------------------------


def test_put_replaces_the_hook(staff_client, make_hook, receiver):
    hook = make_hook(name="old", headers={"X-A": "1"})
    response = staff_client.put(
        f"/api/hooks/{hook.pk}/",
        {
            "name": "new",
            "model": "shop.customer",
            "signals": [POST_DELETE],
            "target_url": receiver.url("/new"),
            "http_method": "PATCH",
            "headers": {"X-B": "2"},
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    hook.refresh_from_db()
    assert hook.name == "new"
    assert hook.model.model == "customer"
    assert [s.signal for s in hook.signals.all()] == [POST_DELETE]
    assert hook.http_method == "PATCH"
    assert hook.headers == {"X-B": "2"}
    assert response.json()["target_url"] == receiver.url("/new")
    assert_no_secret(response)


def test_put_gives_what_it_leaves_out_the_value_of_a_new_hook(staff_client, make_hook, receiver):
    """A replacement without ``conditions`` drops the filter (it once kept applying, as
    a PATCH would have it); the secret and the owner stay."""
    hook = make_hook(
        conditions={"name": "Tea"},
        rate_limit=5,
        payload_template='{"n": "{{instance.name}}"}',
        ordering_key="{{instance.pk}}",
        enabled=False,
        headers={"X-Team": "shop", "Authorization": "Bearer s3cret"},
    )
    secret = hook.secret
    body = {
        "model": "shop.order",
        "signals": [POST_SAVE],
        "target_url": receiver.url("/replaced"),
    }
    response = staff_client.put(f"/api/hooks/{hook.pk}/", body, format="json")
    assert response.status_code == 200, response.json()
    hook.refresh_from_db()
    assert (hook.conditions, hook.rate_limit, hook.payload_template, hook.ordering_key) == (
        {},
        None,
        "",
        "",
    )
    assert hook.enabled is True
    assert hook.content_type == ""
    # Headers left out keep their credentials, as any change of headers does.
    assert hook.headers == {"Authorization": "Bearer s3cret"}
    assert hook.secret == secret


def test_put_keeps_the_names_marked_secret_that_it_leaves_out(staff_client, make_hook, receiver):
    """Their stored values were never shown: a replacement could not give them again,
    and was refused for un-marking them."""
    hook = make_hook(
        headers={"X-Shop-Id": "s3cret", "X-Team": "shop"}, secret_headers=["x-shop-id"]
    )
    shown = staff_client.get(f"/api/hooks/{hook.pk}/").json()
    assert shown["headers"] == {"X-Shop-Id": MASKED, "X-Team": "shop"}
    body = {
        "model": "shop.order",
        "signals": [POST_SAVE],
        "target_url": receiver.url("/replaced"),
        "headers": shown["headers"],
    }
    response = staff_client.put(f"/api/hooks/{hook.pk}/", body, format="json")
    assert response.status_code == 200, response.json()
    hook.refresh_from_db()
    assert hook.headers == {"X-Shop-Id": "s3cret", "X-Team": "shop"}
    assert hook.secret_headers == ["x-shop-id"]


def test_put_without_what_a_hook_needs_is_a_400_and_changes_nothing(staff_client, make_hook):
    hook = make_hook(name="kept")
    response = staff_client.put(f"/api/hooks/{hook.pk}/", {"name": "only"}, format="json")
    assert response.status_code == 400
    hook.refresh_from_db()
    assert hook.name == "kept"


def test_patch_changes_only_the_given_fields(staff_client, make_hook):
    hook = make_hook(name="keep", secret=SECRET)
    response = staff_client.patch(f"/api/hooks/{hook.pk}/", {"enabled": False}, format="json")
    assert response.status_code == 200
    hook.refresh_from_db()
    assert hook.enabled is False
    assert hook.name == "keep"
    assert hook.secret == SECRET
    assert response.json()["enabled"] is False
    assert_no_secret(response)


def test_disabled_hook_no_longer_fires(staff_client, make_hook):
    hook = make_hook()
    staff_client.patch(f"/api/hooks/{hook.pk}/", {"enabled": False}, format="json")
    Order.objects.create(name="A")
    assert not Callback.objects.exists()


def test_patch_validates_the_hook_as_a_whole(staff_client, make_hook):
    hook = make_hook(payload_template='{"id": {{instance.id}}}', content_type="application/json")
    response = staff_client.patch(
        f"/api/hooks/{hook.pk}/", {"content_type": "application/xml"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "payload_template"
    hook.refresh_from_db()
    assert hook.content_type == "application/json"


def test_patch_with_bad_input_changes_nothing(staff_client, make_hook):
    hook = make_hook(name="keep")
    response = staff_client.patch(
        f"/api/hooks/{hook.pk}/", {"name": "changed", "signals": ["no.such.signal"]}, format="json"
    )
    assert response.status_code == 400
    hook.refresh_from_db()
    assert hook.name == "keep"
    assert [s.signal for s in hook.signals.all()] == [POST_SAVE]


def test_patch_can_set_a_new_secret(staff_client, make_hook):
    hook = make_hook()
    response = staff_client.patch(f"/api/hooks/{hook.pk}/", {"secret": SECRET}, format="json")
    assert response.status_code == 200
    assert "secret" not in response.json()
    hook.refresh_from_db()
    assert hook.secret == SECRET


def test_delete_hook_deletes_its_callbacks(staff_client, make_hook):
    hook = make_hook()
    Order.objects.create(name="A")
    assert Callback.objects.count() == 1
    response = staff_client.delete(f"/api/hooks/{hook.pk}/")
    assert response.status_code == 204
    assert not Hook.objects.exists()
    assert not Callback.objects.exists()


# --- actions ---------------------------------------------------------------------


def test_test_action_sends_a_signed_test_event_and_returns_the_attempt(
    staff_client, make_hook, receiver
):
    hook = make_hook(secret=SECRET)
    response = staff_client.post(f"/api/hooks/{hook.pk}/test/")
    assert response.status_code == 200
    attempt = response.json()
    assert attempt["response_status"] == 200
    assert attempt["succeeded"] is True
    assert attempt["error"] == ""
    assert attempt["request_headers"]["webhook-signature"] == "********"
    (request,) = receiver.wait_for(1)
    assert Webhook(SECRET).verify(request.body, request.headers)["event_type"] == "http_hooks.test"


def test_test_action_reports_a_failing_receiver(staff_client, make_hook, receiver):
    receiver.respond(status=503, body=b"down")
    hook = make_hook()
    response = staff_client.post(f"/api/hooks/{hook.pk}/test/")
    assert response.status_code == 200
    attempt = response.json()
    assert attempt["response_status"] == 503
    assert attempt["response_body"] == "down"
    assert attempt["succeeded"] is False


def test_test_action_on_unknown_hook_is_404(staff_client):
    assert staff_client.post("/api/hooks/999/test/").status_code == 404


def test_rotate_secret_generates_a_new_one_and_keeps_the_old_in_grace(staff_client, make_hook):
    hook = make_hook(secret=SECRET)
    response = staff_client.post(f"/api/hooks/{hook.pk}/rotate-secret/")
    assert response.status_code == 200
    body = response.json()
    hook.refresh_from_db()
    assert body["secret"] == hook.secret != SECRET
    assert body["secret"].startswith("whsec_")
    assert hook.previous_secret == SECRET
    assert body["previous_secret_expires_at"] is not None
    assert SECRET not in response.content.decode()


def test_rotate_secret_to_a_given_secret(staff_client, make_hook):
    hook = make_hook(secret="")
    response = staff_client.post(
        f"/api/hooks/{hook.pk}/rotate-secret/", {"secret": SECRET}, format="json"
    )
    assert response.status_code == 200
    assert response.json() == {"secret": SECRET, "previous_secret_expires_at": None}


@pytest.mark.parametrize(
    "secret",
    # Python's decoder takes padding past the end and inside; the schema's pattern does not.
    ["nope", SECRET + "===", SECRET[:20] + "=" + SECRET[20:], SECRET + "\n"],
)
def test_rotate_secret_refuses_a_bad_secret(staff_client, make_hook, secret):
    hook = make_hook(secret=SECRET)
    response = staff_client.post(
        f"/api/hooks/{hook.pk}/rotate-secret/", {"secret": secret}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "secret"
    hook.refresh_from_db()
    assert hook.secret == SECRET


@pytest.mark.parametrize("method", ["PUT", "GET"])
def test_test_event_goes_with_the_hooks_method_as_documented(
    staff_client, make_hook, receiver, method
):
    hook = make_hook(http_method=method)
    response = staff_client.post(f"/api/hooks/{hook.pk}/test/")
    assert response.status_code == 200, response.json()
    (request,) = receiver.requests
    assert request.method == method
    assert request.json()["event_type"] == "http_hooks.test"


# --- text stored before the rules that now refuse it --------------------------------


@pytest.fixture
def stored_before(db, settings):
    """A hook whose ``field`` holds what ``check_storable_text`` refuses now, as SQLite
    kept it before the rule (PostgreSQL never could)."""
    from django.db import connection

    from http_hooks.api import create_hook

    if connection.vendor != "sqlite":
        pytest.skip("only SQLite stores a NUL in text")

    def make(field: str, value: str) -> Hook:
        hook = create_hook(
            signals=[POST_SAVE], model="shop.order", target_url="https://example.com/", name="n"
        )
        Hook.objects.filter(pk=hook.pk).update(**{field: value})
        return hook

    return make


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "a\x00b"), ("payload_template", "x\x00"), ("ordering_key", "\x00")],
)
def test_a_nul_stored_before_the_rule_does_not_block_a_change_of_another_field(
    staff_client, stored_before, field, value
):
    """Every field was checked, the stored ones too: a PATCH of ``enabled`` was a 400
    on a field the client did not send."""
    hook = stored_before(field, value)
    response = staff_client.patch(f"/api/hooks/{hook.pk}/", {"enabled": False}, format="json")
    assert response.status_code == 200, response.content
    hook.refresh_from_db()
    assert (hook.enabled, getattr(hook, field)) == (False, value)


def test_a_nul_given_anew_is_refused_still(staff_client, stored_before):
    hook = stored_before("name", "a\x00b")
    response = staff_client.patch(f"/api/hooks/{hook.pk}/", {"name": "c\x00d"}, format="json")
    assert response.status_code == 400
    assert Hook.objects.get().name == "a\x00b"


def test_a_stored_value_that_cannot_be_sent_is_refused_on_its_field(staff_client, stored_before):
    """A URL with a NUL cannot be sent: what a value means is checked on the whole hook,
    and the error names the field, for the client to mend it in the same request."""
    hook = stored_before("target_url", "https://example.com/\x00")
    response = staff_client.patch(f"/api/hooks/{hook.pk}/", {"enabled": False}, format="json")
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == ["target_url"]
    response = staff_client.patch(
        f"/api/hooks/{hook.pk}/",
        {"enabled": False, "target_url": "https://example.com/ok"},
        format="json",
    )
    assert response.status_code == 200, response.content
