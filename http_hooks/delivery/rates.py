"""Rate limits: a hook's ``rate_limit`` (requests per second) holds across every sender.

Each limited hook has a token bucket on its row, shared by all senders: it holds
at most ``rate_limit`` tokens (one second's worth) and refills at ``rate_limit``
a second. A sender takes tokens before it claims callbacks of the hook, and
claims at most as many as it got: the callbacks held back are not claimed and
not charged a try; they stay ``waiting`` for a later token. Over any ten seconds
a receiver therefore sees at most a full bucket and ten seconds of refill, 11
times the limit: 1.1 times the limit per second.

The bucket is one number, ``rate_full_at``: when it is full again, in seconds
since the epoch of the app's clock (``timezone.now()``, like leases and due
times). At time ``t`` it holds ``limit * min(1, t + 1 - rate_full_at)`` tokens,
and taking ``n`` moves it to ``max(rate_full_at, t) + n / limit`` (the generic
cell rate algorithm). It never moves back, so senders whose clocks differ by
``d`` seconds let through at most ``d * limit`` requests more once, not more
every second.

One ``UPDATE ... RETURNING`` takes the tokens (``take_tokens``), in the
transaction that claims the callbacks; tokens it got that the claim found no
callback for are put back before that transaction ends. Tokens of callbacks
claimed but never sent (a sender stops, or the hook is paused meanwhile) are
lost: the limit still holds; the hook only sends a little less for a moment.

A sender learns which hooks are limited once (``RateLimits.hooks``), and then
from what it claims: a hook limited since then shows up in a claim, which is
cut to the tokens the hook has (the rest goes back uncharged). Hooks without a
limit cost nothing more: their claims are as before, with no statement added.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Case, F, FloatField, Q, Value, When
from django.db.models.functions import Floor, Greatest, Least
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from ..models import Callback, Hook
from .claims import claim_batch, hooks_with_claimable, lost_claims, updates_return_rows
from .reconnect import with_reconnect

# Written by the senders only: an update of a hook from anywhere else leaves them be.
BUCKET_FIELDS = ["rate_full_at", "rate_granted"]
# Rounding of the bucket's float arithmetic: a bucket with n tokens gives n.
EPSILON = 1e-6
# How far ahead of this sender's clock another's may be: a bucket full later than this
# (and its second) was not written by a sender.
MAX_CLOCK_AHEAD = 60.0
# Seconds before a limited hook found with nothing due is looked at again.
IDLE_RECHECK = 0.5


@dataclass(frozen=True)
class Grant:
    """What one take got: ``count`` tokens of a hook limited to ``limit`` a second,
    and ``next_in`` seconds until its bucket holds a whole token again."""

    count: int
    limit: int
    next_in: float


def take_tokens(hook_id: int, want: int) -> Grant | None:
    """Take up to ``want`` tokens of the hook's bucket, atomically; None when the hook
    has no rate limit (any more) or is gone.

    One statement (``UPDATE ... RETURNING``; on SQLite before 3.35, an UPDATE and a
    SELECT in one transaction): the SET expressions see the row as it was, so the
    number granted is stored (``rate_granted``) for RETURNING to hand back.
    Concurrent takes wait for each other on the row (PostgreSQL) or the database's
    write lock (SQLite).
    """
    now = timezone.now().timestamp()
    # Within what a bucket can be, whatever was written around validation: a limit of
    # at least 1 (0 divided by zero), and a bucket full no later than a clock ahead of
    # this one by MAX_CLOCK_AHEAD could have made it: past that, it is taken as empty
    # (a time far ahead held a one-shot run waiting for ever).
    limit = Greatest(F("rate_limit"), Value(1), output_field=FloatField())
    start = Case(
        When(rate_full_at__gt=now + 1.0 + MAX_CLOCK_AHEAD, then=Value(now + 1.0)),
        default=Greatest(F("rate_full_at"), Value(now), output_field=FloatField()),
        output_field=FloatField(),
    )
    whole = Floor((Value(now + 1.0 + EPSILON) - start) * limit, output_field=FloatField())
    granted = Greatest(Value(0.0), Least(Value(float(want)), whole, output_field=FloatField()))
    query = UpdateQuery(Hook)
    query.add_q(Q(pk=hook_id, rate_limit__isnull=False))
    query.add_update_values({"rate_granted": granted, "rate_full_at": start + granted / limit})
    sql, params = query.get_compiler(connection.alias).as_sql()
    returned = ["rate_granted", "rate_full_at", "rate_limit"]
    with connection.cursor() as cursor:
        if updates_return_rows(connection):
            columns = ", ".join(connection.ops.quote_name(name) for name in returned)
            cursor.execute(f"{sql} RETURNING {columns}", params)
            row = cursor.fetchone()
        else:
            with transaction.atomic():
                cursor.execute(sql, params)
                taken = Hook.objects.filter(pk=hook_id).values_list(*returned)
                row = taken.first() if cursor.rowcount else None
    if row is None:
        return None
    count, full_at, limit = int(row[0]), float(row[1]), max(int(row[2]), 1)
    return Grant(count, limit, max(0.0, full_at - 1.0 + 1.0 / limit - now))


def claim_within_limit(
    hook_id: int,
    want: int,
    *,
    token: uuid.UUID,
    callback_ids: Collection[int] | None,
    due_only: bool,
) -> tuple[list[Callback], Grant | None]:
    """Claim up to ``want`` callbacks of a limited hook, no more than it has tokens
    for, in one transaction; tokens the claim found no callback for go back."""
    with transaction.atomic():
        grant = take_tokens(hook_id, want)
        if grant is None or not grant.count:
            return [], grant
        batch = claim_batch(
            hook_id=hook_id,
            callback_ids=callback_ids,
            due_only=due_only,
            size=grant.count,
            token=token,
        )
        unused = grant.count - len(batch)
        if unused:
            Hook.objects.filter(pk=hook_id).update(
                rate_full_at=F("rate_full_at") - unused / grant.limit
            )
    return batch, grant


class RateLimits:
    """The rate-limited hooks as one sender knows them, kept from run to run: each
    one's limit, when a take may find a token, and which have callbacks due that
    wait for one (a run is not over while they do)."""

    def __init__(self) -> None:
        self.limits: dict[int, int] | None = None
        self.ready_at: dict[int, float] = {}  # time.monotonic(): no take before
        self.starved: set[int] = set()

    def hooks(self) -> dict[int, int]:
        """The limited hooks and their limits: a general claim leaves them out. Read
        once per sender, then kept up to date from its takes."""
        if self.limits is None:
            self.limits = with_reconnect(
                lambda: dict(
                    Hook.objects.filter(rate_limit__isnull=False).values_list("pk", "rate_limit")
                ),
                what="reading rate limits",
            )
        return self.limits

    def claim(
        self,
        size: int,
        *,
        room: Callable[[int], int],
        skip: Collection[int],
        hook_id: int | None,
        token: uuid.UUID,
        callback_ids: Collection[int] | None,
        due_only: bool,
    ) -> list[Callback]:
        """Claim up to ``size`` callbacks of the limited hooks that may have tokens now
        (not those of ``skip``, nor of another hook than ``hook_id`` when given), of each
        no more than ``room(hook)``: what the sender can start at once.

        A token stands for a request that goes out now. A claimed callback that waited
        for a free transfer would spend its token late, next to fresh ones: a slow
        receiver that turned fast would get its waiting callbacks and a full bucket at
        once. Tokens are taken only for hooks with callbacks to claim: those known to wait
        for a token, and the others once one query has found them some (a hundred
        idle limited hooks cost that one query, not a transaction each)."""
        now = time.monotonic()
        ready = []
        for limited in self.hooks():
            if limited in skip or hook_id not in (None, limited):
                self.starved.discard(limited)
            elif self.ready_at.get(limited, 0.0) <= now and room(limited) > 0:
                ready.append(limited)
        unknown = [limited for limited in ready if limited not in self.starved]
        if unknown:
            found = with_reconnect(
                lambda: hooks_with_claimable(
                    unknown, callback_ids=callback_ids, due_only=due_only, token=token
                ),
                what="finding rate-limited hooks with callbacks due",
            )
            for idle in set(unknown) - found:
                self.ready_at[idle] = now + IDLE_RECHECK
            ready = [limited for limited in ready if limited in self.starved or limited in found]
        batch: list[Callback] = []
        for limited in ready:
            if len(batch) >= size:
                break
            want = min(size - len(batch), room(limited))
            claimed, grant = with_reconnect(
                lambda limited=limited, want=want: claim_within_limit(
                    limited, want, token=token, callback_ids=callback_ids, due_only=due_only
                ),
                what="claiming callbacks of a rate-limited hook",
                undo=lost_claims(token),
            )
            self._note(limited, grant, wanted=want, claimed=len(claimed))
            batch += claimed
        return batch

    def admit(
        self, batch: list[Callback], *, room: Callable[[int], int]
    ) -> tuple[list[Callback], list[Callback]]:
        """Split callbacks claimed without tokens (a probe, or a claim made before this
        sender knew their hook was limited) into those the hook's tokens let through,
        as many as the sender can start at once (``room``), and those that go back."""
        kept: list[Callback] = []
        limited: dict[int, list[Callback]] = defaultdict(list)
        for callback in batch:
            if callback.hook.rate_limit is None:
                kept.append(callback)
            else:
                limited[callback.hook_id].append(callback)
        refused: list[Callback] = []
        for hook_id, callbacks in limited.items():
            want = min(len(callbacks), room(hook_id))
            if not want:  # its share is busy: all go back, and its next claim takes tokens
                self.hooks()[hook_id] = callbacks[0].hook.rate_limit
                refused += callbacks
                continue
            grant = with_reconnect(
                lambda hook_id=hook_id, want=want: take_tokens(hook_id, want),
                what="taking tokens",
            )
            count = len(callbacks) if grant is None else grant.count
            self._note(hook_id, grant, wanted=want, claimed=count)
            kept += callbacks[:count]
            refused += callbacks[count:]
        return kept, refused

    def next_token_in(self) -> float | None:
        """Seconds until a hook with callbacks due may get a token (0: now); None when
        no hook waits for one."""
        if not self.starved:
            return None
        now = time.monotonic()
        return max(0.0, min(self.ready_at.get(h, now) for h in self.starved) - now)

    def _note(self, hook_id: int, grant: Grant | None, *, wanted: int, claimed: int) -> None:
        """Learn from a take of ``wanted`` tokens of which ``claimed`` found a callback."""
        limits = self.hooks()
        if grant is None:  # no limit (any more): the general claim takes its callbacks
            limits.pop(hook_id, None)
            self.ready_at.pop(hook_id, None)
            self.starved.discard(hook_id)
            return
        limits[hook_id] = grant.limit
        now = time.monotonic()
        if claimed < grant.count:  # nothing more is due
            self.ready_at[hook_id] = now + IDLE_RECHECK
            self.starved.discard(hook_id)
        else:  # more may be due: when the bucket has a token again, or at once
            self.ready_at[hook_id] = now + (grant.next_in if grant.count < wanted else 0.0)
            self.starved.add(hook_id)
