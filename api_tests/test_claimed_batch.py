"""A sender's claimed batch, started a few callbacks at a time, against what changes
meanwhile elsewhere: a hook deleted, paused or disabled (by a user, another sender or a
worker) gets no request that starts after the change, but those already in flight."""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from http_hooks.delivery import sender as sender_module
from http_hooks.models import Callback, Hook
from http_hooks.services import delete_hook, send_callbacks
from shop.models import Order

pytestmark = pytest.mark.django_db(transaction=True)

# Two transfers at a time: of ten claimed callbacks, eight wait for a free one.
SMALL = override_settings(
    HTTP_HOOKS={**settings.HTTP_HOOKS, "CONCURRENCY": 2, "HOOK_CONCURRENCY": 2}
)


def change_while_sending(
    make_hook, receiver, monkeypatch, change: Callable[[Hook], object]
) -> None:
    """Ten callbacks of one hook: a sender claims them and starts two, which the receiver
    holds; ``change(hook)`` is made, then the two are answered and the sender runs to its
    end. It looks again at the hooks of what it holds when a transfer ends, at most every
    CLAIM_INTERVAL: 0 here, so that it looks when the two end, whatever the time taken."""
    monkeypatch.setattr(sender_module, "CLAIM_INTERVAL", 0)
    hold = threading.Event()
    receiver.respond(hold=hold)
    hook = make_hook()
    for n in range(10):
        Order.objects.create(name=f"order {n}")

    def send() -> None:
        try:
            send_callbacks()
        finally:
            connection.close()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        receiver.wait_for(2)  # two in flight, eight claimed and not started
        change(hook)
    finally:
        hold.set()
        sender.join(timeout=60)
    assert not sender.is_alive()


@SMALL
def test_a_deleted_hook_gets_no_new_request(make_hook, receiver, monkeypatch, caplog):
    """Its callbacks went with it; a Celery worker went on with its whole claimed batch
    (464 of 500 requests started after the deletion, for 40 s)."""
    caplog.set_level(logging.INFO, logger="http_hooks.delivery.sender")
    change_while_sending(make_hook, receiver, monkeypatch, delete_hook)
    assert len(receiver.requests) == 2
    assert "8 claimed callbacks of deleted hooks" in caplog.text


@SMALL
@pytest.mark.parametrize(
    "change",
    [
        {"paused_until": timezone.now() + datetime.timedelta(hours=1)},
        {"enabled": False, "disabled_reason": "gone"},
    ],
    ids=["paused", "disabled"],
)
def test_a_hook_held_elsewhere_gets_no_new_request(make_hook, receiver, monkeypatch, change):
    """Paused (another sender's Retry-After or breaker) or disabled (a 410) while this
    sender holds claimed callbacks of it: they go back to waiting, uncharged, as the
    README promises. A sender whose queue was full read the held hooks only at its next
    claim, and sent its whole batch (252 of 300 requests after the pause, for 22 s)."""
    change_while_sending(
        make_hook,
        receiver,
        monkeypatch,
        lambda hook: Hook.objects.filter(pk=hook.pk).update(**change),
    )
    assert len(receiver.requests) == 2
    statuses = sorted(Callback.objects.values_list("status", "attempts"))
    assert statuses == [("sent", 1)] * 2 + [("waiting", 0)] * 8, statuses
