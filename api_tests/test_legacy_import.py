"""``manage.py import_legacy_hooks``: the tables of infi.django_http_hooks (app label
``hooks``) moved into hooks of ours, refusals with their reason, a second run, the
dry run, the waiting callbacks delivered, and the system check that asks for it."""

import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.db import connection

from http_hooks.checks import check_hooks
from http_hooks.models import Callback, Hook
from shop.models import Order

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
def test_a_changed_old_hook_is_imported_again(old_tables, receiver):
    old_data(receiver.url("/old"))
    run()
    sql("UPDATE hooks_hook SET headers = %s WHERE id = 1", ["X-Team: billing"])
    output, _ = run()
    assert output.splitlines()[0].startswith("hook 1 'orders': imported as hook ")
    assert Hook.objects.filter(name="orders").count() == 2


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
    assert [r.json() for r in received] == [
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
