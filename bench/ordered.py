"""Ordered delivery: the sender's throughput with an ordering key over 50 keys, against
the same callbacks without one (issue 12's bar: at least half).

Stores N waiting callbacks (5,000) of one hook aimed at the fast local receiver of
``bench/delivery.py`` and times ``send_callbacks()`` until all are sent, in rounds
that take turns: the callbacks unordered (``ordering_key`` empty), then the same
callbacks keyed ``k0`` to ``k49`` in turn (each key's callbacks go one at a time, in
id order, so at most 50 are in flight or queued at once). Each round starts from the
same reset table. It prints the median rate of each and their ratio against 0.5::

    .venv/bin/python bench/ordered.py [--db sqlite|postgres] [--callbacks 5000]
                                      [--keys 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics

from benchdb import database_env, setup_django
from delivery import make_hook, receiver, reset_callbacks, store_callbacks, timed

PG_NAME = "http_hooks_bench_ordered"
BAR = 0.5


def key_callbacks(keys: int) -> None:
    """Give every callback its key, ``k<id mod keys>`` (0 keys: none); reset them."""
    from django.db.models import F, Value
    from django.db.models.functions import Cast, Concat, Mod

    from http_hooks.models import Callback

    if keys:
        key = Concat(Value("k"), Cast(Mod(F("id"), keys), output_field=Callback.ordering_key.field))
        Callback.objects.update(ordering_key=key)
    else:
        Callback.objects.update(ordering_key="")
    reset_callbacks()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--callbacks", type=int, default=5000)
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    env = database_env(args.db, name=PG_NAME)
    setup_django(env)
    from django.conf import settings

    from http_hooks.api import send_callbacks
    from http_hooks.settings import hooks_settings

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(
        f"database: {engine}, CONCURRENCY={hooks_settings.CONCURRENCY}, "
        f"BATCH_SIZE={hooks_settings.BATCH_SIZE}, {os.cpu_count()} CPUs"
    )
    with receiver() as url:
        store_callbacks(make_hook(url), args.callbacks)
        unordered, ordered = [], []
        for _ in range(args.rounds):
            key_callbacks(0)
            unordered.append(timed("unordered", args.callbacks, lambda: send_callbacks().sent))
            key_callbacks(args.keys)
            ordered.append(
                timed(f"ordered, {args.keys} keys", args.callbacks, lambda: send_callbacks().sent)
            )
        free, keyed = statistics.median(unordered), statistics.median(ordered)
        ratio = keyed / free
        verdict = "meets" if ratio >= BAR else "misses"
        print(
            f"median of {args.rounds} rounds: unordered {free:.0f}/s, ordered {keyed:.0f}/s, "
            f"ratio {ratio:.2f} ({verdict} the bar of {BAR})"
        )


if __name__ == "__main__":
    main()
