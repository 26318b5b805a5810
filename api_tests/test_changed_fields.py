"""Hook.changed_fields: an update fires only if a watched field changed, through real saves."""

from __future__ import annotations

from decimal import Decimal

import pytest

from http_hooks.api import update_hook
from http_hooks.models import Callback, Hook
from http_hooks.registry import registry
from shop.models import Customer, Order

pytestmark = pytest.mark.django_db

PRE_SAVE = "django.db.models.signals.pre_save"
POST_SAVE = "django.db.models.signals.post_save"


def events() -> list[str]:
    return list(Callback.objects.order_by("id").values_list("event_type", flat=True))


@pytest.fixture(params=[POST_SAVE, PRE_SAVE])
def watch_paid(request, make_hook):
    """A hook on orders that fires when ``paid`` changes, on pre_save and on post_save."""
    return make_hook(signals=[request.param], changed_fields=["paid"])


def test_a_create_always_fires(watch_paid):
    Order.objects.create(name="x")
    assert events() == ["created"]


def test_an_update_fires_only_when_a_watched_field_changed(watch_paid):
    item = Order.objects.create(name="x")
    item.name = "y"
    item.save()
    assert events() == ["created"]
    item.paid = True
    item.save()
    assert events() == ["created", "updated"]
    item.save()  # nothing changed since the last save
    assert events() == ["created", "updated"]


def test_a_loaded_instance_is_compared_with_the_values_it_was_loaded_with(watch_paid):
    Order.objects.create(name="x")
    item = Order.objects.get()
    item.save()
    item.paid = True
    item.save()
    assert events() == ["created", "updated"]


def test_setting_the_same_value_again_is_no_change(watch_paid):
    item = Order.objects.create(name="x", paid=True)
    item.paid = False
    item.paid = True
    item.save()
    assert events() == ["created"]


def test_update_fields_is_honoured(watch_paid):
    item = Order.objects.create(name="x")
    item.paid = True
    item.save(update_fields=["name"])  # paid changed, but this save does not write it
    assert events() == ["created"]
    item.save(update_fields=["paid"])
    assert events() == ["created", "updated"]
    item.save(update_fields=["paid"])
    assert events() == ["created", "updated"]


def test_a_change_left_out_of_update_fields_counts_at_a_later_full_save(watch_paid):
    item = Order.objects.create(name="x")
    item.paid = True
    item.save(update_fields=["name"])
    item.save()
    assert events() == ["created", "updated"]


def test_a_foreign_key_is_compared_by_its_key(make_hook):
    make_hook(changed_fields=["customer"])
    acme, other = Customer.objects.create(name="a"), Customer.objects.create(name="b")
    item = Order.objects.create(name="x", customer=acme)
    item.customer = Customer.objects.get(pk=acme.pk)  # another object, the same key
    item.save()
    item.customer = other
    item.save(update_fields=["customer"])
    assert events() == ["created", "updated"]


def test_several_hooks_on_one_save_see_the_same_change(make_hook):
    make_hook(signals=[PRE_SAVE], changed_fields=["total"])
    make_hook(signals=[POST_SAVE], changed_fields=["total"])
    make_hook(signals=[POST_SAVE], changed_fields=["name", "total"])
    item = Order.objects.create(name="x")
    Callback.objects.all().delete()
    item.total = Decimal("10")
    item.save()
    assert events() == ["updated"] * 3


def test_a_save_inside_a_post_save_receiver_compares_with_the_outer_save(make_hook):
    from django.db.models.signals import post_save

    make_hook(changed_fields=["paid"])

    def mark_notes(sender, instance, **kwargs):
        if instance.notes != "seen":
            instance.notes = "seen"
            instance.save()

    post_save.connect(mark_notes, sender=Order)
    try:
        item = Order.objects.create(name="x")
        item.paid = True
        item.save()
    finally:
        post_save.disconnect(mark_notes, sender=Order)
    # Each change of paid once: the nested saves changed notes only.
    assert events() == ["created", "updated"]


def test_refresh_from_db_does_not_move_the_compared_values(make_hook):
    make_hook(changed_fields=["paid"])
    item = Order.objects.create(name="x")
    Order.objects.filter(pk=item.pk).update(paid=True)  # no signal
    item.refresh_from_db()
    item.save()  # paid differs from what this instance last loaded or saved
    item.save()
    assert events() == ["created", "updated"]


def test_a_deferred_field_is_unknown_and_fires_once_loaded(make_hook):
    make_hook(changed_fields=["paid"])
    Order.objects.create(name="x")
    Callback.objects.all().delete()
    item = Order.objects.only("name").get()
    item.save()  # Django saves the loaded fields only: paid is not written
    assert events() == []
    assert item.paid is False  # loads it, after the instance was made
    item.save()
    assert events() == ["updated"]


def test_bulk_create_and_queryset_update_send_no_signal(make_hook):
    make_hook(changed_fields=["paid"])
    Order.objects.bulk_create([Order(name="a"), Order(name="b")])
    Order.objects.update(paid=True)
    assert events() == []


def test_an_instance_made_before_its_model_was_watched_is_unknown_and_fires(make_hook):
    registry.reload()  # what this database holds: no hook
    item = Order.objects.create(name="x")
    make_hook(changed_fields=["paid"])
    item.save()
    item.save()
    assert events() == ["updated"]


def test_a_model_without_such_hooks_keeps_no_copy(make_hook):
    hook = make_hook(changed_fields=["paid"])
    assert "_http_hooks_loaded" in vars(Order(name="x"))
    assert "_http_hooks_loaded" not in vars(Customer(name="c"))
    update_hook(hook, changed_fields=[])
    registry.reload()  # as after the commit
    try:
        assert "_http_hooks_loaded" not in vars(Order(name="y"))
    finally:
        registry.invalidate()  # the hook is rolled back with the test


@pytest.mark.django_db(transaction=True)
def test_changed_fields_written_without_signals_are_noticed_after_the_ttl(make_hook, settings):
    from django.utils import timezone

    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, "REGISTRY_TTL": 0}
    hook = make_hook()
    # As another process writes it: no model signal here, the fingerprint notices it.
    Hook.objects.filter(pk=hook.pk).update(changed_fields=["paid"], update_datetime=timezone.now())
    Order.objects.create(name="x")
    item = Order.objects.get()
    item.save()
    item.paid = True
    item.save()
    assert events() == ["created", "updated"]


def test_other_signals_ignore_changed_fields(make_hook):
    make_hook(signals=[POST_SAVE, "django.db.models.signals.post_delete"], changed_fields=["paid"])
    item = Order.objects.create(name="x")
    item.save()
    item.delete()
    assert events() == ["created", "django.db.models.signals.post_delete"]
