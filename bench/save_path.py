"""The save path under load: what a hook costs a save, against the old package and
against no hook, with the figures the bars of issue 13 ask for.

(a) ``--part autocommit``: SQLite in a file on disk (not ``/dev/shm``: the
    commits' flushes are what this measures), saves in autocommit, one
    ``shop.Customer`` created per save in three cases: no hook; one hook of
    ours (default payload); one hook the way ``infi.django_http_hooks`` 0.2.7
    stored it. The old package's handler is reproduced line for line below
    (its ``post_save`` handler, ``create_callback`` and the default branch of
    ``set_payload``), saving into a table shaped like its ``Callback`` model,
    with only its own index. The cases take turns of ``--block`` saves each,
    each round starting at another case, ``--rows`` saves per case and round.
    What a hook costs is the median, over the turns, of its block's time per
    save less that of the block without a hook of the same turn (a disk shared
    with other work swings more between turns than within one); the medians of
    the rounds are compared. Bar: one hook of ours costs a save less than the
    old package's one hook. Then, with ``sqlite3`` alone, one callback row's
    INSERT and commit into each table, and into ours without its secondary
    indexes: what the indexes add to each commit.

(b) ``--part threads``: PostgreSQL, ``--threads`` (20) threads creating
    ``shop.Customer`` rows in autocommit for ``--seconds`` each round, with 5
    hooks (default payload, JSON) on the model and with the hooks off, while a
    ``manage.py send_callbacks --loop`` worker delivers to a receiver on
    127.0.0.1 (nginx when installed, as in ``bench/delivery.py``). Before each
    round the worker has sent everything, so each round starts alike. Prints
    the saves per second of each case (median of the rounds) and their ratio.
    Bar: with hooks at least 0.5 times the throughput without. A third case,
    the hooks on with the worker stopped (SIGSTOP, then SIGCONT and it sends
    the round's callbacks before the next), shows the save path's own cost
    apart from the share of the cores the sending takes.

Run both (each part in a process of its own, Django being set up once per
process)::

    .venv/bin/python bench/save_path.py [--parts autocommit threads] [--rows 5000]
        [--rounds 3] [--block 50] [--threads 20] [--hooks 5] [--seconds 10]

It uses throwaway databases (``bench/benchdb.py``): a temporary SQLite file in
the system's temporary folder, and a database named ``http_hooks_bench_savepath``
on the PostgreSQL of ``HTTP_HOOKS_PG_*``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable

from benchdb import ROOT, database_env, setup_django

PG_NAME = "http_hooks_bench_savepath"
POST_SAVE = "django.db.models.signals.post_save"


def old_package(hook) -> tuple[Callable[..., None], type, Callable[[bool], None]]:
    """The post_save handler of infi.django_http_hooks 0.2.7 for ``hook`` (a hook of
    ours read the way the old one was), its Callback table, and its switch."""
    from django.core import serializers
    from django.db import connection, models
    from django.utils import timezone

    class OldCallback(models.Model):
        """``infi.django_http_hooks.hooks.models.Callback``, field for field."""

        update_datetime = models.DateTimeField(null=True, blank=True, auto_now_add=True)
        create_datetime = models.DateTimeField(null=True, blank=True, auto_now_add=True)
        target_url = models.URLField(max_length=512)
        headers = models.TextField(null=True, blank=True)
        payload = models.TextField(null=True, blank=True)
        content_type = models.CharField(max_length=128, null=True, blank=True)
        http_method = models.CharField(max_length=64, null=True, blank=True)
        hook = models.ForeignKey("http_hooks.Hook", on_delete=models.CASCADE)
        status = models.CharField(max_length=64, null=True, blank=True, default="waiting")
        status_details = models.CharField(max_length=512, null=True, blank=True)

        class Meta:
            app_label = "shop"
            db_table = "bench_old_callback"

        def __str__(self) -> str:
            return f"{self.update_datetime}_{self.hook}"

    with connection.schema_editor() as editor:
        editor.create_model(OldCallback)

    hooks: dict[str, list] = {}
    signal_name = POST_SAVE

    def set_payload(hook, **kwargs):
        instance = kwargs.get("instance")
        object_serialization = json.loads(serializers.serialize("json", [instance])[1:-1])
        return json.dumps(
            {
                "object_type": object_serialization.get("model"),
                "object_id": object_serialization.get("pk"),
                "event_type": kwargs.get("event_type"),
                "object_serialization": object_serialization.get("fields"),
            }
        )

    def create_callback(hook, **kwargs):
        now_ = timezone.now()
        callback = OldCallback(
            update_datetime=now_,
            create_datetime=now_,
            target_url=hook.target_url,
            http_method=hook.http_method,
            content_type=hook.content_type,
            hook=hook,
        )
        callback.payload = set_payload(hook, **kwargs)
        callback.headers = hook.headers or None
        callback.save()
        return callback

    def handler(sender, **kwargs):
        hook_key = f"{sender.__name__.lower()}_{signal_name}"
        for hook in hooks.get(hook_key, []):
            event_type = "created" if kwargs.get("created") else "updated"
            create_callback(hook, event_type=event_type, **kwargs)

    def switch(on: bool) -> None:
        hooks.clear()
        if on:
            hooks[f"customer_{signal_name}"] = [hook]

    return handler, OldCallback, switch


def autocommit(rows: int, rounds: int, block: int) -> None:
    setup_django(database_env("sqlite", name="save_path", on_disk=True))
    import gc

    from django.db import connection
    from django.db.models.signals import post_save

    from http_hooks.api import create_hook
    from http_hooks.models import Callback, Hook
    from http_hooks.services import set_hook_enabled
    from shop.models import Customer

    ours = create_hook(model=Customer, signals=[POST_SAVE], target_url="http://127.0.0.1:9/x")
    handler, old_callback, old_switch = old_package(Hook.objects.get(pk=ours.pk))
    post_save.connect(handler, sender=Customer, weak=False)

    def configure(case: str) -> None:
        if ours.enabled != (case == "http_hooks"):
            set_hook_enabled(ours, case == "http_hooks")
        old_switch(case == "old package")

    counter = iter(range(10**9))

    def save_block() -> float:
        started = time.perf_counter()
        for _ in range(block):
            Customer.objects.create(name=f"customer {next(counter)}", email="a@example.com")
        return time.perf_counter() - started

    cases = ["no hook", "http_hooks", "old package"]
    per_save: dict[str, list[float]] = defaultdict(list)
    costs: dict[str, list[float]] = defaultdict(list)
    for round_number in range(rounds):
        shift = round_number % len(cases)
        order = cases[shift:] + cases[:shift]
        cycles: dict[str, list[float]] = defaultdict(list)
        for _ in range(rows // block):
            for case in order:
                configure(case)
                gc.collect()
                cycles[case].append(save_block() / block * 1e6)
        for case in cases:
            per_save[case].append(statistics.median(cycles[case]))
        # Each case against the blocks without a hook of the same turn: the machine's
        # swings between turns cancel out.
        for case in cases[1:]:
            costs[case].append(
                statistics.median(
                    hooked - bare
                    for hooked, bare in zip(cycles[case], cycles["no hook"], strict=True)
                )
            )
        Customer.objects.all().delete()
        Callback.objects.all().delete()
        old_callback.objects.all().delete()
    print(
        f"(a) autocommit, SQLite on disk: {rows} saves per case x {rounds} rounds, in turns "
        f"of {block} saves per case; us per save, medians of the turns, then of the rounds"
    )
    for case in cases:
        rounds_text = ", ".join(f"{value:.0f}" for value in per_save[case])
        median = statistics.median(per_save[case])
        print(f"    {case:<12} {median:8.0f} us/save   (rounds: {rounds_text})")
    cost = {case: statistics.median(values) for case, values in costs.items()}
    for case in cases[1:]:
        rounds_text = ", ".join(f"{value:+.0f}" for value in costs[case])
        label = f"one hook, {case}:"
        print(f"    {label:<23} {cost[case]:+6.0f} us per save   (rounds: {rounds_text})")
    ratio = cost["http_hooks"] / cost["old package"]
    verdict = "met" if ratio < 1 else "NOT met"
    print(f"    bar: http_hooks below the old package: {ratio:.2f}x, {verdict}")
    for case in cases[1:]:
        configure(case)  # a row in each table, for commits() to copy
        Customer.objects.create(name="seed", email="a@example.com")
    commits(connection.settings_dict["NAME"], rows)


def commits(path: str, rows: int) -> None:
    """One callback row's INSERT and commit with ``sqlite3`` alone, the tables taking
    turns: into the old package's table, into ours, and into ours without its
    secondary indexes (what a commit writes besides the row itself)."""
    import sqlite3
    import uuid

    from http_hooks.models import Callback

    db = sqlite3.connect(path, isolation_level=None)
    ours = Callback._meta.db_table
    (ddl,) = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", [ours]).fetchone()
    db.execute(ddl.replace(f'"{ours}"', '"bench_bare_callback"', 1).replace(" UNIQUE", ""))
    tables = {
        "old package's table": ("bench_old_callback", "bench_old_callback"),
        "ours": (ours, ours),
        "ours, no secondary index": ("bench_bare_callback", ours),
    }
    inserts = {}
    for name, (table, source) in tables.items():
        columns = [row[1] for row in db.execute(f'PRAGMA table_info("{source}")')]
        columns.remove("id")
        listed = ", ".join(f'"{column}"' for column in columns)
        seed = db.execute(f'SELECT {listed} FROM "{source}" ORDER BY id DESC LIMIT 1').fetchone()
        event_id = columns.index("event_id") if "event_id" in columns else None
        sql = f'INSERT INTO "{table}" ({listed}) VALUES ({", ".join("?" * len(columns))})'
        inserts[name] = (sql, list(seed), event_id)
    spent: dict[str, list[float]] = defaultdict(list)
    for _ in range(rows):
        for name, (sql, values, event_id) in inserts.items():
            if event_id is not None:
                values[event_id] = uuid.uuid4().hex
            started = time.perf_counter()
            db.execute(sql, values)
            spent[name].append((time.perf_counter() - started) * 1e6)
    db.close()
    print(f"    one callback row's INSERT and commit with sqlite3 alone ({rows} each, in turns):")
    for name, values in spent.items():
        print(f"      {name:<26} {statistics.median(values):6.0f} us (median)")


def drain(timeout: float = 120.0) -> None:
    """Wait until the worker has sent every callback."""
    from http_hooks.models import Callback

    deadline = time.monotonic() + timeout
    while Callback.objects.exclude(status__in=["sent", "error"]).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"the worker did not send the callbacks within {timeout:.0f} s")
        time.sleep(0.2)


def save_for(seconds: float, threads: int) -> float:
    """Saves per second of ``threads`` threads creating customers for ``seconds``."""
    from django.db import connection

    from shop.models import Customer

    start = threading.Barrier(threads + 1)
    counts = [0] * threads
    deadline = [0.0]

    def run(index: int) -> None:
        try:
            Customer.objects.exists()  # connected before the clock starts
            start.wait()
            done = 0
            while time.monotonic() < deadline[0]:
                Customer.objects.create(name=f"customer {index}-{done}", email="a@example.com")
                done += 1
            counts[index] = done
        finally:
            connection.close()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    deadline[0] = time.monotonic() + seconds
    started = time.monotonic()
    start.wait()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.monotonic() - started)


def threaded(threads: int, hooks: int, seconds: float, rounds: int) -> None:
    from delivery import receiver

    env = database_env("postgres", name=PG_NAME)
    setup_django(env)
    from django.db import connection

    from http_hooks.api import create_hook
    from http_hooks.models import Callback
    from http_hooks.services import set_hook_enabled
    from shop.models import Customer

    with receiver() as url:
        made = [
            create_hook(
                model=Customer,
                signals=[POST_SAVE],
                target_url=f"{url}/{n}",
                content_type="application/json",
            )
            for n in range(hooks)
        ]
        connection.close()
        worker = subprocess.Popen(
            [sys.executable, str(ROOT / "demo" / "manage.py"), "send_callbacks", "--loop"],
            env={**os.environ, **env, "DJANGO_DEBUG": "0"},
            stdout=subprocess.DEVNULL,
        )
        hooked, paused = f"{hooks} hooks", f"{hooks} hooks, worker stopped"
        cases = ["hooks off", hooked, paused]
        samples: dict[str, list[float]] = defaultdict(list)
        sent = 0
        try:
            for round_number in range(rounds):
                order = cases if round_number % 2 == 0 else cases[::-1]
                for case in order:
                    for hook in made:
                        if hook.enabled != (case != "hooks off"):
                            set_hook_enabled(hook, case != "hooks off")
                    drain()
                    if case == paused:
                        os.kill(worker.pid, signal.SIGSTOP)
                    try:
                        samples[case].append(save_for(seconds, threads))
                    finally:
                        if case == paused:
                            os.kill(worker.pid, signal.SIGCONT)
            drain()
            sent = Callback.objects.filter(status="sent").count()
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    median = {case: statistics.median(values) for case, values in samples.items()}
    ratio = median[hooked] / median["hooks off"]
    print(
        f"(b) PostgreSQL, {threads} threads saving for {seconds:.0f} s x {rounds} rounds "
        f"(taking turns), a send_callbacks --loop worker running; median saves/s"
    )
    for case in cases:
        rounds_text = ", ".join(f"{value:.0f}" for value in samples[case])
        print(f"    {case:<12} {median[case]:8.0f} saves/s   (rounds: {rounds_text})")
    print(f"    callbacks sent by the worker: {sent}")
    verdict = "met" if ratio >= 0.5 else "NOT met"
    print(f"    bar: with hooks / without >= 0.5: {ratio:.2f}x, {verdict}")
    print(
        f"    the save path alone (worker stopped) / without: "
        f"{median[paused] / median['hooks off']:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--parts", nargs="+", choices=["autocommit", "threads"], default=["autocommit", "threads"]
    )
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--threads", type=int, default=20)
    parser.add_argument("--hooks", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if len(args.parts) > 1:
        for part in args.parts:
            subprocess.run([sys.executable, *sys.argv, "--parts", part], check=True)
        return
    if args.parts[0] == "autocommit":
        autocommit(args.rows, args.rounds, args.block)
    else:
        threaded(args.threads, args.hooks, args.seconds, args.rounds)


if __name__ == "__main__":
    main()
