"""What a hook costs a model save.

Creates 5,000 ``shop.Customer`` rows one by one in four runs and prints the
microseconds per save of each and their ratios to the first:

1. no hook at all;
2. 200 hooks on other models (the registry must make them cost nothing);
3. one hook with the default payload on Customer;
4. that hook plus the 200 hooks on other models.

It also prints the cost of one extra INSERT of a callback-sized row and of
rendering the default payload alone, so that run 3 can be compared with
"one INSERT plus rendering". Run it with ``make bench`` or::

    .venv/bin/python bench/save_overhead.py [--rows 5000] [--db postgres]

It uses a throwaway database (``bench/benchdb.py``): a temporary SQLite file,
or a database named ``http_hooks_bench_save`` on the PostgreSQL of
``HTTP_HOOKS_PG_*``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchdb import database_env, setup_django

PG_NAME = "http_hooks_bench_save"


def time_saves(rows: int, label: str) -> float:
    from shop.models import Customer

    samples = []
    for repeat in range(3):
        started = time.perf_counter()
        for i in range(rows):
            Customer.objects.create(name=f"{label}-{repeat}-{i}", email="a@example.com")
        samples.append((time.perf_counter() - started) / rows * 1e6)
    Customer.objects.all().delete()
    return statistics.median(samples)


def time_reference_costs(rows: int) -> tuple[float, float]:
    """Microseconds of one callback-sized INSERT, and of rendering the default payload."""
    from http_hooks.models import Callback, Hook
    from http_hooks.payloads import default_payload
    from shop.models import Customer

    hook = Hook.objects.first()
    customer = Customer(pk=1, name="x", email="a@example.com")
    started = time.perf_counter()
    for _ in range(rows):
        default_payload(customer, "created", Customer)
    render = (time.perf_counter() - started) / rows * 1e6
    payload = default_payload(customer, "created", Customer)
    started = time.perf_counter()
    for _ in range(rows):
        Callback.objects.create(
            hook=hook, target_url=hook.target_url, http_method="POST", payload=payload
        )
    insert = (time.perf_counter() - started) / rows * 1e6
    Callback.objects.all().delete()
    return insert, render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    setup_django(database_env(args.db, name=PG_NAME))

    from django.contrib.auth.models import Group, Permission, User

    from http_hooks.api import create_hook
    from http_hooks.models import Callback
    from shop.models import Customer

    target = "http://127.0.0.1:9/unused"
    post_save = ["django.db.models.signals.post_save"]
    results = {"no hook": time_saves(args.rows, "none")}

    others = [Group, Permission, User, "shop.order", "shop.parcel"]
    for i in range(200):
        create_hook(model=others[i % len(others)], signals=post_save, target_url=f"{target}/{i}")
    results["200 hooks on other models"] = time_saves(args.rows, "others")
    assert not Callback.objects.exists()

    from http_hooks.models import Hook

    Hook.objects.all().delete()
    hook = create_hook(model=Customer, signals=post_save, target_url=target)
    results["1 hook (default payload)"] = time_saves(args.rows, "one")
    assert Callback.objects.filter(hook=hook).count() == 3 * args.rows
    Callback.objects.all().delete()

    for i in range(200):
        create_hook(model=others[i % len(others)], signals=post_save, target_url=f"{target}/{i}")
    results["1 hook + 200 on other models"] = time_saves(args.rows, "both")
    Callback.objects.all().delete()
    insert, render = time_reference_costs(args.rows)

    base = results["no hook"]
    print(f"save overhead, {args.rows} saves x 3 runs (median), database: {args.db}")
    print(f"{'case':32} {'us/save':>9} {'ratio':>7}")
    for name, micros in results.items():
        print(f"{name:32} {micros:9.1f} {micros / base:7.2f}")
    one_hook_cost = results["1 hook (default payload)"] - base
    print()
    print(f"cost of one hook per save:             {one_hook_cost:7.1f} us")
    print(
        f"one callback INSERT + payload render:  {insert + render:7.1f} us "
        f"(INSERT {insert:.1f} + render {render:.1f})"
    )
    print(
        f"cost of 200 unrelated hooks per save:  "
        f"{results['200 hooks on other models'] - base:7.1f} us"
    )


if __name__ == "__main__":
    main()
