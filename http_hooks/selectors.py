"""Read queries shared by the commands, the REST API and the admin."""

from __future__ import annotations

import contextlib
import datetime
import json
import uuid
from typing import NamedTuple

from django.contrib.contenttypes.models import ContentType
from django.db import connections
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from .delivery.health import held_hooks
from .delivery.sender import TEST_EVENT_TYPE
from .models import Attempt, Callback, CallbackStatus, DisabledReason, Hook, Signal
from .outbox import SAVE_SIGNALS
from .validators import MAX_ID


def callbacks_updated_since(*, status: str, since: datetime.datetime | None) -> QuerySet[Callback]:
    """Callbacks with ``status`` updated at or after ``since`` (all of them when None)."""
    callbacks = Callback.objects.filter(status=status)
    if since is not None:
        callbacks = callbacks.filter(update_datetime__gte=since)
    return callbacks


def delivery_overview(*, since: datetime.datetime) -> list[dict]:
    """Callback counts by hook and status, for callbacks updated since ``since``.

    Naming every status lets PostgreSQL read the window through ``callback_monitor_idx``
    (status, update_datetime) instead of the whole table."""
    rows = (
        Callback.objects.filter(status__in=CallbackStatus.values, update_datetime__gte=since)
        .values("hook_id", "status")
        .annotate(count=Count("id"))
        .order_by("hook_id", "status")
    )
    names = dict(Hook.objects.values_list("id", "name"))
    overview: dict[int, dict] = {}
    for row in rows:
        entry = overview.setdefault(
            row["hook_id"],
            {"hook_id": row["hook_id"], "hook": names.get(row["hook_id"], ""), "total": 0}
            | {status: 0 for status in CallbackStatus.values},
        )
        entry[row["status"]] = row["count"]
        entry["total"] += row["count"]
    return list(overview.values())


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
    """Every event type a callback can have, from the signals table alone: ``created``
    and ``updated`` for save signals, the test event, any other signal's path."""
    others = Signal.objects.exclude(signal__in=SAVE_SIGNALS).values_list("signal", flat=True)
    return ["created", "updated", TEST_EVENT_TYPE, *others]


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
    if term.isascii() and term.isdigit() and len(term) <= 19 and int(term) <= MAX_ID:
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
    deliverable = Callback.objects.exclude(hook_id__in=list(held_hooks()))
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
