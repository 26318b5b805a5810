"""Claims: which callbacks a sender takes, exclusively, for a lease.

Why claims with a lease: any number of senders may run at once against one
database. A sender marks the callbacks it takes as ``sending`` with a claim
token of its own and a lease time; nobody else takes them while the lease
runs (a ``LeaseKeeper`` thread renews it while the sender runs), and if the
sender dies the lease expires and another sender takes them again. Delivery
is therefore at-least-once; the ``webhook-id`` header lets receivers drop
duplicates. Outcomes are written as they come (``sender``), so what a dead
sender leaves to be sent again was only in flight or in its last window.
"""

from __future__ import annotations

import logging
import math
import operator
import threading
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from functools import partial, reduce
from typing import Any, TypeVar

from django.db import DatabaseError, connection, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.base import Model, ModelState
from django.utils import timezone

from ..models import TEST_EVENT_TYPE, Callback, CallbackStatus, Hook
from ..settings import hooks_settings
from ..text import first_line
from .ids import among, ids_among
from .ordering import heads, heads_only, unordered

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=Model)

# What sending a claimed callback reads; the rest of the row stays in the database.
CLAIMED_FIELDS = (
    "hook_id",
    "event_id",
    "target_url",
    "http_method",
    "payload",
    "content_type",
    "attempts",
    "earlier_attempts",
    "next_attempt_at",
    "claim_token",
    "ordering_key",
    "owner",
)


def _claimable(
    now: datetime,
    *,
    hook_id: int | None,
    callback_ids: Collection[int] | None,
    due_only: bool = False,
    exclude_hooks: Collection[int] = (),
    token: uuid.UUID | None = None,
) -> list[tuple[Q, str]]:
    """Where claimable callbacks are, each with the order to take them in.

    First the callbacks of a sender whose lease expired, then the due waiting
    ones, oldest due first (the ``callback_due_idx`` index serves that order).
    Listed callbacks are due whatever their retry time, unless ``due_only``.
    Callbacks of ``exclude_hooks`` are left for later, and a sender never takes
    back its own (``token``) whose lease ran out: they may still be in flight.
    A keyed callback is taken only when it heads its key (``ordering``): due ones
    are looked for apart, the heads first (one per key at most, they never crowd
    out the others), then the unordered ones, which the index finds without
    stepping over the keyed ones (``ordering_key`` is its last column).
    """
    scope = Q()
    if exclude_hooks:
        scope &= ~among("hook_id", exclude_hooks)
    if hook_id is not None:
        scope &= Q(hook_id=hook_id)
    if callback_ids is not None:
        scope &= Q(pk__in=list(callback_ids))
    # A test event is tried once (``send_test_event``): one whose lease ran out lost its
    # process before the answer, and a try minutes later would answer nothing (nor
    # should its failure count against the hook). ``settle_left_behind`` ends it.
    expired = Q(status=CallbackStatus.SENDING, claimed_until__lt=now) & ~Q(
        event_type=TEST_EVENT_TYPE
    )
    if token is not None:
        expired &= ~Q(claim_token=token)
    claimable = [(scope & heads_only() & expired, "claimed_until")]
    waiting = scope & Q(status=CallbackStatus.WAITING)
    if callback_ids is None or due_only:
        due = waiting & Q(next_attempt_at__lte=now)
        # Listed ids go in the order of the ids: the primary key finds the listed rows,
        # where the order of callback_due_idx would step over every due callback.
        order = "next_attempt_at" if callback_ids is None else "pk"
        claimable += [(due & heads(), order), (due & unordered(), order)]
    else:
        claimable.append((waiting & heads_only(), "pk"))
    return claimable


def claim_batch(
    *,
    hook_id: int | None = None,
    callback_ids: Collection[int] | None = None,
    due_only: bool = False,
    size: int | None = None,
    token: uuid.UUID | None = None,
    exclude_hooks: Collection[int] = (),
) -> list[Callback]:
    """Take up to ``size`` (at most ``BATCH_SIZE``) claimable callbacks, exclusively,
    under ``token`` (a sender's, for all its claims; a new one when None).

    One statement claims the rows and returns them (``UPDATE ... RETURNING``):
    on PostgreSQL its ``SELECT ... FOR UPDATE SKIP LOCKED`` lets concurrent
    senders take different rows without waiting for each other; SQLite runs a
    writing statement under its one write lock, so two senders never take the
    same row either. On databases without ``RETURNING`` on ``UPDATE`` (SQLite
    before 3.35) the claiming ``UPDATE`` repeats the claimable condition in its
    ``WHERE``: of two senders that picked the same rows only the first one's
    update matches them, and the other picks again.
    """
    size = min(int(hooks_settings.BATCH_SIZE), size or int(hooks_settings.BATCH_SIZE))
    token = token or uuid.uuid4()
    while True:
        now = timezone.now()
        conditions = _claimable(
            now,
            hook_id=hook_id,
            callback_ids=callback_ids,
            due_only=due_only,
            exclude_hooks=exclude_hooks,
            token=token,
        )
        claim = {
            "status": CallbackStatus.SENDING,
            "claim_token": token,
            "claimed_until": now + timedelta(seconds=int(hooks_settings.LEASE_SECONDS)),
            # When it was claimed, unique in this process: a claim whose answer was lost
            # is found by it (``lost_claims``).
            "update_datetime": claim_stamp(),
        }
        rows: list[Callback]
        if updates_return_rows(connection):
            candidates = [Callback.objects.filter(q).order_by(order) for q, order in conditions]
            rows = _claim_returning(candidates, size, claim)
            if not rows:
                return []
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
        # A callback stored for an owner its hook no longer has (a try in flight or an
        # event recorded by a stale registry when the hook changed hands) never goes
        # out with the new owner's URL, secret and headers.
        moved = [c.pk for c in batch if c.owner != c.hook.owner]
        if moved:
            # Without its key: it can never be resent through this hook, and in error
            # it would halt the new owner's callbacks of that key
            # (``services.part_with_previous_owners``).
            stop_claimed(
                Callback.objects.filter(pk__in=moved, claim_token=token),
                "not sent: its hook moved to another owner",
                ordering_key="",
            )
            batch = [c for c in batch if c.owner == c.hook.owner]
        if batch:
            return batch


def claim_probe(
    *,
    hook_id: int,
    paused_until: datetime,
    token: uuid.UUID,
    callback_ids: Collection[int] | None = None,
    due_only: bool = False,
) -> list[Callback]:
    """Claim the one callback whose try decides whether a paused hook, whose
    pause has passed, resumes (``health``); [] when another sender took the
    probe or the hook has nothing due.

    The hook's ``paused_until`` moves a lease ahead in the transaction that
    claims the probe, under the condition that it is still the value this sender
    read: of several senders only one matches it, and the others go on leaving
    the hook out. The probe's outcome sets the pause anew or ends it. With nothing
    to probe the pause is put back as it was; what the claim did besides stays
    done (callbacks of a hook that changed owners stopped, orphans deleted), or the
    next probe would meet them again, and again.
    """
    hold = timezone.now() + timedelta(seconds=int(hooks_settings.LEASE_SECONDS))
    held = Hook.objects.filter(pk=hook_id)
    with transaction.atomic():
        if not held.filter(paused_until=paused_until).update(paused_until=hold):
            return []
        batch = claim_batch(
            hook_id=hook_id, callback_ids=callback_ids, due_only=due_only, size=1, token=token
        )
        if not batch:
            held.update(paused_until=paused_until)
        return batch


def updates_return_rows(db: BaseDatabaseWrapper) -> bool:
    """True when ``db`` has ``UPDATE ... RETURNING``: PostgreSQL, SQLite 3.35+."""
    if db.vendor == "sqlite":
        return db.Database.sqlite_version_info >= (3, 35)
    return db.vendor == "postgresql"


def _claim_returning(
    candidates: Sequence[QuerySet[Callback]], size: int, claim: dict[str, object]
) -> list[Callback]:
    """Claim up to ``size`` callbacks, taken from each of ``candidates`` in turn (in
    its order; on PostgreSQL skipping rows another sender has locked), and return
    them with what sending needs, in one statement:
    ``UPDATE ... WHERE id IN (SELECT * FROM (...) UNION ALL ... LIMIT size) RETURNING ...``
    (``*``: a column name the subquery does not have would silently be the outer
    row's own ``id``, and claim every row).

    Why raw SQL: Django's ``update()`` returns no rows, and a separate SELECT and
    UPDATE (or one UPDATE per kind of candidate, in a transaction) cost round
    trips that ``bench/delivery.py`` showed as a good part of the sender's time.
    One statement needs no transaction of its own either. The database stops
    reading (and locking) candidates once it has ``size`` of them.
    """
    db = connections[candidates[0].db]
    quote = db.ops.quote_name
    meta = Callback._meta
    pk = quote(meta.pk.column)
    selects, select_params = [], []
    for queryset in candidates:
        sql, params = queryset.values("pk")[:size].query.sql_with_params()
        if db.features.has_select_for_update_skip_locked:
            # Added here, as Django refuses to compile a locking query outside a
            # transaction; one statement is a transaction of its own.
            sql += " " + db.ops.for_update_sql(skip_locked=True)
        selects.append(f"SELECT * FROM ({sql}) AS candidates_{len(selects)}")
        select_params += params
    assignments = [meta.get_field(name) for name in claim]
    # What the claim sets is not read back (the token: a UUID to parse for every row).
    known = {f.attname: claim[f.name] for f in assignments if f.name in CLAIMED_FIELDS}
    wanted = {meta.pk.attname, *(meta.get_field(name).attname for name in CLAIMED_FIELDS)}
    wanted -= known.keys()
    returned = [field for field in meta.concrete_fields if field.attname in wanted]
    sql = "UPDATE {table} SET {sets} WHERE {pk} IN ({select}) RETURNING {columns}".format(
        table=quote(meta.db_table),
        sets=", ".join(f"{quote(field.column)} = %s" for field in assignments),
        pk=pk,
        select=" UNION ALL ".join(selects) + f" LIMIT {int(size)}",
        columns=", ".join(quote(field.column) for field in returned),
    )
    values = [field.get_db_prep_save(claim[field.name], db) for field in assignments]
    # What the database returns as Django would read it (SQLite keeps UUIDs and
    # dates as text).
    columns = [
        (field.cached_col, db.ops.get_db_converters(field.cached_col) + field.get_db_converters(db))
        for field in returned
    ]
    names = [*(field.attname for field in returned), *known]
    with db.cursor() as cursor:
        cursor.execute(sql, [*values, *select_params])
        rows = cursor.fetchall()
    converting = [(index, *column) for index, column in enumerate(columns) if column[1]]
    claimed = []
    for row in rows:
        values = [*row, *known.values()]
        for index, column, converters in converting:
            value = values[index]
            for convert in converters:
                value = convert(value, column, db)
            values[index] = value
        claimed.append(loaded(Callback, db.alias, names, values))
    return claimed


def loaded(model: type[M], alias: str, names: Sequence[str], values: Sequence[object]) -> M:
    """An instance of ``model`` as read from the database ``alias``, with the fields
    ``names`` set to ``values`` and the others deferred: what ``Model.from_db`` makes,
    at a sixth of its cost (measured: 20 against 3.4 µs a row of a claim).

    Why: ``from_db`` goes through ``Model.__init__``, which walks every field of the
    model and sends ``pre_init`` and ``post_init``; a claim makes thousands of these
    instances a second, and it was a good part of the sender's time per callback
    (``bench/delivery.py``). The init signals of http_hooks' own rows concern no
    hook (hooks on them are refused, ``validators``).
    """
    instance = model.__new__(model)
    instance.__dict__.update(zip(names, values, strict=True))
    state = instance._state = ModelState()
    state.adding, state.db = False, alias
    return instance


def with_hooks(callbacks: list[Callback]) -> list[Callback]:
    """``callbacks`` with their hooks, each hook loaded once (a batch has few
    hooks and many callbacks); callbacks whose hook is gone are left out."""
    hooks = Hook.objects.in_bulk({callback.hook_id for callback in callbacks})
    # The relation's cache set straight: the descriptor's checks cost more than the
    # rest of this function.
    cache = Callback.hook.field.set_cached_value
    kept = []
    for callback in callbacks:
        hook = hooks.get(callback.hook_id)
        if hook is not None:
            cache(callback, hook)
            kept.append(callback)
    return kept


def stop_claimed(callbacks: QuerySet[Callback], reason: str, **changes: Any) -> None:
    """End claimed ``callbacks`` unsent, as ``error`` with ``reason`` (and ``changes``)."""
    callbacks.update(
        status=CallbackStatus.ERROR,
        status_details=reason,
        claimed_until=None,
        claim_token=None,
        update_datetime=timezone.now(),
        **changes,
    )


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


def renew_lease(token: uuid.UUID, probes: Collection[int] = ()) -> int:
    """Push the lease of every callback a sender holds forward, so that it keeps them,
    and the hold of each hook whose probe (of ``probes``) it still holds
    (``claim_probe``): a probe longer than the lease must not let a second one out."""
    lease = timezone.now() + timedelta(seconds=int(hooks_settings.LEASE_SECONDS))
    held = Callback.objects.filter(claim_token=token, status=CallbackStatus.SENDING)
    with transaction.atomic():
        # The hooks first, as the sender's outcome write locks them
        # (``outcomes.lock_hooks``) before its callbacks: callbacks of its window taken
        # here would have it wait for them, and this renewal for its hooks.
        if probes:
            probing = held.filter(ids_among(probes), hook=OuterRef("pk"))
            Hook.objects.filter(Exists(probing), paused_until__isnull=False).update(
                paused_until=lease
            )
        # Rows the sender's outcome write has locked are skipped, not waited for: they
        # are being written (their lease no longer matters), and two transactions that
        # each wait for the other's rows (PostgreSQL takes each UPDATE's row locks in its
        # own order) are a deadlock that stalls both for a second before one fails.
        locked = held.select_for_update(skip_locked=True).values("pk")
        return Callback.objects.filter(pk__in=locked).update(claimed_until=lease)


def release_claims(
    token: uuid.UUID, callback_ids: Collection[int], *, probed_hooks: Collection[int] = ()
) -> None:
    """Give claimed callbacks that were never tried back, due as they were; end the
    hold of ``probed_hooks``, whose probe was among them (``claim_probe``), so that
    the next claim of any sender probes again. Only what this sender (``token``)
    still holds: a probe another sender took after this one's lease ran out keeps
    that sender's hold on its hook."""
    with transaction.atomic():
        held = Callback.objects.filter(
            ids_among(callback_ids), claim_token=token, status=CallbackStatus.SENDING
        )
        if probed_hooks:
            probed_hooks = set(
                held.filter(hook_id__in=list(probed_hooks))
                .select_for_update()
                .values_list("hook_id", flat=True)
            )
        if callback_ids:
            held.update(status=CallbackStatus.WAITING, claimed_until=None)
        if probed_hooks:
            Hook.objects.filter(pk__in=list(probed_hooks), paused_until__isnull=False).update(
                paused_until=timezone.now()
            )


def held_by_a_sender() -> Q:
    """Callbacks a sender holds now: ``sending`` under a lease that runs. One whose lease
    ran out was left by a sender that died or stalled; another sender takes it over,
    and it may be deleted or resent like a callback that waits."""
    return Q(status=CallbackStatus.SENDING) & (
        Q(claimed_until__gte=timezone.now()) | Q(claimed_until__isnull=True)
    )


def settle_left_behind(held_hooks: Collection[int]) -> None:
    """Settle what senders that died left ``sending`` (their lease ran out) and no claim
    takes over: the callbacks of ``held_hooks`` (paused or disabled), which would
    stay ``sending`` (stuck, to ``monitor_callbacks``) for as long as their hook is
    held, wait again as the hook's others do; and a test event, tried once only,
    ends as ``error``."""
    now = timezone.now()
    left = Callback.objects.filter(status=CallbackStatus.SENDING, claimed_until__lt=now)
    if held_hooks:
        left.filter(among("hook_id", held_hooks)).exclude(event_type=TEST_EVENT_TYPE).update(
            status=CallbackStatus.WAITING, claimed_until=None
        )
    stop_claimed(
        left.filter(event_type=TEST_EVENT_TYPE),
        "not sent again: a test event is tried once, and the process that tried it "
        "stopped before its answer",
    )


_last_stamp: datetime | None = None
_stamping = threading.Lock()


def claim_stamp() -> datetime:
    """Now, for a claim's ``update_datetime``, but later than every stamp this process
    gave before: a clock set back (NTP, a virtual machine) or a coarse one never gives
    two claims of a process the same stamp, nor a later one an earlier stamp."""
    global _last_stamp
    with _stamping:
        stamp = timezone.now()
        last = _last_stamp
        # (Naive and aware times do not compare: USE_TZ changed, in a test.)
        if last is not None and (last.tzinfo is None) == (stamp.tzinfo is None):
            stamp = max(stamp, last + timedelta(microseconds=1))
        _last_stamp = stamp
        return stamp


def lost_claims(token: uuid.UUID) -> Callable[[], int]:
    """The ``undo`` of a claim under ``token`` that ``with_reconnect`` tries again: a
    claim whose connection dropped may have been done, its rows lost on the way
    back. The sender would never know it held them, while its lease keeper renewed
    them for as long as its run lasted (a busy worker's: for good). Before the next
    try they go back to waiting: this token's ``sending`` callbacks stamped since
    now (``claim_stamp``), which a sender, claiming from one thread, took in no
    other claim, whatever its clock did meanwhile."""
    since = claim_stamp()
    return lambda: Callback.objects.filter(
        claim_token=token, status=CallbackStatus.SENDING, update_datetime__gte=since
    ).update(status=CallbackStatus.WAITING, claimed_until=None)


def release_dead_claims(tokens: Collection[uuid.UUID]) -> int:
    """Give back, due as they were, the callbacks still ``sending`` under ``tokens``, the
    claim tokens of a sender that is known to have ended (``processes``: its supervisor
    waited for it), whose lease would otherwise hold them. Its probe's hold on a
    paused hook ends with its lease, as it would have. Returns how many."""
    return Callback.objects.filter(
        claim_token__in=list(tokens), status=CallbackStatus.SENDING
    ).update(status=CallbackStatus.WAITING, claimed_until=None)


# Seconds before a failed lease renewal is tried again.
LEASE_RETRY = 1.0
# Seconds on a clock that runs while the machine is suspended (``CLOCK_BOOTTIME``,
# Linux; ``time.monotonic`` elsewhere), as the database's clock does: a lease runs
# out while the sender's machine sleeps too.
lease_clock: Callable[[], float] = (
    partial(time.clock_gettime, time.CLOCK_BOOTTIME)
    if hasattr(time, "CLOCK_BOOTTIME")
    else time.monotonic
)


class LeaseKeeper(threading.Thread):
    """Renews a sender's lease every ``LEASE_SECONDS / 3``, in a thread (and on a
    database connection) of its own.

    Why a thread: in the sender's thread a renewal that waits for the database
    (a lock, a slow failover) would stop every transfer, and libcurl's
    deadline would then fire on answers that had already arrived.
    """

    def __init__(self, token: uuid.UUID, probes: dict[int, int] | None = None) -> None:
        super().__init__(name="http_hooks lease keeper", daemon=True)
        self.token = token
        # The sender's probes (callback id: hook id), read as they are at each renewal.
        self.probes = probes if probes is not None else {}
        self.lease = int(hooks_settings.LEASE_SECONDS)
        self.period = self.lease / 3
        self.stopped = threading.Event()
        # When (``lease_clock()``) the last renewal that went through began, or the run
        # began: every callback the sender holds is leased for LEASE_SECONDS past it at
        # least, or past its claim if that came later.
        self.renewed = lease_clock()
        # Callbacks claimed at or before this (``lease_clock()``) may have been taken by
        # another sender: a renewal began once their lease had run out (the process was
        # stopped, or renewals failed, for longer than it). Such a renewal goes through,
        # renewing what is still this sender's, and moves ``renewed`` past the lapse, so
        # ``renewed`` alone would hide it. Written before ``renewed``: a reader that
        # reads ``renewed`` first sees the lapse that came with it.
        self.lapsed_before = -math.inf

    def run(self) -> None:
        wait = self.period
        failures = 0
        try:
            while not self.stopped.wait(wait):
                try:
                    began = lease_clock()
                    renew_lease(self.token, list(self.probes))
                    if self.renewed + self.lease <= began:
                        self.lapsed_before = began - self.lease
                    self.renewed = began
                    wait = self.period
                    if failures:
                        logger.warning("renewed lease %s after %d failures", self.token, failures)
                    failures = 0
                except DatabaseError as exc:
                    # Tried again soon, on a new connection: a second failure a whole
                    # period later would leave the lease to run out. One line, for the
                    # first failure of a series only (a try a second while the database
                    # is away): a database restart is no bug to trace.
                    wait = min(self.period, LEASE_RETRY)
                    failures += 1
                    logger.log(
                        logging.WARNING if failures == 1 else logging.DEBUG,
                        "renewing lease %s failed (%s); trying again every %g s",
                        self.token,
                        first_line(exc),
                        wait,
                    )
                    connection.close()
        finally:
            connections.close_all()

    def stop(self) -> None:
        """Stop renewing; a renewal under way may finish on its own (the thread
        is a daemon), so a stuck database never holds the sender here for long."""
        self.stopped.set()
        self.join(timeout=5.0)


def anything_due(*, hook_id: int | None = None) -> bool:
    """Whether a callback is due now (waiting and its time come, or ``sending`` and its
    lease run out), whatever its hook's state: when none is, a run would claim nothing.

    Why: an idle ``--loop`` worker's run built every claim's query to find nothing,
    4 ms of CPU a poll on a slow machine, 1.5% of a core at two polls a second. One
    statement that ``callback_due_idx`` answers, its SQL written once per process
    (the ORM would spend a millisecond building it), costs a small part of that."""
    db = connections[router.db_for_read(Callback)]
    key = (db.alias, hook_id is not None)
    sql = _due_sql.get(key)
    if sql is None:
        sql = _due_sql[key] = _anything_due_sql(db, by_hook=hook_id is not None)
    now = db.ops.adapt_datetimefield_value(timezone.now())
    by_hook = [] if hook_id is None else [hook_id]
    params = [CallbackStatus.WAITING.value, now, *by_hook, CallbackStatus.SENDING.value, now]
    with db.cursor() as cursor:
        cursor.execute(sql, [*params, *by_hook])
        return bool(cursor.fetchone()[0])


_due_sql: dict[tuple[str, bool], str] = {}


def _anything_due_sql(db: BaseDatabaseWrapper, *, by_hook: bool) -> str:
    meta = Callback._meta
    quote = db.ops.quote_name

    def column(name: str) -> str:
        return quote(meta.get_field(name).column)

    table = quote(meta.db_table)
    hook = f" AND {column('hook')} = %s" if by_hook else ""
    # Two lookups, each an index range, rather than one OR that a planner may scan.
    return (
        f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {column('status')} = %s "
        f"AND {column('next_attempt_at')} <= %s{hook}) OR EXISTS (SELECT 1 FROM {table} "
        f"WHERE {column('status')} = %s AND {column('claimed_until')} < %s{hook})"
    )


def count_due(*, hook_id: int | None = None, callback_ids: Collection[int] | None = None) -> int:
    """How many callbacks ``send_callbacks`` would take now (for a progress bar)."""
    conditions = _claimable(timezone.now(), hook_id=hook_id, callback_ids=callback_ids)
    return sum(Callback.objects.filter(condition).count() for condition, _ in conditions)


def hooks_with_claimable(
    hook_ids: Collection[int],
    *,
    callback_ids: Collection[int] | None = None,
    due_only: bool = False,
    token: uuid.UUID | None = None,
) -> set[int]:
    """Those of ``hook_ids`` with a callback ``claim_batch`` would take now: one
    query, an EXISTS per hook (served by ``callback_hook_status_idx``)."""
    conditions = _claimable(
        timezone.now(), hook_id=None, callback_ids=callback_ids, due_only=due_only, token=token
    )
    claimable = Callback.objects.filter(
        reduce(operator.or_, (condition for condition, _ in conditions)), hook=OuterRef("pk")
    )
    hooks = Hook.objects.filter(Exists(claimable), among("pk", hook_ids))
    return set(hooks.values_list("pk", flat=True))
