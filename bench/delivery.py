"""Delivery speed: the sender against the old package's way of sending, and its memory.

1. Stores N waiting callbacks (5,000 by default) for one hook aimed at a fast
   local receiver, times ``send_callbacks()`` until all are sent and prints
   deliveries per second.
2. Puts the same callbacks back to waiting and times the old package's way
   on the same data and receiver: one ``requests.request`` per callback (no
   session, so a new connection each time), one UPDATE per callback,
   sequential. Steps 1 and 2 take turns for ``--rounds`` rounds (3), each on
   the same freshly reset table; it prints the median rate of each and the
   ratio of the medians.
3. Stores 100,000 waiting callbacks and runs ``manage.py send_callbacks`` in a
   child process (DEBUG off, as in production), printing its rate and its
   peak RSS. The child is started by a small launcher process: Linux carries
   a process's peak RSS across ``exec``, so a child forked straight from this
   script (which holds the 100,000 rows it stored) would report this script's
   size, not the sender's.
4. Isolation: stores callbacks for a hook whose receiver accepts connections
   and never answers (``--hanging``, 1,000; over ``--hanging-hooks`` such hooks,
   1), starts ``manage.py send_callbacks --loop`` in a child and, once it
   sends, for ``--isolation-seconds`` (10) adds callbacks for a healthy hook at
   a steady 200 a second. It prints the healthy hook's latency from creation to
   being marked ``sent`` (median, p95, max): with the hanging hook holding its
   share of the sender, the others must still go out at once. More hanging
   hooks than the last quarter of the transfers has slots (4 of the default 16)
   hold them all until their first read timeout (15 s by default): run that
   case for longer than the timeout to see what comes after it. With
   ``--restarted``, the sender measured is a second one, started after a first
   had met every hanging hook and was killed: what a restart, or another
   worker, knows of them (``Hook.slow_since``).

Run it with ``make bench`` or::

    .venv/bin/python bench/delivery.py [--db sqlite|postgres] [--callbacks 5000]
                                       [--rss-callbacks 100000]   # 0 skips step 3
                                       [--rounds 3]
                                       [--hanging 1000]          # 0 skips step 4
                                       [--hanging-hooks 1]
                                       [--isolation-seconds 10] [--restarted]
                                       [--on-disk]               # SQLite on disk

The receiver is nginx answering 204 on 127.0.0.1, started by this script with
a temporary configuration and stopped at the end (Debian:
``apt-get install nginx-light``). Without nginx the script says so and uses a
small Python server in another process instead, which is slower and holds both
rates down.

It uses a throwaway database: a temporary SQLite file, or a database named
``http_hooks_bench_delivery`` on the PostgreSQL of ``HTTP_HOOKS_PG_*``. The
SQLite file is in memory (``/dev/shm``) unless ``--on-disk`` puts it in the
system's temporary folder, where a project's database lives: there each of the
old way's UPDATEs waits for its own flush to the disk, and each of the sender's
batches for one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from benchdb import ROOT, database_env, setup_django

PG_NAME = "http_hooks_bench_delivery"

PYTHON_RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

class Server(ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True

Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""

NGINX_CONF = """
daemon off;
worker_processes 2;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    {access_log}
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ return 204; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the receiver did not listen on port {port}")


@contextmanager
def receiver(ids_log: Path | None = None):
    """A fast receiver answering 204: nginx if installed, else a Python server. With
    ``ids_log`` (nginx only), nginx writes each request's ``webhook-id`` there, a line
    a request, unbuffered."""
    port = free_port()
    nginx = nginx_path()
    with tempfile.TemporaryDirectory() as tmp:
        if nginx:
            conf = Path(tmp) / "nginx.conf"
            access_log = "access_log off;"
            if ids_log is not None:
                access_log = f"log_format ids '$http_webhook_id'; access_log {ids_log} ids;"
            conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, access_log=access_log))
            command = [nginx, "-c", str(conf), "-p", tmp]
            print(f"receiver: nginx on 127.0.0.1:{port}, answering 204")
        elif ids_log is not None:
            raise RuntimeError("logging webhook ids takes nginx")
        else:
            command = [sys.executable, "-c", PYTHON_RECEIVER, str(port)]
            print(
                "receiver: nginx is not installed (apt-get install nginx-light), so a Python "
                f"server on 127.0.0.1:{port} stands in; it is slower and holds both rates down"
            )
        process = subprocess.Popen(command)
        try:
            wait_for_port(port)
            yield f"http://127.0.0.1:{port}/hook"
        finally:
            process.terminate()
            process.wait(timeout=10)


def nginx_path() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
    )


def make_hook(url: str):
    from http_hooks.api import create_hook

    return create_hook(
        signals=["django.db.models.signals.post_save"],
        model="shop.order",
        target_url=url,
        content_type="application/json",
        headers={"X-Shop": "bench"},
        secret="whsec_" + "c2VjcmV0LWtleS1mb3ItdGhlLWJlbmNobWFyay0xMjM0",
    )


def store_callbacks(hook, count: int) -> None:
    """``count`` waiting callbacks shaped like the default payload of a small model."""
    from django.utils import timezone

    from http_hooks.models import Callback

    now = timezone.now()
    chunk = 5000
    for start in range(0, count, chunk):
        Callback.objects.bulk_create(
            Callback(
                hook=hook,
                event_type="created",
                object_type="shop.order",
                object_id=str(n),
                target_url=hook.target_url,
                http_method="POST",
                content_type="application/json",
                payload=json.dumps(
                    {
                        "object_type": "shop.order",
                        "object_id": n,
                        "event_type": "created",
                        "object_serialization": {"id": n, "name": f"order {n}", "total": "9.50"},
                    }
                ),
                next_attempt_at=now,
                create_datetime=now,
                update_datetime=now,
            )
            for n in range(start, min(start + chunk, count))
        )
    analyze()


def analyze() -> None:
    """Tables as autovacuum leaves them between bursts: statistics up to date
    (without them PostgreSQL's planner takes a table that has just received
    100,000 rows for an empty one) and, on PostgreSQL, the dead rows of the
    previous round cleared away, so that every round starts alike."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")


def reset_callbacks() -> None:
    from django.utils import timezone

    from http_hooks.models import Attempt, Callback

    Attempt.objects.all().delete()
    now = timezone.now()
    Callback.objects.update(
        status="waiting", attempts=0, next_attempt_at=now, status_details="", claimed_until=None
    )
    analyze()


def send_the_old_way() -> int:
    """The old package: one request without a session, one UPDATE, per callback, in turn."""
    import requests
    from django.utils import timezone

    from http_hooks.models import Callback, Hook

    # The old package kept the headers on each callback; here they are the hook's.
    hook_headers = dict(Hook.objects.values_list("pk", "headers"))
    sent = 0
    for callback in Callback.objects.filter(status="waiting").iterator():
        headers = {**hook_headers[callback.hook_id], "Content-Type": callback.content_type}
        try:
            response = requests.request(
                callback.http_method, callback.target_url, data=callback.payload, headers=headers
            )
            callback.status = "sent" if response.ok else "error"
            callback.status_details = f"status code: {response.status_code}"
        except requests.RequestException as exc:
            callback.status, callback.status_details = "error", str(exc)
        callback.update_datetime = timezone.now()
        callback.save(update_fields=["status", "status_details", "update_datetime"])
        sent += callback.status == "sent"
    return sent


def timed(label: str, count: int, run) -> float:
    started = time.perf_counter()
    sent = run()
    elapsed = time.perf_counter() - started
    if sent != count:
        raise SystemExit(f"{label}: sent {sent} of {count}")
    rate = count / elapsed
    print(f"{label:<34} {count:>7} in {elapsed:7.2f} s = {rate:8.0f} deliveries/s")
    return rate


LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def sender_process(env: dict[str, str], count: int) -> None:
    """Run ``manage.py send_callbacks`` in a child; print its rate and peak RSS."""
    with tempfile.NamedTemporaryFile("r") as peak:
        started = time.perf_counter()
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                LAUNCHER,
                peak.name,
                ROOT / "demo" / "manage.py",
                "send_callbacks",
            ],
            env={**os.environ, **env, "DJANGO_DEBUG": "0"},
            stdout=subprocess.PIPE,
            text=True,
        )
        elapsed = time.perf_counter() - started
        if child.returncode != 0 or not child.stdout.startswith(f"sent {count},"):
            raise SystemExit(f"the sender process failed ({child.returncode}): {child.stdout}")
        peak_kb = int(peak.read())
    print(
        f"{'sender process (manage.py)':<34} {count:>7} in {elapsed:7.2f} s = "
        f"{count / elapsed:8.0f} deliveries/s, peak RSS {peak_kb / 1024:.0f} MB"
    )


@contextmanager
def hanging_receiver():
    """A receiver that accepts connections (the kernel does, into a long backlog)
    and never answers: every request to it waits for the sender's read timeout."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4096)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


def isolation(
    env: dict[str, str],
    healthy_url: str,
    hanging: int,
    hooks: int,
    seconds: float,
    restarted: bool = False,
) -> None:
    """A healthy hook's latency (created to marked sent) while ``hooks`` others hang,
    with ``manage.py send_callbacks --loop`` as the sender, in a process of its own.
    With ``restarted``, that sender is a second one: a first ran until each hanging
    hook had had a slow try (``Hook.slow_since``), and was killed."""
    from django.utils import timezone

    from http_hooks.models import Callback, CallbackStatus, Hook

    rate = 200
    command = [sys.executable, ROOT / "demo" / "manage.py", "send_callbacks", "--loop", "--quiet"]
    worker_env = {**os.environ, **env, "DJANGO_DEBUG": "0"}
    with hanging_receiver() as hanging_url:
        slow = [make_hook(f"{hanging_url}/{n}") for n in range(hooks)]
        for hook in slow:
            store_callbacks(hook, hanging // hooks)
        if restarted:
            first = subprocess.Popen(command, env=worker_env)
            while Hook.objects.filter(pk__in=[h.pk for h in slow], slow_since=None).exists():
                time.sleep(0.2)  # until the first sender has met every hanging hook
            first.kill()
            first.wait()
        healthy = make_hook(healthy_url)
        worker = subprocess.Popen(command, env=worker_env)
        while not Callback.objects.filter(status=CallbackStatus.SENDING).exists():
            time.sleep(0.05)  # the worker is starting
        started = time.monotonic()
        added = 0
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate) + 1 - added
            if due > 0:
                now = timezone.now()
                Callback.objects.bulk_create(
                    Callback(
                        hook=healthy,
                        event_type="created",
                        target_url=healthy_url,
                        http_method="POST",
                        payload=json.dumps({"n": added + n}),
                        content_type="application/json",
                        next_attempt_at=now,
                        create_datetime=now,
                        update_datetime=now,
                    )
                    for n in range(due)
                )
                added += due
            time.sleep(0.01)
        pending = Callback.objects.filter(hook=healthy).exclude(status=CallbackStatus.SENT)
        deadline = time.monotonic() + 60
        while pending.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.kill()  # its hanging transfers would hold a graceful stop for the read timeout
        worker.wait()
    latencies = sorted(
        (sent - created).total_seconds()
        for created, sent in Callback.objects.filter(
            hook=healthy, status=CallbackStatus.SENT
        ).values_list("create_datetime", "update_datetime")
    )
    if len(latencies) != added:
        raise SystemExit(f"isolation: {len(latencies)} of {added} healthy callbacks sent")
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    beside = "a hanging one" if hooks == 1 else f"{hooks} hanging ones"
    if restarted:
        beside += ", restarted"
    print(
        f"{'healthy hook beside ' + beside:<34} {added:>7} at {rate}/s: latency median "
        f"{statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms ({hanging} callbacks to a receiver that never answers)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--callbacks", type=int, default=5000)
    parser.add_argument("--rss-callbacks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hanging", type=int, default=1000)
    parser.add_argument("--hanging-hooks", type=int, default=1)
    parser.add_argument("--isolation-seconds", type=float, default=10.0)
    parser.add_argument("--restarted", action="store_true")
    parser.add_argument("--on-disk", action="store_true")
    args = parser.parse_args()

    env = database_env(args.db, name=PG_NAME, on_disk=args.on_disk)
    setup_django(env)
    from django.conf import settings

    from http_hooks.api import send_callbacks
    from http_hooks.models import Callback
    from http_hooks.settings import hooks_settings

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(
        f"database: {engine}, CONCURRENCY={hooks_settings.CONCURRENCY}, "
        f"BATCH_SIZE={hooks_settings.BATCH_SIZE}, {os.cpu_count()} CPUs"
    )
    with receiver() as url:
        hook = make_hook(url)
        store_callbacks(hook, args.callbacks)
        new, old = [], []
        for _ in range(args.rounds):
            new.append(timed("send_callbacks()", args.callbacks, lambda: send_callbacks().sent))
            reset_callbacks()
            old.append(timed("old way (sequential, no session)", args.callbacks, send_the_old_way))
            reset_callbacks()
        new_rate, old_rate = statistics.median(new), statistics.median(old)
        print(
            f"median of {args.rounds} rounds: send_callbacks() {new_rate:.0f}/s, "
            f"old way {old_rate:.0f}/s, ratio: {new_rate / old_rate:.1f}x"
        )
        if args.rss_callbacks:
            Callback.objects.all().delete()
            store_callbacks(hook, args.rss_callbacks)
            sender_process(env, args.rss_callbacks)
        if args.hanging:
            Callback.objects.all().delete()
            isolation(
                env,
                url,
                args.hanging,
                args.hanging_hooks,
                args.isolation_seconds,
                restarted=args.restarted,
            )


if __name__ == "__main__":
    main()
