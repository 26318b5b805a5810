"""Outcomes: a callback's new state after a try, and the attempt log, written in bulk."""

from __future__ import annotations

import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, router, transaction
from django.db.models import F
from django.utils import timezone

from .. import metrics
from ..bulk import row_preparer, table_and_columns
from ..models import Attempt, Callback, CallbackStatus, Hook
from ..settings import hooks_settings
from ..transport import Outcome, printable
from .health import is_gone, record_health, retry_after
from .ids import ids_among
from .reconnect import with_reconnect
from .stats import record_stats

logger = logging.getLogger(__name__)

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


def retry_delay(attempts: int, *, max_attempts: int | None = None) -> float | None:
    """Seconds until the next try after ``attempts`` tries, or None when they are used up."""
    if attempts >= (max_attempts or int(hooks_settings.MAX_ATTEMPTS)):
        return None
    schedule = list(hooks_settings.RETRY_SCHEDULE)
    base = float(schedule[min(attempts - 1, len(schedule) - 1)])
    jitter = float(hooks_settings.RETRY_JITTER)
    return max(0.0, base * (1 + random.uniform(-jitter, jitter)))


def apply_outcome(
    callback: Callback, outcome: Outcome, now: datetime, *, max_attempts: int | None = None
) -> None:
    """Set the callback's new state after one more try: sent, waiting for a retry, or
    error. A 410 Gone is final; a ``Retry-After`` puts the next try no earlier."""
    callback.attempts += 1
    callback.last_response_status = outcome.status_code
    callback.claimed_until = None
    callback.update_datetime = now
    if outcome.ok:
        callback.status = CallbackStatus.SENT
        callback.status_details = f"HTTP {outcome.status_code}"
        return
    limit = max_attempts or int(hooks_settings.MAX_ATTEMPTS)
    delay = None if is_gone(outcome) else retry_delay(callback.attempts, max_attempts=limit)
    if delay is None:
        callback.status = CallbackStatus.ERROR
        callback.status_details = f"{outcome.error} (attempt {callback.attempts} of {limit})"
    else:
        callback.status = CallbackStatus.WAITING
        callback.next_attempt_at = max(
            now + timedelta(seconds=delay), retry_after(outcome, now) or now
        )
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

    Held means still ``sending`` under this sender's token: a retry after a
    commit whose answer was lost to a dropped connection writes nothing twice.
    Sent callbacks differ only in their status code, so they take one plain
    UPDATE per code; ``bulk_update`` (a CASE per row and field, slow on big
    batches) is kept for the failed ones, whose retry times all differ.
    """
    held = Callback.objects.filter(claim_token=token, status=CallbackStatus.SENDING)
    sent: dict[tuple[str, int | None], list[int]] = defaultdict(list)
    failed = []
    for callback in batch:
        if callback.status == CallbackStatus.SENT:
            sent[callback.status_details, callback.last_response_status].append(callback.pk)
        else:
            failed.append(callback)
    updated = sum(
        held.filter(ids_among(pks)).update(
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


def lock_hooks(batch: Sequence[Callback]) -> None:
    """Lock the rows of the hooks of ``batch`` (a window of outcomes) for the
    transaction that records them: first, in one statement, in id order.

    Why: a hook given to another owner (``services.update_hook``) has its row locked,
    then its counts deleted (``forget_previous_owners_tries``). A window that wrote
    its counts without waiting for that row (``stats.record_stats``) checked them
    against the previous owner, not yet committed away, and they outlived the
    deletion: the new owner was shown a window of the previous owner's tries. With
    the counts locked before the row (``health.record_health``), each side also
    waited for what the other held, a deadlock PostgreSQL broke by failing one.
    Locked first, the row makes the window wait for the change and then see the new
    owner, and every transaction that writes a hook and its callbacks or counts
    takes the hook first (``update_hook``, ``delete_hook``, ``delete_owner_data``,
    ``claims.claim_probe``, ``claims.renew_lease``). ``FOR NO KEY UPDATE``: what the
    window writes of the row needs no more, and a foreign key's check of a row
    inserted for the hook does not wait for it. In id order, as every sender locks
    hooks: two windows never wait for each other's in a circle. SQLite locks the
    whole database for a write transaction: nothing to lock there.
    """
    db = connections[router.db_for_write(Hook)]
    if db.features.has_select_for_update:
        hooks = Hook.objects.filter(ids_among({callback.hook_id for callback in batch}))
        list(hooks.order_by("pk").select_for_update(no_key=True).values_list("pk", flat=True))


def record_outcomes(
    batch: Sequence[Callback],
    outcomes: Sequence[Outcome],
    report: DeliveryReport,
    *,
    max_attempts: int | None = None,
    probes: Collection[int] = (),
    reconnect_delays: Sequence[float] | None = None,
) -> set[int]:
    """Write the callbacks' new state, their attempts, their hooks' hourly counts
    (``stats.record_stats``) and health (``health.record_health``; ``probes`` are
    the callbacks sent as a paused hook's probe), in bulk, in one transaction;
    count them in ``report``. Return the hooks this window paused or disabled.

    Only callbacks this sender still holds are written. One whose lease ran out
    while it was being sent (the sender stalled for longer than
    ``LEASE_SECONDS``) may have been taken by another sender, and that
    sender's result is the one that counts. A dropped database connection is
    reconnected and the write tried again (``with_reconnect``, after each of
    ``reconnect_delays``).
    """
    now = timezone.now()
    token = batch[0].claim_token
    attempts = {}
    for callback, outcome in zip(batch, outcomes, strict=True):
        apply_outcome(callback, outcome, now, max_attempts=max_attempts)
        pk = callback.pk
        attempts[pk] = (
            pk,
            callback.earlier_attempts + callback.attempts,  # numbered on across resends
            now,
            outcome.duration_ms,
            outcome.request_headers,
            outcome.status_code,
            outcome.response_headers,
            outcome.response_body,
            printable(outcome.error),
        )

    def write() -> tuple[set[int], set[int]]:
        with transaction.atomic():
            lock_hooks(batch)
            if write_states(batch, token, now) == len(batch):
                insert_attempts(list(attempts.values()))
                record_stats(batch, outcomes, now)
                return set(attempts), record_health(batch, outcomes, now, probes=probes)
            # Not written here: taken over by another sender, or written by an
            # earlier try of this very write whose commit went through unanswered.
            held = set(
                Callback.objects.filter(
                    ids_among(attempts), claim_token=token, update_datetime=now
                ).values_list("pk", flat=True)
            )
            if len(held) < len(batch):
                lost = sorted(set(attempts) - held)
                present = set(Callback.objects.filter(pk__in=lost).values_list("pk", flat=True))
                if present:
                    logger.warning(
                        "%s callbacks were taken over by another sender after their lease "
                        "expired (LEASE_SECONDS=%s); their results here are dropped: %s",
                        len(present),
                        hooks_settings.LEASE_SECONDS,
                        sorted(present),
                    )
                if len(present) < len(lost):
                    logger.info(
                        "%s callbacks were deleted (with their hook, say) while being sent; "
                        "their results are dropped: %s",
                        len(lost) - len(present),
                        sorted(set(lost) - present),
                    )
            logged = set(
                Attempt.objects.filter(callback__in=held, attempted_at=now).values_list(
                    "callback_id", flat=True
                )
            )
            insert_attempts([attempts[pk] for pk in held - logged])
            # Health and stats go with the attempt log: what was logged before is counted.
            fresh = [i for i, callback in enumerate(batch) if callback.pk in held - logged]
            record_stats([batch[i] for i in fresh], [outcomes[i] for i in fresh], now)
            paused = record_health(
                [batch[i] for i in fresh], [outcomes[i] for i in fresh], now, probes=probes
            )
            return held, paused

    held, paused = with_reconnect(write, what="recording outcomes", delays=reconnect_delays)
    for callback in batch:
        if callback.pk in held:
            report.sent += callback.status == CallbackStatus.SENT
            report.retried += callback.status == CallbackStatus.WAITING
            report.failed += callback.status == CallbackStatus.ERROR
    metrics.record_attempts(batch, outcomes, held)
    return paused


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
    table = table_and_columns(Attempt, fields, db)
    prepare = row_preparer(fields, db)
    prepared = [prepare(row) for row in rows]
    with db.cursor() as cursor:
        if db.vendor == "postgresql" and hasattr(cursor.cursor, "copy"):
            # The driver's own cursor: its errors are turned into Django's here, so
            # that a dropped connection is an OperationalError like any other.
            with db.wrap_database_errors, cursor.cursor.copy(f"COPY {table} FROM STDIN") as copy:
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
