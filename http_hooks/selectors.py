"""Read queries shared by the commands, the REST API and the admin."""

from __future__ import annotations

import contextlib
import datetime
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.contrib.contenttypes.models import ContentType
from django.db import connections
from django.db.models import Count, Min, Q, QuerySet, Sum
from django.utils import timezone

from .delivery.health import breaker_state, held_hooks, pause_reason
from .delivery.ids import among, listed
from .delivery.sender import TEST_EVENT_TYPE
from .delivery.stats import COUNT_FIELDS, MAX_WINDOW_HOURS, hour_of, hour_start, percentile
from .events import is_event_type, model_event_types
from .exceptions import InvalidFilterError
from .models import Attempt, Callback, CallbackStatus, DeliveryStats, DisabledReason, Hook, Signal
from .outbox import SAVE_SIGNALS
from .owners import Owners
from .settings import hooks_settings
from .text import ascii_digits
from .validators import MAX_ID, whole_number


def callbacks_updated_since(*, status: str, since: datetime.datetime | None) -> QuerySet[Callback]:
    """Callbacks with ``status`` updated at or after ``since`` (all of them when None).
    Of those ``sending``, the stuck ones, whose sender's lease ran out (one with a
    lease running is in flight), however long ago: ``since`` does not apply, since
    one stuck for longer than the window is the worst case, not one to leave out."""
    callbacks = Callback.objects.filter(status=status)
    if status == CallbackStatus.SENDING:
        return callbacks.filter(claimed_until__lt=timezone.now())
    if since is not None:
        callbacks = callbacks.filter(update_datetime__gte=since)
    return callbacks


class HourCount(NamedTuple):
    """The tries of a hook in one hour (hours since the epoch). A tuple: the overview
    of 30 days makes one per hook and hour."""

    hour: int
    sent: int
    failed: int

    @property
    def start(self) -> datetime.datetime:
        return hour_start(self.hour)


@dataclass(frozen=True)
class HookHealth:
    """A hook's health over the last ``hours`` hours (the current one included, from
    ``first_hour``): its tries, how long they took, and the state of its row (breaker,
    pause, disable, last success and failure: ``hook``)."""

    hook: Hook
    hours: int
    first_hour: int
    sent: int
    failed: int
    duration_p50_ms: float | None
    duration_p95_ms: float | None
    breaker: str
    paused_reason: str
    hourly: list[HourCount]

    @property
    def since(self) -> datetime.datetime:
        return hour_start(self.first_hour)

    @property
    def tries(self) -> int:
        return self.sent + self.failed

    @property
    def success_rate(self) -> float | None:
        """Succeeded tries over all tries of the window; None without tries."""
        return self.sent / self.tries if self.tries else None


def hooks_health(
    *,
    hours: int,
    hooks: Sequence[Hook] | None = None,
    now: datetime.datetime | None = None,
) -> list[HookHealth]:
    """The health of ``hooks`` (every hook when None) over the last ``hours`` hours.

    Reads the hooks and their hourly counts (``DeliveryStats``), never the
    callbacks or their attempts: three queries, whatever their number."""
    whole_number(hours, "hours", minimum=1, maximum=MAX_WINDOW_HOURS)
    if now is None:
        now = timezone.now()
    elif not isinstance(now, datetime.datetime):
        raise InvalidFilterError("now must be a date and time", field="now")
    elif timezone.is_naive(now):
        now = timezone.make_aware(now)
    last_hour = hour_of(now)
    first_hour = last_hour - (hours - 1)
    if hooks is None:
        chosen = list(Hook.objects.order_by("pk"))
    elif isinstance(hooks, str | bytes) or not isinstance(hooks, Iterable):
        raise InvalidFilterError("hooks must be a list of saved hooks", field="hooks")
    else:
        chosen = listed(hooks, "hooks", what="hooks")
        if not all(isinstance(hook, Hook) and hook.pk is not None for hook in chosen):
            # An id or another model's instance failed deep inside (AttributeError).
            raise InvalidFilterError("hooks must be a list of saved hooks", field="hooks")
    # Not past the current hour: a sender whose clock is ahead, or that writes just
    # after the hour turns, may have counted the next one.
    stats = DeliveryStats.objects.filter(hour__gte=first_hour, hour__lte=last_hour)
    if hooks is not None:
        stats = stats.filter(hook__in=[hook.pk for hook in chosen])
    sums = {f"total_{name}": Sum(name) for name in COUNT_FIELDS}
    totals = {
        row["hook_id"]: [row[f"total_{name}"] for name in COUNT_FIELDS]
        for row in stats.values("hook_id").annotate(**sums).order_by()
    }
    hourly: dict[int, list[HourCount]] = defaultdict(list)
    for hook_id, *counts in stats.order_by("hook_id", "hour").values_list(
        "hook_id", "hour", "sent", "failed"
    ):
        hourly[hook_id].append(HourCount._make(counts))
    health = []
    for hook in chosen:
        sent, failed, *durations = totals.get(hook.pk) or [0] * len(COUNT_FIELDS)
        health.append(
            HookHealth(
                hook=hook,
                hours=hours,
                first_hour=first_hour,
                sent=sent,
                failed=failed,
                duration_p50_ms=percentile(durations, 0.5),
                duration_p95_ms=percentile(durations, 0.95),
                breaker=breaker_state(hook, now),
                paused_reason=pause_reason(hook, now),
                hourly=hourly[hook.pk],
            )
        )
    return health


def recovery_start(hook: Hook) -> datetime.datetime:
    """Where a recover of ``hook`` starts unless told (the admin's default): the
    creation time of the oldest callback that failed for good since the hook began
    failing or was disabled. The callbacks an outage cost were created before it
    was noticed, often long before, as their retries took hours; ``disabled_at``
    itself would find none of them. A day ago for a hook that is not failing."""
    began = min(
        (moment for moment in (hook.failing_since, hook.disabled_at) if moment is not None),
        default=None,
    )
    if began is None:
        return timezone.now() - datetime.timedelta(hours=24)
    failed = Callback.objects.filter(
        hook=hook, status=CallbackStatus.ERROR, update_datetime__gte=began
    ).aggregate(oldest=Min("create_datetime"))
    return failed["oldest"] or began


def attempts_of(callback: Callback) -> QuerySet[Attempt]:
    """The delivery log of ``callback``, newest first."""
    return Attempt.objects.filter(callback=callback).order_by("-id")


def hooked_models() -> QuerySet[ContentType]:
    """The models that have at least one hook, from the hooks table alone (the admin's
    callback filter must not scan the callbacks for their models)."""
    return ContentType.objects.filter(pk__in=Hook.objects.values("model")).order_by(
        "app_label", "model"
    )


def event_types() -> list[str]:
    """Every event type a model signal's callback can have, from the signals table alone:
    ``created`` and ``updated`` for save signals, the test event, any other signal's path."""
    others = Signal.objects.exclude(signal__in=SAVE_SIGNALS).values_list("signal", flat=True)
    return ["created", "updated", TEST_EVENT_TYPE, *others]


def explicit_event_types() -> list[str]:
    """The types of explicit events known without reading the callbacks: declared in
    ``EVENT_TYPES`` or subscribed to by name by an enabled hook."""
    from .registry import registry

    return sorted(set(declared_event_types()) | registry.loaded().events.subscribed_names())


def known_event_types(owners: Owners = None) -> list[dict[str, Any]]:
    """The event types ``GET /api/event-types/`` lists, sorted by name: those declared in
    ``EVENT_TYPES``, those the enabled hooks subscribe to by name and those their model
    signals send. From the settings and the registry's loaded hooks, never the callbacks.
    With ``owners`` (a tenant's), only the hooks of those owners count: the names other
    owners or the project subscribe to are theirs to know."""
    from .registry import registry

    loaded = registry.loaded()
    found: dict[str, dict[str, Any]] = {}

    def add(name: str, source: str, description: str = "") -> None:
        entry = found.setdefault(name, {"name": name, "description": "", "sources": []})
        entry["description"] = entry["description"] or description
        if source not in entry["sources"]:
            entry["sources"].append(source)

    for name, description in declared_event_types().items():
        add(name, "declared", description)
    for name in loaded.events.subscribed_names(owners):
        add(name, "subscribed")
    routes = {
        route
        for hook in loaded.hooks.values()
        if owners is None or hook.owner in owners
        for route in hook.routes
    }
    for path, model in routes:
        for name in model_event_types(model, path):
            add(name, "model_signal")
    return [found[name] for name in sorted(found)]


def declared_event_types() -> dict[str, str]:
    """``EVENT_TYPES`` as ``{name: description}`` (a list gives empty descriptions);
    entries that are not valid are left out (``checks`` reports them)."""
    declared = hooks_settings.EVENT_TYPES or {}
    if isinstance(declared, list | tuple):
        declared = dict.fromkeys((name for name in declared if isinstance(name, str)), "")
    if not isinstance(declared, dict):
        return {}
    return {
        name: description
        for name, description in declared.items()
        if isinstance(name, str) and isinstance(description, str) and is_event_type(name)
    }


class RowCount(NamedTuple):
    """How many rows a list holds: exact, or PostgreSQL's estimate."""

    value: int
    estimated: bool


def estimated_rows(queryset: QuerySet) -> int | None:
    """PostgreSQL's estimate of the rows of ``queryset``: the planner's, from its
    statistics and the table's size, without reading a row. None on other databases."""
    if connections[queryset.db].vendor != "postgresql":
        return None
    plan = json.loads(queryset.order_by().values("pk").explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


def count_rows(queryset: QuerySet, *, exact_up_to: int) -> RowCount:
    """How many rows ``queryset`` holds, reading at most ``exact_up_to`` + 1 of them.

    Exact up to ``exact_up_to``; beyond, PostgreSQL's estimate (never below what was
    counted), where a ``COUNT(*)`` would read every row. Other databases count them all.
    """
    counted = queryset.order_by().values("pk")[: exact_up_to + 1].count()
    if counted <= exact_up_to:
        return RowCount(counted, estimated=False)
    estimate = estimated_rows(queryset)
    if estimate is None:
        return RowCount(queryset.count(), estimated=False)
    return RowCount(max(estimate, counted), estimated=True)


def callbacks_named_by(queryset: QuerySet[Callback], term: str) -> QuerySet[Callback]:
    """The callbacks of ``queryset`` that ``term`` names exactly: its event id (a UUID,
    in any spelling), its id (a whole number) or its object id, each found by an index."""
    term = term.strip()
    named = Q(object_id=term)
    with contextlib.suppress(ValueError):
        named |= Q(event_id=uuid.UUID(term))
    if ascii_digits(term) and len(term) <= 19 and int(term) <= MAX_ID:
        named |= Q(pk=int(term))
    return queryset.filter(named)


class DeliveryState(NamedTuple):
    """The queue and the hooks' health, as the metrics show them."""

    callbacks: dict[str, RowCount]  # by status
    oldest_due_seconds: float
    hooks_paused: int
    hooks_breaker_open: int
    hooks_disabled: dict[str, int]  # by who disabled them: "gone", "failing" or "user"


def delivery_state(*, exact_up_to: int) -> DeliveryState:
    """Callbacks by status, the age of the oldest due one and the hooks' health, in a
    few queries that stay cheap at millions of callbacks.

    Each status is counted through an index up to ``exact_up_to`` rows, beyond that
    estimated (``count_rows``): a ``COUNT(*)`` by status would read every row. The
    oldest due callback is one a sender would take now (a waiting one due, or one
    whose sender's lease ran out), read first from ``callback_due_idx``; callbacks of
    paused and disabled hooks are left out, as the senders leave them (the hooks'
    counts show those). The hooks' counts are one pass over the hooks table.
    """
    now = timezone.now()
    callbacks = {
        status: count_rows(Callback.objects.filter(status=status), exact_up_to=exact_up_to)
        for status in CallbackStatus.values
    }
    deliverable = Callback.objects.exclude(among("hook_id", held_hooks()))
    due = [
        deliverable.filter(status=CallbackStatus.WAITING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first(),
        deliverable.filter(status=CallbackStatus.SENDING, claimed_until__lt=now)
        .order_by("claimed_until")
        .values_list("claimed_until", flat=True)
        .first(),
    ]
    oldest = min((when for when in due if when is not None), default=now)
    running = Q(disabled_reason=DisabledReason.NONE)
    hooks = Hook.objects.aggregate(
        paused=Count("pk", filter=running & Q(paused_until__gt=now)),
        breaker_open=Count("pk", filter=running & Q(breaker_trips__gt=0)),
        gone=Count("pk", filter=Q(disabled_reason=DisabledReason.GONE)),
        failing=Count("pk", filter=Q(disabled_reason=DisabledReason.FAILING)),
        user=Count("pk", filter=running & Q(enabled=False)),
    )
    return DeliveryState(
        callbacks=callbacks,
        oldest_due_seconds=max((now - oldest).total_seconds(), 0.0),
        hooks_paused=hooks.pop("paused"),
        hooks_breaker_open=hooks.pop("breaker_open"),
        hooks_disabled=hooks,
    )
