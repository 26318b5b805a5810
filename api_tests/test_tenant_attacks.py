"""A hostile review's findings, kept as tests: what a tenant (or a hook changing
hands) must never be able to do, and what ordered keys must survive."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from http_hooks import services
from http_hooks.api import send_callbacks
from http_hooks.api.views import HookViewSet
from http_hooks.delivery import claim_batch
from http_hooks.exceptions import HookChangedHandsError
from http_hooks.models import Callback, CallbackStatus, Hook
from http_hooks.signing import verify
from shop.models import Customer, Order

from .test_tenants import admin_sets_owner, client_of, tenant

pytestmark = pytest.mark.django_db
POST_INIT = "django.db.models.signals.post_init"


@pytest.fixture
def alice():
    return tenant("alice")


@pytest.fixture
def bob():
    return tenant("bob")


def order_of(owner, name="o") -> Order:
    customer = Customer.objects.create(name="c", account=owner)
    return Order.objects.create(name=name, customer=customer)


def keyed(make_hook, owner):
    """An ordered hook of ``owner`` and the two callbacks of one key: a, then b."""
    hook = make_hook(owner=owner, ordering_key="{{instance.name}}")
    order = order_of(owner, "k")
    order.total = 1
    order.save()
    a, b = Callback.objects.filter(hook=hook).order_by("pk")
    assert a.ordering_key == b.ordering_key == "k"
    return hook, a, b


def test_a_callback_in_flight_cannot_be_deleted(make_hook, alice):
    """Deleting the head a sender holds would let the key's next go while it is sent."""
    _, a, _ = keyed(make_hook, alice)
    assert [c.pk for c in claim_batch()] == [a.pk]
    response = client_of(alice).delete(f"/api/callbacks/{a.pk}/")
    assert response.status_code == 409
    assert response.json()["code"] == "callback_sending"
    assert Callback.objects.filter(pk=a.pk).exists()
    assert claim_batch() == []
    Callback.objects.filter(pk=a.pk).update(status=CallbackStatus.SENT)
    assert client_of(alice).delete(f"/api/callbacks/{a.pk}/").status_code == 204


def test_retention_keeps_the_head_of_a_halted_key(make_hook, alice, settings):
    with override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, "ORDERED_ON_FAILURE": "halt"}):
        _, a, b = keyed(make_hook, alice)
        old = timezone.now() - timedelta(days=40)
        Callback.objects.filter(pk=a.pk).update(status=CallbackStatus.ERROR, create_datetime=old)
        Callback.objects.filter(pk=b.pk).update(create_datetime=old)
        assert services.delete_old_callbacks(days=30, vacuum=False) == 0
        assert claim_batch() == []
    # With skip, the head that ended in error is history like any other.
    assert services.delete_old_callbacks(days=30, vacuum=False) == 1


def test_a_hook_that_changes_hands_leaves_its_callbacks_with_the_old_owner(
    make_hook, alice, bob, staff_client, receiver
):
    hook = make_hook(owner=alice, target_url=receiver.url("/alice"))
    order_of(alice, "alice-secret")
    [callback] = Callback.objects.filter(hook=hook)
    response = staff_client.patch(f"/api/hooks/{hook.pk}/", {"owner": str(bob.pk)}, format="json")
    assert response.status_code == 200, response.content
    assert client_of(bob).get("/api/callbacks/").json()["results"] == []
    [seen] = client_of(alice).get("/api/callbacks/").json()["results"]
    assert (seen["id"], seen["status"]) == (callback.pk, "error")
    assert "moved to another owner" in seen["status_details"]
    # Neither Alice nor staff can send Alice's event through Bob's hook now.
    assert client_of(alice).post(f"/api/callbacks/{callback.pk}/resend/").status_code == 409
    assert services.resend_callbacks(ids=[callback.pk]) == 0
    bobs = {"target_url": receiver.url("/bob"), "headers": {"Authorization": "Bearer BOB"}}
    assert client_of(bob).patch(f"/api/hooks/{hook.pk}/", bobs, format="json").status_code == 200
    send_callbacks()
    assert receiver.requests == []


def test_a_retry_goes_to_the_url_the_hook_has_now(make_hook, alice, receiver):
    """A new URL and credential go together: never the new token to the old URL."""
    hook = make_hook(owner=alice, target_url=receiver.url("/old"))
    order_of(alice)
    new = {"target_url": receiver.url("/new"), "headers": {"Authorization": "Bearer NEW"}}
    assert client_of(alice).patch(f"/api/hooks/{hook.pk}/", new, format="json").status_code == 200
    send_callbacks()
    assert [(r.path, r.headers.get("authorization")) for r in receiver.requests] == [
        ("/new", "Bearer NEW")
    ]


def test_an_owned_hook_cannot_listen_to_init_signals(alice, bob, receiver):
    """Whose an instance is cannot be told while it is built; following the owner path
    would cost every load of the model, any owner's, a query."""
    for number in range(5):
        order_of(bob, f"o{number}")
    body = {"model": "shop.order", "signals": [POST_INIT], "target_url": receiver.url()}
    response = client_of(alice).post("/api/hooks/", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "signals"
    with CaptureQueriesContext(connection) as loads:
        list(Order.objects.all())
    assert len(loads) == 1


def test_options_on_another_owners_hook_answers_as_for_a_missing_one(make_hook, alice, bob):
    hook = make_hook(owner=bob)
    theirs = client_of(alice).options(f"/api/hooks/{hook.pk}/")
    missing = client_of(alice).options("/api/hooks/999999/")
    assert (theirs.status_code, theirs.content) == (missing.status_code, missing.content)


def halting(settings):
    return override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, "ORDERED_ON_FAILURE": "halt"})


@pytest.mark.parametrize("head", ["waiting", "error", "sending"])
def test_a_previous_owners_callbacks_never_halt_the_new_owners_keys(
    make_hook, alice, bob, staff_client, receiver, settings, head
):
    """Alice's callbacks can never be resent through the hook once it is Bob's, so under
    "halt" they must not head Bob's keys: he could neither see nor release them."""
    with halting(settings):
        hook, a, _ = keyed(make_hook, alice)
        if head == "error":  # failed for good before the move
            Callback.objects.filter(pk=a.pk).update(status=CallbackStatus.ERROR)
        elif head == "sending":  # in flight at the move...
            assert [c.pk for c in claim_batch()] == [a.pk]
        response = staff_client.patch(
            f"/api/hooks/{hook.pk}/", {"owner": str(bob.pk)}, format="json"
        )
        assert response.status_code == 200, response.content
        if head == "sending":  # ...and its last try fails
            Callback.objects.filter(pk=a.pk).update(status=CallbackStatus.ERROR)
        order_of(bob, "k")
        [bobs] = Callback.objects.filter(hook=hook, owner=str(bob.pk))
        assert send_callbacks().sent == 1
        bobs.refresh_from_db()
        assert bobs.status == CallbackStatus.SENT
        assert [r.json()["object_serialization"]["name"] for r in receiver.requests] == ["k"]


def test_a_callback_stored_for_the_previous_owner_after_a_move_halts_nothing(
    make_hook, alice, bob, receiver, settings
):
    """One stored under Alice by a process that had not seen the move yet: the sender
    that claims it stops it, and Bob's callback of its key goes next."""
    with halting(settings):
        hook, a, _ = keyed(make_hook, alice)
        services.update_hook(hook, owner=bob)
        stale = Callback.objects.get(pk=a.pk)
        stale.pk, stale.event_id = None, uuid.uuid4()
        stale.status, stale.ordering_key = CallbackStatus.WAITING, "k"
        stale.save()
        order_of(bob, "k")
        assert send_callbacks().sent == 1
        stale.refresh_from_db()
        assert (stale.status, stale.ordering_key) == (CallbackStatus.ERROR, "")
        assert "moved to another owner" in stale.status_details
        assert Callback.objects.get(hook=hook, owner=str(bob.pk)).status == CallbackStatus.SENT


ALICES = {"Authorization": "Bearer ALICE-TOKEN", "X-Api-Key": "alice-key", "X-Team": "a"}


def alices_signed_hook(make_hook, alice, receiver) -> Hook:
    hook = make_hook(owner=alice, target_url=receiver.url("/alice"), headers=ALICES)
    services.rotate_secret(hook)  # the old secret signs too, for the grace period
    hook.refresh_from_db()
    assert hook.previous_secret
    return hook


def assert_bob_gets_nothing_of_alices(hook, alice_secrets, bob, receiver):
    """Bob points the hook he was given at his own server: none of Alice's credentials
    goes there, and nothing it receives is signed with one of her secrets."""
    bobs_url = {"target_url": receiver.url("/bob")}
    response = client_of(bob).patch(f"/api/hooks/{hook.pk}/", bobs_url, format="json")
    assert response.status_code == 200, response.content
    order_of(bob, "chosen by bob")
    assert send_callbacks().sent == 1
    [request] = receiver.requests
    assert request.path == "/bob"
    assert not {"authorization", "x-api-key"} & {name.lower() for name in request.headers}
    assert request.headers["x-team"] == "a"  # not a credential: it stays
    assert request.headers["webhook-signature"]  # signed, with a secret of the hook's own
    for secret in alice_secrets:
        assert not verify(secret, request.headers, request.body)


def test_a_hook_given_to_another_owner_keeps_none_of_the_previous_owners_credentials(
    make_hook, alice, bob, staff_client, receiver
):
    hook = alices_signed_hook(make_hook, alice, receiver)
    alice_secrets = [hook.secret, hook.previous_secret]
    response = staff_client.patch(f"/api/hooks/{hook.pk}/", {"owner": str(bob.pk)}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["headers"] == {"X-Team": "a"}
    moved = Hook.objects.get(pk=hook.pk)
    assert moved.secret and moved.secret not in alice_secrets
    assert (moved.previous_secret, moved.previous_secret_expires_at) == ("", None)
    assert_bob_gets_nothing_of_alices(hook, alice_secrets, bob, receiver)


def test_the_admin_hands_over_no_credentials_either(make_hook, alice, bob, client, receiver):
    hook = alices_signed_hook(make_hook, alice, receiver)
    alice_secrets = [hook.secret, hook.previous_secret]
    admin_sets_owner(client, hook, str(bob.pk))
    moved = Hook.objects.get(pk=hook.pk)
    assert (moved.owner, moved.headers) == (str(bob.pk), {"X-Team": "a"})
    assert moved.secret not in alice_secrets and not moved.previous_secret
    assert_bob_gets_nothing_of_alices(hook, alice_secrets, bob, receiver)


def test_credentials_given_with_the_change_of_owner_are_the_new_owners(make_hook, alice, bob):
    hook = make_hook(owner=alice, headers=ALICES)
    secret = services.generate_secret()
    bobs = {"Authorization": "Bearer BOB", "X-Api-Key": "********", "X-Team": "b"}
    moved = services.update_hook(hook, owner=bob, headers=bobs, secret=secret)
    assert moved.headers == {"Authorization": "Bearer BOB", "X-Team": "b"}
    assert (moved.secret, moved.previous_secret) == (secret, "")
    # Between the hands of one owner nothing changes.
    assert services.update_hook(moved, name="renamed").secret == secret
    assert Hook.objects.get(pk=hook.pk).headers == moved.headers


def test_the_admin_moves_nothing_for_the_same_owner_written_otherwise(
    make_hook, alice, client, receiver
):
    """``01`` names the owner ``1``: no change of hands, so the secret (and its grace)
    and the credential headers stay; Django's form compared the text typed."""
    hook = alices_signed_hook(make_hook, alice, receiver)
    before = (hook.secret, hook.previous_secret, hook.headers)
    admin_sets_owner(client, hook, f"0{alice.pk}")
    kept = Hook.objects.get(pk=hook.pk)
    assert kept.owner == str(alice.pk)
    assert (kept.secret, kept.previous_secret, kept.headers) == before


def moved_after_read(monkeypatch, staff_client, hook: Hook, owner) -> None:
    """The next request that reads ``hook`` finds it as it is, then, before it writes,
    staff give it to ``owner`` (committed)."""
    found = HookViewSet.get_object
    pending = [True]

    def found_then_moved(view):
        found_hook = found(view)
        if pending:
            pending.clear()
            moved = staff_client.patch(
                f"/api/hooks/{hook.pk}/", {"owner": str(owner.pk)}, format="json"
            )
            assert moved.status_code == 200, moved.content
        return found_hook

    monkeypatch.setattr(HookViewSet, "get_object", found_then_moved)


def test_a_rotation_by_the_previous_owner_racing_the_move_gives_the_new_owner_nothing(
    make_hook, alice, bob, staff_client, receiver, monkeypatch
):
    """Alice's ``rotate-secret`` found the hook hers; the move to Bob commits before it
    writes: it must not give Bob's hook a secret Alice is shown, nor let her old one
    sign for the grace period (her receiver would take what Bob chooses as genuine)."""
    hook = alices_signed_hook(make_hook, alice, receiver)
    alice_secrets = {hook.secret, hook.previous_secret}
    moved_after_read(monkeypatch, staff_client, hook, bob)
    response = client_of(alice).post(f"/api/hooks/{hook.pk}/rotate-secret/", format="json")
    assert response.status_code == 404, response.content
    bobs = Hook.objects.get(pk=hook.pk)
    assert bobs.owner == str(bob.pk)
    assert not {bobs.secret, bobs.previous_secret} & alice_secrets
    assert not bobs.previous_secret


def test_a_change_by_the_previous_owner_racing_the_move_takes_nothing_back(
    make_hook, alice, bob, staff_client, receiver, monkeypatch
):
    """Alice's ``PATCH`` read the hook as hers; the move to Bob commits before it writes:
    her copy must not write the hook back as hers (nor anything else of it)."""
    hook = alices_signed_hook(make_hook, alice, receiver)
    moved_after_read(monkeypatch, staff_client, hook, bob)
    response = client_of(alice).patch(
        f"/api/hooks/{hook.pk}/", {"name": "still mine"}, format="json"
    )
    assert response.status_code == 404, response.content
    bobs = Hook.objects.get(pk=hook.pk)
    assert (bobs.owner, bobs.name) == (str(bob.pk), hook.name)


def test_staff_whose_change_races_a_move_are_told_and_change_nothing(
    make_hook, alice, bob, staff_client, receiver, monkeypatch
):
    hook = alices_signed_hook(make_hook, alice, receiver)
    moved_after_read(monkeypatch, staff_client, hook, bob)
    response = staff_client.patch(f"/api/hooks/{hook.pk}/", {"name": "renamed"}, format="json")
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "hook_changed_hands"
    bobs = Hook.objects.get(pk=hook.pk)
    assert (bobs.owner, bobs.name) == (str(bob.pk), hook.name)


def test_a_change_of_a_deleted_hook_is_refused_by_name(make_hook):
    hook = make_hook()
    Hook.objects.filter(pk=hook.pk).delete()
    with pytest.raises(HookChangedHandsError):
        services.update_hook(hook, name="renamed")
    assert not Hook.objects.exists()


def test_a_delete_by_the_previous_owner_racing_the_move_deletes_nothing(
    make_hook, alice, bob, staff_client, receiver, monkeypatch
):
    """Alice's ``DELETE`` found the hook hers; the move to Bob commits before it deletes:
    Bob's hook (and his callbacks with it) must stay."""
    hook = alices_signed_hook(make_hook, alice, receiver)
    moved_after_read(monkeypatch, staff_client, hook, bob)
    response = client_of(alice).delete(f"/api/hooks/{hook.pk}/")
    assert response.status_code == 404, response.content
    assert Hook.objects.get(pk=hook.pk).owner == str(bob.pk)


def test_a_stale_copy_deletes_no_hook_that_changed_hands(make_hook, alice, bob):
    hook = make_hook(owner=alice)
    services.update_hook(Hook.objects.get(pk=hook.pk), owner=bob)
    with pytest.raises(HookChangedHandsError):
        services.delete_hook(hook)
    assert Hook.objects.get(pk=hook.pk).owner == str(bob.pk)
    Hook.objects.filter(pk=hook.pk).delete()
    services.delete_hook(hook)  # a hook deleted already: nothing, as before


def test_a_test_event_by_the_previous_owner_racing_the_move_sends_nothing(
    make_hook, alice, bob, staff_client, receiver, monkeypatch
):
    """Alice's ``test`` found the hook hers; the move to Bob commits before it sends: her
    copy (her URL, her old secret) must not send a test event through Bob's hook, whose
    outcome lands in his hook's health and attempt log."""
    hook = alices_signed_hook(make_hook, alice, receiver)
    moved_after_read(monkeypatch, staff_client, hook, bob)
    response = client_of(alice).post(f"/api/hooks/{hook.pk}/test/", format="json")
    assert response.status_code == 404, response.content
    assert not Callback.objects.filter(hook=hook).exists()
    assert receiver.requests == []


def test_a_recover_by_the_previous_owner_racing_the_move_queues_none_of_the_new_owners(
    make_hook, alice, bob
):
    """Alice's copy of the hook, read before the move to Bob: recovering through it must
    not queue Bob's failed callbacks again (nor count them to her)."""
    hook = make_hook(owner=alice)
    since = timezone.now()
    services.update_hook(Hook.objects.get(pk=hook.pk), owner=bob)
    order_of(bob, "bob's")
    Callback.objects.filter(hook=hook).update(status=CallbackStatus.ERROR)
    with pytest.raises(HookChangedHandsError):
        services.recover_hook(hook, since=since)
    assert set(Callback.objects.filter(hook=hook).values_list("status", flat=True)) == {
        CallbackStatus.ERROR
    }
