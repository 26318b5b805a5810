"""monitor_callbacks and delete_old_callbacks: arguments, output, exit status."""

import datetime
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from http_hooks.api import send_callbacks
from http_hooks.delivery import run_loop
from http_hooks.exceptions import InvalidFilterError
from http_hooks.models import Attempt, Callback, CallbackStatus
from shop.models import Order

from .waiting import wait_until

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def callbacks(make_hook):
    """Three error callbacks updated now, two updated an hour ago, one waiting."""
    make_hook()
    for i in range(6):
        Order.objects.create(name=f"o{i}")
    ids = list(Callback.objects.order_by("id").values_list("id", flat=True))
    now = timezone.now()
    Callback.objects.filter(pk__in=ids[:3]).update(status=CallbackStatus.ERROR, update_datetime=now)
    Callback.objects.filter(pk__in=ids[3:5]).update(
        status=CallbackStatus.ERROR, update_datetime=now - datetime.timedelta(hours=1)
    )
    return ids


def monitor(*args):
    return call_command("monitor_callbacks", *args)


def test_monitor_exits_1_when_the_limit_is_reached(callbacks, capsys):
    with pytest.raises(CommandError, match="limit reached: 5 error callbacks") as info:
        monitor("--status", "error", "--callbacks_limit", "5")
    assert info.value.returncode == 1


def test_monitor_passes_below_the_limit(callbacks, capsys):
    monitor("--status", "error", "--callbacks_limit", "6")
    assert "ok: 5 error callbacks updated in all (limit 6)" in capsys.readouterr().out


def test_monitor_window_counts_only_recent_updates(callbacks, capsys):
    monitor("--status", "error", "--callbacks_limit", "4", "--minutes_ago", "10")
    assert "ok: 3 error callbacks updated in the last 10 minutes" in capsys.readouterr().out
    with pytest.raises(CommandError):
        monitor("--status", "error", "--callbacks_limit", "3", "--minutes_ago", "10")


def test_monitor_minutes_ago_0_counts_the_whole_table_as_the_old_package_did(callbacks, capsys):
    """infi.django_http_hooks read ``--minutes_ago 0`` as no window: an alert written
    with it must not turn silent (a window of 0 minutes would count nothing)."""
    with pytest.raises(CommandError, match="limit reached: 5 error callbacks updated in all"):
        monitor("--status", "error", "--callbacks_limit", "5", "--minutes_ago", "0")


def test_monitor_default_limit_is_10(callbacks, capsys):
    monitor("--status", "error")
    assert "(limit 10)" in capsys.readouterr().out


def test_monitor_waiting_status(callbacks, capsys):
    with pytest.raises(CommandError, match="1 waiting"):
        monitor("--status", "waiting", "--callbacks_limit", "1")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "the following arguments are required: --status"),
        (["--status", "sent"], "invalid choice: 'sent'"),
        (
            ["--status", "error", "--callbacks_limit", "0"],
            "callbacks_limit must be a whole number >= 1",
        ),
        (["--status", "error", "--callbacks_limit", "x"], "'x' is not a whole number"),
        (
            ["--status", "error", "--callbacks_limit", "\u0661\u0660"],
            "'\u0661\u0660' is not a whole number",
        ),
        (["--status", "error", "--minutes_ago", "-1"], "minutes_ago must be a whole number from 0"),
        (
            ["--status", "error", "--minutes_ago", "99999999999"],
            "minutes_ago must be a whole number",
        ),
    ],
    ids=[
        "status-missing",
        "status-invalid",
        "limit-zero",
        "limit-not-a-number",
        "limit-in-other-digits",
        "negative-window",
        "window-too-large",
    ],
)
def test_monitor_bad_arguments_are_refused_with_a_clear_message(args, words):
    with pytest.raises(CommandError, match=words):
        monitor(*args)


@pytest.mark.parametrize(
    "args",
    [
        ["--status", "error", "--callbacks_limit", "0"],
        ["--status", "error", "--minutes_ago", "-1"],
        ["--status", "error", "--minutes_ago", "99999999999"],
    ],
    ids=["limit-zero", "negative-window", "window-too-large"],
)
def test_monitor_bad_values_exit_2_not_limit_reached(callbacks, args):
    """Exit 1 means "limit reached" to an alerting cron job: bad input must not say that."""
    with pytest.raises(CommandError) as info:
        monitor(*args)
    assert info.value.returncode == 2
    assert "limit reached" not in str(info.value)


def run_manage(*args, env=None):
    return subprocess.run(
        [sys.executable, str(ROOT / "demo" / "manage.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.django_db(transaction=True)
def test_monitor_exit_codes_from_a_real_process(make_hook, same_db_env):
    make_hook()
    Order.objects.create(name="x")
    Callback.objects.update(status=CallbackStatus.ERROR, update_datetime=timezone.now())
    ok = run_manage(
        "monitor_callbacks", "--status", "error", "--callbacks_limit", "2", env=same_db_env
    )
    assert (ok.returncode, ok.stdout.strip()) == (
        0,
        "ok: 1 error callbacks updated in all (limit 2)",
    )
    over = run_manage(
        "monitor_callbacks", "--status", "error", "--callbacks_limit", "1", env=same_db_env
    )
    assert over.returncode == 1
    assert over.stderr.strip() == (
        "CommandError: limit reached: 1 error callbacks updated in all (limit 1)"
    )
    bad = run_manage("monitor_callbacks", "--status", "nope", env=same_db_env)
    assert bad.returncode == 2
    assert "invalid choice: 'nope' (choose from 'error', 'waiting', 'sending')" in bad.stderr


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["monitor_callbacks", "--status", "error", "--callbacks_limit", "0"],
            "CommandError: callbacks_limit must be a whole number >= 1",
        ),
        (
            ["monitor_callbacks", "--status", "error", "--minutes_ago", "99999999999"],
            "CommandError: minutes_ago must be a whole number from 0 to 52560000",
        ),
        (
            ["delete_old_callbacks", "99999999999"],
            "CommandError: days must be a whole number from 0 to 36500",
        ),
        (
            ["delete_old_callbacks", "1", "--batch-size", "0"],
            "CommandError: --batch-size must be a whole number from 1 to 100000",
        ),
    ],
    ids=["limit-zero", "window-overflow", "days-overflow", "batch-zero"],
)
@pytest.mark.django_db(transaction=True)
def test_bad_values_exit_2_with_one_line_from_a_real_process(args, line, same_db_env):
    result = run_manage(*args, env=same_db_env)
    assert (result.returncode, result.stdout, result.stderr.strip()) == (2, "", line)


@pytest.mark.parametrize(
    "args",
    [
        ["monitor_callbacks"],
        ["monitor_callbacks", "--status", "error", "--callbacks_limit", "x"],
        ["delete_old_callbacks", "ten"],
        ["delete_old_callbacks", "3_0"],
        ["delete_old_callbacks", " 30 "],
        ["delete_old_callbacks", "\u0661"],
        ["monitor_callbacks", "--status", "error", "--minutes_ago", "1e400"],
    ],
    ids=[
        "status-missing",
        "limit-word",
        "days-word",
        "underscore",
        "spaces",
        "other-digits",
        "float",
    ],
)
@pytest.mark.django_db(transaction=True)
def test_unparsable_arguments_exit_2_with_one_line_from_a_real_process(
    args, same_db_env, make_hook
):
    """One line, without argparse's usage before it, and nothing deleted (``int()``
    took "3_0", " 30 " and Arabic-Indic digits as numbers, and the deletion ran)."""
    make_hook()
    Order.objects.create(name="x")
    Callback.objects.update(
        status=CallbackStatus.SENT, create_datetime=timezone.now() - datetime.timedelta(days=400)
    )
    result = run_manage(*args, env=same_db_env)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"manage.py {args[0]}: error: "), result.stderr
    assert result.stdout == ""
    assert Callback.objects.count() == 1


@pytest.mark.parametrize("where", ["/nonexistent/report", "a folder"])
@pytest.mark.django_db(transaction=True)
def test_a_report_file_that_cannot_be_written_is_refused_before_sending(
    make_hook, same_db_env, tmp_path, where
):
    path = str(tmp_path) if where == "a folder" else where
    make_hook()
    Order.objects.create(name="x")
    result = run_manage("send_callbacks", "--report-file", path, env=same_db_env)
    assert (result.returncode, result.stderr.strip()) == (2, f"CommandError: cannot write {path!r}")
    assert Callback.objects.get().status == CallbackStatus.WAITING


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("/nonexistent/token", id="missing-folder"),
        pytest.param("a folder", id="folder"),
        pytest.param("x" * 300, id="name-too-long"),
        pytest.param("/proc/self/comm", id="folder-without-room-beside-it"),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_a_token_file_that_cannot_be_written_is_refused_before_sending(
    make_hook, same_db_env, tmp_path, where
):
    """A name too long for the system was a traceback; so was a file whose folder takes
    no new file, as the token is written beside it first (``processes.new_claim_token``)."""
    if where == "/proc/self/comm" and not Path(where).is_file():
        pytest.skip("no /proc")
    path = {"a folder": str(tmp_path), "x" * 300: str(tmp_path / where)}.get(where, where)
    make_hook()
    Order.objects.create(name="x")
    result = run_manage("send_callbacks", "--token-file", path, env=same_db_env)
    assert (result.returncode, result.stderr.strip()) == (
        2,
        f"CommandError: cannot write {path[:200]!r}",
    )
    assert Callback.objects.get().status == CallbackStatus.WAITING


@pytest.mark.parametrize(
    "option",
    [
        pytest.param({"token_file": "a\x00b"}, id="token-file-nul"),
        pytest.param({"report_file": "a\x00b"}, id="report-file-nul"),
        pytest.param({"token_file": 5}, id="token-file-number"),
        pytest.param({"report_file": b"/tmp/report"}, id="report-file-bytes"),
    ],
)
def test_a_file_option_given_to_call_command_that_is_no_path_is_refused(callbacks, option):
    with pytest.raises(CommandError, match=r"^cannot write ") as raised:
        call_command("send_callbacks", **option)
    assert raised.value.returncode == 2
    assert Callback.objects.filter(status=CallbackStatus.WAITING).count() == 1


def test_a_claim_token_that_cannot_be_written_stops_the_run_before_it_claims(
    callbacks, tmp_path, monkeypatch
):
    """Its folder gone after the command checked it: the run's ``OSError`` was a traceback."""
    from http_hooks.delivery import processes

    monkeypatch.setattr(processes, "_token_file", None)
    processes.write_tokens_to(tmp_path / "gone" / "token")
    with pytest.raises(InvalidFilterError, match=r"^cannot write the claim token to ") as raised:
        send_callbacks()
    assert raised.value.field == "token_file"
    assert Callback.objects.filter(status=CallbackStatus.WAITING).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_loop_worker_whose_claim_token_cannot_be_written_stops(make_hook, tmp_path, monkeypatch):
    """Not an error of one run to log and go past: every run would fail the same way, and a
    worker that went on would send nothing, its supervisor none the wiser."""
    from http_hooks.delivery import processes

    make_hook()
    Order.objects.create(name="x")
    monkeypatch.setattr(processes, "_token_file", None)
    processes.write_tokens_to(tmp_path / "gone" / "token")
    stop, raised = threading.Event(), []

    def work() -> None:
        try:
            run_loop(stop=stop)
        except Exception as exc:
            raised.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(timeout=30)
    stop.set()
    worker.join()
    assert [type(exc) for exc in raised] == [InvalidFilterError]
    assert Callback.objects.get().status == CallbackStatus.WAITING


def test_a_token_file_is_written_by_that_command_only(callbacks, tmp_path, monkeypatch):
    """The file stayed the process's: a later send, of another caller, wrote its token
    there too."""
    from http_hooks.delivery import processes

    monkeypatch.setattr(processes, "_token_file", None)
    token = tmp_path / "token"
    call_command("send_callbacks", "--quiet", token_file=str(token))
    token.unlink()
    send_callbacks()
    assert not token.exists()


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param(["monitor_callbacks", "--status", "x" * 100_000], id="choice"),
        pytest.param(["send_callbacks", "--" + "x" * 100_000], id="unknown-option"),
    ],
)
def test_an_argument_error_quotes_the_argument_cut_short(same_db_env, arguments):
    """argparse quotes a bad value whole: a line of 100,000 characters for a cron mail."""
    result = run_manage(*arguments, env=same_db_env)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert len(result.stderr) < 1200


@pytest.mark.parametrize(
    ("command", "option"),
    [
        pytest.param(["send_callbacks"], {"loop": "no"}, id="send-loop"),
        pytest.param(["send_callbacks"], {"quiet": 1}, id="send-quiet"),
        pytest.param(["delete_old_callbacks", "0"], {"include_undelivered": "no"}, id="delete"),
        pytest.param(["import_legacy_hooks"], {"dry_run": "no"}, id="import-dry-run"),
        pytest.param(["monitor_callbacks", "--status", "error"], {"no_color": "x"}, id="color"),
    ],
)
def test_a_switch_given_to_call_command_that_is_no_bool_is_refused(callbacks, command, option):
    """``call_command`` hands switches over as given: loop="no" ran a worker."""
    with pytest.raises(CommandError, match=f"^{next(iter(option))} must be True or False"):
        call_command(*command, **option)
    assert Callback.objects.count() == 6


@pytest.mark.parametrize("supervisor", ["abc", "0", -1], ids=repr)
def test_a_supervisor_that_is_no_process_id_is_refused(callbacks, supervisor):
    """It was taken as a supervisor gone at once: nothing sent, and exit status 0."""
    with pytest.raises(CommandError, match=r"^--supervisor takes ") as raised:
        call_command("send_callbacks", supervisor=supervisor)
    assert raised.value.returncode == 2


def test_one_callback_id_given_to_call_command_is_that_id(callbacks, receiver):
    """Not its digits: callbacks="12" sent callbacks 1 and 2."""
    Callback.objects.update(status=CallbackStatus.WAITING)
    call_command("send_callbacks", "--quiet", callbacks=str(callbacks[1]))
    assert list(
        Callback.objects.exclude(status=CallbackStatus.WAITING).values_list("pk", flat=True)
    ) == [callbacks[1]]


def test_options_given_to_call_command_as_text_are_checked_too(callbacks, tmp_path):
    """``call_command`` hands keyword options over as given, past argparse's ``type``."""
    with pytest.raises(CommandError, match="--batch-size must be a whole number"):
        call_command("delete_old_callbacks", "30", batch_size="3_0")
    report = tmp_path / "report.json"
    call_command("send_callbacks", "--quiet", report_file=str(report))
    assert report.exists()


def _age(callback_ids, days):
    Callback.objects.filter(pk__in=callback_ids).update(
        create_datetime=timezone.now() - datetime.timedelta(days=days)
    )


def test_delete_old_callbacks_keeps_undelivered_ones_unless_told(callbacks, capsys):
    waiting = callbacks[5]
    # Left by a sender whose lease ran out: one a sender holds is never deleted.
    Callback.objects.filter(pk=callbacks[4]).update(
        status=CallbackStatus.SENDING, claimed_until=timezone.now() - datetime.timedelta(hours=1)
    )
    _age(callbacks, days=40)
    call_command("delete_old_callbacks", "30")
    assert "deleted 4 callbacks" in capsys.readouterr().out
    assert sorted(Callback.objects.values_list("id", flat=True)) == [callbacks[4], waiting]
    call_command("delete_old_callbacks", "30", "--include-undelivered")
    assert "deleted 2 callbacks" in capsys.readouterr().out
    assert not Callback.objects.exists()


def test_delete_old_callbacks_deletes_only_older_ones_and_their_attempts(callbacks, capsys):
    _age(callbacks[:2], days=40)
    _age(callbacks[2:4], days=20)
    Attempt.objects.create(callback_id=callbacks[0], number=1)
    call_command("delete_old_callbacks", "30", "--batch-size", "1")
    assert "deleted 2 callbacks created more than 30 days ago" in capsys.readouterr().out
    assert sorted(Callback.objects.values_list("id", flat=True)) == callbacks[2:]
    assert not Attempt.objects.exists()
    call_command("delete_old_callbacks", "10")
    assert sorted(Callback.objects.values_list("id", flat=True)) == callbacks[4:]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "the following arguments are required: days"),
        (["-3"], "days must be a whole number from 0 to 36500"),
        (["99999999999"], "days must be a whole number from 0 to 36500"),
        (["ten"], "'ten' is not a whole number"),
        (["3_0"], "'3_0' is not a whole number"),
        ([" 30 "], "' 30 ' is not a whole number"),
        (["3", "--batch-size", "0"], "--batch-size must be a whole number from 1 to 100000"),
        (["3", "--batch-size", "100001"], "--batch-size must be a whole number from 1 to 100000"),
    ],
    ids=[
        "missing",
        "negative",
        "overflow",
        "not-a-number",
        "underscore",
        "spaces",
        "zero-batch",
        "huge-batch",
    ],
)
def test_delete_old_callbacks_bad_arguments(callbacks, args, words):
    with pytest.raises(CommandError, match=words):
        call_command("delete_old_callbacks", *args)
    assert Callback.objects.count() == len(callbacks)


@pytest.mark.django_db(transaction=True)
def test_delete_old_callbacks_in_a_real_process_reclaims_space(make_hook, same_db_env):
    """On PostgreSQL this runs VACUUM ANALYZE, which cannot run inside a transaction."""
    make_hook()
    for i in range(3):
        Order.objects.create(name=f"o{i}")
    _age(list(Callback.objects.values_list("id", flat=True))[:2], days=5)
    result = run_manage("delete_old_callbacks", "1", "--include-undelivered", env=same_db_env)
    assert result.returncode == 0, result.stderr
    # The result is printed once: no log line next to it.
    assert (result.stdout, result.stderr) == (
        "deleted 2 callbacks created more than 1 day ago\n",
        "",
    )
    assert Callback.objects.count() == 1


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["send_callbacks"], 1),
        (["send_callbacks", "--quiet", "--processes", "1"], 0),  # prints nothing
        (["delete_old_callbacks", "1"], 1),
        (["monitor_callbacks", "--status", "error"], 3),  # not 1, "limit reached"
    ],
    ids=["send", "send-quiet", "delete", "monitor"],
)
@pytest.mark.django_db(transaction=True)
def test_a_closed_output_is_one_line_not_a_traceback(
    make_hook, receiver, same_db_env, args, status
):
    """``| head -0``: the summary's write was a BrokenPipeError's traceback."""
    import os

    make_hook()
    Order.objects.create(name="x")
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails
    try:
        result = subprocess.run(
            [sys.executable, str(ROOT / "demo" / "manage.py"), *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=same_db_env,
        )
    finally:
        os.close(write_end)
    expected = (
        "" if status == 0 else "CommandError: the output was closed before it was all written"
    )
    assert (result.returncode, result.stderr.strip()) == (status, expected)
    if args[0] == "send_callbacks":
        assert len(receiver.requests) == 1  # the work is done, only its report lost
        assert Callback.objects.get().status == CallbackStatus.SENT


INTERRUPTED_RUN = """
import signal, sys
import django
django.setup()
from django.core.management import execute_from_command_line
from http_hooks import services

batches = 0

def deleting(*args, **kwargs):
    global batches
    batches += 1
    if batches == 2:  # in the middle of the second batch
        signal.raise_signal(getattr(signal, sys.argv[1]))
    return real(*args, **kwargs)

real, services._delete_callbacks = services._delete_callbacks, deleting
execute_from_command_line(["manage.py", *sys.argv[2:]])
"""


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("stop", "status", "said"),
    [
        pytest.param("SIGINT", 130, "interrupted", id="ctrl-c"),
        pytest.param("SIGTERM", 143, "terminated (SIGTERM)", id="sigterm"),
    ],
)
def test_a_stop_is_one_line_and_rolls_only_its_batch_back(
    make_hook, same_db_env, stop, status, said
):
    """SIGINT was a KeyboardInterrupt's traceback; SIGTERM ended the process where it
    stood, with no word (exit status 143 from Python's default, -15 here)."""
    make_hook()
    Order.objects.create(name="x")
    Order.objects.create(name="y")
    Callback.objects.update(
        status=CallbackStatus.SENT, create_datetime=timezone.now() - datetime.timedelta(days=3)
    )
    command = ["delete_old_callbacks", "1", "--batch-size", "1"]
    result = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_RUN, stop, *command],
        capture_output=True,
        text=True,
        timeout=60,
        env=same_db_env,
        cwd=ROOT / "demo",
    )
    assert (result.returncode, result.stdout, result.stderr.strip()) == (
        status,
        "",
        f"CommandError: {said}: what was done before stays done",
    )
    assert Callback.objects.count() == 1


def blocked_backends() -> list[int]:
    """The other backends of this database waiting on a lock (read anew: a transaction
    sees the statistics of its first look)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
        )
        return [pid for (pid,) in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="a query waiting in the server")
def test_sigterm_cancels_the_query_the_command_waits_on(make_hook, same_db_env):
    """A SIGTERM that came while the command waited on PostgreSQL left its query running
    in the server (psycopg cancels one only for a ``KeyboardInterrupt`` or a
    ``SystemExit``): the command exited, and its batch went on waiting on the lock, and
    held what it had locked, until what it waited on was done."""
    make_hook()
    Order.objects.create(name="x")
    Callback.objects.update(
        status=CallbackStatus.SENT, create_datetime=timezone.now() - datetime.timedelta(days=3)
    )
    with transaction.atomic():
        list(Callback.objects.select_for_update())
        process = subprocess.Popen(
            [sys.executable, "manage.py", "delete_old_callbacks", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=same_db_env,
            cwd=ROOT / "demo",
        )
        try:
            wait_until(blocked_backends, alive=lambda: process.poll() is None)
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
        finally:
            process.kill()
        assert (process.returncode, stderr.strip()) == (
            143,
            "CommandError: terminated (SIGTERM): what was done before stays done",
        )
        wait_until(lambda: not blocked_backends(), timeout=10, message="the query cancelled")
    assert Callback.objects.count() == 1


@pytest.mark.django_db
def test_call_command_leaves_sigterm_to_the_process_that_calls_it(monkeypatch):
    """A command called from Python (a Celery task, a web worker calling
    ``call_command``) runs under that process's own SIGTERM handler: raising
    ``Terminated`` in its place would end the caller's task, not the caller."""
    from http_hooks.management.commands import delete_old_callbacks

    def callers_handler(signum, frame):
        raise AssertionError("not to be called")

    seen = []

    def deleting(**kwargs):
        seen.append(signal.getsignal(signal.SIGTERM))
        return 0

    monkeypatch.setattr(delete_old_callbacks, "delete_old_callbacks", deleting)
    previous = signal.signal(signal.SIGTERM, callers_handler)
    try:
        call_command("delete_old_callbacks", "1")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [callers_handler]
