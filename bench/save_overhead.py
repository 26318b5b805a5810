"""What a hook costs a model save.

Saves ``shop.Customer`` rows one by one (5,000 per case and round) in these
cases and prints the microseconds per save of each and their ratio to the
first of its kind:

1. no hook at all;
2. 200 hooks on other models (the registry must make them cost nothing);
3. one hook with the default payload on Customer;
4. that hook plus the 200 hooks on other models;
5. one hook on Customer whose conditions are false for every save (at most
   1.1 times case 1: no callback is built);
6. no hook, saving rows loaded before (an UPDATE each);
7. one hook on Customer with ``changed_fields``, saving loaded rows whose
   watched field did not change (at most 1.1 times case 6).

It also prints what loading a row costs once the hook of case 7 makes
``post_init`` keep a copy of the watched field, and the registry's own work
per save without the database (``registry.dispatch`` of a post_save, 50,000
times), which a busy machine's noise does not hide.

Next to them it times the reference "one callback INSERT plus rendering the
default payload", which is what one hook may cost at most. The cases and the
reference take turns over several rounds, each round starting at another
case, and the medians are compared, so that a machine that speeds up or slows
down during the run favours none of them. Run it with ``make bench`` or::

    .venv/bin/python bench/save_overhead.py [--rows 5000] [--rounds 5] [--db postgres]

It uses a throwaway database (``bench/benchdb.py``): a temporary SQLite file,
or a database named ``http_hooks_bench_save`` on the PostgreSQL of
``HTTP_HOOKS_PG_*``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial

from benchdb import database_env, setup_django

PG_NAME = "http_hooks_bench_save"
POST_SAVE = ["django.db.models.signals.post_save"]
TARGET = "http://127.0.0.1:9/unused"
DISPATCHES = 50_000


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

    from http_hooks import disable_hooks
    from http_hooks.api import create_hook
    from http_hooks.models import Callback
    from http_hooks.payloads import default_payload
    from http_hooks.registry import registry
    from http_hooks.services import set_hook_enabled
    from shop.models import Customer

    others = [Group, Permission, User, "shop.order", "shop.parcel"]
    unrelated = [
        create_hook(model=others[i % len(others)], signals=POST_SAVE, target_url=f"{TARGET}/{i}")
        for i in range(200)
    ]
    hooks = {
        "default": create_hook(model=Customer, signals=POST_SAVE, target_url=TARGET),
        "conditions false": create_hook(
            model=Customer,
            signals=POST_SAVE,
            target_url=TARGET,
            conditions={"is_vip": True, "name__startswith": "customer"},
        ),
        "changed_fields": create_hook(
            model=Customer, signals=POST_SAVE, target_url=TARGET, changed_fields=["is_vip"]
        ),
    }

    def configure(enabled: set[str], two_hundred: bool) -> None:
        for name, hook in hooks.items():
            if hook.enabled != (name in enabled):
                set_hook_enabled(hook, name in enabled)
        for other in unrelated:
            if other.enabled != two_hundred:
                set_hook_enabled(other, two_hundred)

    def create(i: int) -> None:
        Customer.objects.create(name=f"customer {i}", email="a@example.com")

    loaded: list[Customer] = []

    def update(i: int) -> None:
        loaded[i].save()

    sample = Customer(pk=1, name="customer 1", email="a@example.com")
    payload = default_payload(sample, "created", Customer)

    def dispatch(i: int, *, signal: dict) -> None:
        registry.dispatch(POST_SAVE[0], Customer, signal)

    def reference(i: int) -> None:
        default_payload(sample, "created", Customer)
        Callback.objects.create(
            hook=hooks["default"], target_url=TARGET, http_method="POST", payload=payload
        )

    cases = {
        "no hook": (set(), False, create),
        "200 hooks on other models": (set(), True, create),
        "1 hook (default payload)": ({"default"}, False, create),
        "1 hook + 200 on other models": ({"default"}, True, create),
        "1 hook, conditions false": ({"conditions false"}, False, create),
        "no hook, update": (set(), False, update),
        "changed_fields, nothing changed": ({"changed_fields"}, False, update),
    }
    baselines = {create: "no hook", update: "no hook, update"}
    samples: dict[str, list[float]] = defaultdict(list)
    names = list(cases)
    for round_number in range(args.rounds):
        # Each round starts at another case: no case always runs first, or after a reload.
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            enabled, two_hundred, operation = cases[name]
            configure(enabled, two_hundred)
            gc.collect()  # the garbage of the registry reloads is not timed with the saves
            if operation is update:
                with disable_hooks():
                    Customer.objects.bulk_create(
                        Customer(name=f"customer {i}", email="a@example.com")
                        for i in range(args.rows)
                    )
                started = time.perf_counter()
                loaded[:] = Customer.objects.order_by("pk")
                samples[f"load: {name}"].append((time.perf_counter() - started) / args.rows * 1e6)
            samples[name].append(per_call(args.rows, operation))
            Customer.objects.all().delete()
            Callback.objects.all().delete()
        for name in ("no hook", "1 hook, conditions false", "changed_fields, nothing changed"):
            configure(cases[name][0], False)
            instance = Customer.objects.create(name="customer", email="a@example.com")
            instance = Customer.objects.get(pk=instance.pk)  # loaded: its copy is kept
            signal = {"instance": instance, "created": False, "update_fields": None}
            samples[f"dispatch: {name}"].append(
                per_call(DISPATCHES, partial(dispatch, signal=signal))
            )
            Customer.objects.all().delete()
        configure(set(), False)
        samples["reference"].append(per_call(args.rows, reference))
        Callback.objects.all().delete()
    median = {name: statistics.median(values) for name, values in samples.items()}

    base = median["no hook"]
    print(f"save overhead, {args.rows} saves x {args.rounds} rounds (median), database: {args.db}")
    print(f"{'case':32} {'us/save':>9} {'ratio':>7}")
    for name, (_, _, operation) in cases.items():
        ratio = median[name] / median[baselines[operation]]
        print(f"{name:32} {median[name]:9.1f} {ratio:7.2f}")
    print()
    for name in ("no hook, update", "changed_fields, nothing changed"):
        print(f"loading a row, {name + ':':33} {median[f'load: {name}']:6.2f} us")
    for name in ("no hook", "1 hook, conditions false", "changed_fields, nothing changed"):
        print(f"registry work per save, {name + ':':33} {median[f'dispatch: {name}']:6.2f} us")
    one_hook = median["1 hook (default payload)"] - base
    print()
    print(f"cost of one hook per save:             {one_hook:7.1f} us")
    print(f"one callback INSERT + payload render:  {median['reference']:7.1f} us")
    unrelated_cost = median["200 hooks on other models"] - base
    print(f"cost of 200 unrelated hooks per save:  {unrelated_cost:7.1f} us")
    print(f"one hook / (INSERT + render):          {one_hook / median['reference']:7.2f}")


if __name__ == "__main__":
    main()
