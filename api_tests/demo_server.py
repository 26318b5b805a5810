"""The demo project served by ``manage.py runserver`` in a child process, on a free
127.0.0.1 port, against a throwaway SQLite database with a staff user and a few
hooks, callbacks and attempts. Used by the tests that talk HTTP to a real server
(schemathesis)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from .waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
MANAGE = ROOT / "demo" / "manage.py"
USERNAME = "api-tester"
PASSWORD = "api-tester-password"

# Run in the server's database before it starts: a staff user, two hooks (one with
# a secret), callbacks of both and one failed try, aimed at a closed local port.
SEED = f"""
from django.contrib.auth.models import User
from http_hooks.api import create_hook, create_signal, send_callbacks
from shop.models import Customer, Order

User.objects.create_user({USERNAME!r}, password={PASSWORD!r}, is_staff=True)
create_signal(signal="shop.signals.order_shipped")
create_hook(name="orders", model="shop.order", signals=["django.db.models.signals.post_save"],
            target_url="http://127.0.0.1:9/orders", content_type="application/json",
            secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
create_hook(name="customers", model="shop.customer",
            signals=["django.db.models.signals.post_delete"], target_url="http://127.0.0.1:9/c")
for index in range(3):
    Order.objects.create(name=f"order {{index}}")
Customer.objects.create(name="c").delete()
send_callbacks()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The demo's settings with a fast password hasher: every request of a fuzzer
# authenticates, and the default PBKDF2 would make each one take a third of a second.
SETTINGS = """
from demo.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
"""


class DemoServer:
    def __init__(self, directory: Path, *, settings: str = "") -> None:
        """``settings``: more lines for the server's settings module."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth = (USERNAME, PASSWORD)
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith("HTTP_HOOKS_")
        } | {
            "HTTP_HOOKS_SQLITE_PATH": str(directory / "server.sqlite3"),
            "DJANGO_DEBUG": "0",
            "DJANGO_SETTINGS_MODULE": "demo_server_settings",
            "PYTHONPATH": os.pathsep.join([str(directory), str(ROOT / "demo"), str(ROOT)]),
        }
        (directory / "demo_server_settings.py").write_text(SETTINGS + settings)
        self.process: subprocess.Popen | None = None
        self.log = directory / "server.log"

    def manage(self, *args: str) -> None:
        done = subprocess.run(
            [sys.executable, str(MANAGE), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout}{done.stderr}")

    def start(self) -> DemoServer:
        self.manage("migrate", "--no-input", "--skip-checks")
        self.manage("shell", "-c", SEED)
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(MANAGE), "runserver", "--noreload", f"127.0.0.1:{self.port}"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until(
                self.accepts,
                alive=lambda: self.process.poll() is None,
                message=lambda: f"the demo server did not start:\n{self.log.read_text()}",
            )
        except AssertionError:
            self.stop()
            raise
        return self

    def accepts(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
