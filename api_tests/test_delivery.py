"""Sending callbacks over real HTTP: outcomes, retries, the attempt log, pooling, batches.

Every case runs against the real receiver on 127.0.0.1 (or a real TLS server,
or a port nobody listens on), misbehaving the way the case says.
"""

import datetime
import logging
import re
import socket
import ssl
import threading

import pytest
import trustme
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from http_hooks.api import delete_hook, send_callbacks
from http_hooks.delivery import MASKED, count_due, sender
from http_hooks.exceptions import InvalidFilterError
from http_hooks.models import Attempt, Callback
from http_hooks.tasks import send_listed_callbacks
from shop.models import Order

from .receiver import Receiver

pytestmark = pytest.mark.django_db

FAST = {"TIMEOUT": (1.0, 0.5), "RETRY_JITTER": 0.0, "RETRY_SCHEDULE": [60, 600]}


def hooks_settings(**overrides):
    from django.conf import settings

    return override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, **FAST, **overrides})


def one_callback(make_hook, **hook_kwargs) -> Callback:
    make_hook(**hook_kwargs)
    Order.objects.create(name="Tea")
    return Callback.objects.get()


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


@pytest.fixture
def tls_ca():
    return trustme.CA()


@pytest.fixture
def tls_receiver(tls_ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("127.0.0.1").configure_cert(context)
    server = Receiver(tls=context).start()
    yield server
    server.stop()


# --- outcomes --------------------------------------------------------------------


def test_2xx_marks_the_callback_sent_with_the_status_code(make_hook, receiver):
    receiver.respond(status=202)
    one_callback(make_hook)
    report = send_callbacks()
    callback = Callback.objects.get()
    assert (report.sent, report.retried, report.failed) == (1, 0, 0)
    assert callback.status == "sent"
    assert "202" in callback.status_details
    assert callback.last_response_status == 202
    assert callback.attempts == 1
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        pytest.param({"status": 500}, "HTTP 500", id="server-error"),
        pytest.param({"status": 404}, "HTTP 404", id="not-found"),
        pytest.param({"reset": True}, "reset", id="connection-reset"),
        pytest.param({"delay": 2.0}, "read timeout (0.5 s)", id="timeout"),
        pytest.param({"status": 500, "body": b"x" * 1025}, "HTTP 500", id="oversized-error"),
        pytest.param({"status": 503, "endless": True}, "HTTP 503", id="endless-error"),
        pytest.param({"trickle": 0.05}, "did not arrive within 1.5 s", id="trickling-body"),
    ],
)
def test_a_failed_try_is_logged_and_retried_on_schedule(make_hook, receiver, behaviour, error):
    receiver.respond(**behaviour)
    callback = one_callback(make_hook)
    with hooks_settings(RESPONSE_BODY_LIMIT=1024):
        started = timezone.now()
        report = send_callbacks()
        finished = timezone.now()
    callback.refresh_from_db()
    (attempt,) = Attempt.objects.all()
    assert (report.sent, report.retried, report.failed) == (0, 1, 0)
    assert error in attempt.error
    assert error in callback.status_details
    assert callback.status == "waiting"
    assert callback.attempts == 1
    retry = datetime.timedelta(seconds=60)  # the schedule's first wait, without jitter
    assert started + retry <= callback.next_attempt_at <= finished + retry
    assert callback.claimed_until is None
    assert callback.update_datetime >= started


@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param({"body": b"<html>" + b"x" * 5000}, id="large-page"),
        pytest.param({"endless": True}, id="endless"),
    ],
)
def test_a_2xx_with_a_body_past_the_limit_is_a_success(make_hook, receiver, behaviour):
    """The status counts; the first RESPONSE_BODY_LIMIT bytes are logged, the rest is not
    read, and that connection is closed (the next try comes on a new one)."""
    receiver.respond(**behaviour)
    make_hook()
    Order.objects.create(name="Tea")
    with hooks_settings(RESPONSE_BODY_LIMIT=1024, CONCURRENCY=1):
        report = send_callbacks()
        assert (report.sent, report.retried, report.failed) == (1, 0, 0)
        Order.objects.create(name="Coffee")
        assert send_callbacks().sent == 1
    first, _ = Attempt.objects.order_by("pk")
    assert (first.response_status, first.error) == (200, "")
    assert len(first.response_body) == 1024
    assert set(Callback.objects.values_list("status", flat=True)) == {"sent"}
    ports = [request.client_port for request in receiver.wait_for(2)]
    assert ports[0] != ports[1]


def test_an_endless_body_never_holds_the_sender(make_hook, receiver):
    receiver.respond(trickle=0.05)
    one_callback(make_hook)
    with hooks_settings(TIMEOUT=(0.5, 0.5)):
        send_callbacks()  # the receiver would trickle for 30 s
    assert "did not arrive within 1 s" in Attempt.objects.get().error


def test_connection_refused_is_a_failed_try(make_hook, receiver):
    one_callback(make_hook, target_url=refused_url())
    with hooks_settings():
        report = send_callbacks()
    assert report.retried == 1
    assert "Connection refused" in Attempt.objects.get().error
    assert Callback.objects.get().status == "waiting"


def test_a_redirect_is_not_followed(make_hook, receiver):
    receiver.respond("/old", redirect_to=receiver.url("/new"))
    one_callback(make_hook, target_url=receiver.url("/old"))
    report = send_callbacks()
    attempt = Attempt.objects.get()
    assert report.retried == 1
    assert [r.path for r in receiver.requests] == ["/old"]
    assert attempt.response_status == 302
    assert attempt.error == f"HTTP 302: redirect to {receiver.url('/new')} not followed"


def test_a_receiver_cannot_put_control_characters_in_the_log_or_the_attempt(
    make_hook, receiver, caplog
):
    """Escape sequences in a receiver's headers (a redirect's ``Location`` is quoted in
    the error that is logged) would rewrite the screen of an operator reading the log."""
    escape = "\x1b]0;owned\x07\x1b[1A\x1b[2K\x1b[32msent OK\x1b[0m\x9b8m"
    receiver.respond(status=302, headers={"Location": f"http://x/{escape}", "X-Note": escape})
    one_callback(make_hook, target_url=receiver.url())
    with caplog.at_level(logging.INFO, logger="http_hooks"):
        send_callbacks()
    attempt = Attempt.objects.get()
    shown = "\ufffd]0;owned\ufffd\ufffd[1A\ufffd[2K\ufffd[32msent OK\ufffd[0m\ufffd8m"
    assert attempt.error == f"HTTP 302: redirect to http://x/{shown} not followed"
    assert attempt.response_headers["X-Note"] == shown
    assert Callback.objects.get().status_details.startswith(attempt.error)
    logged = [r.getMessage() for r in caplog.records if "attempt 1 failed" in r.getMessage()]
    assert logged and shown in logged[0]
    assert not re.search("[\x00-\x08\x0a-\x1f\x7f-\x9f]", "".join(logged))


def test_an_untrusted_tls_certificate_is_a_failed_try(make_hook, tls_receiver):
    one_callback(make_hook, target_url=tls_receiver.url())
    report = send_callbacks()
    assert report.retried == 1
    assert "TLS error" in Attempt.objects.get().error
    assert "unable to get local issuer certificate" in Attempt.objects.get().error
    assert tls_receiver.requests == []


def test_a_certificate_from_the_configured_ca_bundle_is_trusted(
    make_hook, tls_receiver, tls_ca, tmp_path
):
    bundle = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(bundle))
    one_callback(make_hook, target_url=tls_receiver.url())
    with hooks_settings(CA_BUNDLE=str(bundle)):
        report = send_callbacks()
    assert report.sent == 1
    assert len(tls_receiver.requests) == 1


def test_a_certificate_of_the_trusted_ca_for_another_host_is_a_failed_try(
    make_hook, tls_ca, tmp_path
):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("example.org").configure_cert(context)
    server = Receiver(tls=context).start()
    bundle = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(bundle))
    one_callback(make_hook, target_url=server.url())
    try:
        with hooks_settings(CA_BUNDLE=str(bundle)):
            report = send_callbacks()
    finally:
        server.stop()
    assert report.retried == 1
    assert "TLS error" in Attempt.objects.get().error
    assert "no alternative certificate subject name matches" in Attempt.objects.get().error
    assert server.requests == []


def test_the_last_failed_try_sets_error(make_hook, receiver):
    receiver.respond(status=503)
    callback = one_callback(make_hook)
    with hooks_settings(MAX_ATTEMPTS=3):
        for expected_attempts in (1, 2):
            report = send_callbacks(ids=[callback.pk])
            assert report.retried == 1
            assert Callback.objects.get().attempts == expected_attempts
        report = send_callbacks(ids=[callback.pk])
    callback.refresh_from_db()
    assert report.failed == 1
    assert callback.status == "error"
    assert callback.status_details == "HTTP 503 (attempt 3 of 3)"
    assert list(Attempt.objects.values_list("number", flat=True)) == [1, 2, 3]


def test_max_attempts_1_is_the_old_one_try_then_error(make_hook, receiver):
    receiver.respond(status=500)
    one_callback(make_hook)
    with hooks_settings(MAX_ATTEMPTS=1):
        report = send_callbacks()
    assert (report.sent, report.retried, report.failed) == (0, 0, 1)
    assert Callback.objects.get().status == "error"


def test_retry_waits_follow_the_schedule_with_jitter(make_hook, receiver):
    receiver.respond(status=500)
    make_hook()
    for name in "abcdefghij":
        Order.objects.create(name=name)
    with hooks_settings(RETRY_SCHEDULE=[100], RETRY_JITTER=0.2):
        started = timezone.now()
        send_callbacks()
        ended = timezone.now()
    # Each wait counts from its own outcome, somewhere between the run's start and end.
    retries = list(Callback.objects.values_list("next_attempt_at", flat=True))
    earliest = started + datetime.timedelta(seconds=80)
    latest = ended + datetime.timedelta(seconds=120)
    assert all(earliest <= at <= latest for at in retries), retries
    assert len(set(retries)) > 1, "no jitter"


def test_a_callback_waiting_for_its_retry_is_not_sent_before_its_time(make_hook, receiver):
    receiver.respond(status=500)
    one_callback(make_hook)
    send_callbacks()
    receiver.respond(status=200)
    assert send_callbacks().total == 0
    Callback.objects.update(next_attempt_at=timezone.now())
    assert send_callbacks().sent == 1
    assert len(receiver.requests) == 2


# --- the attempt log -------------------------------------------------------------


def test_an_attempt_logs_the_request_with_secrets_masked_and_the_response(make_hook, receiver):
    receiver.respond(status=201, body=b'{"ok": true}', headers={"X-Receipt": "r-1"})
    one_callback(
        make_hook,
        content_type="application/json",
        headers={"Authorization": "Bearer hunter2", "X-Api-Key": "k", "X-Team": "shop"},
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
    send_callbacks()
    attempt = Attempt.objects.get()
    (request,) = receiver.requests
    assert request.headers["authorization"] == "Bearer hunter2"
    sent = attempt.request_headers
    assert sent["Authorization"] == MASKED
    assert sent["X-Api-Key"] == MASKED
    assert sent["webhook-signature"] == MASKED
    assert sent["X-Team"] == "shop"
    assert sent["Content-Type"] == "application/json"
    assert sent["webhook-id"] == request.headers["webhook-id"]
    assert "hunter2" not in str(sent)
    assert attempt.response_status == 201
    assert attempt.response_headers["X-Receipt"] == "r-1"
    assert attempt.response_body == '{"ok": true}'
    assert attempt.error == ""
    assert attempt.number == 1
    assert attempt.duration_ms >= 0


def test_an_attempt_keeps_the_first_response_body_limit_bytes(make_hook, receiver):
    receiver.respond(status=500, body=b"abc" * 1000)
    one_callback(make_hook)
    with hooks_settings(RESPONSE_BODY_LIMIT=100):
        send_callbacks()
    assert Attempt.objects.get().response_body == ("abc" * 1000)[:100]


def test_a_timed_out_attempt_logs_its_duration_and_no_status(make_hook, receiver):
    receiver.respond(delay=1.0)
    one_callback(make_hook)
    with hooks_settings():
        send_callbacks()
    attempt = Attempt.objects.get()
    assert attempt.response_status is None
    assert 450 <= attempt.duration_ms < 1500


# --- selection -------------------------------------------------------------------


def test_only_the_given_hooks_callbacks_are_sent(make_hook, receiver):
    first = make_hook(target_url=receiver.url("/first"))
    make_hook(target_url=receiver.url("/second"))
    Order.objects.create(name="Tea")
    report = send_callbacks(hook_id=first.pk)
    assert report.sent == 1
    assert [r.path for r in receiver.requests] == ["/first"]
    assert Callback.objects.filter(status="waiting").count() == 1


def test_listed_callbacks_are_sent_whatever_their_retry_time(make_hook, receiver):
    make_hook()
    orders = [Order.objects.create(name=name) for name in "abc"]
    Callback.objects.update(next_attempt_at=timezone.now() + datetime.timedelta(hours=1))
    wanted = list(
        Callback.objects.filter(object_id__in=[orders[0].pk, orders[2].pk]).values_list(
            "pk", flat=True
        )
    )
    assert send_callbacks().total == 0
    report = send_callbacks(ids=wanted)
    assert report.sent == 2
    assert sorted(r.json()["object_id"] for r in receiver.requests) == [
        orders[0].pk,
        orders[2].pk,
    ]


def test_a_queued_task_run_again_leaves_a_retry_to_its_schedule(make_hook, receiver):
    """Celery may deliver a task twice; the second run must not bring the retry forward."""
    receiver.respond(status=500)
    callback = one_callback(make_hook)
    with hooks_settings():
        assert send_listed_callbacks([callback.pk]) == {"sent": 0, "retried": 1, "failed": 0}
        assert send_listed_callbacks([callback.pk]) == {"sent": 0, "retried": 0, "failed": 0}
        assert send_callbacks(ids=[callback.pk], due_only=True).total == 0
    assert len(receiver.requests) == 1
    assert Callback.objects.get().attempts == 1


def test_an_unknown_hook_is_refused(make_hook):
    with pytest.raises(InvalidFilterError, match="no hook with id 999999"):
        send_callbacks(hook_id=999999)


def test_sent_and_error_callbacks_are_never_sent_again(make_hook, receiver):
    make_hook()
    Order.objects.create(name="a")
    Order.objects.create(name="b")
    first, second = Callback.objects.order_by("pk")
    Callback.objects.filter(pk=first.pk).update(status="sent")
    Callback.objects.filter(pk=second.pk).update(status="error")
    assert send_callbacks().total == 0
    assert send_callbacks(ids=[first.pk, second.pk]).total == 0
    assert receiver.requests == []


def test_callbacks_of_a_sender_whose_lease_expired_are_sent(make_hook, receiver):
    callback = one_callback(make_hook)
    Callback.objects.update(
        status="sending", claimed_until=timezone.now() - datetime.timedelta(seconds=1)
    )
    assert count_due() == 1
    assert send_callbacks().sent == 1
    assert receiver.requests[0].headers["webhook-id"] == str(callback.event_id)


def test_callbacks_claimed_by_a_live_sender_are_left_alone(make_hook, receiver):
    one_callback(make_hook)
    Callback.objects.update(
        status="sending", claimed_until=timezone.now() + datetime.timedelta(minutes=5)
    )
    assert count_due() == 0
    assert send_callbacks().total == 0
    assert receiver.requests == []


def test_callbacks_of_a_deleted_hook_are_dropped_not_sent(make_hook, receiver):
    """Another process may record an event for a hook deleted a moment ago."""
    gone = make_hook(target_url=receiver.url("/gone"))
    make_hook(target_url=receiver.url("/kept"))
    gone_pk = gone.pk
    delete_hook(gone)
    Order.objects.create(name="Tea")
    Callback.objects.bulk_create(
        [Callback(hook_id=gone_pk, target_url=receiver.url("/gone"), http_method="POST")]
    )
    report = send_callbacks()
    assert report.sent == 1
    assert [r.path for r in receiver.requests] == ["/kept"]
    assert not Callback.objects.filter(hook_id=gone_pk).exists()


# --- concurrency, pooling, bulk writes ---------------------------------------------


def test_callbacks_are_sent_concurrently(make_hook, receiver):
    """All 8 requests reach the receiver while it holds every one of them."""
    hold = threading.Event()
    receiver.respond(hold=hold)
    make_hook()
    for n in range(8):
        Order.objects.create(name=str(n))
    in_flight_together = []

    def release_when_all_arrived() -> None:
        try:
            receiver.wait_for(8, timeout=60)
            in_flight_together.append(True)
        finally:
            hold.set()

    releaser = threading.Thread(target=release_when_all_arrived, daemon=True)
    releaser.start()
    with hooks_settings(CONCURRENCY=8, HOOK_CONCURRENCY=8, TIMEOUT=(5.0, 60.0)):
        report = send_callbacks()
    releaser.join(timeout=60)
    assert report.sent == 8
    assert in_flight_together == [True], "the 8 tries were not in flight at once"


def test_connections_are_kept_alive_and_reused(make_hook, receiver):
    make_hook()
    for n in range(30):
        Order.objects.create(name=str(n))
    with hooks_settings(CONCURRENCY=2):
        assert send_callbacks().sent == 30
    ports = {r.client_port for r in receiver.requests}
    assert len(ports) <= 2, f"30 requests over {len(ports)} connections"


def test_outcomes_are_written_in_bulk_not_one_by_one(make_hook, receiver):
    """Outcomes are written a window at a time (an UPDATE per status group and the
    attempts in one INSERT), so the writes are far fewer than the callbacks."""
    make_hook()
    for n in range(200):
        Order.objects.create(name=str(n))
    with CaptureQueriesContext(connection) as queries:
        assert send_callbacks().sent == 200
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith(('UPDATE "http_hooks_callback" SET "status" = \'sent\'', "INSERT"))
    ]
    assert 2 <= len(writes) < 50, f"{len(writes)} writes for 200 outcomes"
    assert Attempt.objects.count() == 200


def test_callbacks_are_claimed_at_most_batch_size_at_a_time(make_hook, receiver, monkeypatch):
    make_hook()
    for n in range(7):
        Order.objects.create(name=str(n))
    claimed = []
    original = sender.claim_batch

    def claim_batch(**kwargs):
        batch = original(**kwargs)
        claimed.append(len(batch))
        return batch

    monkeypatch.setattr(sender, "claim_batch", claim_batch)
    done = []
    with hooks_settings(BATCH_SIZE=3):
        report = send_callbacks(progress=done.append)
    assert report.sent == 7
    assert sum(done) == 7
    assert sum(claimed) == 7
    assert len(claimed) >= 3
    assert max(claimed) == 3
    # What was claimed is claimed in the database: nothing is left ``sending``.
    assert not Callback.objects.filter(status="sending").exists()


def test_204_answers_are_successes_on_one_kept_alive_connection(make_hook, receiver):
    receiver.respond(status=204)
    make_hook()
    for n in range(3):
        Order.objects.create(name=str(n))
    with hooks_settings(CONCURRENCY=1):
        assert send_callbacks().sent == 3
    assert len({request.client_port for request in receiver.requests}) == 1
    assert set(Attempt.objects.values_list("response_status", flat=True)) == {204}
