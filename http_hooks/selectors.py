"""Read queries shared by the commands, the REST API and the admin."""

from __future__ import annotations

import datetime

from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, QuerySet

from .delivery.sender import TEST_EVENT_TYPE
from .models import Attempt, Callback, CallbackStatus, Hook, Signal
from .outbox import SAVE_SIGNALS


def callbacks_updated_since(*, status: str, since: datetime.datetime | None) -> QuerySet[Callback]:
    """Callbacks with ``status`` updated at or after ``since`` (all of them when None)."""
    callbacks = Callback.objects.filter(status=status)
    if since is not None:
        callbacks = callbacks.filter(update_datetime__gte=since)
    return callbacks


def delivery_overview(*, since: datetime.datetime) -> list[dict]:
    """Callback counts by hook and status, for callbacks updated since ``since``."""
    rows = (
        Callback.objects.filter(update_datetime__gte=since)
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
