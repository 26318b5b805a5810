"""Endpoint health: Retry-After, 410 Gone, the circuit breaker and auto-disable.

A hook's health is a few columns of its row (``paused_until``,
``consecutive_failures``, ``breaker_trips``, ``failing_since``,
``last_success_at``, ``last_failure_at`` and its reason, ``disabled_reason``,
``disabled_at``, ``slow_since``), written with the
outcomes of each window (``outcomes.record_outcomes``), in the same
transaction, and only for hooks whose state changes.

- A paused hook's callbacks are not claimed (``held_hooks``). When the pause
  has passed, one sender moves ``paused_until`` forward while claiming one
  callback of the hook, in one transaction (``claims.claim_probe``): that
  probe's answer decides. A success resumes the hook; a failure pauses it again.
- ``BREAKER_FAILURES`` failed tries in a row pause the hook for
  ``BREAKER_COOLDOWN`` seconds, doubled at each failed probe up to an hour.
- A 429 or 503 with ``Retry-After`` pauses the hook until then (at most
  ``RETRY_AFTER_MAX`` seconds); a 410 Gone disables it (``DISABLE_ON_GONE``),
  and so does failing with no success for ``AUTO_DISABLE_AFTER`` seconds and
  ``AUTO_DISABLE_FAILURES`` tries. A hook disabled this way keeps its waiting
  callbacks until it is enabled again (``services.enable_hook``).
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import reduce

from django.db import transaction
from django.db.models import Case, DateTimeField, Exists, F, OuterRef, Q, Value, When
from django.utils import timezone

from ..models import Callback, CallbackStatus, DisabledReason, Hook
from ..settings import hooks_settings
from ..signals import hook_disabled
from ..text import ascii_digits
from ..transport import Outcome, printable
from .ids import among

logger = logging.getLogger(__name__)

COOLDOWN_MAX = 3600.0
THROTTLING_STATUSES = frozenset({429, 503})
GONE = 410
# ``last_success_at`` of a healthy hook is written at most this often, so that a
# busy hook does not cost a write of its row per window of outcomes.
LAST_SUCCESS_RESOLUTION = timedelta(seconds=1)
# The start of the last failure's error kept on the hook (the attempt log has it whole).
LAST_FAILURE_REASON_LENGTH = 500
BREAKER_STATES = ("closed", "open", "half_open")
PAUSE_REASONS = ("", "breaker", "retry_after")
HEALTH_FIELDS = [
    "enabled",
    "paused_until",
    "consecutive_failures",
    "breaker_trips",
    "failing_since",
    "last_success_at",
    "last_failure_at",
    "last_failure_reason",
    "disabled_reason",
    "disabled_at",
    "slow_since",
]


def retry_after(outcome: Outcome, now: datetime) -> datetime | None:
    """When a 429 or 503 answer says to try again (``Retry-After`` in seconds or as
    an HTTP date), at most ``RETRY_AFTER_MAX`` seconds from ``now``; else None.
    A header sent twice (its values joined with ", ") counts with its first value."""
    if outcome.status_code not in THROTTLING_STATUSES:
        return None
    value = next(
        (v for k, v in outcome.response_headers.items() if k.lower() == "retry-after"), ""
    ).strip()
    parts = [part.strip() for part in value.split(",")]
    # The whole value, else the first of repeated ones: seconds, or a date ("Wed, 21 Oct …").
    for candidate in dict.fromkeys([value, parts[0], ", ".join(parts[:2])]):
        seconds = _seconds_after(candidate, now)
        if seconds is not None:
            return now + timedelta(seconds=seconds)
    return None


def _seconds_after(value: str, now: datetime) -> float | None:
    """The pause ``value`` (a Retry-After value) asks for, bounded by ``RETRY_AFTER_MAX``."""
    longest = float(hooks_settings.RETRY_AFTER_MAX)
    if ascii_digits(value):
        digits = value.lstrip("0") or "0"  # "0003600" is an hour
        return longest if len(digits) > 12 else min(float(digits), longest)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), longest)


def is_gone(outcome: Outcome) -> bool:
    return outcome.status_code == GONE


def slow_ms() -> float:
    """A try that lasts this long (milliseconds) or longer is slow: the shorter of the
    connect and read timeouts, more than a receiver that answers takes, no more than
    one that hangs holds its transfer."""
    return min(hooks_settings.connect_timeout, hooks_settings.read_timeout) * 1000


def stops_hook(outcome: Outcome) -> bool:
    """True when ``outcome`` may pause or disable its hook by itself (429, 503, 410)."""
    return outcome.status_code in THROTTLING_STATUSES or is_gone(outcome)


def stopping_failures() -> float:
    """Failed tries in a row from which a hook's next failure may pause or disable it."""
    counts = [hooks_settings.BREAKER_FAILURES, hooks_settings.AUTO_DISABLE_FAILURES]
    if hooks_settings.AUTO_DISABLE_AFTER is not None and counts[1] is None:
        counts[1] = 1
    return min((count for count in counts if count is not None), default=float("inf"))


def held_hooks() -> dict[int, datetime | None]:
    """The hooks whose callbacks are not claimed now, with their ``paused_until``:
    paused ones, those whose pause has passed while a callback of theirs is due (it
    waits for its probe), and the ones disabled by http_hooks (None).

    A pause that has passed with nothing due is left out: probing it would find
    nothing, at the cost of a transaction per such hook at every claim; its next due
    callback brings it back, to be probed.

    Two steps, so that healthy hooks cost one small query served by
    ``hook_held_idx`` and nothing else: one ``EXISTS`` over both kinds of due
    callback read the whole callbacks table on PostgreSQL (2.7 s at a million
    callbacks, bench/metrics.py), and SQLite looked for due callbacks of every hook
    (3 ms a claim at 10,000 callbacks). Due callbacks are looked for only for the
    hooks whose pause has passed."""
    now = timezone.now()
    rows = list(
        Hook.objects.filter(Q(paused_until__isnull=False) | ~Q(disabled_reason="")).values_list(
            "pk", "paused_until", "disabled_reason"
        )
    )
    with_due: set[int] = set()
    if any(not reason and until <= now for _, until, reason in rows):
        callbacks = Callback.objects.filter(hook=OuterRef("pk"))
        due = Exists(
            callbacks.filter(status=CallbackStatus.WAITING, next_attempt_at__lte=now)
        ) | Exists(callbacks.filter(status=CallbackStatus.SENDING, claimed_until__lt=now))
        # The passed pauses as a condition, not as their ids: they have no bound.
        passed = Hook.objects.filter(due, paused_until__lte=now, disabled_reason="")
        with_due = set(passed.values_list("pk", flat=True))
    return {
        pk: None if reason else until
        for pk, until, reason in rows
        if reason or until > now or pk in with_due
    }


def breaker_state(hook: Hook, now: datetime) -> str:
    """The circuit breaker of ``hook`` as an operator reads it: ``open`` while a pause of
    the breaker runs (a probe in flight holds it open until its answer), ``half_open``
    once a pause has passed (the hook's next due callback is its probe), ``closed``
    otherwise."""
    if hook.paused_until is None:
        return "closed"
    if hook.paused_until <= now:
        return "half_open"
    return "open" if hook.breaker_trips else "closed"


def pause_reason(hook: Hook, now: datetime) -> str:
    """Why ``hook`` is paused now: ``breaker`` or ``retry_after`` (its receiver asked);
    "" when it is not."""
    if hook.paused_until is None or hook.paused_until <= now:
        return ""
    return "breaker" if hook.breaker_trips else "retry_after"


def cooldown(trips: int) -> timedelta:
    """The pause of the ``trips``-th opening of the breaker in a row."""
    base = float(hooks_settings.BREAKER_COOLDOWN)
    return timedelta(seconds=min(base * 2 ** min(trips - 1, 32), max(COOLDOWN_MAX, base)))


def record_health(
    batch: Sequence[Callback],
    outcomes: Sequence[Outcome],
    now: datetime,
    *,
    probes: Collection[int] = (),
) -> set[int]:
    """Bring the hooks of a window of outcomes up to date; return the hooks now
    paused or disabled (their callbacks waiting in a sender go back).

    Runs inside the transaction that records the outcomes. Hooks that only
    succeeded take one conditional UPDATE that matches nothing while they stay
    healthy (the fast path). Hooks with a failure or a probe are locked, read,
    brought through the window's outcomes in order, and written when changed.

    A try of a callback stored for another owner than the hook's now (in flight when
    the hook changed hands, ``services.part_with_previous_owners``) went out with the
    previous owner's URL, secret and headers: it says nothing of the new owner's
    endpoint, and counts toward no health of the hook, failed or not.
    """
    # A request that could not be made (``Outcome.invalid``) says nothing of the receiver.
    troubled = {
        callback.hook_id
        for callback, outcome in zip(batch, outcomes, strict=True)
        if (not outcome.ok and not outcome.invalid) or callback.pk in probes
    }
    succeeded = {
        (callback.hook_id, callback.owner): callback.hook
        for callback, outcome in zip(batch, outcomes, strict=True)
        if outcome.ok and callback.hook_id not in troubled
    }
    speed = _speed_changes(batch, outcomes)
    if succeeded:
        _record_successes(succeeded, now)
    if not troubled and not speed:
        return set()
    locked = {
        hook.pk: hook
        # Read anew under the lock the caller took first (``outcomes.lock_hooks``: in id
        # order, before the window's callbacks and counts), and no stronger one: a lock
        # to upgrade would be one more to wait for.
        for hook in Hook.objects.select_for_update(no_key=True)
        .filter(pk__in=troubled | speed.keys())
        .order_by("pk")
        .only("pk", "name", "target_url", "owner", *HEALTH_FIELDS)
    }
    _record_speed(speed, locked, now)
    hooks = {pk: hook for pk, hook in locked.items() if pk in troubled}
    before = {pk: _state(hook) for pk, hook in hooks.items()}
    disabled: list[Hook] = []
    for callback, outcome in zip(batch, outcomes, strict=True):
        hook = hooks.get(callback.hook_id)
        if hook is None or hook.disabled_reason:
            continue
        if callback.pk in probes:
            hook.paused_until = None  # the probe's hold ends with its answer
        if outcome.invalid or callback.owner != hook.owner:
            continue
        if outcome.ok:
            _succeeded(hook, now)
        elif _failed(hook, outcome, now):
            disabled.append(hook)
    changed = [hook for pk, hook in hooks.items() if _state(hook) != before[pk]]
    if changed:
        Hook.objects.bulk_update(changed, HEALTH_FIELDS)
    for hook in disabled:
        transaction.on_commit(lambda hook=hook: _notify_disabled(hook))
    return {
        pk
        for pk, hook in hooks.items()
        if hook.disabled_reason or (hook.paused_until is not None and hook.paused_until > now)
    }


def _speed_changes(
    batch: Sequence[Callback], outcomes: Sequence[Outcome]
) -> dict[int, tuple[Hook, bool]]:
    """The hooks whose tries turned slow, or quick again, in this window (each hook's
    last try decides) against the hooks as they were claimed: hook id: (the claimed
    copy, slow). Only these are locked and maybe written (``_record_speed``)."""
    threshold = slow_ms()
    last: dict[int, tuple[Callback, bool]] = {}
    for callback, outcome in zip(batch, outcomes, strict=True):
        last[callback.hook_id] = (callback, outcome.duration_ms >= threshold)
    changes = {}
    for hook_id, (callback, slow) in last.items():
        hook = callback.hook
        if slow == (hook.slow_since is None):
            changes[hook_id] = (hook, slow)
    return changes


def _record_speed(
    changes: dict[int, tuple[Hook, bool]], locked: dict[int, Hook], now: datetime
) -> None:
    """Write ``slow_since`` of the hooks whose tries turned slow or quick (``changes``),
    as their locked rows (``locked``) say it must change. A sender that starts reads it
    (``Sender.claim``): a receiver that hangs is known to every sender once one has
    met it, not found out by a timeout in each. A hook that stays quick (or slow)
    costs no write; the claimed copies learn the value once it is committed."""
    turned: dict[bool, list[int]] = {True: [], False: []}
    for pk, (copy, slow) in changes.items():
        row = locked.get(pk)
        # A copy of another owner's: claimed before the hook changed hands, its tries
        # say nothing of the new owner's receiver (``record_health``).
        if row is not None and row.owner == copy.owner and slow == (row.slow_since is None):
            turned[slow].append(pk)
            row.slow_since = now if slow else None
    for slow, pks in turned.items():
        if pks:
            Hook.objects.filter(pk__in=pks).update(slow_since=now if slow else None)

    def learned() -> None:
        for pk, (copy, _) in changes.items():
            if pk in locked:
                copy.slow_since = locked[pk].slow_since

    if changes:
        transaction.on_commit(learned)


def _state(hook: Hook) -> tuple[object, ...]:
    return tuple(getattr(hook, name) for name in HEALTH_FIELDS)


def _record_successes(hooks: dict[tuple[int, str], Hook | None], now: datetime) -> None:
    """A success closes the breaker, ends a pause that has passed and resets the
    failure count; a pause a receiver asked for (Retry-After) still runs. ``hooks``
    are by id and the owner of the callbacks that succeeded: the hook's row only
    while it is still theirs (``record_health``).

    The condition is the database's: a healthy hook's row is written at most once
    per ``LAST_SUCCESS_RESOLUTION``, not once per window, and the sender's copy of
    the hook (loaded when its callbacks were claimed, perhaps before failures that
    this or another sender wrote since) decides nothing.
    """
    by_owner: dict[str, list[int]] = {}
    for pk, owner in hooks:
        by_owner.setdefault(owner, []).append(pk)
    # One condition an owner (a window holds few), not one a hook: SQLite takes an
    # expression of at most 1,000 levels, and a hook each was one OR more each.
    owned = reduce(
        operator.or_, (Q(owner=owner) & among("pk", ids) for owner, ids in by_owner.items())
    )
    Hook.objects.filter(owned).filter(
        Q(last_success_at__isnull=True)
        | Q(last_success_at__lt=now - LAST_SUCCESS_RESOLUTION)
        | Q(consecutive_failures__gt=0)
        | Q(paused_until__isnull=False)
    ).update(
        last_success_at=now,
        consecutive_failures=0,
        breaker_trips=0,
        failing_since=None,
        paused_until=Case(
            When(Q(breaker_trips__gt=0) | Q(paused_until__lte=now), then=Value(None)),
            default=F("paused_until"),
            output_field=DateTimeField(),
        ),
    )
    for hook in hooks.values():
        if hook is not None:
            _succeeded(hook, now)


def _succeeded(hook: Hook, now: datetime) -> None:
    if hook.breaker_trips or (hook.paused_until is not None and hook.paused_until <= now):
        hook.paused_until = None
    hook.consecutive_failures = 0
    hook.breaker_trips = 0
    hook.failing_since = None
    hook.last_success_at = now


def _failed(hook: Hook, outcome: Outcome, now: datetime) -> bool:
    """Count one failed try of ``hook``; True when it disables the hook."""
    hook.last_failure_at = now
    hook.last_failure_reason = printable(outcome.error)[:LAST_FAILURE_REASON_LENGTH]
    hook.consecutive_failures += 1
    hook.failing_since = hook.failing_since or now
    if is_gone(outcome) and hooks_settings.DISABLE_ON_GONE:
        _disable(hook, DisabledReason.GONE, now)
        return True
    if _failing_for_good(hook, now):
        _disable(hook, DisabledReason.FAILING, now)
        return True
    # Paused already (a try of the same window tripped the breaker): no second trip.
    # A pause this very answer asks for (Retry-After) does not stop the breaker: a
    # receiver that always asks for a second would never let it open.
    paused = hook.paused_until is not None and hook.paused_until > now
    until = retry_after(outcome, now)
    if until is not None and (hook.paused_until is None or hook.paused_until < until):
        hook.paused_until = until
    threshold = hooks_settings.BREAKER_FAILURES
    if not paused and threshold is not None and hook.consecutive_failures >= threshold:
        hook.breaker_trips += 1
        hook.paused_until = max(now + cooldown(hook.breaker_trips), hook.paused_until or now)
        logger.warning(
            "hook %s: %s failed tries in a row; circuit breaker open, paused until %s",
            hook.pk,
            hook.consecutive_failures,
            hook.paused_until.isoformat(timespec="seconds"),
        )
    return False


def _failing_for_good(hook: Hook, now: datetime) -> bool:
    after, tries = hooks_settings.AUTO_DISABLE_AFTER, hooks_settings.AUTO_DISABLE_FAILURES
    if after is None and tries is None:
        return False
    failing_for = now - (hook.failing_since or now)
    return (after is None or failing_for >= timedelta(seconds=after)) and (
        tries is None or hook.consecutive_failures >= tries
    )


def _disable(hook: Hook, reason: DisabledReason, now: datetime) -> None:
    hook.enabled = False
    hook.disabled_reason = reason
    hook.disabled_at = now


def _notify_disabled(hook: Hook) -> None:
    logger.warning(
        "hook %s (%s) disabled: %s; its waiting callbacks wait until it is enabled again",
        hook.pk,
        hook.target_url,
        DisabledReason(hook.disabled_reason).label,
    )
    # The listeners are the project's code: one that raises is logged (by Django) and
    # must not stop the sender.
    hook_disabled.send_robust(sender=Hook, hook=hook, reason=hook.disabled_reason)
