"""Bad input at the edges of the REST API gets the JSON error body, never a 500 or an
HTML page: one test per class of input that once got through."""

from __future__ import annotations

import base64
import datetime
import json
from urllib.parse import urlencode

import pytest
from django.test import override_settings

from http_hooks.forms import SignalAdminForm
from http_hooks.models import Callback, CallbackStatus, Hook, Signal
from shop.models import Order

pytestmark = pytest.mark.django_db

POST_SAVE = "django.db.models.signals.post_save"
PERCENT_TEXTS = ["%s", "%(x)s", "%d%%", "100%", "%"]


def assert_error(response, status: int, code: str | None, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "detail", "errors"}
    if code is not None:
        assert body["code"] == code
    if field is not None:
        assert [error["field"] for error in body["errors"]] == [field]
    return body


# --- user text is quoted in messages, never used as a format string ----------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("http_method", "P" * 1_000_000),
        ("content_type", "x" * 1_000_000),
        ("model", "app.Model" * 100_000),
        ("headers", {"a b" * 3000: "x"}),
    ],
)
def test_a_huge_value_is_quoted_cut_short_in_the_error(staff_client, field, value):
    """DRF's "... is not a valid choice" quoted a megabyte of ``http_method`` twice
    (``detail`` and ``errors``); our own messages quoted a model name whole."""
    hook = {"model": "shop.order", "signals": [POST_SAVE], "target_url": "https://example.com/"}
    response = staff_client.post(
        "/api/hooks/", {**hook, field: value}, format="json", HTTP_ACCEPT="application/json"
    )
    assert_error(response, 400, None, field)
    assert len(response.content) < 3000


@pytest.mark.parametrize("text", PERCENT_TEXTS)
def test_percent_signs_in_a_filter_value_are_quoted_in_the_error(staff_client, text):
    body = assert_error(
        staff_client.get("/api/hooks/", {"model": text}), 400, "invalid_model", "model"
    )
    assert f"'{text}'" in body["errors"][0]["message"]


@pytest.mark.parametrize("text", PERCENT_TEXTS)
def test_percent_signs_in_a_body_are_quoted_in_the_errors(staff_client, text):
    data = {"model": text, "signals": [text], "target_url": "http://x.invalid/", "headers": text}
    body = assert_error(staff_client.post("/api/hooks/", data, format="json"), 400, "invalid_model")
    assert {error["field"] for error in body["errors"]} == {"model", "signals.0", "headers"}
    data = {"model": "shop.order", "signals": [POST_SAVE], "target_url": text, "name": text}
    body = assert_error(
        staff_client.post("/api/hooks/", data, format="json"), 400, None, "target_url"
    )


@pytest.mark.parametrize("text", PERCENT_TEXTS)
def test_percent_signs_in_an_admin_form_are_quoted_in_the_error(text):
    form = SignalAdminForm(data={"signal": text})
    assert not form.is_valid()
    assert f"'{text}'" in form.errors["signal"][0]


# --- date-time filters take any offset Python parses, on every database -------------


@pytest.fixture
def new_year_callback(make_hook):
    make_hook()
    Order.objects.create(name="one")
    callback = Callback.objects.get()
    moment = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    Callback.objects.filter(pk=callback.pk).update(
        create_datetime=moment, update_datetime=moment, status=CallbackStatus.ERROR
    )
    return callback


@pytest.mark.parametrize(
    ("moment", "found"),
    [
        # 2019-12-31T23:00Z and 2020-01-01T00:59Z: offsets PostgreSQL does not take.
        pytest.param("2020-01-01T19:00:00+20:00", True, id="plus-20h"),
        pytest.param("2019-12-31T01:00:00-23:59", False, id="minus-23h59"),
        pytest.param("2020-01-01T00:00:00+00:00", True, id="utc"),
        pytest.param("2020-01-01T00:00:00", True, id="naive"),
    ],
)
def test_date_time_filters_take_any_offset(staff_client, new_year_callback, moment, found):
    response = staff_client.get("/api/callbacks/", {"created_after": moment})
    assert response.status_code == 200, response.content
    expected = [new_year_callback.pk] if found else []
    assert [callback["id"] for callback in response.json()["results"]] == expected
    response = staff_client.post(
        f"/api/callbacks/resend/?updated_after={moment.replace('+', '%2B')}", {}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"count": int(found)}


@pytest.mark.parametrize(
    "moment",
    ["0001-01-01T00:00:00+20:00", "9999-12-31T23:59:59-20:00", "2020-01-01T00:00:00+24:00"],
)
def test_date_time_filters_refuse_what_is_out_of_range(staff_client, new_year_callback, moment):
    query = {"created_before": moment}
    assert_error(staff_client.get("/api/callbacks/", query), 400, "invalid", "created_before")
    response = staff_client.post(
        f"/api/callbacks/resend/?created_before={moment.replace('+', '%2B')}", {}, format="json"
    )
    assert_error(response, 400, "invalid", "created_before")
    assert Callback.objects.get().status == CallbackStatus.ERROR


# --- JSON bodies ---------------------------------------------------------------------


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_deeply_nested_json_is_a_400(staff_client, depth):
    body = '{"ids": ' + "[" * depth + "]" * depth + "}"
    for url in ["/api/hooks/", "/api/callbacks/resend/", "/api/signals/"]:
        response = staff_client.post(url, body, content_type="application/json")
        assert_error(response, 400, "parse_error")
    assert not Callback.objects.filter(status=CallbackStatus.WAITING).exists()


def test_json_nested_32_levels_is_parsed(staff_client):
    body = {"ids": json.loads("[" * 31 + "1" + "]" * 31)}
    response = staff_client.post("/api/callbacks/resend/", body, format="json")
    assert_error(response, 400, "invalid", "ids.0")  # a list, not an id: but parsed


NEW_HOOK_JSON = (
    f'{{"model": "shop.order", "signals": ["{POST_SAVE}"], "target_url": "http://127.0.0.1:9/"'
)


@pytest.mark.parametrize(
    ("method", "url", "body", "key"),
    [
        ("post", "/api/hooks/", NEW_HOOK_JSON + ', "enabled": true, "enabled": false}', "enabled"),
        ("patch", "/api/hooks/{hook}/", '{"headers": {"X-Team": "a", "X-Team": "b"}}', "X-Team"),
        (
            "post",
            "/api/signals/",
            '{"signal": "x.y", "signal": "shop.signals.order_shipped"}',
            "signal",
        ),
        ("post", "/api/callbacks/send/", '{"hook_id": 999999, "hook_id": {hook}}', "hook_id"),
        (
            "post",
            "/api/callbacks/delete-old/",
            '{"days": 9, "days": 0, "include_undelivered": true}',
            "days",
        ),
    ],
    ids=["create-hook", "headers", "signal", "send", "delete-old"],
)
def test_a_key_given_twice_in_any_body_is_a_400(staff_client, make_hook, method, url, body, key):
    """Python's ``json`` kept the last value without a word: a hook created disabled, a
    header's first value dropped, callbacks sent or deleted by the second value."""
    hook = make_hook(headers={"X-Team": "a"})
    Order.objects.create(name="one")
    url, body = (text.replace("{hook}", str(hook.pk)) for text in (url, body))
    response = getattr(staff_client, method)(url, body, content_type="application/json")
    assert assert_error(response, 400, "parse_error")["detail"] == (
        f"JSON parse error - an object has the key '{key}' twice in JSON"
    )
    assert list(Hook.objects.values_list("headers", "enabled")) == [({"X-Team": "a"}, True)]
    assert not Signal.objects.filter(signal="shop.signals.order_shipped").exists()
    callback = Callback.objects.get()
    assert (callback.status, callback.attempts) == (CallbackStatus.WAITING, 0)


@pytest.mark.parametrize(
    "body",
    [
        NEW_HOOK_JSON + ', "conditions": {"total__gte": 1e400}}',
        NEW_HOOK_JSON + ', "rate_limit": -1E+400}',
        '{"days": 1e400}',
    ],
    ids=["conditions", "rate-limit", "days"],
)
def test_a_number_no_double_holds_is_a_400_in_any_body(staff_client, body):
    """Read as infinity, it was refused by whichever field took it, each in its words."""
    url = "/api/callbacks/delete-old/" if body.startswith('{"days"') else "/api/hooks/"
    response = staff_client.post(url, body, content_type="application/json")
    assert "is out of range" in assert_error(response, 400, "parse_error")["detail"]
    assert not Hook.objects.exists()


def test_fractions_outside_an_events_payload_are_read_as_before(staff_client, make_hook):
    """Only an event's payload reads fractions as decimals (``ExactJSONParser``). Other
    bodies read floats, as their fields take them: 5.0 and 1e2 are whole numbers, and
    conditions are stored as JSON (which has no decimal type, as the Python API's)."""
    response = staff_client.post(
        "/api/hooks/",
        NEW_HOOK_JSON + ', "rate_limit": 5.0, "conditions": {"total__gte": 9.90}}',
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert (response.json()["rate_limit"], response.json()["conditions"]) == (
        5,
        {"total__gte": 9.9},
    )
    hook = Hook.objects.get()
    response = staff_client.patch(
        f"/api/hooks/{hook.pk}/",
        '{"rate_limit": 1e2, "conditions": {"total__lt": 2.5e3}}',
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    hook.refresh_from_db()
    assert (hook.rate_limit, hook.conditions) == (100, {"total__lt": 2500.0})
    events = staff_client.post(
        "/api/hooks/",
        '{"event_types": ["order.*"], "target_url": "http://127.0.0.1:9/", '
        '"conditions": {"amount__gte": 0.10, "rate__in": [0.5, 1.25]}}',
        content_type="application/json",
    )
    assert events.status_code == 201, events.content
    assert events.json()["conditions"] == {"amount__gte": 0.1, "rate__in": [0.5, 1.25]}
    response = staff_client.post(
        "/api/callbacks/resend/",
        '{"ids": [1.0], "confirm": false}',
        content_type="application/json",
    )
    assert (response.status_code, response.json()) == (200, {"count": 0})


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
@pytest.mark.parametrize("url", ["/api/hooks/", "/api/signals/", "/api/callbacks/send/"])
def test_body_over_the_upload_limit_is_a_413(staff_client, url):
    body = json.dumps({"name": "x" * 1000})
    assert_error(
        staff_client.post(url, body, content_type="application/json"), 413, "request_too_large"
    )


# --- URLs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["/api/nothing/", "/api/hooks/1/nothing/", "/api/x", "/api/schema/x/", "/api/%25s/"]
)
def test_unknown_url_under_the_api_is_a_json_404(staff_client, url):
    for method in (staff_client.get, staff_client.post, staff_client.delete):
        assert_error(method(url), 404, "not_found")


def test_a_missing_slash_still_redirects_a_get_and_says_so_otherwise(staff_client):
    response = staff_client.get("/api/hooks?enabled=true")
    assert response.status_code == 301
    assert response["Location"] == "/api/hooks/?enabled=true"
    body = assert_error(staff_client.post("/api/hooks", {}, format="json"), 404, "not_found")
    assert "/api/hooks/" in body["detail"]


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
@pytest.mark.parametrize("url", ["/api/hooks", "/api/nothing/", "/api//hooks/"])
def test_a_wrong_url_is_a_json_404_for_a_client_that_csrf_applies_to(method, url):
    """Not Django's HTML 403 "CSRF verification failed": the URL is the error, and the
    404 view changes nothing."""
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    response = getattr(client, method)(url, "{}", content_type="application/json")
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    "pk", ["+1", "01", "1_0", " 1", "1 ", "\u0661", "\uff11", "0", "-1", "1.0"]
)
def test_a_path_id_is_ascii_digits_or_a_404(staff_client, make_hook, pk):
    """ "+1", "1_0" or an Arabic-Indic digit would reach ``int()`` and name a hook."""
    for _ in range(10):
        make_hook()
    from urllib.parse import quote

    for url in (f"/api/hooks/{quote(pk)}/", f"/api/hooks/{quote(pk)}/health/"):
        assert_error(staff_client.get(url), 404, "not_found")


@pytest.mark.parametrize("url", ["/api/hooks/", "/api/callbacks/", "/api/callbacks/monitor/"])
def test_too_many_query_parameters_are_a_json_400(staff_client, url):
    """Over ``DATA_UPLOAD_MAX_NUMBER_FIELDS``: Django's HTML 400 otherwise."""
    query = "&".join(f"a{n}=1" for n in range(1001))
    assert_error(staff_client.get(f"{url}?{query}"), 400, "parse_error")


@pytest.mark.parametrize(
    "url",
    [
        "/api/hooks/",
        "/api/hooks/{hook}/",
        "/api/callbacks/monitor/?status=waiting",
        "/api/event-types/",
    ],
)
def test_an_unknown_format_is_a_400_naming_the_formats_there_are(staff_client, make_hook, url):
    """DRF answered 404 Not Found (a URL that exists, and a status the schema documents
    for none of these) to a ``?format=`` that names no renderer; the known ones answer."""
    url = url.format(hook=make_hook().pk) + ("&" if "?" in url else "?")
    body = assert_error(staff_client.get(f"{url}format=-65"), 400, "invalid")
    assert body["errors"][0]["field"] == "format"
    assert body["errors"][0]["message"] == "Unknown format '-65': one of json, api."
    assert staff_client.get(f"{url}format=json")["Content-Type"] == "application/json"
    browsable = staff_client.get(f"{url}format=api")
    assert (browsable.status_code, browsable["Content-Type"]) == (200, "text/html; charset=utf-8")


@pytest.mark.parametrize(
    "url",
    [
        "/api/schema/?format=nope",
        "/api/?format=nope",
    ],
)
def test_the_schema_and_the_root_answer_errors_in_the_error_body(staff_client, url):
    assert_error(staff_client.get(url), 404, "not_found")


@pytest.mark.parametrize("url", ["/api/schema/", "/api/docs/", "/api/redoc/", "/api/"])
def test_the_schema_docs_and_root_refuse_other_methods_in_the_error_body(staff_client, url):
    body = assert_error(staff_client.post(url, {}, format="json"), 405, "method_not_allowed")
    assert "POST" in body["detail"]


# --- query parameters mean what the schema says, or are a 400 ------------------------

LISTS = ["/api/hooks/", "/api/signals/", "/api/callbacks/"]


@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        pytest.param({"ordering": "nope"}, "ordering", "invalid_ordering", id="unknown-ordering"),
        pytest.param({"ordering": "id,nope"}, "ordering", "invalid_ordering", id="one-unknown"),
        pytest.param({"ordering": ""}, "ordering", "invalid_ordering", id="empty-ordering"),
        pytest.param({"ordering": " id"}, "ordering", "invalid_ordering", id="ordering-spaced"),
        pytest.param({"page_size": "0"}, "page_size", "invalid", id="page-size-0"),
        pytest.param({"page_size": "501"}, "page_size", "invalid", id="page-size-over-max"),
        pytest.param({"page_size": ""}, "page_size", "invalid", id="page-size-empty"),
        pytest.param({"page_size": "5_0"}, "page_size", "invalid", id="page-size-underscore"),
        pytest.param({"page_size": "-1"}, "page_size", "invalid", id="page-size-negative"),
        pytest.param({"page_size": "9" * 5000}, "page_size", "invalid", id="page-size-5000-digits"),
    ],
)
def test_list_refuses_what_the_schema_does_not_allow(staff_client, url, query, field, code):
    assert_error(staff_client.get(url, query), 400, code, field)


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("/api/hooks/", "name__icontains"),
        ("/api/hooks/", "target_url__icontains"),
        ("/api/signals/", "signal__icontains"),
    ],
)
def test_a_contains_filter_longer_than_its_column_is_a_400(staff_client, make_hook, url, name):
    """Not the 503 "try again" of SQLite's refusal of a LIKE pattern over 50,000 bytes
    (an OperationalError): asked again, it fails again."""
    make_hook()
    assert_error(staff_client.get(url, {name: "a" * 60_000}), 400, "max_length", name)


@pytest.mark.parametrize("query", [{"page": "0"}, {"page": ""}, {"page": "x"}, {"page": "last"}])
@pytest.mark.parametrize("url", ["/api/hooks/", "/api/signals/"])
def test_page_numbers_are_whole_numbers_from_1(staff_client, url, query):
    assert_error(staff_client.get(url, query), 400, "invalid", "page")


@pytest.mark.parametrize("page", ["99", "9" * 5000], ids=["99", "5000-digits"])
def test_a_page_past_the_last_is_a_404(staff_client, page):
    assert_error(staff_client.get("/api/signals/", {"page": page}), 404, "not_found")


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("/api/hooks/", ["model", "signal", "http_method", "enabled", "name", "target_url"]),
        ("/api/signals/", ["signal", "signal__icontains"]),
        ("/api/callbacks/", ["status", "hook", "created_after", "event_type", "event_id"]),
    ],
)
def test_an_empty_filter_value_is_refused(staff_client, url, names):
    for name in names:
        assert_error(staff_client.get(url, {name: ""}), 400, "blank", name)


def test_ordering_takes_several_fields(staff_client, make_hook):
    first, second, third = (make_hook(name=name).pk for name in ["b", "a", "b"])
    response = staff_client.get("/api/hooks/", {"ordering": "name,-id"})
    assert response.status_code == 200
    assert [hook["id"] for hook in response.json()["results"]] == [second, third, first]


@pytest.mark.parametrize("size", ["1", "500"])
def test_page_size_within_bounds_is_taken(staff_client, size):
    response = staff_client.get("/api/signals/", {"page_size": size})
    assert response.status_code == 200
    assert len(response.json()["results"]) == min(int(size), response.json()["count"])


# --- bodies take the JSON types of the schema -----------------------------------------


@pytest.mark.parametrize(
    ("url", "data", "field"),
    [
        ("/api/callbacks/send/", {"hook_id": "1"}, "hook_id"),
        ("/api/callbacks/send/", {"hook_id": 1.5}, "hook_id"),
        ("/api/callbacks/send/", {"hook_id": True}, "hook_id"),
        ("/api/callbacks/send/", {"hook_id": 2**64}, "hook_id"),
        ("/api/callbacks/send/", {"ids": ["1"]}, "ids.0"),
        ("/api/callbacks/resend/", {"ids": [1.5]}, "ids.0"),
        ("/api/callbacks/delete-old/", {"days": "5"}, "days"),
        (
            "/api/callbacks/delete-old/",
            {"days": 5, "include_undelivered": 0},
            "include_undelivered",
        ),
        ("/api/signals/", {"signal": 5}, "signal"),
        ("/api/hooks/", {"name": 5}, "name"),
        ("/api/hooks/", {"enabled": "true"}, "enabled"),
        ("/api/hooks/", {"payload_template": 5}, "payload_template"),
    ],
)
def test_a_body_value_of_another_json_type_is_refused(staff_client, url, data, field):
    body = assert_error(staff_client.post(url, data, format="json"), 400, None)
    assert any(error["field"].startswith(field) for error in body["errors"])


def test_the_browsable_filter_form_leaves_empty_fields_out(staff_client):
    response = staff_client.get("/api/callbacks/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="status"' in page
    assert "if (field.name && !field.value) field.disabled = true;" in page


@pytest.mark.parametrize(
    "position",
    ["x", "", "1.5", "1e3", "\x00", "-1", "٣", "2020-01-01T00:00:00+20:00", str(2**64), "9" * 5000],
    ids=[
        *("word", "empty", "decimal", "exponent", "nul", "negative", "arabic-digit", "date"),
        *("huge", "5000-digits"),
    ],
)
@pytest.mark.parametrize("url", ["/api/callbacks/", "/api/callbacks/{id}/attempts/"])
def test_a_forged_cursor_is_a_json_404(staff_client, make_hook, url, position):
    """A cursor is the client's text: one whose position is no id is 'no such page'."""
    make_hook()
    Order.objects.create(name="a")
    cursor = base64.b64encode(urlencode({"p": position}).encode()).decode()
    path = url.format(id=Callback.objects.get().pk)
    response = staff_client.get(path, {"cursor": cursor})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_real_cursor_still_pages(staff_client, make_hook):
    make_hook()
    for name in "abc":
        Order.objects.create(name=name)
    first = staff_client.get("/api/callbacks/", {"page_size": 2}).json()
    second = staff_client.get(first["next"]).json()
    assert len(first["results"]) == 2
    assert len(second["results"]) == 1


@pytest.mark.parametrize("field", ["http_method", "content_type", "model", "name"])
def test_a_lone_surrogate_in_a_body_is_a_400(staff_client, field):
    """A lone surrogate (valid JSON escape, no UTF-8) quoted back in a choice field's
    message made the JSON renderer fail with a 500."""
    valid = {
        "model": "shop.order",
        "signals": ["django.db.models.signals.post_save"],
        "target_url": "http://127.0.0.1:9/",
    }
    valid.pop(field, None)  # given twice, the body would be refused before any field
    body = json.dumps(valid)[:-1] + f', "{field}": "\\ud800"}}'
    response = staff_client.post("/api/hooks/", body, content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["errors"][0]["field"] == field


@pytest.mark.parametrize("value", ["+1", " 1", "1.0", "\u0661", "1_0"])
@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("/api/callbacks/", "hook"),
        ("/api/callbacks/", "response_status"),
        ("/api/callbacks/monitor/?status=error", "callbacks_limit"),
        ("/api/callbacks/monitor/?status=error", "minutes_ago"),
    ],
)
def test_whole_numbers_in_a_query_are_ascii_digits(staff_client, url, name, value):
    joiner = "&" if "?" in url else "?"
    response = staff_client.get(f"{url}{joiner}{urlencode({name: value})}")
    assert_error(response, 400, None, name)


@pytest.mark.parametrize("name", ["callbacks_limit", "minutes_ago"])
def test_an_empty_monitor_parameter_is_a_400(staff_client, name):
    response = staff_client.get(f"/api/callbacks/monitor/?status=error&{name}=")
    assert_error(response, 400, None, name)


def test_a_repeated_ordering_is_one_ordering_of_every_field(staff_client, make_hook):
    """Generated clients send a list as ``?ordering=a&ordering=b``: both count, as
    ``?ordering=a,b`` does, and a wrong one among them is still a 400."""
    for name in ("b", "a", "b", "a"):
        make_hook(name=name)
    ids = [row["id"] for row in staff_client.get("/api/hooks/?ordering=name,-id").json()["results"]]
    repeated = staff_client.get("/api/hooks/?ordering=name&ordering=-id").json()["results"]
    assert [row["id"] for row in repeated] == ids
    assert ids[0] > ids[1]  # name first, then newest
    assert_error(staff_client.get("/api/hooks/?ordering=name&ordering=nope"), 400, None, "ordering")


@pytest.mark.parametrize("value", ["2026-01-31", " 2026-01-31 ", "2026-01-31T"])
def test_a_date_without_its_time_is_no_date_time(staff_client, make_hook, value):
    """The schema's ``date-time`` has a time; Python's parser would take midnight."""
    assert_error(
        staff_client.get("/api/callbacks/", {"created_after": value}), 400, None, "created_after"
    )
    hook = make_hook()
    response = staff_client.post(
        f"/api/hooks/{hook.pk}/recover/", {"since": value, "confirm": True}, format="json"
    )
    assert_error(response, 400, None, "since")


TEXT_AFTER_THE_TIME = pytest.mark.parametrize(
    "value",
    [
        pytest.param("2026-01-31T12:00:00Z\x00", id="nul"),
        pytest.param("2026-01-31T12:00:00+01:00\x00junk", id="nul-then-text"),
        pytest.param("2026-01-31T12:00:00Zjunk", id="text"),
        pytest.param("2026-01-31T12:00:00.5\u0663", id="arabic-indic-digit"),
    ],
)


@TEXT_AFTER_THE_TIME
@pytest.mark.parametrize(
    "name", ["created_after", "created_before", "updated_after", "updated_before"]
)
def test_text_after_a_filters_time_is_a_400_not_that_time(staff_client, name, value):
    """Python's ISO parser stops at a NUL, and Django's regex reads any script's digits:
    both were the time before them."""
    body = assert_error(staff_client.get("/api/callbacks/", {name: value}), 400, None, name)
    assert "nothing after it" in body["errors"][0]["message"]
    response = staff_client.post(f"/api/callbacks/resend/?{urlencode({name: value})}")
    assert_error(response, 400, None, name)


@TEXT_AFTER_THE_TIME
def test_text_after_recovers_time_is_a_400_not_that_time(staff_client, make_hook, value):
    hook = make_hook()
    response = staff_client.post(
        f"/api/hooks/{hook.pk}/recover/", {"since": value, "confirm": True}, format="json"
    )
    body = assert_error(response, 400, None, "since")
    assert "nothing after it" in body["errors"][0]["message"]


def test_a_date_and_time_is_taken(staff_client, make_hook):
    moment = "2026-01-31T12:00:00Z"
    assert staff_client.get("/api/callbacks/", {"created_after": moment}).status_code == 200
    assert (
        staff_client.get("/api/callbacks/", {"created_after": "2026-01-31 12:00"}).status_code
        == 200
    )


@pytest.mark.parametrize("cursor", ["!!!", "", "%00", "A" * 3, "YQ"])
def test_a_cursor_that_is_no_base64_is_a_json_404_not_the_first_page(staff_client, cursor):
    """DRF's decoding drops what is not base64: ``!!!`` would read as no cursor."""
    response = staff_client.get(f"/api/callbacks/?cursor={cursor}")
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("path", ["/api/hooks/", "/api/no-such-thing/", "/api/schema/"])
def test_a_host_django_refuses_is_the_json_400_under_the_api(client, path):
    """Refused by CommonMiddleware before any view: the demo's handler400 answers."""
    response = client.get(path, HTTP_HOST="W/,n-CTr")
    body = assert_error(response, 400, "bad_request")
    assert body["detail"] == "The Host header names no host this server answers to."


def test_a_host_django_refuses_is_django_s_own_400_outside_the_api(client):
    response = client.get("/admin/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("url", ["/api/hooks/", "/api/signals/"])
def test_a_search_is_bounded_and_its_errors_name_it(staff_client, url):
    """Each term of a search is an ``ILIKE`` of every field searched: thousands of terms
    kept the database busy for minutes. Past 100 characters a search is a 400."""
    many = ",".join(["a"] * 2000)
    assert_error(staff_client.get(url, {"search": many}), 400, "max_length", "search")
    assert_error(staff_client.get(url, {"search": "a\x00b"}), 400, None, "search")
    assert staff_client.get(url, {"search": ",".join(["a"] * 50)}).status_code == 200


def test_a_search_term_given_twice_counts_once(staff_client, make_hook):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_hook(name="alpha")
    make_hook(name="beta")
    with CaptureQueriesContext(connection) as once:
        response = staff_client.get("/api/hooks/", {"search": "alpha"})
    assert [hook["name"] for hook in response.json()["results"]] == ["alpha"]
    with CaptureQueriesContext(connection) as twice:
        response = staff_client.get("/api/hooks/", {"search": "alpha alpha,alpha"})
    assert [hook["name"] for hook in response.json()["results"]] == ["alpha"]
    assert [q["sql"] for q in twice.captured_queries] == [q["sql"] for q in once.captured_queries]


def test_a_whole_number_written_with_a_point_is_a_whole_number(staff_client, make_hook):
    """JSON has one kind of number: ``5.0`` is the whole number 5, as JSON Schema (and
    the clients generated from the schema) read it."""
    response = staff_client.post("/api/callbacks/delete-old/", {"days": 249.0}, format="json")
    assert response.status_code == 200, response.content
    hook = make_hook()
    Order.objects.create(name="one")
    pk = Callback.objects.get(hook=hook).pk
    response = staff_client.post(
        "/api/callbacks/send/", {"hook_id": float(hook.pk), "ids": [float(pk)]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert_error(
        staff_client.post("/api/callbacks/delete-old/", {"days": 1e300}, format="json"),
        400,
        None,
        "days",
    )


@pytest.mark.parametrize(
    "action", ["hooks/{hook}/test/", "hooks/{hook}/enable/", "callbacks/{callback}/resend/"]
)
@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("garbage", "application/json", 400),
        ('{"enabled": false}', "application/json", 400),
        ("[]", "application/json", 400),
        ("garbage", "text/plain", 415),
    ],
)
def test_an_action_that_takes_no_body_refuses_one(
    staff_client, make_hook, action, body, content_type, status
):
    hook = make_hook(target_url="http://127.0.0.1:9/hook")
    Order.objects.create(name="one")
    callback = Callback.objects.get(hook=hook)
    Callback.objects.filter(pk=callback.pk).update(status=CallbackStatus.ERROR)
    url = "/api/" + action.format(hook=hook.pk, callback=callback.pk)
    assert_error(staff_client.post(url, body, content_type=content_type), status, None)
    assert Callback.objects.get(pk=callback.pk).status == CallbackStatus.ERROR
    assert staff_client.post(url, "{}", content_type="application/json").status_code == 200
