"""The ``tasks`` dispatch mode: Django's tasks framework (``django.tasks`` on Django 6, the
``django-tasks`` backport on 5.2) with the database backend of ``django-tasks-db`` and
real ``db_worker`` processes sharing this test's database; no ``send_callbacks`` is
ever run here."""

import datetime
import json
import logging
import math
import subprocess
import sys
import threading
from collections import Counter
from contextlib import nullcontext

import pytest
from django.conf import settings
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from http_hooks.models import Callback
from http_hooks.services import resend_callbacks
from shop.models import Order

from .waiting import wait_until

pytestmark = [pytest.mark.tasks, pytest.mark.django_db(transaction=True)]


def tasks_mode(**overrides):
    return override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, "DISPATCH": "tasks", **overrides})


def task_results():
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.all()


def queued_ids() -> list[list[int]]:
    """The ids each queued ``send_listed_callbacks`` task carries, in the order queued."""
    listed = task_results().filter(task_path__endswith=".send_listed_callbacks")
    return [row.args_kwargs["args"][0] for row in listed.order_by("enqueued_at")]


@pytest.fixture
def start_worker(same_db_env, tmp_path):
    """Start ``manage.py db_worker`` processes on this test's database."""
    started = []

    def start(**overrides):
        """A worker process, with these ``HTTP_HOOKS`` overrides."""
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("w") as output:
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "django", "db_worker", "--no-reload"),
                    *("--interval", "0.1", "--no-startup-delay", "--queue-name", "default"),
                ],
                env={**same_db_env, "HTTP_HOOKS_OVERRIDES": json.dumps(overrides)},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        started.append((process, log))
        return process

    yield start
    for process, log in started:
        process.terminate()
        process.wait(timeout=30)
        print(log.read_text())  # shown by pytest when the test failed


@pytest.fixture
def worker(start_worker):
    return start_worker()


def wait_until_done(count: int, worker) -> None:
    """Wait until ``count`` tasks have finished, all of them successfully."""
    wait_until(
        lambda: task_results().filter(status__in=["SUCCESSFUL", "FAILED"]).count() >= count,
        message=lambda: str(list(task_results().values("status", "task_path"))),
        alive=lambda: worker.poll() is None,
    )
    failed = task_results().filter(status="FAILED")
    assert not failed.exists(), [row.traceback for row in failed]


@pytest.mark.multiprocess
def test_a_saved_model_becomes_a_delivered_request(make_hook, receiver, worker):
    make_hook()
    with tasks_mode():
        order = Order.objects.create(name="Tea")
    (request,) = receiver.wait_for(1, timeout=60)
    assert request.json()["object_id"] == order.pk
    assert request.headers["webhook-id"] == str(Callback.objects.get().event_id)
    wait_until_done(1, worker)
    assert Callback.objects.get().status == "sent"
    assert task_results().get().return_value == {"sent": 1, "retried": 0, "failed": 0}


@pytest.mark.multiprocess
def test_two_workers_deliver_each_callback_exactly_once(make_hook, receiver, start_worker):
    make_hook()
    make_hook()
    with tasks_mode(BATCH_SIZE=7):
        with transaction.atomic():
            for number in range(20):
                Order.objects.create(name=f"order {number}")
        for number in range(5):  # autocommit: a task each
            Order.objects.create(name=f"single {number}")
    expected = math.ceil(40 / 7) + 5
    assert len(queued_ids()) == expected
    workers = [start_worker(), start_worker()]
    receiver.wait_for(50, timeout=60)
    wait_until_done(expected, workers[0])
    assert all(worker.poll() is None for worker in workers)
    event_ids = Counter(request.headers["webhook-id"] for request in receiver.requests)
    assert sorted(event_ids.values()) == [1] * 50
    assert set(event_ids) == {
        str(event) for event in Callback.objects.values_list("event_id", flat=True)
    }
    assert set(Callback.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.multiprocess
def test_a_task_run_again_sends_nothing_sent_or_not_yet_due(make_hook, receiver, worker):
    from http_hooks.tasks_framework import queue_listed

    make_hook()
    with tasks_mode():
        Order.objects.create(name="Tea")
    receiver.wait_for(1, timeout=60)
    wait_until_done(1, worker)
    Order.objects.create(name="Cake")  # command mode: nothing queued
    sent, later = Callback.objects.order_by("pk")
    Callback.objects.filter(pk=later.pk).update(
        attempts=1, next_attempt_at=timezone.now() + datetime.timedelta(hours=1)
    )
    # The product's own enqueue: the task's own queue is whatever TASKS_QUEUE was when
    # the module was imported (perhaps under another test's settings).
    queue_listed([sent.pk, later.pk])
    wait_until_done(2, worker)
    again = task_results().order_by("enqueued_at").last()
    assert again.return_value == {"sent": 0, "retried": 0, "failed": 0}
    assert len(receiver.requests) == 1
    assert Callback.objects.get(pk=later.pk).status == "waiting"


@pytest.mark.multiprocess
def test_resent_callbacks_are_queued_to_the_worker(make_hook, receiver, worker):
    make_hook()
    Order.objects.create(name="Tea")
    Order.objects.create(name="Cake")
    Callback.objects.update(status="error", status_details="HTTP 500")
    with tasks_mode():
        assert resend_callbacks(queryset=Callback.objects.all()) == 2
    receiver.wait_for(2, timeout=60)
    wait_until_done(1, worker)
    assert set(Callback.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.multiprocess
def test_the_send_endpoint_hands_the_work_to_the_workers(make_hook, receiver, worker, staff_client):
    hook = make_hook()
    Order.objects.create(name="Tea")
    Order.objects.create(name="Cake")
    later, other = Callback.objects.order_by("pk")
    # Neither due: a task goes on with whatever is due after its own callbacks.
    Callback.objects.update(next_attempt_at=timezone.now() + datetime.timedelta(hours=1))
    queued = {
        "mode": "queued",
        **dict.fromkeys(("sent", "retried", "failed", "total"), 0),
        **dict.fromkeys(("duration", "rate"), 0.0),
        "more": False,
    }
    with tasks_mode():
        # Listed: queued even though its retry time has not come.
        response = staff_client.post("/api/callbacks/send/", {"ids": [later.pk]}, format="json")
        assert response.json() == queued
        (request,) = receiver.wait_for(1, timeout=60)
        assert request.headers["webhook-id"] == str(later.event_id)
        wait_until_done(1, worker)
        Callback.objects.filter(pk=other.pk).update(next_attempt_at=timezone.now())
        response = staff_client.post("/api/callbacks/send/", {"hook_id": hook.pk}, format="json")
        assert response.json() == queued
        receiver.wait_for(2, timeout=60)
        wait_until_done(2, worker)
    assert task_results().order_by("enqueued_at").last().args_kwargs == {
        "args": [],
        "kwargs": {"hook_id": hook.pk},
    }
    assert set(Callback.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.parametrize(("batch_size", "sizes"), [(4, [4, 4, 2]), (20_000, [5, 5])])
def test_the_callbacks_of_one_transaction_are_queued_in_batch_size_chunks(
    make_hook, monkeypatch, batch_size, sizes
):
    """Never more than a call may list (``MAX_LISTED_IDS``, 5 here): a task of more
    would be refused by the worker's ``send_callbacks``."""
    monkeypatch.setattr("http_hooks.dispatch.MAX_LISTED_IDS", 5)
    make_hook()
    with tasks_mode(BATCH_SIZE=batch_size), transaction.atomic():
        for number in range(10):
            Order.objects.create(name=f"order {number}")
        assert queued_ids() == []  # not before the commit
    chunks = queued_ids()
    assert [len(chunk) for chunk in chunks] == sizes
    assert [pk for chunk in chunks for pk in chunk] == list(
        Callback.objects.order_by("pk").values_list("pk", flat=True)
    )


def test_saves_in_savepoints_of_one_transaction_are_queued_together(make_hook):
    make_hook()
    with tasks_mode(), transaction.atomic():
        for number in range(5):
            with transaction.atomic():
                Order.objects.create(name=f"order {number}")
    assert queued_ids() == [list(Callback.objects.order_by("pk").values_list("pk", flat=True))]


def test_callbacks_stored_after_a_rolled_back_savepoint_are_queued(make_hook):
    """The savepoint rolled back holds the transaction's first callback, and so the
    commit hook that held the ids: what is stored after goes into a new one."""
    make_hook()
    with tasks_mode(), transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            Order.objects.create(name="rolled back")
            raise RuntimeError
        Order.objects.create(name="kept")
        with pytest.raises(RuntimeError), transaction.atomic():
            Order.objects.create(name="rolled back too")
            raise RuntimeError
        Order.objects.create(name="kept too")
    kept = list(Callback.objects.order_by("pk").values_list("pk", flat=True))
    assert len(kept) == 2
    (chunk,) = queued_ids()
    assert set(kept) <= set(chunk)


def test_a_rolled_back_transaction_queues_nothing(make_hook):
    make_hook()
    with tasks_mode(), pytest.raises(RuntimeError), transaction.atomic():
        Order.objects.create(name="Tea")
        raise RuntimeError
    with tasks_mode(), transaction.atomic():
        Order.objects.create(name="Cake")
    assert queued_ids() == [list(Callback.objects.values_list("pk", flat=True))]


@pytest.mark.parametrize("atomic", [False, True], ids=["autocommit", "in-a-transaction"])
def test_a_backend_that_refuses_the_task_never_fails_the_save(make_hook, caplog, atomic):
    """The save commits, the error is logged once for all its chunks, and the callbacks
    wait for a send."""
    make_hook()
    make_hook()
    with (
        tasks_mode(TASKS_QUEUE="nowhere", BATCH_SIZE=1),
        caplog.at_level(logging.ERROR, logger="http_hooks.dispatch"),
        transaction.atomic() if atomic else nullcontext(),
    ):
        Order.objects.create(name="Tea")
    ids = list(Callback.objects.order_by("pk").values_list("pk", flat=True))
    assert set(Callback.objects.values_list("status", flat=True)) == {"waiting"}
    assert not task_results().exists()
    (record,) = caplog.records
    assert record.getMessage().startswith(f"could not queue callbacks {ids}")
    assert "Queue 'nowhere' is not valid" in record.exc_text


def test_tasks_are_queued_on_tasks_queue(make_hook):
    make_hook()
    tasks = {"default": {**settings.TASKS["default"], "QUEUES": ["webhooks"]}}
    with override_settings(TASKS=tasks), tasks_mode(TASKS_QUEUE="webhooks"):
        Order.objects.create(name="Tea")
    assert list(task_results().values_list("queue_name", flat=True)) == ["webhooks"]


def test_without_a_tasks_framework_the_save_commits_and_check_says_why(make_hook, same_db_env):
    make_hook()
    script = (
        "import sys\n"
        "for name in ('django.tasks', 'django_tasks', 'django_tasks_db'):\n"
        "    sys.modules[name] = None\n"
        "import django; django.setup()\n"
        "from django.core.management import call_command\n"
        "from shop.models import Order\n"
        "Order.objects.create()\n"
        "call_command('check')\n"
    )
    env = {**same_db_env, "HTTP_HOOKS_OVERRIDES": json.dumps({"DISPATCH": "tasks"})}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "could not queue callbacks" in result.stderr
    assert "no tasks framework is installed" in result.stderr
    assert "http_hooks.E021" in result.stderr
    assert Callback.objects.get().status == "waiting"


@pytest.mark.multiprocess
def test_a_worker_sweeps_up_the_callbacks_of_a_sender_that_died(make_hook, receiver, start_worker):
    """Once a worker process has run a task it sweeps: a callback claimed by a sender
    that died goes out after its lease, with no task queued for it."""
    from http_hooks.delivery.claims import claim_batch
    from http_hooks.tasks_framework import queue_listed

    make_hook()
    Order.objects.create(name="Tea")
    Order.objects.create(name="Lost")
    fresh, lost = Callback.objects.order_by("pk")
    Callback.objects.filter(pk=lost.pk).update(
        next_attempt_at=timezone.now() + datetime.timedelta(hours=1)
    )
    worker = start_worker(DISPATCH="tasks", SWEEP_SECONDS=1)
    queue_listed([fresh.pk])
    wait_until_done(1, worker)
    assert task_results().get().return_value == {"sent": 1, "retried": 0, "failed": 0}
    with tasks_mode(LEASE_SECONDS=1):
        assert len(claim_batch(callback_ids=[lost.pk])) == 1  # and its sender died
    wait_until(
        lambda: Callback.objects.get(pk=lost.pk).status == "sent",
        alive=lambda: worker.poll() is None,
    )
    assert task_results().count() == 1
    assert [request.headers["webhook-id"] for request in receiver.requests] == [
        str(fresh.event_id),
        str(lost.event_id),
    ]


@pytest.mark.multiprocess
def test_a_worker_sweeps_from_its_start_with_no_task_queued(make_hook, receiver, start_worker):
    """A worker started with a retry due and nothing queued (restarted by a deploy on a
    quiet evening) sends it: the sweep starts with the process, not its first task."""
    make_hook()
    Order.objects.create(name="Tea")
    callback = Callback.objects.get()
    Callback.objects.update(
        attempts=1, next_attempt_at=timezone.now() - datetime.timedelta(hours=1)
    )
    worker = start_worker(DISPATCH="tasks", SWEEP_SECONDS=1)
    (request,) = receiver.wait_for(1, timeout=60)
    assert request.headers["webhook-id"] == str(callback.event_id)
    wait_until(lambda: Callback.objects.get().status == "sent", alive=lambda: worker.poll() is None)
    assert not task_results().exists()


@pytest.mark.multiprocess
def test_a_worker_stopped_mid_sweep_records_the_transfer_in_flight(
    make_hook, receiver, start_worker
):
    """SIGTERM while the sweep waits on a receiver: the worker exits once that transfer
    has ended (here by its read timeout) and its outcome is recorded; the callback is
    not left "sending" until its lease ends."""
    hold = threading.Event()
    receiver.respond(hold=hold)
    make_hook()
    Order.objects.create(name="Tea")
    Callback.objects.update(next_attempt_at=timezone.now() - datetime.timedelta(hours=1))
    # A retry far off: a read timeout that came before the SIGTERM sends nothing more.
    worker = start_worker(DISPATCH="tasks", SWEEP_SECONDS=1, TIMEOUT=[5, 1], RETRY_SCHEDULE=[3600])
    receiver.wait_for(1, timeout=60)
    worker.terminate()
    try:
        assert worker.wait(timeout=60) == 0
    finally:
        hold.set()
    callback = Callback.objects.get()
    assert (callback.status, callback.attempts) == ("waiting", 1)
    assert "read timeout" in callback.attempt_log.get().error


@pytest.mark.parametrize(
    ("argv", "debug", "reloader_child", "worker"),
    [
        (["manage.py", "db_worker", "--no-reload"], True, False, True),
        (["manage.py", "db_worker", "--no-rel"], True, False, True),  # as argparse reads it
        (["manage.py", "db_worker"], False, False, True),
        (["manage.py", "db_worker"], True, False, False),  # the reloader's watcher
        (["manage.py", "db_worker"], True, True, True),  # the reloader's child
        (["manage.py", "db_worker", "--reload"], False, False, False),
        (["manage.py", "db_worker", "--batch"], True, False, True),
        (["manage.py", "db_worker", "--bat"], True, False, True),
        (["manage.py", "db_worker", "--interval", "x"], False, False, False),  # refused
        (["manage.py", "runserver"], False, False, False),
        (["manage.py", "send_callbacks", "--loop"], False, False, False),
        (["manage.py"], False, False, False),
    ],
)
def test_which_processes_are_tasks_workers(argv, debug, reloader_child, worker, monkeypatch):
    from django.utils.autoreload import DJANGO_AUTORELOAD_ENV

    from http_hooks.delivery.sweep import tasks_worker_options

    if reloader_child:
        monkeypatch.setenv(DJANGO_AUTORELOAD_ENV, "true")
    else:
        monkeypatch.delenv(DJANGO_AUTORELOAD_ENV, raising=False)
    with override_settings(DEBUG=debug):
        assert (tasks_worker_options(argv) is not None) is worker


@pytest.mark.parametrize("seconds", ["ten", [1], -1])
def test_a_sweep_period_that_is_no_number_starts_no_sweep(seconds):
    """What ``http_hooks.E033`` reports; not a traceback from ``apps.ready()``."""
    from http_hooks.delivery.sweep import start_sweeper

    with tasks_mode(SWEEP_SECONDS=seconds):
        assert start_sweeper() is False
