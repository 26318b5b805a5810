"""Benchmark: the REST API's reads and retention on a big callbacks table, in PostgreSQL.

Run it from the repository root, with PostgreSQL on 127.0.0.1 (trust auth, user
``postgres``; ``HTTP_HOOKS_PG_*`` override the connection)::

    .venv/bin/python bench/api.py                           # 10,000 then 1,000,000 rows
    .venv/bin/python bench/api.py --rows 10000000 --keep    # fill once (minutes) ...
    .venv/bin/python bench/api.py --rows 10000000 --reuse --keep   # ... time it again

It creates the database ``http_hooks_bench_api`` (``--database``; dropped at the
end unless ``--keep``; with ``--reuse`` a kept one whose table was filled with
that many rows is timed as it is), migrates it, and for each table size fills
``http_hooks_callback`` with ``INSERT ... SELECT generate_series`` in chunks of a
million rows, its indexes dropped meanwhile and built again after (as a restore
would), then VACUUM ANALYZE. The mix: one callback every two seconds back from now
(10 million span 231 days); 1% ``error``, waiting ones among the newest 1,000 and
one in a thousand older (stuck retries), the rest ``sent``; 20 hooks, skewed
(the busiest has 37% of the rows, the quietest 1.7%); event types ``updated``
55%, ``created`` 40%, ``deleted`` 4%, ``order.paid`` 1%; half the rows owned by
one of 100 owners (by row number: the errors fall to two of them); seven
callbacks per object; one attempt per four callbacks.

Then it times requests through the whole Django stack (``django.test.Client``:
middleware, session authentication of a staff user, DRF, filters, cursor
pagination, serializers) and prints the median and 95th percentile of the
callbacks list (unfiltered, with each filter and ordering the API offers, and
the second page), retrieve, the attempts of a callback and monitor, and next to
each the database's own time for the request's queries (``EXPLAIN ANALYZE``),
which a loaded machine's waits for a CPU do not inflate as much. Dates are
taken relative to the newest row, so a reused table reads the same.

Last, with ``--delete N`` (default 1% of the rows), retention: it deletes the
callbacks older than the day that leaves about ``N`` of the oldest ones behind it
(``services.delete_old_callbacks``, as the command does) and prints the rate
(callbacks per second, their attempts included), the batches, and the longest
batch: its transaction is the longest any row stays locked, and the WAL written
per callback (the server's: other databases' writes count too). VACUUM is timed
apart. A reused table loses those rows for the next run.

Target: every case not marked ``[info]`` under 50 ms p95, at every table size.
"""

from __future__ import annotations

import argparse
import datetime
import random
import statistics
import sys
import time

from benchdb import create_hooks, database_env, drop_postgres, setup_django, time_requests

DATABASE = "http_hooks_bench_api"
TARGET_MS = 50.0
CHUNK = 1_000_000
ROW_SECONDS = 2

FILL = """
INSERT INTO http_hooks_callback (
    hook_id, event_id, event_type, object_type, object_id, target_url,
    http_method, payload, content_type, status, status_details,
    attempts, earlier_attempts, next_attempt_at, last_response_status, owner,
    ordering_key, create_datetime, update_datetime
)
SELECT
    (%(hooks)s::bigint[])[1 + floor(power(r, 3) * %(count)s)::int],
    md5(i::text || clock_timestamp()::text)::uuid,
    CASE WHEN i %% 100 = 7 THEN 'order.paid' WHEN i %% 25 = 3 THEN 'deleted'
         WHEN i %% 5 < 2 THEN 'created' ELSE 'updated' END,
    'shop.order', (i / 7)::text, 'http://127.0.0.1:9/hook', 'POST',
    '{"object_type": "shop.order", "object_id": ' || i || '}', 'application/json',
    status,
    CASE status WHEN 'error' THEN 'HTTP 500 (attempt 8, giving up)'
                WHEN 'sent' THEN 'HTTP 200' ELSE '' END,
    1, 0, t, CASE status WHEN 'error' THEN 500 WHEN 'sent' THEN 200 END,
    CASE WHEN i %% 2 = 0 THEN 'owner-' || (i / 2) %% 100 ELSE '' END,
    '', t, t + interval '1 second'
FROM generate_series(%(first)s, %(last)s) AS i,
     LATERAL (SELECT now() - (%(rows)s - i) * interval '%(seconds)s seconds' AS t,
                     random() AS r,
                     CASE WHEN i %% 100 = 0 THEN 'error'
                          WHEN i > %(rows)s - 1000 AND i %% 3 = 0 THEN 'waiting'
                          WHEN i %% 1000 = 1 THEN 'waiting'
                          ELSE 'sent' END AS status) AS mix
"""

ATTEMPTS = """
INSERT INTO http_hooks_attempt (
    callback_id, number, attempted_at, duration_ms, request_headers, response_status,
    response_headers, response_body, error
)
SELECT id, 1, create_datetime, 12, '{"Content-Type": "application/json"}',
       last_response_status, '{}', '', ''
FROM http_hooks_callback WHERE id %% 4 = 0 AND id BETWEEN %(first)s AND %(last)s
"""


def fill(rows: int, hook_ids: list[int]) -> None:
    """``rows`` callbacks and their attempts, without their indexes while inserting."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE http_hooks_attempt, http_hooks_callback RESTART IDENTITY")
        cursor.execute("SET maintenance_work_mem = '256MB'")
        cursor.execute(
            """
            SELECT indexname, indexdef FROM pg_indexes
            WHERE tablename IN ('http_hooks_callback', 'http_hooks_attempt')
              AND indexname NOT IN (SELECT conname FROM pg_constraint)
            """
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("SELECT setseed(0.42)")  # the same hooks at every fill
        for first in range(1, rows + 1, CHUNK):
            last = min(first + CHUNK - 1, rows)
            params = {"first": first, "last": last, "rows": rows, "seconds": ROW_SECONDS}
            cursor.execute(FILL, {**params, "hooks": hook_ids, "count": len(hook_ids)})
            cursor.execute(ATTEMPTS, params)
            print(f"  {last:>11,} rows", flush=True)
        for _, definition in indexes:
            cursor.execute(definition)
        # As autovacuum would leave them: statistics, and the visibility map that
        # lets an index-only scan (monitor's count) skip the table.
        cursor.execute("VACUUM ANALYZE http_hooks_callback")
        cursor.execute("VACUUM ANALYZE http_hooks_attempt")


def cases(client, hook_ids: list[int]) -> dict:
    from django.db.models import Max, Min

    from http_hooks.models import Callback

    newest = Callback.objects.aggregate(newest=Max("create_datetime"))["newest"]

    def ago(**delta) -> str:
        return (newest - datetime.timedelta(**delta)).isoformat()

    first, last = Callback.objects.aggregate(first=Min("pk"), last=Max("pk")).values()
    candidates = random.sample(range(first, last + 1), min(2000, last - first + 1))
    ids = list(Callback.objects.filter(pk__in=candidates).values_list("pk", flat=True))
    with_attempts = [pk for pk in ids if pk % 4 == 0]
    event_ids = [
        str(event_id)
        for event_id in Callback.objects.filter(pk__in=ids[:200]).values_list("event_id", flat=True)
    ]
    busy, quiet = hook_ids[0], hook_ids[-1]
    second_page = client.get("/api/callbacks/", {"status": "sent"}).json()["next"]

    def get(path: str, **params):
        return lambda: client.get(path, params)

    lists = {
        "list (no filter)": {},
        "list status=error": {"status": "error"},
        "list status=waiting": {"status": "waiting"},
        "list status=sent": {"status": "sent"},
        "list hook=busiest": {"hook": busy},
        "list hook=quietest": {"hook": quiet},
        "list hook=quietest&status=error": {"hook": quiet, "status": "error"},
        "list event_type=created": {"event_type": "created"},
        "list event_type=order.paid": {"event_type": "order.paid"},
        "list created_after=newest-1h": {"created_after": ago(hours=1)},
        "list created_before=newest-100d": {"created_before": ago(days=100)},
        "list created in one day 100 days back": {
            "created_after": ago(days=101),
            "created_before": ago(days=100),
        },
        "list updated_after=newest-1h": {"updated_after": ago(hours=1)},
        "list updated_before=newest-100d": {"updated_before": ago(days=100)},
        "list response_status=500": {"response_status": 500},
        "list ordering=id (oldest first)": {"ordering": "id"},
        "list status=error&ordering=id": {"status": "error", "ordering": "id"},
        "list ordering=-create_datetime": {"ordering": "-create_datetime"},
        "list ordering=create_datetime (oldest first)": {"ordering": "create_datetime"},
    }
    timed = {name: get("/api/callbacks/", **params) for name, params in lists.items()}
    timed["list event_id=..."] = lambda: client.get(
        "/api/callbacks/", {"event_id": random.choice(event_ids)}
    )
    timed["list status=sent, second page"] = lambda: client.get(second_page)
    timed["retrieve"] = lambda: client.get(f"/api/callbacks/{random.choice(ids)}/")
    timed["attempts of a callback"] = lambda: client.get(
        f"/api/callbacks/{random.choice(with_attempts)}/attempts/"
    )
    for status in ("error", "waiting"):
        timed[f"monitor status={status}&minutes_ago=10"] = get(
            "/api/callbacks/monitor/", status=status, callbacks_limit=50, minutes_ago=10
        )
    timed["monitor status=error, whole table [info]"] = get(
        "/api/callbacks/monitor/", status="error", callbacks_limit=50
    )
    return timed


def database_time(request, runs: int = 5) -> float:
    """The server's own time for the queries of one request on the app's tables
    (``EXPLAIN ANALYZE``, median of ``runs``), in milliseconds: what the database
    costs, apart from the Python stack and a loaded machine's waits for a CPU."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        request()
    statements = [
        query["sql"]
        for query in captured.captured_queries
        if query["sql"].startswith("SELECT") and "http_hooks_" in query["sql"]
    ]
    totals = []
    with connection.cursor() as cursor:
        for _ in range(runs):
            total = 0.0
            for sql in statements:
                cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
                total += cursor.fetchone()[0][0]["Execution Time"]
            totals.append(total)
    return statistics.median(totals)


def retention(rows_to_delete: int) -> str:
    """Delete about ``rows_to_delete`` of the oldest callbacks; what it took, as text."""
    from django.db import connection
    from django.db.models import Min
    from django.utils import timezone

    from http_hooks.models import Attempt, Callback
    from http_hooks.services import UNDELIVERED_STATUSES, delete_old_callbacks

    # The oldest that retention would delete: old undelivered ones stay.
    deletable = Callback.objects.exclude(status__in=UNDELIVERED_STATUSES)
    oldest = deletable.aggregate(oldest=Min("create_datetime"))["oldest"]
    if oldest is None:
        return "retention: no callbacks left"
    age_days = (timezone.now() - oldest).days
    days = max(0, age_days - max(1, round(rows_to_delete * ROW_SECONDS / 86400)))
    attempts_before = Attempt.objects.count()
    batches: list[float] = []
    mark = time.perf_counter()

    def on_batch(deleted: int) -> None:
        nonlocal mark
        now = time.perf_counter()
        batches.append(now - mark)
        mark = now

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()")
        (wal_before,) = cursor.fetchone()
        started = time.perf_counter()
        deleted = delete_old_callbacks(days=days, vacuum=False, on_batch=on_batch)
        elapsed = time.perf_counter() - started
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [wal_before])
        (wal,) = cursor.fetchone()
    attempts = attempts_before - Attempt.objects.count()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE http_hooks_callback")
        cursor.execute("VACUUM ANALYZE http_hooks_attempt")
    vacuum = time.perf_counter() - started
    return (
        f"retention (delete_old_callbacks days={days}, batch 5000): {deleted:,} callbacks "
        f"and {attempts:,} attempts in {elapsed:.1f} s = {deleted / elapsed:,.0f} callbacks/s; "
        f"{len(batches)} batches, longest {max(batches, default=0) * 1000:.0f} ms, "
        f"median {sorted(batches)[len(batches) // 2] * 1000 if batches else 0:.0f} ms; "
        f"WAL {wal / max(deleted, 1):,.0f} bytes a callback (the server's, all databases); "
        f"then VACUUM ANALYZE of both tables {vacuum:.1f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per case")
    parser.add_argument("--database", default=DATABASE)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="time a kept database without filling it again"
    )
    parser.add_argument(
        "--delete",
        type=int,
        help="callbacks retention deletes (default: 1%% of the rows; 0: no retention)",
    )
    args = parser.parse_args()

    setup_django(database_env("postgres", name=args.database, reuse=args.reuse))
    from django.contrib.auth.models import User
    from django.db.models import Max
    from django.test import Client
    from django.test.utils import setup_test_environment

    from http_hooks.models import Callback, Hook

    results, deletions = {}, {}
    try:
        setup_test_environment()
        hook_ids = list(Hook.objects.order_by("pk").values_list("pk", flat=True)) or create_hooks()
        user = User.objects.filter(username="bench").first() or User.objects.create_user(
            "bench", is_staff=True
        )
        client = Client()
        client.force_login(user)
        for rows in args.rows:
            if not (args.reuse and Callback.objects.aggregate(last=Max("pk"))["last"] == rows):
                started = time.perf_counter()
                fill(rows, hook_ids)
                print(f"{rows:>11,} callbacks inserted in {time.perf_counter() - started:.1f} s")
            results[rows] = {
                name: (*time_requests(request, args.requests), database_time(request))
                for name, request in cases(client, hook_ids).items()
            }
            if args.delete != 0:
                deletions[rows] = retention(args.delete or rows // 100)
    finally:
        if not args.keep:
            drop_postgres(args.database)

    print(
        f"\n{args.requests} requests per case, milliseconds: median / p95 of the request, "
        "and the database's own time (EXPLAIN ANALYZE, median of 5)"
    )
    header = f"{'case':<44}" + "".join(f"{f'{rows:,} rows':>30}" for rows in args.rows)
    print(header)
    print("-" * len(header))
    failed = False
    for name in results[args.rows[0]]:
        cells = []
        for rows in args.rows:
            median, p95, database = results[rows][name]
            slow = p95 > TARGET_MS and "[info]" not in name
            failed |= slow
            cells.append(f"{median:>8.1f} / {p95:>6.1f}{' !' if slow else '  '} {database:>7.2f}")
        print(f"{name:<44}" + "".join(f"{cell:>30}" for cell in cells))
    print(f"\n'!' marks a p95 over {TARGET_MS:.0f} ms; [info] rows are not held to it.")
    for rows, text in deletions.items():
        print(f"{rows:,} rows: {text}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
