"""Tenants in the registry: an owned hook fires only for its owner's instances
(``OWNER_FIELDS``), and one hook's change reaches other processes without a reload
of every hook."""

from __future__ import annotations

import datetime
import threading

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from http_hooks.api import create_hook, create_signal, delete_hook, send_event, update_hook
from http_hooks.checks import check_settings
from http_hooks.exceptions import InvalidHookError
from http_hooks.models import Callback, Hook
from http_hooks.registry import HookRegistry
from http_hooks.services import set_hook_enabled
from shop.models import Customer, Order

from .test_admin import hook_form

POST_SAVE = "django.db.models.signals.post_save"
PRE_DELETE = "django.db.models.signals.pre_delete"
OWNERS = {"OWNER_MODEL": "shop.Customer", "OWNER_FIELDS": {"shop.Order": "customer"}}


@pytest.fixture
def owners(settings):
    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, **OWNERS}
    return Customer.objects.create(name="alice"), Customer.objects.create(name="bob")


def fired(order: Order) -> set[int]:
    """The hooks that stored a callback for ``order``."""
    return set(Callback.objects.filter(object_id=str(order.pk)).values_list("hook_id", flat=True))


def candidates(registry: HookRegistry, order: Order) -> set[int]:
    """The hooks ``registry`` finds for a post_save of ``order``."""
    bucket = registry.table().get((POST_SAVE, Order))
    return {hook.pk for hook in bucket.for_instance(order)} if bucket else set()


# --- isolation ---------------------------------------------------------------------


@pytest.mark.django_db
def test_an_owned_hook_fires_only_for_its_owners_instances(make_hook, owners):
    alice, bob = owners
    project = make_hook(name="project")
    alices, bobs = make_hook(owner=alice), make_hook(owner=bob)
    for_alice = Order.objects.create(name="a", customer=alice)
    for_bob = Order.objects.create(name="b", customer=bob)
    nobodys = Order.objects.create(name="nobody's")
    assert fired(for_alice) == {project.pk, alices.pk}
    assert fired(for_bob) == {project.pk, bobs.pk}
    assert fired(nobodys) == {project.pk}
    assert set(Callback.objects.filter(hook=alices).values_list("owner", flat=True)) == {
        str(alice.pk)
    }


@pytest.mark.django_db
def test_an_order_that_changes_hands_fires_for_its_new_owner(make_hook, owners):
    alice, bob = owners
    alices, bobs = make_hook(owner=alice), make_hook(owner=bob)
    order = Order.objects.create(name="x", customer=alice)
    order.customer = bob
    order.save()
    created, updated = Callback.objects.order_by("id").values_list("hook_id", flat=True)
    assert (created, updated) == (alices.pk, bobs.pk)


@pytest.mark.django_db
def test_the_owner_is_read_from_the_foreign_key_column_without_a_query(make_hook, owners):
    alice, _ = owners
    make_hook(owner=alice)
    Order.objects.create(name="x", customer=alice)
    order = Order.objects.get(name="x")  # customer not loaded: only customer_id
    with CaptureQueriesContext(connection) as queries:
        order.save()
    assert [q["sql"].split()[0] for q in queries] == ["UPDATE", "INSERT"]
    assert Callback.objects.count() == 2


@pytest.mark.django_db
def test_a_path_ending_at_the_owners_key_reads_the_foreign_key_column(make_hook, owners, settings):
    alice, bob = owners
    settings.HTTP_HOOKS = {
        **settings.HTTP_HOOKS,
        "OWNER_FIELDS": {"shop.Order": "customer__pk", "shop.Customer": "pk"},
    }
    on_orders = make_hook(owner=alice)
    on_customers = make_hook(model="shop.customer", owner=bob)
    order = Order.objects.create(name="x", customer=alice)
    bob.save()
    alice.save()
    assert fired(order) == {on_orders.pk}
    assert list(Callback.objects.filter(hook=on_customers).values_list("object_id", flat=True)) == [
        str(bob.pk)
    ]


@pytest.mark.django_db
def test_the_owner_is_found_through_two_foreign_keys(make_hook):
    """The demo's OWNER_FIELDS: an order is its customer's account's (a user's)."""
    alice, bob = (User.objects.create_user(name) for name in ("alice", "bob"))
    project, alices, bobs = make_hook(), make_hook(owner=alice), make_hook(owner=bob)
    customer = Customer.objects.create(name="c", account=alice)
    for_alice = Order.objects.create(name="a", customer=customer)
    without_account = Order.objects.create(name="b", customer=Customer.objects.create(name="d"))
    customer.account = bob
    customer.save()
    for_bob = Order.objects.create(name="c", customer=customer)
    assert fired(for_alice) == {project.pk, alices.pk}
    assert fired(without_account) == {project.pk}
    assert fired(for_bob) == {project.pk, bobs.pk}


@pytest.mark.django_db
def test_owned_hooks_on_a_model_without_owner_fields_never_fire(
    make_hook, owners, settings, caplog
):
    alice, _ = owners
    project, alices = make_hook(), make_hook(owner=alice)
    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, "OWNER_FIELDS": {}}
    order = Order.objects.create(name="x", customer=alice)
    assert fired(order) == {project.pk}
    assert f"hook {alices.pk} ignored: it has an owner" in caplog.text


# --- refused when written, reported by the checks -------------------------------------


@pytest.mark.django_db
def test_a_hook_with_an_owner_is_refused_on_a_model_without_owner_fields(make_hook, owners):
    alice, _ = owners
    with pytest.raises(InvalidHookError, match="OWNER_FIELDS") as caught:
        make_hook(model="shop.parcel", owner=alice)
    assert caught.value.field == "model"
    project = make_hook(model="shop.parcel")
    with pytest.raises(InvalidHookError, match="OWNER_FIELDS"):
        update_hook(project, owner=alice)
    owned = make_hook(owner=alice)
    with pytest.raises(InvalidHookError, match="OWNER_FIELDS"):
        update_hook(owned, model="shop.parcel")
    assert list(Hook.objects.order_by("pk").values_list("model__model", "owner")) == [
        ("parcel", ""),
        ("order", str(alice.pk)),
    ]


@pytest.mark.django_db
def test_the_rest_api_answers_400_for_an_owned_hook_on_a_model_without_owner_fields(
    staff_client, receiver, owners
):
    alice, _ = owners
    body = {"model": "shop.parcel", "signals": [POST_SAVE], "target_url": receiver.url()}
    response = staff_client.post("/api/hooks/", {**body, "owner": str(alice.pk)}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == "model"
    assert "OWNER_FIELDS" in response.json()["errors"][0]["message"]
    assert not Hook.objects.exists()


@pytest.mark.django_db
def test_the_admin_shows_a_form_error_for_an_owned_hook_on_a_model_without_owner_fields(
    admin_client, receiver, owners
):
    alice, _ = owners
    form = hook_form(receiver, model="shop.parcel", owner=str(alice.pk), payload_template="")
    response = admin_client.post(reverse("admin:http_hooks_hook_add"), form)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "OWNER_FIELDS" in str(errors.get("model")), errors
    assert not Hook.objects.exists()


@pytest.mark.parametrize(
    ("value", "words"),
    [
        pytest.param(["shop.Order"], "Use a dict", id="not-a-dict"),
        pytest.param({"shop.Nothing": "customer"}, "not an installed model", id="no-model"),
        pytest.param({"shop.Order": "buyer"}, "has no field 'buyer'", id="no-field"),
        pytest.param({"shop.Order": "name__x"}, "not a foreign key", id="not-a-foreign-key"),
        pytest.param({"shop.Order": "name"}, "not at a foreign key to shop.Customer", id="text"),
        pytest.param({"shop.Parcel": "nested_attribute__name"}, "ends at", id="wrong-end"),
        pytest.param({"auth.User": "groups"}, "not a concrete field", id="many-to-many"),
        pytest.param({"shop.Order": ""}, "non-empty string", id="empty"),
    ],
)
def test_bad_owner_fields_are_a_system_check_error(settings, value, words):
    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, **OWNERS, "OWNER_FIELDS": value}
    errors = [e for e in check_settings() if e.id == "http_hooks.E029"]
    assert len(errors) == 1 and words in errors[0].hint, errors


def test_good_owner_fields_pass_the_check(settings):
    settings.HTTP_HOOKS = {
        **settings.HTTP_HOOKS,
        **OWNERS,
        "OWNER_FIELDS": {"shop.Order": "customer", "shop.Parcel": "nested_attribute__id"},
    }
    assert not [e for e in check_settings() if e.id == "http_hooks.E029"]


@pytest.mark.django_db
def test_the_database_check_reports_owned_hooks_that_cannot_fire(make_hook, owners, settings):
    alice, bob = owners
    make_hook(owner=alice)
    make_hook(owner=bob)
    call_command("check", databases=["default"])
    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, "OWNER_FIELDS": {}}
    with pytest.raises(SystemCheckError, match=r"http_hooks.E030.*2 hook.*shop.order"):
        call_command("check", databases=["default"])


# --- another process's registry takes in one hook's change ------------------------------


@pytest.fixture
def other(owners, settings, make_hook):
    """Another process's registry (checking at every lookup), with owned hooks loaded."""
    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, "REGISTRY_TTL": 0}
    alice, bob = owners
    for owner in (alice, bob, alice):
        make_hook(owner=owner)
    registry = HookRegistry()
    registry.reload()
    return registry


def kept(before: dict, registry: HookRegistry, changed: set[int]) -> bool:
    """Whether every hook but ``changed`` is the very object loaded before: not read again."""
    after = registry.loaded().hooks
    return all(after.get(pk) is hook for pk, hook in before.items() if pk not in changed)


@pytest.mark.django_db
@pytest.mark.parametrize("change", ["create", "update", "disable", "delete", "signals"])
def test_one_hook_change_reaches_another_registry_alone(other, owners, make_hook, change):
    alice, bob = owners
    order = Order.objects.create(name="x", customer=alice)
    before = dict(other.loaded().hooks)
    hook = Hook.objects.filter(owner=str(alice.pk)).first()
    expected = candidates(other, order)
    if change == "create":
        hook = make_hook(owner=alice)
    elif change == "update":
        update_hook(hook, owner=bob)
    elif change == "disable":
        set_hook_enabled(hook, False)
    elif change == "delete":
        delete_hook(Hook.objects.get(pk=hook.pk))
    else:
        hook.signals.set([create_signal(signal=PRE_DELETE)])
    expected ^= {hook.pk}
    assert candidates(other, order) == expected
    assert kept(before, other, {hook.pk})


@pytest.mark.django_db
def test_changes_without_model_signals_reach_another_registry(other, owners, make_hook):
    """A queryset update that leaves update_datetime alone, and links changed by hand."""
    alice, _ = owners
    order = Order.objects.create(name="x", customer=alice)
    first, second = Hook.objects.filter(owner=str(alice.pk)).order_by("pk")
    before = dict(other.loaded().hooks)
    Hook.objects.filter(pk=first.pk).update(enabled=False)
    assert candidates(other, order) == {second.pk}
    links = Hook.signals.through.objects.filter(hook=second)
    links.update(signal=create_signal(signal=PRE_DELETE))
    assert candidates(other, order) == set()
    assert kept(before, other, {first.pk, second.pk})


@pytest.mark.django_db
def test_nothing_changed_costs_one_query_and_keeps_everything(other, owners):
    alice, _ = owners
    order = Order.objects.create(name="x", customer=alice)
    candidates(other, order)
    state = other.loaded()
    with CaptureQueriesContext(connection) as queries:
        candidates(other, order)
    # One fingerprint query (in a savepoint: the test runs in a transaction).
    assert [q["sql"].split()[0] for q in queries if "SAVEPOINT" not in q["sql"]] == ["SELECT"]
    assert other.loaded() is state


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_change_committed_after_a_later_one_still_reaches_another_registry(other, owners):
    """A transaction that wrote its hook a minute ago commits after another that wrote
    one since: the latest update time the other registry saw is the later one's."""
    alice, bob = owners
    late = Hook.objects.get(owner=str(bob.pk))
    early = Hook.objects.filter(owner=str(alice.pk)).first()
    written, release = threading.Event(), threading.Event()

    def slow_transaction() -> None:
        try:
            with transaction.atomic():
                Hook.objects.filter(pk=late.pk).update(
                    target_url="http://127.0.0.1:9/late",
                    update_datetime=timezone.now() - datetime.timedelta(minutes=1),
                )
                written.set()
                release.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_transaction)
    thread.start()
    try:
        assert written.wait(30)
        update_hook(early, target_url="http://127.0.0.1:9/early")
        other.refresh()
        assert other.loaded().hooks[early.pk].target_url == "http://127.0.0.1:9/early"
        assert other.loaded().hooks[late.pk].target_url != "http://127.0.0.1:9/late"
    finally:
        release.set()
        thread.join(30)
    other.refresh()
    assert other.loaded().hooks[late.pk].target_url == "http://127.0.0.1:9/late"


# --- explicit events in the same registry ---------------------------------------------


@pytest.mark.django_db
def test_an_owned_event_hook_needs_no_owner_fields(settings, receiver):
    """OWNER_FIELDS says whose an instance is; an explicit event names its owner."""
    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, "OWNER_FIELDS": {}}
    alice = User.objects.create_user("alice")
    hook = create_hook(event_types=["order.*"], owner=alice, target_url=receiver.url())
    with pytest.raises(InvalidHookError) as error:
        create_hook(model="shop.order", signals=[POST_SAVE], owner=alice, target_url=receiver.url())
    assert error.value.field == "model"
    assert [c.hook_id for c in send_event("order.paid", {}, owner=alice)] == [hook.pk]
    assert send_event("order.paid", {}) == []


@pytest.mark.django_db
def test_event_hook_changes_reach_another_registry_alone(other, owners, make_hook, receiver):
    alice, bob = owners
    model_hooks = dict(other.loaded().hooks)
    both = make_hook(owner=alice, event_types=["order.*"])
    assert [h.pk for h in other.event_hooks("order.paid", str(alice.pk))] == [both.pk]
    assert other.event_hooks("order.paid", str(bob.pk)) == []
    # The same hook still fires for Alice's saves: one hook takes both kinds.
    order = Order.objects.create(name="x", customer=alice)
    assert both.pk in candidates(other, order)
    only_events = create_hook(event_types=["order.paid"], owner=bob, target_url=receiver.url())
    assert [h.pk for h in other.event_hooks("order.paid", str(bob.pk))] == [only_events.pk]
    update_hook(only_events, event_types=["invoice.*"])
    assert other.event_hooks("order.paid", str(bob.pk)) == []
    assert [h.pk for h in other.event_hooks("invoice.sent", str(bob.pk))] == [only_events.pk]
    set_hook_enabled(both, False)
    assert other.event_hooks("order.paid", str(alice.pk)) == []
    assert kept(model_hooks, other, set())
