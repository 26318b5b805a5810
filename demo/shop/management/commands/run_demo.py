"""Run the demo: the web server and a sender worker, until Ctrl-C."""

import os
import signal
import socket
import subprocess
import sys
import time

from django.core.management.base import BaseCommand

from .load_demo_data import DEMO_USER


class Command(BaseCommand):
    help = "Start the demo web server and a send_callbacks --loop worker; print the URLs."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")

    def handle(self, *args, host, port, **options):
        manage = [sys.executable, os.path.abspath(sys.argv[0])]
        base = f"http://{host}:{port}"
        server = subprocess.Popen([*manage, "runserver", "--noreload", f"{host}:{port}"])
        self._wait_for_port(host, int(port))
        worker = subprocess.Popen([*manage, "send_callbacks", "--loop", "--quiet"])
        username, password = DEMO_USER
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "http_hooks demo is running (Ctrl-C to stop):",
                    f"  receiver page  {base}/receiver/   (what the webhooks delivered)",
                    f"  admin          {base}/admin/      (log in as {username} / {password})",
                    f"  REST API       {base}/api/",
                    f"  API docs       {base}/api/docs/   and {base}/api/redoc/",
                    f"  OpenAPI schema {base}/api/schema/",
                    "",
                    "Add a customer or an order in the admin and watch the receiver page.",
                    "",
                ]
            )
        )
        try:
            while server.poll() is None and worker.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            for process in (worker, server):
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in (worker, server):
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()

    def _wait_for_port(self, host: str, port: int, timeout: float = 30.0) -> None:
        """The server first, so that the sender's first tries find the receiver page."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex((host, port)) == 0:
                    return
            time.sleep(0.2)
