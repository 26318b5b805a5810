"""What a hook costs a model save.

Saves ``shop.Customer`` rows one by one (5,000 per case and round) in four
cases and prints the microseconds per save of each and their ratio to the
first:

1. no hook at all;
2. 200 hooks on other models (the registry must make them cost nothing);
3. one hook with the default payload on Customer;
4. that hook plus the 200 hooks on other models.

Next to them it times the reference "one callback INSERT plus rendering the
default payload", which is what one hook may cost at most. The cases and the
reference take turns over several rounds and the medians are compared, so
that a machine that speeds up or slows down during the run favours none of
them. Run it with ``make bench`` or::

    .venv/bin/python bench/save_overhead.py [--rows 5000] [--rounds 5] [--db postgres]

It uses a throwaway database (``bench/benchdb.py``): a temporary SQLite file,
or a database named ``http_hooks_bench_save`` on the PostgreSQL of
``HTTP_HOOKS_PG_*``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable

from benchdb import database_env, setup_django

PG_NAME = "http_hooks_bench_save"
POST_SAVE = ["django.db.models.signals.post_save"]
TARGET = "http://127.0.0.1:9/unused"


def per_call(rows: int, run: Callable[[int], object]) -> float:
    """Microseconds per call of ``run(i)`` over ``rows`` calls."""
    started = time.perf_counter()
    for i in range(rows):
        run(i)
    return (time.perf_counter() - started) / rows * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    setup_django(database_env(args.db, name=PG_NAME))

    from django.contrib.auth.models import Group, Permission, User

    from http_hooks.api import create_hook
    from http_hooks.models import Callback
    from http_hooks.payloads import default_payload
    from http_hooks.services import set_hook_enabled
    from shop.models import Customer

    others = [Group, Permission, User, "shop.order", "shop.parcel"]
    unrelated = [
        create_hook(model=others[i % len(others)], signals=POST_SAVE, target_url=f"{TARGET}/{i}")
        for i in range(200)
    ]
    hook = create_hook(model=Customer, signals=POST_SAVE, target_url=TARGET)

    def configure(one_hook: bool, two_hundred: bool) -> None:
        set_hook_enabled(hook, one_hook)
        for other in unrelated:
            if other.enabled != two_hundred:
                set_hook_enabled(other, two_hundred)

    def save(i: int) -> None:
        Customer.objects.create(name=f"customer {i}", email="a@example.com")

    sample = Customer(pk=1, name="customer 1", email="a@example.com")
    payload = default_payload(sample, "created", Customer)

    def reference(i: int) -> None:
        default_payload(sample, "created", Customer)
        Callback.objects.create(hook=hook, target_url=TARGET, http_method="POST", payload=payload)

    cases = {
        "no hook": (False, False),
        "200 hooks on other models": (False, True),
        "1 hook (default payload)": (True, False),
        "1 hook + 200 on other models": (True, True),
    }
    samples: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.rounds):
        for name, (one_hook, two_hundred) in cases.items():
            configure(one_hook, two_hundred)
            samples[name].append(per_call(args.rows, save))
            Customer.objects.all().delete()
            Callback.objects.all().delete()
        configure(False, False)
        samples["reference"].append(per_call(args.rows, reference))
        Callback.objects.all().delete()
    median = {name: statistics.median(values) for name, values in samples.items()}

    base = median["no hook"]
    print(f"save overhead, {args.rows} saves x {args.rounds} rounds (median), database: {args.db}")
    print(f"{'case':32} {'us/save':>9} {'ratio':>7}")
    for name in cases:
        print(f"{name:32} {median[name]:9.1f} {median[name] / base:7.2f}")
    one_hook = median["1 hook (default payload)"] - base
    print()
    print(f"cost of one hook per save:             {one_hook:7.1f} us")
    print(f"one callback INSERT + payload render:  {median['reference']:7.1f} us")
    unrelated_cost = median["200 hooks on other models"] - base
    print(f"cost of 200 unrelated hooks per save:  {unrelated_cost:7.1f} us")
    print(f"one hook / (INSERT + render):          {one_hook / median['reference']:7.2f}")


if __name__ == "__main__":
    main()
