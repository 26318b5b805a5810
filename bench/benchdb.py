"""The throwaway databases the benchmarks run on, and Django set up on them.

SQLite: a new file in a temporary folder (on ``/dev/shm`` where there is one,
so that the disk's flushes do not drown what is measured). PostgreSQL: a
database dropped and created anew on the server of ``HTTP_HOOKS_PG_*``
(127.0.0.1, user ``postgres``, trust auth by default). Also what the benchmarks
of reads share: the hooks and the callbacks they read, and the timing of requests.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "demo"), str(ROOT)]
HOOKS = 20


def _server_connection():
    import psycopg

    return psycopg.connect(
        host=os.environ.get("HTTP_HOOKS_PG_HOST", "127.0.0.1"),
        port=os.environ.get("HTTP_HOOKS_PG_PORT", "5432"),
        user=os.environ.get("HTTP_HOOKS_PG_USER", "postgres"),
        password=os.environ.get("HTTP_HOOKS_PG_PASSWORD", ""),
        dbname="postgres",
        autocommit=True,
    )


def drop_postgres(name: str) -> None:
    from django.db import connections

    connections.close_all()
    with _server_connection() as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name}")


def database_env(
    db: str, *, name: str, reuse: bool = False, on_disk: bool = False
) -> dict[str, str]:
    """Environment naming a new, empty database: ``db`` is ``sqlite`` or ``postgres``.
    With ``reuse``, a PostgreSQL database of that name is kept if it exists; with
    ``on_disk``, the SQLite file is in the system's temporary folder, not in memory."""
    if db == "postgres":
        with _server_connection() as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [name]
            ).fetchone()
            if not (reuse and exists):
                connection.execute(f"DROP DATABASE IF EXISTS {name}")
                connection.execute(f"CREATE DATABASE {name}")
        return {"HTTP_HOOKS_DB": "postgres", "HTTP_HOOKS_PG_NAME": name}
    in_memory = not on_disk and os.path.isdir("/dev/shm")
    folder = tempfile.mkdtemp(dir="/dev/shm" if in_memory else None)
    return {"HTTP_HOOKS_DB": "sqlite", "HTTP_HOOKS_SQLITE_PATH": str(Path(folder) / f"{name}.db")}


def setup_django(env: dict[str, str]) -> None:
    """Set Django up on the database of ``env`` (DEBUG off, as in production) and migrate it."""
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "demo.settings"
    os.environ["DJANGO_DEBUG"] = "0"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def create_hooks() -> list[int]:
    from http_hooks.api import create_hook

    return [
        create_hook(
            name=f"bench {index}",
            model="shop.order",
            signals=["django.db.models.signals.post_save"],
            target_url=f"http://127.0.0.1:9/hook/{index}",
            content_type="application/json",
        ).pk
        for index in range(HOOKS)
    ]


def fill_callbacks(rows: int, hook_ids: list[int]) -> None:
    """``rows`` callbacks, newest now, one every two seconds back, in one statement."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE http_hooks_attempt, http_hooks_callback RESTART IDENTITY")
        cursor.execute(
            """
            INSERT INTO http_hooks_callback (
                hook_id, event_id, event_type, object_type, object_id, target_url,
                http_method, payload, content_type, status, status_details,
                attempts, earlier_attempts, next_attempt_at, last_response_status,
                create_datetime, update_datetime
            )
            SELECT
                (%(hooks)s::bigint[])[1 + (i / 3) %% %(count)s],
                md5(i::text || clock_timestamp()::text)::uuid,
                CASE WHEN i %% 2 = 0 THEN 'created' ELSE 'updated' END,
                'shop.order', i::text, 'http://127.0.0.1:9/hook', 'POST',
                '{"object_type": "shop.order", "object_id": ' || i || '}', 'application/json',
                CASE i %% 20 WHEN 0 THEN 'error' WHEN 1 THEN 'waiting' ELSE 'sent' END,
                CASE i %% 20 WHEN 0 THEN 'HTTP 500 (attempt 8, giving up)' ELSE 'HTTP 200' END,
                1, 0, t, CASE i %% 20 WHEN 0 THEN 500 WHEN 1 THEN NULL ELSE 200 END, t, t
            FROM generate_series(1, %(rows)s) AS i,
                 LATERAL (SELECT now() - (%(rows)s - i) * interval '2 seconds' AS t) AS times
            """,
            {"hooks": hook_ids, "count": len(hook_ids), "rows": rows},
        )
        cursor.execute("ANALYZE http_hooks_callback")


def fill_stats(hook_ids: list[int], hours: int) -> None:
    """The hourly delivery counts of ``hook_ids`` for the last ``hours`` hours, as the
    sender would have kept them for the callbacks above, in one statement."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE http_hooks_deliverystats RESTART IDENTITY")
        cursor.execute(
            """
            INSERT INTO http_hooks_deliverystats (
                hook_id, hour, sent, failed, under_1ms, under_2ms, under_5ms, under_10ms,
                under_20ms, under_50ms, under_100ms, under_200ms, under_500ms, under_1000ms,
                under_2000ms, under_5000ms, under_10000ms, under_20000ms, under_50000ms,
                from_50000ms
            )
            SELECT hook, floor(extract(epoch FROM now()) / 3600)::integer - h, 90, 10,
                   0, 0, 5, 20, 30, 25, 10, 5, 3, 1, 1, 0, 0, 0, 0, 0
            FROM unnest(%(hooks)s::bigint[]) AS hook, generate_series(0, %(hours)s - 1) AS h
            """,
            {"hooks": hook_ids, "hours": hours},
        )
        cursor.execute("ANALYZE http_hooks_deliverystats")


def time_requests(get: Callable[[], object], requests: int) -> tuple[float, float]:
    """Median and 95th percentile of ``requests`` calls of ``get``, in milliseconds,
    after a tenth as many (at least 5) to warm up; each answer must be a 200."""
    for _ in range(max(5, requests // 10)):
        get()
    durations = []
    for _ in range(requests):
        started = time.perf_counter()
        response = get()
        durations.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.content
    durations.sort()
    return statistics.median(durations), durations[int(len(durations) * 0.95) - 1]
