"""A hook's rate limit: its token bucket (clock-free), callbacks held back neither
claimed nor charged, a hook without a limit beside a limited one, and the limit as a
real receiver sees it with one sender in-process and with several sender processes
(four on PostgreSQL), over ten seconds."""

from __future__ import annotations

import datetime
import json
import math
import subprocess
import sys
import threading
import time
import uuid
from bisect import bisect_left
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from http_hooks.api import send_callbacks, update_hook
from http_hooks.delivery import rates, sender
from http_hooks.delivery.rates import RateLimits, take_tokens
from http_hooks.delivery.sender import TOKEN_LIFETIME, Sender
from http_hooks.exceptions import InvalidHookError
from http_hooks.models import Attempt, Callback, Hook
from shop.models import Customer, Order

from .waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(ROOT / "demo" / "manage.py"), "send_callbacks", "--quiet"]


def orders(count: int) -> None:
    for n in range(count):
        Order.objects.create(name=f"Tea {n}")


def most_in_any(seconds: float, times: list[float]) -> int:
    """The most requests in any ``seconds`` long window [t, t + seconds)."""
    times = sorted(times)
    return max(
        (bisect_left(times, start + seconds) - n for n, start in enumerate(times)), default=0
    )


def arrivals(receiver, path: str = "/hook") -> list[float]:
    return [request.received_at for request in receiver.requests if request.path == path]


@pytest.fixture
def clock(monkeypatch):
    """``timezone.now()`` standing still until the test moves it (``clock.move(s)``)."""

    class Clock:
        now = timezone.now()

        def move(self, seconds: float) -> None:
            self.now += datetime.timedelta(seconds=seconds)

    clock = Clock()
    monkeypatch.setattr(timezone, "now", lambda: clock.now)
    return clock


# --- the bucket ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("returning", [True, False], ids=["returning", "update-then-select"])
def test_the_bucket_holds_a_second_worth_and_refills_at_the_limit(
    make_hook, clock, monkeypatch, returning
):
    if not returning:
        monkeypatch.setattr(rates, "updates_return_rows", lambda db: False)
    hook = make_hook(rate_limit=5)
    first = take_tokens(hook.pk, 8)
    assert (first.count, first.limit) == (5, 5)  # a full bucket: one second's worth
    empty = take_tokens(hook.pk, 8)
    assert empty.count == 0
    assert empty.next_in == pytest.approx(0.2)
    clock.move(0.2)
    assert take_tokens(hook.pk, 8).count == 1
    clock.move(0.5)
    assert take_tokens(hook.pk, 1).count == 1  # of the 2.5 there
    assert take_tokens(hook.pk, 8).count == 1  # the rest, less the half
    clock.move(3600)
    assert take_tokens(hook.pk, 100).count == 5  # never more than a second's worth
    Hook.objects.filter(pk=hook.pk).update(rate_limit=None)
    assert take_tokens(hook.pk, 1) is None


@pytest.mark.django_db
def test_a_clock_behind_gets_nothing_more(make_hook, clock):
    """A sender whose clock is behind the others' finds the bucket further ahead: it
    waits; the bucket never moves back."""
    hook = make_hook(rate_limit=10)
    assert take_tokens(hook.pk, 10).count == 10
    clock.move(-5)
    behind = take_tokens(hook.pk, 10)
    assert behind.count == 0
    assert behind.next_in == pytest.approx(5.1)
    clock.move(5)
    assert take_tokens(hook.pk, 10).count == 0


@pytest.mark.django_db
def test_editing_a_hook_leaves_its_bucket_alone(make_hook, clock):
    hook = make_hook(rate_limit=3)
    stale = Hook.objects.get(pk=hook.pk)
    take_tokens(hook.pk, 3)
    update_hook(stale, name="renamed", rate_limit=4)
    assert take_tokens(hook.pk, 3).count == 0


# --- held back: not claimed, not charged ----------------------------------------


@pytest.mark.django_db
def test_callbacks_past_the_tokens_are_not_claimed(make_hook, clock):
    hook = make_hook(rate_limit=3)
    orders(10)
    limits = RateLimits()
    kwargs = {"hook_id": None, "token": uuid.uuid4(), "callback_ids": None}
    assert len(limits.claim(10, room=lambda hook: 10, skip=(), due_only=False, **kwargs)) == 3
    assert dict(limits.hooks()) == {hook.pk: 3}
    waiting = Callback.objects.filter(status="waiting")
    assert waiting.count() == 7
    assert set(waiting.values_list("attempts", "claim_token")) == {(0, None)}
    # No token yet: the next claim takes none, and does not even ask before one is due.
    assert limits.claim(10, room=lambda hook: 10, skip=(), due_only=False, **kwargs) == []
    assert limits.next_token_in() == pytest.approx(1 / 3, abs=0.05)


@pytest.mark.django_db
def test_tokens_a_claim_found_no_callback_for_go_back(make_hook, clock):
    hook = make_hook(rate_limit=5)
    orders(2)
    limits = RateLimits()
    claimed = limits.claim(
        10,
        room=lambda hook: 10,
        skip=(),
        hook_id=None,
        token=uuid.uuid4(),
        callback_ids=None,
        due_only=False,
    )
    assert len(claimed) == 2
    assert limits.next_token_in() is None  # nothing more is due: the run may end
    assert take_tokens(hook.pk, 5).count == 3


@pytest.mark.django_db
def test_a_limit_set_after_the_sender_looked_cuts_its_next_claim(make_hook, receiver):
    """A sender that did not know the hook was limited claims its callbacks with the
    others: what the tokens do not cover goes back at once, uncharged."""
    hook = make_hook()
    orders(10)
    with Sender() as sender:
        assert not sender.rates.hooks()
        Hook.objects.filter(pk=hook.pk).update(rate_limit=3)
        report = sender.send(stop=lambda: len(receiver.requests) >= 3)
        assert dict(sender.rates.hooks()) == {hook.pk: 3}
    assert report.sent == len(receiver.requests) == 3
    waiting = Callback.objects.filter(status="waiting")
    assert set(waiting.values_list("attempts", "claimed_until")) == {(0, None)}
    assert waiting.count() == 7
    assert Attempt.objects.count() == 3


@pytest.mark.django_db
def test_a_limit_removed_gives_the_hook_back_to_the_general_claim(make_hook, clock):
    """Found out by the next take, once the hook has a callback due."""
    hook = make_hook(rate_limit=2)
    limits = RateLimits()
    assert dict(limits.hooks()) == {hook.pk: 2}
    update_hook(hook, rate_limit=None)
    orders(1)
    token = uuid.uuid4()
    claimed = limits.claim(
        5,
        room=lambda hook: 5,
        skip=(),
        hook_id=None,
        token=token,
        callback_ids=None,
        due_only=False,
    )
    assert claimed == []
    assert not limits.hooks()
    assert limits.next_token_in() is None


@pytest.fixture
def rate_statements(monkeypatch):
    """The calls of the statements of ``delivery.rates``, by name."""
    calls = []
    for name in ("take_tokens", "hooks_with_claimable"):
        real = getattr(rates, name)
        spy = lambda *args, real=real, name=name, **kwargs: (  # noqa: E731
            calls.append(name) or real(*args, **kwargs)
        )
        monkeypatch.setattr(rates, name, spy)
    return calls


@pytest.mark.django_db
def test_a_hook_without_a_limit_costs_no_statement_more(make_hook, receiver, rate_statements):
    """The limits are read once per sender; after that a claim with only unlimited
    hooks is the same statements as before."""
    make_hook()
    orders(3)
    with Sender() as sender:
        sender.rates.hooks()
        assert sender.send().sent == 3
    assert rate_statements == []


@pytest.mark.django_db
def test_idle_limited_hooks_cost_one_query_together(make_hook, receiver, rate_statements):
    """Fifty limited hooks with nothing due beside a busy one without a limit: no
    tokens taken, and one query now and then finds that none has callbacks due."""
    for _ in range(50):
        make_hook(rate_limit=5, signals=["django.db.models.signals.post_delete"])
    make_hook()
    orders(300)
    with Sender() as sender:
        assert sender.send().sent == 300
    assert "take_tokens" not in rate_statements
    assert 1 <= rate_statements.count("hooks_with_claimable") <= 10


@pytest.mark.django_db
def test_an_unlimited_hook_beside_a_limited_one_is_not_slowed(make_hook, receiver):
    limited = make_hook(rate_limit=2, target_url=receiver.url("/limited"))
    orders(20)
    unlimited = make_hook(target_url=receiver.url("/free"))
    Callback.objects.filter(hook=limited).update(
        next_attempt_at=timezone.now() - datetime.timedelta(minutes=1)
    )
    orders(200)  # each order now makes a callback of both hooks: 220 limited, 200 free
    started = time.monotonic()
    report = send_callbacks(stop=lambda: len(arrivals(receiver, "/free")) >= 200)
    elapsed = time.monotonic() - started
    assert Callback.objects.filter(hook=unlimited, status="sent").count() == 200
    assert elapsed < 5, f"200 callbacks of a hook without a limit took {elapsed:.1f} s"
    sent = len(arrivals(receiver, "/limited"))
    assert sent <= 2 + 2 * elapsed + 1
    assert report.sent == 200 + sent
    held = Callback.objects.filter(hook=limited).exclude(status="sent")
    assert held.count() == 220 - sent
    assert set(held.values_list("status", "attempts")) == {("waiting", 0)}


# --- as the receiver sees it -----------------------------------------------------


@pytest.mark.django_db
def test_one_sender_sends_a_second_worth_then_keeps_the_pace(make_hook, receiver):
    """At 20 a second, 60 callbacks: 20 at once, then 20 a second (2 s in all); no
    second ever sees more than the bucket and a second of refill."""
    make_hook(rate_limit=20)
    orders(60)
    started = time.monotonic()
    assert send_callbacks().sent == 60
    elapsed = time.monotonic() - started
    assert elapsed >= 1.8
    assert most_in_any(1.0, arrivals(receiver)) <= 2 * 20
    assert set(Callback.objects.values_list("status", "attempts")) == {("sent", 1)}


@pytest.mark.django_db
def test_a_slow_receiver_turned_fast_gets_no_more_than_the_bucket(make_hook, receiver):
    """Tokens are taken for what can start at once: while the receiver is slow no
    callback waits in the sender holding a token, so when it turns fast it gets a
    full bucket and the limit's pace, not those callbacks on top."""
    make_hook(rate_limit=10)
    orders(50)
    receiver.respond(delay=1.0)

    def turn_fast() -> bool:
        if len(receiver.requests) >= 4:
            receiver.respond(delay=0.0)
        return False

    one_at_a_time = {**settings.HTTP_HOOKS, "CONCURRENCY": 4, "HOOK_CONCURRENCY": 2}
    with override_settings(HTTP_HOOKS=one_at_a_time):
        assert send_callbacks(stop=turn_fast).sent == 50
    assert most_in_any(1.0, arrivals(receiver)) <= 2 * 10


@pytest.mark.django_db(transaction=True)
def test_a_token_that_waited_for_a_transfer_goes_back_not_out_late(make_hook, receiver):
    """Every transfer is held by a hanging receiver when a limited hook's callbacks fall
    due: the tokens taken for them age while they wait. Once transfers free up, they go
    back uncharged and go out on fresh tokens, at the limit's pace: not on top of a
    bucket that refilled meanwhile."""
    hold = threading.Event()
    receiver.respond("/hang", hold=hold)
    make_hook(model="shop.customer", target_url=receiver.url("/hang"))
    Customer.objects.create(name="a")
    Customer.objects.create(name="b")
    limited = make_hook(rate_limit=2, target_url=receiver.url("/limited"))
    orders(4)
    later = timezone.now() + datetime.timedelta(hours=1)
    Callback.objects.filter(hook=limited).update(next_attempt_at=later)
    reports = []

    def send() -> None:
        try:
            reports.append(send_callbacks())
        finally:
            connection.close()

    busy = {**settings.HTTP_HOOKS, "CONCURRENCY": 2, "HOOK_CONCURRENCY": 2}
    with override_settings(HTTP_HOOKS=busy):
        thread = threading.Thread(target=send)
        thread.start()
        try:
            receiver.wait_for(2, timeout=60)
            Callback.objects.filter(hook=limited).update(next_attempt_at=timezone.now())
            waiting = Callback.objects.filter(hook=limited, status="sending")
            wait_until(lambda: waiting.count() == 2, timeout=30, message="no token was taken")
            # Tokens older than their lifetime, and a bucket full again.
            wait_until(
                lambda: (
                    Hook.objects.get(pk=limited.pk).rate_full_at
                    <= timezone.now().timestamp() - sender.TOKEN_LIFETIME
                ),
                timeout=30,
                message="the bucket did not refill",
            )
        finally:
            hold.set()
            thread.join(timeout=60)
    assert reports[0].sent == 6
    # A bucket of 2 at once, then one every half second: never 4 at once.
    assert most_in_any(0.25, arrivals(receiver, "/limited")) <= 2
    assert set(Callback.objects.filter(hook=limited).values_list("status", "attempts")) == {
        ("sent", 1)
    }


def start_sender(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        MANAGE,
        env={**env, "HTTP_HOOKS_OVERRIDES": json.dumps(settings.HTTP_HOOKS)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_senders_together_keep_to_the_limit_over_ten_seconds(make_hook, receiver, same_db_env):
    """Limit 10 a second, 125 callbacks: four sender processes on PostgreSQL (one
    process and this one on SQLite) share one bucket, so in any ten seconds the
    receiver sees at most 1.1 times the limit, 110 requests, and the tokens of the
    TOKEN_LIFETIME a request may wait for a transfer after its token was taken (one
    more: tokens of 10.1 s can arrive within 10); and the limit is used, not starved.
    Nothing is tried twice: held-back callbacks are not charged."""
    limit, count = 10, 125
    make_hook(rate_limit=limit)
    orders(count)
    processes = 4 if connection.vendor == "postgresql" else 1
    senders = [start_sender(same_db_env) for _ in range(processes)]
    try:
        if connection.vendor != "postgresql":
            send_callbacks()
        for sender in senders:
            _, stderr = sender.communicate(timeout=120)
            assert sender.returncode == 0, stderr
    finally:
        for sender in senders:
            sender.kill()
    times = arrivals(receiver)
    assert len(times) == count
    busiest = most_in_any(10.0, times)
    bound = 1.1 * limit * 10 + math.ceil(limit * TOKEN_LIFETIME)
    assert busiest <= bound, f"{busiest} requests in ten seconds"
    assert busiest >= 0.9 * limit * 10, "the limit was not used"
    assert set(Callback.objects.values_list("status", "attempts")) == {("sent", 1)}
    assert Attempt.objects.count() == count


# --- the field, everywhere ---------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("bad", [0, -1, 10_001, 1.5, "5", True])
def test_a_bad_rate_limit_is_refused_by_the_python_api(make_hook, bad):
    with pytest.raises(InvalidHookError) as caught:
        make_hook(rate_limit=bad)
    assert caught.value.field == "rate_limit"
    assert not Hook.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("bad", [0, -1, 10_001, 1.5, "5", True, [], {}])
def test_a_bad_rate_limit_is_a_400_on_its_field(staff_client, bad):
    body = {
        "model": "shop.order",
        "signals": ["django.db.models.signals.post_save"],
        "target_url": "https://receiver.example/hook",
        "rate_limit": bad,
    }
    answer = staff_client.post("/api/hooks/", body, format="json")
    assert answer.status_code == 400, answer.content
    assert [error["field"] for error in answer.json()["errors"]] == ["rate_limit"]
    assert not Hook.objects.exists()


@pytest.mark.django_db
def test_the_rate_limit_through_the_api(staff_client):
    body = {
        "model": "shop.order",
        "signals": ["django.db.models.signals.post_save"],
        "target_url": "https://receiver.example/hook",
    }
    created = staff_client.post("/api/hooks/", body, format="json").json()
    assert created["rate_limit"] is None
    url = f"/api/hooks/{created['id']}/"
    assert staff_client.patch(url, {"rate_limit": 50}, format="json").json()["rate_limit"] == 50
    assert Hook.objects.get().rate_limit == 50
    limited = staff_client.get("/api/hooks/?rate_limited=true").json()["results"]
    assert [hook["id"] for hook in limited] == [created["id"]]
    assert staff_client.get("/api/hooks/?rate_limited=false").json()["results"] == []
    assert staff_client.patch(url, {"rate_limit": None}, format="json").json()["rate_limit"] is None


@pytest.mark.django_db
def test_the_rate_limit_in_the_admin(admin_client, receiver):
    from django.urls import reverse

    from .test_admin import hook_form

    add = reverse("admin:http_hooks_hook_add")
    for bad in ("0", "-1", "10001", "1.5", "x"):
        response = admin_client.post(add, hook_form(receiver, rate_limit=bad))
        assert response.status_code == 200
        assert "rate_limit" in response.context["adminform"].form.errors, bad
    assert not Hook.objects.exists()
    assert admin_client.post(add, hook_form(receiver, rate_limit="25")).status_code == 302
    assert Hook.objects.get().rate_limit == 25
    changelist = reverse("admin:http_hooks_hook_changelist")
    assert "at most 25/s" in admin_client.get(changelist).content.decode()
    page = admin_client.get(changelist, {"rate_limit__isempty": "1"}).content.decode()
    assert "at most 25/s" not in page


@pytest.mark.parametrize(
    "values",
    [{"rate_limit": 0}, {"rate_full_at": 1e308}, {"rate_limit": 0, "rate_full_at": 1e308}],
    ids=["limit-0", "bucket-full-far-ahead", "both"],
)
@pytest.mark.django_db(transaction=True)
def test_a_bucket_written_around_validation_neither_crashes_nor_holds_a_run(
    make_hook, receiver, values
):
    """A limit of 0 divided by zero in the take (every hook's delivery stopped), and
    a bucket full in the far future held a one-shot run waiting for ever."""
    odd = make_hook(rate_limit=5, target_url=receiver.url("/odd"))
    fine = make_hook(target_url=receiver.url("/fine"))
    Hook.objects.filter(pk=odd.pk).update(**values)
    orders(1)
    done = threading.Event()
    reports = []

    def run() -> None:
        try:
            reports.append(send_callbacks())
        finally:
            connection.close()
            done.set()

    threading.Thread(target=run, daemon=True).start()
    # A guard against a run that never ends, not a measure: this one takes about a second.
    assert done.wait(60)
    assert reports and reports[0].sent == 2
    assert set(Callback.objects.values_list("hook_id", "status")) == {
        (odd.pk, "sent"),
        (fine.pk, "sent"),
    }
