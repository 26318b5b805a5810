"""The sender: a continuous claim, send and record pipeline (and the test event).

How a run goes, in one thread over one ``Transport`` (with a thread beside it
for the lease, and one for outcome writes):

- Claimed callbacks wait in a ``FairQueue``: one queue per hook, served
  round-robin, and no hook gets more than ``HOOK_CONCURRENCY`` transfers at
  once, so a hanging receiver always leaves room for the others.
- A transfer that ends frees its handle, which takes the next callback at
  once. When the queue runs low, or a free handle has nothing it may take,
  more due callbacks are claimed (leaving out hooks that already have their
  share waiting), at most ``BATCH_SIZE`` at a time.
- Outcomes are written as they come, in bulk, once ``OUTCOME_WINDOW``
  seconds have passed since the first unwritten one or ``OUTCOME_WINDOW_SIZE``
  are waiting. A crash therefore sends again only what was in flight and the
  unwritten window, and memory stays flat however many callbacks are due.
  Windows of successes are written on a thread of their own (``writer``) while
  the transfers go on, in halves: the one written and the one collecting hold no
  more than one window did.
- Callbacks with an ordering key are claimed only when they head their key
  (``ordering``); keyed outcomes are written, and their keys' next callbacks
  claimed, as soon as nothing claimed may start.
- The lease of everything the run holds is renewed by a ``LeaseKeeper``
  thread, never in the way of the transfers; a dropped database connection
  is reconnected (``with_reconnect``).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError
from django.utils import timezone

from ..exceptions import (
    HookChangedHandsError,
    InvalidFilterError,
    InvalidHeadersError,
    InvalidTargetURLError,
    TransportError,
)
from ..headers import parse_headers
from ..models import TEST_EVENT_TYPE, Attempt, Callback, CallbackStatus, Hook
from ..settings import hooks_settings
from ..transport import Outcome, Request, Transport
from .claims import (
    LeaseKeeper,
    claim_batch,
    claim_probe,
    lease_clock,
    lost_claims,
    release_claims,
    settle_left_behind,
)
from .collector import fewer_collections
from .health import held_hooks, slow_ms, stopping_failures, stops_hook
from .ordering import next_heads
from .outcomes import DeliveryReport, record_outcomes
from .processes import new_claim_token, run_failed
from .rates import RateLimits
from .reconnect import LAST_TRY_DELAYS, log_database_failure, out_of_reach, with_reconnect
from .recording import record
from .request import RequestShape, logged_headers, requests_for
from .writer import OutcomeWriter
from .writer import usable as writer_usable

logger = logging.getLogger(__name__)
# Outcomes are written at the latest this many seconds after the first unwritten
# one ended, or as soon as this many are waiting: with windows written beside the
# transfers (``writer``), half as many, so that the window being written and the one
# collecting hold no more (what a crash loses).
OUTCOME_WINDOW = 0.1
OUTCOME_WINDOW_SIZE = 512
# Seconds before a claim that found less than it asked for is repeated, while
# transfers run; each claim in a row that finds nothing doubles the pause, up to
# CLAIM_PAUSE_MAX. Newly due callbacks wait at most that long for a free slot, and
# a hook whose share is waiting (its other due callbacks left out of the claim,
# which the database must still step over) does not cost a query every 100 ms.
CLAIM_INTERVAL = 0.1
CLAIM_PAUSE_MAX = 0.5
# Seconds between two looks at what dead senders left behind (``settle_left_behind``),
# at most: a run looks when it starts, and such callbacks wait a lease for it anyway.
SETTLE_INTERVAL = 10.0
# Seconds a callback of a rate-limited hook may wait for a transfer after its token
# was taken: a token spent later would go out beside the fresh ones of the time it
# is spent, over the limit. Such a callback goes back, uncharged, for a fresh token.
TOKEN_LIFETIME = 0.1


# The hooks whose last try in this process was slow (``_Run.end``), or whose row
# says so (``Hook.slow_since``, written by any sender), for every run of the
# process: a run is often short (a task's, a sweep's, a loop's poll), and a hanging
# receiver's try often outlasts it. A quick try in this process takes its hook out.
SLOW_HOOKS: set[int] = set()


class FairQueue:
    """Claimed callbacks waiting for a transfer: one queue per hook, served
    round-robin; a hook holding ``limit`` transfers waits until one ends. The last
    free transfers (``take(idle_only=True)``) go to idle hooks: with none in flight,
    and not ``slow``."""

    def __init__(self, limit: int, slow: set[int] | None = None) -> None:
        self.limit = limit
        self.waiting: dict[int, deque[Callback]] = {}
        self.in_flight: Counter[int] = Counter()
        # Hooks with callbacks waiting and room for one more transfer, in turn.
        self.turns: deque[int] = deque()
        self.in_turns: set[int] = set()
        self.size = 0
        # Hooks whose turns come first: rate-limited ones, whose callbacks hold tokens.
        self.first: set[int] = set()
        # Hooks whose last try was slow (the sender says which): a receiver that hangs
        # holds a transfer until its timeout, and once known it takes no more of the
        # last transfers.
        self.slow = set() if slow is None else slow

    def __len__(self) -> int:
        return self.size

    def _offer(self, hook_id: int) -> None:
        if (
            hook_id in self.waiting
            and self.in_flight[hook_id] < self.limit
            and hook_id not in self.in_turns
        ):
            if hook_id in self.first:
                self.turns.appendleft(hook_id)
            else:
                self.turns.append(hook_id)
            self.in_turns.add(hook_id)

    def add(self, callbacks: Iterable[Callback], *, first: Iterable[int] = ()) -> None:
        """Queue ``callbacks``; those of the ``first`` hooks go before the others."""
        self.first.update(first)
        for callback in callbacks:
            hook_id = callback.hook_id
            self.waiting.setdefault(hook_id, deque()).append(callback)
            self.size += 1
            self._offer(hook_id)

    def idle(self, hook_id: int) -> bool:
        return not self.in_flight[hook_id] and hook_id not in self.slow

    def take(self, *, idle_only: bool = False) -> Callback | None:
        """The next callback to send (its hook's transfer counted), or None; with
        ``idle_only``, of an idle hook. Hooks passed over keep their turn; at most as
        many as there are transfers in flight or slow hooks waiting are."""
        for _ in range(len(self.turns)):
            hook_id = self.turns[0]
            if not idle_only or self.idle(hook_id):
                break
            self.turns.rotate(-1)
        else:
            return None
        self.turns.popleft()
        self.in_turns.discard(hook_id)
        queue = self.waiting[hook_id]
        callback = queue.popleft()
        self.size -= 1
        if not queue:
            del self.waiting[hook_id]
        self.in_flight[hook_id] += 1
        self._offer(hook_id)  # to the back of the line
        return callback

    def done(self, hook_id: int) -> None:
        """A transfer of ``hook_id`` ended."""
        self.in_flight[hook_id] -= 1
        if not self.in_flight[hook_id]:
            del self.in_flight[hook_id]
        self._offer(hook_id)

    def ready(self, *, idle_only: bool = False) -> bool:
        """True when a waiting callback may start now (``take``)."""
        if not idle_only:
            return bool(self.turns)
        return any(self.idle(hook_id) for hook_id in self.turns)

    def room(self, hook_id: int) -> int:
        """Transfers ``hook_id`` may start besides those it holds and has waiting."""
        return self.limit - self.in_flight[hook_id] - len(self.waiting.get(hook_id, ()))

    def provided(self) -> set[int]:
        """Hooks with a full share waiting: claims leave them out."""
        return {hook_id for hook_id, queue in self.waiting.items() if len(queue) >= self.limit}

    def remove(self, hook_ids: Collection[int]) -> list[int]:
        """Take the waiting callbacks of ``hook_ids`` out; return their ids."""
        ids = []
        for hook_id in hook_ids:
            queue = self.waiting.pop(hook_id, None)
            if queue:
                ids += [callback.pk for callback in queue]
                self.size -= len(queue)
                if hook_id in self.in_turns:
                    self.in_turns.discard(hook_id)
                    self.turns.remove(hook_id)
        return ids

    def drain(self) -> list[int]:
        """Empty the queue; return the ids of the callbacks that were waiting."""
        ids = [callback.pk for queue in self.waiting.values() for callback in queue]
        self.waiting.clear()
        self.turns.clear()
        self.in_turns.clear()
        self.size = 0
        return ids


class Sender:
    """A transport (``CONCURRENCY`` transfers at once over keep-alive connections),
    reused run after run (and poll after poll in loop mode)."""

    def __init__(self) -> None:
        self.transport = Transport()
        self.rates = RateLimits()
        # What a run could not write because the database was out of reach once
        # reconnecting had given up: windows of outcomes (the callbacks, their
        # outcomes, the probes among them), and claimed callbacks never started (the
        # claim's token, their ids, the hooks whose probe they hold). The next run
        # writes them before it claims anything (a loop worker's next poll, once the
        # database is back), while the lease still holds the callbacks for this sender:
        # thrown away, the outcomes' callbacks would be sent again after the lease, and
        # the unstarted ones wait for it. A sender that ends tries once more (``let_go``).
        self.unwritten: list[tuple[tuple[Callback, ...], tuple[Outcome, ...], set[int]]] = []
        self.unreleased: list[tuple[uuid.UUID, list[int], set[int]]] = []

    @property
    def behind(self) -> bool:
        """True when an earlier run left outcomes or claims to write (``unwritten``)."""
        return bool(self.unwritten or self.unreleased)

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.let_go()
        finally:
            self.transport.close()

    def catch_up(self, report: DeliveryReport, *, delays: Sequence[float] | None = None) -> None:
        """Write what an earlier run could not (``unwritten``), oldest first, counted in
        ``report``; each is dropped from the lists once written. Raises the database's
        error while it is still out of reach (reconnecting after each of ``delays``)."""
        while self.unwritten:
            callbacks, outcomes, probes = self.unwritten[0]
            try:
                record(callbacks, outcomes, report, probes, reconnect_delays=delays)
            except DatabaseError as exc:
                if out_of_reach(exc):
                    raise  # still away: kept for the next run
                # Never in the way of every run after it: dropped, its callbacks are
                # sent again after the lease, but those ``record`` could write one at a
                # time (``recording``).
                logger.exception("sender: could not write the outcomes kept from a run")
            del self.unwritten[0]
        while self.unreleased:
            token, ids, probed = self.unreleased[0]
            with_reconnect(
                lambda token=token, ids=ids, probed=probed: release_claims(
                    token, ids, probed_hooks=probed
                ),
                what="releasing claims",
                delays=delays,
            )
            del self.unreleased[0]

    def let_go(self) -> DeliveryReport:
        """Before the sender ends (a loop worker asked to stop, a run that failed): one
        last, short try (``LAST_TRY_DELAYS``) to write what earlier runs could not
        (``unwritten``); what it writes is counted in the report returned.

        What the database still refuses is said in one line and dropped: its callbacks
        stay ``sending`` until their lease runs out (nothing renews it once the run
        is over), then any sender's claim takes them over, as a killed sender's. Those
        whose outcome was lost are sent again; the unstarted ones are sent then."""
        report = DeliveryReport()
        if not self.behind:
            return report
        try:
            self.catch_up(report, delays=LAST_TRY_DELAYS)
        except DatabaseError:
            outcomes = sum(len(callbacks) for callbacks, _, _ in self.unwritten)
            claims = sum(len(ids) for _, ids, _ in self.unreleased)
            self.unwritten.clear()
            self.unreleased.clear()
            log_database_failure(
                logger,
                "sender: ending without writing %s outcome(s) and %s claimed callback(s) "
                "not started; they are sent once their lease runs out (LEASE_SECONDS=%s)",
                outcomes,
                claims,
                hooks_settings.LEASE_SECONDS,
            )
        return report

    def restart(self) -> None:
        """A new transport in place of one that failed."""
        self.transport.close()
        self.transport = Transport()

    def send(
        self,
        *,
        hook_id: int | None = None,
        callback_ids: Collection[int] | None = None,
        due_only: bool = False,
        limit: int | None = None,
        progress: Callable[[int], Any] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> DeliveryReport:
        """Claim, send and record until nothing is due and nothing in flight, ``limit``
        callbacks were claimed, or ``stop()``.

        Listed callbacks are due whatever their retry time, so each is tried
        once per run: a failed one is not claimed again straight away. On
        ``stop()`` the transfers in flight finish and are recorded; claimed
        callbacks not yet started are given back.
        """
        run = _Run(
            self, self.transport, self.rates, hook_id, callback_ids, due_only, limit, progress, stop
        )
        return run.go()


class _Run:
    """One ``Sender.send()``: the pipeline's state."""

    def __init__(
        self,
        sender: Sender,
        transport: Transport,
        rates: RateLimits,
        hook_id: int | None,
        callback_ids: Collection[int] | None,
        due_only: bool,
        limit: int | None,
        progress: Callable[[int], Any] | None,
        stop: Callable[[], bool] | None,
    ) -> None:
        self.sender = sender
        self.transport = transport
        self.rates = rates
        self.unwritten, self.unreleased = sender.unwritten, sender.unreleased
        self.hook_id = hook_id
        self.untried = None if callback_ids is None else set(callback_ids)
        self.due_only = due_only
        self.left = limit  # callbacks this run may still claim (None: any number)
        self.progress = progress
        self.asked_stop = stop
        # What the caller's ``progress`` or ``stop`` raised: the run stops as if asked
        # (the transfers in flight finish and are recorded, the rest go back), then raises
        # it. Raised where it happened, it left the callbacks in flight ``sending``, sent
        # but unrecorded, to go out again once their lease ran out.
        self.caller_failed: BaseException | None = None
        self.token = new_claim_token()
        self.queue = FairQueue(hooks_settings.hook_concurrency, SLOW_HOOKS)
        self.concurrency = int(hooks_settings.CONCURRENCY)
        self.lease = int(hooks_settings.LEASE_SECONDS)
        # The last quarter of the transfers is kept for idle hooks (``FairQueue``: none
        # in flight, not slow): two or three receivers that hang (each holding its
        # share until the read timeout) must not take every transfer from the others,
        # nor can more of them once each has had a slow try. Not more than one hook's
        # share leaves: HOOK_CONCURRENCY = CONCURRENCY lets a hook have them all.
        self.slow_ms = slow_ms()
        share = hooks_settings.hook_concurrency
        self.reserve = max(0, min(self.concurrency // 4, self.concurrency - share))
        self.batch_size = int(hooks_settings.BATCH_SIZE)
        # A claim that came back short is not repeated for ``claim_pause``, unless
        # a hook it left out has since run out of waiting callbacks. A claim that
        # leaves out hooks with their share waiting, after one that found nothing,
        # waits until ``others_claim``.
        self.next_claim = 0.0
        self.others_claim = 0.0
        self.claim_pause = CLAIM_INTERVAL
        self.short_without: set[int] = set()
        # Each transfer's callback and its request headers as the attempt log keeps them.
        self.in_flight: dict[int, tuple[Callback, dict[str, str]]] = {}
        # What each hook's requests share (by hook and content type), made once per
        # claim (which loads the hooks afresh).
        self.shapes: dict[tuple[int, str], RequestShape] = {}
        self.ended: list[tuple[Callback, Outcome]] = []
        # Windows of plain successes are written beside the transfers (``writer``), when
        # another connection may: the one being written, and what it holds.
        self.writer = OutcomeWriter() if writer_usable() else None
        self.window_size = OUTCOME_WINDOW_SIZE // (2 if self.writer else 1)
        self.writing: tuple[Future[set[int]], list[tuple[Callback, Outcome]]] | None = None
        # This run's probes of paused hooks (callback id: hook id) until their outcome
        # is written, and each failing hook's failed tries in a row as far as this run
        # knows (``health``).
        self.probes: dict[int, int] = {}
        self.failures: dict[int, int] = {}
        # Callbacks of rate-limited hooks: when their token was taken (time.monotonic());
        # and those that waited past TOKEN_LIFETIME, to give back.
        self.token_taken: dict[int, float] = {}
        # Claimed callbacks that go back unstarted, uncharged: those whose token waited
        # past TOKEN_LIFETIME, and those whose lease may have run out (``start``).
        self.to_give_back: list[int] = []
        self.lapsed = 0  # of those, the ones whose lease may have run out
        # The paused and disabled hooks (``held_hooks``), read again at most every
        # CLAIM_INTERVAL: a hook paused by another sender is left out that much later.
        self.held: dict[int, datetime | None] = {}
        self.held_read_at = -CLAIM_INTERVAL
        self.settled_at = -SETTLE_INTERVAL
        self.stopping_failures = stopping_failures()
        self.window_ends = 0.0
        self.report = DeliveryReport()

    def go(self) -> DeliveryReport:
        started = time.monotonic()
        self.sender.catch_up(self.report)
        keeper = self.keeper = LeaseKeeper(self.token, self.probes)
        keeper.start()
        try:
            with fewer_collections():
                self.pump()
        except BaseException as exc:
            run_failed(self.token)
            self.wind_up(exc)
            # A run stopping for the caller's error (``caller_failed``) that failed on
            # the way, the database away say, raises the caller's error, this one logged.
            if self.caller_failed is None or not isinstance(exc, Exception):
                raise
            log_database_failure(
                logger, "sender: stopping for an error of the caller's, the run failed too"
            )
        finally:
            keeper.stop()
            if self.writer is not None:
                self.writer.close()
        if self.caller_failed is not None:
            raise self.caller_failed
        self.report.duration = time.monotonic() - started
        return self.report

    def wind_up(self, exc: BaseException) -> None:
        """After ``exc`` ended the run: keep or write what it holds."""
        if out_of_reach(exc):
            # Reconnecting gave up: the transfers in flight finish, and what the run
            # could not write is kept for the next run (``Sender.unwritten``), instead
            # of being sent again after the lease.
            self.finish_in_flight()
            self.keep_for_later()
            return
        # What ended is written if the database lets us; what was in flight
        # is sent again after the lease.
        self.transport.abandon()
        try:
            self.flush()
            self.release_waiting()
        except Exception as failure:
            if out_of_reach(failure):
                self.keep_for_later()
            else:
                logger.exception("sender: could not write what it had done before failing")

    def finish_in_flight(self) -> None:
        """Let the transfers in flight end (within their timeouts) and keep their outcomes."""
        try:
            while self.transport.busy:
                for key, outcome in self.transport.poll(1.0):
                    callback, outcome.request_headers = self.in_flight.pop(key)
                    self.queue.done(callback.hook_id)
                    self.end(callback, outcome)
        except TransportError:
            logger.exception("sender: the HTTP transport failed while the database was away")
            self.transport.abandon()

    def keep_for_later(self) -> None:
        """Keep the outcomes not written and the claimed callbacks not started for the
        next run (``Sender.unwritten``)."""
        try:
            self.join_writing()
        except DatabaseError:
            # Out of reach: its outcomes are back in ``ended``. Otherwise they are lost,
            # and their callbacks sent again after the lease.
            log_database_failure(logger, "sender: a window of outcomes was not written")
        if self.ended:
            callbacks, outcomes = zip(*self.ended, strict=True)
            self.ended = []
            probes = {callback.pk for callback in callbacks if callback.pk in self.probes}
            self.unwritten.append((callbacks, outcomes, probes))
        ids, self.to_give_back = self.queue.drain() + self.to_give_back, []
        if ids:
            probed = {self.probes[pk] for pk in ids if pk in self.probes}
            self.unreleased.append((self.token, ids, probed))

    def stop(self) -> bool:
        """Whether the run is to stop: the caller's ``stop()``, or its ``progress`` or
        ``stop`` failed."""
        if self.caller_failed is None and self.asked_stop is not None:
            try:
                return bool(self.asked_stop())
            except Exception as exc:
                self.caller_failed = exc
        return self.caller_failed is not None

    def pump(self) -> None:
        transport, queue = self.transport, self.queue
        while True:
            stopping = self.stop()
            if stopping:
                self.release_waiting()
            elif not queue and not transport.busy:
                # Idle: one more claim says whether the run is over (after the last
                # outcomes are written: a probe's may have resumed its hook).
                self.flush()
                if not self.claim() and not self.wait_for_tokens():
                    break
            elif self.wants_claim() and self.may_claim():
                self.claim()
            if not stopping and self.stop():
                # Asked to stop while a claim waited for the database (a lock, a
                # migration): what it brought goes back unstarted.
                stopping = True
                self.release_waiting()
            if transport.free and queue.ready():
                self.look_again()
            while transport.free and (
                callback := queue.take(idle_only=transport.free <= self.reserve)
            ):
                self.start(callback)
            if not transport.busy:
                self.flush()
                if stopping:
                    break
                continue
            now = time.monotonic()
            wait = 1.0
            if self.ended:
                wait = self.window_ends - now
            if not stopping and self.wants_claim():
                wait = min(wait, self.claim_time() - now)
            for key, outcome in transport.poll(max(wait, 0.0)):
                callback, outcome.request_headers = self.in_flight.pop(key)
                queue.done(callback.hook_id)
                self.end(callback, outcome)
            if self.ended and (
                len(self.ended) >= self.window_size or time.monotonic() >= self.window_ends
            ):
                self.flush(beside=True)
        self.flush()

    def look_again(self) -> None:
        """Look again at the hooks of the claimed callbacks not yet started, when no claim
        does (none is made while the queue is full): those of a hook deleted since the
        claim (its callbacks went with it) are dropped, and the held hooks are read again
        (``read_held``), so that a hook paused or disabled since by another sender gets
        no request that starts later than CLAIM_INTERVAL after the change, however many
        of its callbacks this run holds. At most every CLAIM_INTERVAL, only while claimed
        callbacks wait for a transfer."""
        if time.monotonic() < self.held_read_at + CLAIM_INTERVAL or not self.queue.waiting:
            return
        queued = set(self.queue.waiting)
        present = with_reconnect(
            lambda: set(Hook.objects.filter(pk__in=queued).values_list("pk", flat=True)),
            what="reading the hooks of claimed callbacks",
        )
        gone = queued - present
        if gone:
            dropped = self.queue.remove(gone)
            for pk in dropped:
                self.token_taken.pop(pk, None)
                self.probes.pop(pk, None)
            logger.info(
                "%s claimed callbacks of deleted hooks %s: not sent", len(dropped), sorted(gone)
            )
        self.read_held()

    def read_held(self) -> None:
        """Read the held hooks (``held_hooks``: paused, waiting for a probe, disabled by
        http_hooks) and give back the claimed callbacks of theirs not started, but this
        run's own probes (their hooks are held by this very run)."""
        self.held = with_reconnect(held_hooks, what="reading paused hooks")
        self.held_read_at = time.monotonic()
        self.release_waiting(self.held.keys() - set(self.probes.values()))

    def release_waiting(self, hook_ids: Collection[int] | None = None) -> None:
        """Give back the claimed callbacks that were not started (of ``hook_ids`` only,
        when given: hooks that were paused or disabled meanwhile)."""
        if self.queue:
            ids = self.queue.drain() if hook_ids is None else self.queue.remove(hook_ids)
            self.give_back(ids)

    def give_back(self, ids: list[int]) -> None:
        """Give back claimed callbacks that were not started, uncharged. A probe among
        them ends its hook's hold, or the hook would stay paused for LEASE_SECONDS with
        nothing tried."""
        unsent = {self.probes.pop(pk) for pk in ids if pk in self.probes}
        for pk in ids:
            self.token_taken.pop(pk, None)
        if ids:
            try:
                with_reconnect(
                    lambda: release_claims(self.token, ids, probed_hooks=unsent),
                    what="releasing claims",
                )
            except DatabaseError as exc:
                if out_of_reach(exc):
                    self.unreleased.append((self.token, ids, unsent))
                raise

    def exhausted(self) -> bool:
        """True when this run may claim nothing more."""
        return self.untried == set() or self.left == 0

    def wants_claim(self) -> bool:
        """True when more callbacks should be claimed: the queue runs low, or a free
        transfer has nothing it may take."""
        if self.exhausted():
            return False
        free = self.transport.free
        return len(self.queue) < self.concurrency or (
            free > 0 and not self.queue.ready(idle_only=free <= self.reserve)
        )

    def claim_time(self) -> float:
        """When (``time.monotonic()``) the claim the run wants may be made."""
        if self.queue.provided():  # it leaves hooks out
            return max(self.next_claim, self.others_claim)
        return self.next_claim

    def may_claim(self) -> bool:
        """False before ``claim_time()``, unless a hook a short claim left out has
        since run out of waiting callbacks (its own may be due)."""
        now, provided = time.monotonic(), self.queue.provided()
        if provided and now < self.others_claim:
            return False
        return now >= self.next_claim or not self.short_without <= provided

    def claim(self) -> int:
        if self.exhausted():
            return 0
        leased_at = lease_clock()  # before the claims: their leases end later
        fresh = time.monotonic() >= self.held_read_at + CLAIM_INTERVAL
        if fresh:
            self.read_held()
            # Not by a run of listed callbacks (a queued task's): it is not the one to look.
            if self.untried is None and time.monotonic() >= self.settled_at + SETTLE_INTERVAL:
                with_reconnect(
                    lambda: settle_left_behind(self.held.keys()),
                    what="settling what dead senders left behind",
                )
                self.settled_at = time.monotonic()
        held = self.held
        provided = self.queue.provided()
        # Room up to BATCH_SIZE waiting, not counting hooks that have their share
        # waiting already (a hanging one's would shrink every claim to nothing).
        waiting = len(self.queue) - sum(len(self.queue.waiting[h]) for h in provided)
        limit = min(self.batch_size, max(self.concurrency, self.batch_size - waiting))
        if self.left is not None:
            limit = min(limit, self.left)
        batch = self.within_limits(self.claim_probes(held, limit)) if fresh else []
        # Rate-limited hooks first, as far as their tokens go; the others after them.
        if len(batch) < limit:
            batch += self.rates.claim(
                limit - len(batch),
                room=self.queue.room,
                skip=provided | held.keys(),
                hook_id=self.hook_id,
                token=self.token,
                callback_ids=self.untried,
                due_only=self.due_only,
            )
        if len(batch) < limit:
            general = with_reconnect(
                lambda: claim_batch(
                    hook_id=self.hook_id,
                    callback_ids=self.untried,
                    due_only=self.due_only,
                    size=limit - len(batch),
                    token=self.token,
                    exclude_hooks=provided | held.keys() | self.rates.hooks().keys(),
                ),
                what="claiming callbacks",
                undo=lost_claims(self.token),
            )
            batch += self.within_limits(general)
        if len(batch) < limit:
            self.next_claim = time.monotonic() + self.claim_pause
            self.short_without = provided
        else:
            self.next_claim = 0.0
        # Only other hooks' callbacks make the run look again soon: a refill for
        # the hooks it is sending already says nothing about the others, and with
        # one busy hook every claim for others would find nothing.
        sending = self.queue.waiting.keys() | self.queue.in_flight.keys()
        if batch and (provided or any(c.hook_id not in sending for c in batch)):
            self.claim_pause = CLAIM_INTERVAL
        elif not batch:
            self.claim_pause = min(self.claim_pause * 2, CLAIM_PAUSE_MAX)
        if provided and not batch:
            self.others_claim = time.monotonic() + self.claim_pause
        # What other senders (and this process's earlier ones) met, as the hooks' rows
        # say: a slow hook is slow here from the start. Only a quick try here makes it
        # idle again (``end``), never a row read before that try's outcome was written.
        self.queue.slow.update(
            {callback.hook_id for callback in batch if callback.hook.slow_since is not None}
        )
        for callback in batch:
            callback.leased_at = leased_at
        if self.untried is not None:
            self.untried.difference_update(callback.pk for callback in batch)
        if self.left is not None:
            self.left -= len(batch)
        self.shapes.clear()
        limited = {c.hook_id for c in batch if c.hook.rate_limit is not None}
        if limited:
            now = time.monotonic()
            self.token_taken.update((c.pk, now) for c in batch if c.hook_id in limited)
        self.queue.add(batch, first=limited)
        return len(batch)

    def within_limits(self, batch: list[Callback]) -> list[Callback]:
        """``batch`` less the callbacks of rate-limited hooks that it holds without a
        token (``RateLimits.admit``), which go back uncharged."""
        kept, refused = self.rates.admit(batch, room=self.queue.room)
        if refused:
            self.give_back([callback.pk for callback in refused])
        return kept

    def wait_for_tokens(self) -> bool:
        """With nothing to send, sleep until a rate-limited hook with callbacks due may
        have a token (at least CLAIM_INTERVAL: what the bucket gains meanwhile is
        taken at once); False when none waits for one, and the run is over."""
        wait = self.rates.next_token_in()
        if wait is None or self.exhausted():
            return False
        time.sleep(min(max(wait, CLAIM_INTERVAL), CLAIM_PAUSE_MAX))
        return True

    def claim_probes(self, held: dict[int, datetime | None], limit: int) -> list[Callback]:
        """One probe of each paused hook whose pause has passed (``claim_probe``)."""
        now = timezone.now()
        probes: list[Callback] = []
        for hook_id, until in held.items():
            if len(probes) >= limit:
                break
            if until is None or until > now or self.hook_id not in (None, hook_id):
                continue
            probes += with_reconnect(
                lambda hook_id=hook_id, until=until: claim_probe(
                    hook_id=hook_id,
                    paused_until=until,
                    token=self.token,
                    callback_ids=self.untried,
                    due_only=self.due_only,
                ),
                what="claiming a probe",
                undo=lost_claims(self.token),
            )
        self.probes.update((callback.pk, callback.hook_id) for callback in probes)
        return probes

    def start(self, callback: Callback) -> None:
        """Start one try of ``callback``; its request is made (and signed) now, as it goes out.
        One whose rate-limit token is past TOKEN_LIFETIME goes back instead, and so
        does one whose lease may have run out: a sender stalled longer than
        LEASE_SECONDS (a stopped process, a paused machine) finds on waking that
        another may have taken and sent it; given back, it is claimed afresh if not."""
        pk = callback.pk
        taken = self.token_taken.pop(pk, None)
        renewed = self.keeper.renewed  # before lapsed_before (``LeaseKeeper``)
        lapsed = (
            max(callback.leased_at, renewed) + self.lease <= lease_clock()
            or callback.leased_at <= self.keeper.lapsed_before
        )
        if lapsed or (taken is not None and time.monotonic() - taken > TOKEN_LIFETIME):
            self.lapsed += int(lapsed)
            self.queue.done(callback.hook_id)
            self.to_give_back.append(pk)
            return
        try:
            request, logged = self.shape_of(callback).request(callback)
        except (ValueError, InvalidTargetURLError, InvalidHeadersError) as exc:
            self.queue.done(callback.hook_id)
            self.end(callback, Outcome(error=f"invalid request: {exc}", invalid=True))
            return
        failed = self.transport.start(pk, request)
        if failed is None:
            self.in_flight[pk] = (callback, logged)
            return
        self.queue.done(callback.hook_id)
        failed.request_headers = logged
        self.end(callback, failed)

    def shape_of(self, callback: Callback) -> RequestShape:
        key = (callback.hook_id, callback.content_type)
        shape = self.shapes.get(key)
        if shape is None:
            hook = callback.hook
            shape = self.shapes[key] = RequestShape(
                parse_headers(hook.headers, stored=True), callback.content_type, hook.secret_headers
            )
        return shape

    def end(self, callback: Callback, outcome: Outcome) -> None:
        """Keep ``outcome`` for the window's write. One that may pause or disable its
        hook (a Retry-After, a 410, a failure that may open the breaker or disable the
        hook) closes the window at once: the hook's waiting callbacks go back before
        any starts."""
        if not self.ended:
            self.window_ends = time.monotonic() + OUTCOME_WINDOW
        hook_id = callback.hook_id
        if outcome.duration_ms >= self.slow_ms:
            self.queue.slow.add(hook_id)
        else:
            self.queue.slow.discard(hook_id)
        if outcome.ok:
            self.failures.pop(hook_id, None)
        else:
            failures = self.failures.get(hook_id, callback.hook.consecutive_failures) + 1
            self.failures[hook_id] = failures
            if stops_hook(outcome) or failures >= self.stopping_failures:
                self.window_ends = 0.0
        if callback.ordering_key and not self.queue.ready():
            # Nothing claimed may start: the next callbacks of the keys that ended may go
            # once their outcomes are written, not a window later.
            self.window_ends = 0.0
        self.ended.append((callback, outcome))
        if self.progress and self.caller_failed is None:
            try:
                self.progress(1)
            except Exception as exc:
                self.caller_failed = exc

    def follow_keys(self, written: Collection[Callback]) -> None:
        """After the outcomes of keyed callbacks are written, their keys' next callbacks
        may be claimed (``ordering``): at once, not after a claim's pause. A queued
        worker's run (listed callbacks, ``due_only``) takes them too: the tasks that
        listed them may have left them already, as they were not heads then."""
        if not any(callback.ordering_key for callback in written):
            return
        self.next_claim = 0.0
        self.claim_pause = CLAIM_INTERVAL
        if self.untried is not None and self.due_only:
            self.untried.update(
                with_reconnect(lambda: next_heads(written), what="finding the keys' next callbacks")
            )

    def flush(self, *, beside: bool = False) -> None:
        """Write the outcomes that ended, in bulk; give back the callbacks whose
        rate-limit token expired before a transfer was free. With ``beside``, a window
        of plain successes is written on the writer's thread while this one goes on
        sending (``writer``); the others wait for it: whatever may pause a hook, resume
        one or free a key is written before anything more starts."""
        self.join_writing()
        if self.ended:
            # Taken first: outcomes that could not be written are not tried again in
            # this run; when the database was out of reach, they stay, for
            # ``keep_for_later`` to keep for the sender's next run, otherwise their
            # callbacks are sent again after the lease, but those ``record`` could
            # write one at a time (``recording``).
            ended, self.ended = self.ended, []
            callbacks, outcomes = zip(*ended, strict=True)
            if beside and self.writer is not None and self.plain(ended):
                report = self.report
                self.writing = (
                    self.writer.submit(lambda: record(callbacks, outcomes, report, ())),
                    ended,
                )
            else:
                try:
                    paused = record(callbacks, outcomes, self.report, self.probes)
                except DatabaseError as exc:
                    if out_of_reach(exc):
                        self.ended = ended + self.ended
                    raise
                self.written(callbacks, paused)
        if self.to_give_back:
            expired, self.to_give_back = self.to_give_back, []
            if self.lapsed:
                logger.warning(
                    "%s claimed callbacks not sent: their lease may have run out while the "
                    "sender was stalled (LEASE_SECONDS=%s); they go back to waiting, unless "
                    "another sender has taken them",
                    self.lapsed,
                    self.lease,
                )
                self.lapsed = 0
            self.give_back(expired)

    def plain(self, ended: list[tuple[Callback, Outcome]]) -> bool:
        """Whether a window holds only successes of callbacks with no key, none a probe."""
        probes = self.probes
        return all(
            outcome.ok and not callback.ordering_key and callback.pk not in probes
            for callback, outcome in ended
        )

    def join_writing(self) -> None:
        """Wait for the window being written beside the transfers, if any; when the
        database was out of reach, its outcomes go back to ``ended``."""
        if self.writing is None:
            return
        future, ended = self.writing
        try:
            paused = future.result()
        except BaseException as exc:
            # Not the write's own error but one raised while waiting (a signal's: Ctrl-C,
            # Celery's soft time limit): the window stays, for the run's way out to wait
            # for again (``wind_up``) and to keep its outcomes if the write fails.
            if future.done() and future.exception() is exc:
                self.writing = None
                if out_of_reach(exc):
                    self.ended = ended + self.ended
            raise
        self.writing = None
        self.written([callback for callback, _ in ended], paused)

    def written(self, callbacks: Sequence[Callback], paused: set[int]) -> None:
        """After a window's outcomes were written: free its keys, end its probes, give
        back the waiting callbacks of the hooks it paused."""
        self.follow_keys(callbacks)
        probed = [callback.pk for callback in callbacks if callback.pk in self.probes]
        if probed:
            # A probe's answer may have resumed its hook: the next claim reads again.
            for pk in probed:
                del self.probes[pk]
            self.held_read_at = -CLAIM_INTERVAL
        self.held.update(dict.fromkeys(paused))
        self.release_waiting(paused)


def send(transport: Transport, batch: list[Callback]) -> list[Outcome]:
    """One try of each callback of ``batch`` (the test event's), all at once."""
    requests: list[Request | None] = [None] * len(batch)
    make_request = requests_for(batch)

    def request_at(index: int) -> Request:
        requests[index] = request = make_request(index)
        return request

    outcomes = transport.send_all(len(batch), request_at)
    for callback, request, outcome in zip(batch, requests, outcomes, strict=True):
        if request is not None:
            outcome.request_headers = logged_headers(request.headers, callback.hook.secret_headers)
    return outcomes


def send_callbacks(
    *,
    hook_id: int | None = None,
    callback_ids: Collection[int] | None = None,
    due_only: bool = False,
    limit: int | None = None,
    progress: Callable[[int], Any] | None = None,
    stop: Callable[[], bool] | None = None,
) -> DeliveryReport:
    """Send every due callback (of one hook, or the listed ones, due or not); return counts.

    With ``due_only`` the listed callbacks are sent only when due (a queued
    task run again must not bring a retry forward); with ``limit`` at most that
    many are tried (one web request sends a batch). ``progress(n)`` is called
    as callbacks finish; ``stop()`` is asked as the sender goes: stopping
    finishes the transfers in flight and gives back claimed callbacks not yet
    started.
    Raises ``InvalidFilterError`` for a hook that does not exist.
    """
    if hook_id is not None and not Hook.objects.filter(pk=hook_id).exists():
        raise InvalidFilterError(f"no hook with id {hook_id}", field="hook_id")
    with Sender() as sender:
        return sender.send(
            hook_id=hook_id,
            callback_ids=callback_ids,
            due_only=due_only,
            limit=limit,
            progress=progress,
            stop=stop,
        )


def send_test_event(hook: Hook) -> Attempt:
    """Send a synthetic ``http_hooks.test`` event to ``hook`` now; return its Attempt.

    The event is a stored callback delivered by the same code as any other
    (signed, policy-checked, logged), but tried once only: a test answers "does
    the receiver work now?", and a retry an hour later would answer nothing.
    ``HookChangedHandsError`` when the hook, or the callback, was deleted while the
    request was out (the answer has nowhere to be kept).
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
        owner=hook.owner,
        event_type=TEST_EVENT_TYPE,
        target_url=hook.target_url,
        http_method=hook.http_method,
        payload=json.dumps(payload),
        content_type="application/json",
        status=CallbackStatus.SENDING,
        claim_token=uuid.uuid4(),
        # No lease keeper renews it: its lease outlasts the one try it gets, however
        # short LEASE_SECONDS is, or a sender would end it as left behind mid-try.
        claimed_until=now
        + timedelta(
            seconds=int(hooks_settings.LEASE_SECONDS)
            + hooks_settings.connect_timeout
            + hooks_settings.read_timeout
        ),
        next_attempt_at=now,
        create_datetime=now,
        update_datetime=now,
    )
    with Transport(concurrency=1) as transport:
        outcomes = send(transport, [callback])
    record_outcomes([callback], outcomes, DeliveryReport(), max_attempts=1)
    attempt = callback.attempt_log.first()
    if attempt is None:
        raise HookChangedHandsError(
            "The hook or its test callback was deleted while the test event was out; "
            "its answer was not kept."
        )
    return attempt
