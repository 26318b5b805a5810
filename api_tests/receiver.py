"""A real HTTP server on 127.0.0.1 that records what it receives.

Tests point hooks at ``receiver.url(path)`` and tell the server how to answer:
a status, a delay, a redirect, a connection reset, an endless, trickling or
oversized body, or not before the test releases it (``hold=threading.Event()``,
then ``hold.set()``). Each request is recorded with its method, path, headers,
body, the client's port (one port per connection, so keep-alive reuse shows) and when it
arrived (``time.monotonic()``); ``handled`` counts those whose answer (if any) is
written.
``Receiver(tls=context)`` serves HTTPS with that ``ssl.SSLContext``.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int = 0
    received_at: float = field(default_factory=time.monotonic)
    # Every header line as it came, repeated names included.
    lines: list[tuple[str, str]] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass
class Behaviour:
    status: int = 200
    delay: float = 0.0
    body: bytes = b"ok"
    # A dict, or (name, value) pairs to send a header more than once.
    headers: dict[str, str] | list[tuple[str, str]] = field(default_factory=dict)
    redirect_to: str | None = None
    reset: bool = False
    endless: bool = False
    # Seconds between the bytes of an endless body sent one byte at a time.
    trickle: float = 0.0
    # Answer (or, with ``stall``, go on after the headers) only once the test sets this event.
    hold: threading.Event | None = None
    # Read the request's body only once the test sets this event.
    read_hold: threading.Event | None = None
    # Send the headers and one byte of body, then nothing more until ``hold`` is set.
    stall: bool = False
    # Called with each request (in the request's thread) to choose its answer instead.
    pick: Any = None


class _Server(ThreadingHTTPServer):
    # Room for every connection of a sender with many workers (the default is 5).
    request_queue_size = 128

    def handle_error(self, request, client_address) -> None:
        """Senders hang up on purpose (body limits, deadlines, TLS refusals): stay quiet."""
        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError | TimeoutError):
            super().handle_error(request, client_address)


class Receiver:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.requests: list[ReceivedRequest] = []
        self.handled = 0
        self._behaviours: dict[str, Behaviour] = {}
        self._default = Behaviour()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                self._answer()
                with receiver._cond:
                    receiver.handled += 1

            def _answer(self) -> None:
                path = self.path.split("?", 1)[0]
                read_hold = receiver.behaviour_for(path).read_hold
                if read_hold is not None:
                    receiver._held(read_hold)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = ReceivedRequest(
                    self.command,
                    path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    self.client_address[1],
                    lines=list(self.headers.items()),
                )
                receiver._record(request)
                behaviour = receiver.behaviour_for(path)
                if behaviour.pick is not None:
                    behaviour = behaviour.pick(request)
                if behaviour.hold is not None and not behaviour.stall:
                    receiver._held(behaviour.hold)
                if behaviour.delay:
                    time.sleep(behaviour.delay)
                if behaviour.reset:
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()
                    self.close_connection = True
                    return
                if behaviour.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", behaviour.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(behaviour.status)
                headers = behaviour.headers
                for name, value in headers.items() if isinstance(headers, dict) else headers:
                    self.send_header(name, value)
                if behaviour.stall:
                    self.send_header("Content-Type", "text/plain")
                    self.end_headers()
                    try:
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        receiver._held(behaviour.hold or threading.Event())
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                if behaviour.endless or behaviour.trickle:
                    self.send_header("Content-Type", "text/plain")
                    self.end_headers()
                    chunk = b"x" if behaviour.trickle else b"x" * 65536
                    try:
                        deadline = time.monotonic() + 30
                        while time.monotonic() < deadline:
                            self.wfile.write(chunk)
                            self.wfile.flush()
                            time.sleep(behaviour.trickle)
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                if behaviour.status in (204, 304):
                    # No body may follow: one would be read as the start of the
                    # next response on this kept-alive connection.
                    self.end_headers()
                    return
                self.send_header("Content-Length", str(len(behaviour.body)))
                self.end_headers()
                self.wfile.write(behaviour.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str = "/hook") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def respond(self, path: str | None = None, **behaviour: Any) -> None:
        """Answer requests to ``path`` (to every path when None) like ``behaviour`` says."""
        if path is None:
            self._default = Behaviour(**behaviour)
        else:
            self._behaviours[path] = Behaviour(**behaviour)

    def _held(self, event: threading.Event) -> None:
        """Wait for the test to release ``event``, or for the server to stop."""
        while not event.wait(0.05) and not self._stopping.is_set():
            pass

    def behaviour_for(self, path: str) -> Behaviour:
        return self._behaviours.get(path, self._default)

    def _record(self, request: ReceivedRequest) -> None:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Wait until at least ``count`` requests arrived; return them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} requests, received {len(self.requests)}"
                    )
                self._cond.wait(remaining)
            return list(self.requests)

    def clear(self) -> None:
        with self._cond:
            self.requests.clear()
            self.handled = 0
