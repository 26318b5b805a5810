"""Tenants (``Hook.owner``, ``OWNER_MODEL``, ``OWNER_RESOLVER``), tested as an attacker
would: Alice and Bob, two owners with every model permission, each try the other's
hook, callbacks and attempts through every route and action of the API, every filter
and bulk body; the answer must be the one a nonexistent id gets, and nothing of the
other owner's may change or be sent."""

from __future__ import annotations

import datetime
import html
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.urls import URLPattern, URLResolver, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from http_hooks import checks, services
from http_hooks.api import (
    create_hook,
    delete_owner_data,
    send_callbacks,
    send_test_event,
    update_hook,
)
from http_hooks.delivery import outcomes
from http_hooks.delivery.claims import claim_batch
from http_hooks.delivery.health import record_health
from http_hooks.delivery.outcomes import DeliveryReport, record_outcomes
from http_hooks.exceptions import InvalidHookError
from http_hooks.models import Attempt, Callback, CallbackStatus, Hook, Signal
from http_hooks.owners import watch_owner_deletions
from http_hooks.services import forget_previous_owners_tries
from http_hooks.transport import Outcome
from http_hooks.urls import urlpatterns
from shop.models import Customer, Order

from .backends import waiting_on_a_lock
from .waiting import wait_until

pytestmark = pytest.mark.django_db

MISSING = 999_999
POST_SAVE = "django.db.models.signals.post_save"


def tenant(username: str, **fields) -> User:
    """A user with every model permission of http_hooks, but not staff."""
    user = User.objects.create_user(username, email=f"{username}@example.com", **fields)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="http_hooks").exclude(
            codename__in=["view_all_hooks", "view_metrics"]
        )
    )
    return User.objects.get(pk=user.pk)  # no cached permissions


def client_of(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def alice() -> User:
    return tenant("alice")


@pytest.fixture
def bob() -> User:
    return tenant("bob")


@pytest.fixture
def world(alice, bob, make_hook, receiver):
    """A hook each for Alice, Bob and the project; an order of each owner gave each owner's
    hook a callback and the project's two, sent once (so each has an attempt); then a
    second order of each left them waiting ones."""
    hooks = {
        "alice": make_hook(name="alice-hook", owner=alice, target_url=receiver.url("/alice")),
        "bob": make_hook(name="bob-hook", owner=bob.pk, target_url=receiver.url("/bob")),
        "project": make_hook(name="project-hook", target_url=receiver.url("/project")),
    }
    # Whose an order is: its customer's account (the demo's OWNER_FIELDS).
    customers = [Customer.objects.create(name=user.username, account=user) for user in (alice, bob)]
    for customer in customers:
        Order.objects.create(name="first", customer=customer)
    report = send_callbacks()
    assert report.sent == 4
    for customer in customers:
        Order.objects.create(name="second", customer=customer)
    receiver.clear()
    callbacks = {
        name: list(Callback.objects.filter(hook=hook).order_by("id"))
        for name, hook in hooks.items()
    }
    return {"hooks": hooks, "callbacks": callbacks}


def snapshot(*hooks: Hook) -> list:
    """Every stored value of these hooks, their callbacks and attempts."""
    return [
        list(Hook.objects.filter(pk__in=[h.pk for h in hooks]).order_by("pk").values()),
        list(Callback.objects.filter(hook__in=hooks).order_by("pk").values()),
        list(Attempt.objects.filter(callback__hook__in=hooks).order_by("pk").values()),
    ]


def paths_of(response) -> list[str]:
    return sorted(r.path for r in response)


# --- storage and the Python API --------------------------------------------------------


def test_callbacks_carry_their_hooks_owner(world, alice, bob):
    owners = {name: {c.owner for c in cbs} for name, cbs in world["callbacks"].items()}
    assert owners == {"alice": {str(alice.pk)}, "bob": {str(bob.pk)}, "project": {""}}
    response = client_of(alice).post(f"/api/hooks/{world['hooks']['alice'].pk}/test/")
    assert response.status_code == 200
    test_event = Callback.objects.get(event_type="http_hooks.test")
    assert test_event.owner == str(alice.pk)


def test_create_hook_takes_an_owner_instance_or_primary_key(make_hook, alice):
    assert make_hook(owner=alice).owner == str(alice.pk)
    assert make_hook(owner=alice.pk).owner == str(alice.pk)
    assert make_hook(owner=str(alice.pk)).owner == str(alice.pk)
    assert make_hook().owner == ""


@pytest.mark.parametrize(
    "owner",
    [MISSING, str(MISSING), "not a key", "1; DROP TABLE", 1.5, True, ["1"], "x" * 300],
    ids=["missing-pk", "missing-pk-text", "not-a-number", "sql", "float", "bool", "list", "long"],
)
def test_create_hook_refuses_an_owner_that_does_not_exist(make_hook, owner):
    with pytest.raises(InvalidHookError) as error:
        make_hook(owner=owner)
    assert error.value.field == "owner"
    assert not Hook.objects.exists()


def test_create_hook_refuses_an_instance_of_another_model(make_hook):
    customer = Customer.objects.create(name="c")
    with pytest.raises(InvalidHookError, match=r"auth\.User"):
        make_hook(owner=customer)
    with pytest.raises(InvalidHookError):
        make_hook(owner=User(username="unsaved"))
    assert not Hook.objects.exists()


def test_update_hook_moves_the_hook_not_its_callbacks(world, alice, bob):
    """The callbacks hold the old owner's data: they stay theirs, and those still
    waiting are not sent through the new owner's hook (test_tenant_attacks.py)."""
    hook = world["hooks"]["alice"]
    update_hook(hook, owner=bob)
    assert Hook.objects.get(pk=hook.pk).owner == str(bob.pk)
    callbacks = Callback.objects.filter(hook=hook)
    assert set(callbacks.values_list("owner", flat=True)) == {str(alice.pk)}
    assert not callbacks.filter(status="waiting").exists()
    with pytest.raises(InvalidHookError):
        update_hook(hook, owner=MISSING)
    assert Hook.objects.get(pk=hook.pk).owner == str(bob.pk)


def test_deleting_an_owner_deletes_their_hooks_and_callbacks(world, alice, bob):
    """With the owner go their hooks, the callbacks stored for them (those left on a
    hook that moved to another owner too) and the attempts; nobody else's row moves."""
    moved = create_hook(
        signals=[POST_SAVE], model="shop.order", target_url="http://127.0.0.1:9/", owner=alice
    )
    Order.objects.create(name="third", customer=Customer.objects.get(account=alice))
    update_hook(moved, owner=bob)  # alice's callback stays hers
    others = snapshot(world["hooks"]["bob"], world["hooks"]["project"])
    key = str(alice.pk)  # None once deleted
    alices = Callback.objects.filter(owner=key)
    # Two of her first hook's, one of each hook for the third order.
    assert alices.count() == 4 and Attempt.objects.filter(callback__in=alices).count() == 1
    assert Callback.objects.filter(hook=moved, owner=key).count() == 1
    assert Hook.objects.filter(owner=key).count() == 1

    alice.delete()

    assert not Hook.objects.filter(owner=key).exists()
    assert not Callback.objects.filter(owner=key).exists()
    assert not Attempt.objects.filter(callback__owner=key).exists()
    assert Hook.objects.get(pk=moved.pk).owner == str(bob.pk)
    assert snapshot(world["hooks"]["bob"], world["hooks"]["project"]) == others


def test_owners_deleted_by_a_queryset_go_with_their_hooks_and_a_rollback_keeps_them(
    world, alice, bob
):
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        User.objects.filter(pk__in=[alice.pk, bob.pk]).delete()
        assert not Hook.objects.exclude(owner="").exists()
        raise RuntimeError("rolled back")
    assert Hook.objects.exclude(owner="").count() == 2

    # The service itself: "" (the project's) is nobody's key.
    projects = snapshot(world["hooks"]["project"])
    assert delete_owner_data("") == (0, 0)
    assert delete_owner_data(str(alice.pk)) == (1, 2)
    User.objects.filter(pk__in=[alice.pk, bob.pk]).delete()
    assert list(Hook.objects.values_list("name", flat=True)) == ["project-hook"]
    assert set(Callback.objects.values_list("owner", flat=True)) == {""}
    assert snapshot(world["hooks"]["project"]) == projects


def test_an_owners_hook_goes_with_every_callback_on_it(world, alice, bob):
    """As deleting the hook would: the callbacks of its previous owner too (left alone,
    they would point at a hook that is gone); nothing else of that owner's."""
    hook = world["hooks"]["bob"]
    update_hook(hook, owner=alice)
    assert Callback.objects.filter(hook=hook, owner=str(bob.pk)).count() == 2
    bobs_customer = Customer.objects.get(account=bob)
    bobs_hook = create_hook(
        signals=[POST_SAVE], model="shop.order", target_url="http://127.0.0.1:9/", owner=bob
    )
    Order.objects.create(name="fourth", customer=bobs_customer)
    projects = snapshot(world["hooks"]["project"])
    keep = snapshot(bobs_hook)

    # Her 2 hooks: 2 callbacks of hers on her own, 2 of Bob's on the one she was given.
    assert delete_owner_data(alice) == (2, 4)

    assert not Callback.objects.filter(hook=hook).exists()
    assert snapshot(bobs_hook) == keep and snapshot(world["hooks"]["project"]) == projects


@pytest.fixture
def staff_users():
    """A proxy of the user model, defined after the app was ready (so connected when the
    receivers are connected again), and unregistered after the test."""

    class StaffUser(User):
        class Meta:
            proxy = True
            app_label = "shop"

    watch_owner_deletions()
    yield StaffUser
    del apps.all_models["shop"]["staffuser"]
    apps.clear_cache()
    watch_owner_deletions()


@pytest.mark.parametrize("how", ["instance", "queryset"])
def test_an_owner_deleted_through_a_proxy_goes_with_their_hooks(world, alice, how, staff_users):
    key = str(alice.pk)
    if how == "instance":
        staff_users.objects.get(pk=alice.pk).delete()
    else:
        staff_users.objects.filter(pk=alice.pk).delete()
    assert not Hook.objects.filter(owner=key).exists()
    assert not Callback.objects.filter(owner=key).exists()


def test_the_owner_key_is_the_stored_form_of_the_primary_key(world, alice):
    key = str(alice.pk)
    User(pk=f"0{alice.pk}").delete()  # deletes user 1, whose hooks are under "1"
    assert not Hook.objects.filter(owner=key).exists()
    zero = User.objects.create(pk=0, username="zero")
    create_hook(signals=[POST_SAVE], model="shop.order", target_url="http://x.test/", owner=zero)
    assert delete_owner_data(0) == (1, 0)
    assert delete_owner_data(None) == (0, 0)


@override_settings(DJANGO_HTTP_HOOKS_SHUT_DOWN=True)
def test_a_shut_down_app_deletes_nothing_with_an_owner(world, alice):
    key = str(alice.pk)
    alice.delete()
    assert Hook.objects.filter(owner=key).count() == 1


def test_deleting_a_user_leaves_the_hooks_of_a_project_owner_model(alice, receiver):
    """OWNER_MODEL decides whose deletion counts: with customers as owners, a user with a
    customer's key deletes nothing; the customer does."""
    with CUSTOMERS:
        customer = Customer.objects.create(name="shop", email=alice.email, pk=alice.pk)
        create_hook(
            signals=[POST_SAVE], model="shop.order", target_url=receiver.url(), owner=customer
        )
        Order.objects.create(name="one", customer=customer)
        User.objects.filter(pk=alice.pk).delete()
        assert Hook.objects.filter(owner=str(customer.pk)).count() == 1
        Customer.objects.get(pk=customer.pk).delete()
        assert not Hook.objects.exists() and not Callback.objects.exists()


def test_a_callback_whose_hook_changed_hands_meanwhile_is_never_sent_with_the_new_owners_hook(
    make_hook, alice, bob, receiver
):
    """Alice's try in flight when her hook moves to Bob, then retried; or one stored under
    her by a process whose registry has not seen the move yet: neither goes to Bob's URL
    with Bob's headers. They end in error, as the ones waiting at the move did."""
    from http_hooks.delivery.claims import claim_batch
    from http_hooks.delivery.outcomes import DeliveryReport, record_outcomes
    from http_hooks.transport import Outcome

    hook = make_hook(owner=alice, target_url=receiver.url("/alice"))
    Order.objects.create(name="alice-secret", customer=Customer.objects.create(account=alice))
    (claimed,) = claim_batch(size=10)
    update_hook(
        hook, owner=bob, target_url=receiver.url("/bob"), headers={"Authorization": "Bearer B"}
    )
    record_outcomes([claimed], [Outcome(status_code=500, error="HTTP 500")], DeliveryReport())
    late = Callback.objects.create(
        hook=hook, owner=str(alice.pk), target_url=receiver.url("/alice"), payload="{}"
    )
    Callback.objects.update(next_attempt_at=timezone.now())
    send_callbacks()
    assert receiver.requests == []
    for pk in (claimed.pk, late.pk):
        callback = Callback.objects.get(pk=pk)
        assert (callback.status, callback.owner) == ("error", str(alice.pk))
        assert "moved to another owner" in callback.status_details


@contextmanager
def try_in_flight(receiver, hold: threading.Event) -> Iterator[None]:
    """A sender in another thread, its try held by the receiver (``hold``) while the
    block runs; then the answer comes and the sender ends."""

    def sender() -> None:
        try:
            send_callbacks()
        finally:
            connection.close()

    thread = threading.Thread(target=sender)
    thread.start()
    try:
        receiver.wait_for(1)
        yield
    finally:
        hold.set()
        thread.join(timeout=30)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("status", [500, 410, 200], ids=["breaker", "gone", "success"])
def test_the_former_owners_try_in_flight_leaves_the_new_owners_health_alone(
    make_hook, alice, bob, receiver, settings, status
):
    """Alice's try is in flight when her hook moves to Bob (and to his URL): its answer
    says how Alice's endpoint answered, not Bob's. A failure opened the breaker of Bob's
    hook (one failure is enough here), or, a 410, disabled it; a success would reset
    the count of Bob's failed tries."""
    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, "BREAKER_FAILURES": 2}
    hook = make_hook(owner=alice, target_url=receiver.url("/alice"))
    hold = threading.Event()
    receiver.respond("/alice", status=status, hold=hold)
    Order.objects.create(name="alice-secret", customer=Customer.objects.create(account=alice))

    with try_in_flight(receiver, hold):
        update_hook(hook, owner=bob, target_url=receiver.url("/bob"))
        # Bob's own failed try: one more trips the breaker.
        Hook.objects.filter(pk=hook.pk).update(consecutive_failures=1)
    assert Callback.objects.get().last_response_status == status  # written, as Alice's
    hook.refresh_from_db()
    assert (hook.enabled, hook.disabled_reason, hook.paused_until) == (True, "", None)
    assert (hook.consecutive_failures, hook.breaker_trips, hook.last_failure_at) == (1, 0, None)
    assert hook.last_success_at is None


# What the health endpoint shows of a hook's tries and of the state they left on its row.
PREVIOUS_TRIES = [
    "sent",
    "failed",
    "success_rate",
    "hourly",
    "duration_p50_ms",
    "last_success_at",
    "last_failure_at",
    "last_failure_reason",
    "breaker",
    "consecutive_failures",
    "paused_until",
    "paused_reason",
    "disabled_reason",
    "disabled_at",
    "slow_since",
]
NO_TRIES = {
    **dict.fromkeys(PREVIOUS_TRIES),
    "sent": 0,
    "failed": 0,
    "hourly": [],
    "last_failure_reason": "",
    "breaker": "closed",
    "consecutive_failures": 0,
    "paused_reason": "",
    "disabled_reason": "",
}


def seen_by(user: User, hook: Hook) -> dict:
    response = client_of(user).get(f"/api/hooks/{hook.pk}/health/", {"window": "30d"})
    assert response.status_code == 200, response.json()
    return response.json()


def admin_sets_owner(client, hook: Hook, owner: str) -> None:
    """A superuser saves ``hook``'s change form as it is shown, but for ``owner``."""
    client.force_login(User.objects.create_superuser("root"))
    page = client.get(f"/admin/http_hooks/hook/{hook.pk}/change/")
    form = page.context["adminform"].form
    data = {
        **{k: v for k, v in form.initial.items() if v is not None},
        "model": hook.model_id,
        "signals": [s.pk for s in hook.signals.all()],
        "conditions": "{}",
        "owner": owner,
    }
    saved = client.post(f"/admin/http_hooks/hook/{hook.pk}/change/", data)
    assert saved.status_code == 302, saved.context["adminform"].form.errors


@pytest.mark.parametrize("answer", [500, 410], ids=["failing", "disabled-gone"])
@pytest.mark.parametrize("how", ["api", "python", "admin"])
def test_a_hook_that_changes_hands_shows_nothing_of_the_previous_owners_tries(
    make_hook, alice, bob, receiver, staff_client, client, settings, answer, how
):
    """Alice's tries (a success, then failures: a breaker open, or a 410 that disabled
    the hook; a slow receiver) are hers: Bob, given the hook, sees no count, time, error
    or state of them; a hook http_hooks disabled stays disabled until he enables it."""
    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, "BREAKER_FAILURES": 2}
    hook = make_hook(owner=alice, target_url=receiver.url("/alice"))
    send_test_event(hook)
    receiver.respond("/alice", status=answer, body=b"alice's receiver says no")
    send_test_event(hook)
    send_test_event(hook)
    Hook.objects.filter(pk=hook.pk).update(slow_since=timezone.now())
    before = seen_by(alice, hook)
    assert (before["sent"], before["failed"], before["slow_since"] is not None) == (1, 2, True)
    assert before["breaker"] == "open" if answer == 500 else before["disabled_reason"] == "gone"
    if how == "api":
        moved = staff_client.patch(f"/api/hooks/{hook.pk}/", {"owner": str(bob.pk)}, format="json")
        assert moved.status_code == 200, moved.json()
    elif how == "python":
        update_hook(hook, owner=bob)
    else:
        admin_sets_owner(client, hook, str(bob.pk))
    after = seen_by(bob, hook)
    assert {name: after[name] for name in PREVIOUS_TRIES} == NO_TRIES
    assert after["enabled"] is (answer != 410)
    row = Hook.objects.get(pk=hook.pk)
    assert (row.breaker_trips, row.failing_since) == (0, None)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("status", [200, 500], ids=["success", "failure"])
def test_the_former_owners_slow_try_in_flight_is_in_none_of_the_new_owners_counts(
    make_hook, alice, bob, receiver, settings, status
):
    """Alice's try, slow (0.3 s past its hold, the slow mark 0.2 s), is in flight when
    her hook moves to Bob: it neither counts in the hook's tries Bob is shown nor marks
    the hook slow."""
    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, "TIMEOUT": (0.2, 10)}
    hook = make_hook(owner=alice, target_url=receiver.url("/alice"))
    hold = threading.Event()
    receiver.respond("/alice", status=status, hold=hold, delay=0.3)
    Order.objects.create(name="alice-secret", customer=Customer.objects.create(account=alice))

    with try_in_flight(receiver, hold):
        update_hook(hook, owner=bob, target_url=receiver.url("/bob"))
    callback = Callback.objects.get()
    assert callback.last_response_status == status  # written, as Alice's
    assert callback.attempt_log.get().duration_ms >= 200
    assert {name: seen_by(bob, hook)[name] for name in PREVIOUS_TRIES} == NO_TRIES


def test_a_paused_hooks_probe_stops_a_callback_of_its_former_owner_for_good(
    make_hook, alice, bob, receiver
):
    """The probe of a paused hook meets only a callback stored under the hook's former
    owner: that callback ends in error (not rolled back with the empty probe, to be met
    again at every claim) and the pause stays as it was."""
    hook = make_hook(owner=alice, target_url=receiver.url("/alice"))
    Order.objects.create(name="alice-secret", customer=Customer.objects.create(account=alice))
    update_hook(hook, owner=bob, target_url=receiver.url("/bob"))
    # Stored under Alice by a process that had not seen the move yet.
    late = Callback.objects.create(
        hook=hook, owner=str(alice.pk), target_url=receiver.url("/alice"), payload="{}"
    )
    paused_until = timezone.now() - datetime.timedelta(seconds=1)
    Hook.objects.filter(pk=hook.pk).update(paused_until=paused_until)
    send_callbacks()
    assert receiver.requests == []
    late.refresh_from_db()
    assert late.status == "error" and "moved to another owner" in late.status_details
    assert Hook.objects.get(pk=hook.pk).paused_until == paused_until


def test_a_hook_is_not_given_to_an_owner_deleted_since_it_was_checked(alice):
    """The owner's row is held (PostgreSQL) or looked for again when the hook is saved."""
    from http_hooks.services import hold_owner

    key = str(alice.pk)
    User.objects.filter(pk=alice.pk).delete()
    with pytest.raises(InvalidHookError, match=r"no auth\.User"):
        hold_owner(key)


# --- an owner's deletion racing a sender or a staff member (PostgreSQL's row locks) ----


def in_another_transaction(work, then_wait_for):
    """Run ``work()`` in a transaction of a thread of its own and commit once
    ``then_wait_for()`` is true; returns the thread, started once ``work`` is done."""
    import threading

    from django.db import connections, transaction

    done, failed = threading.Event(), []

    def run():
        try:
            with transaction.atomic():
                work()
                done.set()
                wait_until(then_wait_for, message="the other side never waited for the lock")
        except BaseException as exc:
            failed.append(exc)
            done.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert done.wait(30)
    thread.failed = failed
    return thread


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_owner_deleted_while_a_sender_records_an_outcome_goes_with_the_new_attempt(
    make_hook, alice
):
    """The deletion waits for the sender's outcome (its callbacks locked before their
    attempts go) and deletes the attempt the sender wrote: no foreign key left dangling."""
    import uuid

    from http_hooks.delivery.outcomes import insert_attempts

    make_hook(owner=alice)
    Order.objects.create(name="one", customer=Customer.objects.create(account=alice))
    token = uuid.uuid4()
    Callback.objects.update(status=CallbackStatus.SENDING, claim_token=token)
    callback = Callback.objects.get()

    def record_the_outcome():
        Callback.objects.filter(claim_token=token).update(status="sent", attempts=1)
        insert_attempts([(callback.pk, 1, timezone.now(), 5, {}, 200, {}, "", "")])

    sender = in_another_transaction(record_the_outcome, waiting_on_a_lock)
    alice.delete()
    sender.join(30)
    assert sender.failed == []
    assert not Callback.objects.exists() and not Attempt.objects.exists()
    assert not Hook.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_hook_moved_to_bob_while_alice_is_deleted_stays_bobs(make_hook, alice, bob):
    hook = make_hook(owner=alice)
    mover = in_another_transaction(
        lambda: update_hook(Hook.objects.get(pk=hook.pk), owner=bob), waiting_on_a_lock
    )
    alice.delete()
    mover.join(30)
    assert mover.failed == []
    assert list(Hook.objects.values_list("pk", "owner")) == [(hook.pk, str(bob.pk))]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_hook_moved_to_alice_while_she_is_deleted_goes_with_her(make_hook, alice, bob):
    """The move holds Alice's row: her deletion waits for it, then takes the hook along."""
    hook = make_hook(owner=bob)
    mover = in_another_transaction(
        lambda: update_hook(Hook.objects.get(pk=hook.pk), owner=alice.pk), waiting_on_a_lock
    )
    User.objects.filter(pk=alice.pk).delete()
    mover.join(30)
    assert mover.failed == []
    assert not Hook.objects.exists()


# --- a sender recording outcomes while the hook changes hands (PostgreSQL's row locks) --


@pytest.fixture
def alices_window(make_hook, alice):
    """Alice's hook with a try of hers counted this hour, and a callback of hers claimed
    by a sender, its answer a failure: (hook, the claimed callback, its outcome)."""
    hook = make_hook(owner=alice)
    send_test_event(hook)
    assert seen_by(alice, hook)["sent"] == 1
    Order.objects.create(name="alice-secret", customer=Customer.objects.create(account=alice))
    (claimed,) = claim_batch(size=10)
    return hook, claimed, Outcome(status_code=500, error="HTTP 500")


def shows_bob_none_of_alices_tries(hook: Hook, bob: User, claimed: Callback) -> None:
    """Alice's try was written, as hers, and Bob's counts hold none of her tries."""
    assert Hook.objects.get(pk=hook.pk).owner == str(bob.pk)
    assert Attempt.objects.get(callback=claimed).response_status == 500
    seen = seen_by(bob, hook)
    assert (seen["sent"], seen["failed"], seen["hourly"]) == (0, 0, [])


def move_to_bob(how: str, hook: Hook, bob: User, client) -> None:
    if how == "python":
        update_hook(Hook.objects.get(pk=hook.pk), owner=bob)
    else:
        admin_sets_owner(client, hook, str(bob.pk))


def in_a_sender(work, failed: list) -> threading.Thread:
    """``work()`` in a thread of its own, as a sender; what it raises goes to ``failed``."""

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            failed.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["python", "admin"])
def test_a_window_recorded_while_the_hook_changes_hands_waits_and_counts_for_no_one(
    alices_window, bob, client, monkeypatch, how
):
    """The move has deleted Alice's counts, not yet committed: the sender's window
    waits for it (the move goes on only once a backend waits), then sees Bob as the
    owner and adds Alice's try to no count. Checked against Alice, still the committed
    owner, her window's counts outlived the deletion, in Bob's; with the row of the
    counts taken before the hook's, the two deadlocked."""
    hook, claimed, failure = alices_window
    forgotten, failed = threading.Event(), []

    def forget_then_wait_for_the_sender(moved: Hook) -> None:
        forget_previous_owners_tries(moved)
        forgotten.set()
        wait_until(waiting_on_a_lock, message="the sender never waited for the move")

    monkeypatch.setattr(services, "forget_previous_owners_tries", forget_then_wait_for_the_sender)

    def sender() -> None:
        assert forgotten.wait(30)
        record_outcomes([claimed], [failure], DeliveryReport(), reconnect_delays=())

    thread = in_a_sender(sender, failed)
    move_to_bob(how, hook, bob, client)
    thread.join(30)
    assert failed == []
    shows_bob_none_of_alices_tries(hook, bob, claimed)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["python", "admin"])
def test_a_window_counted_before_the_hook_changes_hands_holds_the_move_no_deadlock(
    alices_window, bob, client, monkeypatch, how
):
    """The sender has added its window to the hook's counts of the hour and is about to
    write its health: the move waits for it, then deletes those counts with Alice's
    others. With the counts' row locked before the hook's, the move took the hook and
    waited for the counts, the sender waited for the hook, and PostgreSQL failed the
    move as a deadlock."""
    hook, claimed, failure = alices_window
    counted, failed = threading.Event(), []

    def health_once_the_move_waits(*args, **kwargs):
        counted.set()
        wait_until(waiting_on_a_lock, message="the move never waited for the sender")
        return record_health(*args, **kwargs)

    monkeypatch.setattr(outcomes, "record_health", health_once_the_move_waits)

    def sender() -> None:
        try:
            record_outcomes([claimed], [failure], DeliveryReport(), reconnect_delays=())
        finally:
            counted.set()

    thread = in_a_sender(sender, failed)
    assert counted.wait(30)
    move_to_bob(how, hook, bob, client)
    thread.join(30)
    assert failed == []
    shows_bob_none_of_alices_tries(hook, bob, claimed)


# --- every route of the API -----------------------------------------------------------


def routes(patterns=urlpatterns) -> dict[str, dict[str, str]]:
    """Every named route under the API: name -> {method: action}."""
    found = {}
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found |= routes(pattern.url_patterns)
        elif isinstance(pattern, URLPattern) and pattern.name:
            found[pattern.name] = getattr(pattern.callback, "actions", None) or {"get": "get"}
    return found


# Routes of one hook or callback: {pk} of another owner's must be 404. The body each
# method sends is valid, so that only the owner can make the answer differ.
def detail_bodies(receiver_url: str) -> dict[str, dict | None]:
    return {
        "update": {
            "model": "shop.order",
            "signals": [POST_SAVE],
            "target_url": receiver_url,
            "name": "stolen",
        },
        "partial_update": {"name": "stolen"},
        "recover": {"since": (timezone.now() - datetime.timedelta(days=1)).isoformat()},
        "rotate_secret": {},
    }


HOOK_DETAIL = {"hook-detail", "hook-enable", "hook-health", "hook-recover"}
HOOK_DETAIL |= {"hook-rotate-secret", "hook-test"}
CALLBACK_DETAIL = {"callback-detail", "callback-attempts", "callback-resend"}
# Routes over many rows: each has its own tests below.
COLLECTIONS = {
    "hook-list": "test_hook_list_and_filters_show_only_ones_own",
    "callback-list": "test_callback_list_and_filters_show_only_ones_own",
    "callback-resend-many": "test_bulk_resend_never_touches_another_owners_callbacks",
    "callback-send": "test_send_never_sends_another_owners_callbacks",
    "callback-monitor": "test_monitor_counts_only_ones_own",
    "callback-delete-old": "test_delete_old_deletes_only_ones_own",
    "event-list": "test_events_reach_only_ones_own_hooks",
    "event-type-list": "test_event_types_list_only_ones_own",
}
# Routes that hold no owner's data, and why.
NOT_OWNED = {
    "api-root": "links only",
    "signal-list": "signal paths are the project's, shared by every hook",
    "signal-detail": "as signal-list; test_deleting_a_used_signal_names_no_other_owners_hook",
    "http_hooks-metrics": "staff and view_metrics only: test_metrics_are_not_for_tenants",
    "http_hooks-schema": "the API's description",
    "http_hooks-docs": "the API's description",
    "http_hooks-redoc": "the API's description",
}


def test_every_route_is_covered_here():
    """A new route or action fails here until this file says how it is scoped."""
    covered = HOOK_DETAIL | CALLBACK_DETAIL | set(COLLECTIONS) | set(NOT_OWNED)
    assert not set(routes()) - covered, "say here how these routes are scoped by owner"
    assert not covered - set(routes()), "these routes are gone"
    names = globals()
    assert all(test in names for test in COLLECTIONS.values())


def detail_calls() -> list[tuple[str, str, str]]:
    return [
        (name, method, action)
        for name, actions in sorted(routes().items())
        if name in HOOK_DETAIL | CALLBACK_DETAIL
        for method, action in sorted(actions.items())
    ]


@pytest.mark.parametrize(
    ("name", "method", "action"), detail_calls(), ids=[f"{n} {m}" for n, m, _ in detail_calls()]
)
@pytest.mark.parametrize("victim", ["bob", "project"])
def test_another_owners_object_is_not_found_in_every_action(
    world, alice, receiver, name, method, action, victim
):
    kind = "hooks" if name in HOOK_DETAIL else "callbacks"
    target = world[kind][victim]
    target_id = target.pk if kind == "hooks" else target[0].pk
    body = detail_bodies(receiver.url("/stolen")).get(action)
    before = snapshot(*world["hooks"].values())

    def call(pk: int):
        path = reverse(name, kwargs={"pk": pk})
        return getattr(client_of(alice), method)(path, body, format="json")

    response = call(target_id)
    assert response.status_code == 404, response.content
    assert response.json() == call(MISSING).json()
    assert response.json()["code"] == "not_found"
    assert snapshot(*world["hooks"].values()) == before
    assert receiver.requests == []
    # Her own object answers: the 404 above is the owner's doing, not the request's.
    own = world[kind]["alice"]
    own_response = call(own.pk if kind == "hooks" else own[-1].pk)
    assert own_response.status_code in (200, 204), own_response.content


@pytest.mark.parametrize("path", ["/api/hooks/{hook}/", "/api/callbacks/{callback}/"])
def test_browsable_api_shows_another_owners_object_as_not_found(world, alice, path):
    objects = {"hook": world["hooks"]["bob"].pk, "callback": world["callbacks"]["bob"][0].pk}
    response = client_of(alice).get(path.format(**objects), HTTP_ACCEPT="text/html")
    assert response.status_code == 404
    assert b"bob-hook" not in response.content
    assert b"/bob" not in response.content


@pytest.mark.parametrize("path", ["/api/hooks/", "/api/callbacks/"])
def test_browsable_api_lists_only_ones_own(world, alice, path):
    response = client_of(alice).get(path, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"/alice" in response.content
    assert b"/bob" not in response.content
    assert b"/project" not in response.content


def test_the_browsable_api_offers_a_tenant_a_new_hook_of_their_own(alice):
    client = client_of(alice)
    page = client.get("/api/hooks/", HTTP_ACCEPT="text/html").content.decode()
    (body,) = re.findall(r'<textarea[^>]*name="_content"[^>]*>(.*?)</textarea>', page, re.S)
    response = client.post("/api/hooks/", html.unescape(body), content_type="application/json")
    assert response.status_code == 201, response.json()
    assert response.json()["owner"] == str(alice.pk)


# --- lists and filters ----------------------------------------------------------------


def hook_names(client, **query) -> list[str]:
    response = client.get("/api/hooks/", query)
    assert response.status_code == 200, response.content
    return [hook["name"] for hook in response.json()["results"]]


def callback_ids(client, **query) -> list[int]:
    response = client.get("/api/callbacks/", query)
    assert response.status_code == 200, response.content
    return sorted(callback["id"] for callback in response.json()["results"])


def ids_of(callbacks) -> list[int]:
    return sorted(c.pk for c in callbacks)


def test_hook_list_and_filters_show_only_ones_own(world, alice, bob):
    client = client_of(alice)
    assert hook_names(client) == ["alice-hook"]
    assert client.get("/api/hooks/").json()["results"][0]["owner"] == str(alice.pk)
    for query in [
        {"owner": str(bob.pk)},
        {"name": "bob-hook"},
        {"name__icontains": "bob"},
        {"search": "bob"},
        {"target_url__icontains": "/bob"},
        {"model": "shop.order", "owner": str(bob.pk)},
    ]:
        assert hook_names(client, **query) == [], query
    assert hook_names(client, owner=str(alice.pk)) == ["alice-hook"]


def test_callback_list_and_filters_show_only_ones_own(world, alice, bob):
    client = client_of(alice)
    own = ids_of(world["callbacks"]["alice"])
    assert callback_ids(client) == own
    bobs = world["callbacks"]["bob"]
    for query in [
        {"hook": world["hooks"]["bob"].pk},
        {"hook": world["hooks"]["project"].pk},
        {"owner": str(bob.pk)},
        {"event_id": str(bobs[0].event_id)},
        {"status": "sent", "hook": world["hooks"]["bob"].pk},
    ]:
        assert callback_ids(client, **query) == [], query
    assert callback_ids(client, hook=world["hooks"]["alice"].pk) == own
    assert callback_ids(client, status="waiting") == own[1:]


@pytest.mark.parametrize("path", ["/api/hooks/", "/api/callbacks/"])
@pytest.mark.parametrize("value", ["", "\x00", "x" * 256], ids=["empty", "nul", "too-long"])
def test_the_owner_filter_refuses_bad_values(staff_client, path, value):
    response = staff_client.get(path, {"owner": value})
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["owner"]


@pytest.mark.parametrize(
    "owner", [None, "\x00", "x" * 256, {"pk": 1}], ids=["null", "nul", "too-long", "object"]
)
def test_the_owner_field_refuses_bad_values(staff_client, receiver, owner):
    response = staff_client.post("/api/hooks/", new_hook(receiver, owner=owner), format="json")
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["owner"]
    assert not Hook.objects.exists()


def test_staff_see_everything_and_filter_by_owner(world, alice, bob, staff_client):
    assert hook_names(staff_client) == ["alice-hook", "bob-hook", "project-hook"]
    assert hook_names(staff_client, owner=str(bob.pk)) == ["bob-hook"]
    assert callback_ids(staff_client, owner=str(alice.pk)) == ids_of(world["callbacks"]["alice"])
    all_ids = [c.pk for callbacks in world["callbacks"].values() for c in callbacks]
    assert callback_ids(staff_client) == sorted(all_ids)


def test_view_all_hooks_permission_sees_every_owner(world, alice):
    alice.user_permissions.add(Permission.objects.get(codename="view_all_hooks"))
    alice = User.objects.get(pk=alice.pk)
    assert hook_names(client_of(alice)) == ["alice-hook", "bob-hook", "project-hook"]


def nobody(request):
    return []


@override_settings(
    HTTP_HOOKS={
        "BLOCK_PRIVATE_NETWORKS": False,
        "OWNER_RESOLVER": "api_tests.test_tenants.nobody",
    }
)
def test_a_user_without_owners_sees_nothing_and_creates_nothing(world, alice, receiver):
    client = client_of(alice)
    assert hook_names(client) == []
    assert callback_ids(client) == []
    response = client.post(
        "/api/hooks/",
        {"model": "shop.order", "signals": [POST_SAVE], "target_url": receiver.url()},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "owner"
    assert Hook.objects.count() == 3


# --- bulk operations ------------------------------------------------------------------


def resend(client, query: str = "", **body):
    response = client.post(f"/api/callbacks/resend/{query}", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()["count"]


def test_bulk_resend_never_touches_another_owners_callbacks(world, alice, bob):
    client = client_of(alice)
    others = [c.pk for name in ("bob", "project") for c in world["callbacks"][name]]
    before = snapshot(world["hooks"]["bob"], world["hooks"]["project"])
    assert resend(client, ids=others) == resend(client, ids=[MISSING]) == 0
    assert resend(client, f"?hook={world['hooks']['bob'].pk}") == 0
    assert resend(client, f"?owner={bob.pk}") == 0
    assert resend(client, "?status=sent") == 1  # her own sent one
    assert resend(client, ids=[*others, world["callbacks"]["alice"][0].pk]) == 1
    assert snapshot(world["hooks"]["bob"], world["hooks"]["project"]) == before


def send(client, **body) -> dict:
    response = client.post("/api/callbacks/send/", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_send_never_sends_another_owners_callbacks(world, alice, receiver):
    client = client_of(alice)
    others = [
        callback.pk
        for name in ("bob", "project")
        for callback in world["callbacks"][name]
        if callback.status == CallbackStatus.WAITING
    ]
    assert send(client, ids=others)["sent"] == 0
    assert receiver.requests == []
    missing = client.post("/api/callbacks/send/", {"hook_id": MISSING}, format="json")
    bobs_hook = world["hooks"]["bob"].pk
    stolen = client.post("/api/callbacks/send/", {"hook_id": bobs_hook}, format="json")
    assert stolen.status_code == missing.status_code == 400
    assert stolen.json()["errors"] == [
        {**error, "message": error["message"].replace(str(MISSING), str(bobs_hook))}
        for error in missing.json()["errors"]
    ]
    assert send(client)["sent"] == 1
    assert paths_of(receiver.wait_for(1)) == ["/alice"]
    waiting = Callback.objects.filter(status=CallbackStatus.WAITING)
    assert ids_of(waiting) == sorted(others)


@pytest.mark.tasks
@pytest.mark.django_db(transaction=True)
def test_send_queues_only_ones_own_callbacks_to_the_workers(world, alice):
    from django_tasks_db.models import DBTaskResult

    client = client_of(alice)
    others = [world["callbacks"][name][-1].pk for name in ("bob", "project")]
    own = world["callbacks"]["alice"][-1].pk
    with override_settings(HTTP_HOOKS={"BLOCK_PRIVATE_NETWORKS": False, "DISPATCH": "tasks"}):
        assert send(client, ids=others)["mode"] == "queued"
        assert send(client, ids=[*others, own])["mode"] == "queued"
        assert send(client)["mode"] == "queued"
    queued = DBTaskResult.objects.order_by("enqueued_at").values_list("args_kwargs", flat=True)
    # Nothing for ids of others, not a "send every due callback" task: her listed one.
    assert list(queued) == [{"args": [[own]], "kwargs": {}}] * 2


def test_monitor_counts_only_ones_own(world, alice):
    response = client_of(alice).get("/api/callbacks/monitor/", {"status": "waiting"})
    assert response.status_code == 200
    assert response.json()["count"] == 1


def test_delete_old_deletes_only_ones_own(world, alice):
    response = client_of(alice).post(
        "/api/callbacks/delete-old/", {"days": 0, "include_undelivered": True}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["deleted"] == 2
    assert not Callback.objects.filter(hook=world["hooks"]["alice"]).exists()
    assert Callback.objects.count() == 6


@pytest.fixture
def event_hooks(alice, bob, receiver) -> dict[str, Hook]:
    """A hook on ``order.*`` for Alice, Bob and the project."""
    return {
        name: create_hook(
            event_types=["order.*", f"order.{name}-only"], target_url=receiver.url(), owner=owner
        )
        for name, owner in (("alice", alice), ("bob", bob), ("project", None))
    }


def test_events_reach_only_ones_own_hooks(event_hooks, alice, bob):
    body = {"event_type": "order.paid", "payload": {"id": 1}}
    response = client_of(alice).post("/api/events/", body, format="json")
    assert response.status_code == 202, response.content
    [callback] = Callback.objects.filter(pk__in=response.json()["ids"])
    assert (callback.hook_id, callback.owner) == (event_hooks["alice"].pk, str(alice.pk))
    # Speaking for Bob is refused, as a hook for him would be; nothing is stored.
    for owner in (str(bob.pk), str(MISSING), ""):
        response = client_of(alice).post("/api/events/", {**body, "owner": owner}, format="json")
        assert response.status_code == 400, (owner, response.content)
        assert response.json()["errors"][0]["field"] == "owner"
    assert Callback.objects.count() == 1
    # Staff reach the project's hooks, and a named owner's besides.
    staff = User.objects.create_user("root", is_staff=True)
    ids = client_of(staff).post("/api/events/", {**body, "owner": str(bob.pk)}, format="json")
    hooks = set(Callback.objects.filter(pk__in=ids.json()["ids"]).values_list("hook", flat=True))
    assert hooks == {event_hooks["bob"].pk, event_hooks["project"].pk}


def test_event_types_list_only_ones_own(event_hooks, alice):
    response = client_of(alice).get("/api/event-types/", {"page_size": 100})
    assert response.status_code == 200
    names = {entry["name"] for entry in response.json()["results"]}
    assert "order.alice-only" in names
    assert not names & {"order.bob-only", "order.project-only"}


def test_deleting_a_used_signal_names_no_other_owners_hook(world, alice):
    signal = Signal.objects.create(signal="shop.signals.order_shipped")
    world["hooks"]["bob"].signals.add(signal)
    response = client_of(alice).delete(f"/api/signals/{signal.pk}/")
    assert response.status_code == 409
    assert str(world["hooks"]["bob"].pk) not in response.json()["detail"]
    assert Signal.objects.filter(pk=signal.pk).exists()


def test_metrics_are_not_for_tenants(world, alice):
    assert client_of(alice).get("/api/metrics/").status_code == 403


# --- writing the owner ------------------------------------------------------------------


def new_hook(receiver, **fields) -> dict:
    return {
        "model": "shop.order",
        "signals": [POST_SAVE],
        "target_url": receiver.url(),
        **fields,
    }


def test_creating_a_hook_makes_it_ones_own(alice, bob, receiver):
    client = client_of(alice)
    response = client.post("/api/hooks/", new_hook(receiver), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["owner"] == str(alice.pk)
    assert Hook.objects.get().owner == str(alice.pk)
    named = client.post("/api/hooks/", new_hook(receiver, owner=str(alice.pk)), format="json")
    assert named.status_code == 201


@pytest.mark.parametrize(
    "owner", ["bob", "", str(MISSING), 5], ids=["other-owner", "project", "missing", "number"]
)
def test_a_tenant_cannot_give_a_hook_to_another_owner(alice, bob, receiver, owner):
    owner = str(bob.pk) if owner == "bob" else owner
    client = client_of(alice)
    response = client.post("/api/hooks/", new_hook(receiver, owner=owner), format="json")
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["owner"]
    assert not Hook.objects.exists()
    hook = create_hook(signals=[POST_SAVE], model="shop.order", target_url=receiver.url())
    update_hook(hook, owner=alice)
    response = client.patch(f"/api/hooks/{hook.pk}/", {"owner": owner}, format="json")
    assert response.status_code == 400
    assert Hook.objects.get().owner == str(alice.pk)


def test_staff_give_a_hook_any_existing_owner(staff_client, bob, receiver, world):
    response = staff_client.post(
        "/api/hooks/", new_hook(receiver, owner=str(bob.pk)), format="json"
    )
    assert response.status_code == 201
    assert response.json()["owner"] == str(bob.pk)
    bad = staff_client.post("/api/hooks/", new_hook(receiver, owner=str(MISSING)), format="json")
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "owner"
    hook = world["hooks"]["project"]
    moved = staff_client.patch(f"/api/hooks/{hook.pk}/", {"owner": str(bob.pk)}, format="json")
    assert moved.status_code == 200
    assert set(Callback.objects.filter(hook=hook).values_list("owner", flat=True)) == {""}
    put = staff_client.put(f"/api/hooks/{hook.pk}/", new_hook(receiver, name="p"), format="json")
    assert put.status_code == 200
    assert put.json()["owner"] == str(bob.pk)  # left out: kept


# --- a project's own owner model -----------------------------------------------------


def customers_of(request):
    """A resolver: the customers with the user's e-mail address."""
    return Customer.objects.filter(email=request.user.email)


CUSTOMERS = override_settings(
    HTTP_HOOKS={
        "BLOCK_PRIVATE_NETWORKS": False,
        "OWNER_MODEL": "shop.Customer",
        "OWNER_RESOLVER": "api_tests.test_tenants.customers_of",
        "OWNER_FIELDS": {"shop.Order": "customer"},
    }
)


@CUSTOMERS
def test_a_project_owner_model_scopes_by_its_resolver(alice, bob, receiver):
    shop, outlet = (Customer.objects.create(name=n, email=alice.email) for n in ("shop", "out"))
    rival = Customer.objects.create(name="rival", email=bob.email)
    for customer in (shop, outlet, rival):
        create_hook(
            signals=[POST_SAVE],
            model="shop.order",
            target_url=receiver.url(),
            name=customer.name,
            owner=customer,
        )
    client = client_of(alice)
    assert sorted(hook_names(client)) == ["out", "shop"]
    rival_hook = Hook.objects.get(owner=str(rival.pk))
    assert client.get(f"/api/hooks/{rival_hook.pk}/").status_code == 404
    unnamed = client.post("/api/hooks/", new_hook(receiver), format="json")
    assert unnamed.status_code == 400
    assert "name the hook's owner" in unnamed.json()["errors"][0]["message"]
    stolen = client.post("/api/hooks/", new_hook(receiver, owner=str(rival.pk)), format="json")
    assert stolen.status_code == 400
    named = client.post("/api/hooks/", new_hook(receiver, owner=str(outlet.pk)), format="json")
    assert named.status_code == 201
    assert named.json()["owner"] == str(outlet.pk)
    for customer in (shop, outlet, rival):
        Order.objects.create(name="o", customer=customer)
    assert callback_ids(client) == ids_of(Callback.objects.exclude(owner=str(rival.pk)))
    assert Callback.objects.filter(owner=str(rival.pk)).count() == 1
    with pytest.raises(InvalidHookError):
        create_hook(signals=[POST_SAVE], model="shop.order", target_url=receiver.url(), owner=alice)


# --- settings and the admin ------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "check_id"),
    [
        ("OWNER_MODEL", "shop.Nothing", "http_hooks.E027"),
        ("OWNER_MODEL", 5, "http_hooks.E027"),
        ("OWNER_RESOLVER", "api_tests.test_tenants.missing", "http_hooks.E028"),
        ("OWNER_RESOLVER", "api_tests.test_tenants.MISSING", "http_hooks.E028"),
        ("OWNER_RESOLVER", None, "http_hooks.E028"),
    ],
    ids=["no-such-model", "not-a-label", "no-such-callable", "not-callable", "none"],
)
def test_bad_owner_settings_are_system_check_errors(setting, value, check_id):
    with override_settings(HTTP_HOOKS={setting: value}):
        assert [e.id for e in checks.check_settings()] == [check_id]


@CUSTOMERS
def test_good_owner_settings_pass_the_checks():
    assert checks.check_settings() == []
    call_command("check")


def test_the_admin_is_for_staff_only(world, alice, client):
    client.force_login(alice)
    for path in ["/admin/http_hooks/hook/", "/admin/http_hooks/callback/"]:
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_the_admin_filters_and_edits_the_owner(world, alice, bob, client):
    client.force_login(User.objects.create_superuser("root"))
    hook = world["hooks"]["alice"]
    listed = client.get("/admin/http_hooks/hook/", {"owner": str(bob.pk)})
    assert listed.status_code == 200
    assert [h.name for h in listed.context["cl"].result_list] == ["bob-hook"]
    project = client.get("/admin/http_hooks/callback/", {"owner": "-"})
    assert ids_of(project.context["cl"].result_list) == ids_of(world["callbacks"]["project"])
    page = client.get(f"/admin/http_hooks/hook/{hook.pk}/change/")
    form = page.context["adminform"].form
    data = {
        **{k: v for k, v in form.initial.items() if v is not None},
        "model": hook.model_id,
        "signals": [s.pk for s in hook.signals.all()],
        "owner": str(MISSING),
    }
    data["conditions"] = "{}"
    refused = client.post(f"/admin/http_hooks/hook/{hook.pk}/change/", data)
    assert refused.status_code == 200
    assert "owner" in refused.context["adminform"].form.errors
    assert Hook.objects.get(pk=hook.pk).owner == str(alice.pk)
    moved = client.post(f"/admin/http_hooks/hook/{hook.pk}/change/", {**data, "owner": bob.pk})
    assert moved.status_code == 302, moved.context["adminform"].form.errors
    assert Hook.objects.get(pk=hook.pk).owner == str(bob.pk)
    assert {c.owner for c in Callback.objects.filter(hook=hook)} == {str(alice.pk)}
