"""Scaling out on one machine: ``send_callbacks --processes N`` for N = 1, 2 and 4.

Stores ``--callbacks`` (20,000) waiting callbacks for one hook aimed at a fast
local receiver (nginx answering 204, as in ``bench/delivery.py``), then, for
``--rounds`` rounds (3), runs ``manage.py send_callbacks --processes N`` for
each N in turn on the same freshly reset table (DEBUG off, as in production).
Each run is timed from start to exit (the children's start-up included) and
must print ``sent <all>, retried 0, failed 0``. While it runs, the peak RSS
(``VmHWM``) of the supervisor and of each child is read from ``/proc`` five
times a second; the CPU time of the supervisor and its children (in cores:
CPU seconds per second of the run) and how busy the whole machine was
(``/proc/stat``: the database, the receiver and anything else running
included) are printed too, with the time the children were ready to run but
waited for a CPU (``/proc/<pid>/schedstat``) and the CPU time of the
PostgreSQL server processes of the benchmark's database (read from ``/proc``
as they run). It prints each
run, then the median rate of each N and its ratio to one process.

Run it with::

    .venv/bin/python bench/processes.py [--db postgres|sqlite] [--callbacks 20000]
                                        [--rounds 3] [--processes 1 2 4]

It uses a throwaway database: ``http_hooks_bench_processes`` on the PostgreSQL
of ``HTTP_HOOKS_PG_*`` (the default), or a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchdb import ROOT, database_env, setup_django
from delivery import make_hook, receiver, reset_callbacks, store_callbacks

PG_NAME = "http_hooks_bench_processes"


def peak_rss_mb(pid: int) -> float:
    """The peak resident size of a live process, in MB (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else 0.0


def children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_backends() -> list[int]:
    """The PostgreSQL server processes serving the benchmark's database."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if command.startswith(b"postgres: ") and f" {PG_NAME} ".encode() in command:
                pids.append(int(entry.name))
    return pids


def run_delay(pid: int) -> float:
    """Seconds the process was ready to run but waited for a CPU (``/proc/<pid>/schedstat``)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def watch(
    pid: int, done: threading.Event, peaks: dict[str, float], backends: dict, delays: dict
) -> None:
    """Keep the highest peak RSS of the supervisor and of any of its children, the last
    time each child waited for a CPU, and the last CPU time seen of each database
    server process of the run (a process that exits between two looks loses at most
    its last 0.2 s)."""
    while not done.wait(0.2):
        peaks["supervisor"] = max(peaks["supervisor"], peak_rss_mb(pid))
        for child in children_of(pid):
            peaks["child"] = max(peaks["child"], peak_rss_mb(child))
            delays[child] = max(delays.get(child, 0.0), run_delay(child))
        for backend in database_backends():
            backends[backend] = max(backends.get(backend, 0.0), cpu_seconds(backend))


def machine_busy() -> tuple[float, float]:
    """Busy and total CPU time of the whole machine so far (``/proc/stat``), in ticks."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks)


def descendants_cpu() -> float:
    """CPU seconds of this script's children that exited, their own children included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(env: dict[str, str], processes: int, count: int) -> tuple[float, dict[str, float]]:
    """One ``send_callbacks --processes`` run: its rate and the peak RSS seen."""
    peaks = {"supervisor": 0.0, "child": 0.0}
    backends = {pid: cpu_seconds(pid) for pid in database_backends()}
    database_before = sum(backends.values())
    delays: dict[int, float] = {}
    done = threading.Event()
    cpu_before, (busy_before, total_before) = descendants_cpu(), machine_busy()
    started = time.perf_counter()
    command = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "demo" / "manage.py"),
            "send_callbacks",
            "--processes",
            str(processes),
        ],
        env={**os.environ, **env, "DJANGO_DEBUG": "0"},
        stdout=subprocess.PIPE,
        text=True,
    )
    watcher = threading.Thread(target=watch, args=(command.pid, done, peaks, backends, delays))
    watcher.start()
    stdout, _ = command.communicate()
    elapsed = time.perf_counter() - started
    senders_cpu = descendants_cpu() - cpu_before
    busy, total = machine_busy()
    done.set()
    watcher.join()
    database_cpu = sum(backends.values()) - database_before
    expected = f"sent {count}, retried 0, failed 0"
    if command.returncode != 0 or not stdout.startswith(expected):
        raise SystemExit(f"--processes {processes} failed ({command.returncode}): {stdout}")
    rate = count / elapsed
    print(
        f"--processes {processes}: {count} in {elapsed:6.2f} s = {rate:6.0f} deliveries/s; "
        f"peak RSS: supervisor {peaks['supervisor']:.0f} MB, largest child "
        f"{peaks['child']:.0f} MB; CPU: senders {senders_cpu / elapsed:.2f} cores, "
        f"database {database_cpu / elapsed:.2f} cores, "
        f"senders waiting for a CPU {sum(delays.values()) / elapsed:.2f} cores, "
        f"machine {100 * (busy - busy_before) / (total - total_before):.0f}% busy",
        flush=True,
    )
    return rate, peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--callbacks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()

    env = database_env(args.db, name=PG_NAME)
    setup_django(env)
    from django.conf import settings

    from http_hooks.settings import hooks_settings

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(
        f"database: {engine}, CONCURRENCY={hooks_settings.CONCURRENCY}, "
        f"BATCH_SIZE={hooks_settings.BATCH_SIZE}, {os.cpu_count()} CPUs"
    )
    rates: dict[int, list[float]] = {n: [] for n in args.processes}
    peaks: dict[int, float] = dict.fromkeys(args.processes, 0.0)
    with receiver() as url:
        store_callbacks(make_hook(url), args.callbacks)
        for _ in range(args.rounds):
            for processes in args.processes:
                rate, peak = run(env, processes, args.callbacks)
                rates[processes].append(rate)
                peaks[processes] = max(peaks[processes], peak["child"])
                reset_callbacks()
    one = statistics.median(rates[args.processes[0]])
    print(f"median of {args.rounds} rounds, {args.callbacks} callbacks:")
    for processes in args.processes:
        median = statistics.median(rates[processes])
        print(
            f"  {processes} process(es): {median:6.0f} deliveries/s, "
            f"{median / one:.2f}x {args.processes[0]}, largest child {peaks[processes]:.0f} MB"
        )


if __name__ == "__main__":
    main()
