"""Celery at scale: N callbacks through real Celery workers, against one ``send_callbacks``.

For each broker (Redis, RabbitMQ) and each number of worker processes (1, 2, 4;
one ``celery worker --pool prefork --concurrency N``), on PostgreSQL:

1. starts the worker on a queue of its own and waits until it answers a ping;
2. stores N waiting callbacks (20,000 by default) for one hook aimed at a
   counting receiver on 127.0.0.1, and queues them as the app does after a
   commit (``dispatch.enqueue_callbacks``: one task per ``BATCH_SIZE`` ids);
3. times until the last callback is recorded ``sent``, then asks the receiver how many
   requests it had and how many distinct ``webhook-id`` values: lost is N less
   the distinct ones, duplicated the requests beyond them.

The same callbacks, put back to waiting, are sent by one ``manage.py
send_callbacks`` process right before each run of the workers (its own figure,
Django's start left out); each worker process's share is compared with it.
Each of the ``--rounds`` (3) runs both, on a new worker; it prints the medians. Run it with::

    .venv/bin/python bench/celery_workers.py [--callbacks 20000] [--processes 1 2 4]
                                     [--brokers redis amqp] [--ids-per-task 500]
                                     [--rounds 3]

``--ids-per-task 1`` queues a task per callback, as transactions of one save do
(the time then includes publishing them all, one after the other, from here).

Redis on 127.0.0.1:6379 and RabbitMQ on 127.0.0.1:5672 (guest/guest); a broker
that does not answer is left out with a line saying so. The receiver is nginx
answering 204 (as in ``bench/delivery.py``), writing each request's
``webhook-id`` to a log that this script counts; without nginx, a small asyncio
server in a process of its own counts them, and takes CPU from the others. Every
process here shares the machine's cores: on a machine with fewer cores than
worker processes, the processes take turns and the share of each falls.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

from benchdb import ROOT, database_env, setup_django
from delivery import (
    free_port,
    make_hook,
    nginx_path,
    receiver,
    reset_callbacks,
    store_callbacks,
    wait_for_port,
)

# This file is named celery.py: ``import celery`` must find Celery, not this script.
sys.path[:] = [path for path in sys.path if Path(path).resolve() != Path(__file__).parent.resolve()]

PG_NAME = "http_hooks_bench_celery"
BROKERS = {
    "redis": ("redis://127.0.0.1:6379/0", 6379),
    "amqp": ("amqp://guest:guest@127.0.0.1:5672//", 5672),
}

# Counts the requests and the distinct webhook-id values it receives; GET says how
# many, DELETE starts again.
COUNTING_RECEIVER = r"""
import asyncio, collections, json, sys

seen = collections.Counter()

async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method = lines[0].split(b" ", 1)[0]
            length, webhook_id = 0, None
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"webhook-id":
                    webhook_id = value.strip()
            if length:
                await reader.readexactly(length)
            if method == b"GET":
                body = json.dumps({"requests": seen.total(), "distinct": len(seen)}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            else:
                if method == b"DELETE":
                    seen.clear()
                else:
                    seen[webhook_id] += 1
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


class ServerCounts:
    """What the asyncio receiver above saw: it answers GET with its counts, DELETE clears."""

    def __init__(self, base: str) -> None:
        self.url = f"{base}/hook"
        self.base = base

    def clear(self) -> None:
        self._stats("DELETE")

    def seen(self) -> dict[str, int]:
        return self._stats("GET")

    def _stats(self, method: str) -> dict[str, int]:
        request = urllib.request.Request(f"{self.base}/stats", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")


class LogCounts:
    """What nginx saw: the ``webhook-id`` lines it wrote to ``log`` since ``clear``."""

    def __init__(self, url: str, log: Path) -> None:
        self.url, self.log, self.offset = url, log, 0

    def clear(self) -> None:
        self.offset = self.log.stat().st_size

    def seen(self) -> dict[str, int]:
        with self.log.open("rb") as log:
            log.seek(self.offset)
            ids = log.read().splitlines()
        return {"requests": len(ids), "distinct": len(set(ids))}


@contextmanager
def counting_receiver():
    """nginx logging each request's ``webhook-id`` (``delivery.receiver``) where it is
    installed; else the asyncio server above, which takes a share of the cores that
    the workers and the sender share (about 15% of a core at 10,000 requests/s)."""
    if nginx_path():
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "ids.log"
            log.touch()
            with receiver(log) as url:
                yield LogCounts(url, log)
        return
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", COUNTING_RECEIVER, str(port)])
    print(f"receiver: nginx is not installed, a Python server on 127.0.0.1:{port} stands in")
    try:
        wait_for_port(port)
        yield ServerCounts(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(timeout=10)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def child_env(env: dict[str, str], **overrides) -> dict[str, str]:
    return {
        **os.environ,
        **env,
        "DJANGO_SETTINGS_MODULE": "demo.settings",
        "DJANGO_DEBUG": "0",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "demo"), str(ROOT)]),
        "HTTP_HOOKS_OVERRIDES": json.dumps(overrides),
    }


def one_sender(env: dict[str, str], count: int) -> float:
    """The rate of one ``manage.py send_callbacks`` process, as it reports it."""
    child = subprocess.run(
        [sys.executable, ROOT / "demo" / "manage.py", "send_callbacks"],
        env=child_env(env),
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    match = re.search(r"\(([\d.]+)/s\)", child.stdout)
    if not child.stdout.startswith(f"sent {count},") or not match:
        raise SystemExit(f"send_callbacks did not send all: {child.stdout}")
    return float(match.group(1))


@contextmanager
def celery_worker(env: dict[str, str], broker: str, processes: int):
    queue = f"http_hooks_bench_{uuid.uuid4().hex}"
    worker_env = {
        # No sweep: what is measured is the tasks' work alone.
        **child_env(env, DISPATCH="celery", CELERY_QUEUE=queue, SWEEP_SECONDS=None),
        "CELERY_BROKER_URL": broker,
    }
    command = [
        *(sys.executable, "-m", "celery", "-A", "demo", "worker", "--queues", queue),
        *("--pool", "prefork", "--concurrency", str(processes), "--loglevel", "warning"),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        *("--hostname", f"{queue}@bench"),
    ]
    ping = [sys.executable, "-m", "celery", "-A", "demo", "inspect", "ping"]
    ping += ["--destination", f"{queue}@bench", "--timeout", "2"]
    with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
        process = subprocess.Popen(command, env=worker_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while subprocess.run(ping, env=worker_env, capture_output=True).returncode != 0:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise SystemExit(f"the worker did not start:\n{log.read()}")
            yield queue
        finally:
            process.terminate()
            process.wait(timeout=60)
            _delete_queue(broker, queue)


def _delete_queue(broker: str, queue: str) -> None:
    """Empty and delete the worker's queue: the tasks it left are those whose ids another
    task had already sent. (On Redis, kombu deletes only what this process declared,
    hence the purge.)"""
    from kombu import Queue

    from demo.celery import app

    with app.connection_for_write(broker) as connection:
        channel = connection.default_channel
        channel.queue_purge(queue)
        Queue(queue, routing_key=queue).bind(channel).delete()


def through_workers(
    count: int, counts: LogCounts | ServerCounts, queue: str, broker: str, size: int
) -> tuple[float, dict]:
    """Queue the waiting callbacks as commits do (one task per ``size`` ids, on one
    connection); seconds from the first task queued until the last callback was
    recorded sent (the row's time, not this loop's), and what the receiver saw."""
    from django.db.models import Max
    from django.utils import timezone

    from demo.celery import app
    from http_hooks.models import Callback
    from http_hooks.tasks import send_listed_callbacks

    counts.clear()
    ids = list(Callback.objects.filter(status="waiting").values_list("pk", flat=True))
    started = timezone.now()
    with app.connection_for_write(broker) as connection:
        for start in range(0, len(ids), size):
            send_listed_callbacks.apply_async(
                args=[ids[start : start + size]], queue=queue, connection=connection
            )
    while Callback.objects.filter(status="sent").count() < count:
        time.sleep(0.25)
    done = Callback.objects.aggregate(last=Max("update_datetime"))["last"]
    return (done - started).total_seconds(), counts.seen()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callbacks", type=int, default=20_000)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--brokers", nargs="+", choices=list(BROKERS), default=list(BROKERS))
    # Callbacks a task carries: BATCH_SIZE (500) as a big transaction queues them, 1
    # as a transaction of one save does.
    parser.add_argument("--ids-per-task", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env = database_env("postgres", name=PG_NAME)
    setup_django(env)
    count = args.callbacks
    with counting_receiver() as counts:
        hook = make_hook(counts.url)
        store_callbacks(hook, count)
        rows = []
        for name in args.brokers:
            url, port = BROKERS[name]
            if not port_open(port):
                print(f"{name}: nothing listens on 127.0.0.1:{port}, left out")
                continue
            for processes in args.processes:
                shares, elapsed_rounds, singles = [], [], []
                lost = duplicated = 0
                for _ in range(args.rounds):
                    # One process right before each run of the workers (the load of a
                    # shared machine changes from minute to minute), and no worker alive
                    # while it runs: a task goes on with whatever is due once its own
                    # ids are sent (``DRAIN_SECONDS``), so the tasks a worker still held
                    # would send what the process is timed on.
                    reset_callbacks()
                    single = one_sender(env, count)
                    reset_callbacks()
                    with celery_worker(env, url, processes) as queue:
                        elapsed, seen = through_workers(
                            count, counts, queue, url, args.ids_per_task
                        )
                    lost += count - seen["distinct"]
                    duplicated += seen["requests"] - seen["distinct"]
                    share = count / elapsed / processes / single
                    shares.append(share)
                    elapsed_rounds.append(elapsed)
                    singles.append(single)
                    print(
                        f"{name:<6} {processes} processes: {elapsed:6.2f} s, "
                        f"{count / elapsed:8,.0f}/s against one send_callbacks at "
                        f"{single:,.0f}/s: {share:.2f}x per process, "
                        f"lost {count - seen['distinct']}, "
                        f"duplicated {seen['requests'] - seen['distinct']}"
                    )
                elapsed = statistics.median(elapsed_rounds)
                single = statistics.median(singles)
                share = statistics.median(shares)
                rows.append(
                    (name, processes, elapsed, count / elapsed, single, share, lost, duplicated)
                )
    print(f"\nMedians of {args.rounds} rounds; lost and duplicated: all rounds together.\n")
    print(
        f"| broker | worker processes | {count:,} callbacks in | per second | one "
        "send_callbacks | per worker process / one send_callbacks | lost | duplicated |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, processes, elapsed, rate, single, share, lost, duplicated in rows:
        print(
            f"| {name} | {processes} | {elapsed:.2f} s | {rate:,.0f} | {single:,.0f}/s "
            f"| {share:.2f} | {lost} | {duplicated} |"
        )


if __name__ == "__main__":
    main()
