"""Receivers that break HTTP on the wire: each try is recorded as what the receiver did.

A raw-socket server on 127.0.0.1 (not ``http.server``, which cannot misbehave this
way) reads each request whole, records its ``webhook-id``, then answers with the
bytes a test gives it, or closes the connection without a word.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

from http_hooks.api import send_callbacks
from http_hooks.models import Attempt, Callback, CallbackStatus, Hook
from shop.models import Order

pytestmark = pytest.mark.django_db

# What the server sends for a request: the bytes of its answer (or pieces of it, sent
# as they come), or None to close the connection without one. Told the request's
# number on its connection (0, 1, ...).
Answer = Callable[[int], bytes | Iterable[bytes] | None]


class RawServer:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.ids: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.open: list[socket.socket] = []
        threading.Thread(target=self.accept, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.open.append(conn)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def read_request(self, conn: socket.socket, buffer: bytes) -> tuple[bool, bytes]:
        while b"\r\n\r\n" not in buffer:
            data = conn.recv(65536)
            if not data:
                return False, b""
            buffer += data
        head, rest = buffer.split(b"\r\n\r\n", 1)
        headers = dict(
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
        )
        length = int(headers.get(b"content-length", b"0"))
        while len(rest) < length:
            data = conn.recv(65536)
            if not data:
                return False, b""
            rest += data
        self.ids.append(headers.get(b"webhook-id", b"").decode())
        return True, rest[length:]

    def serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            try:
                for number in range(1000):
                    complete, buffer = self.read_request(conn, buffer)
                    if not complete:
                        return
                    answer = self.answer(number)
                    if answer is None:
                        return
                    for piece in [answer] if isinstance(answer, bytes) else answer:
                        conn.sendall(piece)
            except OSError:
                return

    def stop(self) -> None:
        self.sock.close()
        for conn in self.open:
            conn.close()


@pytest.fixture
def raw_server():
    servers: list[RawServer] = []

    def start(answer: Answer) -> RawServer:
        server = RawServer(answer)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def hooks_settings(**overrides):
    return override_settings(HTTP_HOOKS={**django_settings.HTTP_HOOKS, **overrides})


def always(answer: bytes) -> Answer:
    return lambda number: answer


@pytest.mark.parametrize(
    "status_line",
    [b"HTTP/1.1 abc", b"HTTP/1.1 20 OK", b"HTTP/1.1 099 Low", b"NOT HTTP AT ALL"],
)
def test_an_unreadable_answer_is_the_receivers_failure_not_an_invalid_request(
    make_hook, raw_server, status_line
):
    """libcurl reports such answers with the error it gives a URL it will not take
    (E_UNSUPPORTED_PROTOCOL): they once were logged as "invalid request" and left
    the hook's health alone, so a receiver answering garbage never paused its hook."""
    server = raw_server(always(status_line + b"\r\nContent-Length: 0\r\n\r\n"))
    hook = make_hook(target_url=server.url())
    Order.objects.create(name="Tea")
    send_callbacks()
    attempt = Attempt.objects.get()
    assert attempt.error.startswith("invalid response: "), attempt.error
    assert Callback.objects.get().status == CallbackStatus.WAITING
    assert Hook.objects.get(pk=hook.pk).consecutive_failures == 1


@pytest.mark.parametrize(
    "status_line", [b"HTTP/1.1 2000 OK", b"HTTP/2 200", b"HTTP/1.1 2001", b"HTTP/1.1 200OK"]
)
def test_a_status_line_libcurl_reads_leniently_is_no_success(make_hook, raw_server, status_line):
    """libcurl takes "HTTP/1.1 2000 OK" and "HTTP/2 200" (on an HTTP/1.1 connection)
    for a 200: the callback was marked sent on an answer that is not HTTP."""
    server = raw_server(always(status_line + b"\r\nContent-Length: 0\r\n\r\n"))
    make_hook(target_url=server.url())
    Order.objects.create(name="Tea")
    send_callbacks()
    attempt = Attempt.objects.get()
    assert attempt.error == f"invalid response: malformed status line {status_line.decode()!r}"
    assert attempt.response_status is None
    assert Callback.objects.get().status == CallbackStatus.WAITING


@pytest.mark.parametrize(
    "status_line", [b"HTTP/1.1 200 OK", b"HTTP/1.1 200", b"HTTP/1.0 204 ", b"HTTP/1.1 201 A b"]
)
def test_well_formed_status_lines_still_succeed(make_hook, raw_server, status_line):
    server = raw_server(always(status_line + b"\r\nContent-Length: 0\r\n\r\n"))
    make_hook(target_url=server.url())
    Order.objects.create(name="Tea")
    send_callbacks()
    assert Attempt.objects.get().error == ""
    assert Callback.objects.get().status == CallbackStatus.SENT


def test_a_status_line_after_a_1xx_is_the_one_judged(make_hook, raw_server):
    server = raw_server(
        always(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    )
    make_hook(target_url=server.url())
    Order.objects.create(name="Tea")
    send_callbacks()
    assert Callback.objects.get().status == CallbackStatus.SENT


def test_every_request_a_receiver_gets_is_an_attempt_when_it_drops_a_kept_alive_connection(
    make_hook, raw_server
):
    """The receiver answers the first request of each connection and, on the second,
    reads it and closes without answering. libcurl used to send that request again on a
    new connection by itself: the receiver got the event twice, one attempt was logged."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    server = raw_server(lambda number: ok if number == 0 else None)
    make_hook(target_url=server.url())
    with hooks_settings(CONCURRENCY=1, HOOK_CONCURRENCY=1, MAX_ATTEMPTS=1):
        for name in ("Tea", "Coffee", "Milk"):
            Order.objects.create(name=name)
        send_callbacks()
    assert len(server.ids) == Attempt.objects.count() == 3
    assert len(set(server.ids)) == 3
    dropped = Attempt.objects.get(response_status=None)
    assert "closed a kept-alive connection without answering" in dropped.error
    assert dropped.callback.status == CallbackStatus.ERROR
    assert Callback.objects.filter(status=CallbackStatus.SENT).count() == 2


def continuing() -> Iterable[bytes]:
    """100 Continue ten times a second, for ten seconds."""
    for _ in range(100):
        yield b"HTTP/1.1 100 Continue\r\n\r\n"
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (always(b"HTTP/1.1 100 Continue\r\n\r\n" * 3), "read timeout (0.5 s)"),
        (lambda number: continuing(), "the response did not arrive within 1.5 s"),
    ],
)
def test_an_interim_answer_alone_is_no_response_status(make_hook, raw_server, answer, error):
    """A receiver that sends 100 Continue, then nothing (or 100 Continue for ever):
    the try was logged with status 100, and as "the response body did not arrive"."""
    server = raw_server(answer)
    make_hook(target_url=server.url())
    Order.objects.create(name="Tea")
    with hooks_settings(TIMEOUT=(1.0, 0.5)):
        send_callbacks()
    attempt = Attempt.objects.get()
    assert (attempt.response_status, attempt.error) == (None, error)
    callback = Callback.objects.get()
    assert (callback.status, callback.last_response_status) == (CallbackStatus.WAITING, None)
