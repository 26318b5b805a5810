"""Every JSON body http_hooks sends is JSON a strict parser takes (RFC 8259: no NaN,
no Infinity), as JavaScript's ``JSON.parse``, Go or a Standard Webhooks verifier
reads it: what arrives at a real receiver is parsed refusing those words."""

import decimal
import json
import math

import pytest
from django.urls import reverse

from http_hooks.api import send_callbacks, send_event
from http_hooks.delivery import send_test_event
from http_hooks.models import Callback
from shop.models import Order, Parcel
from shop.signals import order_shipped

pytestmark = pytest.mark.django_db

NON_FINITE = pytest.mark.parametrize(
    "number", [math.nan, math.inf, -math.inf], ids=["nan", "infinity", "-infinity"]
)


def strict(body: bytes):
    def refuse(word: str):
        raise ValueError(f"{word} is not JSON")

    return json.loads(body, parse_constant=refuse)


def delivered(receiver) -> list:
    """Send what is due to the receiver; the bodies that arrived, parsed strictly,
    ordered by their text."""
    assert send_callbacks().sent == len(receiver.requests) > 0
    return [strict(body) for body in sorted(request.body for request in receiver.requests)]


@NON_FINITE
def test_a_non_finite_float_of_the_default_payload_arrives_as_null(make_hook, receiver, number):
    make_hook(model="shop.parcel")
    parcel = Parcel.objects.create(name="Box", weight=number)

    [body] = delivered(receiver)
    assert body["object_serialization"] == {
        "id": parcel.pk,
        "name": "Box",
        "nested_attribute": None,
        "weight": None,
    }


@pytest.mark.postgres
@NON_FINITE
def test_a_non_finite_float_read_from_postgresql_arrives_as_null(make_hook, receiver, number):
    """PostgreSQL's double precision stores NaN and the infinities (SQLite makes NaN NULL)."""
    make_hook(model="shop.parcel", signals=["django.db.models.signals.post_delete"])
    Parcel.objects.create(name="Box", weight=number)
    parcel = Parcel.objects.get()
    assert parcel.weight == number or math.isnan(parcel.weight)
    parcel.delete()

    [body] = delivered(receiver)
    assert body["object_serialization"]["weight"] is None


@NON_FINITE
def test_a_non_finite_float_of_a_serializers_payload_arrives_as_null(make_hook, receiver, number):
    make_hook(model="shop.parcel", serializer_class="shop.serializers.ParcelSerializer")
    parcel = Parcel.objects.create(name="Box", weight=number)

    assert delivered(receiver) == [{"id": parcel.pk, "name": "Box", "weight": None}]


def test_finite_floats_and_decimals_keep_their_text(make_hook, receiver):
    make_hook(model="shop.parcel")
    make_hook(model="shop.order")
    Parcel.objects.create(name="NaN Infinity", weight=1e20)
    Order.objects.create(name="-Infinity", total=decimal.Decimal("12345678.90"))

    order, parcel = delivered(receiver)
    assert (order["object_serialization"]["name"], parcel["object_serialization"]["name"]) == (
        "-Infinity",
        "NaN Infinity",
    )
    texts = sorted(request.text for request in receiver.requests)
    assert '"total": 12345678.90' in texts[0]
    assert '"weight": 1e+20' in texts[1]


def test_non_finite_floats_a_template_renders_in_a_list_arrive_as_null(make_hook, receiver):
    """A bare placeholder of NaN was null already; one in a list or an object made the
    payload invalid JSON (an error callback, nothing sent)."""
    make_hook(
        signals=["shop.signals.order_shipped"],
        content_type="application/json",
        payload_template='{"id": {{instance.id}}, "carrier": {{carrier}}, "c": "{{carrier}}"}',
    )
    order = Order.objects.create(name="Tea")
    carrier = {"name": "Post", "loads": [12.5, math.nan, math.inf, -math.inf]}
    order_shipped.send(sender=Order, instance=order, carrier=carrier)

    [body] = delivered(receiver)
    nulled = {"name": "Post", "loads": [12.5, None, None, None]}
    assert body == {"id": order.pk, "carrier": nulled, "c": json.dumps(nulled)}


def test_an_explicit_event_and_the_test_event_are_strict_json(make_hook, receiver):
    hook = make_hook(event_types=["order.paid"])
    send_event("order.paid", {"total": 1e20, "ratio": 0.1, "rates": [1.5, -0.0]})
    [event] = delivered(receiver)
    assert event["data"] == {"total": 1e20, "ratio": 0.1, "rates": [1.5, -0.0]}

    receiver.requests.clear()
    assert send_test_event(hook).response_status == 200
    assert strict(receiver.requests[0].body)["hook_id"] == hook.pk


def test_a_stored_payload_holding_nan_is_shown_as_text_never_a_500(
    make_hook, staff_client, admin_client
):
    """A payload is stored as text (one copied from the old package may hold NaN): the
    API and the admin show it as it is and parse it nowhere; the JSON fields of hooks
    and attempts cannot hold NaN (SQLite's JSON_VALID constraint, PostgreSQL's jsonb)."""
    make_hook()
    Order.objects.create(name="Tea")
    callback = Callback.objects.get()
    Callback.objects.filter(pk=callback.pk).update(payload='{"x": NaN}')

    response = staff_client.get(f"/api/callbacks/{callback.pk}/")
    assert strict(response.content)["payload"] == '{"x": NaN}'
    change = reverse("admin:http_hooks_callback_change", args=[callback.pk])
    assert admin_client.get(change).status_code == 200
