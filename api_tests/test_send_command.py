"""``manage.py send_callbacks``: its options, its summary, bad input, a real process,
the progress bar on a terminal, and stopping on SIGTERM (the ``--loop`` worker and a
one-shot run)."""

import fcntl
import json
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from http_hooks.models import Callback
from shop.models import Order

from .waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(ROOT / "demo" / "manage.py"), "send_callbacks"]


def run(*args, **options) -> str:
    out = StringIO()
    call_command("send_callbacks", *args, stdout=out, **options)
    return out.getvalue()


def orders(count: int) -> list[int]:
    """Save ``count`` orders; return the ids of their callbacks."""
    for n in range(count):
        Order.objects.create(name=f"order {n}")
    return list(Callback.objects.order_by("pk").values_list("pk", flat=True))


def env_with(same_db_env: dict, **overrides) -> dict:
    return {**same_db_env, "HTTP_HOOKS_OVERRIDES": json.dumps(overrides)}


# --- options, in process ---------------------------------------------------------


@pytest.mark.django_db
def test_without_options_every_due_callback_is_sent_and_summed_up(make_hook, receiver):
    make_hook()
    orders(3)
    output = run()
    assert output.startswith("sent 3, retried 0, failed 0 in ")
    assert output.rstrip().endswith("/s)")
    assert len(receiver.requests) == 3
    assert set(Callback.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.django_db
def test_the_summary_counts_retried_and_failed(make_hook, receiver):
    make_hook(target_url=receiver.url("/retry"))
    make_hook(target_url=receiver.url("/ok"), model="shop.customer")
    receiver.respond("/retry", status=500)
    orders(2)
    assert run().startswith("sent 0, retried 2, failed 0")


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(lambda hook_id: run("--hook_id", str(hook_id)), id="--hook_id ID"),
        pytest.param(lambda hook_id: run(f"--hook_id={hook_id}"), id="--hook_id=ID"),
        pytest.param(lambda hook_id: run(hook_id=hook_id), id="hook_id=ID"),
    ],
)
@pytest.mark.django_db
def test_hook_id_sends_only_that_hooks_callbacks(make_hook, receiver, form):
    first = make_hook(target_url=receiver.url("/first"))
    make_hook(target_url=receiver.url("/second"))
    orders(2)
    assert form(first.pk).startswith("sent 2,")
    assert {r.path for r in receiver.requests} == {"/first"}


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(lambda ids: run("--callbacks", *map(str, ids)), id="--callbacks ID ID"),
        pytest.param(lambda ids: run("--callback", *map(str, ids)), id="--callback ID ID"),
        pytest.param(lambda ids: run(callbacks=ids), id="callbacks=[ID, ID]"),
        pytest.param(lambda ids: run(callback=ids), id="callback=[ID, ID]"),
    ],
)
@pytest.mark.django_db
def test_callbacks_sends_only_the_listed_ones(make_hook, receiver, form):
    make_hook()
    first, _, third = orders(3)
    assert form([first, third]).startswith("sent 2,")
    assert set(Callback.objects.filter(status="sent").values_list("pk", flat=True)) == {
        first,
        third,
    }


@pytest.mark.django_db
def test_quiet_prints_nothing(make_hook, receiver):
    make_hook()
    orders(1)
    assert run("--quiet") == ""
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--hook_id", "abc"], "--hook_id takes ids", id="hook-id-not-a-number"),
        pytest.param(["--hook_id", "-3"], "--hook_id takes ids", id="hook-id-negative"),
        pytest.param(["--callbacks", "1", "x"], "--callbacks takes ids", id="callback-id-text"),
        pytest.param(["--callback", "1.5"], "--callbacks takes ids", id="callback-id-fraction"),
        pytest.param(["--hook_id", "999999"], "no hook with id 999999", id="unknown-hook"),
        pytest.param(["--loop", "--callbacks", "1"], "does not take --callbacks", id="loop-ids"),
    ],
)
@pytest.mark.django_db
def test_bad_input_is_a_command_error_that_sends_nothing(make_hook, receiver, args, message):
    make_hook()
    orders(1)
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert receiver.requests == []


# --- real processes ----------------------------------------------------------------


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_a_real_process_sends_and_prints_the_summary(make_hook, receiver, same_db_env):
    make_hook()
    (callback_id,) = orders(1)
    result = subprocess.run(
        [*MANAGE, "--callback", str(callback_id)],
        env=same_db_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sent 1, retried 0, failed 0")
    assert "%|" not in result.stdout + result.stderr, "a progress bar without a terminal"
    assert Callback.objects.get().status == "sent"
    assert len(receiver.requests) == 1


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("arguments", "line"),
    [
        pytest.param(
            ["--hook_id", "abc"],
            f"--hook_id takes ids (whole numbers from 1 to {2**63 - 1}), not 'abc'",
            id="hook-id-word",
        ),
        pytest.param(
            ["--callbacks", "99999999999999999999"],
            f"--callbacks takes ids (whole numbers from 1 to {2**63 - 1}), "
            "not '99999999999999999999'",
            id="callback-id-past-64-bits",
        ),
        pytest.param(["--hook_id", "7"], "no hook with id 7", id="no-such-hook"),
        pytest.param(
            ["--loop", "--callbacks", "1"],
            "--loop sends whatever is due; it does not take --callbacks",
            id="loop-with-ids",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(same_db_env, arguments, line):
    result = subprocess.run(
        [*MANAGE, *arguments], env=same_db_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"CommandError: {line}"]


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_a_terminal_gets_a_progress_bar(make_hook, receiver, same_db_env):
    make_hook()
    orders(5)
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(MANAGE, env=same_db_env, stdout=child, stderr=child, close_fds=True)
    os.close(child)
    output = b""
    while True:
        ready, _, _ = select.select([main], [], [], 60)
        try:
            chunk = os.read(main, 4096) if ready else b""
        except OSError:  # the terminal closes with the process
            chunk = b""
        if not chunk:
            break
        output += chunk
    os.close(main)
    assert process.wait(timeout=10) == 0
    text = output.decode()
    assert "5/5" in text
    assert "callback" in text
    assert "sent 5, retried 0, failed 0" in text


# --- the --loop worker ---------------------------------------------------------------


def start_loop(env: dict, *, loop: bool = True) -> subprocess.Popen:
    return subprocess.Popen(
        [*MANAGE, *(["--loop"] if loop else [])],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_loop_sends_what_becomes_due_and_stops_on_sigterm(make_hook, receiver, same_db_env):
    make_hook()
    worker = start_loop(env_with(same_db_env, LOOP_MIN_SLEEP=0.1, LOOP_MAX_SLEEP=0.3))
    try:
        orders(1)
        receiver.wait_for(1, timeout=60)
        orders(1)
        receiver.wait_for(2, timeout=60)
    finally:
        worker.send_signal(signal.SIGTERM)
        stdout, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr
    assert stdout.startswith("sending due callbacks until SIGTERM or SIGINT")
    assert stdout.splitlines()[-1].startswith("sent 2, retried 0, failed 0")
    assert set(Callback.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"]
)
@pytest.mark.parametrize("loop", [True, False], ids=["loop", "one-shot"])
def test_a_stop_signal_finishes_the_transfers_in_flight_and_exits_0(
    make_hook, receiver, same_db_env, signum, loop
):
    """The 5 in flight are sent and recorded; claimed callbacks not yet started go back."""
    hold = threading.Event()
    receiver.respond(hold=hold)
    make_hook()
    orders(10)
    worker = start_loop(
        env_with(same_db_env, BATCH_SIZE=5, CONCURRENCY=5, HOOK_CONCURRENCY=5), loop=loop
    )
    try:
        receiver.wait_for(5, timeout=60)  # the whole first batch is in flight, held
    finally:
        worker.send_signal(signum)
        hold.set()
        stdout, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr
    statuses = list(Callback.objects.values_list("status", flat=True))
    assert sorted(statuses) == ["sent"] * 5 + ["waiting"] * 5
    assert len(receiver.requests) == 5
    assert "sent 5, retried 0, failed 0" in stdout


def test_a_loop_worker_through_a_database_outage_logs_one_line_a_round(same_db_env):
    """The database out of reach: each reconnection and each failed round is one line
    (a traceback every 8 s filled the logs of an outage), and SIGTERM still stops it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    env = {
        **same_db_env,
        "HTTP_HOOKS_DB": "postgres",
        "HTTP_HOOKS_PG_PORT": str(closed_port),
        "HTTP_HOOKS_OVERRIDES": '{"LOOP_MAX_SLEEP": 0.2, "LOOP_LISTEN_MAX_SLEEP": 0.2}',
    }
    worker = subprocess.Popen(
        [*MANAGE, "--loop"], env=env, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(worker.stderr), daemon=True)
    reader.start()
    try:
        wait_until(
            lambda: any("the database failed" in line for line in lines),
            message="no failed round logged",
            alive=lambda: worker.poll() is None,
            timeout=60,
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        reader.join(10)
    text = "".join(lines)
    assert worker.returncode == 0, text
    assert "Traceback" not in text, text
    assert "reconnecting in" in text


@pytest.mark.parametrize(
    ("command", "status"),
    [
        (["send_callbacks"], 1),
        # Not 1, which says "limit reached".
        (["monitor_callbacks", "--status", "error"], 3),
        (["delete_old_callbacks", "30"], 1),
        (["import_legacy_hooks"], 1),
        # Each child ends so; the supervisor, which then cannot give back what they held
        # either, says so in one line and sums up the runs that failed.
        (["send_callbacks", "--processes", "2"], 1),
    ],
    ids=lambda value: "-".join(value[::2]) if isinstance(value, list) else str(value),
)
def test_a_database_that_cannot_be_reached_is_one_line(same_db_env, command, status):
    """The reconnection's tries are logged, one line each; then the command ends with
    one line, not a traceback (a PostgreSQL port where nothing listens here)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    env = {**same_db_env, "HTTP_HOOKS_DB": "postgres", "HTTP_HOOKS_PG_PORT": str(closed_port)}
    result = subprocess.run(
        [*MANAGE[:-1], *command], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == status
    assert "Traceback" not in result.stderr
    failed = "CommandError: the database failed: connection failed"
    last = result.stderr.strip().splitlines()[-1]
    if "--processes" in command:
        assert result.stderr.count(failed) == 2
        assert last.startswith("CommandError: 2 sender process run(s) failed")
    else:
        assert last.startswith(failed)
