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
where it pointed. The HTTP side (pooling, timeouts, the policy at connect time,
the body limit) is ``transport.py``'s.
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
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache, reduce
from typing import Any

from django.db import (
    DatabaseError,
    close_old_connections,
    connection,
    connections,
    router,
    transaction,
)
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from .exceptions import InvalidFilterError, TransportError
from .headers import parse_headers
from .models import Attempt, Callback, CallbackStatus, Hook
from .settings import hooks_settings
from .signing import signature_headers
from .transport import Outcome, Request, Transport, printable

logger = logging.getLogger(__name__)

TEST_EVENT_TYPE = "http_hooks.test"
MASKED = "********"
SECRET_HEADER_WORDS = ("authorization", "token", "secret", "key", "password", "cookie", "signature")
# What sending a claimed callback reads; the rest of the row stays in the database.
CLAIMED_FIELDS = (
    "hook_id",
    "event_id",
    "target_url",
    "http_method",
    "headers",
    "payload",
    "content_type",
    "attempts",
    "next_attempt_at",
    "claim_token",
)
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


# --- the HTTP side ---------------------------------------------------------------


def merge_headers(*layers: Mapping[str, str]) -> dict[str, str]:
    """The layers' headers in one dict; a later layer's value wins whatever the case of its name."""
    merged: dict[str, str] = {}
    names: dict[str, str] = {}
    for layer in layers:
        for name, value in layer.items():
            previous = names.get(name.lower())
            if previous is not None:
                del merged[previous]
            names[name.lower()] = name
            merged[name] = str(value)
    return merged


def request_for(callback: Callback) -> Request:
    """The HTTP request of one try of ``callback``: its method, URL and body, our
    headers, the callback's own, its Content-Type and the Standard Webhooks headers."""
    body = (callback.payload or "").encode("utf-8")
    headers = merge_headers(
        {
            "User-Agent": str(hooks_settings.USER_AGENT),
            # Bodies are only logged; uncompressed, RESPONSE_BODY_LIMIT limits the wire.
            "Accept-Encoding": "identity",
        },
        callback.headers or {},
        {"Content-Type": callback.content_type} if callback.content_type else {},
        signature_headers(
            callback.hook.signing_secrets(), str(callback.event_id), int(time.time()), body
        ),
    )
    return Request(callback.http_method, callback.target_url, headers, body)


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers as logged in an Attempt: values of secret-looking names are masked."""
    return {
        name: MASKED if is_secret_header(name) else printable(str(value))
        for name, value in headers.items()
    }


@lru_cache(maxsize=1024)
def is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_HEADER_WORDS)


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
    now: datetime,
    *,
    hook_id: int | None,
    callback_ids: Sequence[int] | None,
    due_only: bool = False,
) -> list[tuple[Q, str]]:
    """Where claimable callbacks are, each with the order to take them in.

    First the callbacks of a sender whose lease expired, then the due waiting
    ones, oldest due first (the ``callback_due_idx`` index serves that order).
    Listed callbacks are due whatever their retry time, unless ``due_only``.
    """
    scope = Q()
    if hook_id is not None:
        scope &= Q(hook_id=hook_id)
    if callback_ids is not None:
        scope &= Q(pk__in=list(callback_ids))
    expired = Q(status=CallbackStatus.SENDING, claimed_until__lt=now)
    waiting = scope & Q(status=CallbackStatus.WAITING)
    if callback_ids is None or due_only:
        due = (waiting & Q(next_attempt_at__lte=now), "next_attempt_at")
    else:
        due = (waiting, "pk")
    return [(scope & expired, "claimed_until"), due]


def claim_batch(
    *,
    hook_id: int | None = None,
    callback_ids: Sequence[int] | None = None,
    due_only: bool = False,
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
        conditions = _claimable(now, hook_id=hook_id, callback_ids=callback_ids, due_only=due_only)
        claim = {
            "status": CallbackStatus.SENDING,
            "claim_token": token,
            "claimed_until": now + timedelta(seconds=int(hooks_settings.LEASE_SECONDS)),
        }
        rows: list[Callback] = []
        if skip_locked:
            # The rows come locked with what sending needs: one query, no re-read.
            with transaction.atomic():
                for condition, order in conditions:
                    candidates = Callback.objects.filter(condition).order_by(order)
                    rows += candidates.only(*CLAIMED_FIELDS).select_for_update(skip_locked=True)[
                        : size - len(rows)
                    ]
                    if len(rows) >= size:
                        break
                if not rows:
                    return []
                Callback.objects.filter(pk__in=[row.pk for row in rows]).update(**claim)
            for row in rows:
                row.claim_token = token
            rows.sort(key=operator.attrgetter("pk"))
        else:
            ids: list[int] = []
            for condition, order in conditions:
                candidates = Callback.objects.filter(condition).order_by(order)
                ids += candidates.values_list("pk", flat=True)[: size - len(ids)]
                if len(ids) >= size:
                    break
            if not ids:
                return []
            claimable = reduce(operator.or_, (condition for condition, _ in conditions))
            if not Callback.objects.filter(claimable, pk__in=ids).update(**claim):
                continue
            claimed = Callback.objects.filter(pk__in=ids, claim_token=token)
            rows = list(claimed.only(*CLAIMED_FIELDS).order_by("pk"))
        batch = with_hooks(rows)
        if len(batch) < len(rows):
            kept = {callback.pk for callback in batch}
            delete_orphans(Callback.objects.filter(pk__in=[r.pk for r in rows if r.pk not in kept]))
        if batch:
            return batch


def with_hooks(callbacks: list[Callback]) -> list[Callback]:
    """``callbacks`` with their hooks, each hook loaded once (a batch has few
    hooks and many callbacks); callbacks whose hook is gone are left out."""
    hooks = Hook.objects.in_bulk({callback.hook_id for callback in callbacks})
    for callback in callbacks:
        callback.hook = hooks.get(callback.hook_id)  # type: ignore[assignment]
    return [callback for callback in callbacks if callback.hook_id in hooks]


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
) -> None:
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
        attempts[callback.pk] = (
            callback.pk,
            callback.attempts,
            now,
            outcome.duration_ms,
            outcome.request_headers,
            outcome.status_code,
            outcome.response_headers,
            outcome.response_body,
            printable(outcome.error),
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
        insert_attempts(list(attempts.values()))
    for callback in batch:
        if callback.pk in attempts:
            report.sent += callback.status == CallbackStatus.SENT
            report.retried += callback.status == CallbackStatus.WAITING
            report.failed += callback.status == CallbackStatus.ERROR


ATTEMPT_COLUMNS = (
    "callback",
    "number",
    "attempted_at",
    "duration_ms",
    "request_headers",
    "response_status",
    "response_headers",
    "response_body",
    "error",
)


def insert_attempts(rows: Collection[Sequence[Any]]) -> None:
    """INSERT Attempt rows (values in ``ATTEMPT_COLUMNS`` order) in bulk.

    Why not ``bulk_create``: a model instance per row and, on PostgreSQL, the
    arrays of Django's ``UNNEST`` insert quoted by psycopg in Python cost more
    CPU than sending the requests did (``bench/delivery.py``). PostgreSQL (with
    psycopg 3) takes the rows by ``COPY``, other databases as the multi-row
    INSERTs their Django backend writes for ``bulk_create``.
    """
    if not rows:
        return
    db = connections[router.db_for_write(Attempt)]
    fields = [Attempt._meta.get_field(name) for name in ATTEMPT_COLUMNS]
    quote = db.ops.quote_name
    table = "{} ({})".format(
        quote(Attempt._meta.db_table), ", ".join(quote(field.column) for field in fields)
    )
    # Numbers and text go as they are; JSON and dates take the field's preparation.
    adapted = [
        (index, field.get_db_prep_save)
        for index, field in enumerate(fields)
        if field.get_internal_type() in {"JSONField", "DateTimeField"}
    ]
    prepared = []
    for row in rows:
        values = list(row)
        for index, prepare in adapted:
            values[index] = prepare(values[index], db)
        prepared.append(values)
    with db.cursor() as cursor:
        if db.vendor == "postgresql" and hasattr(cursor.cursor, "copy"):
            with cursor.cursor.copy(f"COPY {table} FROM STDIN") as copy:
                for values in prepared:
                    copy.write_row(values)
            return
        size = db.ops.bulk_batch_size(fields, prepared)
        for start in range(0, len(prepared), size):
            chunk = prepared[start : start + size]
            values_sql = db.ops.bulk_insert_sql(fields, [["%s"] * len(fields)] * len(chunk))
            cursor.execute(
                f"INSERT INTO {table} {values_sql}", [value for values in chunk for value in values]
            )


# --- running ---------------------------------------------------------------------


class Sender:
    """A transport (``CONCURRENCY`` transfers at once over keep-alive connections),
    reused batch after batch (and poll after poll in loop mode)."""

    def __init__(self) -> None:
        self.transport = Transport()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.transport.close()

    def restart(self) -> None:
        """A new transport in place of one that failed."""
        self.transport.close()
        self.transport = Transport()

    def send(
        self,
        *,
        hook_id: int | None = None,
        callback_ids: Sequence[int] | None = None,
        due_only: bool = False,
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
            batch = claim_batch(hook_id=hook_id, callback_ids=untried, due_only=due_only)
            if not batch:
                break
            record_outcomes(batch, send(self.transport, batch, progress), report)
            if untried is not None:
                untried.difference_update(c.pk for c in batch)
        report.duration = time.monotonic() - started
        return report


def send(
    transport: Transport, batch: Sequence[Callback], progress: Callable[[int], Any] | None = None
) -> list[Outcome]:
    """One try of each callback of a claimed batch, renewing its lease while in flight.

    Each request is made (and signed) as its transfer starts: a batch can take
    minutes to get through, and receivers refuse old signature timestamps.
    """
    requests: list[Request | None] = [None] * len(batch)

    def request_at(index: int) -> Request:
        requests[index] = request = request_for(batch[index])
        return request

    outcomes = transport.send_all(
        len(batch),
        request_at,
        on_done=(lambda index, outcome: progress(1)) if progress else None,
        every=(int(hooks_settings.LEASE_SECONDS) / 3, lambda: renew_claims(batch)),
    )
    for request, outcome in zip(requests, outcomes, strict=True):
        if request is not None:
            outcome.request_headers = mask_headers(request.headers)
    return outcomes


def send_callbacks(
    *,
    hook_id: int | None = None,
    callback_ids: Sequence[int] | None = None,
    due_only: bool = False,
    progress: Callable[[int], Any] | None = None,
    stop: Callable[[], bool] | None = None,
) -> DeliveryReport:
    """Send every due callback (of one hook, or the listed ones, due or not); return counts.

    With ``due_only`` the listed callbacks are sent only when due (a queued
    task run again must not bring a retry forward). ``progress(n)`` is called
    as callbacks finish; ``stop()`` is asked before each batch is claimed, so
    stopping finishes the batch in hand.
    Raises ``InvalidFilterError`` for a hook that does not exist.
    """
    if hook_id is not None and not Hook.objects.filter(pk=hook_id).exists():
        raise InvalidFilterError(f"no hook with id {hook_id}", field="hook_id")
    with Sender() as sender:
        return sender.send(
            hook_id=hook_id,
            callback_ids=callback_ids,
            due_only=due_only,
            progress=progress,
            stop=stop,
        )


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
    logged and the worker tries again after ``LOOP_MAX_SLEEP`` instead of dying;
    a failed HTTP transport is replaced by a new one (the batch it held is sent
    again when its lease runs out).
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
            except TransportError:
                logger.exception("send_callbacks loop: the HTTP transport failed; restarting it")
                sender.restart()
                stop.wait(min_sleep)
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
    with Transport(concurrency=1) as transport:
        outcomes = send(transport, [callback])
    record_outcomes([callback], outcomes, DeliveryReport(), max_attempts=1)
    return callback.attempt_log.get()
