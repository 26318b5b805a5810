"""The live map from (signal, model) to the hooks that fire for it.

Matching a signal to its hooks is one dictionary lookup. The map is loaded
lazily on first use (never at import or in ``AppConfig.ready()``), rebuilt at
once in the process that changes a hook or signal, and in every other process
within ``REGISTRY_TTL`` seconds: a cheap fingerprint query (row counts and
latest update times) runs at most once per TTL and the map is reloaded only
when the fingerprint moved, so a steady-state save costs no query.

Changes made inside a transaction are visible at once to the thread that made
them (its own uncommitted view), and to everybody else only after commit: a
rolled-back hook never fires anywhere.

A hook that cannot be loaded (its signal does not import, its model is gone) is
left out and logged. With ``DJANGO_HTTP_HOOKS_RAISE_EXCEPTIONS`` the error is
also raised, as infi.django_http_hooks raised it, where hooks are loaded on
purpose: after a hook change and in ``reload()``. Never at signal time or when
a request starts: a hook's problem must not break a user's save or request.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.signals import request_started
from django.db import DatabaseError, connections, router, transaction
from django.db.models import signals as model_signals
from django.dispatch import Signal as DjangoSignal

from .changes import tracker
from .context import hooks_disabled
from .events import EMPTY_INDEX, EventIndex
from .exceptions import HttpHooksError, InvalidHookError, InvalidModelError, InvalidSignalError
from .outbox import record_event
from .routing import compile_rule, select_hooks, watched_by_model
from .settings import hooks_settings

logger = logging.getLogger(__name__)


class Table(dict[tuple[str, type], tuple[Any, ...]]):
    """The map from (signal path, model) to hooks; ``events`` routes explicit events."""

    events: EventIndex = EMPTY_INDEX


WRITE_SIGNALS: dict[str, DjangoSignal] = {
    "django.db.models.signals.pre_save": model_signals.pre_save,
    "django.db.models.signals.post_save": model_signals.post_save,
    "django.db.models.signals.pre_delete": model_signals.pre_delete,
    "django.db.models.signals.post_delete": model_signals.post_delete,
    "django.db.models.signals.m2m_changed": model_signals.m2m_changed,
}
M2M_CHANGED = "django.db.models.signals.m2m_changed"
POST_SAVE = "django.db.models.signals.post_save"


class HookRegistry:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._local = threading.local()
        self._table: Table = Table()
        self._fingerprint: tuple | None = None
        self._next_check = 0.0
        self._connected: dict[tuple[str, type], DjangoSignal] = {}
        self._started = False

    # --- wiring -------------------------------------------------------------

    def start(self) -> None:
        """Connect the receivers; called from ``AppConfig.ready()``, touches no database."""
        if self._started or hooks_settings.SHUT_DOWN:
            return
        self._started = True
        for path, signal in WRITE_SIGNALS.items():
            signal.connect(self._receiver(path), weak=False, dispatch_uid=f"http_hooks:{path}")
        request_started.connect(self._on_request, weak=False, dispatch_uid="http_hooks:request")
        # migrate and flush (also between tests) change tables without model signals.
        model_signals.post_migrate.connect(
            self._on_migrate, weak=False, dispatch_uid="http_hooks:migrate"
        )
        self._watch_definitions()

    def _receiver(self, path: str) -> Callable[..., None]:
        def receiver(sender: Any, **kwargs: Any) -> None:
            self.dispatch(path, sender, kwargs)

        return receiver

    def _on_request(self, **kwargs: Any) -> None:
        self._refresh_if_due()

    def _on_migrate(self, **kwargs: Any) -> None:
        self.invalidate()

    def invalidate(self) -> None:
        """Forget what is loaded; the next lookup reads the database again."""
        with self._lock:
            self._fingerprint = None
            self._next_check = 0.0
            self._local.table = None

    def _watch_definitions(self) -> None:
        from .models import Hook, Signal

        for model in (Hook, Signal):
            model_signals.post_save.connect(
                self._on_definition_saved, sender=model, weak=False, dispatch_uid=f"hh:{model}"
            )
            model_signals.post_delete.connect(
                self._on_definition_saved, sender=model, weak=False, dispatch_uid=f"hh-d:{model}"
            )
        model_signals.m2m_changed.connect(
            self._on_definition_m2m, sender=Hook.signals.through, weak=False, dispatch_uid="hh:m2m"
        )

    def _on_definition_saved(self, sender: Any, instance: Any, **kwargs: Any) -> None:
        self.hooks_changed(using=kwargs.get("using") or instance._state.db or "default")

    def _on_definition_m2m(self, sender: Any, action: str, using: str, **kwargs: Any) -> None:
        if action.startswith("post_"):
            self.hooks_changed(using=using)

    # --- lookups ------------------------------------------------------------

    def dispatch(self, path: str, sender: Any, kwargs: dict[str, Any]) -> None:
        """Record a callback for every hook on ``(path, sender)`` that fires (``routing``).

        After a save, the copy of the fields that hooks watch for changes is
        refreshed, once the post_save hooks were tested against it (``changes``).
        """
        self._record(path, sender, kwargs)
        if path == POST_SAVE:
            tracker.saved(sender, kwargs["instance"], kwargs.get("update_fields"))

    def _record(self, path: str, sender: Any, kwargs: dict[str, Any]) -> None:
        if hooks_disabled() or hooks_settings.SHUT_DOWN:
            return
        table = self.table()
        hooks = table.get((path, sender), ())
        if path == M2M_CHANGED:
            instance_model = type(kwargs.get("instance"))
            if instance_model is not sender:
                hooks = hooks + table.get((path, instance_model), ())
        if hooks:
            chosen = select_hooks(hooks, path, kwargs)
            if chosen:
                record_event(chosen, path, {**kwargs, "sender": sender})

    def event_hooks(self, event_type: str, owner: str = "") -> list[Any]:
        """The enabled hooks that take an explicit event ``event_type`` sent for
        ``owner`` (``events.EventIndex``), as this thread should see them now."""
        return self.table().events.hooks_for(event_type, owner)

    def table(self) -> Table:
        """The map as this thread should see it now."""
        if getattr(self._local, "table", None) is not None:
            local = self._local_table()
            if local is not None:
                return local
        self._refresh_if_due()
        return self._table

    def _local_table(self) -> Table | None:
        """This thread's uncommitted view, while its transaction is open.

        The view lives as long as the publish-after-commit callback registered
        with it is still pending: Django drops that callback when the
        transaction (or the savepoint it was registered in) rolls back, and
        runs it on commit. If only inner atomic blocks changed since the view
        was built, a savepoint was released or rolled back, so the view is
        rebuilt from what the transaction sees now.
        """
        connection = connections[self._local.alias]
        if not self._publish_pending(connection):
            self._local.table = None
            return None
        blocks, recorded = list(connection.atomic_blocks), self._local.blocks
        if len(blocks) != len(recorded) or any(
            a is not b for a, b in zip(blocks, recorded, strict=True)
        ):
            self._set_local(self._local.alias)
        return self._local.table

    def _publish_pending(self, connection) -> bool:
        publish = getattr(self._local, "publish", None)
        return (
            publish is not None
            and connection.in_atomic_block
            and any(entry[1] is publish for entry in connection.run_on_commit)
        )

    def _set_local(self, using: str, *, strict: bool = False) -> None:
        problems: list[HttpHooksError] = []
        table = self._build(using, problems)
        self._connect(table, problems)
        self._local.table, self._local.alias = table, using
        self._local.blocks = list(connections[using].atomic_blocks)
        _report(problems, strict=strict)

    # --- loading ------------------------------------------------------------

    def hooks_changed(self, *, using: str) -> None:
        """A hook or signal changed on ``using``: rebuild now, publish after commit."""
        connection = connections[using]
        if not connection.in_atomic_block:
            try:
                self.reload(using=using)
            finally:
                run_reload_command()
            return
        self._local.alias = using
        if not self._publish_pending(connection):

            def publish() -> None:
                self._local.table = self._local.publish = None
                try:
                    self.reload(using=using)
                finally:
                    run_reload_command()

            self._local.publish = publish
            transaction.on_commit(publish, using=using)
        self._set_local(using, strict=True)

    def reload(self, *, using: str | None = None, strict: bool = True) -> None:
        """Load the map from the database now, in this process.

        Hooks that cannot be loaded are left out and logged; with ``strict``
        and ``DJANGO_HTTP_HOOKS_RAISE_EXCEPTIONS`` the first such error is then
        raised (the map is loaded all the same).
        """
        using = using or router.db_for_read(_hook_model())
        problems: list[HttpHooksError] = []
        with self._lock:
            fingerprint = self._read_fingerprint(using)
            table = self._build(using, problems)
            self._connect(table, problems, prune=True)
            self._table, self._fingerprint = table, fingerprint
            self._next_check = time.monotonic() + float(hooks_settings.REGISTRY_TTL)
        _report(problems, strict=strict)

    def _refresh_if_due(self) -> None:
        if time.monotonic() < self._next_check:
            return
        using = router.db_for_read(_hook_model())
        if self._publish_pending(connections[using]):
            # This thread's transaction changed hooks: what it reads now is not
            # committed, and must not reach other threads before the commit does.
            return
        with self._lock:
            if time.monotonic() < self._next_check:
                return
            try:
                if self._read_fingerprint(using) != self._fingerprint:
                    self.reload(using=using, strict=False)
                else:
                    self._next_check = time.monotonic() + float(hooks_settings.REGISTRY_TTL)
            except DatabaseError:
                # Tables not migrated yet (migrate itself saves models): retry later.
                logger.debug("http_hooks registry not loaded: tables missing", exc_info=True)
                self._next_check = time.monotonic() + float(hooks_settings.REGISTRY_TTL)

    def _read_fingerprint(self, using: str) -> tuple:
        from .models import Hook, Signal

        connection = connections[using]
        q = connection.ops.quote_name
        links = Hook.signals.through._meta
        hook, through, signal = (
            q(Hook._meta.db_table),
            q(links.db_table),
            q(Signal._meta.db_table),
        )
        hook_id, signal_id = (q(links.get_field(name).column) for name in ("hook", "signal"))
        # Counts and latest update times, plus sums that move when signals are
        # swapped on a hook or hooks are switched on or off by a queryset update.
        sql = (
            f"SELECT (SELECT COUNT(*) FROM {hook}), (SELECT MAX(update_datetime) FROM {hook}), "
            f"(SELECT SUM(CASE WHEN enabled THEN id ELSE 0 END) FROM {hook}), "
            f"(SELECT COUNT(*) FROM {through}), (SELECT SUM({signal_id}) FROM {through}), "
            f"(SELECT SUM({hook_id} * {signal_id}) FROM {through}), "
            f"(SELECT COUNT(*) FROM {signal}), (SELECT MAX(update_datetime) FROM {signal})"
        )
        with _savepoint_if_needed(using), connection.cursor() as cursor:
            cursor.execute(sql)
            return tuple(cursor.fetchone())

    def _build(self, using: str, problems: list[HttpHooksError]) -> Table:
        from .models import Hook

        table: dict[tuple[str, type], list[Any]] = {}
        event_hooks = []
        hooks = (
            Hook.objects.using(using)
            .filter(enabled=True)
            .select_related("model")
            .prefetch_related("signals")
            .order_by("id")
        )
        for hook in hooks:
            if hook.event_types:
                event_hooks.append(hook)
            if hook.model_id is None:
                continue
            model = hook.model.model_class()
            if model is None or model._meta.app_label == "http_hooks":
                problems.append(
                    InvalidModelError(
                        f"hook {hook.pk} ignored: its model is missing or http_hooks' own"
                    )
                )
                continue
            try:
                # The registry's own copy of the hook carries its compiled rule.
                hook.rule = compile_rule(hook, model)
            except HttpHooksError as exc:
                problems.append(InvalidHookError(f"hook {hook.pk} ignored: {exc}"))
                continue
            for signal in hook.signals.all():
                table.setdefault((signal.signal, model), []).append(hook)
        built = Table((key, tuple(hooks)) for key, hooks in table.items())
        built.events = EventIndex(event_hooks, problems)
        return built

    def _connect(
        self, table: Table, problems: list[HttpHooksError], *, prune: bool = False
    ) -> None:
        """Connect a receiver for each (signal, model) outside the write signals.

        Those (pre_init, post_init, custom signals) get a receiver bound to
        their model only, so that models without hooks pay nothing; so do the
        models whose fields a hook's ``changed_fields`` watches (``changes``).
        """
        from .validators import import_signal

        tracker.watch(watched_by_model(table), replace=prune)
        with self._lock:
            for path, model in table:
                if path in WRITE_SIGNALS or (path, model) in self._connected:
                    continue
                try:
                    signal = import_signal(path)
                except InvalidSignalError as exc:
                    problems.append(
                        InvalidSignalError(f"signal {path} of a hook cannot be connected: {exc}")
                    )
                    continue
                signal.connect(
                    self._receiver(path),
                    sender=model,
                    weak=False,
                    dispatch_uid=f"http_hooks:{path}:{model._meta.label}",
                )
                self._connected[(path, model)] = signal
            if prune:
                for key in [key for key in self._connected if key not in table]:
                    path, model = key
                    self._connected.pop(key).disconnect(
                        sender=model, dispatch_uid=f"http_hooks:{path}:{model._meta.label}"
                    )


def _hook_model():
    from .models import Hook

    return Hook


def _savepoint_if_needed(using: str):
    if connections[using].in_atomic_block:
        return transaction.atomic(using=using)
    from contextlib import nullcontext

    return nullcontext()


def _report(problems: list[HttpHooksError], *, strict: bool) -> None:
    """Log each hook that could not be loaded; raise the first one if asked to."""
    for problem in problems:
        logger.warning("%s", problem)
    if problems and strict and hooks_settings.RAISE_EXCEPTIONS:
        raise problems[0]


def run_reload_command() -> None:
    """Run the legacy ``DJANGO_HTTP_HOOKS_RELOAD`` command after a hook change."""
    command = hooks_settings.RELOAD
    if not command:
        return
    try:
        subprocess.run(list(command), check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        logger.error("DJANGO_HTTP_HOOKS_RELOAD command %r failed: %s", command, exc)
        if hooks_settings.RAISE_EXCEPTIONS:
            raise


registry = HookRegistry()
