"""Hook.conditions: lookups tested on the saved instance, through real saves."""

from __future__ import annotations

import datetime
import logging
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from http_hooks.api import send_callbacks, update_hook
from http_hooks.models import Callback
from shop.models import Customer, Order, Parcel

pytestmark = pytest.mark.django_db

PRE_SAVE = "django.db.models.signals.pre_save"


def fired(make_hook, conditions, save):
    """How many callbacks ``save()`` made for a new hook with ``conditions`` (the only
    enabled one)."""
    hook = make_hook(conditions=conditions)
    save()
    count = Callback.objects.filter(hook=hook).count()
    update_hook(hook, enabled=False)
    return count


def order(**fields):
    return lambda: Order.objects.create(**{"name": "Big order", "total": Decimal("150"), **fields})


LOOKUP_CASES = [
    ({"name": "Big order"}, {"name": "Small"}),
    ({"name__exact": "Big order"}, {"name__exact": "big order"}),
    ({"name__iexact": "BIG ORDER"}, {"name__iexact": "big"}),
    ({"name__in": ["x", "Big order"]}, {"name__in": ["x", "y"]}),
    ({"total__gt": 100}, {"total__gt": 150}),
    ({"total__gte": "150.00"}, {"total__gte": 150.01}),
    ({"total__lt": 200}, {"total__lt": 150}),
    ({"total__lte": 150}, {"total__lte": 149.99}),
    ({"customer__isnull": True}, {"customer__isnull": False}),
    ({"notes__isnull": False}, {"notes__isnull": True}),
    ({"name__contains": "g o"}, {"name__contains": "G O"}),
    ({"name__icontains": "G O"}, {"name__icontains": "small"}),
    ({"name__startswith": "Big"}, {"name__startswith": "big"}),
    ({"name__endswith": "order"}, {"name__endswith": "Order"}),
    ({"paid": False}, {"paid": True}),
    ({"placed_on": "2026-01-02"}, {"placed_on__gt": "2026-01-02"}),
    ({"shipped_at__lt": "2026-01-02T12:00:00Z"}, {"shipped_at__gte": "2026-01-02T12:00:00+00:00"}),
]


@pytest.mark.parametrize(
    ("true", "false"),
    LOOKUP_CASES,
    ids=[next(iter(true)) for true, _ in LOOKUP_CASES],
)
def test_each_lookup_fires_when_true_and_not_when_false(make_hook, true, false):
    save = order(
        placed_on=datetime.date(2026, 1, 2),
        shipped_at=datetime.datetime(2026, 1, 2, 11, tzinfo=datetime.UTC),
    )
    assert fired(make_hook, true, save) == 1
    assert fired(make_hook, false, save) == 0


def test_several_keys_must_all_hold(make_hook):
    assert fired(make_hook, {"name": "Big order", "total__gt": 1000}, order()) == 0
    assert fired(make_hook, {"name": "Big order", "total__gt": 100}, order()) == 1


def test_not_and_any_nest(make_hook):
    conditions = {
        "any": [
            {"total__gt": 1000},
            {"not": {"any": [{"paid": True}, {"name__startswith": "Small"}]}},
        ]
    }
    make_hook(conditions=conditions)
    Order.objects.create(name="Big order", total=5)
    assert Callback.objects.count() == 1
    Callback.objects.all().delete()
    Order.objects.create(name="Small one", total=5)
    Order.objects.create(name="x", total=5, paid=True)
    assert Callback.objects.count() == 0
    Order.objects.create(name="Small but big", total=5000)
    assert Callback.objects.count() == 1


def test_foreign_keys_are_followed(make_hook):
    vip = Customer.objects.create(name="Acme", is_vip=True)
    other = Customer.objects.create(name="Other")
    make_hook(conditions={"customer__is_vip": True, "customer__name__startswith": "A"})
    Order.objects.create(name="a", customer=vip)
    Order.objects.create(name="b", customer=other)
    assert list(Callback.objects.values_list("object_id", flat=True)) == [
        str(Order.objects.get(name="a").pk)
    ]


def test_a_null_foreign_key_on_the_way_is_false_except_for_isnull(make_hook):
    make_hook(conditions={"customer__is_vip": False})
    make_hook(conditions={"not": {"customer__is_vip": True}})
    make_hook(conditions={"customer__name__isnull": True})
    Order.objects.create(name="no customer")
    assert Callback.objects.count() == 2


def test_two_foreign_keys_deep_and_the_key_column_without_a_query(make_hook):
    acme = Customer.objects.create(name="Acme", is_vip=True)
    make_hook(model="shop.parcel", conditions={"nested_attribute__name": "Acme"})
    make_hook(model="shop.parcel", conditions={"nested_attribute__id": acme.pk})
    make_hook(model="shop.parcel", conditions={"nested_attribute": acme.pk})
    parcel = Parcel(name="p", nested_attribute_id=acme.pk)
    with CaptureQueriesContext(connection) as queries:
        parcel.save()
    assert Callback.objects.count() == 3
    # One query follows the foreign key; the key column is read as it is.
    reads = [q["sql"] for q in queries.captured_queries if 'FROM "shop_customer"' in q["sql"]]
    assert len(reads) == 1


def test_a_file_is_compared_by_its_name(make_hook):
    make_hook(model="shop.customer", conditions={"avatar": "avatars/a.png"})
    make_hook(model="shop.customer", conditions={"avatar__startswith": "avatars/"})
    make_hook(model="shop.customer", conditions={"avatar": ""})
    Customer.objects.create(name="with", avatar="avatars/a.png")
    assert Callback.objects.count() == 2
    Customer.objects.create(name="without")
    assert Callback.objects.count() == 3


def test_a_pre_save_hook_sees_the_values_about_to_be_saved(make_hook):
    make_hook(signals=[PRE_SAVE], conditions={"paid": True})
    item = Order.objects.create(name="x")
    assert Callback.objects.count() == 0
    item.paid = True
    item.save()
    assert Callback.objects.get().event_type == "updated"


def test_a_type_mismatch_is_false_and_logged_once_without_raising(make_hook, caplog):
    hook = make_hook(conditions={"total__gt": 10})
    with caplog.at_level(logging.WARNING, logger="http_hooks.conditions"):
        # Django saves the text, but the instance keeps it: "12.50" > Decimal(10) fails.
        Order.objects.create(name="a", total="12.50")
        Order.objects.create(name="b", total="13.50")
    assert Callback.objects.count() == 0
    warnings = [r for r in caplog.records if r.name == "http_hooks.conditions"]
    assert len(warnings) == 1
    assert f"hook {hook.pk}" in warnings[0].getMessage()
    Order.objects.create(name="c", total=Decimal("12.50"))
    assert Callback.objects.count() == 1


def test_conditions_apply_to_other_signals_with_an_instance(make_hook):
    make_hook(signals=["django.db.models.signals.post_delete"], conditions={"paid": True})
    Order.objects.create(name="a").delete()
    Order.objects.create(name="b", paid=True).delete()
    assert list(Callback.objects.values_list("event_type", flat=True)) == [
        "django.db.models.signals.post_delete"
    ]


def test_a_change_of_conditions_applies_at_once(make_hook):
    hook = make_hook(conditions={"paid": True})
    Order.objects.create(name="a")
    assert Callback.objects.count() == 0
    update_hook(hook, conditions={"paid": False})
    Order.objects.create(name="b")
    update_hook(hook, conditions={})
    Order.objects.create(name="c", paid=True)
    assert Callback.objects.count() == 2


def test_only_matching_saves_are_delivered(make_hook, receiver):
    make_hook(conditions={"total__gte": 100}, payload_template='{"name": "{{ instance.name }}"}')
    Order.objects.create(name="small", total=5)
    Order.objects.create(name="big", total=500)
    report = send_callbacks()
    assert report.sent == 1
    (request,) = receiver.wait_for(1)
    assert request.json() == {"name": "big"}
