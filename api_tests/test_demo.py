"""The demo project: its data loads, a change in the admin reaches the receiver page,
and ``run_demo`` (``make demo``) serves on the port it is given or says why not."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django.urls import reverse

from http_hooks.api import create_hook, send_callbacks
from http_hooks.models import Callback, Hook
from receiver.models import ReceivedRequest
from shop.models import Customer, Order, Parcel

from .demo_server import free_port
from .waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
MANAGE = ROOT / "demo" / "manage.py"


@pytest.mark.django_db(transaction=True)
def test_demo_data_hooks_deliver_to_the_receiver_page(live_server, client):
    # Loaded for a demo on another port first: run again, the hooks follow the receiver.
    call_command("load_demo_data", "--base-url", "http://127.0.0.1:9")
    elsewhere = create_hook(
        model="shop.order",
        signals=["django.db.models.signals.post_delete"],
        target_url="http://127.0.0.1:9/elsewhere/receiver/",
    )
    call_command("load_demo_data", "--base-url", live_server.url)
    assert Hook.objects.count() == 6
    demo_hooks = Hook.objects.exclude(pk=elsewhere.pk)
    assert all(h.target_url.startswith(f"{live_server.url}/receiver/inbox/") for h in demo_hooks)
    elsewhere.refresh_from_db()
    assert elsewhere.target_url == "http://127.0.0.1:9/elsewhere/receiver/"
    assert client.login(username="admin", password="admin")
    Callback.objects.all().delete()  # the demo's own customers

    response = client.post(
        reverse("admin:shop_customer_add"), {"name": 'Zoë "Z" Quote', "email": "z@example.com"}
    )
    assert response.status_code == 302
    customer = Customer.objects.get(name='Zoë "Z" Quote')
    Order.objects.create(name="Tea", customer=customer, total="2.50")
    Parcel.objects.create(name="Box", nested_attribute=customer)

    report = send_callbacks()
    assert (report.sent, report.failed, report.retried) == (5, 0, 0)
    received = {r.inbox: r for r in ReceivedRequest.objects.all()}
    assert set(received) == {"customers", "customers-xml", "orders", "orders-serialized", "parcels"}
    assert received["customers"].signature == "valid"
    assert json.loads(received["customers"].body)["object_serialization"]["name"] == customer.name
    assert json.loads(received["orders"].body)["customer"] == customer.name
    assert received["orders"].headers["Test-Token"] == "12345"
    assert received["orders-serialized"].method == "PUT"
    assert json.loads(received["parcels"].body)["nested_attribute"] == customer.name
    assert "<name>Zoë &quot;Z&quot; Quote</name>" in received["customers-xml"].body

    page = client.get("/receiver/")
    assert page.status_code == 200
    assert "customers-xml" in page.content.decode()


# Runs the command after it with SIGINT ignored, as a script's background job starts.
WITH_SIGINT_IGNORED = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.argv[1], sys.argv[1:])",
]


def demo_env(directory: Path) -> dict[str, str]:
    """The demo's settings on a SQLite file of its own."""
    return {
        key: value for key, value in os.environ.items() if not key.startswith("HTTP_HOOKS_")
    } | {
        "HTTP_HOOKS_SQLITE_PATH": str(directory / "demo.sqlite3"),
        "DJANGO_SETTINGS_MODULE": "demo.settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "demo"), str(ROOT)]),
    }


@pytest.mark.django_db
def test_the_demo_has_a_favicon(client):
    """Not a 404 in the browser's console on each first page of the admin or the API."""
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"


def test_run_demo_on_a_busy_port_fails_before_the_banner(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, str(MANAGE), "run_demo", "--port", str(port)],
            env=demo_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"CommandError: port {port} on 127.0.0.1 is already in use (another demo or server?): "
        f"stop it, or choose another port: make demo PORT={port + 1}"
    ]
    assert "demo is running" not in done.stdout


def receiver_page(base: str) -> str:
    try:
        return requests.get(f"{base}/receiver/", timeout=5).text
    except requests.ConnectionError:
        return ""  # not serving yet


@pytest.mark.slow
def test_run_demo_serves_on_its_port_and_its_hooks_deliver_there(tmp_path):
    """A demo loaded on one port and run on another: the banner names the new port and
    the first customers' webhooks arrive at that server's receiver page. Ctrl-C stops
    it and its server and worker, even when it was started with SIGINT ignored (as
    a non-interactive shell starts background jobs)."""
    env = demo_env(tmp_path)
    for args in (["migrate", "--no-input"], ["load_demo_data", "--base-url", "http://127.0.0.1:9"]):
        done = subprocess.run(
            [sys.executable, str(MANAGE), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        demo = subprocess.Popen(
            [*WITH_SIGINT_IGNORED, sys.executable, str(MANAGE), "run_demo", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its server and worker go with it if it hangs
        )
    try:
        wait_until(
            lambda: "customers-xml" in receiver_page(base),
            alive=lambda: demo.poll() is None,
            message=log.read_text,
        )
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            # It stops its worker and server, each given 10 s, then exits.
            code = demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            pytest.fail(f"run_demo did not stop within 60 s of Ctrl-C:\n{log.read_text()}")
    assert code == 0, log.read_text()
    with pytest.raises(ProcessLookupError):  # its server and worker stopped with it
        os.killpg(demo.pid, 0)
    assert f"  receiver page  {base}/receiver/" in log.read_text()
