"""The ``celery`` dispatch mode with a real Celery worker process on the broker of
``CELERY_BROKER_URL`` (the Redis at 127.0.0.1:6379 by default; ``make test-rabbitmq``
runs this file on RabbitMQ), sharing this test's database: no ``send_callbacks`` is
ever run here. Brokers that are down or hang are stand-ins speaking to the same
client (their URLs keep the scheme of the broker under test). And the app without
Celery installed."""

import collections
import datetime
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from http_hooks import tasks
from http_hooks.models import Callback
from http_hooks.publishing import HUNG_SECONDS, publisher
from http_hooks.services import resend_callbacks
from http_hooks.tasks import send_due_callbacks
from shop.models import Order

from .conftest import BROKER_URL, broker_port, port_open
from .waiting import wait_until

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]


def broker_url_on(port: int) -> str:
    """The URL of the broker under test, its port replaced: a stand-in on 127.0.0.1."""
    parts = urllib.parse.urlsplit(BROKER_URL)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return parts._replace(netloc=netloc).geturl()


@pytest.fixture
def queue():
    """A queue of this test's own, so that parallel runs on one broker never meet;
    deleted afterwards (RabbitMQ keeps a declared queue, empty or not)."""
    name = f"http_hooks_test_{uuid.uuid4().hex}"
    yield name
    if port_open(broker_port()):
        from demo.celery import app

        with app.connection_for_write() as connection:
            connection.default_channel.queue_delete(name)


def start_worker(
    env: dict[str, str], queue: str, log: Path, *, prefork: int = 0, **overrides
) -> subprocess.Popen:
    """A Celery worker process (solo pool, or a prefork pool of ``prefork`` children) on
    ``queue`` of the broker under test, with these ``HTTP_HOOKS`` overrides, writing to
    ``log``."""
    overrides = {"CELERY_QUEUE": queue, **overrides}
    pool = ("--pool", "prefork", "--concurrency", str(prefork)) if prefork else ("--pool", "solo")
    with log.open("a") as output:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "demo", "worker"),
                *("--queues", queue, *pool, "--loglevel", "info"),
                # A name of its own: RabbitMQ refuses a second worker of the same name.
                *("--hostname", f"test-{uuid.uuid4().hex}@%h"),
                *("--without-gossip", "--without-mingle", "--without-heartbeat"),
            ],
            env={**env, "HTTP_HOOKS_OVERRIDES": json.dumps(overrides)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen, log: Path) -> None:
    process.terminate()
    process.wait(timeout=30)
    print(log.read_text())  # shown by pytest when the test failed


@pytest.fixture
def worker(same_db_env, queue, tmp_path):
    log = tmp_path / "worker.log"
    process = start_worker(same_db_env, queue, log)
    yield process
    stop(process, log)


def wait_until_sent(count: int, timeout: float = 60.0) -> None:
    wait_until(
        lambda: Callback.objects.filter(status="sent").count() >= count,
        timeout=timeout,
        message=lambda: str(list(Callback.objects.values("status"))),
    )


@pytest.mark.celery
def test_a_saved_model_becomes_a_delivered_request(make_hook, receiver, worker, queue):
    make_hook()
    celery_mode = {**settings.HTTP_HOOKS, "DISPATCH": "celery", "CELERY_QUEUE": queue}
    with override_settings(HTTP_HOOKS=celery_mode):
        order = Order.objects.create(name="Tea")
    (request,) = receiver.wait_for(1, timeout=60)
    assert request.json()["object_id"] == order.pk
    assert request.headers["webhook-id"] == str(Callback.objects.get().event_id)
    wait_until_sent(1)
    assert worker.poll() is None


@pytest.mark.celery
def test_resent_error_callbacks_are_queued_to_the_worker(make_hook, receiver, worker, queue):
    make_hook()
    Order.objects.create(name="Tea")
    Callback.objects.update(status="error", status_details="HTTP 500")
    celery_mode = {**settings.HTTP_HOOKS, "DISPATCH": "celery", "CELERY_QUEUE": queue}
    with override_settings(HTTP_HOOKS=celery_mode):
        assert resend_callbacks(queryset=Callback.objects.filter(status="error")) == 1
    receiver.wait_for(1, timeout=60)
    wait_until_sent(1)


@pytest.mark.celery
def test_the_beat_task_sends_what_is_due(make_hook, receiver, worker, queue):
    make_hook()
    Order.objects.create(name="Tea")
    Order.objects.create(name="Cake")
    assert set(Callback.objects.values_list("status", flat=True)) == {"waiting"}
    send_due_callbacks.apply_async(queue=queue)
    receiver.wait_for(2, timeout=60)
    wait_until_sent(2)


def test_without_celery_installed_the_app_imports_and_sends(make_hook, receiver, same_db_env):
    make_hook()
    Order.objects.create(name="Tea")
    script = (
        "import sys; sys.modules['celery'] = None\n"
        "import django; django.setup()\n"
        "from django.core.management import call_command\n"
        "import http_hooks.tasks\n"
        "call_command('check')\n"
        "call_command('send_callbacks')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=same_db_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "sent 1," in result.stdout
    assert len(receiver.requests) == 1


def test_the_tasks_are_registered_whatever_the_project_app_autodiscovers(same_db_env):
    """A project's Celery app that autodiscovers only its own apps still has the tasks
    (and the worker's sweep): a worker without them drops each task as unregistered."""
    script = (
        "from celery import Celery\n"
        "app = Celery('project')\n"
        "app.autodiscover_tasks(['shop'])\n"
        "import django; django.setup()\n"
        "app.finalize()\n"
        "print(sorted(name for name in app.tasks if name.startswith('http_hooks.')))\n"
    )
    env = {**same_db_env, "HTTP_HOOKS_OVERRIDES": json.dumps({"DISPATCH": "celery"})}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == (
        "['http_hooks.send_callbacks', 'http_hooks.send_due_callbacks']"
    )


@pytest.mark.celery
def test_the_send_endpoint_hands_the_work_to_the_workers(
    make_hook, receiver, worker, queue, staff_client
):
    hook = make_hook()
    Order.objects.create(name="Tea")
    Order.objects.create(name="Cake")
    later, other = Callback.objects.order_by("pk")
    # Neither due: a task goes on with whatever is due after its own callbacks.
    Callback.objects.update(next_attempt_at=timezone.now() + datetime.timedelta(hours=1))
    celery_mode = {**settings.HTTP_HOOKS, "DISPATCH": "celery", "CELERY_QUEUE": queue}
    queued = {
        "mode": "queued",
        **dict.fromkeys(("sent", "retried", "failed", "total"), 0),
        **dict.fromkeys(("duration", "rate"), 0.0),
        "more": False,
    }
    with override_settings(HTTP_HOOKS=celery_mode):
        # Listed: queued even though its retry time has not come.
        response = staff_client.post("/api/callbacks/send/", {"ids": [later.pk]}, format="json")
        assert response.json() == queued
        (request,) = receiver.wait_for(1, timeout=60)
        assert request.headers["webhook-id"] == str(later.event_id)
        wait_until_sent(1)
        Callback.objects.filter(pk=other.pk).update(next_attempt_at=timezone.now())
        response = staff_client.post("/api/callbacks/send/", {"hook_id": hook.pk}, format="json")
        assert response.json() == queued
        receiver.wait_for(2, timeout=60)
        wait_until_sent(2)


@pytest.mark.celery
def test_a_worker_killed_mid_task_loses_nothing_and_the_sweep_recovers_all(
    make_hook, receiver, same_db_env, queue, tmp_path
):
    """SIGKILL while the worker holds two claimed callbacks in flight and has a second
    task prefetched (on Redis it comes back only after an hour): the sweep of another
    worker sends all of them once the lease has run out, with no sender run by hand."""
    hold = threading.Event()
    receiver.respond(hold=hold)
    make_hook()
    fast = {"DISPATCH": "celery", "LEASE_SECONDS": 2, "SWEEP_SECONDS": 1, "CONCURRENCY": 2}
    log = tmp_path / "worker.log"
    victim = start_worker(same_db_env, queue, log, **fast)
    celery_mode = {**settings.HTTP_HOOKS, "DISPATCH": "celery", "CELERY_QUEUE": queue}
    with override_settings(HTTP_HOOKS=celery_mode):
        for batch in range(2):  # one task each
            with transaction.atomic():
                for index in range(5):
                    Order.objects.create(name=f"order {batch}.{index}")
    receiver.wait_for(2, timeout=60)
    assert Callback.objects.filter(status="sending").exists()
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    hold.set()
    survivor = start_worker(same_db_env, queue, log, **fast)
    try:
        wait_until_sent(10)
    finally:
        stop(survivor, log)
    delivered = {request.headers["webhook-id"] for request in receiver.requests}
    events = Callback.objects.values_list("event_id", flat=True)
    assert delivered == {str(event) for event in events}


def pool_children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` and that still run (not zombies)."""
    listed = subprocess.run(
        ["ps", "-o", "pid=,stat=", "--ppid", str(pid)], capture_output=True, text=True
    ).stdout
    return [int(child) for child, state in map(str.split, listed.splitlines()) if state[0] != "Z"]


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.celery
def test_a_prefork_worker_whose_child_then_parent_are_killed_loses_nothing(
    make_hook, receiver, same_db_env, queue, tmp_path
):
    """SIGKILL to a child of a prefork pool mid-task, then to the parent while the
    children (the new one too) hold requests in flight: no child outlives the parent,
    and the sweep of another worker sends every callback; twice only those whose
    request was in flight at a kill (at least once)."""
    hold = threading.Event()
    receiver.respond(hold=hold)
    make_hook()
    fast = {"DISPATCH": "celery", "LEASE_SECONDS": 2, "SWEEP_SECONDS": 1, "CONCURRENCY": 2}
    log = tmp_path / "worker.log"
    victim = start_worker(same_db_env, queue, log, prefork=2, **fast)
    first, _ = wait_until(
        lambda: len(pool_children(victim.pid)) == 2 and pool_children(victim.pid),
        alive=lambda: victim.poll() is None,
        message="the pool did not start its children",
    )
    celery_mode = {**settings.HTTP_HOOKS, "DISPATCH": "celery", "CELERY_QUEUE": queue}
    with override_settings(HTTP_HOOKS=celery_mode):
        for batch in range(4):  # one task each
            with transaction.atomic():
                for index in range(5):
                    Order.objects.create(name=f"order {batch}.{index}")
    receiver.wait_for(2, timeout=60)
    os.kill(first, signal.SIGKILL)
    children = wait_until(
        lambda: first not in (now := pool_children(victim.pid)) and len(now) == 2 and now,
        alive=lambda: victim.poll() is None,
        message="the pool did not replace the child killed",
    )
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    wait_until(lambda: not any(map(running, children)), message="a child outlived its parent")
    in_flight = {request.headers["webhook-id"] for request in receiver.requests}
    hold.set()
    survivor = start_worker(same_db_env, queue, log, **fast)
    try:
        wait_until_sent(20)
    finally:
        stop(survivor, log)
    delivered = collections.Counter(request.headers["webhook-id"] for request in receiver.requests)
    assert set(delivered) == {
        str(event) for event in Callback.objects.values_list("event_id", flat=True)
    }
    assert {event for event, count in delivered.items() if count > 1} <= in_flight


@pytest.mark.celery
def test_a_publishing_thread_given_up_as_hung_closes_its_connection_as_it_ends(queue):
    """A publish that outlasted HUNG_SECONDS (a RabbitMQ blocking its publishers under a
    memory alarm) and went out at last: its thread, given up meanwhile, ends and closes
    its broker connection; it stayed open until a garbage collection."""
    connections = []
    broker_answers = threading.Event()

    def hung_then_published() -> None:
        broker_answers.wait(30)
        tasks._publish(send_due_callbacks, queue=queue)
        connections.append((threading.current_thread(), tasks._thread.connection))

    try:
        with override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, "SWEEP_SECONDS": 0.5}):
            publisher.submit(hung_then_published, "a publish that hangs")
            wait_until(
                lambda: time.monotonic() - (publisher.busy_since or time.monotonic()) > HUNG_SECONDS
            )
            publisher.submit(lambda: None, "a publish that gives it up")
            broker_answers.set()
            wait_until(lambda: connections, message="the hung publish did not go out")
            ((hung, connection),) = connections
            hung.join(30)
            assert not hung.is_alive()
            assert not connection.connected
            wait_until(lambda: time.monotonic() > publisher.paused_until)
    finally:
        broker_answers.set()


# Saves ``argv[1]`` orders in one transaction, then as many one by one (autocommit),
# and prints, as JSON, the seconds each commit spent in the broker path on the thread
# that saves (``dispatch.enqueue_callbacks``, which every commit of the celery mode
# runs), whether that thread touched the broker's socket (refused at once: waiting for
# the broker there would only make the failure slow), and whether another thread did.
SAVE_SCRIPT = """
import json, os, sys, threading, time, urllib.parse, django
django.setup()
from django.db import transaction
from http_hooks import dispatch
from shop.models import Order

saves = int(sys.argv[1])
broker_port = urllib.parse.urlsplit(os.environ["CELERY_BROKER_URL"]).port
saving_thread = threading.get_ident()
on_saving_thread = []
elsewhere = threading.Event()

def audit(event, args):
    if event == "socket.getaddrinfo":
        port = args[1]
    elif event == "socket.connect" and isinstance(args[1], tuple):
        port = args[1][1]
    else:
        return
    if port != broker_port:
        return
    if threading.get_ident() != saving_thread:
        elsewhere.set()
        return
    on_saving_thread.append(event)
    raise RuntimeError("the broker was asked on the thread that saves")

sys.addaudithook(audit)
spent = []
enqueue = dispatch.enqueue_callbacks

def timed(ids):
    started = time.perf_counter()
    try:
        enqueue(ids)
    finally:
        spent.append(time.perf_counter() - started)

dispatch.enqueue_callbacks = timed
with transaction.atomic():
    for _ in range(saves):
        Order.objects.create()
for _ in range(saves):
    Order.objects.create()
print(json.dumps({
    "spent": spent,
    "on_saving_thread": on_saving_thread,
    "elsewhere": elsewhere.wait(30),
}))
"""


def save(env: dict[str, str], saves: int) -> subprocess.CompletedProcess:
    run = [sys.executable, "-c", SAVE_SCRIPT, str(saves)]
    result = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def silent_broker():
    """A TCP server on 127.0.0.1 that takes connections (into its backlog) and never
    answers; its address as the broker's URL."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield broker_url_on(server.getsockname()[1])


@pytest.fixture
def closed_broker():
    """The broker's URL on a port of 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return broker_url_on(port)


@pytest.mark.parametrize("broker", ["closed_broker", "silent_broker"])
def test_a_broker_that_does_not_answer_never_slows_the_save(
    make_hook, same_db_env, queue, broker, request
):
    """Nothing listening, or a server that never answers: the commits of a transaction of
    100 saves and of 100 single saves spend next to nothing on the broker on the thread
    that saves, which never asks the broker itself (waiting for it, the saves took 60 s,
    or never returned); the publishing thread asks it. The callbacks wait for the sweep,
    and the log has a line, not a traceback per save.

    Measured on the saving thread, not as the saves' wall time against a run without a
    broker: on a loaded machine two runs of the same saves differ by seconds."""
    pytest.importorskip("celery")
    make_hook()
    env = {
        **same_db_env,
        "HTTP_HOOKS_OVERRIDES": json.dumps({"DISPATCH": "celery", "CELERY_QUEUE": queue}),
        "CELERY_BROKER_URL": request.getfixturevalue(broker),
    }
    result = save(env, 100)
    measured = json.loads(result.stdout)
    assert measured["on_saving_thread"] == [], result.stderr
    assert measured["elsewhere"], "nothing asked the broker"
    assert len(measured["spent"]) == 101  # each commit measured
    # A few ms a commit at most, however loaded the machine (0.04 s for all 101 under
    # load); one wait for the broker takes 0.9 s (refused) or 5.5 s (silent).
    assert sum(measured["spent"]) < 0.5, measured["spent"]
    assert "Traceback" not in result.stderr
    assert set(Callback.objects.values_list("status", flat=True)) == {"waiting"}
    assert Callback.objects.count() == 200


@pytest.mark.celery
def test_callbacks_saved_while_the_broker_was_down_go_out_once_it_is_back(
    make_hook, receiver, same_db_env, queue, closed_broker, tmp_path
):
    make_hook()
    env = {
        **same_db_env,
        "HTTP_HOOKS_OVERRIDES": json.dumps({"DISPATCH": "celery", "CELERY_QUEUE": queue}),
        "CELERY_BROKER_URL": closed_broker,
    }
    assert "could not queue callbacks" in save(env, 5).stderr
    log = tmp_path / "worker.log"
    worker = start_worker(same_db_env, queue, log, DISPATCH="celery", SWEEP_SECONDS=1)
    try:
        wait_until_sent(10)
    finally:
        stop(worker, log)
    assert len(receiver.requests) == 10
    # The sweep's lines, each once: the demo logged every http_hooks line twice in a
    # worker (its own handler, and Celery's on the root logger).
    swept = re.findall(r"sweep: sent (\d+),", log.read_text())
    assert sum(map(int, swept)) == 10, swept


class HangingThenForwardingBroker:
    """A TCP proxy for the broker under test: first it takes connections and never
    answers them, nor closes them (a broker that hangs, as one frozen behind a
    failover does); after ``forward()`` it relays the connections that come next."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.url = broker_url_on(self.server.getsockname()[1])
        self.forwarding = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self.accept, daemon=True).start()

    def forward(self) -> None:
        self.forwarding.set()

    def accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return  # closed
            self.sockets.append(client)
            if self.forwarding.is_set():
                upstream = socket.create_connection(("127.0.0.1", broker_port()))
                self.sockets.append(upstream)
                for source, target in ((client, upstream), (upstream, client)):
                    threading.Thread(target=relay, args=(source, target), daemon=True).start()

    def close(self) -> None:
        self.server.close()
        for sock in self.sockets:
            sock.close()


def relay(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass


@pytest.mark.celery
def test_publishing_comes_back_after_a_broker_that_hung(
    make_hook, receiver, same_db_env, queue, tmp_path
):
    """A broker that hung (its connections left open and silent) and then came back: the
    process that saves publishes again, and holds a bounded number of threads. Before,
    each hung publish kept a connection of Celery's pool for good; once the pool was
    held (here its size is 1, by default 10) every later publish waited for ever,
    broker back or not, a thread more at each pause."""
    make_hook()
    broker = HangingThenForwardingBroker()
    stop_saving = tmp_path / "stop"
    script = (
        "import pathlib, threading, time, django; django.setup()\n"
        "from demo.celery import app\n"
        "app.conf.broker_pool_limit = 1\n"
        "from shop.models import Order\n"
        "most = 0\n"
        f"while not pathlib.Path({str(stop_saving)!r}).exists():\n"
        "    Order.objects.create()\n"
        "    most = max(most, threading.active_count())\n"
        "    time.sleep(0.2)\n"
        "print(most)\n"
    )
    overrides = {"DISPATCH": "celery", "CELERY_QUEUE": queue, "SWEEP_SECONDS": 1}
    saver = subprocess.Popen(
        [sys.executable, "-c", script],
        env={
            **same_db_env,
            "HTTP_HOOKS_OVERRIDES": json.dumps(overrides),
            "CELERY_BROKER_URL": broker.url,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = tmp_path / "worker.log"
    worker = None
    try:
        # Publishes hang, and are given up (2 s each, then a pause of SWEEP_SECONDS).
        wait_until(lambda: Callback.objects.count() >= 40, message="the saves did not go on")
        broker.forward()
        # No sweep in the worker: only a published task sends a callback.
        worker = start_worker(same_db_env, queue, log, DISPATCH="celery", SWEEP_SECONDS=None)
        wait_until(
            lambda: Callback.objects.filter(status="sent").count() >= 5,
            timeout=45,
            message="nothing was published once the broker was back",
        )
    finally:
        stop_saving.touch()
        stdout, stderr = saver.communicate(timeout=60)
        if worker is not None:
            stop(worker, log)
        broker.close()
    assert saver.returncode == 0, stderr
    assert int(stdout) <= 6, stdout  # threads at most: the hung ones are not kept piling up
