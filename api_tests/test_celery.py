"""The ``celery`` dispatch mode with a real Celery worker process on the Redis broker at
127.0.0.1:6379, sharing this test's database: no ``send_callbacks`` is ever run here.
And the app without Celery installed."""

import datetime
import json
import subprocess
import sys
import uuid

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from http_hooks.models import Callback
from http_hooks.services import resend_callbacks
from http_hooks.tasks import send_due_callbacks
from shop.models import Order

from .waiting import wait_until

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def queue() -> str:
    """A queue of this test's own, so that parallel runs on one Redis never meet."""
    return f"http_hooks_test_{uuid.uuid4().hex}"


@pytest.fixture
def worker(same_db_env, queue, tmp_path):
    log = tmp_path / "worker.log"
    env = {**same_db_env, "HTTP_HOOKS_OVERRIDES": json.dumps({"CELERY_QUEUE": queue})}
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "demo", "worker"),
                *("--queues", queue, "--pool", "solo", "--loglevel", "info"),
                *("--without-gossip", "--without-mingle", "--without-heartbeat"),
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    yield process
    process.terminate()
    process.wait(timeout=30)
    print(log.read_text())  # shown by pytest when the test failed


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


@pytest.mark.celery
def test_a_broker_that_cannot_be_reached_never_fails_the_save(make_hook, same_db_env, queue):
    """The save commits and its callback waits for ``send_due_callbacks``."""
    make_hook()
    save = "import django; django.setup(); from shop.models import Order; Order.objects.create()"
    env = {
        **same_db_env,
        "HTTP_HOOKS_OVERRIDES": json.dumps({"DISPATCH": "celery", "CELERY_QUEUE": queue}),
        "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
    }
    result = subprocess.run(
        [sys.executable, "-c", save], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "could not queue callbacks" in result.stderr
    assert Callback.objects.get().status == "waiting"


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


@pytest.mark.celery
def test_the_send_endpoint_hands_the_work_to_the_workers(
    make_hook, receiver, worker, queue, staff_client
):
    hook = make_hook()
    Order.objects.create(name="Tea")
    Order.objects.create(name="Cake")
    later, _due = Callback.objects.order_by("pk")
    Callback.objects.filter(pk=later.pk).update(
        next_attempt_at=timezone.now() + datetime.timedelta(hours=1)
    )
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
        response = staff_client.post("/api/callbacks/send/", {"hook_id": hook.pk}, format="json")
        assert response.json() == queued
        receiver.wait_for(2, timeout=60)
        wait_until_sent(2)
