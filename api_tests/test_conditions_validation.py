"""Bad changed_fields and conditions are refused the same way by the REST API, the
Python API and the admin; the API filters hooks by them."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from http_hooks.api import create_hook, update_hook
from http_hooks.exceptions import InvalidHookError
from http_hooks.models import Hook

from .test_admin import hook_form

pytestmark = pytest.mark.django_db


def nested(depth: int) -> dict:
    conditions: dict = {"paid": True}
    for _ in range(depth):
        conditions = {"not": conditions}
    return conditions


BAD = [
    pytest.param("conditions", [1], "an object", id="conditions-a-list"),
    pytest.param("conditions", {"nope": 1}, "has no field 'nope'", id="unknown-field"),
    pytest.param("conditions", {"name__regex": "x"}, "unknown lookup 'regex'", id="unknown-lookup"),
    pytest.param(
        "conditions", {"customer__nope": 1}, "Customer has no field 'nope'", id="unknown-fk-field"
    ),
    pytest.param(
        "conditions",
        {"name__first__second": 1},
        "name is not a foreign key",
        id="past-a-plain-field",
    ),
    pytest.param("conditions", {"pk__": 1}, "an empty name", id="pk-dunder"),
    pytest.param("conditions", {"__class__": 1}, "an empty name", id="dunder-class"),
    pytest.param("conditions", {"_state": 1}, "has no field '_state'", id="private-attribute"),
    pytest.param("conditions", {"save": 1}, "has no field 'save'", id="a-method"),
    pytest.param("conditions", {"label": "x"}, "has no field 'label'", id="a-property"),
    pytest.param(
        "conditions", {"parcel__name": "x"}, "has no field 'parcel'", id="reverse-relation"
    ),
    pytest.param("conditions", {"name__in": "abc"}, "in takes a list", id="in-not-a-list"),
    pytest.param("conditions", {"paid__isnull": 1}, "isnull takes true or false", id="isnull-int"),
    pytest.param("conditions", {"any": []}, "non-empty list", id="any-empty"),
    pytest.param("conditions", {"any": {"paid": True}}, "non-empty list", id="any-an-object"),
    pytest.param("conditions", {"not": [1]}, "at least one lookup", id="not-a-list"),
    pytest.param("conditions", {"not": {}}, "at least one lookup", id="not-empty"),
    pytest.param("conditions", nested(9), "nested deeper than 8", id="too-deep"),
    pytest.param(
        "conditions",
        {"any": [{"total__gt": i} for i in range(101)]},
        "at most 100",
        id="too-many-lookups",
    ),
    pytest.param("conditions", {"name": "x" * 20_001}, "at most 20000", id="too-large"),
    pytest.param("conditions", {"name": "\ud800"}, "UTF-8", id="lone-surrogate"),
    pytest.param("conditions", {"name": "a\x00b"}, "NUL", id="nul-in-value"),
    pytest.param("conditions", {"na\x00me": "a"}, "NUL", id="nul-in-key"),
    pytest.param("conditions", {"total__gt": "abc"}, "decimal number", id="not-a-number"),
    # PostgreSQL's JSON would give it back as an integer out of range: the hook, read
    # again, would fire for nothing and refuse every later change.
    pytest.param("conditions", {"total__lt": 1e19}, "out of range", id="float-out-of-range"),
    pytest.param("conditions", {"total__lt": -1e308}, "out of range", id="float-far-out"),
    pytest.param("conditions", {"id": 1.5}, "whole numbers, not 1.5", id="fraction-for-an-id"),
    pytest.param(
        "conditions", {"id__in": [2, 2.5]}, "whole numbers, not 2.5", id="fraction-in-a-list"
    ),
    pytest.param("conditions", {"total__contains": "1"}, "text fields only", id="text-on-number"),
    pytest.param("conditions", {"name__gt": None}, "needs a value", id="null-for-gt"),
    pytest.param("conditions", {"name": {"a": 1}}, "string, number or boolean", id="an-object"),
    pytest.param("changed_fields", "paid", "a list of field names", id="changed-a-string"),
    pytest.param("changed_fields", ["nope"], "has no field 'nope'", id="changed-unknown"),
    pytest.param("changed_fields", ["parcel"], "has no field 'parcel'", id="changed-reverse"),
    pytest.param("changed_fields", ["customer_id"], "'customer', not", id="changed-attname"),
    pytest.param("changed_fields", ["__class__"], "has no field", id="changed-dunder"),
    pytest.param("changed_fields", ["a\x00"], "invalid field name", id="changed-nul"),
    pytest.param("changed_fields", ["paid"] * 51, "at most 50", id="changed-too-many"),
]


@pytest.mark.parametrize(("field", "value", "words"), BAD)
def test_the_rest_api_refuses_bad_input_with_the_fields_message(
    staff_client, receiver, field, value, words
):
    body = {
        "model": "shop.order",
        "signals": ["django.db.models.signals.post_save"],
        "target_url": receiver.url(),
        field: value,
    }
    # As JSON text with escapes: the test client would not encode a lone surrogate.
    response = staff_client.post("/api/hooks/", json.dumps(body), content_type="application/json")
    assert response.status_code == 400, response.content
    answer = response.json()
    # A list's item is named by its index (``changed_fields.0``), as for every list.
    assert answer["errors"][0]["field"].split(".")[0] == field, answer
    assert answer["code"] and answer["detail"] and answer["errors"][0]["message"]
    assert not Hook.objects.exists()


@pytest.mark.parametrize(("field", "value", "words"), BAD)
def test_the_python_api_raises_invalid_hook_error(make_hook, field, value, words):
    with pytest.raises(InvalidHookError) as caught:
        make_hook(**{field: value})
    assert caught.value.field == field
    assert words in caught.value.message or value == [1]
    assert not Hook.objects.exists()


# Not in the admin: a string of names, its own format for changed_fields.
ADMIN_BAD = [case for case in BAD if not isinstance(case.values[1], str)]


@pytest.mark.parametrize(("field", "value", "words"), ADMIN_BAD)
def test_the_admin_shows_a_form_error(admin_client, receiver, field, value, words):
    shown = ", ".join(value) if field == "changed_fields" and isinstance(value, list) else value
    form = hook_form(receiver, **{field: json.dumps(shown) if field == "conditions" else shown})
    response = admin_client.post(reverse("admin:http_hooks_hook_add"), form)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors, errors
    assert not Hook.objects.exists()


def test_python_api_refuses_non_string_keys_and_non_finite_numbers(make_hook):
    with pytest.raises(InvalidHookError, match="keys must be strings"):
        make_hook(conditions={1: "x"})
    with pytest.raises(InvalidHookError, match="finite"):
        make_hook(conditions={"total__gt": float("nan")})
    with pytest.raises(InvalidHookError, match="hidden field"):
        make_hook(model="admin.logentry", conditions={"user__password__startswith": "p"})


@pytest.mark.parametrize("combinator", ["not", "any"])
def test_eight_levels_of_not_or_any_are_taken_nine_are_not(make_hook, combinator):
    """As the README and the schema say: 8 levels (the outer object was counted as one)."""

    def levels(depth: int) -> dict:
        conditions: dict = {"paid": True}
        for _ in range(depth):
            conditions = {"not": conditions} if combinator == "not" else {"any": [conditions]}
        return conditions

    make_hook(conditions=levels(8))
    with pytest.raises(InvalidHookError, match="nested deeper than 8 levels"):
        make_hook(conditions=levels(9))


def test_changed_fields_needs_a_save_signal(make_hook):
    with pytest.raises(InvalidHookError, match="pre_save and post_save"):
        make_hook(signals=["django.db.models.signals.post_delete"], changed_fields=["paid"])


def test_a_failed_update_changes_nothing(make_hook):
    hook = make_hook(conditions={"paid": True}, changed_fields=["paid"])
    with pytest.raises(InvalidHookError):
        update_hook(hook, conditions={"nope": 1})
    hook.refresh_from_db()
    assert (hook.conditions, hook.changed_fields) == ({"paid": True}, ["paid"])


def test_good_values_are_stored_as_given(staff_client, receiver):
    body = {
        "model": "shop.order",
        "signals": ["django.db.models.signals.post_save"],
        "target_url": receiver.url(),
        "changed_fields": ["paid", "total", "paid"],
        "conditions": {"any": [{"total__gte": 100}, {"customer__is_vip": True}]},
    }
    response = staff_client.post("/api/hooks/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["changed_fields"] == ["paid", "total"]
    assert response.json()["conditions"] == body["conditions"]
    hook_id = response.json()["id"]
    response = staff_client.patch(f"/api/hooks/{hook_id}/", {"conditions": {}}, format="json")
    assert response.json()["conditions"] == {}


def test_the_admin_offers_a_new_hook_empty_conditions(admin_client):
    page = admin_client.get(reverse("admin:http_hooks_hook_add")).content.decode()
    assert 'id="id_conditions">\n{}</textarea>' in page


def test_the_admin_saves_both_fields(admin_client, receiver):
    form = hook_form(receiver, changed_fields="paid, total", conditions='{"paid": true}')
    response = admin_client.post(reverse("admin:http_hooks_hook_add"), form)
    assert response.status_code == 302
    hook = Hook.objects.get()
    assert (hook.changed_fields, hook.conditions) == (["paid", "total"], {"paid": True})
    change = reverse("admin:http_hooks_hook_change", args=[hook.pk])
    assert 'value="paid, total"' in admin_client.get(change).content.decode()
    form = hook_form(receiver, changed_fields="total", conditions="")
    response = admin_client.post(change, {**form, "initial-enabled": "on"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    hook.refresh_from_db()
    assert (hook.changed_fields, hook.conditions) == (["total"], {})


# --- filters -----------------------------------------------------------------------


def test_hooks_are_filtered_by_conditions_and_changed_field(staff_client):
    plain = create_hook(
        ["django.db.models.signals.post_save"], "shop.order", target_url="http://a.example/"
    )
    with_conditions = create_hook(
        ["django.db.models.signals.post_save"],
        "shop.order",
        target_url="http://b.example/",
        conditions={"paid": True},
        changed_fields=["total", "paid"],
    )

    def ids(query: str) -> list[int]:
        response = staff_client.get(f"/api/hooks/?{query}")
        assert response.status_code == 200, response.content
        return [hook["id"] for hook in response.json()["results"]]

    assert ids("has_conditions=true") == [with_conditions.pk]
    assert ids("has_conditions=false") == [plain.pk]
    assert ids("changed_field=paid") == [with_conditions.pk]
    assert ids("changed_field=pai") == []
    assert ids("changed_field=name") == []


@pytest.mark.parametrize(
    "query",
    ["has_conditions=maybe", "has_conditions=", "changed_field=a%22b", "changed_field=a%00"],
)
def test_bad_filter_values_are_a_400(staff_client, query):
    response = staff_client.get(f"/api/hooks/?{query}")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == query.split("=")[0]


def test_the_browsable_api_shows_both_fields(staff_client, make_hook):
    hook = make_hook(changed_fields=["paid"], conditions={"total__gte": 100})
    for path in ("/api/hooks/", f"/api/hooks/{hook.pk}/", "/api/hooks/?has_conditions=true"):
        response = staff_client.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 200
        page = response.content.decode()
        assert "changed_fields" in page and "total__gte" in page
