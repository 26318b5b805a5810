"""The HTTP side of delivery: many requests at once over keep-alive connections.

Why libcurl (pycurl) and not ``requests``: a webhook sender spends its time
in the HTTP client, and libcurl's multi interface runs every transfer of a
batch from one thread with the HTTP work done in C. Against a fast receiver a
try costs about a tenth of the CPU it costs through urllib3 (``requests``'
own engine) in a thread pool, so one sender process keeps up with thousands
of deliveries a second (``bench/delivery.py``). Pooling, keep-alive, TLS and
timeouts are libcurl's.

What a try may do is decided here and by the hook alone:

- Nothing comes from the environment: no proxies, no .netrc, no cookies.
- Redirects are not followed, and only http and https are spoken.
- The address policy (``network.check_address``) is applied to every address
  libcurl is about to connect to, before the socket is opened, so a forbidden
  address is never connected to; and again, before any byte is sent, to the
  peer of the connection the request goes out on (new or reused).
- Certificates are verified against ``CA_BUNDLE`` or certifi's bundle.
- Timeouts: connecting may take the connect timeout; after that, each wait
  for the next bytes (of the request going out or the response coming in) the
  read timeout; and a whole try never lasts longer than both together, so a
  receiver trickling one byte a second cannot hold a transfer for hours.
  That is the receiver's time, not the sender's: when the sender's thread is
  held up between two ``poll()`` calls (a claim or an outcome write waiting
  on a database lock), what arrived meanwhile is read before any deadline is
  checked, so an answer that came is not failed for having waited to be read,
  and the wait, beyond what an ordinary pass of the sender's loop takes
  (``COUNTED_GAP``), is not counted against a whole try, so a request it held
  up half-sent goes out and is answered, instead of being failed once sent
  and then sent again; up to the try's own bound, so that a try never lasts
  longer than twice it however slow the loop. The connect is timed the same
  way, so one that completed meanwhile goes on to send (and one seen only past
  its deadline sends nothing: the try would fail once sent); but with libcurl
  older than 8.18 (``CONNECT_TIMED_IN_POLL``) it is libcurl's to time, and
  libcurl checks its deadline before it reads what arrived.
- Response headers beyond 64 KB fail the try; libcurl's connection cache keeps
  at most twice ``CONCURRENCY`` idle connections.
- At most ``RESPONSE_BODY_LIMIT`` bytes of a body are read. When a longer body
  comes, reading stops there and that connection is closed (it cannot be
  reused mid-body); the status code counts as it came, so a 2xx with a big
  page is a success, logged with its first ``RESPONSE_BODY_LIMIT`` bytes.

The transport is driven step by step: ``start()`` puts a request on a free
handle, ``poll()`` moves the transfers and returns those that ended, so the
sender records each outcome and refills the freed handle as it goes, instead
of waiting for a whole batch.
"""

from __future__ import annotations

import math
import os
import re
import select
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit, urlunsplit

import certifi
import pycurl

from .exceptions import (
    BlockedNetworkError,
    InvalidHeadersError,
    InvalidTargetURLError,
    TransportError,
)
from .network import ascii_host, check_address, is_blocked_address
from .settings import hooks_settings

# libcurl's errors that mean a TLS handshake or certificate failed.
# A stored URL libcurl will not take (``file://``, written around validation).
INVALID_REQUEST_ERRORS = frozenset({pycurl.E_UNSUPPORTED_PROTOCOL, pycurl.E_URL_MALFORMAT})
TLS_ERRORS = frozenset({35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91, 98})
# What libcurl wants to know of a socket, as poll events (POLL_REMOVE: nothing); the
# values are poll's and epoll's alike.
READABLE, WRITABLE = select.POLLIN, select.POLLOUT
SOCKET_EVENTS = {
    pycurl.POLL_IN: READABLE,
    pycurl.POLL_OUT: WRITABLE,
    pycurl.POLL_INOUT: READABLE | WRITABLE,
}
# Response headers kept at most; a receiver sending more fails the try (libcurl
# itself holds at most 300 KB of them per transfer).
HEADER_LIMIT = 64 * 1024
# Headers libcurl adds on its own unless told not to; a request carries only ours.
SUPPRESSED_HEADERS = ("Accept", "Expect", "Content-Type")
# Seconds of a gap between two ``poll()`` calls counted against the whole tries in
# flight: an ordinary pass of the sender's loop takes milliseconds; the rest of a
# longer gap is its thread held up elsewhere, none of the receivers' time.
COUNTED_GAP = 0.1
# From libcurl 8.18 on, a name's addresses are tried a happy-eyeballs delay apart
# whatever the connect timeout, which only ends them all; older versions give the
# first of several addresses half of it before the next is tried, so with a far one a
# dead first address would take all of ours. There the connect is libcurl's to time.
CONNECT_TIMED_IN_POLL = pycurl.version_info()[2] >= 0x081200


class Request(NamedTuple):
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    # ``header_lines(headers)``, when the maker of the request has them already.
    lines: Sequence[bytes] | None = None


@dataclass
class Outcome:
    """The result of one HTTP try, as it will be logged in an Attempt."""

    status_code: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""
    error: str = ""
    duration_ms: int = 0
    request_headers: dict[str, str] = field(default_factory=dict)
    # The request could not be made from what is stored (a hook written around
    # validation): retried, since the hook may be mended meanwhile, but no try of the
    # receiver's, so no mark on its health.
    invalid: bool = False

    @property
    def ok(self) -> bool:
        return not self.error and self.status_code is not None and 200 <= self.status_code < 300


# Every control character but TAB: C0 (CR and LF too), DEL and C1.
_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# The same but CR and LF, which end header lines (a CR alone is looked for apart).
_CONTROLS_BUT_LINE_ENDS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` without NUL characters, which PostgreSQL text and JSON cannot store."""
    return text.replace("\x00", "\ufffd")


def one_line(text: str) -> str:
    """``text`` with each control character (TAB apart) as U+FFFD: what a receiver
    puts in a header or an error reaches the sender's log and an operator's
    terminal, where an escape sequence would rewrite the screen."""
    return _CONTROLS.sub("\ufffd", text)


def header_lines(headers: Mapping[str, str], *, defaults: bool = True) -> list[bytes]:
    """``headers`` as libcurl takes them (Latin-1, as HTTP carries them); an empty
    value is sent as such (``Name;``), and libcurl's own defaults are left out (unless
    not ``defaults``: lines to add to others that leave them out already)."""
    lines = [f"{name}: {value}" if value.strip() else f"{name};" for name, value in headers.items()]
    if defaults:
        present = {name.lower() for name in headers}
        lines += [f"{name}:" for name in SUPPRESSED_HEADERS if name.lower() not in present]
    return [line.encode("latin-1") for line in lines]


def ascii_url(url: str) -> str:
    """``url`` as it goes on the wire: an international host name in IDNA (UTS #46,
    as browsers do), other non-ASCII characters percent-encoded (UTF-8)."""
    if url.isascii():
        return url
    parts = urlsplit(url)
    netloc = ascii_host(parts.hostname or "")
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    safe = "/%:@!$&'()*+,;=~?[]"
    return urlunsplit(
        (
            parts.scheme,
            netloc,
            quote(parts.path, safe=safe),
            quote(parts.query, safe=safe),
            quote(parts.fragment, safe=safe),
        )
    )


class _Slot:
    """One libcurl handle and the state of the transfer it carries."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.key: Any = None
        # Header lines go straight into this buffer and are parsed once, at the end.
        self.raw_headers = bytearray()
        # The sockets handed to libcurl, which works on a copy of each (pycurl dups
        # the descriptor): ours are closed once it has the copy, not left unclosed.
        self.opened: list[socket.socket] = []
        self.curl = curl = pycurl.Curl()
        self.reset()
        curl.slot = self  # type: ignore[attr-defined]
        for option, value in transport.handle_options:
            curl.setopt(option, value)
        curl.setopt(pycurl.HEADERFUNCTION, self.raw_headers.extend)
        curl.setopt(pycurl.WRITEFUNCTION, self.on_body)
        curl.setopt(pycurl.OPENSOCKETFUNCTION, self.on_open_socket)
        curl.setopt(pycurl.PREREQFUNCTION, self.on_connected)

    def reset(self) -> None:
        self.close_opened()
        self.url = ""
        self.started = self.activity = self.away = 0.0
        self.connected = self.too_large = False
        self.blocked = self.error = ""
        del self.raw_headers[:]
        self.progress = 0
        self.body = bytearray()

    def start(self, key: Any, request: Request) -> None:
        self.reset()
        self.key = key
        self.url = request.url
        curl = self.curl
        curl.setopt(pycurl.URL, ascii_url(request.url))
        curl.setopt(pycurl.HTTPHEADER, request.lines or header_lines(request.headers))
        if request.body or request.method != "GET":
            curl.setopt(pycurl.POSTFIELDS, request.body)
        else:
            curl.setopt(pycurl.HTTPGET, 1)
        curl.setopt(pycurl.CUSTOMREQUEST, request.method)
        self.started = self.activity = now = time.monotonic()
        self.away = now - self.transport.clock(now)

    def close_opened(self) -> None:
        while self.opened:
            self.opened.pop().close()

    def moved(self, now: float) -> bool:
        """True when request bytes went out or header bytes came in since the last
        look; either counts as activity for the read timeout (body bytes count in
        ``on_body``). Looked at on every pass of the loop, after every socket event."""
        progress = len(self.raw_headers) + self.curl.getinfo(pycurl.SIZE_UPLOAD_T)
        if progress == self.progress:
            return False
        self.progress, self.activity = progress, now
        return True

    def refuses(self, address: str) -> bool:
        """True (and the reason kept) when the address policy forbids ``address``."""
        if not (self.transport.block_private and is_blocked_address(address)):
            return False
        try:
            check_address(address, host=urlsplit(self.url).hostname or "")
        except BlockedNetworkError as exc:
            self.blocked = str(exc)
        return True

    # libcurl's callbacks; they run inside ``socket_action()``, in the sender's thread.

    def on_open_socket(self, purpose: int, address: Any) -> socket.socket | int:
        if self.refuses(address.addr[0]):
            return pycurl.SOCKET_BAD
        opened = socket.socket(address.family, address.socktype, address.protocol)
        self.opened.append(opened)
        return opened

    def on_connected(self, peer: str, local: str, peer_port: int, local_port: int) -> int:
        # A socket of this try's own: a new connection, not a kept-alive one reused.
        connected_anew = bool(self.opened)
        self.close_opened()
        if self.connected:
            # A second request in one transfer: the kept-alive connection the first went
            # out on closed before any byte of an answer, and libcurl would send it
            # again on a new one, unseen. The receiver may have had the first (it read
            # it, then closed), so that would be a duplicate without an attempt of its
            # own: the try fails instead, and the retry is a try of its own, logged.
            self.error = (
                "connection error: the receiver closed a kept-alive connection without "
                "answering; the request may have arrived, so it is not sent again in this try"
            )
            return pycurl.PREREQFUNC_ABORT
        if self.refuses(peer):
            return pycurl.PREREQFUNC_ABORT
        # An address refused before may have been passed over for an allowed one.
        self.blocked = ""
        transport = self.transport
        if connected_anew and time.monotonic() >= transport.due(self, transport.connect_timeout):
            # Connected past the connect deadline, seen only now (the sender's thread
            # held up longer than ``due`` allows, libcurl's far timeout not yet run out):
            # sent, the request would be failed in this very poll, and sent again. A
            # kept-alive connection has no connect to time: a busy pass of the loop
            # before the try's first poll failed it, again at each retry.
            self.error = transport.late_connect(self)
            return pycurl.PREREQFUNC_ABORT
        self.connected = True
        self.activity = time.monotonic()
        return pycurl.PREREQFUNC_OK

    def on_body(self, data: bytes) -> int | None:
        self.activity = time.monotonic()
        self.body += data
        if len(self.body) > self.transport.body_limit:
            self.too_large = True
            return 0  # aborts the transfer
        return None

    def outcome(self, errno: int, message: str) -> Outcome:
        transport = self.transport
        code = self.curl.getinfo(pycurl.RESPONSE_CODE) if self.connected else 0
        headers = parse_response_headers(self.raw_headers[:HEADER_LIMIT])
        outcome = Outcome(
            # An interim answer (100 Continue) that no final one followed is no response.
            status_code=code if code >= 200 else None,
            response_headers=headers,
            response_body=printable(
                self.body[: transport.body_limit].decode("utf-8", errors="replace")
            ),
            duration_ms=int((time.monotonic() - self.started) * 1000),
        )
        if errno == pycurl.E_WRITE_ERROR and self.too_large:
            # Reading stopped on purpose at the body limit: the status code counts.
            errno = 0
        if errno and self.blocked:
            outcome.error = self.blocked
        elif self.error:
            outcome.error = self.error
        elif errno:
            outcome.error = transport.describe(self, errno, message)
            # libcurl gives E_UNSUPPORTED_PROTOCOL for a response it cannot read too (an
            # unknown HTTP version, HTTP/0.9, a status that is no number): only a try
            # that never connected is the request's fault, not the receiver's.
            outcome.invalid = errno in INVALID_REQUEST_ERRORS and not self.connected
        elif len(self.raw_headers) > HEADER_LIMIT:
            outcome.error = f"response headers too large (more than {HEADER_LIMIT} bytes)"
        elif (line := malformed_status_line(self.raw_headers[:HEADER_LIMIT])) is not None:
            # libcurl reads "HTTP/1.1 2000" as 200 and "HTTP/2 200" on an HTTP/1.1
            # connection as 200: a status it made up is no answer to count.
            outcome.status_code = None
            outcome.error = f"invalid response: malformed status line {line!r}"
        else:
            outcome.error = status_error(code, headers)
        outcome.error = one_line(outcome.error)
        return outcome


def parse_response_headers(raw: bytes | bytearray) -> dict[str, str]:
    """The headers of the last response in ``raw`` (after any 1xx), each name and
    value ``one_line``; a repeated name's values are joined with ", "."""
    headers: dict[str, str] = {}
    text = raw.decode("latin-1")
    # Lines as a receiver that keeps to HTTP sends them go as they are.
    if _CONTROLS_BUT_LINE_ENDS.search(text) or text.count("\r") != text.count("\r\n"):
        text = "\n".join(one_line(line.removesuffix("\r")) for line in text.split("\n"))
    for line in text.split("\n"):
        if line.startswith("HTTP/"):
            headers = {}
        elif ":" in line:
            name, value = line.split(":", 1)
            value = value.strip()
            old = headers.get(name)
            headers[name] = value if old is None else f"{old}, {value}"
    return headers


# The status line of an HTTP/1.x response (RFC 9112, section 4), its reason phrase
# and the space before it optional, as many servers leave them out.
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] [0-9]{3}(?: [^\r\n]*)?\r?")


def malformed_status_line(raw: bytes | bytearray) -> str | None:
    """The last status line of ``raw`` (the final response's, after any 1xx) when it
    is not an HTTP/1.x status line, else None."""
    start = raw.rfind(b"\nHTTP/") + 1  # 0 when the first line is the last status line
    end = raw.find(b"\n", start)
    line = bytes(raw[start : end if end >= 0 else len(raw)])
    if not line.startswith(b"HTTP/") or _STATUS_LINE.fullmatch(line):
        return None
    return line.decode("latin-1").rstrip("\r")[:100]


def status_error(code: int, headers: Mapping[str, str]) -> str:
    """The error of a response that arrived whole: "" for a 2xx."""
    if 200 <= code < 300:
        return ""
    if 300 <= code < 400:
        location = next((v for k, v in headers.items() if k.lower() == "location"), "")
        return f"HTTP {code}: redirect to {location or '(no Location)'} not followed"
    return f"HTTP {code}"


def curl_action(mask: int) -> int:
    """What ``socket_action`` is told of a socket poll reported with ``mask``: an
    error or a hang-up wakes both directions, as ``selectors`` does, and libcurl
    finds out which way it failed."""
    action = 0
    if mask & ~WRITABLE:
        action |= pycurl.CSELECT_IN
    if mask & ~READABLE:
        action |= pycurl.CSELECT_OUT
    return action


class Poller:
    """``select.epoll``, or ``select.poll`` where there is none (macOS), behind one
    interface: ``poll(seconds)`` returns ``(fd, mask)`` pairs."""

    def __init__(self) -> None:
        epoll = getattr(select, "epoll", None)
        self.epoll = epoll() if epoll is not None else None
        self.poller = self.epoll or select.poll()
        self.register = self.poller.register
        self.modify = self.poller.modify
        self.unregister = self.poller.unregister

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        """The sockets ready within ``timeout`` seconds; a negative one is 0, as for
        ``selectors`` (epoll and poll would wait for ever)."""
        timeout = max(timeout, 0.0)
        if self.epoll is not None:
            return self.epoll.poll(timeout)
        # In whole milliseconds, rounded up: rounded down, a wait for libcurl's timer
        # would come back early, again and again.
        return self.poller.poll(math.ceil(timeout * 1000))

    def close(self) -> None:
        if self.epoll is not None:
            self.epoll.close()


class Transport:
    """Up to ``CONCURRENCY`` transfers at once, on connections kept alive from
    one request to the next. One transport belongs to one thread."""

    def __init__(self, concurrency: int | None = None) -> None:
        self.connect_timeout = hooks_settings.connect_timeout
        self.read_timeout = hooks_settings.read_timeout
        # A whole try's own time; at most as much again is not counted for the
        # sender's thread held up (``due``): no try lasts longer than twice this.
        self.bound = self.connect_timeout + self.read_timeout
        # The connect is timed in ``poll`` too (``CONNECT_TIMED_IN_POLL``), on the
        # same clock as the whole try: one that completed while the sender's thread
        # was held up goes on to send instead of failing (libcurl checks its own
        # timeout before it looks at the socket). libcurl's then ends only a connect
        # not polled again until that long after it began (``describe``): far past
        # ours, which ``due`` puts off by the whole try's bound at most.
        self.curl_connect_timeout = (
            2 * self.bound if CONNECT_TIMED_IN_POLL else self.connect_timeout
        )
        self.body_limit = int(hooks_settings.RESPONSE_BODY_LIMIT)
        self.block_private = bool(hooks_settings.BLOCK_PRIVATE_NETWORKS)
        web = pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS
        self.handle_options: list[tuple[int, Any]] = [
            (pycurl.NOSIGNAL, 1),
            (pycurl.PROTOCOLS, web),
            (pycurl.REDIR_PROTOCOLS, web),
            (pycurl.FOLLOWLOCATION, 0),
            (pycurl.PROXY, ""),
            (pycurl.NETRC, pycurl.NETRC_IGNORED),
            (pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1),
            # No TIMEOUT_MS: the whole try is timed in ``poll``.
            (pycurl.CONNECTTIMEOUT_MS, int(self.curl_connect_timeout * 1000)),
            (pycurl.CAINFO, hooks_settings.CA_BUNDLE or certifi.where()),
            (pycurl.SSL_VERIFYPEER, 1),
            (pycurl.SSL_VERIFYHOST, 2),
        ]
        # libcurl's socket interface: it says which sockets to watch and when its
        # timer runs out, epoll (or poll, where there is no epoll) waits on them with
        # no limit on descriptor numbers (``select()`` stops at 1024), and each
        # ready socket goes back to libcurl through ``socket_action``. Used as they
        # are, not through ``selectors``: its bookkeeping, for a socket watched and
        # dropped on every request, cost more than the system calls.
        self.poller = Poller()
        self.watched: dict[int, int] = {}
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self.multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self.timer_at: float | None = None
        # The whole-try deadlines (``due``) are on a clock that stops while a gap
        # between two polls runs past COUNTED_GAP (``clock``): ``away`` is how long
        # it stood still before the last poll, which ended at ``looked_at`` and saw
        # no deadline of ours sooner than ``wake_at``.
        self.away = 0.0
        self.looked_at = time.monotonic()
        self.wake_at = math.inf
        size = int(concurrency or hooks_settings.CONCURRENCY)
        # Idle keep-alive connections kept, least recently used dropped first: a
        # worker that meets many receivers must not pile up open sockets.
        self.multi.setopt(pycurl.M_MAXCONNECTS, 2 * size)
        self.idle = [_Slot(self) for _ in range(size)]
        self.slots = list(self.idle)
        self.running: list[_Slot] = []

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self.slots:
            self.abandon()
        for slot in self.slots:
            slot.curl.close()
            slot.close_opened()
        self.multi.close()
        self.poller.close()
        self.idle, self.slots, self.running = [], [], []

    def _on_socket(self, what: int, fd: int, multi: Any, data: Any) -> None:
        events = SOCKET_EVENTS.get(what, 0)
        if self.watched.get(fd, 0) == events:
            return
        try:
            if not events:
                self.poller.unregister(fd)
            elif fd in self.watched:
                self.poller.modify(fd, events)
            else:
                self.poller.register(fd, events)
        except (KeyError, ValueError, OSError):
            # The poller and libcurl disagreed (a descriptor closed and reused):
            # start this descriptor afresh.
            with suppress(KeyError, ValueError, OSError):
                self.poller.unregister(fd)
            if events:
                self.poller.register(fd, events)
        if events:
            self.watched[fd] = events
        else:
            self.watched.pop(fd, None)

    def _on_timer(self, milliseconds: int) -> None:
        self.timer_at = None if milliseconds < 0 else time.monotonic() + milliseconds / 1000

    def clock(self, now: float) -> float:
        """``now`` (between polls) on the clock of the whole-try deadlines:
        ``time.monotonic()`` less the gaps between polls beyond COUNTED_GAP."""
        return now - self.away - max(0.0, now - self.looked_at - COUNTED_GAP)

    @property
    def free(self) -> int:
        """How many more transfers ``start()`` takes now."""
        return len(self.idle)

    @property
    def busy(self) -> int:
        """How many transfers are in flight."""
        return len(self.running)

    def start(self, key: Any, request: Request) -> Outcome | None:
        """Start ``request`` on a free handle; ``poll()`` returns its outcome under ``key``.

        A request that cannot be made (a bad URL, a header libcurl refuses)
        takes no handle: its failed outcome is returned at once.
        """
        if not self.slots:
            raise RuntimeError("the transport is closed")
        slot = self.idle[-1]
        try:
            slot.start(key, request)
        except (ValueError, InvalidTargetURLError, InvalidHeadersError, pycurl.error) as exc:
            return Outcome(error=f"invalid request: {exc}", invalid=True)
        try:
            self.multi.add_handle(slot.curl)
        except pycurl.error as exc:
            raise TransportError(f"the HTTP transport failed: {exc}") from exc
        self.running.append(self.idle.pop())
        connected_by = slot.started + self.connect_timeout
        if connected_by < self.wake_at:
            self.wake_at = connected_by
        return None

    def poll(self, timeout: float) -> list[tuple[Any, Outcome]]:
        """Move the transfers in flight, waiting at most ``timeout`` seconds for
        their sockets; return ``(key, outcome)`` of each transfer that ended."""
        if not self.running:
            return []
        ended: list[tuple[Any, Outcome]] = []
        multi = self.multi

        def finish(slot: _Slot, errno: int = 0, message: str = "") -> None:
            multi.remove_handle(slot.curl)
            slot.close_opened()
            self.running.remove(slot)
            self.idle.append(slot)
            ended.append((slot.key, slot.outcome(errno, message)))

        try:
            now = time.monotonic()
            self.away = now - self.clock(now)
            # Every ready socket goes to libcurl before any deadline of ours is
            # checked: after a long gap, what arrived meanwhile is read first.
            for fd, mask in self.poller.poll(min(timeout, self._wait(now))):
                multi.socket_action(fd, curl_action(mask))
            if self.timer_at is not None and time.monotonic() >= self.timer_at:
                self.timer_at = None
                multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
            while True:
                queued, succeeded, failed = multi.info_read()
                for curl in succeeded:
                    finish(curl.slot)
                for curl, errno, message in failed:
                    finish(curl.slot, errno, message)
                if not queued:
                    break
            now = time.monotonic()
            # The deadlines are compared in line: a ``min()`` call per slot costs
            # several times as much, on every poll.
            read, bound, wake = self.read_timeout, self.bound, math.inf
            connect = self.connect_timeout
            for slot in list(self.running):
                if slot.connected:
                    due = self.due(slot, bound)
                    if now >= due:
                        slot.error = self.overdue(slot)
                    elif slot.moved(now) or now - slot.activity < read:
                        if slot.activity + read < due:
                            due = slot.activity + read
                        if due < wake:
                            wake = due
                        continue
                    else:
                        slot.error = f"read timeout ({read:g} s)"
                else:
                    due = self.due(slot, connect)
                    if now < due:
                        if due < wake:
                            wake = due
                        continue
                    slot.error = self.late_connect(slot)
                finish(slot)
            self.looked_at, self.wake_at = now, wake
        except pycurl.error as exc:
            raise TransportError(f"the HTTP transport failed: {exc}") from exc
        return ended

    def abandon(self) -> None:
        """Drop the transfers in flight (their outcomes are never known) and
        give their handles back, so that the transport serves the next run."""
        for slot in self.running:
            with suppress(pycurl.error):
                self.multi.remove_handle(slot.curl)
            self.idle.append(slot)
        self.running = []
        for fd in list(self.watched):  # none, unless libcurl left one behind
            self._on_socket(pycurl.POLL_REMOVE, fd, self.multi, None)

    def send_all(
        self,
        count: int,
        request_at: Callable[[int], Request],
        *,
        on_done: Callable[[int, Outcome], Any] | None = None,
    ) -> list[Outcome]:
        """Send ``count`` requests concurrently; return their outcomes in order.

        ``request_at(index)`` makes each request as its transfer starts (so
        that it is signed when it goes out); ``on_done(index, outcome)`` is
        called as each try ends.
        """
        if not self.slots:
            raise RuntimeError("the transport is closed")
        outcomes: list[Outcome | None] = [None] * count
        next_request = 0
        try:
            while next_request < count or self.running:
                while self.free and next_request < count:
                    index, next_request = next_request, next_request + 1
                    try:
                        failed = self.start(index, request_at(index))
                    except (ValueError, InvalidTargetURLError, InvalidHeadersError) as exc:
                        # A request that cannot be made (a hook's stored headers, say).
                        failed = Outcome(error=f"invalid request: {exc}", invalid=True)
                    if failed is not None:
                        outcomes[index] = failed
                        if on_done:
                            on_done(index, failed)
                for index, outcome in self.poll(1.0):
                    outcomes[index] = outcome
                    if on_done:
                        on_done(index, outcome)
        finally:
            # Left by an error (in ``on_done``, say): the handles go back.
            self.abandon()
        return outcomes  # type: ignore[return-value]

    def _wait(self, now: float) -> float:
        """How long to wait for sockets: until libcurl's timer or the soonest
        deadline the last poll saw (``wake_at``; the time the sender is held up
        since only puts the deadlines off)."""
        soonest = now + 1.0
        if self.wake_at < soonest:
            soonest = self.wake_at
        if self.timer_at is not None and self.timer_at < soonest:
            soonest = self.timer_at
        return max(soonest - now, 0.0)

    def due(self, slot: _Slot, limit: float) -> float:
        """When the try on ``slot`` has had ``limit`` seconds of its own: the time
        the sender's thread was held up meanwhile (``clock``) is not counted, up
        to ``bound`` seconds, so however slow the loop a try ends within twice
        its bound (a receiver trickling bytes, with every pass of the loop past
        COUNTED_GAP, would otherwise hold it without limit)."""
        held = self.away - slot.away
        return slot.started + limit + (held if held < self.bound else self.bound)

    def held_up(self, slot: _Slot, limit: float) -> str:
        """What the error of a try past its ``limit`` adds for the time it was given
        beyond, the sender's thread held up: "" when none."""
        held = self.due(slot, limit) - slot.started - limit
        if held < 0.05:
            return ""
        return f" (nor in the {held:.1f} s more while the sender was held up)"

    def late_connect(self, slot: _Slot) -> str:
        """The error of a try not connected by its connect deadline (``due``)."""
        connect = self.connect_timeout
        return f"connect timeout ({connect:g} s){self.held_up(slot, connect)}"

    def overdue(self, slot: _Slot) -> str:
        """The error of a try past its whole-try deadline."""
        what = "response body" if slot.curl.getinfo(pycurl.RESPONSE_CODE) >= 200 else "response"
        return f"the {what} did not arrive within {self.bound:g} s{self.held_up(slot, self.bound)}"

    def describe(self, slot: _Slot, errno: int, message: str) -> str:
        """A short, readable error for a try libcurl gave up on."""
        if errno == pycurl.E_OPERATION_TIMEDOUT:
            # libcurl's only timeout, CONNECTTIMEOUT_MS. Set far, it runs out only
            # once the sender's thread was held up past our own connect deadline.
            if CONNECT_TIMED_IN_POLL:
                return self.late_connect(slot)
            return f"connect timeout ({self.connect_timeout:g} s)"
        # libcurl leaves its message empty for some errors (a response header too
        # large, error 100): its text for the code says at least what kind.
        message = message or pycurl.easy_strerror(errno)
        if errno in TLS_ERRORS:
            return f"TLS error: {message}"
        if errno in INVALID_REQUEST_ERRORS:
            return f"invalid {'response' if slot.connected else 'request'}: {message}"
        os_errno = slot.curl.getinfo(pycurl.OS_ERRNO)
        if os_errno and errno == pycurl.E_COULDNT_CONNECT:
            return f"connection error: {os.strerror(os_errno)} ({message})"
        return f"connection error: {message}"
