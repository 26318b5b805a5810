"""The database side of a metrics scrape (``selectors.delivery_state``) at a million callbacks.

Fills PostgreSQL with ``--rows`` callbacks (``benchdb.fill_callbacks``: 90% sent,
5% waiting and due, 5% error, over 20 hooks), then holds three hooks back: one
paused by its circuit breaker, one whose pause has passed (waiting for its probe),
one disabled by http_hooks with ``--backlog`` waiting callbacks due before any
other (the oldest due callback a sender would take is behind them). It times
``delivery_state()`` (what a scrape reads when its cache has expired; median and
p95 of ``--runs``) and prints each of its queries with PostgreSQL's plan and time
(``EXPLAIN (ANALYZE, BUFFERS)``). Then it times what the sender spends counting
tries (``metrics.record_attempts``, on windows of 16 and 500 tries of 3 hooks; run
it with ``PROMETHEUS_MULTIPROC_DIR`` set to an empty directory for multiprocess
mode)::

    .venv/bin/python bench/metrics.py [--rows 1000000] [--backlog 100000] [--runs 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from benchdb import create_hooks, database_env, drop_postgres, fill_callbacks, setup_django

DATABASE = "http_hooks_bench_metrics"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    setup_django(database_env("postgres", name=DATABASE))
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from http_hooks.models import Callback, DisabledReason, Hook
    from http_hooks.selectors import delivery_state

    try:
        hook_ids = create_hooks()
        started = time.perf_counter()
        fill_callbacks(args.rows, hook_ids)
        now = timezone.now()
        paused, disabled, probed = hook_ids[0], hook_ids[1], hook_ids[7]  # 7: has due ones
        Hook.objects.filter(pk=paused).update(
            paused_until=now + timedelta(hours=1), breaker_trips=1, consecutive_failures=5
        )
        Hook.objects.filter(pk=probed).update(  # its pause has passed: a probe is due
            paused_until=now - timedelta(minutes=1), breaker_trips=1, consecutive_failures=5
        )
        Hook.objects.filter(pk=disabled).update(
            enabled=False, disabled_reason=DisabledReason.FAILING
        )
        backlog = Callback.objects.filter(pk__lte=args.backlog)
        backlog.update(hook_id=disabled, status="waiting", next_attempt_at=now - timedelta(days=60))
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE http_hooks_callback")
        print(
            f"{args.rows:,} callbacks ({args.backlog:,} of a disabled hook due first) "
            f"in {time.perf_counter() - started:.1f} s"
        )

        with CaptureQueriesContext(connection) as queries:
            state = delivery_state(exact_up_to=10_000)
        print(f"\n{state}\n")
        for query in queries.captured_queries:
            sql = query["sql"]
            if sql.startswith("EXPLAIN"):
                continue
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
                plan = [row[0] for row in cursor.fetchall()]
            print(sql[:160] + ("..." if len(sql) > 160 else ""))
            print("\n".join(f"    {line}" for line in plan), end="\n\n")

        timings = []
        for _ in range(args.runs):
            started = time.perf_counter()
            delivery_state(exact_up_to=10_000)
            timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        p95 = timings[int(len(timings) * 0.95) - 1]
        print(
            f"delivery_state(): median {statistics.median(timings):.1f} ms, "
            f"p95 {p95:.1f} ms over {args.runs} runs ({len(queries)} queries)"
        )
    finally:
        drop_postgres(DATABASE)
    time_counting()
    return 0


def time_counting() -> None:
    from http_hooks.metrics import record_attempts
    from http_hooks.models import Callback
    from http_hooks.transport import Outcome

    for size in (16, 500):
        batch = [Callback(pk=i, hook_id=1 + i % 3, status="sent") for i in range(size)]
        outcomes = [Outcome(status_code=204, duration_ms=2) for _ in batch]
        recorded = {callback.pk for callback in batch}
        timings = []
        for _ in range(max(1, 100_000 // size)):
            started = time.perf_counter()
            record_attempts(batch, outcomes, recorded)
            timings.append((time.perf_counter() - started) / size * 1e6)
        print(f"counting a window of {size} tries: {statistics.median(timings):.2f} µs per try")


if __name__ == "__main__":
    sys.exit(main())
