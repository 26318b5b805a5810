"""Ordered delivery per key (``Hook.ordering_key``): the callbacks of one hook with the
same key reach the receiver one at a time, in the order they were created, through
retries, final errors (``ORDERED_ON_FAILURE``), resends, a dead sender's lease, the
queued workers' path and four sender processes at once; other keys go meanwhile."""

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from http_hooks import services
from http_hooks.api import create_hook, resend_callbacks, send_callbacks, send_event
from http_hooks.delivery import claim_batch
from http_hooks.exceptions import InvalidHookError
from http_hooks.models import Callback
from http_hooks.services import run_queued_send
from shop.models import Order

from .receiver import Behaviour
from .waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(ROOT / "demo" / "manage.py"), "send_callbacks"]
TEMPLATE = '{"key": "{{instance.name}}", "seq": {{instance.total}}}'

pytestmark = pytest.mark.django_db(transaction=True)


def hooks_settings(**overrides):
    return override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, **overrides})


def ordered_hook(make_hook, **kwargs):
    return make_hook(
        ordering_key="{{instance.name}}",
        payload_template=TEMPLATE,
        content_type="application/json",
        **kwargs,
    )


def store(keys: int, per_key: int) -> None:
    """``per_key`` updates of ``keys`` orders, interleaved: the keys' callbacks alternate."""
    with transaction.atomic():
        orders = [Order.objects.create(name=f"k{key}", total=0) for key in range(keys)]
        for seq in range(1, per_key):
            for order in orders:
                order.total = seq
                order.save()


class KeyWatch:
    """A receiver's answers, chosen per request by ``answer(key, seq)`` (a status and a
    delay); counts how many requests of each key were in the receiver at once."""

    def __init__(self, answer=lambda key, seq: (200, 0.0)) -> None:
        self.answer = answer
        self.lock = threading.Lock()
        self.busy: dict[str, int] = defaultdict(int)
        self.most_per_key = 0
        self.most = 0
        self.log: list[tuple[str, int, int]] = []

    def __call__(self, request) -> Behaviour:
        body = request.json()
        key, seq = body["key"], body["seq"]
        status, delay = self.answer(key, seq)
        with self.lock:
            self.busy[key] += 1
            self.most_per_key = max(self.most_per_key, self.busy[key])
            self.most = max(self.most, sum(self.busy.values()))
        time.sleep(delay)
        with self.lock:
            self.busy[key] -= 1
            self.log.append((key, seq, status))
        # Answered after the request left ``busy``: the next of its key comes after.
        return Behaviour(status=status)

    def sent_in_order(self, keys: int, per_key: int) -> None:
        """Each key's successes are 0, 1, ... in order, and each try was of its key's
        next callback (a retry repeats it, nothing skips ahead)."""
        tried = defaultdict(list)
        for key, seq, status in self.log:
            tried[key].append((seq, status))
        assert len(tried) == keys
        for key, tries in tried.items():
            expected = 0
            for seq, status in tries:
                assert seq == expected, f"{key}: {seq} tried while {expected} was due: {tries}"
                expected += status == 200
            assert expected == per_key, f"{key}: {expected} of {per_key} delivered"


def statuses_by_seq(key: str) -> list[str]:
    rows = Callback.objects.filter(ordering_key=key).order_by("pk")
    return list(rows.values_list("status", flat=True))


def test_the_rendered_key_is_stored_and_unordered_callbacks_have_none(make_hook):
    make_hook(ordering_key="{{instance.notes}}")
    make_hook()
    Order.objects.create(name="x", notes="a" * 300)
    Order.objects.create(name="x", notes="b")
    keys = list(Callback.objects.order_by("pk").values_list("ordering_key", flat=True))
    assert keys[0].startswith("sha256:") and len(keys[0]) == 71  # too long: its hash
    assert keys[1] == "" and keys[2:] == ["b", ""]


def test_a_claim_takes_exactly_the_heads_and_every_unordered_callback(make_hook):
    ordered_hook(make_hook)
    unordered = make_hook()
    store(keys=3, per_key=4)  # and 12 unordered callbacks of the other hook
    rows = Callback.objects.order_by("pk")
    heads = {key: rows.filter(ordering_key=key).first().pk for key in ("k0", "k1", "k2")}
    expected = {*heads.values(), *rows.filter(hook=unordered).values_list("pk", flat=True)}
    assert {callback.pk for callback in claim_batch()} == expected
    assert claim_batch() == []  # the next of each key waits for its head
    # A head sent: its key's next one, and only that one, is claimable.
    second = rows.filter(ordering_key="k1").values_list("pk", flat=True)[1]
    Callback.objects.filter(pk=heads["k1"]).update(status="sent")
    assert [callback.pk for callback in claim_batch()] == [second]


def test_a_failing_head_holds_back_its_key_only_and_retries_keep_the_order(receiver, make_hook):
    """The head of k0 fails twice and then succeeds; its later callbacks wait for it,
    and k1 is not held back."""
    failures = {"k0": 2}

    def answer(key, seq):
        if seq == 0 and failures.get(key):
            failures[key] -= 1
            return 500, 0.0
        return 200, 0.0

    watch = KeyWatch(answer)
    receiver.respond(pick=watch)
    ordered_hook(make_hook)
    store(keys=2, per_key=5)
    with hooks_settings(RETRY_SCHEDULE=[3600], RETRY_JITTER=0):
        report = send_callbacks()
    assert (report.sent, report.retried) == (5, 1)
    assert statuses_by_seq("k0") == ["waiting"] * 5
    assert statuses_by_seq("k1") == ["sent"] * 5
    assert Callback.objects.filter(ordering_key="k0", attempts=0).count() == 4
    # The retry falls due; it fails once more (due again at once) and then succeeds.
    Callback.objects.filter(attempts=1).update(next_attempt_at=timezone.now())
    with hooks_settings(RETRY_SCHEDULE=[0], RETRY_JITTER=0):
        report = send_callbacks()
    assert (report.sent, report.retried) == (5, 1)
    watch.sent_in_order(keys=2, per_key=5)
    assert watch.most_per_key == 1


def test_different_keys_go_side_by_side_one_at_a_time_each(receiver, make_hook):
    watch = KeyWatch(lambda key, seq: (200, 0.02))
    receiver.respond(pick=watch)
    ordered_hook(make_hook)
    store(keys=6, per_key=8)
    report = send_callbacks()
    assert report.sent == 48
    watch.sent_in_order(keys=6, per_key=8)
    assert watch.most_per_key == 1
    assert watch.most >= 2


@pytest.mark.parametrize(
    ("policy", "after_error"), [("skip", ["sent"] * 3), ("halt", ["waiting"] * 3)]
)
def test_a_head_that_ends_in_error_is_skipped_or_halts_its_key(
    receiver, make_hook, policy, after_error
):
    watch = KeyWatch(lambda key, seq: (500 if (key, seq) == ("k0", 0) else 200, 0.0))
    receiver.respond(pick=watch)
    ordered_hook(make_hook)
    store(keys=2, per_key=4)
    with hooks_settings(MAX_ATTEMPTS=1, ORDERED_ON_FAILURE=policy):
        send_callbacks()
        assert statuses_by_seq("k0") == ["error", *after_error]
        assert statuses_by_seq("k1") == ["sent"] * 4
        if policy == "halt":
            assert send_callbacks().total == 0  # it stays halted
    tried = [seq for key, seq, _ in watch.log if key == "k0"]
    assert tried == ([0, 1, 2, 3] if policy == "skip" else [0])


def test_resending_a_halted_head_releases_its_key(receiver, make_hook):
    failing = {"on": True}
    watch = KeyWatch(lambda key, seq: (500 if seq == 0 and failing["on"] else 200, 0.0))
    receiver.respond(pick=watch)
    ordered_hook(make_hook)
    store(keys=1, per_key=4)
    head = Callback.objects.order_by("pk").first()
    with hooks_settings(MAX_ATTEMPTS=1, ORDERED_ON_FAILURE="halt"):
        send_callbacks()
        assert statuses_by_seq("k0") == ["error", "waiting", "waiting", "waiting"]
        failing["on"] = False
        assert resend_callbacks(ids=[head.pk]) == 1
        report = send_callbacks()
    assert report.sent == 4
    assert [seq for _, seq, _ in watch.log] == [0, 0, 1, 2, 3]


def test_a_dead_senders_head_is_sent_again_after_its_lease_before_the_next(receiver, make_hook):
    watch = KeyWatch()
    receiver.respond(pick=watch)
    ordered_hook(make_hook)
    store(keys=1, per_key=3)
    # A sender claims the head (only the head: one per key) and dies.
    (head,) = claim_batch()
    assert head.pk == Callback.objects.order_by("pk").first().pk
    assert send_callbacks().total == 0  # its lease still runs: nothing of the key goes
    Callback.objects.filter(pk=head.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    report = send_callbacks()
    assert report.sent == 3
    assert [seq for _, seq, _ in watch.log] == [0, 1, 2]


def test_a_queued_task_leaves_non_heads_and_follows_the_keys_it_finishes(receiver, make_hook):
    """What a Celery or tasks worker runs (``run_queued_send``): the listed ids that are
    not heads stay waiting, and a task that sends a head goes on with its key's next
    ones, then with what else is due (``DRAIN_SECONDS``), each key in order."""
    watch = KeyWatch()
    receiver.respond(pick=watch)
    ordered_hook(make_hook)
    store(keys=2, per_key=4)
    ids = list(Callback.objects.order_by("pk").values_list("pk", flat=True))
    later = ids[2:]  # the second callbacks of both keys and after
    # A task's own ids first: none of these heads its key.
    assert services.send_callbacks(ids=later, due_only=True).sent == 0
    assert statuses_by_seq("k0") == statuses_by_seq("k1") == ["waiting"] * 4
    assert run_queued_send(ids=ids[:1]) == {"sent": 8, "retried": 0, "failed": 0}
    assert statuses_by_seq("k0") == statuses_by_seq("k1") == ["sent"] * 4
    watch.sent_in_order(keys=2, per_key=4)


@pytest.mark.multiprocess
@pytest.mark.tasks
def test_tasks_workers_deliver_each_key_in_order(receiver, make_hook, same_db_env, tmp_path):
    """Two ``db_worker`` processes take tasks of 7 mixed ids each: every key arrives in order."""
    watch = KeyWatch(lambda key, seq: (200, random.uniform(0, 0.01)))
    receiver.respond(pick=watch)
    ordered_hook(make_hook)
    with hooks_settings(DISPATCH="tasks", BATCH_SIZE=7):
        store(keys=4, per_key=10)
    workers = []
    for _ in range(2):
        workers.append(
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "django", "db_worker", "--no-reload"),
                    *("--interval", "0.1", "--no-startup-delay", "--queue-name", "default"),
                ],
                env=same_db_env,
                stdout=subprocess.DEVNULL,
                stderr=(tmp_path / "worker.log").open("w"),
            )
        )
    try:
        wait_until(
            lambda: not Callback.objects.exclude(status="sent").exists(),
            timeout=60,
            message=lambda: str(list(Callback.objects.values_list("status", "ordering_key"))),
        )
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=30)
    watch.sent_in_order(keys=4, per_key=10)
    assert watch.most_per_key == 1


@pytest.mark.multiprocess
@pytest.mark.postgres
def test_four_sender_processes_deliver_50_keys_of_40_in_order(receiver, make_hook, same_db_env):
    """4 ``send_callbacks --loop`` processes, 50 keys x 40 updates, a receiver answering
    after 0 to 20 ms and with a 500 to one request in ten: each key arrives in order,
    one at a time, none lost."""
    rng = random.Random(12)
    watch = KeyWatch(lambda key, seq: (500 if rng.random() < 0.1 else 200, rng.uniform(0, 0.02)))
    receiver.respond(pick=watch)
    ordered_hook(make_hook)
    store(keys=50, per_key=40)
    overrides = {"RETRY_SCHEDULE": [0.05], "RETRY_JITTER": 0, "MAX_ATTEMPTS": 50}
    senders = [
        subprocess.Popen(
            [*MANAGE, "--loop"],
            env={**same_db_env, "HTTP_HOOKS_OVERRIDES": json.dumps(overrides)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        wait_until(
            lambda: not Callback.objects.exclude(status="sent").exists(),
            timeout=55,
            message=lambda: f"{Callback.objects.exclude(status='sent').count()} not sent",
            alive=lambda: all(sender.poll() is None for sender in senders),
        )
    finally:
        for sender in senders:
            sender.send_signal(signal.SIGTERM)
        for sender in senders:
            _, stderr = sender.communicate(timeout=60)
            assert sender.returncode == 0, stderr
    watch.sent_in_order(keys=50, per_key=40)
    assert watch.most_per_key == 1
    assert any(status == 500 for _, _, status in watch.log)


# --- writing the key: the API, the Python API, the admin ---------------------------


def test_the_api_writes_the_key_filters_by_it_and_shows_it_on_callbacks(staff_client, receiver):
    data = {
        "model": "shop.order",
        "signals": ["django.db.models.signals.post_save"],
        "target_url": receiver.url(),
        "ordering_key": " {{instance.pk}} ",
    }
    response = staff_client.post("/api/hooks/", data, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["ordering_key"] == "{{instance.pk}}"
    order = Order.objects.create(name="x")
    callbacks = staff_client.get("/api/callbacks/", {"ordering_key": str(order.pk)}).json()
    assert [c["ordering_key"] for c in callbacks["results"]] == [str(order.pk)]
    assert staff_client.get("/api/callbacks/", {"ordering_key": "nope"}).json()["results"] == []
    hooks = staff_client.get("/api/hooks/", {"ordered": "true"}).json()["results"]
    assert [h["ordering_key"] for h in hooks] == ["{{instance.pk}}"]
    assert staff_client.get("/api/hooks/", {"ordered": "false"}).json()["results"] == []
    exact = staff_client.get("/api/hooks/", {"ordering_key": "{{instance.pk}}"}).json()
    assert len(exact["results"]) == 1


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("{{instance.nope}}", "has no field"),
        ("{{instance.name.upper}}", "plain value"),
        ("{{instance.pk.x}}", "plain value"),
        ("{{ 1 + 2 }}", "invalid placeholder"),
        ("{{user}}", "no event of this hook has 'user'"),
        ("x" * 256, "no more than 255 characters"),
        (7, "Not a string"),
    ],
)
def test_a_bad_key_is_a_400_on_its_field_and_changes_nothing(staff_client, make_hook, key, words):
    hook = make_hook(ordering_key="{{instance.pk}}")
    response = staff_client.patch(f"/api/hooks/{hook.pk}/", {"ordering_key": key}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"code", "detail", "errors"}
    assert [error["field"] for error in body["errors"]] == ["ordering_key"]
    assert words in body["errors"][0]["message"]
    hook.refresh_from_db()
    assert hook.ordering_key == "{{instance.pk}}"


def test_the_python_api_refuses_a_bad_key_with_invalid_hook_error(make_hook):
    from http_hooks.api import update_hook
    from http_hooks.exceptions import InvalidHookError

    hook = make_hook()
    with pytest.raises(InvalidHookError) as raised:
        update_hook(hook, ordering_key="{{instance.customer.nope}}")
    assert raised.value.field == "ordering_key"
    assert "shop.Customer has no field" in raised.value.message
    hook.refresh_from_db()
    assert hook.ordering_key == ""


def test_explicit_events_are_ordered_by_their_key(receiver, make_hook):
    """``{{ event.key }}`` orders explicit events: a key's next waits for its head."""
    receiver.respond(status=500)
    hook = create_hook(
        event_types=["order.*"], ordering_key="{{ event.key }}", target_url=receiver.url()
    )
    first, second = (send_event("order.paid", {"n": n}, key="order-1") for n in (1, 2))
    other = send_event("order.paid", {"n": 3}, key="order-2")
    assert {c.ordering_key for c in (*first, *second)} == {"order-1"}
    services.send_callbacks()
    # The heads were tried (and failed, to be retried later); order-1's next waits.
    tried = Callback.objects.filter(hook=hook, attempts=1).values_list("pk", flat=True)
    assert set(tried) == {first[0].pk, other[0].pk}
    with pytest.raises(InvalidHookError) as error:
        create_hook(
            event_types=["order.*"], ordering_key="{{ event.nope }}", target_url=receiver.url()
        )
    assert error.value.field == "ordering_key"
