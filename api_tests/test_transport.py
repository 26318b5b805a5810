"""What goes on the wire: each request as its hook says, and nothing libcurl would add.

Every case sends to the real receiver on 127.0.0.1 and looks at what arrived.
"""

import gc
import os
import resource
import select
import socket
import ssl
import sys
import threading
import time
import warnings
from types import SimpleNamespace

import pycurl
import pytest
import trustme
from django.conf import settings as django_settings
from django.db import connection
from django.test import override_settings

from http_hooks import transport
from http_hooks.api import send_callbacks
from http_hooks.delivery import request as outgoing
from http_hooks.delivery import run_loop
from http_hooks.exceptions import InvalidTargetURLError, TransportError
from http_hooks.models import Attempt, Callback, Hook
from http_hooks.network import check_target_url
from http_hooks.transport import Request, Transport, ascii_url
from shop.models import Order

from .receiver import Receiver
from .waiting import wait_until

pytestmark = pytest.mark.django_db


def hooks_settings(**overrides):
    return override_settings(HTTP_HOOKS={**django_settings.HTTP_HOOKS, **overrides})


def test_a_request_carries_only_the_headers_it_is_given(make_hook, receiver):
    """No Accept, no Expect: 100-continue for a large body, no form Content-Type."""
    make_hook(
        payload_template='{"note": "{{ instance.name }}", "pad": "' + "x" * 5000 + '"}',
        content_type="",
        secret="",
    )
    Order.objects.create(name="Tea")
    assert send_callbacks().sent == 1
    (request,) = receiver.requests
    assert set(request.headers) == {
        "host",
        "user-agent",
        "accept-encoding",
        "content-length",
        "webhook-id",
        "webhook-timestamp",
    }
    assert request.body == Callback.objects.get().payload.encode()
    assert len(request.body) > 5000


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "GET"])
def test_every_method_sends_the_payload(make_hook, receiver, method):
    make_hook(http_method=method, content_type="application/json")
    Order.objects.create(name="Tea")
    assert send_callbacks().sent == 1
    (request,) = receiver.requests
    assert request.method == method
    assert request.json()["object_serialization"]["name"] == "Tea"
    assert request.headers["content-type"] == "application/json"


def test_a_request_without_a_payload_sends_no_body(make_hook, receiver):
    make_hook(http_method="GET")
    Order.objects.create(name="Tea")
    Callback.objects.update(payload="")
    assert send_callbacks().sent == 1
    (request,) = receiver.requests
    assert request.method == "GET"
    assert request.body == b""
    assert "content-length" not in request.headers


def test_header_values_arrive_as_given(make_hook, receiver):
    make_hook(headers={"X-Empty": "", "X-Spaces": "  ", "X-Name": "café", "X-Colon": "a: b"})
    Order.objects.create(name="Tea")
    assert send_callbacks().sent == 1
    headers = receiver.requests[0].headers
    assert headers["x-empty"] == ""
    assert headers["x-spaces"] == ""
    assert headers["x-name"] == "café"
    assert headers["x-colon"] == "a: b"


def test_a_hook_header_replaces_ours_whatever_its_case(make_hook, receiver):
    make_hook(headers={"user-agent": "shop/1.0", "ACCEPT-ENCODING": "gzip"})
    Order.objects.create(name="Tea")
    assert send_callbacks().sent == 1
    headers = receiver.requests[0].headers
    assert headers["user-agent"] == "shop/1.0"
    assert headers["accept-encoding"] == "gzip"


def test_a_non_ascii_path_is_percent_encoded(make_hook, receiver):
    make_hook(target_url=receiver.url("/hooks/bücher?q=ü"))
    Order.objects.create(name="Tea")
    assert send_callbacks().sent == 1
    assert receiver.requests[0].path == "/hooks/b%C3%BCcher"


def test_proxies_from_the_environment_are_not_used(make_hook, receiver, monkeypatch):
    """Where a request goes is decided by its hook alone."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, nowhere)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    make_hook()
    Order.objects.create(name="Tea")
    assert send_callbacks().sent == 1
    assert len(receiver.requests) == 1


def test_one_bad_request_does_not_stop_the_batch(make_hook, receiver):
    broken = make_hook()
    make_hook()
    Order.objects.create(name="a")
    first = Callback.objects.get(hook=broken)
    # A host name IDNA cannot encode (a label longer than 63 characters), written
    # around validation: a try goes to the hook's URL as it is now.
    Hook.objects.filter(pk=broken.pk).update(target_url=f"http://{'ü' * 70}.example/hook")
    report = send_callbacks()
    assert (report.sent, report.retried) == (1, 1)
    assert Attempt.objects.get(callback=first).error.startswith("invalid request: ")
    assert len(receiver.requests) == 1


def test_each_request_is_signed_as_it_goes_out(make_hook, receiver, monkeypatch):
    """A request that waited for a free connection does not carry the batch's start time."""
    clock = SimpleNamespace(now=1_900_000_000.0)
    monkeypatch.setattr(outgoing, "time", SimpleNamespace(time=lambda: clock.now))
    hold = threading.Event()
    receiver.respond("/slow", hold=hold)
    make_hook(target_url=receiver.url("/slow"))
    make_hook(target_url=receiver.url("/fast"))
    Order.objects.create(name="Tea")

    def release_slow_a_minute_later() -> None:
        receiver.wait_for(1, timeout=60)
        clock.now += 60
        hold.set()

    releaser = threading.Thread(target=release_slow_a_minute_later, daemon=True)
    releaser.start()
    try:
        with hooks_settings(CONCURRENCY=1, TIMEOUT=(5.0, 60.0)):
            assert send_callbacks().sent == 2
    finally:
        hold.set()
    slow, fast = receiver.requests
    assert (slow.path, fast.path) == ("/slow", "/fast")
    assert slow.headers["webhook-timestamp"] == "1900000000"
    assert fast.headers["webhook-timestamp"] == "1900000060"


def test_oversized_response_headers_fail_the_try(make_hook, receiver):
    receiver.respond(headers={"X-Big": "a" * 70_000})
    make_hook()
    Order.objects.create(name="Tea")
    report = send_callbacks()
    attempt = Attempt.objects.get()
    assert report.retried == 1
    assert attempt.error == "response headers too large (more than 65536 bytes)"
    assert len(str(attempt.response_headers)) <= 65536


def test_one_header_past_libcurls_limit_fails_the_try_with_a_message(make_hook, receiver):
    """libcurl gives no message for its error 100: the try says what kind it was."""
    receiver.respond(headers={"X-Big": "a" * 200_000})
    make_hook()
    Order.objects.create(name="Tea")
    assert send_callbacks().retried == 1
    attempt = Attempt.objects.get()
    assert attempt.error.startswith("connection error: "), attempt.error
    assert attempt.error.removeprefix("connection error: ").strip(), attempt.error


def test_nul_characters_in_a_response_are_logged_replaced(make_hook, receiver):
    """A lying receiver's NUL characters are logged as U+FFFD (PostgreSQL's text and
    JSON hold no NUL): in the body; a header with one fails the try (libcurl refuses
    it), and the header parser replaces them in names and values alike."""
    receiver.respond(body=b"a\x00b")
    receiver.respond("/header", headers=[("X-N\x00ame", "v\x00al")])
    body_hook = make_hook()
    header_hook = make_hook(target_url=receiver.url("/header"))
    Order.objects.create(name="Tea")
    report = send_callbacks()
    assert (report.sent, report.retried) == (1, 1)
    assert Attempt.objects.get(callback__hook=body_hook).response_body == "a\ufffdb"
    assert Attempt.objects.get(callback__hook=header_hook).error
    raw = b"HTTP/1.1 200 OK\r\nX-N\x00ame: v\x00al\r\nX-N\x00ame: 2\r\n\r\n"
    assert transport.parse_response_headers(raw) == {"X-N\ufffdame": "v\ufffdal, 2"}


def test_an_error_while_in_flight_leaves_the_transport_usable(receiver):
    """An error raised while transfers are in flight gives the connections back."""
    hold = threading.Event()
    receiver.respond(hold=hold)
    receiver.respond("/fast")
    request = Request("POST", receiver.url(), {}, b"{}")

    def request_at(index):
        # The first one ends (and fails to be recorded) while the second is held.
        return Request("POST", receiver.url("/fast"), {}, b"{}") if index == 0 else request

    def recording_fails(index, outcome):
        raise RuntimeError("database gone")

    with Transport(concurrency=2) as transport:
        with pytest.raises(RuntimeError, match="database gone"):
            transport.send_all(3, request_at, on_done=recording_fails)
        hold.set()
        outcomes = transport.send_all(2, lambda index: request)
    assert [outcome.status_code for outcome in outcomes] == [200, 200]


class CountingPoller(transport.Poller):
    """The transport's poller, counting its waits."""

    waits = 0

    def poll(self, timeout):
        CountingPoller.waits += 1
        return super().poll(timeout)


@pytest.mark.parametrize("epoll", [True, False], ids=["epoll", "poll"])
def test_a_negative_wait_does_not_block(monkeypatch, epoll):
    """As with ``selectors``: a wait already past returns at once (epoll and poll
    themselves would wait for ever)."""
    if not epoll:
        monkeypatch.delattr(select, "epoll")
    poller = transport.Poller()
    returned = threading.Event()
    waiter = threading.Thread(target=lambda: (poller.poll(-1.0), returned.set()), daemon=True)
    waiter.start()
    assert returned.wait(5), "poll(-1.0) blocked"
    poller.close()


def test_without_epoll_the_transport_waits_on_poll(make_hook, receiver, monkeypatch):
    """macOS has no epoll: the same transfers, timers and timeouts on poll()."""
    monkeypatch.delattr(select, "epoll")
    assert transport.Poller().epoll is None
    receiver.respond(path="/slow", delay=0.3)
    receiver.respond(path="/hang", delay=5.0)
    make_hook()
    make_hook(target_url=receiver.url("/slow"))
    make_hook(target_url=receiver.url("/hang"))
    Order.objects.create(name="Tea")
    with hooks_settings(TIMEOUT=(5.0, 1.0)):
        report = send_callbacks()
    assert (report.sent, report.retried) == (2, 1)
    assert "read timeout" in Callback.objects.get(target_url=receiver.url("/hang")).status_details


def test_sockets_numbered_above_1024_are_waited_on_not_spun_on(make_hook, receiver, monkeypatch):
    """select() cannot watch descriptors past 1024; the sender must neither spin nor stall."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the open-files limit ({hard}) is below 1200")
    monkeypatch.setattr(transport, "Poller", CountingPoller)
    hold = threading.Event()
    receiver.respond(hold=hold)
    waits_while_held = []

    def watch_the_held_batch() -> None:
        """With the 4 requests held, a sender that waits wakes a few times in half a
        second; one that spins, thousands of times, however loaded the machine."""
        try:
            receiver.wait_for(4, timeout=60)
            before = CountingPoller.waits
            time.sleep(0.5)
            waits_while_held.append(CountingPoller.waits - before)
        finally:
            hold.set()

    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    fillers = []
    try:
        while not fillers or fillers[-1] < 1100:
            fillers.append(os.dup(0 if os.isatty(0) else sys.stderr.fileno()))
        make_hook()
        for name in "abcd":
            Order.objects.create(name=name)
        watcher = threading.Thread(target=watch_the_held_batch, daemon=True)
        watcher.start()
        with hooks_settings(CONCURRENCY=4, HOOK_CONCURRENCY=4, TIMEOUT=(5.0, 60.0)):
            assert send_callbacks().sent == 4  # no stall: woken as the answers come
        watcher.join(timeout=60)
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert CountingPoller.waits > 0, "the transport waited on another poller"
    assert waits_while_held[0] < 50, f"{waits_while_held[0]} waits in 0.5 s: spinning"


def test_international_host_names_follow_uts46():
    assert ascii_url("https://faß.de/hook") == "https://xn--fa-hia.de/hook"
    assert (
        ascii_url("https://bücher.example:8443/a b") == "https://xn--bcher-kva.example:8443/a%20b"
    )
    with pytest.raises(InvalidTargetURLError, match="invalid host name"):
        check_target_url(f"https://{'ü' * 70}.example/hook")


def test_an_address_passed_over_for_an_allowed_one_is_no_error(settings):
    """libcurl tries the next address of a name after a refused one."""
    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, "BLOCK_PRIVATE_NETWORKS": True}
    with Transport(concurrency=1) as transport:
        slot = transport.slots[0]
        slot.start(0, Request("POST", "http://two-addresses.example/hook", {}, b""))
        refused = SimpleNamespace(
            addr=("10.0.0.1", 80), family=socket.AF_INET, socktype=socket.SOCK_STREAM, protocol=0
        )
        assert slot.on_open_socket(0, refused) == pycurl.SOCKET_BAD
        assert "two-addresses.example (10.0.0.1)" in slot.blocked
        assert slot.on_connected("93.184.216.34", "192.0.2.1", 80, 40000) == pycurl.PREREQFUNC_OK
        assert slot.blocked == ""
        assert slot.on_connected("10.0.0.1", "192.0.2.1", 80, 40000) == pycurl.PREREQFUNC_ABORT


def test_a_stall_after_the_headers_is_a_read_timeout(make_hook, receiver):
    """The read timeout counts from the last bytes received, headers included."""
    receiver.respond(stall=True)  # headers and one byte, then nothing until the test ends
    make_hook()
    Order.objects.create(name="Tea")
    # 2 s: time enough for the receiver's thread to answer the headers on a loaded machine.
    with hooks_settings(TIMEOUT=(5.0, 2.0)):
        send_callbacks()
    attempt = Attempt.objects.get()
    assert attempt.error == "read timeout (2 s)"
    assert attempt.response_status == 200


def test_a_closed_transport_refuses_to_send(receiver):
    transport = Transport(concurrency=1)
    transport.close()
    with pytest.raises(RuntimeError, match="closed"):
        transport.send_all(1, lambda index: Request("POST", receiver.url(), {}, b""))


def _failing_once(monkeypatch, error: Exception | None = None):
    """The next transfer fails to start as libcurl's multi interface can (an internal
    error), or with ``error``."""
    original = Transport.start
    failures = [error or TransportError("the HTTP transport failed: (11) internal")]

    def start(self, *args, **kwargs):
        if failures:
            raise failures.pop()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Transport, "start", start)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "error",
    [None, RuntimeError("a bug")],
    ids=["failed_transport", "unexpected_error"],
)
def test_the_loop_worker_survives_a_failed_run(make_hook, receiver, monkeypatch, caplog, error):
    """A run that fails, for a transport libcurl gave up on or for a bug, is logged and
    the worker goes on: the callback in flight goes out once its lease ends."""
    _failing_once(monkeypatch, error)
    make_hook()
    Order.objects.create(name="Tea")
    stop = threading.Event()
    reports = []

    def on_report(report):
        reports.append(report)
        stop.set()

    def work():
        try:
            run_loop(stop=stop, on_report=on_report)
        finally:
            connection.close()  # the worker thread's own connection

    with hooks_settings(LEASE_SECONDS=1, LOOP_MIN_SLEEP=0.1, LOOP_MAX_SLEEP=0.2):
        worker = threading.Thread(target=work)
        worker.start()
        worker.join(timeout=60)
    stop.set()
    assert not worker.is_alive()
    assert [r.sent for r in reports] == [1]
    assert len(receiver.requests) == 1
    assert Callback.objects.get().status == "sent"
    failures = [r for r in caplog.records if r.name == "http_hooks.delivery.loop"]
    assert len(failures) == 1 and failures[0].exc_info


def test_a_failed_transport_is_a_503_in_the_api(make_hook, receiver, staff_client, monkeypatch):
    _failing_once(monkeypatch)
    make_hook()
    Order.objects.create(name="Tea")
    response = staff_client.post("/api/callbacks/send/", {}, format="json")
    assert response.status_code == 503
    assert response.json()["code"] == "transport_error"
    assert Callback.objects.get().status == "sending"


def _established_to(ports: set[int]) -> int:
    """Open TCP connections of this process whose far end is one of ``ports``.

    Only this process's sockets: a port number is reused by later receivers,
    and another process (a parallel test worker) may still hold a kept-alive
    connection to an earlier receiver that had the same number.
    """
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed since listed
            continue
        if target.startswith("socket:["):
            mine.add(target[len("socket:[") : -1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                remote, state, inode = fields[2], fields[3], fields[9]
                count += (
                    state == "01" and inode in mine and int(remote.rsplit(":", 1)[1], 16) in ports
                )
    return count


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux's /proc/net/tcp")
def test_idle_connections_kept_are_bounded():
    """A worker that meets many receivers keeps at most 2 x CONCURRENCY idle connections."""
    servers = [Receiver().start() for _ in range(5)]
    try:
        with Transport(concurrency=1) as transport:
            for server in servers:
                request = Request("POST", server.url(), {}, b"{}")
                (outcome,) = transport.send_all(1, lambda index, request=request: request)
                assert outcome.status_code == 200
            assert _established_to({server.port for server in servers}) <= 2
    finally:
        for server in servers:
            server.stop()


def test_sockets_opened_for_libcurl_are_closed_not_left_to_the_collector(receiver):
    """libcurl works on its own copy of each socket the transport opens for it; the
    transport's copy is closed at once, for a refused connection too, not left
    for the garbage collector to find unclosed (a ResourceWarning per connection)."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{unused.getsockname()[1]}/"
    requests = [Request("POST", receiver.url(), {}, b"{}"), Request("POST", refused, {}, b"")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Transport(concurrency=2) as sender:
            outcomes = sender.send_all(2, requests.__getitem__)
            gc.collect()
    assert outcomes[0].status_code == 200
    assert outcomes[1].status_code is None and "connect" in outcomes[1].error.lower()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []


def _held_up(until: float) -> None:
    """The sender's thread held up between two polls (a claim or an outcome write
    waiting on a database lock) until ``until``: the stall is what is under test."""
    time.sleep(max(0.0, until - time.monotonic()))


def _poll_until_idle(transport: Transport) -> dict:
    outcomes: dict = {}
    deadline = time.monotonic() + 60
    while transport.busy:
        assert time.monotonic() < deadline, "the transfers never ended"
        outcomes.update(transport.poll(1.0))
    return outcomes


@pytest.mark.parametrize("connections", ["new", "kept-alive"])
def test_an_answer_that_arrived_while_the_sender_was_held_up_counts(receiver, connections):
    """The requests went out and were answered while the sender's thread was held up
    past their whole try's deadline: the answers, there to be read, count. libcurl
    checked its deadline before reading them: the tries were failed ("the response
    did not arrive within 0.5 s") and retried, the receiver had each twice."""
    hold = threading.Event()
    request = Request("POST", receiver.url(), {}, b"{}")
    with hooks_settings(TIMEOUT=(0.2, 0.3)), Transport(concurrency=4) as transport:
        if connections == "kept-alive":
            assert transport.send_all(4, lambda index: request)[0].status_code == 200
            kept = {received.client_port for received in receiver.requests}
            wait_until(lambda: receiver.handled == 4)
            receiver.clear()
        receiver.respond(hold=hold)
        started = time.monotonic()
        for index in range(4):
            assert transport.start(index, request) is None
        ended = []
        wait_until(
            lambda: ended.extend(transport.poll(0.05)) or ended or len(receiver.requests) == 4
        )
        assert ended == []
        hold.set()
        wait_until(lambda: receiver.handled == 4)
        _held_up(started + 1.0)
        outcomes = _poll_until_idle(transport)
    assert [(outcomes[i].status_code, outcomes[i].error) for i in range(4)] == [(200, "")] * 4
    ports = {received.client_port for received in receiver.requests}
    assert len(ports) == 4
    if connections == "kept-alive":
        assert ports == kept


def test_a_request_held_up_half_sent_goes_out_and_counts(receiver):
    """A wait of the sender's thread between polls, beyond an ordinary pass of its
    loop, is not counted against the whole try: a request it held up half-sent
    goes out after it and its answer counts. Counted, the try was failed once the
    rest had gone out, and the retry sent the request again."""
    reading = threading.Event()
    receiver.respond(read_hold=reading)
    body = b"x" * (16 << 20)  # more than the socket buffers hold while nothing is read
    with hooks_settings(TIMEOUT=(1.0, 1.0)), Transport(concurrency=1) as transport:
        transport.start(0, Request("POST", receiver.url(), {}, body))
        started = time.monotonic()
        curl = transport.running[0].curl
        ended = []
        wait_until(
            lambda: (
                ended.extend(transport.poll(0.05)) or ended or curl.getinfo(pycurl.SIZE_UPLOAD_T)
            )
        )
        assert ended == [] and 0 < curl.getinfo(pycurl.SIZE_UPLOAD_T) < len(body)
        reading.set()
        _held_up(started + 3.0)
        (outcome,) = _poll_until_idle(transport).values()
    assert (outcome.status_code, outcome.error) == (200, "")
    assert len(receiver.wait_for(1)[0].body) == len(body)


def test_a_late_answer_is_failed_at_the_whole_try_deadline(receiver):
    """Headers and a byte after 1.05 s, then nothing: the try ends at its whole-try
    deadline (2.1 s), not at its read deadline (3.05 s), however long the poll may wait."""
    receiver.respond(stall=True, delay=1.05)
    with hooks_settings(TIMEOUT=(0.1, 2.0)), Transport(concurrency=1) as transport:
        transport.start(0, Request("POST", receiver.url(), {}, b"{}"))
        (outcome,) = _poll_until_idle(transport).values()
    assert outcome.error == "the response body did not arrive within 2.1 s"
    assert 2100 <= outcome.duration_ms < 2800


def test_a_slow_loop_stretches_a_try_by_its_own_bound_at_most(receiver):
    """A receiver trickling its body, and every pass of the sender's loop held up
    half a second: of each gap only COUNTED_GAP counted, so the try (0.5 + 0.5 s)
    ran about ten times its bound, and its error still said "within 1 s". The
    time not counted stops at the try's own bound: it ends after 2 s, and says so."""
    receiver.respond(trickle=0.05)
    with hooks_settings(TIMEOUT=(0.5, 0.5)), Transport(concurrency=1) as transport:
        transport.start(0, Request("POST", receiver.url(), {}, b"{}"))
        started = time.monotonic()
        slot = transport.running[0]
        ended = []
        wait_until(lambda: ended.extend(transport.poll(0.05)) or ended or slot.connected)
        while not ended:
            assert time.monotonic() < started + 30, "the try never ended"
            ended = transport.poll(0.05)
            _held_up(time.monotonic() + 0.5)
    ((_, outcome),) = ended
    assert outcome.error == (
        "the response body did not arrive within 1 s"
        " (nor in the 1.0 s more while the sender was held up)"
    )
    assert 2000 <= outcome.duration_ms < 3500


@pytest.fixture
def hung_url():
    """A URL on 127.0.0.1 whose connects hang: the listener's queue is full (one
    connection, never accepted), so the kernel drops their SYNs unanswered."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.connect(listener.getsockname())
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"


@pytest.fixture
def tls_receiver(tmp_path):
    """An HTTPS receiver, and the CA bundle that trusts it."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = Receiver(tls=context).start()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    yield server, str(bundle)
    server.stop()


@pytest.mark.skipif(not transport.CONNECT_TIMED_IN_POLL, reason="libcurl times the connect")
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_connect_completed_while_the_sender_was_held_up_goes_on(receiver, tls_receiver, scheme):
    """The sender's thread was held up past the connect timeout once the connect had
    begun, and the connection (the TLS handshake too) could complete meanwhile: the
    request goes out and its answer counts. libcurl timed the connect, before it
    looked at the socket: the try failed ("connect timeout"), a mark on the hook's
    health and a retry for a receiver that had answered at once."""
    server, bundle = (receiver, "") if scheme == "http" else tls_receiver
    with (
        hooks_settings(TIMEOUT=(0.5, 1.0), CA_BUNDLE=bundle),
        Transport(concurrency=1) as transport,
    ):
        transport.start(0, Request("POST", server.url(), {}, b"{}"))
        started = time.monotonic()
        slot = transport.running[0]
        assert transport.poll(0) == []
        assert slot.opened and not slot.connected  # the connect has begun
        _held_up(started + 1.5)
        (outcome,) = _poll_until_idle(transport).values()
    assert (outcome.status_code, outcome.error) == (200, "")
    assert len(server.requests) == 1


def test_a_hung_connect_fails_at_the_connect_timeout(hung_url):
    """libcurl's own connect timeout is far (twice the whole try) where ``poll``
    times the connect: a connect that hangs while the sender is not held up still
    ends at the connect timeout, however long the poll may wait."""
    with hooks_settings(TIMEOUT=(0.3, 2.0)), Transport(concurrency=1) as transport:
        transport.start(0, Request("POST", hung_url, {}, b"{}"))
        (outcome,) = _poll_until_idle(transport).values()
    assert (outcome.status_code, outcome.error) == (None, "connect timeout (0.3 s)")
    assert 300 <= outcome.duration_ms < 800


@pytest.mark.skipif(not transport.CONNECT_TIMED_IN_POLL, reason="libcurl times the connect")
def test_a_connect_seen_only_past_its_deadline_sends_nothing():
    """The sender's thread held up between the start of a try and its first poll (where
    the connect begins), then past the connect deadline and all the time ``due`` does
    not count: libcurl's far connect timeout, counted from the connect's beginning,
    had not run out. The request went out in the poll that then failed the try ("the
    response did not arrive within 1 s"), to be sent again by its retry."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
        with hooks_settings(TIMEOUT=(0.5, 0.5)), Transport(concurrency=1) as transport:
            transport.start(0, Request("POST", url, {}, b"{}"))
            started = time.monotonic()
            _held_up(started + 0.9)
            assert transport.poll(0) == []
            assert transport.running[0].opened  # the connect has begun
            _held_up(started + 2.5)
            (outcome,) = _poll_until_idle(transport).values()
        connection, _ = listener.accept()
        with connection:
            assert connection.recv(65536) == b""  # closed, nothing sent
    assert (outcome.status_code, outcome.error) == (
        None,
        "connect timeout (0.5 s) (nor in the 1.0 s more while the sender was held up)",
    )


def test_a_kept_alive_connection_has_no_connect_deadline(receiver):
    """A try on a kept-alive connection whose first poll came past the connect timeout
    (a busy pass of the loop, each gap short of COUNTED_GAP): it has no connect to time,
    and goes out. It failed as "connect timeout", and so did each retry while the loop
    stayed busy (seen in CI: a hook's tries failing twelve times in a row)."""
    url = receiver.url("/hook")
    with hooks_settings(TIMEOUT=(0.05, 5.0)), Transport(concurrency=1) as transport:
        transport.start(0, Request("POST", url, {}, b"{}"))
        (first,) = _poll_until_idle(transport).values()
        transport.start(1, Request("POST", url, {}, b"{}"))
        busy_until = time.monotonic() + 0.09
        while time.monotonic() < busy_until:  # busy, not held up: the time counts
            pass
        (second,) = _poll_until_idle(transport).values()
    assert (first.status_code, second.status_code, second.error) == (200, 200, "")
    assert len(receiver.requests) == 2


@pytest.mark.skipif(not transport.CONNECT_TIMED_IN_POLL, reason="libcurl times the connect")
def test_libcurls_far_connect_timeout_reports_the_configured_one(hung_url):
    """A hung connect, the sender's thread held up past twice the whole try: libcurl's
    far connect timeout ran out first, and the error gave it ("connect timeout (1 s)"),
    a timeout no setting has."""
    with hooks_settings(TIMEOUT=(0.2, 0.3)), Transport(concurrency=1) as transport:
        transport.start(0, Request("POST", hung_url, {}, b"{}"))
        started = time.monotonic()
        assert transport.poll(0) == []
        _held_up(started + 1.5)
        (outcome,) = _poll_until_idle(transport).values()
    assert outcome.error == (
        "connect timeout (0.2 s) (nor in the 0.5 s more while the sender was held up)"
    )


def test_a_dead_first_address_of_a_name_is_passed_over_within_the_connect_timeout(receiver):
    """A name with two addresses, the first one's connects hanging: the second is
    tried and answers within the connect timeout. libcurl paces a name's addresses by
    its own connect timeout before 8.18 (half of it to the first), which is why it
    stays libcurl's there, not the far one it gets where ``poll`` times the connect."""
    port = receiver.port
    with socket.socket() as listener, socket.socket() as filler:
        try:
            listener.bind(("127.0.0.2", port))
        except OSError:
            pytest.skip("no 127.0.0.2 on this machine")
        listener.listen(0)
        filler.connect(listener.getsockname())
        with hooks_settings(TIMEOUT=(2.0, 1.0)), Transport(concurrency=1) as transport:
            transport.idle[-1].curl.setopt(
                pycurl.RESOLVE, [f"hooks.test:{port}:127.0.0.2,127.0.0.1"]
            )
            transport.start(0, Request("POST", f"http://hooks.test:{port}/hook", {}, b"{}"))
            (outcome,) = _poll_until_idle(transport).values()
    assert (outcome.status_code, outcome.error) == (200, "")
    assert outcome.duration_ms < 1500
    assert len(receiver.requests) == 1
