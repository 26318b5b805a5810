"""The live registry: hook changes take effect without a restart, here and elsewhere."""

import json
import queue
import subprocess
import sys
import textwrap
import threading
from contextlib import nullcontext
from pathlib import Path

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from http_hooks.api import create_signal, delete_hook, update_hook
from http_hooks.exceptions import InvalidModelError, InvalidSignalError
from http_hooks.models import Callback, Hook, Signal
from http_hooks.registry import registry
from http_hooks.services import set_hook_enabled
from shop.models import Customer, Order
from shop.signals import order_shipped

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
class TestSameProcess:
    def test_a_new_hook_fires_at_once(self, make_hook):
        Order.objects.create(name="before")
        make_hook()
        Order.objects.create(name="after")
        assert Callback.objects.count() == 1

    def test_editing_the_model_moves_the_hook(self, make_hook):
        hook = make_hook()
        update_hook(hook, model="shop.customer")
        Order.objects.create(name="x")
        Customer.objects.create(name="y")
        assert list(Callback.objects.values_list("object_type", flat=True)) == ["shop.customer"]

    def test_disabling_and_enabling(self, make_hook):
        hook = make_hook()
        set_hook_enabled(hook, False)
        Order.objects.create(name="off")
        assert Callback.objects.count() == 0
        set_hook_enabled(hook, True)
        Order.objects.create(name="on")
        assert Callback.objects.count() == 1

    def test_a_deleted_hook_stops_firing(self, make_hook):
        hook = make_hook()
        delete_hook(hook)
        Order.objects.create(name="x")
        assert Callback.objects.count() == 0

    def test_adding_a_signal_to_a_hook(self, make_hook):
        hook = make_hook()
        create_signal(signal="shop.signals.order_shipped")
        update_hook(hook, signals=["shop.signals.order_shipped"])
        order = Order.objects.create(name="x")
        order_shipped.send(sender=Order, instance=order)
        assert list(Callback.objects.values_list("event_type", flat=True)) == [
            "shop.signals.order_shipped"
        ]

    def test_changes_through_the_orm_are_seen_too(self, make_hook):
        hook = make_hook()
        hook.enabled = False
        hook.save()
        Order.objects.create(name="x")
        assert Callback.objects.count() == 0

    def test_a_steady_state_save_runs_one_insert_per_hook_event_and_no_lookup(self, make_hook):
        make_hook()
        Order.objects.create(name="warm")
        with CaptureQueriesContext(connection) as queries:
            Order.objects.create(name="x")
        statements = [q["sql"].split()[0] for q in queries.captured_queries]
        assert statements == ["INSERT", "INSERT"]  # the order, then its callback


@pytest.mark.django_db(transaction=True)
def test_a_hook_created_in_a_rolled_back_transaction_never_fires(make_hook):
    with pytest.raises(RuntimeError), transaction.atomic():
        make_hook()
        raise RuntimeError
    Order.objects.create(name="x")
    assert Callback.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_hook_committed_after_a_rolled_back_savepoint_is_published(make_hook):
    Order.objects.create(name="warm up the registry")
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            make_hook(name="rolled back")
            raise RuntimeError
        hook = make_hook(name="committed")
    Order.objects.create(name="same thread")
    thread = threading.Thread(target=lambda: Order.objects.create(name="other thread"))
    thread.start()
    thread.join()
    assert Callback.objects.filter(hook_id=hook.pk).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_does_not_leak_into_the_next_transaction(make_hook):
    """``@transaction.atomic`` reuses one Atomic object for every call."""
    hook = make_hook(enabled=False)
    Order.objects.create(name="warm up the registry")

    @transaction.atomic
    def work(enable: bool) -> None:
        if enable:
            set_hook_enabled(Hook.objects.get(pk=hook.pk), True)
            raise RuntimeError("roll the enabling back")
        Order.objects.create(name="next call")

    with pytest.raises(RuntimeError):
        work(True)
    work(False)
    assert not Hook.objects.get(pk=hook.pk).enabled
    assert Callback.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_committed_hook_fires_for_other_threads_at_once(make_hook):
    make_hook()
    done = []

    def save():
        Order.objects.create(name="from a thread")
        done.append(Callback.objects.count())
        connection.close()

    thread = threading.Thread(target=save)
    thread.start()
    thread.join()
    assert done == [1]


@pytest.mark.django_db(transaction=True)
def test_legacy_reload_command_runs_after_commit(make_hook, settings, tmp_path):
    marker = tmp_path / "reloaded"
    settings.DJANGO_HTTP_HOOKS_RELOAD = ["touch", str(marker)]
    with transaction.atomic():
        make_hook()
        assert not marker.exists()
    assert marker.exists()


@pytest.mark.django_db(transaction=True)
def test_failing_reload_command_is_logged_not_raised(make_hook, settings, caplog):
    settings.DJANGO_HTTP_HOOKS_RELOAD = ["false"]
    make_hook()
    assert Hook.objects.count() == 1
    assert "DJANGO_HTTP_HOOKS_RELOAD command ['false'] failed" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_failing_reload_command_raises_with_raise_exceptions(make_hook, settings):
    settings.DJANGO_HTTP_HOOKS_RELOAD = ["false"]
    settings.DJANGO_HTTP_HOOKS_RAISE_EXCEPTIONS = True
    with pytest.raises(subprocess.CalledProcessError):
        make_hook()


CHILD = textwrap.dedent(
    """
    import json, sys
    import django
    django.setup()
    from http_hooks.models import Callback
    from shop.models import Order
    for line in sys.stdin:
        order = Order.objects.create(name="child")
        print(json.dumps(Callback.objects.filter(object_id=str(order.pk)).exists()), flush=True)
    """
)


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_changes_reach_another_process_at_its_next_check(make_hook, same_db_env):
    """A real second process that checks at every save (``REGISTRY_TTL`` 0) sees
    each change at its next save, without any change signal reaching it."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        env={**same_db_env, "HTTP_HOOKS_OVERRIDES": json.dumps({"REGISTRY_TTL": 0})},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in child.stdout], daemon=True).start()

    def child_save_fires() -> bool:
        child.stdin.write("save\n")
        child.stdin.flush()
        return json.loads(lines.get(timeout=60))

    try:
        fired = [child_save_fires()]
        hook = make_hook()
        fired.append(child_save_fires())
        set_hook_enabled(hook, False)
        fired.append(child_save_fires())
        set_hook_enabled(hook, True)
        fired.append(child_save_fires())
        delete_hook(hook)
        fired.append(child_save_fires())
    finally:
        child.stdin.close()
        child.wait(timeout=60)
    assert fired == [False, True, False, True, False]


def test_import_and_setup_touch_no_database(tmp_path):
    """``django.setup()`` and importing every module must not connect to a database."""
    code = textwrap.dedent(
        """
        import django, importlib, pkgutil
        django.setup()
        import http_hooks
        for module in pkgutil.walk_packages(http_hooks.__path__, "http_hooks."):
            if ".migrations." not in module.name:
                importlib.import_module(module.name)
        from django.db import connections
        assert connections["default"].connection is None, "a database connection was opened"
        print("ok")
        """
    )
    env = {
        "DJANGO_SETTINGS_MODULE": "demo.settings",
        "PYTHONPATH": f"{ROOT / 'demo'}:{ROOT}",
        "HTTP_HOOKS_SQLITE_PATH": str(tmp_path / "missing" / "db.sqlite3"),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.django_db(transaction=True)
def test_changes_made_without_model_signals_are_noticed_after_the_ttl(make_hook, settings):
    """Queryset updates send no signals; the periodic check still sees them."""
    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, "REGISTRY_TTL": 0}
    hook = make_hook()
    Order.objects.create(name="fires")
    Hook.objects.filter(pk=hook.pk).update(enabled=False)
    Order.objects.create(name="disabled")
    Hook.objects.filter(pk=hook.pk).update(enabled=True)
    links = Hook.signals.through.objects.filter(hook=hook)
    pre_delete = create_signal(signal="django.db.models.signals.pre_delete")
    links.update(signal=pre_delete)
    Order.objects.create(name="listening to pre_delete now")
    assert list(Callback.objects.values_list("event_type", flat=True)) == ["created"]


@pytest.mark.django_db
def test_an_uncommitted_hook_never_reaches_other_threads(make_hook, settings, client):
    """A refresh run inside the transaction that made a hook (a test client's
    request does that) must not publish the hook before it is committed."""
    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, "REGISTRY_TTL": 3600}
    registry.reload()
    make_hook()
    registry._next_check = 0.0  # the TTL has run out
    client.get("/api/")  # a request starts: the registry refreshes, as it is due
    seen = []

    def other_thread():
        try:
            seen.append([model for _, model in registry.table()])
        finally:
            if not connection.allow_thread_sharing:  # SQLite's test database is shared
                connection.close()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert Order not in seen[0]
    Order.objects.create(name="mine")  # this thread still sees its own hook
    assert Callback.objects.count() == 1


# --- hooks that cannot be loaded ---------------------------------------------------


def _link_a_signal_that_does_not_import(hook) -> None:
    """As an older version or a deleted module leaves it: no model signal is sent."""
    gone = Signal.objects.create(signal="shop.signals.gone")
    Hook.signals.through.objects.create(hook=hook, signal=gone)


def _point_at_a_model_that_is_gone(hook) -> None:
    gone = ContentType.objects.create(app_label="gone", model="gone")
    Hook.objects.filter(pk=hook.pk).update(model=gone, update_datetime=timezone.now())


@pytest.mark.parametrize(
    ("breakage", "error", "words"),
    [
        (_link_a_signal_that_does_not_import, InvalidSignalError, "shop.signals.gone"),
        (_point_at_a_model_that_is_gone, InvalidModelError, "its model is missing"),
    ],
    ids=["signal-gone", "model-gone"],
)
@pytest.mark.parametrize("raise_exceptions", [False, True], ids=["default", "raise"])
@pytest.mark.django_db(transaction=True)
def test_a_hook_that_cannot_be_loaded_never_breaks_a_save(
    make_hook, settings, caplog, breakage, error, words, raise_exceptions
):
    """Left out and logged; with RAISE_EXCEPTIONS also raised where hooks are loaded
    on purpose (a change of that hook, ``reload()``), as the old package raised while
    loading hooks, but never from the signal of a user's save, nor from the change
    of another hook."""
    settings.DJANGO_HTTP_HOOKS_RAISE_EXCEPTIONS = raise_exceptions
    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, "REGISTRY_TTL": 0}
    working, broken = make_hook(name="working"), make_hook(name="broken", model="shop.customer")
    breakage(broken)
    Order.objects.create(name="the registry notices at this save")
    assert list(Callback.objects.values_list("hook_id", flat=True)) == [working.pk]
    assert words in caplog.text
    if raise_exceptions:
        with pytest.raises(error, match=words):
            registry.reload()
        with pytest.raises(error, match=words), transaction.atomic():
            stored = Hook.objects.get(pk=broken.pk)
            stored.name = "renamed"
            stored.save(update_fields=["name"])
        assert Hook.objects.get(pk=broken.pk).name == "broken"  # the change rolled back
    else:
        registry.reload()
    update_hook(working, name="renamed")
    assert Hook.objects.get(pk=working.pk).name == "renamed"
    Order.objects.create(name="still fires")
    assert Callback.objects.filter(hook_id=working.pk).count() == 2


@pytest.mark.django_db(transaction=True)
def test_with_raise_exceptions_hooks_that_cannot_be_loaded_can_be_deleted(make_hook, settings):
    """Two broken hooks (rows of an older version): deleting or disabling either, or
    adding a new hook, is not refused for the other one's problem. Each delete once
    raised the other's error, and neither could ever go."""
    settings.DJANGO_HTTP_HOOKS_RAISE_EXCEPTIONS = True
    model_gone, signal_gone = make_hook(), make_hook(model="shop.customer")
    _point_at_a_model_that_is_gone(model_gone)
    _link_a_signal_that_does_not_import(signal_gone)
    with pytest.raises(InvalidModelError):
        registry.reload()
    new = make_hook(name="new")
    set_hook_enabled(Hook.objects.get(pk=signal_gone.pk), False)
    delete_hook(Hook.objects.get(pk=model_gone.pk))
    delete_hook(Hook.objects.get(pk=signal_gone.pk))
    assert list(Hook.objects.values_list("pk", flat=True)) == [new.pk]
    registry.reload()  # nothing left that cannot load
    Order.objects.create(name="fires")
    assert list(Callback.objects.values_list("hook_id", flat=True)) == [new.pk]


@pytest.mark.parametrize("atomic", [False, True], ids=["autocommit", "atomic"])
@pytest.mark.django_db(transaction=True)
def test_clearing_a_signals_hooks_is_not_refused_for_another_hook(make_hook, settings, atomic):
    """From the signal's side Django's post_clear names no hook: the ones linked before
    the clear are the hooks it touched, not every hook."""
    settings.DJANGO_HTTP_HOOKS_RAISE_EXCEPTIONS = True
    good = make_hook(name="good", signals=["django.db.models.signals.post_delete"])
    broken = make_hook(name="broken", model="shop.customer")
    _point_at_a_model_that_is_gone(broken)
    with pytest.raises(InvalidModelError):
        registry.reload()
    post_delete = Signal.objects.get(signal="django.db.models.signals.post_delete")
    with transaction.atomic() if atomic else nullcontext():
        post_delete.hooks.clear()
    assert not good.signals.exists()
    post_save = Signal.objects.get(signal="django.db.models.signals.post_save")
    with pytest.raises(InvalidModelError):  # the broken hook's own links: refused
        post_save.hooks.clear()
    assert broken.signals.exists()
