"""Tenants at scale: what 10,000 owners with a hook each on one model cost.

For N = 1, 1,000 and 10,000 owned hooks on ``shop.Order`` (one per owner, owner
``shop.Customer`` by ``OWNER_FIELDS = {"shop.Order": "customer"}``), it prints:

- save: microseconds per ``Order`` save that belongs to one owner and fires that
  owner's hook, against a save with one project hook (no owners at all), and
  their ratio (the bar: at most 1.2); and the registry's part of it alone, the
  lookup of the save's hooks (100,000 times), which the noise of a busy
  machine does not hide;
- refresh: milliseconds for another process's registry (a second
  ``HookRegistry``) to take in one hook change (update, disable, create, delete)
  at its next check, and the check itself when nothing changed;
- memory: what the registry of N hooks holds (tracemalloc, after a full load).

Saves and lookups are timed in this process's CPU time, which the other
processes of a busy machine do not inflate (the database server's share is
not counted on PostgreSQL: it is the same in both cases), and the saves of a
case and round run in one transaction (a commit's flush would drown the
rest); refreshes are timed on the clock. The cases take turns over several
rounds, each round starting at another case, and the medians are compared, so
that a machine that speeds up or slows down during the run favours none of
them. Run it with::

    .venv/bin/python bench/tenants.py [--saves 2000] [--rounds 9] [--db postgres]

It uses a throwaway database (``bench/benchdb.py``): a temporary SQLite file,
or a database named ``http_hooks_bench_tenants`` on the PostgreSQL of
``HTTP_HOOKS_PG_*``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import statistics
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Callable

from benchdb import database_env, setup_django

PG_NAME = "http_hooks_bench_tenants"
SIZES = (1, 1_000, 10_000)
POST_SAVE = "django.db.models.signals.post_save"
TARGET = "http://127.0.0.1:9/unused"
LOOKUPS = 100_000
CHANGES = ("nothing changed", "update", "disable", "create", "delete")
OWNERS = {"OWNER_MODEL": "shop.Customer", "OWNER_FIELDS": {"shop.Order": "customer"}}


def timed(run: Callable[[], object]) -> float:
    """Seconds one call of ``run`` takes."""
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def lookup_cost(registry, order) -> float:
    """Microseconds the registry takes to find the hooks of a save of ``order``: the
    table, the bucket of (post_save, Order), the owner's hooks in it."""
    started = time.process_time()
    for _ in range(LOOKUPS):
        registry.table()[(POST_SAVE, type(order))].for_instance(order)
    return (time.process_time() - started) / LOOKUPS * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    os.environ["HTTP_HOOKS_OVERRIDES"] = json.dumps({**OWNERS, "REGISTRY_TTL": 3600})
    setup_django(database_env(args.db, name=PG_NAME))

    from django.db import transaction
    from django.utils import timezone

    from http_hooks import disable_hooks
    from http_hooks.api import create_hook, delete_hook, update_hook
    from http_hooks.models import Callback, Hook
    from http_hooks.registry import HookRegistry, registry
    from http_hooks.services import set_hook_enabled
    from shop.models import Customer, Order

    with disable_hooks():
        customers = Customer.objects.bulk_create(
            Customer(name=f"owner {i}") for i in range(max(SIZES))
        )
    project = create_hook(model=Order, signals=[POST_SAVE], target_url=TARGET)
    template = create_hook(
        model=Order, signals=[POST_SAVE], target_url=TARGET, owner=customers[0].pk
    )
    columns = {
        f.attname: getattr(template, f.attname)
        for f in Hook._meta.concrete_fields
        if not f.primary_key and f.attname not in ("owner", "target_url")
    }
    link = template.signals.through.objects.get(hook=template)
    owned = [template.pk]

    def grow_to(size: int) -> None:
        """Owned hooks, one per owner, added in bulk: their validation is not measured."""
        now = timezone.now()
        added = Hook.objects.bulk_create(
            Hook(
                **{**columns, "update_datetime": now, "create_datetime": now},
                owner=str(customers[i].pk),
                target_url=f"{TARGET}/{i}",
            )
            for i in range(len(owned), size)
        )
        type(link).objects.bulk_create(
            type(link)(hook_id=hook.pk, signal_id=link.signal_id) for hook in added
        )
        # As if written over the last days, a minute apart, not all in the same instant.
        for index, hook in enumerate(added):
            hook.update_datetime = now - datetime.timedelta(minutes=len(owned) + index)
        Hook.objects.bulk_update(added, ["update_datetime"], batch_size=1000)
        owned.extend(hook.pk for hook in added)

    def change(kind: str, hook: Hook) -> None:
        """One hook change of ``kind``, made in this process."""
        if kind == "update":
            update_hook(hook, target_url=f"{TARGET}/changed")
        elif kind == "disable":
            set_hook_enabled(hook, False)
        elif kind == "create":
            owner = customers[len(customers) // 2].pk
            created = create_hook(model=Order, signals=[POST_SAVE], target_url=TARGET, owner=owner)
            owned.append(created.pk)
        elif kind == "delete":
            delete_hook(Hook.objects.get(pk=owned.pop()))

    results: dict[int, dict[str, float]] = {}
    for size in SIZES:
        grow_to(size)
        owner = customers[size // 2]  # an owner with a hook, in the middle of the ids
        # One project hook alone (the owned hooks off) against the owned hooks alone.
        cases = {"1 project hook": (True, False), f"{size} owned hooks": (False, True)}
        samples: dict[str, list[float]] = defaultdict(list)
        names = list(cases)
        for round_number in range(args.rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                project_on, owned_on = cases[name]
                Hook.objects.filter(pk=project.pk).update(enabled=project_on)
                Hook.objects.filter(pk__in=owned).update(enabled=owned_on)
                registry.reload()
                gc.collect()
                orders = [Order(name=f"order {i}", customer=owner) for i in range(args.saves)]
                samples[f"lookup: {name}"].append(lookup_cost(registry, orders[0]))
                started = time.process_time()
                # In one transaction: the disk's flush per commit would drown the rest.
                with transaction.atomic():
                    for order in orders:
                        order.save()
                elapsed = time.process_time() - started
                samples[name].append(elapsed / args.saves * 1e6)
                assert Callback.objects.count() == args.saves, "one callback per save"
                Order.objects.all().delete()
                Callback.objects.all().delete()
        median = {name: statistics.median(values) for name, values in samples.items()}
        figures = {"save: one project hook": median["1 project hook"]}
        figures["save: owned"] = median[f"{size} owned hooks"]
        figures["lookup: one project hook"] = median["lookup: 1 project hook"]
        figures["lookup: owned"] = median[f"lookup: {size} owned hooks"]

        # Another process: its own registry, fully loaded, then told of one change.
        Hook.objects.filter(pk__in=owned).update(enabled=True)
        other = HookRegistry()
        other.reload()
        hook = Hook.objects.get(pk=owned[size // 2])
        for kind in CHANGES:
            change(kind, hook)
            figures[f"refresh: {kind}"] = timed(other.refresh) * 1000
        figures["full load"] = timed(other.reload) * 1000
        set_hook_enabled(hook, True)

        del other
        gc.collect()
        tracemalloc.start()
        other = HookRegistry()
        other.reload()
        gc.collect()
        figures["memory MB"] = tracemalloc.get_traced_memory()[0] / 1e6
        tracemalloc.stop()
        del other
        results[size] = figures

    print(f"tenants: {args.saves} saves x {args.rounds} rounds (median), database: {args.db}")
    print(f"{'owned hooks':>12} {'1 project hook':>15} {'owned':>9} {'ratio':>6}  (CPU us/save)")
    for size, figures in results.items():
        ratio = figures["save: owned"] / figures["save: one project hook"]
        print(
            f"{size:>12,} {figures['save: one project hook']:>15.1f} "
            f"{figures['save: owned']:>9.1f} {ratio:>6.2f}  (bar: 1.20)"
        )
    print()
    print(f"{'owned hooks':>12} {'1 project hook':>15} {'owned':>9}  (us to find a save's hooks)")
    for size, figures in results.items():
        print(
            f"{size:>12,} {figures['lookup: one project hook']:>15.2f} "
            f"{figures['lookup: owned']:>9.2f}"
        )
    print()
    names = [name for name in next(iter(results.values())) if name.startswith("refresh")]
    print(
        f"{'owned hooks':>12} "
        + " ".join(f"{n.split(': ')[1]:>10}" for n in names)
        + f" {'full load':>10}  (ms, another process's refresh)"
    )
    for size, figures in results.items():
        print(
            f"{size:>12,} "
            + " ".join(f"{figures[n]:>10.2f}" for n in names)
            + f" {figures['full load']:>10.1f}"
        )
    print()
    for size, figures in results.items():
        print(f"registry memory with {size:>6,} owned hooks: {figures['memory MB']:6.1f} MB")


if __name__ == "__main__":
    main()
