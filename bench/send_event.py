"""What routing an explicit event costs as hooks grow: 1, 1,000 and 10,000 hooks.

Each size has that many hooks with event types, each of its own owner
(``order.*`` or ``order.paid``), plus one hook with no owner on ``order.*``.
For each size it prints, in microseconds per call:

- ``lookup``: the registry's routing of ``order.paid`` for one owner
  (``registry.event_hooks``), the type already asked for (cached);
- ``lookup, new type``: the same for a type never asked for before (the
  index's dictionary lookups, one per name prefix);
- ``send_event``: the whole call for one owner (two callbacks stored, in a
  transaction that is rolled back, so the table does not grow);
- ``load``: building the registry's map and index of all the hooks (what a
  process pays once per hook change, not per event).

The sizes take turns over several rounds (each round starting at another size)
and the medians are printed, so that a machine that speeds up or slows down
during the run favours none. Run it with::

    .venv/bin/python bench/send_event.py [--rounds 5] [--calls 20000] [--db postgres]

It uses a throwaway database (``bench/benchdb.py``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

from benchdb import database_env, setup_django

PG_NAME = "http_hooks_bench_send_event"
SIZES = (1, 1_000, 10_000)
TARGET = "http://127.0.0.1:9/unused"


class Rollback(Exception):
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    setup_django(database_env(args.db, name=PG_NAME))

    from django.db import transaction

    from http_hooks.api import send_event
    from http_hooks.models import Hook
    from http_hooks.registry import registry

    def load(size: int) -> None:
        Hook.objects.all().delete()
        Hook.objects.bulk_create(
            [Hook(event_types=["order.*"], target_url=TARGET)]
            + [
                Hook(
                    event_types=["order.*" if i % 2 else "order.paid"],
                    target_url=TARGET,
                    owner=str(i),
                )
                for i in range(size)
            ]
        )
        registry.reload()

    def per_call(run, calls: int) -> float:
        started = time.perf_counter()
        for i in range(calls):
            run(i)
        return (time.perf_counter() - started) / calls * 1e6

    def send(i: int) -> None:
        try:
            with transaction.atomic():
                assert len(send_event("order.paid", {"id": i}, owner="0")) == 2
                raise Rollback
        except Rollback:
            pass

    samples: dict[tuple[int, str], list[float]] = defaultdict(list)
    fresh = 0
    for round_number in range(args.rounds):
        shift = round_number % len(SIZES)
        for size in SIZES[shift:] + SIZES[:shift]:
            load(size)
            started = time.perf_counter()
            registry.reload()
            samples[size, "load (ms)"].append((time.perf_counter() - started) * 1e3)
            registry.event_hooks("order.paid", "0")
            samples[size, "lookup"].append(
                per_call(
                    lambda i, size=size: registry.event_hooks("order.paid", str(i % size)),
                    args.calls,
                )
            )
            base = fresh
            samples[size, "lookup, new type"].append(
                per_call(
                    lambda i, base=base: registry.event_hooks(f"order.t{base + i}", "0"),
                    args.calls,
                )
            )
            fresh += args.calls
            samples[size, "send_event"].append(per_call(send, args.calls // 20))
    print(f"{'hooks':>7} {'measure':<18} {'median':>10}  (µs per call; load in ms)")
    for size in SIZES:
        for measure in ("lookup", "lookup, new type", "send_event", "load (ms)"):
            print(f"{size:>7} {measure:<18} {statistics.median(samples[size, measure]):>10.2f}")


if __name__ == "__main__":
    main()
