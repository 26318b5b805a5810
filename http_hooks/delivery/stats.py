"""Delivery stats: each hook's tries counted per hour as they happen (``DeliveryStats``).

The sender adds a window of outcomes to the counts in the transaction that
records them (``outcomes.record_outcomes``), in one statement whatever the
window holds, so that the health endpoint and the admin's overview read a few
rows per hook and hour instead of the callbacks and their attempts.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import UTC, datetime

from django.db import connections, router

from ..models import DURATION_BOUNDS_MS, DURATION_FIELDS, Callback, DeliveryStats, Hook
from ..transport import Outcome

# The longest window the health endpoint and the overview show; older rows are deleted
# (``delete_old_stats``).
MAX_WINDOW_HOURS = 30 * 24
# The windows offered by name (``?window=7d``), in hours.
WINDOWS = {"1h": 1, "24h": 24, "7d": 7 * 24, "30d": MAX_WINDOW_HOURS}
COUNT_FIELDS = ["sent", "failed", *DURATION_FIELDS]


def hour_of(moment: datetime) -> int:
    """The hour of ``moment`` as ``DeliveryStats`` counts it: hours since the epoch."""
    return int(moment.timestamp() // 3600)


def hour_start(hour: int) -> datetime:
    """When ``hour`` (hours since the epoch) starts."""
    return datetime.fromtimestamp(hour * 3600, tz=UTC)


def duration_bucket(duration_ms: int) -> int:
    """The index in ``DURATION_FIELDS`` of the bucket that counts ``duration_ms``."""
    return bisect_right(DURATION_BOUNDS_MS, duration_ms)


def record_stats(batch: Sequence[Callback], outcomes: Sequence[Outcome], now: datetime) -> None:
    """Add the tries of a window of outcomes to their hooks' counts of this hour.

    One ``INSERT ... ON CONFLICT DO UPDATE`` adds to the row of each hook and hour
    (PostgreSQL, SQLite 3.24+): ``bulk_create(update_conflicts=True)`` could only
    replace the counts, not add to them. Runs in the caller's transaction. The rows
    go in hook id order, as every sender writes them: two windows of the same hooks
    never wait for each other's rows in a circle (a deadlock PostgreSQL would break).

    A try counts only while its callback's owner is its hook's (the statement's
    condition, no read more): one in flight when the hook changed hands was the
    previous owner's (``services.forget_previous_owners_tries``), as for its health
    (``health.record_health``). The caller has locked the hooks' rows first
    (``outcomes.lock_hooks``): a change of hands under way is committed, and seen
    here, before these rows are written.
    """
    counts: dict[tuple[int, str], list[int]] = {}
    for callback, outcome in zip(batch, outcomes, strict=True):
        row = counts.setdefault((callback.hook_id, callback.owner), [0] * len(COUNT_FIELDS))
        row[0 if outcome.ok else 1] += 1
        row[2 + duration_bucket(outcome.duration_ms)] += 1
    if not counts:
        return
    db = connections[router.db_for_write(DeliveryStats)]
    meta, hook_meta = DeliveryStats._meta, Hook._meta
    quote = db.ops.quote_name
    table = quote(meta.db_table)
    keys = [quote(meta.get_field(name).column) for name in ("hook", "hour")]
    added = [quote(meta.get_field(name).column) for name in COUNT_FIELDS]
    columns = [*keys, *added]
    hour = hour_of(now)
    # The VALUES' columns are named column1, column2, ... on PostgreSQL and SQLite alike;
    # the last one is the owner.
    row_sql = "({})".format(", ".join(["%s"] * (len(columns) + 1)))
    sql = (
        "INSERT INTO {table} ({columns}) SELECT {picked} FROM (VALUES {rows}) AS counted "
        "WHERE EXISTS (SELECT 1 FROM {hooks} WHERE {hooks}.{pk} = counted.column1 "
        "AND {hooks}.{owner} = counted.column{owner_at}) ORDER BY counted.column1 "
        "ON CONFLICT ({keys}) DO UPDATE SET {sets}"
    ).format(
        table=table,
        columns=", ".join(columns),
        picked=", ".join(f"counted.column{i}" for i in range(1, len(columns) + 1)),
        rows=", ".join([row_sql] * len(counts)),
        hooks=quote(hook_meta.db_table),
        pk=quote(hook_meta.pk.column),
        owner=quote(hook_meta.get_field("owner").column),
        owner_at=len(columns) + 1,
        keys=", ".join(keys),
        sets=", ".join(f"{column} = {table}.{column} + EXCLUDED.{column}" for column in added),
    )
    params = [
        value
        for (hook_id, owner), row in sorted(counts.items())
        for value in (hook_id, hour, *row, owner)
    ]
    with db.cursor() as cursor:
        cursor.execute(sql, params)


def delete_old_stats(now: datetime) -> int:
    """Delete the counts of hours before the longest window; return how many rows."""
    cutoff = hour_of(now) - MAX_WINDOW_HOURS
    deleted, _ = DeliveryStats.objects.filter(hour__lt=cutoff).delete()
    return deleted


def percentile(buckets: Sequence[int], fraction: float) -> float | None:
    """The duration in ms below which ``fraction`` of the tries counted in ``buckets``
    (one count per ``DURATION_FIELDS``) took, interpolated linearly inside its
    bucket; the last bucket, open-ended, answers its lower bound. None without tries."""
    total = sum(buckets)
    if not total:
        return None
    rank = fraction * total
    below, lower = 0, 0.0
    for upper, count in zip(DURATION_BOUNDS_MS, buckets, strict=False):
        if count and below + count >= rank:
            return lower + (upper - lower) * (rank - below) / count
        below, lower = below + count, float(upper)
    return lower  # in the last bucket, which has no upper bound
