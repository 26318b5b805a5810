"""Pickup latency of an idle ``send_callbacks --loop`` worker, and what idling costs.

For each mode (``--modes``: ``sqlite``, ``postgres`` with LISTEN/NOTIFY,
``postgres-polling`` with ``NOTIFY_CHANNEL = None``):

1. Starts ``manage.py send_callbacks --loop`` (DEBUG off, default settings) on
   a throwaway database, with one hook aimed at a receiver in this script that
   notes when each request arrives.
2. Once the worker idles, reads its CPU time (user + system, ``/proc/<pid>/stat``)
   before and after ``--idle-seconds`` (30) and prints it as a share of one core.
3. ``--samples`` (40) times, after a random pause of 0.2 to 1.5 s (so that the
   saves fall anywhere in the worker's poll cycle), saves one order (one
   callback, in autocommit) and waits for its request: the latency is from
   before the save to the request's arrival. Prints the median, p95 and max.

Run it with::

    .venv/bin/python bench/pickup.py [--modes sqlite postgres postgres-polling]
                                     [--samples 40] [--idle-seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchdb import ROOT, database_env, setup_django

PG_NAME = "http_hooks_bench_pickup"


class Arrivals:
    """When each request (by ``webhook-id``) reached the receiver."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.changed = threading.Condition()

    def note(self, event_id: str) -> None:
        with self.changed:
            self.times[event_id] = time.monotonic()
            self.changed.notify_all()

    def wait_for(self, event_id: str, timeout: float = 30.0) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: event_id in self.times, timeout):
                raise SystemExit(f"callback {event_id} did not arrive within {timeout} s")
            return self.times[event_id]


@contextmanager
def timing_receiver():
    arrivals = Arrivals()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            arrivals.note(self.headers["webhook-id"])
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", arrivals
    finally:
        server.shutdown()
        server.server_close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(mode: str, samples: int, idle_seconds: float) -> None:
    db = "sqlite" if mode == "sqlite" else "postgres"
    env = database_env(db, name=PG_NAME)
    overrides = {"NOTIFY_CHANNEL": None} if mode == "postgres-polling" else {}
    setup_django(env)
    from django.db import connection

    from http_hooks.api import create_hook
    from http_hooks.models import Callback
    from shop.models import Order

    with timing_receiver() as (url, arrivals):
        create_hook(
            signals=["django.db.models.signals.post_save"],
            model="shop.order",
            target_url=url,
            content_type="application/json",
        )
        connection.close()
        worker = subprocess.Popen(
            [sys.executable, str(ROOT / "demo" / "manage.py"), "send_callbacks", "--loop"],
            env={
                **os.environ,
                **env,
                "DJANGO_DEBUG": "0",
                "HTTP_HOOKS_OVERRIDES": json.dumps(overrides),
            },
            stdout=subprocess.DEVNULL,
        )
        try:
            # The first request shows the worker is up; then it idles.
            order = Order.objects.create(name="warm-up")
            arrivals.wait_for(str(Callback.objects.get(object_id=str(order.pk)).event_id), 60)
            time.sleep(2)
            before = cpu_seconds(worker.pid)
            time.sleep(idle_seconds)
            idle = (cpu_seconds(worker.pid) - before) / idle_seconds
            latencies = []
            for n in range(samples):
                time.sleep(random.uniform(0.2, 1.5))
                started = time.monotonic()
                order = Order.objects.create(name=f"order {n}")
                event_id = str(Callback.objects.get(object_id=str(order.pk)).event_id)
                latencies.append((arrivals.wait_for(event_id) - started) * 1000)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    latencies.sort()
    p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
    print(
        f"{mode:<17} idle CPU {idle * 100:5.2f}% of a core over {idle_seconds:.0f} s; "
        f"pickup of {samples}: median {statistics.median(latencies):6.1f} ms, "
        f"p95 {p95:6.1f} ms, max {latencies[-1]:6.1f} ms",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=["sqlite", "postgres", "postgres-polling"],
        default=["sqlite", "postgres", "postgres-polling"],
    )
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()
    # Django is set up once per process: each mode runs in a child of its own.
    if len(args.modes) > 1:
        for mode in args.modes:
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--modes",
                    mode,
                    "--samples",
                    str(args.samples),
                    "--idle-seconds",
                    str(args.idle_seconds),
                ],
                check=True,
            )
        return
    measure(args.modes[0], args.samples, args.idle_seconds)


if __name__ == "__main__":
    main()
