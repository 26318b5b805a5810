"""Benchmark: the admin pages an operator uses, on a big callbacks table, in PostgreSQL.

Run it from the repository root, with PostgreSQL on 127.0.0.1 (trust auth, user
``postgres``; ``HTTP_HOOKS_PG_*`` override the connection)::

    .venv/bin/python bench/admin.py                  # 10,000 then 1,000,000 rows
    .venv/bin/python bench/admin.py --rows 1000000 --keep     # keep the filled database
    .venv/bin/python bench/admin.py --rows 1000000 --reuse    # and time it again, unfilled

It creates the database ``http_hooks_bench_admin`` (dropped at the end unless
``--keep``; ``--reuse`` keeps what a kept run left when it holds the rows asked
for), fills the callbacks as ``bench/api.py`` does (one ``INSERT ... SELECT
generate_series``: 5% error, 5% waiting, the rest sent, one row every two
seconds back in time, over 20 hooks), and times each page through the whole
Django stack (``django.test.Client``: middleware, session of a logged-in
superuser, the admin's views and templates; not Django's test environment, whose
instrumented templates copy every context, a cost production has not): the
callback list unfiltered, by each filter, searched by an event id, a callback id
or an object id and by text, one callback with its attempts, the hook list, the
delivery overview over a day, a week and 30 days (the hourly counts of 30 days
of every hook filled alongside, as the sender keeps them) and the REST API's
health of one hook (``GET /api/hooks/{id}/health/``). It prints
the median and 95th percentile of each and marks a p95 over its target: 100 ms
for the search by event id, 300 ms for the others.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable

from benchdb import (
    create_hooks,
    database_env,
    drop_postgres,
    fill_callbacks,
    fill_stats,
    setup_django,
    time_requests,
)

DATABASE = "http_hooks_bench_admin"
TARGET_MS = 300.0
EVENT_ID_TARGET_MS = 100.0
CHANGELIST = "/admin/http_hooks/callback/"


def pages(client, rows: int, hook_ids: list[int]) -> dict[str, tuple[float, Callable[[], object]]]:
    """Each page: its target in ms, and a call that fetches it."""
    import datetime

    from django.contrib.contenttypes.models import ContentType
    from django.utils import timezone

    from http_hooks.models import Callback

    sample = random.sample(range(1, rows + 1), 200)
    event_ids = [
        str(e) for e in Callback.objects.filter(pk__in=sample).values_list("event_id", flat=True)
    ]
    order_type = ContentType.objects.get_by_natural_key("shop", "order").pk
    hook = hook_ids[0]
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    week, tomorrow = datetime.timedelta(days=7), today + datetime.timedelta(days=1)

    def changelist(**query) -> Callable[[], object]:
        return lambda: client.get(CHANGELIST, query)

    return {
        "callbacks": (TARGET_MS, changelist()),
        "callbacks, page 2": (TARGET_MS, changelist(p=2)),
        "callbacks by status (error)": (TARGET_MS, changelist(status__exact="error")),
        "callbacks by status (sent)": (TARGET_MS, changelist(status__exact="sent")),
        "callbacks by hook": (TARGET_MS, changelist(hook__id__exact=hook)),
        "callbacks by hook and status": (
            TARGET_MS,
            changelist(hook__id__exact=hook, status__exact="error"),
        ),
        "callbacks by model": (TARGET_MS, changelist(hook__model=order_type)),
        "callbacks by hook enabled": (TARGET_MS, changelist(hook__enabled__exact=1)),
        "callbacks by event type": (TARGET_MS, changelist(event_type="created")),
        "callbacks by event type (none has it)": (TARGET_MS, changelist(event_type="test")),
        "callbacks created in the past 7 days": (
            TARGET_MS,
            changelist(create_datetime__gte=str(today - week), create_datetime__lt=str(tomorrow)),
        ),
        "search: an event id": (
            EVENT_ID_TARGET_MS,
            lambda: client.get(CHANGELIST, {"q": random.choice(event_ids)}),
        ),
        "search: an object id or callback id": (
            TARGET_MS,
            lambda: client.get(CHANGELIST, {"q": str(random.choice(sample))}),
        ),
        "search: text": (TARGET_MS, changelist(q="giving up")),
        "one callback": (
            TARGET_MS,
            lambda: client.get(f"{CHANGELIST}{random.choice(sample)}/change/"),
        ),
        "hooks": (TARGET_MS, lambda: client.get("/admin/http_hooks/hook/")),
        "delivery overview (24 h)": (TARGET_MS, lambda: client.get(f"{CHANGELIST}overview/")),
        "delivery overview (7 days)": (
            TARGET_MS,
            lambda: client.get(f"{CHANGELIST}overview/", {"hours": 168}),
        ),
        "delivery overview (30 days)": (
            TARGET_MS,
            lambda: client.get(f"{CHANGELIST}overview/", {"hours": 720}),
        ),
        "health of a hook (API, 30 days)": (
            TARGET_MS,
            lambda: client.get(f"/api/hooks/{hook}/health/", {"window": "30d"}),
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="time a kept database without filling it again"
    )
    args = parser.parse_args()

    setup_django(database_env("postgres", name=DATABASE, reuse=args.reuse))
    from django.contrib.auth.models import User
    from django.db.models import Max
    from django.test import Client

    from http_hooks.delivery.stats import MAX_WINDOW_HOURS
    from http_hooks.models import Callback, Hook

    try:
        hook_ids = list(Hook.objects.values_list("pk", flat=True)) or create_hooks()
        user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
            "bench"
        )
        client = Client()
        client.force_login(user)
        results = {}
        for rows in args.rows:
            if not (args.reuse and Callback.objects.aggregate(last=Max("pk"))["last"] == rows):
                started = time.perf_counter()
                fill_callbacks(rows, hook_ids)
                fill_stats(hook_ids, MAX_WINDOW_HOURS)
                print(f"{rows:>9,} callbacks inserted in {time.perf_counter() - started:.1f} s")
            results[rows] = {
                name: (target, *time_requests(get, args.requests))
                for name, (target, get) in pages(client, rows, hook_ids).items()
            }
    finally:
        if not args.keep:
            drop_postgres(DATABASE)

    print(f"\n{args.requests} requests per page, milliseconds (median / p95)")
    header = f"{'page':<40}{'target':>8}" + "".join(f"{f'{rows:,} rows':>22}" for rows in args.rows)
    print(header)
    print("-" * len(header))
    failed = False
    for name in results[args.rows[0]]:
        target = results[args.rows[0]][name][0]
        cells = []
        for rows in args.rows:
            _, median, p95 = results[rows][name]
            slow = p95 > target
            failed |= slow
            cells.append(f"{median:>8.1f} / {p95:>6.1f}{' !' if slow else '  '}")
        print(f"{name:<40}{target:>8.0f}" + "".join(f"{cell:>22}" for cell in cells))
    print("\n'!' marks a p95 over the page's target.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
