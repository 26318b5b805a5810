"""Benchmark: the REST API's hot reads on a big callbacks table, in PostgreSQL.

Run it from the repository root, with PostgreSQL on 127.0.0.1 (trust auth, user
``postgres``; ``HTTP_HOOKS_PG_*`` override the connection)::

    .venv/bin/python bench/api.py                  # 10,000 then 1,000,000 rows
    .venv/bin/python bench/api.py --rows 50000 --requests 500

It creates the database ``http_hooks_bench`` (dropped at the end unless
``--keep``), migrates it, and for each table size fills ``http_hooks_callback``
with one ``INSERT ... SELECT generate_series`` (5% error, 5% waiting, the rest
sent, one row every two seconds back in time, spread over 20 hooks). Then it
times requests through the whole Django stack (``django.test.Client``:
middleware, session authentication of a staff user, DRF, filters, pagination,
serializers) and prints the median and 95th percentile of:

* ``list``: the newest page of callbacks filtered by status and hook
  (``GET /api/callbacks/?status=error&hook=ID``),
* ``retrieve``: one callback (``GET /api/callbacks/ID/``, random ids),
* ``monitor``: ``GET /api/callbacks/monitor/?status=error&callbacks_limit=50&minutes_ago=10``,

and, for information, the unfiltered newest page and the monitor over the
whole table (no ``minutes_ago``), whose ``COUNT(*)`` grows with the table.
Target: each of the first three under 50 ms, the same at every table size.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from benchdb import (
    create_hooks,
    database_env,
    drop_postgres,
    fill_callbacks,
    setup_django,
    time_requests,
)

DATABASE = "http_hooks_bench"
TARGET_MS = 50.0


def bench(rows: int, requests: int, client, hook_ids: list[int]) -> dict[str, tuple[float, float]]:
    hook = hook_ids[0]
    ids = list(range(1, rows + 1))
    cases = {
        "list (status + hook, newest page)": lambda: client.get(
            "/api/callbacks/", {"status": "error", "hook": hook}
        ),
        "retrieve": lambda: client.get(f"/api/callbacks/{random.choice(ids)}/"),
        "monitor (minutes_ago=10)": lambda: client.get(
            "/api/callbacks/monitor/",
            {"status": "error", "callbacks_limit": 50, "minutes_ago": 10},
        ),
        "list (no filter, newest page) [info]": lambda: client.get("/api/callbacks/"),
        "monitor (whole table) [info]": lambda: client.get(
            "/api/callbacks/monitor/", {"status": "error", "callbacks_limit": 50}
        ),
    }
    return {name: time_requests(get, requests) for name, get in cases.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per case")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    setup_django(database_env("postgres", name=DATABASE))
    from django.contrib.auth.models import User
    from django.test import Client
    from django.test.utils import setup_test_environment

    try:
        setup_test_environment()
        hook_ids = create_hooks()
        client = Client()
        client.force_login(User.objects.create_user("bench", is_staff=True))
        results = {}
        for rows in args.rows:
            started = time.perf_counter()
            fill_callbacks(rows, hook_ids)
            print(f"{rows:>9,} callbacks inserted in {time.perf_counter() - started:.1f} s")
            results[rows] = bench(rows, args.requests, client, hook_ids)
    finally:
        if not args.keep:
            drop_postgres(DATABASE)

    print(f"\n{args.requests} requests per case, milliseconds (median / p95)")
    header = f"{'case':<40}" + "".join(f"{f'{rows:,} rows':>22}" for rows in args.rows)
    print(header)
    print("-" * len(header))
    failed = False
    for name in results[args.rows[0]]:
        cells = []
        for rows in args.rows:
            median, p95 = results[rows][name]
            slow = p95 > TARGET_MS and "[info]" not in name
            failed |= slow
            cells.append(f"{median:>8.1f} / {p95:>6.1f}{' !' if slow else '  '}")
        print(f"{name:<40}" + "".join(f"{cell:>22}" for cell in cells))
    print(f"\n'!' marks a p95 over {TARGET_MS:.0f} ms; [info] rows are not held to it.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
