"""Read queries shared by the commands, the REST API and the admin."""

from __future__ import annotations

import datetime

from django.db.models import Count, QuerySet

from .models import Attempt, Callback, CallbackStatus, Hook


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
