"""Endpoint health against a real receiver that misbehaves: Retry-After (seconds and
HTTP dates), 410 Gone, a dead receiver (circuit breaker, half-open probe),
auto-disable, the hook_disabled notice, and enabling the hook again."""

import contextlib
import datetime
import logging
import threading
import uuid
from email.utils import format_datetime

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import OperationalError, connection, connections, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from http_hooks.api import enable_hook, send_callbacks, update_hook
from http_hooks.delivery import health, sender
from http_hooks.delivery.claims import claim_batch, claim_probe, release_claims, with_hooks
from http_hooks.delivery.outcomes import DeliveryReport, record_outcomes
from http_hooks.models import TEST_EVENT_TYPE, Attempt, Callback, Hook
from http_hooks.signals import hook_disabled
from http_hooks.transport import Outcome
from shop.models import Order

from .waiting import wait_until

pytestmark = pytest.mark.django_db

# One transfer per hook at a time: "the other callbacks are not tried" is then exact.
ONE_AT_A_TIME = {"HOOK_CONCURRENCY": 1, "RETRY_JITTER": 0.0, "RETRY_SCHEDULE": [5, 600]}


def health_settings(**overrides):
    return override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, **ONE_AT_A_TIME, **overrides})


def callbacks_of(make_hook, count: int, **hook_kwargs) -> Hook:
    hook = make_hook(**hook_kwargs)
    for n in range(count):
        Order.objects.create(name=f"Tea {n}")
    return hook


def tried() -> list[Callback]:
    return list(Callback.objects.filter(attempts__gt=0))


def untried() -> list[Callback]:
    return list(Callback.objects.filter(attempts=0))


def end_pause(hook: Hook) -> None:
    """As if the pause had run its course."""
    Hook.objects.filter(pk=hook.pk).update(
        paused_until=timezone.now() - datetime.timedelta(seconds=1)
    )


def gone_hook(make_hook, receiver, count: int) -> Hook:
    """A hook with ``count`` callbacks, disabled by its receiver's 410 at the first."""
    receiver.respond(status=410)
    hook = callbacks_of(make_hook, count)
    with health_settings():
        send_callbacks()
    hook.refresh_from_db()
    assert hook.disabled_reason == "gone"
    return hook


@pytest.fixture
def disabled_notices():
    notices = []

    def listener(sender, hook, reason, **kwargs):
        notices.append((sender, hook.pk, reason))

    hook_disabled.connect(listener)
    yield notices
    hook_disabled.disconnect(listener)


# --- Retry-After -----------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_retry_after_sets_the_next_try_and_pauses_the_hook(make_hook, receiver, status, form):
    hook = callbacks_of(make_hook, 3)
    started = timezone.now()
    value = (
        "120"
        if form == "seconds"
        else format_datetime(started + datetime.timedelta(seconds=121), usegmt=True)
    )
    receiver.respond(status=status, headers={"Retry-After": value})
    with health_settings():
        report = send_callbacks()
    finished = timezone.now()

    assert len(receiver.requests) == 1
    assert report.retried == 1
    (throttled,) = tried()
    hook.refresh_from_db()
    earliest = started + datetime.timedelta(seconds=119)
    assert earliest <= throttled.next_attempt_at <= finished + datetime.timedelta(seconds=121)
    assert earliest <= hook.paused_until <= finished + datetime.timedelta(seconds=121)
    # The others were given back untouched: not tried, not charged, still due.
    others = untried()
    assert [c.status for c in others] == ["waiting", "waiting"]
    assert all(c.next_attempt_at <= started for c in others)

    with health_settings():
        send_callbacks()
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_a_retry_after_sent_twice_counts_with_its_first_value(make_hook, receiver, form):
    hook = callbacks_of(make_hook, 2)
    started = timezone.now()
    first, second = (
        ("120", "5")
        if form == "seconds"
        else (
            format_datetime(started + datetime.timedelta(seconds=121), usegmt=True),
            format_datetime(started + datetime.timedelta(seconds=5), usegmt=True),
        )
    )
    receiver.respond(status=429, headers=[("Retry-After", first), ("Retry-After", second)])
    with health_settings():
        send_callbacks()
    finished = timezone.now()

    (throttled,) = tried()
    hook.refresh_from_db()
    earliest = started + datetime.timedelta(seconds=119)
    assert earliest <= hook.paused_until <= finished + datetime.timedelta(seconds=121)
    assert earliest <= throttled.next_attempt_at


def test_retry_after_is_capped_by_retry_after_max(make_hook, receiver):
    receiver.respond(status=429, headers={"Retry-After": "99999999"})
    hook = callbacks_of(make_hook, 1)
    with health_settings(RETRY_AFTER_MAX=600):
        send_callbacks()
    finished = timezone.now()
    hook.refresh_from_db()
    (callback,) = tried()
    assert hook.paused_until <= finished + datetime.timedelta(seconds=600)
    # The retry schedule's own 5 s is not what counts: the cap is.
    assert callback.next_attempt_at >= finished + datetime.timedelta(seconds=590)


def test_the_longest_durations_the_checks_allow_are_dates_the_sender_can_write(make_hook, receiver):
    """At ``checks.MAX_SECONDS`` (what ``manage.py check`` allows at most), a huge
    Retry-After and the longest retry pause still make dates: past it, the sender
    crashed with an OverflowError while writing a whole window of outcomes."""
    from http_hooks.checks import MAX_SECONDS

    receiver.respond(status=429, headers={"Retry-After": "999999999999"})
    hook = callbacks_of(make_hook, 1)
    with health_settings(
        RETRY_AFTER_MAX=MAX_SECONDS, RETRY_SCHEDULE=[MAX_SECONDS], RETRY_JITTER=0.99
    ):
        send_callbacks()
    finished = timezone.now()
    hook.refresh_from_db()
    (callback,) = tried()
    assert hook.paused_until <= finished + datetime.timedelta(seconds=MAX_SECONDS)
    assert callback.next_attempt_at >= finished + datetime.timedelta(seconds=MAX_SECONDS - 60)


def test_a_429_without_retry_after_does_not_pause_the_hook(make_hook, receiver):
    receiver.respond(status=429)
    hook = callbacks_of(make_hook, 2)
    with health_settings():
        send_callbacks()
    hook.refresh_from_db()
    assert hook.paused_until is None
    assert len(receiver.requests) == 2


@pytest.mark.parametrize(
    "value",
    [
        "Fri, 31 Dec 99999999999999999999 23:59:59 GMT",
        "Fri, 31 Dec 2030 23:59:99999999999999999999 GMT",
        "Fri, 31 Dec 2030 25:00:00 GMT",
        "Fri, 31 Dec 2030 23:59:59 +9999",
    ],
)
def test_a_retry_after_date_that_is_no_date_is_a_429_without_one(make_hook, receiver, value):
    """A year or a second past a C long made ``parsedate_to_datetime`` raise an
    OverflowError: the sender crashed on writing the outcome (and ``send_callbacks
    --loop`` with it, every hook's deliveries stopped), a test event was a 500."""
    receiver.respond(status=429, headers={"Retry-After": value})
    hook = callbacks_of(make_hook, 1)
    with health_settings():
        report = send_callbacks()
    assert report.retried == 1
    hook.refresh_from_db()
    assert hook.paused_until is None
    (attempt,) = Attempt.objects.all()
    assert (attempt.response_status, attempt.error) == (429, "HTTP 429")


def test_when_the_pause_ends_one_probe_decides_and_the_rest_follow(make_hook, receiver):
    receiver.respond(status=429, headers={"Retry-After": "60"})
    hook = callbacks_of(make_hook, 3)
    with health_settings():
        send_callbacks()
    end_pause(hook)
    receiver.respond(status=200)
    with health_settings():
        send_callbacks()
    hook.refresh_from_db()
    assert hook.paused_until is None
    assert hook.consecutive_failures == 0
    # The throttled callback keeps its own retry time; the two others went out.
    assert sorted(Callback.objects.values_list("status", flat=True)) == ["sent", "sent", "waiting"]
    assert len(receiver.requests) == 3


# --- 410 Gone --------------------------------------------------------------------


def test_410_ends_the_callback_and_disables_the_hook(
    make_hook, receiver, disabled_notices, django_capture_on_commit_callbacks, caplog
):
    receiver.respond(status=410)
    hook = callbacks_of(make_hook, 3)
    with (
        health_settings(),
        django_capture_on_commit_callbacks(execute=True),
        caplog.at_level(logging.WARNING, logger="http_hooks"),
    ):
        report = send_callbacks()

    assert (report.failed, len(receiver.requests)) == (1, 1)
    (gone,) = tried()
    assert gone.status == "error" and "410" in gone.status_details
    hook.refresh_from_db()
    assert (hook.enabled, hook.disabled_reason) == (False, "gone")
    assert hook.disabled_at is not None
    assert disabled_notices == [(Hook, hook.pk, "gone")]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"hook {hook.pk}" in warnings[0].getMessage()
    assert [c.status for c in untried()] == ["waiting", "waiting"]

    with health_settings():
        send_callbacks()
    assert len(receiver.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_a_hook_disabled_listener_that_raises_does_not_stop_the_sender(make_hook, receiver, caplog):
    """The notice goes after commit, to the project's code: its error is logged, and
    the sender (``send_callbacks --loop`` too) goes on with the other hooks."""
    receiver.respond("/gone", status=410)
    gone = make_hook(target_url=receiver.url("/gone"))
    fine = make_hook(target_url=receiver.url("/fine"))
    for n in range(3):
        Order.objects.create(name=f"Tea {n}")

    def broken_listener(**kwargs):
        raise RuntimeError("the listener broke")

    hook_disabled.connect(broken_listener)
    try:
        with health_settings(), caplog.at_level(logging.ERROR):
            report = send_callbacks()
    finally:
        hook_disabled.disconnect(broken_listener)

    assert (report.sent, report.failed) == (3, 1)
    assert Hook.objects.get(pk=gone.pk).disabled_reason == "gone"
    assert set(Callback.objects.filter(hook=fine).values_list("status", flat=True)) == {"sent"}
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "the listener broke" in error.getMessage()


@pytest.mark.parametrize("update_fields", [None, ["enabled"]], ids=["save", "update-fields"])
def test_a_gone_hook_enabled_by_a_plain_save_sends_what_it_kept(make_hook, receiver, update_fields):
    """Code of the project's own may turn a hook back on with ``save()``: its disabled
    reason went on holding its callbacks back, the row saying it was enabled."""
    hook = gone_hook(make_hook, receiver, 3)
    receiver.respond(status=200)
    hook.enabled = True
    hook.save(update_fields=update_fields)

    hook.refresh_from_db()
    assert (hook.enabled, hook.disabled_reason, hook.disabled_at) == (True, "", None)
    assert (hook.consecutive_failures, hook.paused_until) == (0, None)
    with health_settings():
        report = send_callbacks()
    assert report.sent == 2
    assert len(receiver.requests) == 3


def test_a_save_whose_update_fields_are_a_generator_writes_them_all(make_hook, receiver):
    hook = gone_hook(make_hook, receiver, 1)
    hook.name, hook.enabled = "again", True
    hook.save(update_fields=(name for name in ["name", "enabled"]))
    hook.refresh_from_db()
    assert (hook.name, hook.enabled, hook.disabled_reason) == ("again", True, "")


def test_a_save_that_leaves_enabled_out_keeps_the_disabled_reason(make_hook, receiver):
    hook = gone_hook(make_hook, receiver, 2)
    hook.name, hook.enabled = "renamed", True  # a stale copy's flag, not written
    hook.save(update_fields=["name"])
    hook.refresh_from_db()
    assert (hook.name, hook.enabled, hook.disabled_reason) == ("renamed", False, "gone")


def test_enabling_a_gone_hook_over_rest_sends_what_it_kept(make_hook, receiver, staff_client):
    receiver.respond(status=410)
    hook = callbacks_of(make_hook, 3)
    with health_settings():
        send_callbacks()
    receiver.respond(status=200)

    response = staff_client.post(f"/api/hooks/{hook.pk}/enable/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["enabled"] is True
    assert (body["disabled_reason"], body["disabled_at"], body["paused_until"]) == ("", None, None)
    assert body["consecutive_failures"] == 0
    with health_settings():
        report = send_callbacks()
    assert report.sent == 2
    assert sorted(Callback.objects.values_list("status", flat=True)) == ["error", "sent", "sent"]


def test_enable_of_a_missing_hook_is_a_404(staff_client):
    assert staff_client.post("/api/hooks/999/enable/").status_code == 404


def test_with_disable_on_gone_off_410_only_ends_the_callback(make_hook, receiver):
    receiver.respond(status=410)
    hook = callbacks_of(make_hook, 2)
    with health_settings(DISABLE_ON_GONE=False):
        send_callbacks()
    hook.refresh_from_db()
    assert (hook.enabled, hook.disabled_reason) == (True, "")
    assert sorted(Callback.objects.values_list("status", flat=True)) == ["error", "error"]


# --- circuit breaker ---------------------------------------------------------------


def test_a_dead_receiver_opens_the_breaker_and_costs_one_probe_per_cooldown(make_hook, receiver):
    receiver.respond(reset=True)
    hook = callbacks_of(make_hook, 10)
    with health_settings(BREAKER_FAILURES=3, BREAKER_COOLDOWN=30):
        started = timezone.now()
        send_callbacks()
        hook.refresh_from_db()
        assert len(receiver.requests) == 3
        assert hook.consecutive_failures == 3
        assert started + datetime.timedelta(seconds=29) <= hook.paused_until
        assert hook.paused_until <= timezone.now() + datetime.timedelta(seconds=30)
        assert len(untried()) == 7

        send_callbacks()  # still paused
        assert len(receiver.requests) == 3

        end_pause(hook)
        started = timezone.now()
        send_callbacks()  # one probe, which fails: a cool-down twice as long
        hook.refresh_from_db()
        assert len(receiver.requests) == 4
        assert hook.consecutive_failures == 4
        assert started + datetime.timedelta(seconds=59) <= hook.paused_until
        assert hook.paused_until <= timezone.now() + datetime.timedelta(seconds=60)

        end_pause(hook)
        receiver.respond(status=200)
        send_callbacks()  # the probe succeeds: the breaker closes, the rest go out
    hook.refresh_from_db()
    assert (hook.consecutive_failures, hook.paused_until) == (0, None)
    assert hook.last_success_at is not None
    assert Callback.objects.filter(status="sent").count() == 6  # all but the four tried


def test_a_receiver_asking_for_short_pauses_still_opens_the_breaker(make_hook, receiver):
    """Each answer's Retry-After of a second made the hook paused when its failure was
    counted, and the breaker never opened: the receiver set the pace at a try a
    second, for days, instead of one per cool-down."""
    receiver.respond(status=503, headers={"Retry-After": "1"})
    hook = callbacks_of(make_hook, 10)
    with health_settings(BREAKER_FAILURES=3, BREAKER_COOLDOWN=30):
        for tries in range(1, 4):
            if tries > 1:
                end_pause(hook)
            send_callbacks()  # one try: its answer pauses the hook for a second
            hook.refresh_from_db()
            assert (len(receiver.requests), hook.consecutive_failures) == (tries, tries)
    assert hook.breaker_trips == 1
    assert hook.paused_until is not None
    assert hook.paused_until >= timezone.now() + datetime.timedelta(seconds=28)


def test_a_success_resets_failures_written_after_its_hook_was_loaded(make_hook):
    """The sender's copy of a hook is as old as its claim: failures written since (by
    another sender, or by this one for callbacks of a later claim) are still reset by
    a success, or the breaker would open on failures that were not in a row."""
    hook = callbacks_of(make_hook, 1)
    now = timezone.now()
    Hook.objects.filter(pk=hook.pk).update(last_success_at=now)
    (callback,) = claim_batch()
    Hook.objects.filter(pk=hook.pk).update(consecutive_failures=4, failing_since=now)

    with health_settings():
        record_outcomes([callback], [Outcome(status_code=200)], DeliveryReport())

    hook.refresh_from_db()
    assert (hook.consecutive_failures, hook.failing_since) == (0, None)
    assert hook.last_success_at > now


def test_a_callback_deleted_while_sent_is_not_called_taken_over(make_hook, caplog):
    """Its hook deleted, say: the warning of a lease run out would send an operator
    looking at LEASE_SECONDS for nothing."""
    callbacks_of(make_hook, 3)
    taken, deleted, held = claim_batch()
    Callback.objects.filter(pk=taken.pk).update(claim_token=uuid.uuid4())
    Callback.objects.filter(pk=deleted.pk).delete()
    with health_settings(), caplog.at_level(logging.INFO, logger="http_hooks"):
        record_outcomes([taken, deleted, held], [Outcome(status_code=200)] * 3, DeliveryReport())
    (over,) = [r for r in caplog.records if "taken over" in r.getMessage()]
    (gone,) = [r for r in caplog.records if "deleted" in r.getMessage()]
    assert (over.levelno, gone.levelno) == (logging.WARNING, logging.INFO)
    assert over.getMessage().startswith("1 callbacks were taken over")
    assert over.getMessage().endswith(f"[{taken.pk}]")
    assert gone.getMessage().startswith("1 callbacks were deleted (with their hook, say)")
    assert gone.getMessage().endswith(f"[{deleted.pk}]")
    assert list(Attempt.objects.values_list("callback_id", flat=True)) == [held.pk]


def test_the_cooldown_doubles_up_to_an_hour(make_hook, receiver):
    receiver.respond(status=500)
    hook = callbacks_of(make_hook, 1)
    Hook.objects.filter(pk=hook.pk).update(
        consecutive_failures=40,
        breaker_trips=20,
        paused_until=timezone.now() - datetime.timedelta(seconds=1),
    )
    with health_settings(BREAKER_FAILURES=5, AUTO_DISABLE_FAILURES=None):
        send_callbacks()
    hook.refresh_from_db()
    assert hook.paused_until <= timezone.now() + datetime.timedelta(hours=1)
    assert hook.paused_until >= timezone.now() + datetime.timedelta(minutes=59)


def test_breaker_off_tries_every_callback(make_hook, receiver):
    receiver.respond(status=500)
    hook = callbacks_of(make_hook, 8)
    with health_settings(BREAKER_FAILURES=None):
        send_callbacks()
    hook.refresh_from_db()
    assert len(receiver.requests) == 8
    assert (hook.consecutive_failures, hook.paused_until) == (8, None)


def test_only_one_of_two_senders_claims_the_probe(make_hook, receiver):
    hook = callbacks_of(make_hook, 3)
    end_pause(hook)
    hook.refresh_from_db()
    first = claim_probe(hook_id=hook.pk, paused_until=hook.paused_until, token=uuid.uuid4())
    second = claim_probe(hook_id=hook.pk, paused_until=hook.paused_until, token=uuid.uuid4())
    assert (len(first), len(second)) == (1, 0)
    hook.refresh_from_db()
    assert hook.paused_until > timezone.now()  # held while the probe is out


@pytest.mark.django_db(transaction=True)
def test_a_probe_longer_than_the_lease_keeps_its_hook_held(make_hook, receiver):
    """The lease keeper renews the probe's hold with its lease: neither its own sender
    nor another sends a second probe while the first one hangs."""
    hold = threading.Event()
    receiver.respond(hold=hold)
    hook = callbacks_of(make_hook, 3)
    end_pause(hook)
    reports = []

    def probe() -> None:
        try:
            with health_settings(LEASE_SECONDS=1, HOOK_CONCURRENCY=3):
                reports.append(send_callbacks())
        finally:
            connection.close()

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        receiver.wait_for(1, timeout=60)
        first_hold = Hook.objects.get(pk=hook.pk).paused_until
        wait_until(
            lambda: (
                Hook.objects.get(pk=hook.pk).paused_until
                >= first_hold + datetime.timedelta(seconds=2)
            ),
            timeout=60,
            message="the probe's hold was not renewed past its first lease",
        )
        with health_settings(LEASE_SECONDS=1):
            assert send_callbacks().total == 0
        assert len(receiver.requests) == 1
    finally:
        hold.set()
        thread.join(timeout=60)
    assert reports[0].sent == 3  # the probe succeeded, and the rest followed
    hook.refresh_from_db()
    assert hook.paused_until is None


@pytest.mark.django_db(transaction=True)
def test_of_four_senders_at_once_one_claims_the_probe(make_hook, receiver):
    hook = callbacks_of(make_hook, 8)
    end_pause(hook)
    paused_until = Hook.objects.get(pk=hook.pk).paused_until
    claimed: list[list[Callback]] = [[] for _ in range(4)]
    all_ready = threading.Barrier(len(claimed), timeout=60)

    def claim(mine: list[Callback]) -> None:
        try:
            all_ready.wait()
            mine += claim_probe(hook_id=hook.pk, paused_until=paused_until, token=uuid.uuid4())
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(mine,)) for mine in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(len(mine) for mine in claimed) == [0, 0, 0, 1]
    assert Callback.objects.filter(status="sending").count() == 1


def test_a_probe_with_nothing_due_leaves_the_pause_as_it_was(make_hook, receiver):
    hook = callbacks_of(make_hook, 1)
    Callback.objects.update(next_attempt_at=timezone.now() + datetime.timedelta(hours=1))
    end_pause(hook)
    hook.refresh_from_db()
    assert claim_probe(hook_id=hook.pk, paused_until=hook.paused_until, token=uuid.uuid4()) == []
    assert Hook.objects.get(pk=hook.pk).paused_until == hook.paused_until


def test_pauses_that_passed_with_nothing_due_cost_no_probe(make_hook, receiver):
    """Twenty hooks whose pause has passed and that have nothing to send: a run for
    another hook tries no probe of theirs (a transaction each, at every claim), and
    the first callback one of them gets is its probe."""
    stale = [make_hook(name=f"stale {n}", enabled=False) for n in range(20)]
    Hook.objects.filter(pk__in=[h.pk for h in stale]).update(
        paused_until=timezone.now() - datetime.timedelta(hours=1),
        breaker_trips=1,
        consecutive_failures=5,
    )
    callbacks_of(make_hook, 5, name="healthy")
    with health_settings(), CaptureQueriesContext(connection) as queries:
        assert send_callbacks().sent == 5
    holds = 'UPDATE "http_hooks_hook" SET "paused_until"'
    assert [q["sql"] for q in queries if holds in q["sql"]] == []
    # One of the stale hooks gets a due callback: it is that hook's probe.
    first, *others = Callback.objects.order_by("pk")
    Callback.objects.filter(pk__in=[c.pk for c in others]).delete()
    Callback.objects.filter(pk=first.pk).update(
        hook=stale[0], status="waiting", next_attempt_at=timezone.now()
    )
    with health_settings():
        assert send_callbacks().sent == 1
    stale[0].refresh_from_db()
    assert stale[0].paused_until is None  # the probe's success resumed it


def test_the_sweep_leaves_held_hooks_alone_but_not_a_due_probe(make_hook):
    """A paused or disabled hook's backlog starts no sweep (it would send nothing, every
    period); once a pause has passed, its due callback is the sweep's probe."""
    from http_hooks.delivery.sweep import overdue

    paused = callbacks_of(make_hook, 1, name="paused")
    disabled = make_hook(name="disabled")
    Hook.objects.filter(pk=disabled.pk).update(enabled=False, disabled_reason="gone")
    long_ago = timezone.now() - datetime.timedelta(hours=1)
    Callback.objects.update(next_attempt_at=long_ago)
    Callback.objects.create(
        hook=disabled, target_url=disabled.target_url, http_method="POST", next_attempt_at=long_ago
    )
    Callback.objects.create(
        hook=paused,
        target_url=paused.target_url,
        http_method="POST",
        status="sending",
        claimed_until=long_ago,
    )
    Hook.objects.filter(pk=paused.pk).update(
        paused_until=timezone.now() + datetime.timedelta(hours=1)
    )
    assert overdue() is False
    end_pause(paused)
    assert overdue() is True
    Callback.objects.filter(hook=paused).delete()
    Hook.objects.filter(pk=disabled.pk).update(enabled=True, disabled_reason="")
    assert overdue() is True  # enabled again: its backlog is due


# --- auto-disable -----------------------------------------------------------------


def failing_for(hook: Hook, *, seconds: float, failures: int) -> None:
    Hook.objects.filter(pk=hook.pk).update(
        failing_since=timezone.now() - datetime.timedelta(seconds=seconds),
        consecutive_failures=failures,
    )


def test_a_hook_failing_for_days_is_disabled(
    make_hook, receiver, disabled_notices, django_capture_on_commit_callbacks
):
    receiver.respond(status=500)
    hook = callbacks_of(make_hook, 2)
    failing_for(hook, seconds=5 * 24 * 3600 + 60, failures=19)
    with health_settings(BREAKER_FAILURES=None), django_capture_on_commit_callbacks(execute=True):
        send_callbacks()
    hook.refresh_from_db()
    assert (hook.enabled, hook.disabled_reason) == (False, "failing")
    assert disabled_notices == [(Hook, hook.pk, "failing")]
    assert len(receiver.requests) == 1
    assert [c.status for c in untried()] == ["waiting"]


@pytest.mark.parametrize(
    ("seconds", "failures"),
    [
        pytest.param(4 * 24 * 3600, 100, id="not-long-enough"),
        pytest.param(6 * 24 * 3600, 3, id="too-few-tries"),
    ],
)
def test_a_hook_is_not_disabled_before_both_conditions(make_hook, receiver, seconds, failures):
    receiver.respond(status=500)
    hook = callbacks_of(make_hook, 1)
    failing_for(hook, seconds=seconds, failures=failures)
    with health_settings(BREAKER_FAILURES=None):
        send_callbacks()
    hook.refresh_from_db()
    assert (hook.enabled, hook.disabled_reason) == (True, "")


def test_none_drops_a_condition_of_auto_disable(make_hook, receiver):
    receiver.respond(status=500)
    hook = callbacks_of(make_hook, 3)
    with health_settings(BREAKER_FAILURES=None, AUTO_DISABLE_AFTER=None, AUTO_DISABLE_FAILURES=3):
        send_callbacks()
    hook.refresh_from_db()
    assert hook.disabled_reason == "failing"
    assert len(receiver.requests) == 3


def test_a_success_resets_the_failure_streak(make_hook, receiver):
    receiver.respond(status=200)
    hook = callbacks_of(make_hook, 1)
    failing_for(hook, seconds=3600, failures=4)
    with health_settings():
        send_callbacks()
    hook.refresh_from_db()
    assert (hook.consecutive_failures, hook.failing_since) == (0, None)
    assert hook.last_success_at is not None


# --- enable, API, admin, checks ---------------------------------------------------


def test_enable_hook_clears_the_breaker_and_the_pause(make_hook, receiver):
    hook = make_hook()
    Hook.objects.filter(pk=hook.pk).update(
        enabled=False,
        disabled_reason="failing",
        disabled_at=timezone.now(),
        consecutive_failures=30,
        breaker_trips=3,
        paused_until=timezone.now() + datetime.timedelta(hours=1),
    )
    hook = enable_hook(Hook.objects.get(pk=hook.pk))
    hook.refresh_from_db()
    assert hook.enabled
    assert (hook.disabled_reason, hook.disabled_at, hook.paused_until) == ("", None, None)
    assert (hook.consecutive_failures, hook.breaker_trips) == (0, 0)


def test_health_fields_are_read_only_in_the_api(make_hook, staff_client):
    hook = make_hook()
    response = staff_client.patch(
        f"/api/hooks/{hook.pk}/",
        {"consecutive_failures": 9, "disabled_reason": "gone", "paused_until": None},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert (response.json()["consecutive_failures"], response.json()["disabled_reason"]) == (0, "")


def test_an_update_from_a_stale_copy_keeps_the_health_the_sender_wrote(make_hook):
    hook = make_hook()
    stale = Hook.objects.get(pk=hook.pk)
    slow_since = timezone.now()
    Hook.objects.filter(pk=hook.pk).update(
        enabled=False, disabled_reason="gone", slow_since=slow_since
    )
    update_hook(stale, name="renamed")
    hook.refresh_from_db()
    assert (hook.name, hook.enabled, hook.disabled_reason) == ("renamed", False, "gone")
    assert hook.slow_since == slow_since


def test_enabling_from_a_stale_copy_clears_the_disable_the_sender_wrote(make_hook):
    """Loaded enabled, disabled by the sender (410) since: setting ``enabled`` to true
    enables it for real, not ``enabled`` true with ``disabled_reason`` gone, held forever."""
    hook = make_hook()
    stale = Hook.objects.get(pk=hook.pk)
    Hook.objects.filter(pk=hook.pk).update(
        enabled=False, disabled_reason="gone", disabled_at=timezone.now()
    )
    update_hook(stale, enabled=True, name="renamed")
    hook.refresh_from_db()
    assert (hook.name, hook.enabled, hook.disabled_reason, hook.disabled_at) == (
        "renamed",
        True,
        "",
        None,
    )
    assert hook.pk not in health.held_hooks()


def test_setting_enabled_again_clears_a_disable(make_hook, staff_client):
    hook = make_hook()
    Hook.objects.filter(pk=hook.pk).update(
        enabled=False, disabled_reason="failing", consecutive_failures=25
    )
    response = staff_client.patch(f"/api/hooks/{hook.pk}/", {"enabled": True}, format="json")
    assert response.status_code == 200, response.content
    hook.refresh_from_db()
    assert (hook.enabled, hook.disabled_reason, hook.consecutive_failures) == (True, "", 0)


def test_admin_filters_hooks_disabled_by_http_hooks(make_hook, admin_client):
    gone = make_hook(name="gone one")
    make_hook(name="healthy one")
    Hook.objects.filter(pk=gone.pk).update(enabled=False, disabled_reason="gone")
    page = admin_client.get("/admin/http_hooks/hook/").content.decode()
    assert "disabled by…" in page
    filtered = admin_client.get("/admin/http_hooks/hook/?disabled_reason=gone").content.decode()
    assert "gone one" in filtered and "healthy one" not in filtered
    assert 'title="the receiver answered 410 Gone">gone</small>' in filtered


def test_the_admin_enable_action_clears_a_disable(make_hook, admin_client):
    hook = make_hook()
    Hook.objects.filter(pk=hook.pk).update(enabled=False, disabled_reason="gone")
    admin_client.post(
        "/admin/http_hooks/hook/", {"action": "enable_hooks", "_selected_action": [hook.pk]}
    )
    hook.refresh_from_db()
    assert (hook.enabled, hook.disabled_reason) == (True, "")


@pytest.mark.parametrize(
    "value",
    [
        {"RETRY_AFTER_MAX": 0},
        {"DISABLE_ON_GONE": "yes"},
        {"BREAKER_FAILURES": 0},
        {"BREAKER_COOLDOWN": -1},
        {"BREAKER_COOLDOWN": None},
        {"AUTO_DISABLE_AFTER": "5 days"},
        {"AUTO_DISABLE_FAILURES": 2.5},
    ],
    ids=lambda v: str(v),
)
def test_bad_health_settings_fail_manage_py_check(value):
    name = next(iter(value))
    with (
        override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, **value}),
        pytest.raises(SystemCheckError, match=f"HTTP_HOOKS\\['{name}'\\] is invalid"),
    ):
        call_command("check")


def test_attempts_are_logged_for_every_try_the_breaker_let_through(make_hook, receiver):
    receiver.respond(status=500)
    callbacks_of(make_hook, 6)
    with health_settings(BREAKER_FAILURES=2):
        send_callbacks()
    assert Attempt.objects.count() == len(receiver.requests) == 2


@pytest.mark.django_db(transaction=True)
def test_a_probe_waiting_for_a_free_transfer_is_kept_and_decides(make_hook, receiver, monkeypatch):
    """The pause of a hook ends while every transfer is busy: the sender claims its
    probe and holds the hook, then reads the held hooks again. Its own probe is not
    given back (which left the hook paused for LEASE_SECONDS with nothing tried):
    once a transfer is free, the probe goes and its success resumes the hook."""
    hold = threading.Event()
    receiver.respond("/slow", hold=hold)
    make_hook(target_url=receiver.url("/slow"))
    paused = make_hook(target_url=receiver.url("/paused"))
    Order.objects.create(name="a")
    Order.objects.create(name="b")
    Hook.objects.filter(pk=paused.pk).update(
        paused_until=timezone.now() + datetime.timedelta(hours=1),
        breaker_trips=1,
        consecutive_failures=5,
    )
    reads = []
    read_held = sender.held_hooks
    monkeypatch.setattr(sender, "held_hooks", lambda: reads.append(1) or read_held())

    def send() -> None:
        try:
            send_callbacks()
        finally:
            connection.close()

    with health_settings(CONCURRENCY=2, HOOK_CONCURRENCY=2, TIMEOUT=(5.0, 60.0)):
        thread = threading.Thread(target=send)
        thread.start()
        try:
            receiver.wait_for(2, timeout=60)  # both transfers busy with /slow
            end_pause(paused)
            wait_until(  # the probe is claimed: the hook is held by this sender
                lambda: (
                    Hook.objects.get(pk=paused.pk).paused_until
                    > timezone.now() + datetime.timedelta(minutes=1)
                )
            )
            seen = len(reads)
            wait_until(lambda: len(reads) > seen)  # ... and the held hooks read again
        finally:
            hold.set()
            thread.join(timeout=60)
    assert not thread.is_alive()
    paused.refresh_from_db()
    assert paused.paused_until is None
    assert [r.path for r in receiver.requests].count("/paused") == 2
    assert set(Callback.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.django_db(transaction=True)
def test_a_probe_given_back_on_stop_ends_the_hold(make_hook, receiver):
    """A sender stopped before its probe could start gives the probe back and ends the
    hook's hold: the next sender probes at once, not LEASE_SECONDS later."""
    hold = threading.Event()
    receiver.respond("/slow", hold=hold)
    make_hook(target_url=receiver.url("/slow"))
    paused = make_hook(target_url=receiver.url("/paused"))
    Order.objects.create(name="a")
    Hook.objects.filter(pk=paused.pk).update(
        paused_until=timezone.now() + datetime.timedelta(hours=1),
        breaker_trips=1,
        consecutive_failures=5,
    )
    stop = threading.Event()

    def send() -> None:
        try:
            send_callbacks(stop=stop.is_set)
        finally:
            connection.close()

    with health_settings(CONCURRENCY=1, HOOK_CONCURRENCY=1, TIMEOUT=(5.0, 60.0)):
        thread = threading.Thread(target=send)
        thread.start()
        try:
            receiver.wait_for(1, timeout=60)  # the one transfer is busy with /slow
            end_pause(paused)
            wait_until(
                lambda: (
                    Hook.objects.get(pk=paused.pk).paused_until
                    > timezone.now() + datetime.timedelta(minutes=1)
                )
            )
            stop.set()
            wait_until(lambda: Hook.objects.get(pk=paused.pk).paused_until <= timezone.now())
        finally:
            stop.set()
            hold.set()
            thread.join(timeout=60)
    assert not thread.is_alive()
    assert list(Callback.objects.filter(hook=paused).values_list("status", "attempts")) == [
        ("waiting", 0)
    ]
    with health_settings():
        assert send_callbacks().sent == 1  # the next run probes at once
    paused.refresh_from_db()
    assert paused.paused_until is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3600", 3600),
        ("0000000000003600", 3600),
        ("0", 0),
        ("9" * 40, 86400),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("60, 60", 60),
        ("60,  7", 60),
        ("soon, 60", None),
    ],
)
def test_retry_after_in_seconds_is_read_whole(value, seconds):
    now = timezone.now()
    until = health.retry_after(
        Outcome(status_code=503, response_headers={"Retry-After": value}), now
    )
    assert (None if until is None else (until - now).total_seconds()) == seconds


def test_a_lapsed_probe_given_back_never_ends_another_senders_hold(make_hook):
    """Sender A stalls past its lease holding a paused hook's probe; sender B probes the
    hook. When A wakes and gives its probe back, B's hold stays: A's give-back once reset
    the pause to now, and any sender could send a second probe meanwhile."""
    hook = make_hook()
    passed = timezone.now() - datetime.timedelta(seconds=1)
    Hook.objects.filter(pk=hook.pk).update(paused_until=passed, breaker_trips=1)
    Order.objects.create(name="one")
    Order.objects.create(name="two")
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    (probe_a,) = claim_probe(hook_id=hook.pk, paused_until=passed, token=a)
    expired = timezone.now() - datetime.timedelta(seconds=1)  # A's lease and hold run out
    Callback.objects.filter(pk=probe_a.pk).update(claimed_until=expired)
    Hook.objects.filter(pk=hook.pk).update(paused_until=expired)
    (probe_b,) = claim_probe(hook_id=hook.pk, paused_until=expired, token=b)
    held_by_b = Hook.objects.get(pk=hook.pk).paused_until
    assert held_by_b > timezone.now()
    release_claims(a, [probe_a.pk], probed_hooks={hook.pk})
    assert Hook.objects.get(pk=hook.pk).paused_until == held_by_b
    assert Callback.objects.get(pk=probe_b.pk).claim_token == b
    assert hook.pk in health.held_hooks()  # no other sender probes it meanwhile
    # A's own probe, still held, ends its own hold when given back.
    passed = timezone.now() - datetime.timedelta(seconds=1)
    Callback.objects.filter(pk=probe_b.pk).update(status="waiting", claim_token=None)
    Hook.objects.filter(pk=hook.pk).update(paused_until=passed)
    (probe_c,) = claim_probe(hook_id=hook.pk, paused_until=passed, token=c)
    release_claims(c, [probe_c.pk], probed_hooks={hook.pk})
    assert Hook.objects.get(pk=hook.pk).paused_until <= timezone.now()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_senders_recording_the_same_two_hooks_never_deadlock(make_hook, monkeypatch):
    """Two windows over the same two hooks, each turning one slow (a timeout) and the
    other quick again: the speed writes once went before the hooks were locked in id
    order, and the two transactions locked the rows in opposite orders (PostgreSQL's
    "deadlock detected"). The two windows are made to meet before their locks."""
    one, two = make_hook(), make_hook()
    Order.objects.create(name="a")
    Order.objects.create(name="b")
    # An earlier sender met both slow: every copy claimed since says so. Both succeeded
    # just now, so _record_successes' conditional UPDATE matches (and locks) no row: the
    # only out-of-order lock is the new slow_since write.
    now = timezone.now()
    Hook.objects.filter(pk__in=[one.pk, two.pk]).update(slow_since=now, last_success_at=now)
    cbs = with_hooks(list(Callback.objects.order_by("pk")))
    first = {h: [c for c in cbs if c.hook_id == h] for h in (one.pk, two.pk)}
    quick = Outcome(status_code=200, duration_ms=3)
    timeout = Outcome(error="Operation timed out", duration_ms=15000)
    windows = {
        # sender A: hook one times out again (slow, troubled), hook two is quick again
        "A": ([first[one.pk][0], first[two.pk][0]], [timeout, quick]),
        # sender B: the other way round
        "B": ([first[two.pk][1], first[one.pk][1]], [timeout, quick]),
    }
    meet = threading.Barrier(2, timeout=5)
    real = health._record_successes

    def meeting(*args, **kwargs):
        with contextlib.suppress(threading.BrokenBarrierError):
            meet.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(health, "_record_successes", meeting)
    errors = {}

    def sender(name):
        batch, outcomes = windows[name]
        try:
            with transaction.atomic():
                health.record_health(batch, outcomes, timezone.now())
        except OperationalError as exc:
            errors[name] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sender, args=(n,)) for n in "AB"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == {}


def test_enabling_from_a_stale_copy_keeps_what_the_sender_wrote_since(make_hook):
    """``enable_hook`` writes what it clears, not the rest of the copy it is given: a
    sender's quick try since the copy was loaded keeps ``slow_since`` cleared, and its
    success keeps ``last_success_at``."""
    hook = make_hook()
    Hook.objects.filter(pk=hook.pk).update(
        slow_since=timezone.now(), enabled=False, disabled_reason="gone"
    )
    stale = Hook.objects.get(pk=hook.pk)  # the operator's page, loaded while it hung
    succeeded = timezone.now()
    Hook.objects.filter(pk=hook.pk).update(slow_since=None, last_success_at=succeeded)
    enable_hook(stale)
    hook.refresh_from_db()
    assert (hook.enabled, hook.disabled_reason) == (True, "")
    assert (hook.slow_since, hook.last_success_at) == (None, succeeded)


@pytest.mark.parametrize("held", ["disabled", "paused"])
def test_what_a_dead_sender_held_of_a_held_hook_waits_again(make_hook, held):
    """Only a claim takes over an expired lease, and no claim takes a held hook's
    callbacks: they stayed ``sending`` (stuck, to the monitor; not to be deleted or
    resent) for as long as the hook was disabled or paused."""
    hook = callbacks_of(make_hook, 3)
    long_ago = timezone.now() - datetime.timedelta(hours=1)
    Callback.objects.update(status="sending", claim_token=uuid.uuid4(), claimed_until=long_ago)
    if held == "disabled":
        Hook.objects.filter(pk=hook.pk).update(enabled=False, disabled_reason="gone")
    else:
        Hook.objects.filter(pk=hook.pk).update(
            paused_until=timezone.now() + datetime.timedelta(hours=1)
        )
    assert send_callbacks().total == 0
    assert (
        list(Callback.objects.values_list("status", "claimed_until", "attempts"))
        == [("waiting", None, 0)] * 3
    )


def test_the_sweep_settles_what_a_dead_sender_left_of_a_held_hook(make_hook):
    """With workers (``DISPATCH`` celery or tasks) their tasks' runs send listed
    callbacks and leave this to the sweep, which no held hook's backlog starts."""
    from http_hooks.delivery.sweep import sweep

    from .test_delivery_test_event import left_behind_test_event

    hook = callbacks_of(make_hook, 1)
    left_behind_test_event(hook)
    long_ago = timezone.now() - datetime.timedelta(hours=1)
    Callback.objects.update(status="sending", claim_token=uuid.uuid4(), claimed_until=long_ago)
    Hook.objects.filter(pk=hook.pk).update(
        paused_until=timezone.now() + datetime.timedelta(hours=1)
    )
    assert sweep() is None  # nothing to send: the hook is paused
    assert sorted(Callback.objects.values_list("event_type", "status")) == [
        ("created", "waiting"),
        (TEST_EVENT_TYPE, "error"),
    ]


@pytest.fixture
def statement_parameters():
    """The most parameters a statement takes here: on SQLite this test's connection is
    cut to 32,766, SQLite's default (this build allows 250,000), and put back after."""
    if connection.vendor != "sqlite":
        yield 65_535  # PostgreSQL's protocol, with server-side binding
        return
    import sqlite3

    connection.ensure_connection()
    limit = sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER
    before = connection.connection.setlimit(limit, 32_766)
    yield 32_766
    if connection.connection is not None:
        connection.connection.setlimit(limit, before)


def copies_of(hook: Hook, count: int, **changes) -> None:
    """``count`` copies of ``hook``'s row with ``changes``, in one statement: thousands
    of hooks in milliseconds, where ``bulk_create`` took seconds."""
    fields = [f for f in Hook._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    values = ["%s" if f.name in changes else f"{quote('hook')}.{quote(f.column)}" for f in fields]
    params = [f.get_db_prep_save(changes[f.name], connection) for f in fields if f.name in changes]
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH RECURSIVE copies(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM copies "
            f"WHERE n < %s) INSERT INTO {quote(Hook._meta.db_table)} "
            f"({', '.join(quote(f.column) for f in fields)}) SELECT {', '.join(values)} "
            f"FROM copies, {quote(Hook._meta.db_table)} AS {quote('hook')} WHERE hook.id = %s",
            [count, *params, hook.pk],
        )


@pytest.mark.parametrize("pause", ["running", "passed"])
def test_more_held_hooks_than_a_statement_has_parameters_hold_back_no_claim(
    make_hook, receiver, statement_parameters, pause
):
    """Paused hooks beyond the parameters of one statement, with their pause running
    (the claims leave them out) or passed with nothing due (``held_hooks`` looks for
    their due callbacks): each was a parameter of the query, which the database
    refused ("too many SQL variables"), and no callback of any hook went out."""
    healthy = callbacks_of(make_hook, 1)
    offset = datetime.timedelta(hours=1 if pause == "running" else -1)
    paused_until = timezone.now() + offset
    copies_of(healthy, statement_parameters + 1, paused_until=paused_until)
    assert send_callbacks().sent == 1
    assert len(receiver.requests) == 1
    assert Callback.objects.get().hook_id == healthy.pk


def test_more_rate_limited_hooks_than_a_statement_has_parameters_hold_back_no_claim(
    make_hook, receiver, statement_parameters
):
    """Rate-limited hooks beyond the parameters of one statement, none with a callback
    due: the first claim looks for their due callbacks with a parameter each."""
    healthy = callbacks_of(make_hook, 1)
    copies_of(healthy, statement_parameters + 1, rate_limit=10)
    assert send_callbacks().sent == 1
    assert len(receiver.requests) == 1


def test_a_window_of_successes_over_many_hooks_resets_them_all(make_hook):
    """The successes of a window (up to 511 outcomes and a poll's, so as many hooks
    with a large ``CONCURRENCY``) took one condition a hook, ORed: past 925 hooks
    SQLite refused the statement ("Expression tree is too large"), the window's
    outcomes were dropped and its callbacks sent again after the lease, for ever."""
    first = make_hook()
    fields = [f.attname for f in Hook._meta.concrete_fields if not f.primary_key]
    Hook.objects.bulk_create(
        Hook(**{**{name: getattr(first, name) for name in fields}, "name": f"copy {n}"})
        for n in range(1199)
    )
    Hook.objects.update(consecutive_failures=3)
    hooks = list(Hook.objects.all())
    batch = [Callback(pk=n + 1, hook=hook, owner=hook.owner) for n, hook in enumerate(hooks)]
    outcomes = [Outcome(status_code=200, duration_ms=3)] * len(batch)
    with transaction.atomic():
        health.record_health(batch, outcomes, timezone.now())
    assert set(Hook.objects.values_list("consecutive_failures", flat=True)) == {0}
