"""Delivery speed of this checkout's sender against another checkout's, taking turns.

Why: on a machine whose speed drifts by a quarter within minutes (a shared host),
two figures measured a few minutes apart say little about two versions of the
sender. This script runs them in turns, a short run of each after the other, and
compares the medians of all their rounds, so that the drift falls on both alike.

Each run is a child process of one checkout (its own ``.venv``, its own code and
migrations, its own ``bench/delivery.py`` for the receiver and the callbacks): it
stores ``--callbacks`` waiting callbacks of one hook aimed at nginx answering 204
(``bench/delivery.py``), calls ``send_callbacks()`` ``--rounds`` times (the
callbacks put back to waiting in between) and prints each round's deliveries per
second and the sender's CPU time per callback. ``--runs`` runs of each, in turns.

    .venv/bin/python bench/engines.py --other /path/to/other/checkout
                                      [--db sqlite|postgres] [--runs 8] [--rounds 3]

The other checkout needs ``make install`` (its ``.venv``) and a ``bench/delivery.py``
with ``receiver``, ``make_hook``, ``store_callbacks`` and ``reset_callbacks``, as this
one has since the batch engine (6bc0265).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(root: Path, db: str, callbacks: int, rounds: int) -> None:
    """One run, in the checkout ``root`` (this function runs under its Python)."""
    sys.path.insert(0, str(root / "bench"))
    import delivery
    from benchdb import database_env, setup_django

    setup_django(database_env(db, name="http_hooks_bench_engines"))
    from http_hooks.api import send_callbacks

    with delivery.receiver() as url:
        delivery.store_callbacks(delivery.make_hook(url), callbacks)
        for index in range(rounds):
            if index:
                delivery.reset_callbacks()
            cpu, started = time.process_time(), time.perf_counter()
            sent = send_callbacks().sent
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            if sent != callbacks:
                raise SystemExit(f"sent {sent} of {callbacks}")
            print(f"ROUND {callbacks / elapsed:.1f} {cpu * 1e6 / callbacks:.1f}", flush=True)


def rounds_of(root: Path, args: argparse.Namespace) -> list[tuple[float, float]]:
    """The rounds of one run of the checkout ``root``: (deliveries/s, µs of CPU a callback)."""
    command = [
        str(root / ".venv" / "bin" / "python"),
        str(Path(__file__).resolve()),
        "--run",
        str(root),
        "--db",
        args.db,
        "--callbacks",
        str(args.callbacks),
        "--rounds",
        str(args.rounds),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd="/tmp", check=False)
    if done.returncode:
        raise SystemExit(f"{root}: the run failed:\n{done.stderr[-2000:]}")
    return [
        (float(rate), float(cpu))
        for line in done.stdout.splitlines()
        if line.startswith("ROUND ")
        for rate, cpu in [line.split()[1:3]]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", type=Path, help="the other checkout (required)")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--callbacks", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run(args.run, args.db, args.callbacks, args.rounds)
        return
    if args.other is None:
        parser.error("--other is required")
    other = args.other.resolve()
    if not (other / ".venv" / "bin" / "python").exists():
        raise SystemExit(f"{other} has no .venv: run make install there first")
    results: dict[Path, list[tuple[float, float]]] = {ROOT: [], other: []}
    print(f"database: {args.db}; {args.runs} runs of each, {args.rounds} rounds a run, in turns")
    for number in range(1, args.runs + 1):
        for root in results:
            rounds = rounds_of(root, args)
            results[root] += rounds
            rates = " ".join(f"{rate:.0f}" for rate, _ in rounds)
            print(f"run {number} {root}: {rates} deliveries/s", flush=True)
    mine, theirs = results.values()
    for root, rounds in results.items():
        print(
            f"{root}: median {statistics.median(r for r, _ in rounds):.0f} deliveries/s, "
            f"{statistics.median(c for _, c in rounds):.0f} µs of CPU a callback "
            f"({len(rounds)} rounds)"
        )
    ratio = statistics.median(r for r, _ in mine) / statistics.median(r for r, _ in theirs)
    print(f"this checkout / the other: {ratio:.3f}")


if __name__ == "__main__":
    main()
