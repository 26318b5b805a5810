"""Run the demo: the web server and a sender worker, until Ctrl-C or SIGTERM."""

import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from .load_demo_data import DEMO_USER


def port_number(value: str) -> int:
    port = int(value)
    if not 0 < port < 65536:
        raise ValueError(value)
    return port


class Command(BaseCommand):
    help = (
        "Start the demo web server and a send_callbacks --loop worker; aim the demo's hooks "
        "at this server's receiver page; print the URLs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=port_number, default=8000)

    def handle(self, *args, host, port, **options):
        self._check_port_free(host, port)
        base = f"http://{host}:{port}"
        call_command("load_demo_data", base_url=base, stdout=self.stdout)
        manage = [sys.executable, os.path.abspath(sys.argv[0])]
        # Ctrl-C (SIGINT) and SIGTERM both stop the server and the worker before the
        # demo exits. Set here, as the worker's own command does: Python leaves
        # SIGINT ignored in a process started with it ignored (a background job of
        # a script), and a SIGTERM would otherwise leave the two running.
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        children: list[subprocess.Popen] = []
        try:
            server = subprocess.Popen([*manage, "runserver", "--noreload", f"{host}:{port}"])
            children.append(server)
            self._wait_for_server(server, host, port, stop)
            worker = subprocess.Popen([*manage, "send_callbacks", "--loop", "--quiet"])
            children.insert(0, worker)
            self.stdout.write(self._banner(base))
            while server.poll() is None and worker.poll() is None and not stop.wait(0.5):
                pass
        finally:
            for process in children:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in children:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()

    def _banner(self, base: str) -> str:
        username, password = DEMO_USER
        return "\n".join(
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

    def _check_port_free(self, host: str, port: int) -> None:
        """Bind the port as runserver will: a busy port is an error now, not a server
        that dies after the banner (or a banner for somebody else's server)."""
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        except socket.gaierror as error:
            raise CommandError(f"cannot use host {host!r}: {error.strerror}") from None
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise CommandError(
                        f"port {port} on {host} is already in use (another demo or server?): "
                        f"stop it, or choose another port: make demo PORT={port + 1}"
                    ) from None
                raise CommandError(f"cannot listen on {host}:{port}: {error.strerror}") from None

    def _wait_for_server(
        self,
        server: subprocess.Popen,
        host: str,
        port: int,
        stop: threading.Event,
        timeout: float = 30.0,
    ) -> None:
        """The server first, so that the sender's first tries find the receiver page."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stop.is_set():
            if server.poll() is not None:
                raise CommandError(f"the web server on {host}:{port} exited; see its output above")
            try:
                socket.create_connection((host, port), timeout=1).close()
                return
            except OSError:
                stop.wait(0.2)
        if not stop.is_set():
            raise CommandError(f"the web server did not answer on {host}:{port} in {timeout:.0f} s")
