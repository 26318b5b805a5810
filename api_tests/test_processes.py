"""``send_callbacks --processes N``: N real sender processes under one command deliver
each callback once, stop on SIGTERM after their requests in flight, and a child that
dies is replaced with nothing lost."""

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from http_hooks.delivery import processes
from http_hooks.delivery.processes import (
    new_claim_token,
    read_tokens,
    run_failed,
    write_tokens_to,
)
from http_hooks.models import Attempt, Callback

from .test_claims import assert_each_delivered_once, save_orders
from .waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(ROOT / "demo" / "manage.py"), "send_callbacks"]


def start(env: dict, tmp_path: Path, *arguments: str, **overrides) -> subprocess.Popen:
    """The command in a process of its own; its stderr goes to ``tmp_path / "stderr"``."""
    return subprocess.Popen(
        [*MANAGE, *arguments],
        env={**env, "HTTP_HOOKS_OVERRIDES": json.dumps(overrides)},
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "stderr").open("w"),
        text=True,
    )


def children(process: subprocess.Popen) -> list[int]:
    path = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    return [int(pid) for pid in path.read_text().split()]


def stderr_of(tmp_path: Path) -> str:
    return (tmp_path / "stderr").read_text()


@pytest.mark.multiprocess
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_three_processes_deliver_each_callback_exactly_once(
    make_hook, receiver, same_db_env, tmp_path
):
    make_hook()
    save_orders(900)
    hold = threading.Event()
    receiver.respond(hold=hold)
    supervisor = start(same_db_env, tmp_path, "--processes", "3", BATCH_SIZE=20, CONCURRENCY=4)
    try:
        # More in flight than one process may hold: they send side by side.
        receiver.wait_for(9, timeout=120)
    finally:
        hold.set()
    stdout, _ = supervisor.communicate(timeout=120)
    assert supervisor.returncode == 0, stderr_of(tmp_path)
    assert stdout.startswith("sent 900, retried 0, failed 0 in "), stdout
    assert_each_delivered_once(receiver, 900)


@pytest.mark.multiprocess
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sigterm_stops_the_loop_processes_after_their_requests_in_flight(
    make_hook, receiver, same_db_env, tmp_path
):
    """Each of 2 workers holds 5 requests when SIGTERM comes: the 10 are sent and
    recorded, the 5 not started stay waiting, and the command exits 0."""
    hold = threading.Event()
    receiver.respond(hold=hold)
    make_hook()
    save_orders(15)
    supervisor = start(
        same_db_env,
        tmp_path,
        "--processes",
        "2",
        "--loop",
        BATCH_SIZE=5,
        CONCURRENCY=5,
        HOOK_CONCURRENCY=5,
    )
    try:
        receiver.wait_for(10, timeout=120)
        supervisor.send_signal(signal.SIGTERM)
        wait_until(lambda: "stopping 2 sender process(es)" in stderr_of(tmp_path), timeout=60)
    finally:
        hold.set()
    stdout, _ = supervisor.communicate(timeout=120)
    assert supervisor.returncode == 0, stderr_of(tmp_path)
    banner, last = stdout.splitlines()
    assert banner == "2 sender processes sending due callbacks until SIGTERM or SIGINT (Ctrl-C)"
    assert last.startswith("sent 10, retried 0, failed 0 in "), stdout
    statuses = sorted(Callback.objects.values_list("status", flat=True))
    assert statuses == ["sent"] * 10 + ["waiting"] * 5
    assert len(receiver.requests) == 10


@pytest.mark.multiprocess
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_loop_process_killed_with_sigkill_is_replaced_and_nothing_is_lost(
    make_hook, receiver, same_db_env, tmp_path
):
    hold = threading.Event()
    receiver.respond(hold=hold)
    make_hook()
    # One process claims a batch ahead of the 5 it sends: 15 keep both busy.
    save_orders(15)
    supervisor = start(
        same_db_env,
        tmp_path,
        "--processes",
        "2",
        "--loop",
        BATCH_SIZE=5,
        CONCURRENCY=5,
        HOOK_CONCURRENCY=5,
        LOOP_MIN_SLEEP=0.1,
        LOOP_MAX_SLEEP=0.3,
    )
    try:
        receiver.wait_for(10, timeout=120)
        first, _ = children(supervisor)
        subprocess.run(["kill", "-KILL", str(first)], check=True)
        hold.set()
        replaced = wait_until(
            lambda: (pids := children(supervisor)) and first not in pids and len(pids) == 2,
            timeout=60,
            message="the killed process was not replaced",
        )
        assert replaced
        # Its five go back at once, not after the lease of 300 s: the others send them.
        wait_until(
            lambda: set(Callback.objects.values_list("status", flat=True)) == {"sent"},
            timeout=60,
            message=lambda: str(list(Callback.objects.values_list("status", flat=True))),
        )
    finally:
        hold.set()
        supervisor.send_signal(signal.SIGTERM)
        supervisor.communicate(timeout=120)
    stderr = stderr_of(tmp_path)
    assert supervisor.returncode == 1, stderr
    assert f"(pid {first}) was killed by SIGKILL; starting another in 1 s" in stderr
    # The five it was sending, and those it had claimed ahead.
    held = re.search(
        rf"sender process \d \(pid {first}\) held (\d+) callback\(s\): due again", stderr
    )
    assert held and int(held[1]) >= 5, stderr
    assert re.fullmatch(
        rf"CommandError: 1 sender process run\(s\) failed: sender process \d \(pid {first}\) "
        "was killed by SIGKILL",
        stderr.strip().splitlines()[-1],
    )
    event_ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert event_ids == {str(e) for e in Callback.objects.values_list("event_id", flat=True)}


@pytest.mark.multiprocess
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_one_shot_process_that_dies_is_reported_and_the_others_finish(
    make_hook, receiver, same_db_env, tmp_path
):
    """Not replaced, reported (exit 1): what it held goes back at once, and the other
    process, still sending, sends it too."""
    hold = threading.Event()
    receiver.respond(hold=hold)
    make_hook()
    save_orders(15)
    supervisor = start(
        same_db_env,
        tmp_path,
        "--processes",
        "2",
        BATCH_SIZE=5,
        CONCURRENCY=5,
        HOOK_CONCURRENCY=5,
    )
    try:
        receiver.wait_for(10, timeout=120)
        first, _ = children(supervisor)
        subprocess.run(["kill", "-KILL", str(first)], check=True)
        wait_until(lambda: "callback(s): due again" in stderr_of(tmp_path), timeout=60)
    finally:
        hold.set()
    stdout, _ = supervisor.communicate(timeout=120)
    assert supervisor.returncode == 1, stderr_of(tmp_path)
    assert re.fullmatch(
        rf"CommandError: 1 sender process run\(s\) failed: sender process \d \(pid {first}\) "
        "was killed by SIGKILL",
        stderr_of(tmp_path).strip().splitlines()[-1],
    )
    assert "starting another" not in stderr_of(tmp_path)
    assert set(Callback.objects.values_list("status", flat=True)) == {"sent"}
    # The dead one recorded nothing: the other sent all 15, its own and what was given back.
    assert stdout.startswith("sent 15, retried 0, failed 0 in "), stdout


BAD_NUMBERS = [
    pytest.param("0", id="zero"),
    pytest.param("-2", id="negative"),
    pytest.param("65", id="more-than-64"),
    pytest.param("100000000000000000000", id="huge"),
    pytest.param("two", id="word"),
    pytest.param("1.5", id="fraction"),
    pytest.param("", id="empty"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("number", BAD_NUMBERS)
def test_a_bad_number_of_processes_is_a_command_error(number):
    with pytest.raises(CommandError) as raised:
        call_command("send_callbacks", "--processes", number, stdout=StringIO())
    assert raised.value.returncode == 2
    assert str(raised.value) == (f"--processes takes a whole number from 1 to 64, not {number!r}")


@pytest.mark.django_db
def test_processes_do_not_take_callbacks():
    with pytest.raises(CommandError, match="--processes sends whatever is due; it does not"):
        call_command("send_callbacks", "--processes", "2", "--callbacks", "1")


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("loop", [[], ["--loop"]], ids=["one-shot", "loop"])
def test_a_bad_number_of_processes_exits_2_with_one_line(same_db_env, loop):
    result = subprocess.run(
        [*MANAGE, "--processes", "0", *loop],
        env=same_db_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "CommandError: --processes takes a whole number from 1 to 64, not '0'"
    ]
    assert result.stdout == ""  # no banner of workers that never start


@contextmanager
def attempts_refused(status: int) -> Iterator[None]:
    """The database fails to log an attempt answered ``status`` (a trigger), with an
    error no one row brings about (a statement it cannot run, as after a migration not
    run), so that a sender's run fails writing its outcomes: a row's own error (a
    constraint) would end that callback as ``error`` (``delivery.recording``)."""
    table = connection.ops.quote_name(Attempt._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION refuse_attempt() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'attempt refused' USING ERRCODE = 'undefined_table'; "
                "END $$"
            )
            cursor.execute(
                f"CREATE TRIGGER refuse_attempt BEFORE INSERT ON {table} FOR EACH ROW "
                f"WHEN (NEW.response_status = {status}) EXECUTE FUNCTION refuse_attempt()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER refuse_attempt BEFORE INSERT ON {table} "
                f"WHEN NEW.response_status = {status} "
                "BEGIN SELECT json('attempt refused'); END"  # "malformed JSON", SQLITE_ERROR
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER refuse_attempt ON {table}")
                cursor.execute("DROP FUNCTION refuse_attempt()")
            else:
                cursor.execute("DROP TRIGGER refuse_attempt")


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_a_loop_process_that_stops_after_a_failed_run_gives_back_what_that_run_held(
    make_hook, receiver, same_db_env, tmp_path
):
    """A worker's run fails: the database refuses to log its 3 outcomes. The worker goes
    on, and a later run (with a claim token of its own) sends a new callback; then
    SIGTERM, and the worker exits normally. The 3 that the failed run held go back to
    waiting at once, not after their lease (LEASE_SECONDS, 300 s here)."""
    receiver.respond(status=418)
    make_hook()
    with attempts_refused(418):
        save_orders(3)
        supervisor = start(same_db_env, tmp_path, "--processes", "1", "--loop")
        try:
            wait_until(
                lambda: "loop: the database failed" in stderr_of(tmp_path),
                timeout=60,
                message="the run did not fail",
            )
            receiver.respond(status=200)
            save_orders(1)
            wait_until(
                lambda: Callback.objects.filter(status="sent").exists(),
                timeout=60,
                message="the later run did not send",
            )
        finally:
            supervisor.send_signal(signal.SIGTERM)
            stdout, _ = supervisor.communicate(timeout=120)
    assert supervisor.returncode == 0, stderr_of(tmp_path)
    assert stdout.splitlines()[-1].startswith("sent 1, retried 0, failed 0 in "), stdout
    assert "held 3 callback(s): due again" in stderr_of(tmp_path)
    assert sorted(Callback.objects.values_list("status", "claimed_until", "attempts")) == [
        ("sent", None, 1),
        *[("waiting", None, 0)] * 3,
    ]


def gone(pid: int) -> bool:
    """Whether the process ``pid`` has exited (a zombie not yet reaped counts)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_children_stop_when_their_supervisor_is_killed_with_sigkill(
    make_hook, receiver, same_db_env, tmp_path
):
    """A supervisor killed with SIGKILL cannot stop its children: they see they were
    orphaned and stop as on SIGTERM, rather than send on beside the next supervisor."""
    make_hook()
    supervisor = start(same_db_env, tmp_path, "--processes", "2", "--loop", LOOP_MAX_SLEEP=0.3)
    try:
        pids = wait_until(
            lambda: len(found := children(supervisor)) == 2 and found,
            message="the supervisor did not start its two children",
            alive=lambda: supervisor.poll() is None,
        )
        supervisor.kill()
        supervisor.wait(timeout=30)
        wait_until(
            lambda: all(gone(pid) for pid in pids),
            timeout=60,
            message=lambda: f"children still running: {[p for p in pids if not gone(p)]}",
        )
    finally:
        for pid in pids if "pids" in locals() else []:
            if not gone(pid):
                subprocess.run(["kill", "-KILL", str(pid)], check=False)


def test_each_run_of_a_child_writes_its_claim_token_for_the_supervisor(tmp_path, monkeypatch):
    """After the tokens of the runs that failed less than LEASE_SECONDS ago: what they
    held waits for its lease, and the supervisor gives it back once the child ends."""
    token_file = tmp_path / "1-1.token"
    assert read_tokens(token_file) == []
    monkeypatch.setattr(processes, "_token_file", None)
    write_tokens_to(token_file)
    first = new_claim_token()
    assert read_tokens(token_file) == [first]
    second = new_claim_token()
    assert second != first and read_tokens(token_file) == [second]
    run_failed(second)
    assert read_tokens(token_file) == [second]
    third = new_claim_token()
    assert read_tokens(token_file) == [second, third]
    later = time.monotonic() + 301  # the lease of the failed run has run out
    monkeypatch.setattr(processes.time, "monotonic", lambda: later)
    fourth = new_claim_token()
    assert read_tokens(token_file) == [fourth]
    assert [p.name for p in tmp_path.iterdir()] == ["1-1.token"]
