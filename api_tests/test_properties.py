"""Property-based tests (hypothesis) of every input a client or a caller controls:
each filter parameter of each list endpoint, each writable field of the hook and
signal serializers, and the Python API's ``create_hook`` and ``create_signal``.

The property: the documented error (a 400 with the one error body naming the
field, or an ``http_hooks.exceptions`` error) or success; never a 500, an HTML
page or another exception. No network: the demo settings switch
``BLOCK_PRIVATE_NETWORKS`` off (no DNS lookup at save), and the hosts generated
are IP literals and ``.invalid`` names.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from http_hooks.api import create_hook, create_signal
from http_hooks.api.filters import CallbackFilter, HookFilter, SignalFilter
from http_hooks.events import (
    EVENT_TYPE_PATTERN,
    SUBSCRIPTION_PATTERN,
    is_event_type,
    validate_subscriptions,
)
from http_hooks.exceptions import HttpHooksError
from http_hooks.models import Hook, HttpMethod
from http_hooks.validators import SECRET_PATTERN, validate_secret

pytestmark = pytest.mark.django_db

PROPERTY = settings(
    max_examples=40,
    derandomize=True,  # the same examples on every run: CI stays reproducible
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
POST_SAVE = "django.db.models.signals.post_save"

# Text with what has broken parsers and formatters before: % and {} placeholders,
# control characters, surrogates are left out (no JSON or URL carries them).
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
tricky = st.sampled_from(
    [
        "",
        " ",
        "%s",
        "%(x)s",
        "{0}",
        "{{ x }}",
        "\x00",
        "\r\n",
        "-1",
        "0",
        "1.5",
        "1e400",
        "99999999999999999999999",
        "true",
        "null",
        "2020-01-01T00:00:00+20:00",
        "0001-01-01T00:00:00+23:59",
        "9999-12-31T23:59:59-23:59",
        "2020-02-30T00:00:00",
        ".x",
        "a.b",
        "shop.order",
        "id,-id",
        "\u212a",
    ]
)
query_value = st.one_of(tricky, text)
json_value = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        text,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(text, children, max_size=3)
    ),
    max_leaves=6,
)
host = st.sampled_from(["127.0.0.1", "[::1]", "10.0.0.1", "hooks.invalid", "xn--.invalid"])
url = st.one_of(
    st.builds(
        "{}://{}{}/{}".format,
        st.sampled_from(["http", "https", "ftp", ""]),
        host,
        st.sampled_from(["", ":0", ":8080", ":99999", ":x"]),
        text,
    ),
    text,
)
signal_path = st.one_of(
    st.sampled_from(
        [POST_SAVE, "django.db.models.signals.pre_delete", "django.db.models.signals.nope"]
    ),
    # Not starting with ".": another change covers relative paths.
    text.filter(lambda path: not path.startswith(".")),
)


def field_values(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly plausible values of a field, sometimes any JSON value at all."""
    return st.one_of(valid, valid, json_value)


HOOK_FIELD_VALUES = {
    "name": field_values(text),
    "model": field_values(st.sampled_from(["shop.order", "auth.user", "shop.nope", "x"])),
    "signals": field_values(st.lists(signal_path, max_size=3)),
    "enabled": field_values(st.booleans()),
    "target_url": field_values(url),
    "http_method": field_values(st.sampled_from([*HttpMethod.values, "post", "TRACE"])),
    "headers": field_values(
        st.one_of(st.dictionaries(text, text, max_size=3), text.map(lambda t: f"X-A: {t}"))
    ),
    "secret_headers": field_values(st.lists(text, max_size=3)),
    "content_type": field_values(st.sampled_from(["", "application/json", "text/xml"])),
    "payload_template": field_values(
        st.one_of(text, st.sampled_from(['{"id": {{ instance.id }}}', "{{ nope }}", "{%"]))
    ),
    "serializer_class": field_values(
        st.sampled_from(["", "shop.serializers.OrderSerializer", "no.such.Class"])
    ),
    "secret": field_values(
        st.sampled_from(["", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_x", "abc"])
    ),
}
hook_fields = st.fixed_dictionaries({}, optional=HOOK_FIELD_VALUES)


def assert_documented(response, *, ok: set[int], fields: set[str]) -> None:
    """Success, or the one error body naming one of ``fields`` (or no field at all for
    a body-wide error)."""
    assert response["Content-Type"] == "application/json", response.content[:200]
    if response.status_code in ok:
        return
    assert response.status_code == 400, (response.status_code, response.content[:500])
    body = response.json()
    assert set(body) == {"code", "detail", "errors"}
    # Only a body that is no JSON at all has no field to name.
    assert body["errors"] or body["code"] == "parse_error", body
    for error in body["errors"]:
        # An action's body names a key it does not know as the field at fault.
        if error["code"] != "unknown_field":
            assert error["field"].split(".")[0] in fields | {"non_field_errors"}, body


# --- filters -----------------------------------------------------------------------

LISTS = {
    "/api/hooks/": [*HookFilter.base_filters, "search", "ordering", "page", "page_size"],
    "/api/signals/": [*SignalFilter.base_filters, "search", "ordering", "page", "page_size"],
    "/api/callbacks/": [*CallbackFilter.base_filters, "ordering", "page_size"],
}
PARAMETERS = [(url, name) for url, names in LISTS.items() for name in names]


@pytest.mark.parametrize(("url", "name"), PARAMETERS, ids=[f"{u}?{n}" for u, n in PARAMETERS])
@PROPERTY
@given(value=query_value)
def test_any_filter_value_is_taken_or_refused_with_a_400(staff_client, url, name, value):
    response = staff_client.get(url, {name: value})
    # A page past the last is a 404 (documented) with the error body.
    ok = {200, 404} if name == "page" else {200}
    assert_documented(response, ok=ok, fields={name})


@PROPERTY
@given(value=query_value, name=st.sampled_from(list(CallbackFilter.base_filters)))
def test_any_filter_value_of_the_bulk_resend_is_taken_or_refused(staff_client, name, value):
    response = staff_client.post(
        f"/api/callbacks/resend/?{urlencode({name: value})}", {"ids": [1]}, format="json"
    )
    assert_documented(response, ok={200}, fields={name})


# --- serializers ---------------------------------------------------------------------


@PROPERTY
@given(data=hook_fields)
def test_any_hook_body_creates_a_hook_or_is_refused_with_a_400(staff_client, data):
    count = Hook.objects.count()
    response = staff_client.post("/api/hooks/", data, format="json")
    assert_documented(response, ok={201}, fields=set(HOOK_FIELD_VALUES))
    assert Hook.objects.count() == count + (response.status_code == 201)


@PROPERTY
@given(data=hook_fields, partial=st.booleans())
def test_any_hook_change_is_saved_or_refused_with_a_400(staff_client, make_hook, data, partial):
    hook = make_hook(target_url="http://127.0.0.1:9/hook")
    before = Hook.objects.filter(pk=hook.pk).values().get()
    method = staff_client.patch if partial else staff_client.put
    response = method(f"/api/hooks/{hook.pk}/", data, format="json")
    assert_documented(response, ok={200}, fields=set(HOOK_FIELD_VALUES))
    if response.status_code != 200:
        assert Hook.objects.filter(pk=hook.pk).values().get() == before


@PROPERTY
@given(signal=field_values(signal_path))
def test_any_signal_body_registers_it_or_is_refused_with_a_400(staff_client, signal):
    response = staff_client.post("/api/signals/", {"signal": signal}, format="json")
    assert_documented(response, ok={201}, fields={"signal"})


@PROPERTY
@given(body=st.one_of(json_value, text))
def test_any_json_body_gets_a_documented_answer(staff_client, body):
    for url in ["/api/hooks/", "/api/signals/", "/api/callbacks/resend/"]:
        response = staff_client.post(url, json.dumps(body), content_type="application/json")
        assert_documented(response, ok={200, 201}, fields={"ids", "signal", *HOOK_FIELD_VALUES})


# --- the Python API --------------------------------------------------------------------


@PROPERTY
@given(data=hook_fields)
def test_create_hook_returns_a_hook_or_raises_an_http_hooks_error(data):
    data = {"signals": [POST_SAVE], "model": "shop.order", **data}
    data.setdefault("target_url", "http://127.0.0.1:9/hook")
    count = Hook.objects.count()
    try:
        hook = create_hook(**data)
    except HttpHooksError:
        assert Hook.objects.count() == count
    else:
        assert Hook.objects.filter(pk=hook.pk).exists()


@PROPERTY
@given(signal=field_values(signal_path))
def test_create_signal_returns_a_signal_or_raises_an_http_hooks_error(signal):
    with contextlib.suppress(HttpHooksError):
        create_signal(signal)


# --- the schema's patterns say what the server takes -----------------------------
# A client generated from the schema checks a value against its pattern before
# sending it: a pattern stricter than the server refuses good values, a looser one
# lets through values that come back as a 400. Each pattern must match exactly the
# values its rule takes (as regular expressions of JSON Schema: ``re.search``).


def secret_candidates():
    base64ish = st.text(alphabet="AB+/=", min_size=28, max_size=92)
    return st.one_of(
        st.builds(lambda body: "whsec_" + body, base64ish),
        st.builds(
            lambda raw, extra: "whsec_" + base64.b64encode(raw).decode() + extra,
            st.binary(min_size=20, max_size=70),
            st.sampled_from(["", "=", "==", "A", "\n"]),
        ),
        text,
    )


# Pure functions: many examples cost little.
PATTERNS = settings(PROPERTY, max_examples=2000)


def matches(pattern: str, value: str) -> bool:
    """As JSON Schema reads a pattern: ECMA's ``$`` is the end of the text, where
    Python's also matches before a last newline."""
    return re.search(re.sub(r"\$$", r"\\Z", pattern), value) is not None


def takes(check, value) -> bool:
    try:
        check(value)
    except HttpHooksError:
        return False
    return True


@PATTERNS
@given(secret=secret_candidates())
def test_the_secret_pattern_takes_what_the_server_takes(secret):
    assert matches(SECRET_PATTERN, secret) == takes(validate_secret, secret)


event_names = st.from_regex(r"\A[a-z0-9_.\-*A]{1,40}\Z") | st.sampled_from(
    ["order.paid", "order.*", "*", "a" + ".b" * 15, "a" + ".b" * 16, "a" + ".b" * 15 + ".*"]
)


@PATTERNS
@given(name=event_names)
def test_the_event_type_patterns_take_what_the_server_takes(name):
    assert matches(EVENT_TYPE_PATTERN, name) == is_event_type(name)
    assert matches(SUBSCRIPTION_PATTERN, name) == takes(validate_subscriptions, [name])
