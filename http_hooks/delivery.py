"""Sending callbacks: claim a batch, send it concurrently, record the outcome.

This is the one send function of the app: the ``send_callbacks`` command and
its ``--loop`` worker, the admin, the REST API and the Celery tasks all call
``send_callbacks()`` (or ``run_loop()``, which calls it over and over).

Why claims with a lease: any number of senders may run at once against one
database. A sender marks the callbacks it takes as ``sending`` with a claim
token of its own and a lease time; nobody else takes them while the lease
runs (the sender renews it while a batch is in flight), and if the sender dies
the lease expires and another sender takes them again. Delivery is therefore
at-least-once; the ``webhook-id`` header lets receivers drop duplicates.

Why no redirects: a redirect would send the payload, signed, to an address
nobody configured, around the network policy; a 3xx is a failed try that says
where it pointed.

Why urllib3 and not a ``requests.Session``: the pool, keep-alive, TLS and
timeouts are urllib3's either way, and requests' per-request layer (cookie
jars, hooks, header merging, Response objects), of no use here, took about two
thirds of the CPU of a delivery to a fast receiver (``bench/delivery.py``).

Why a total deadline: a read timeout bounds each socket read, so a
receiver trickling one byte a second would hold a worker for hours. Here a
try never lasts longer than the connect plus the read timeout, and at most
``RESPONSE_BODY_LIMIT`` bytes of a response are read. Receivers answer webhooks
with an acknowledgement, so a body longer than that limit is "too large": the
try fails (SPEC 7.2) and its first ``RESPONSE_BODY_LIMIT`` bytes are logged.
"""

from __future__ import annotations

import json
import logging
import operator
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import reduce
from typing import Any

import certifi
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from urllib3 import BaseHTTPResponse, HTTPHeaderDict, PoolManager, Timeout
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.exceptions import HTTPError as Urllib3Error

from .exceptions import BlockedNetworkError, InvalidFilterError
from .headers import parse_headers
from .models import Attempt, Callback, CallbackStatus, Hook
from .network import PolicyPoolManager
from .settings import hooks_settings
from .signing import signature_headers

logger = logging.getLogger(__name__)

TEST_EVENT_TYPE = "http_hooks.test"
MASKED = "********"
SECRET_HEADER_WORDS = ("authorization", "token", "secret", "key", "password", "cookie", "signature")
CALLBACK_RESULT_FIELDS = [
    "status",
    "status_details",
    "attempts",
    "next_attempt_at",
    "last_response_status",
    "claimed_until",
    "update_datetime",
]


@dataclass
class DeliveryReport:
    """What one run did, in counts only: it stays this small however many were sent."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    duration: float = 0.0

    @property
    def total(self) -> int:
        return self.sent + self.retried + self.failed

    @property
    def rate(self) -> float:
        return self.total / self.duration if self.duration > 0 else 0.0

    def add(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        self.duration += other.duration


@dataclass
class Outcome:
    """The result of one HTTP try, as it will be logged in an Attempt."""

    status_code: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""
    error: str = ""
    duration_ms: int = 0
    request_headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.error and self.status_code is not None and 200 <= self.status_code < 300


# --- the HTTP side ---------------------------------------------------------------


def build_pool() -> PoolManager:
    """Keep-alive connections to the receivers, ``CONCURRENCY`` per host.

    Connections check the network policy on the address they connect to.
    Certificates are verified against ``CA_BUNDLE``, or certifi's bundle (as
    ``requests`` does). Nothing comes from the environment (proxies, .netrc):
    where a request goes is decided by its hook alone.
    """
    return PolicyPoolManager(
        num_pools=100,
        maxsize=int(hooks_settings.CONCURRENCY),
        retries=False,
        cert_reqs="CERT_REQUIRED",
        ca_certs=hooks_settings.CA_BUNDLE or certifi.where(),
    )


def request_headers_for(callback: Callback, body: bytes) -> HTTPHeaderDict:
    """Every header the request sends but Host and Content-Length: ours, the
    callback's own, its Content-Type and the Standard Webhooks headers."""
    headers = HTTPHeaderDict(
        {
            "User-Agent": str(hooks_settings.USER_AGENT),
            # Bodies are only logged; uncompressed, RESPONSE_BODY_LIMIT limits the wire.
            "Accept-Encoding": "identity",
        }
    )
    headers.update(callback.headers or {})
    if callback.content_type:
        headers["Content-Type"] = callback.content_type
    headers.update(
        signature_headers(
            callback.hook.signing_secrets(), str(callback.event_id), int(time.time()), body
        )
    )
    return headers


def deliver(http: PoolManager, callback: Callback) -> Outcome:
    """One HTTP try of ``callback``; never raises, never touches the database."""
    body = (callback.payload or "").encode("utf-8")
    outcome = Outcome()
    started = time.monotonic()
    connect_timeout, read_timeout = hooks_settings.connect_timeout, hooks_settings.read_timeout
    try:
        headers = request_headers_for(callback, body)
        outcome.request_headers = mask_headers(headers)
        response = http.urlopen(
            callback.http_method,
            callback.target_url,
            body=body or None,
            headers=headers,
            timeout=Timeout(connect=connect_timeout, read=read_timeout),
            redirect=False,
            preload_content=False,
            decode_content=False,
        )
        try:
            outcome.status_code = response.status
            outcome.response_headers = {
                name: printable(response.headers[name]) for name in response.headers
            }
            raw_body, body_error = read_body(
                response, deadline=started + connect_timeout + read_timeout
            )
            outcome.response_body = printable(raw_body.decode("utf-8", errors="replace"))
            outcome.error = body_error or status_error(response)
        finally:
            response.close()
    except BlockedNetworkError as exc:
        outcome.error = str(exc)
    except Urllib3Error as exc:
        outcome.error = describe_error(exc)
    except Exception as exc:
        logger.exception(
            "callback %s of hook %s: unexpected error while sending", callback.pk, callback.hook_id
        )
        outcome.error = f"{type(exc).__name__}: {exc}"
    outcome.duration_ms = int((time.monotonic() - started) * 1000)
    return outcome


def read_body(response: BaseHTTPResponse, *, deadline: float) -> tuple[bytes, str]:
    """Read at most ``RESPONSE_BODY_LIMIT`` bytes of the body before ``deadline``.

    Returns the bytes read and an error ("" when the whole body arrived in
    time and within the limit). A completely read body hands its connection
    back to the pool for the next request; any other is closed.
    """
    limit = int(hooks_settings.RESPONSE_BODY_LIMIT)
    sock = getattr(response.connection, "sock", None)
    read_timeout = hooks_settings.read_timeout
    chunks: list[bytes] = []
    received = 0
    try:
        while received <= limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ReadTimeoutError(None, None, "deadline")  # type: ignore[arg-type]
            if sock is not None:
                sock.settimeout(min(remaining, read_timeout))
            chunk = response.read1(limit + 1 - received)
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
    except ReadTimeoutError:
        timeout = hooks_settings.connect_timeout + read_timeout
        return b"".join(chunks), f"the response body did not arrive within {timeout:g} s"
    except (Urllib3Error, OSError) as exc:
        return b"".join(chunks), f"reading the response body failed: {root_cause(exc)}"
    data = b"".join(chunks)
    if received > limit:
        return data[:limit], f"response body too large (more than {limit} bytes)"
    response.release_conn()
    return data, ""


def status_error(response: BaseHTTPResponse) -> str:
    """The error of a response that arrived whole: "" for a 2xx."""
    code = response.status
    if 200 <= code < 300:
        return ""
    if 300 <= code < 400:
        location = response.headers.get("Location", "")
        return f"HTTP {code}: redirect to {location or '(no Location)'} not followed"
    return f"HTTP {code}"


def describe_error(exc: Urllib3Error) -> str:
    """A short, readable error for a failed request (the innermost cause)."""
    if isinstance(exc, NewConnectionError):  # a ConnectTimeoutError subclass, for history
        return f"connection error: {root_cause(exc)}"
    if isinstance(exc, ConnectTimeoutError):
        return f"connect timeout ({hooks_settings.connect_timeout:g} s)"
    if isinstance(exc, ReadTimeoutError):
        return f"read timeout ({hooks_settings.read_timeout:g} s)"
    if isinstance(exc, SSLError):
        return f"TLS error: {root_cause(exc)}"
    return f"connection error: {root_cause(exc)}"


def root_cause(exc: BaseException) -> str:
    """The message of the innermost exception in urllib3's wrappers."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((a for a in reversed(exc.args) if isinstance(a, BaseException)), None)
        inner = inner or exc.__cause__
        if inner is None:
            break
        exc = inner
    return str(exc) or type(exc).__name__


def printable(text: str) -> str:
    """``text`` without NUL characters, which PostgreSQL text and JSON cannot store."""
    return text.replace("\x00", "\ufffd")


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers as logged in an Attempt: values of secret-looking names are masked."""
    return {
        name: MASKED
        if any(word in name.lower() for word in SECRET_HEADER_WORDS)
        else printable(str(value))
        for name, value in headers.items()
    }


# --- retries ---------------------------------------------------------------------


def retry_delay(attempts: int, *, max_attempts: int | None = None) -> float | None:
    """Seconds until the next try after ``attempts`` tries, or None when they are used up."""
    if attempts >= (max_attempts or int(hooks_settings.MAX_ATTEMPTS)):
        return None
    schedule = list(hooks_settings.RETRY_SCHEDULE)
    base = float(schedule[min(attempts - 1, len(schedule) - 1)])
    jitter = float(hooks_settings.RETRY_JITTER)
    return max(0.0, base * (1 + random.uniform(-jitter, jitter)))


# --- claims ----------------------------------------------------------------------


def _claimable(
    now: datetime, *, hook_id: int | None, callback_ids: Sequence[int] | None
) -> list[tuple[Q, str]]:
    """Where claimable callbacks are, each with the order to take them in.

    First the callbacks of a sender whose lease expired, then the due waiting
    ones, oldest due first (the ``callback_due_idx`` index serves that order).
    Listed callbacks are due whatever their retry time.
    """
    scope = Q()
    if hook_id is not None:
        scope &= Q(hook_id=hook_id)
    if callback_ids is not None:
        scope &= Q(pk__in=list(callback_ids))
    expired = Q(status=CallbackStatus.SENDING, claimed_until__lt=now)
    waiting = scope & Q(status=CallbackStatus.WAITING)
    if callback_ids is None:
        due = (waiting & Q(next_attempt_at__lte=now), "next_attempt_at")
    else:
        due = (waiting, "pk")
    return [(scope & expired, "claimed_until"), due]


def claim_batch(
    *, hook_id: int | None = None, callback_ids: Sequence[int] | None = None
) -> list[Callback]:
    """Take up to ``BATCH_SIZE`` claimable callbacks for this sender, exclusively.

    On databases with ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL) the
    candidates are locked, so concurrent senders take different rows without
    waiting for each other. Elsewhere (SQLite) the claiming ``UPDATE`` repeats
    the claimable condition in its ``WHERE``: of two senders that picked the
    same rows only the first one's update matches them, and the other picks
    again.
    """
    size = int(hooks_settings.BATCH_SIZE)
    token = uuid.uuid4()
    skip_locked = connection.features.has_select_for_update_skip_locked
    while True:
        now = timezone.now()
        conditions = _claimable(now, hook_id=hook_id, callback_ids=callback_ids)
        with transaction.atomic() if skip_locked else nullcontext():
            ids: list[int] = []
            for condition, order in conditions:
                candidates = Callback.objects.filter(condition).order_by(order)
                if skip_locked:
                    candidates = candidates.select_for_update(skip_locked=True)
                ids += candidates.values_list("pk", flat=True)[: size - len(ids)]
                if len(ids) >= size:
                    break
            if not ids:
                return []
            claimable = reduce(operator.or_, (condition for condition, _ in conditions))
            claimed = Callback.objects.filter(claimable, pk__in=ids).update(
                status=CallbackStatus.SENDING,
                claim_token=token,
                claimed_until=now + timedelta(seconds=int(hooks_settings.LEASE_SECONDS)),
            )
        if not claimed:
            continue
        claimed_now = Callback.objects.filter(pk__in=ids, claim_token=token)
        batch = list(claimed_now.select_related("hook").order_by("pk"))
        if len(batch) < claimed:
            delete_orphans(claimed_now.exclude(pk__in=[c.pk for c in batch]))
        if batch:
            return batch


def delete_orphans(callbacks: QuerySet[Callback]) -> None:
    """Delete callbacks whose hook is gone.

    ``Callback.hook`` has no database constraint (an event recorded by a
    process that has not yet seen the hook's deletion must not fail the
    user's transaction), so such rows can exist; they have nowhere to go.
    """
    orphans = list(callbacks.values_list("pk", "hook_id"))
    callbacks.delete()
    for pk, hook_id in orphans:
        logger.info("callback %s of deleted hook %s: deleted", pk, hook_id)


def renew_claims(batch: Sequence[Callback]) -> None:
    """Push the lease of a batch in flight forward, so that a live sender keeps it."""
    Callback.objects.filter(
        pk__in=[c.pk for c in batch],
        claim_token=batch[0].claim_token,
        status=CallbackStatus.SENDING,
    ).update(claimed_until=timezone.now() + timedelta(seconds=int(hooks_settings.LEASE_SECONDS)))


# --- recording -------------------------------------------------------------------


def apply_outcome(
    callback: Callback, outcome: Outcome, now: datetime, *, max_attempts: int | None = None
) -> None:
    """Set the callback's new state after one more try: sent, waiting for a retry, or error."""
    callback.attempts += 1
    callback.last_response_status = outcome.status_code
    callback.claimed_until = None
    callback.update_datetime = now
    if outcome.ok:
        callback.status = CallbackStatus.SENT
        callback.status_details = f"HTTP {outcome.status_code}"
        return
    limit = max_attempts or int(hooks_settings.MAX_ATTEMPTS)
    delay = retry_delay(callback.attempts, max_attempts=limit)
    if delay is None:
        callback.status = CallbackStatus.ERROR
        callback.status_details = f"{outcome.error} (attempt {callback.attempts} of {limit})"
    else:
        callback.status = CallbackStatus.WAITING
        callback.next_attempt_at = now + timedelta(seconds=delay)
        callback.status_details = (
            f"{outcome.error} (attempt {callback.attempts} of {limit}; "
            f"next try at {callback.next_attempt_at.isoformat(timespec='seconds')})"
        )
    logger.info(
        "callback %s of hook %s: attempt %s failed: %s",
        callback.pk,
        callback.hook_id,
        callback.attempts,
        outcome.error,
    )


def write_states(batch: Sequence[Callback], token: uuid.UUID | None, now: datetime) -> int:
    """Write the callbacks' new states; return how many rows this sender still held.

    Sent callbacks differ only in their status code, so they take one plain
    UPDATE per code; ``bulk_update`` (a CASE per row and field, slow on big
    batches) is kept for the failed ones, whose retry times all differ.
    """
    held = Callback.objects.filter(claim_token=token)
    sent: dict[tuple[str, int | None], list[int]] = defaultdict(list)
    failed = []
    for callback in batch:
        if callback.status == CallbackStatus.SENT:
            sent[callback.status_details, callback.last_response_status].append(callback.pk)
        else:
            failed.append(callback)
    updated = sum(
        held.filter(pk__in=pks).update(
            status=CallbackStatus.SENT,
            status_details=details,
            last_response_status=code,
            attempts=F("attempts") + 1,
            claimed_until=None,
            update_datetime=now,
        )
        for (details, code), pks in sent.items()
    )
    if failed:
        updated += held.bulk_update(failed, CALLBACK_RESULT_FIELDS)
    return updated


def record_outcomes(
    batch: Sequence[Callback],
    outcomes: Sequence[Outcome],
    report: DeliveryReport,
    *,
    max_attempts: int | None = None,
) -> list[Attempt]:
    """Write the callbacks' new state and their attempts, in bulk; count them in ``report``.

    Only callbacks this sender still holds are written. One whose lease ran out
    while it was being sent (the sender stalled for longer than
    ``LEASE_SECONDS``) may have been taken by another sender, and that
    sender's result is the one that counts.
    """
    now = timezone.now()
    token = batch[0].claim_token
    attempts = {}
    for callback, outcome in zip(batch, outcomes, strict=True):
        apply_outcome(callback, outcome, now, max_attempts=max_attempts)
        attempts[callback.pk] = Attempt(
            callback=callback,
            number=callback.attempts,
            attempted_at=now,
            duration_ms=outcome.duration_ms,
            request_headers=outcome.request_headers,
            response_status=outcome.status_code,
            response_headers=outcome.response_headers,
            response_body=outcome.response_body,
            error=printable(outcome.error),
        )
    with transaction.atomic():
        updated = write_states(batch, token, now)
        if updated < len(batch):
            held = set(
                Callback.objects.filter(pk__in=attempts, claim_token=token).values_list(
                    "pk", flat=True
                )
            )
            logger.warning(
                "%s callbacks were taken over by another sender after their lease expired "
                "(LEASE_SECONDS=%s); their results here are dropped: %s",
                len(batch) - len(held),
                hooks_settings.LEASE_SECONDS,
                sorted(set(attempts) - held),
            )
            attempts = {pk: attempt for pk, attempt in attempts.items() if pk in held}
        created = Attempt.objects.bulk_create(attempts.values())
    for callback in batch:
        if callback.pk in attempts:
            report.sent += callback.status == CallbackStatus.SENT
            report.retried += callback.status == CallbackStatus.WAITING
            report.failed += callback.status == CallbackStatus.ERROR
    return created


# --- running ---------------------------------------------------------------------


class Sender:
    """Keep-alive connections and ``CONCURRENCY`` workers, reused batch after batch
    (and poll after poll in loop mode)."""

    def __init__(self) -> None:
        self.http = build_pool()
        self.pool = ThreadPoolExecutor(
            max_workers=int(hooks_settings.CONCURRENCY), thread_name_prefix="http_hooks"
        )

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.pool.shutdown(wait=True)
        self.http.clear()

    def send(
        self,
        *,
        hook_id: int | None = None,
        callback_ids: Sequence[int] | None = None,
        progress: Callable[[int], Any] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> DeliveryReport:
        """Claim, send and record batch after batch until none is left or ``stop()``.

        Listed callbacks are due whatever their retry time, so each is tried
        once per run: a failed one is not claimed again straight away.
        """
        started = time.monotonic()
        report = DeliveryReport()
        untried = None if callback_ids is None else set(callback_ids)
        while not (stop and stop()) and untried != set():
            batch = claim_batch(hook_id=hook_id, callback_ids=untried)
            if not batch:
                break
            record_outcomes(batch, self.send_batch(batch, progress), report)
            if untried is not None:
                untried.difference_update(c.pk for c in batch)
        report.duration = time.monotonic() - started
        return report

    def send_batch(
        self, batch: Sequence[Callback], progress: Callable[[int], Any] | None = None
    ) -> list[Outcome]:
        """Send a claimed batch concurrently, renewing its lease while it is in flight."""
        futures = {self.pool.submit(deliver, self.http, cb): i for i, cb in enumerate(batch)}
        outcomes: list[Outcome] = [Outcome()] * len(batch)
        renew_every = int(hooks_settings.LEASE_SECONDS) / 3
        pending = set(futures)
        while pending:
            try:
                for future in as_completed(pending, timeout=renew_every):
                    pending.discard(future)
                    outcomes[futures[future]] = future.result()
                    if progress:
                        progress(1)
            except TimeoutError:
                renew_claims(batch)
        return outcomes


def send_callbacks(
    *,
    hook_id: int | None = None,
    callback_ids: Sequence[int] | None = None,
    progress: Callable[[int], Any] | None = None,
    stop: Callable[[], bool] | None = None,
) -> DeliveryReport:
    """Send every due callback (of one hook, or the listed ones, due or not); return counts.

    ``progress(n)`` is called as callbacks finish; ``stop()`` is asked before
    each batch is claimed, so stopping finishes the batch in hand.
    Raises ``InvalidFilterError`` for a hook that does not exist.
    """
    if hook_id is not None and not Hook.objects.filter(pk=hook_id).exists():
        raise InvalidFilterError(f"no hook with id {hook_id}", field="hook_id")
    with Sender() as sender:
        return sender.send(hook_id=hook_id, callback_ids=callback_ids, progress=progress, stop=stop)


def count_due(*, hook_id: int | None = None, callback_ids: Sequence[int] | None = None) -> int:
    """How many callbacks ``send_callbacks`` would take now (for a progress bar)."""
    conditions = _claimable(timezone.now(), hook_id=hook_id, callback_ids=callback_ids)
    return sum(Callback.objects.filter(condition).count() for condition, _ in conditions)


def run_loop(
    *,
    stop: threading.Event,
    hook_id: int | None = None,
    on_report: Callable[[DeliveryReport], Any] | None = None,
) -> DeliveryReport:
    """Send due callbacks until ``stop`` is set: the ``send_callbacks --loop`` worker.

    After a poll that found work the next one follows ``LOOP_MIN_SLEEP`` later;
    each idle poll doubles the wait, up to ``LOOP_MAX_SLEEP``. Setting ``stop``
    finishes the batch in hand. A database error (a restart, a failover) is
    logged and the worker tries again after ``LOOP_MAX_SLEEP`` instead of dying.
    """
    total = DeliveryReport()
    min_sleep, max_sleep = (
        float(hooks_settings.LOOP_MIN_SLEEP),
        float(hooks_settings.LOOP_MAX_SLEEP),
    )
    sleep = min_sleep
    with Sender() as sender:
        while not stop.is_set():
            close_old_connections()
            try:
                report = sender.send(hook_id=hook_id, stop=stop.is_set)
            except DatabaseError:
                logger.exception("send_callbacks loop: database error, trying again")
                stop.wait(max_sleep)
                continue
            total.add(report)
            if report.total:
                sleep = min_sleep
                if on_report:
                    on_report(report)
            stop.wait(sleep)
            if not report.total:
                sleep = min(sleep * 2, max_sleep)
    return total


def send_test_event(hook: Hook) -> Attempt:
    """Send a synthetic ``http_hooks.test`` event to ``hook`` now; return its Attempt.

    The event is a stored callback delivered by the same code as any other
    (signed, policy-checked, logged), but tried once only: a test answers "does
    the receiver work now?", and a retry an hour later would answer nothing.
    """
    now = timezone.now()
    payload = {
        "event_type": TEST_EVENT_TYPE,
        "hook_id": hook.pk,
        "hook_name": hook.name,
        "timestamp": now.isoformat(),
    }
    callback = Callback.objects.create(
        hook=hook,
        event_type=TEST_EVENT_TYPE,
        target_url=hook.target_url,
        http_method=hook.http_method,
        headers=parse_headers(hook.headers),
        payload=json.dumps(payload),
        content_type="application/json",
        status=CallbackStatus.SENDING,
        claim_token=uuid.uuid4(),
        claimed_until=now + timedelta(seconds=int(hooks_settings.LEASE_SECONDS)),
        next_attempt_at=now,
        create_datetime=now,
        update_datetime=now,
    )
    http = build_pool()
    try:
        outcome = deliver(http, callback)
    finally:
        http.clear()
    (attempt,) = record_outcomes([callback], [outcome], DeliveryReport(), max_attempts=1)
    return attempt
