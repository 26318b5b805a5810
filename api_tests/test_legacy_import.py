"""``manage.py import_legacy_hooks``: the tables of infi.django_http_hooks (app label
``hooks``) moved into hooks of ours, refusals with their reason, a second run, the
dry run, the waiting callbacks delivered, and the system check that asks for it."""

import os
import sqlite3
import subprocess
import sys
import threading
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction

from http_hooks.checks import check_hooks
from http_hooks.models import Callback, Hook
from shop.models import Order

from .backends import waiting_on_a_lock
from .waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(ROOT / "demo" / "manage.py"), "import_legacy_hooks"]

# The old package's tables, as its migrations made them.
OLD_TABLES = {
    "hooks_signal": (
        "id integer PRIMARY KEY, signal varchar(256) NOT NULL UNIQUE, "
        "update_time timestamp NULL, create_datetime timestamp NULL"
    ),
    "hooks_hook": (
        "id integer PRIMARY KEY, name varchar(512) NULL, update_datetime timestamp NULL, "
        "create_datetime timestamp NULL, model_id integer NOT NULL, enabled boolean NOT NULL, "
        "target_url varchar(512) NOT NULL, http_method varchar(64) NOT NULL, headers text NULL, "
        "payload_template text NULL, serializer_class varchar(256) NULL, "
        "content_type varchar(128) NULL"
    ),
    "hooks_hook_signals": "id integer PRIMARY KEY, hook_id integer NOT NULL, "
    "signal_id integer NOT NULL",
    "hooks_callback": (
        "id integer PRIMARY KEY, update_datetime timestamp NULL, create_datetime timestamp NULL, "
        "target_url varchar(512) NOT NULL, headers text NULL, payload text NULL, "
        "content_type varchar(128) NULL, http_method varchar(64) NULL, hook_id integer NOT NULL, "
        "status varchar(64) NULL, status_details varchar(512) NULL"
    ),
}
POST_SAVE = "django.db.models.signals.post_save"
POST_DELETE = "django.db.models.signals.post_delete"
GOOD_TEMPLATE = '{"id": "{{instance.pk}}", "event": "{{event_type}}"}'


def sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


@pytest.fixture
def old_tables(db):
    for table, columns in OLD_TABLES.items():
        sql(f"CREATE TABLE {connection.ops.quote_name(table)} ({columns})")
    yield
    for table in OLD_TABLES:
        sql(f"DROP TABLE IF EXISTS {connection.ops.quote_name(table)}")


def add_signal(signal_id: int, path: str) -> None:
    sql('INSERT INTO hooks_signal (id, "signal") VALUES (%s, %s)', [signal_id, path])


def add_hook(hook_id: int, *, signal_ids=(1,), **fields) -> None:
    row = {
        "name": f"old hook {hook_id}",
        "model_id": ContentType.objects.get_by_natural_key("shop", "order").pk,
        "enabled": True,
        "target_url": "http://127.0.0.1:9/hook",
        "http_method": "POST",
        "headers": None,
        "payload_template": None,
        "serializer_class": None,
        "content_type": None,
        **fields,
    }
    sql(
        f"INSERT INTO hooks_hook (id, {', '.join(row)}) VALUES (%s{', %s' * len(row)})",
        [hook_id, *row.values()],
    )
    for signal_id in signal_ids:
        sql(
            "INSERT INTO hooks_hook_signals (id, hook_id, signal_id) VALUES (%s, %s, %s)",
            [hook_id * 100 + signal_id, hook_id, signal_id],
        )


def add_callback(callback_id: int, hook_id: int, status: str, url: str, payload: str) -> None:
    sql(
        "INSERT INTO hooks_callback (id, target_url, headers, payload, content_type, "
        "http_method, hook_id, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        [callback_id, url, "X-Team: ops", payload, "application/json", "POST", hook_id, status],
    )


def old_data(url: str) -> None:
    """Hook 1 good (two signals, headers, a template, callbacks of each status), 2 with a
    template that uses a tag, 3 with a signal that does not import, 4 with NULLs."""
    add_signal(1, POST_SAVE)
    add_signal(2, POST_DELETE)
    add_signal(3, "nowhere.signals.gone")
    add_hook(
        1,
        name="orders",
        signal_ids=(1, 2),
        target_url=url,
        headers="X-Api-Key: 12345\nX-Team: ops",
        payload_template=GOOD_TEMPLATE,
        content_type="application/json",
    )
    add_hook(
        2,
        name="tagged",
        payload_template='{"id": "{% if instance.pk %}1{% endif %}"}',
        content_type="application/json",
    )
    add_hook(3, name="deaf", signal_ids=(3,))
    add_hook(4, name=None, enabled=False, http_method="put")
    add_callback(1, 1, "waiting", url, '{"id": "1", "event": "created"}')
    add_callback(2, 1, "sent", url, '{"id": "2", "event": "created"}')
    add_callback(3, 1, "error", url, '{"id": "3", "event": "created"}')
    add_callback(4, 1, "waiting", url, '{"id": "4", "event": "updated"}')


def run(*args: str) -> tuple[str, CommandError | None]:
    out = StringIO()
    try:
        call_command("import_legacy_hooks", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


@pytest.mark.django_db
def test_each_old_hook_is_imported_or_refused_with_its_reason(old_tables, receiver):
    old_data(receiver.url("/old"))
    output, error = run()
    lines = output.splitlines()
    first, fourth = Hook.objects.order_by("pk")
    assert lines[0] == f"hook 1 'orders': imported as hook {first.pk}"
    assert lines[1].startswith("hook 2 'tagged': refused: ")
    assert "tag" in lines[1]
    assert lines[2].startswith("hook 3 'deaf': refused: ")
    assert "nowhere.signals.gone" in lines[2]
    assert lines[3] == f"hook 4 '': imported as hook {fourth.pk}"
    assert lines[4] == "4 old hooks: 2 imported, 0 skipped, 2 refused"
    assert error is not None and error.returncode == 1
    assert Hook.objects.count() == 2


@pytest.mark.django_db
def test_an_imported_hook_keeps_every_field_and_is_unsigned(old_tables, receiver):
    old_data(receiver.url("/old"))
    run()
    hook = Hook.objects.get(name="orders")
    assert hook.model == ContentType.objects.get_by_natural_key("shop", "order")
    assert sorted(s.signal for s in hook.signals.all()) == [POST_DELETE, POST_SAVE]
    assert hook.enabled is True
    assert hook.target_url == receiver.url("/old")
    assert hook.http_method == "POST"
    assert hook.headers == {"X-Api-Key": "12345", "X-Team": "ops"}
    assert hook.payload_template == GOOD_TEMPLATE
    assert hook.content_type == "application/json"
    assert hook.serializer_class == ""
    assert hook.secret == ""
    nulls = Hook.objects.get(name="")
    assert (nulls.enabled, nulls.http_method, nulls.headers, nulls.content_type) == (
        False,
        "PUT",
        {},
        "",
    )


@pytest.mark.django_db
def test_an_imported_hook_fires_as_the_old_one_did(old_tables, receiver):
    old_data(receiver.url("/old"))
    run()
    order = Order.objects.create(name="first")
    call_command("send_callbacks", stdout=StringIO())
    (request,) = receiver.requests
    assert request.json() == {"id": str(order.pk), "event": "created"}
    assert request.headers["x-team"] == "ops"
    assert "webhook-signature" not in request.headers


@pytest.mark.django_db
def test_a_name_longer_than_ours_is_refused(old_tables):
    add_signal(1, POST_SAVE)
    add_hook(1, name="n" * 300)
    output, error = run()
    assert output.splitlines()[0].startswith(f"hook 1 '{'n' * 300}': refused: the name ")
    assert error.returncode == 1
    assert not Hook.objects.exists()


@pytest.mark.django_db
def test_a_name_with_a_terminal_escape_is_refused_and_shown_escaped(old_tables):
    """The old package took any name: the command says which hook was refused, on one
    line whose name rewrites nothing on the operator's terminal."""
    add_signal(1, POST_SAVE)
    add_hook(1, name="ok\x1b[2J\x1b[H\r\nhook 1 imported\u202e")
    output, error = run()
    (line,) = output.splitlines()[:-1]
    assert line.startswith(
        "hook 1 'ok\\x1b[2J\\x1b[H\\r\\nhook 1 imported\\u202e': refused: invalid name: "
        "it contains U+001B"
    )
    assert not any(char in output for char in "\x1b\r\u202e")
    assert error.returncode == 1
    assert not Hook.objects.exists()


@pytest.mark.django_db
def test_an_imported_name_loses_the_spaces_around_it_as_a_new_hooks_does(old_tables, receiver):
    add_signal(1, POST_SAVE)
    add_hook(1, name="  orders ", target_url=receiver.url())
    output, error = run()
    assert error is None, output
    assert Hook.objects.get().name == "orders"


@pytest.mark.django_db
def test_a_second_run_imports_nothing_new(old_tables, receiver):
    old_data(receiver.url("/old"))
    run("--waiting-callbacks")
    hooks = list(Hook.objects.order_by("pk").values_list("pk", flat=True))
    callbacks = Callback.objects.count()
    output, error = run("--waiting-callbacks")
    lines = output.splitlines()
    assert lines[0] == f"hook 1 'orders': skipped: already imported as hook {hooks[0]}"
    assert lines[3] == f"hook 4 '': skipped: already imported as hook {hooks[1]}"
    assert lines[4] == "4 old hooks: 0 imported, 2 skipped, 2 refused; 0 waiting callbacks copied"
    assert error.returncode == 1
    assert list(Hook.objects.order_by("pk").values_list("pk", flat=True)) == hooks
    assert Callback.objects.count() == callbacks


@pytest.mark.django_db
def test_an_old_hook_is_imported_once_whatever_changes_after(old_tables, receiver):
    """The imported hook moved to a new URL (it is ours now), the old row edited, a
    refused hook fixed: the next run imports the fixed one only, and no waiting callback
    goes out twice (each run copied them again once)."""
    old_data(receiver.url("/old"))
    run("--waiting-callbacks")
    call_command("send_callbacks", stdout=StringIO())
    Hook.objects.filter(name="orders").update(target_url=receiver.url("/moved"))
    sql("UPDATE hooks_hook SET headers = %s WHERE id = 1", ["X-Team: billing"])
    sql("UPDATE hooks_hook SET payload_template = NULL, content_type = NULL WHERE id = 2")
    output, _ = run("--waiting-callbacks")
    lines = output.splitlines()
    assert lines[0] == f"hook 1 'orders': skipped: already imported as hook {ours('orders').pk}"
    assert lines[1] == f"hook 2 'tagged': imported as hook {ours('tagged').pk}"
    call_command("send_callbacks", stdout=StringIO())
    assert sorted(r.json()["id"] for r in receiver.requests if r.path == "/old") == ["1", "4"]
    assert Hook.objects.filter(name="orders").count() == 1
    ours("orders").delete()
    output, _ = run()
    assert output.splitlines()[0] == (
        "hook 1 'orders': skipped: imported before (that hook was deleted since)"
    )


def ours(name: str) -> Hook:
    return Hook.objects.get(name=name)


@pytest.mark.django_db
def test_two_identical_old_hooks_are_two_hooks_with_their_own_callbacks(old_tables, receiver):
    """The old package sent each event twice then: so do the imported hooks, and each
    keeps its own waiting callbacks (the second's were dropped as "already imported")."""
    add_signal(1, POST_SAVE)
    for hook_id in (1, 2):
        add_hook(hook_id, name="orders", target_url=receiver.url("/o"))
        add_callback(hook_id, hook_id, "waiting", receiver.url("/o"), f'{{"n": {hook_id}}}')
    run("--waiting-callbacks")
    assert Hook.objects.filter(name="orders").count() == 2
    assert sorted(Callback.objects.values_list("payload", flat=True)) == ['{"n": 1}', '{"n": 2}']


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_import_each_old_hook_once(old_tables, receiver):
    """The second run waits on the first's record of the import, then finds it imported:
    one hook, its waiting callback copied once."""
    add_signal(1, POST_SAVE)
    add_hook(1, name="orders", target_url=receiver.url("/o"))
    add_callback(1, 1, "waiting", receiver.url("/o"), '{"n": 1}')
    outputs = []

    def second_run() -> None:
        try:
            outputs.append(run("--waiting-callbacks")[0])
        finally:
            connections.close_all()

    with transaction.atomic():  # the first run, its transaction held open
        run("--waiting-callbacks")
        other = threading.Thread(target=second_run)
        other.start()
        wait_until(waiting_on_a_lock, message="the second run did not wait")
    other.join(60)
    assert outputs and outputs[0].splitlines()[0].startswith("hook 1 'orders': skipped: ")
    assert Hook.objects.count() == 1
    assert Callback.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_model_is_read_by_its_name_in_the_old_database(tmp_path, same_db_env):
    """``--database``: the old database numbered its content types otherwise (its
    shop.order has the id of the new one's shop.customer); the hook is on shop.order."""
    customer_id = ContentType.objects.get_by_natural_key("shop", "customer").pk
    path = tmp_path / "legacy.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE django_content_type (id integer PRIMARY KEY, app_label text, model text)"
        )
        old.execute(
            "INSERT INTO django_content_type VALUES (?, 'shop', 'order'), (?, 'shop', 'customer')",
            [customer_id, customer_id + 1000],
        )
        for table, columns in OLD_TABLES.items():
            old.execute(f'CREATE TABLE "{table}" ({columns})')
        old.execute("INSERT INTO hooks_signal (id, signal) VALUES (1, ?)", [POST_SAVE])
        old.execute(
            "INSERT INTO hooks_hook (id, name, model_id, enabled, target_url, http_method) "
            "VALUES (1, 'orders', ?, 1, 'http://127.0.0.1:9/o', 'POST')",
            [customer_id],
        )
        old.execute("INSERT INTO hooks_hook_signals VALUES (1, 1, 1)")
    (tmp_path / "legacy_settings.py").write_text(
        "from demo.settings import *  # noqa\n"
        f"DATABASES['legacy'] = {{'ENGINE': 'django.db.backends.sqlite3', 'NAME': {str(path)!r}}}\n"
    )
    env = {
        **same_db_env,
        "DJANGO_SETTINGS_MODULE": "legacy_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), same_db_env["PYTHONPATH"]]),
    }
    result = subprocess.run(
        [*MANAGE, "--database", "legacy"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    hook = Hook.objects.get(name="orders")
    assert (hook.model.app_label, hook.model.model) == ("shop", "order")


def _a_table_of_another_shape() -> None:
    sql("CREATE TABLE hooks_hook (id integer PRIMARY KEY, title varchar(20), url varchar(200))")
    sql("INSERT INTO hooks_hook (id, title, url) VALUES (1, 't', 'u')")


def _a_name_that_is_not_utf8() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite keeps text that is not UTF-8; PostgreSQL refuses it")
    for table, columns in OLD_TABLES.items():
        sql(f'CREATE TABLE "{table}" ({columns})')
    add_signal(1, POST_SAVE)
    add_hook(1)
    sql("UPDATE hooks_hook SET name = CAST(x'6edcff80' AS TEXT) WHERE id = 1")


@pytest.mark.parametrize(
    "make", [_a_table_of_another_shape, _a_name_that_is_not_utf8], ids=["shape", "not-utf8"]
)
@pytest.mark.django_db
def test_old_tables_that_cannot_be_imported_are_one_line_not_a_traceback(make):
    """Neither the check (run by migrate) nor the command crash on them."""
    try:
        make()
        with transaction.atomic():  # a savepoint: PostgreSQL's error would stay in it
            check_hooks(databases=["default"])
        with pytest.raises(CommandError) as error, transaction.atomic():
            call_command("import_legacy_hooks", stdout=StringIO())
        assert error.value.returncode == 2
        assert "\n" not in str(error.value)
    finally:
        for table in OLD_TABLES:
            sql(f"DROP TABLE IF EXISTS {connection.ops.quote_name(table)}")


@pytest.mark.django_db
def test_a_dry_run_reports_the_same_and_stores_nothing(old_tables, receiver):
    old_data(receiver.url("/old"))
    output, error = run("--dry-run", "--waiting-callbacks")
    lines = output.splitlines()
    assert lines[0].startswith("hook 1 'orders': imported as hook ")
    assert lines[0].endswith("(2 waiting callbacks copied)")
    assert lines[1].startswith("hook 2 'tagged': refused: ")
    assert lines[4] == (
        "4 old hooks: 2 imported, 0 skipped, 2 refused; 2 waiting callbacks copied "
        "(dry run: nothing stored)"
    )
    assert error.returncode == 1
    assert not Hook.objects.exists()
    assert not Callback.objects.exists()


@pytest.mark.django_db
def test_waiting_callbacks_are_copied_and_delivered(old_tables, receiver):
    old_data(receiver.url("/old"))
    output, _ = run("--waiting-callbacks")
    assert output.splitlines()[0].endswith("(2 waiting callbacks copied)")
    hook = Hook.objects.get(name="orders")
    copies = Callback.objects.filter(hook=hook).order_by("pk")
    assert [(c.status, c.http_method, c.content_type) for c in copies] == [
        ("waiting", "POST", "application/json")
    ] * 2
    call_command("send_callbacks", stdout=StringIO())
    received = receiver.wait_for(2)
    # Sent at the same time: in either order.
    assert sorted((r.json() for r in received), key=lambda body: body["id"]) == [
        {"id": "1", "event": "created"},
        {"id": "4", "event": "updated"},
    ]
    assert {r.path for r in received} == {"/old"}
    assert received[0].headers["x-api-key"] == "12345"
    assert set(Callback.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.django_db
def test_without_the_option_no_callback_is_copied(old_tables, receiver):
    old_data(receiver.url("/old"))
    run()
    assert not Callback.objects.exists()


@pytest.mark.django_db
def test_without_the_old_tables_nothing_happens():
    with pytest.raises(CommandError, match="no table hooks_hook") as raised:
        call_command("import_legacy_hooks", stdout=StringIO())
    assert raised.value.returncode == 2


@pytest.mark.django_db
def test_the_check_asks_for_the_import_until_it_ran(old_tables, receiver):
    assert [e.id for e in check_hooks(databases=["default"])] == []
    add_signal(1, POST_SAVE)
    add_hook(1, target_url=receiver.url())
    add_hook(2, target_url=receiver.url(), http_method="patch")
    (warning,) = check_hooks(databases=["default"])
    assert warning.id == "http_hooks.W025"
    assert "2 hook(s)" in warning.msg and "(the first: 1)" in warning.msg
    assert "import_legacy_hooks" in warning.hint
    run()
    assert check_hooks(databases=["default"]) == []


@pytest.mark.django_db
def test_the_check_is_silent_without_the_old_tables():
    assert check_hooks(databases=["default"]) == []


# --- a real process: exit statuses ----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_process_exits_1_when_a_hook_is_refused_0_when_none(old_tables, same_db_env):
    add_signal(1, POST_SAVE)
    add_signal(3, "nowhere.signals.gone")
    add_hook(1)
    add_hook(3, signal_ids=(3,))
    result = subprocess.run(MANAGE, env=same_db_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "1 old hooks refused" in result.stderr
    assert "2 old hooks: 1 imported, 0 skipped, 1 refused" in result.stdout
    sql("DELETE FROM hooks_hook WHERE id = 3")
    result = subprocess.run(MANAGE, env=same_db_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "1 old hooks: 0 imported, 1 skipped, 0 refused"


@pytest.mark.django_db(transaction=True)
def test_the_process_exits_2_with_one_line_without_the_old_tables(same_db_env):
    result = subprocess.run(MANAGE, env=same_db_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "CommandError: no table hooks_hook in database 'default': nothing to import"
    ]


@pytest.mark.django_db(transaction=True)
def test_an_unknown_database_exits_2(same_db_env):
    result = subprocess.run(
        [*MANAGE, "--database", "nope"], env=same_db_env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["CommandError: no database 'nope' in DATABASES"]


@pytest.mark.parametrize("payload", [b'{"id": 1}', "a\x00b"], ids=["blob", "nul"])
@pytest.mark.django_db
def test_a_waiting_callback_whose_payload_is_no_text_refuses_its_hook(
    old_tables, receiver, payload
):
    """A BLOB (SQLite stores what it is given) was copied as bytes, and every send that
    claimed it failed with an AttributeError, the callback left ``sending``; a NUL
    was a DataError on PostgreSQL (the old database SQLite, ``--database``). The hooks
    after it still go in."""
    from http_hooks.api import send_callbacks

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's old table holds neither: bytes become hex text there")

    add_signal(1, POST_SAVE)
    add_hook(1, name="poisoned", target_url=receiver.url())
    add_hook(2, name="fine", target_url=receiver.url())
    add_callback(1, 1, "waiting", receiver.url(), "")
    sql("UPDATE hooks_callback SET payload = %s WHERE id = 1", [payload])
    add_callback(2, 2, "waiting", receiver.url(), '{"id": 2}')
    out, error = run("--waiting-callbacks")
    assert "hook 1 'poisoned': refused: waiting callback 1: its payload is not text" in out
    assert "hook 2 'fine': imported as hook" in out
    assert error is not None and error.returncode == 1
    assert send_callbacks().sent == 1
    assert [request.json() for request in receiver.requests] == [{"id": 2}]
    assert list(Hook.objects.values_list("name", flat=True)) == ["fine"]
