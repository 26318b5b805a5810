"""The live map from (signal, model) to the hooks that fire for it.

Matching a signal to its hooks is one dictionary lookup, and one more for the
owner of the instance when tenants have hooks on the model (``routing.Bucket``).
The map is loaded lazily on first use (never at import or in
``AppConfig.ready()``), brought up to date at once in the process that changes
a hook or signal, and in every other process within ``REGISTRY_TTL`` seconds: a
cheap fingerprint query (row counts, sums and the latest update time) runs at
most once per TTL, so a steady-state save costs no query.

When the fingerprint moved, only the hooks that changed are loaded again
(``_refreshed``): the rows updated since shortly before the last change seen
are read (by ``hook_updated_idx``); if what they show does not account for the
new fingerprint (a deleted hook, a ``QuerySet.update()`` of ``enabled`` that
left ``update_datetime`` alone, a transaction that committed long after it wrote
its row), the narrow state of every hook (id, enabled, update stamp, signal ids)
is compared with what is loaded instead. A change of any other column that
leaves ``update_datetime`` alone (``QuerySet.update(owner=...)``,
``save(update_fields=[...])`` without it) moves nothing and is seen only at the
next full load: the service layer, the API and the admin always stamp it.
Either way only the changed hooks are read in full and compiled, and only
their owners' buckets are rebuilt. The
fingerprint holds a sum of the update times (``STAMP_SQL``) so that a change
that commits out of order still moves it.

Changes made inside a transaction are visible at once to the thread that made
them (its own uncommitted view), and to everybody else only after commit: a
rolled-back hook never fires anywhere.

A hook that cannot be loaded (its signal does not import, its model is gone, it
has an owner on a model without ``OWNER_FIELDS``) is left out and logged. With
``DJANGO_HTTP_HOOKS_RAISE_EXCEPTIONS`` the error is also raised, as
infi.django_http_hooks raised it, where hooks are loaded on purpose: after a
hook change and in ``reload()``. Never at signal time or when a request starts:
a hook's problem must not break a user's save or request.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import subprocess
import threading
import time
from collections.abc import Callable, Collection
from contextlib import nullcontext
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.signals import request_started, setting_changed
from django.db import DatabaseError, connections, router, transaction
from django.db.models import signals as model_signals
from django.db.models.expressions import RawSQL
from django.dispatch import Signal as DjangoSignal
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .changes import tracker
from .context import hooks_disabled
from .delivery.health import HEALTH_FIELDS
from .delivery.rates import BUCKET_FIELDS
from .events import EMPTY_INDEX, EventIndex
from .exceptions import HttpHooksError, InvalidHookError, InvalidModelError, InvalidSignalError
from .outbox import record_event
from .owner_fields import owner_paths
from .routing import Bucket, Route, compile_rule, place, select_hooks, watched_by_model
from .settings import hooks_settings

logger = logging.getLogger(__name__)

Table = dict[Route, Bucket]

WRITE_SIGNALS: dict[str, DjangoSignal] = {
    "django.db.models.signals.pre_save": model_signals.pre_save,
    "django.db.models.signals.post_save": model_signals.post_save,
    "django.db.models.signals.pre_delete": model_signals.pre_delete,
    "django.db.models.signals.post_delete": model_signals.post_delete,
    "django.db.models.signals.m2m_changed": model_signals.m2m_changed,
}
M2M_CHANGED = "django.db.models.signals.m2m_changed"
POST_SAVE = "django.db.models.signals.post_save"

# A hook's update time as a whole number (microseconds since 1970; SQLite's
# julianday is exact to some tens of them), kept below a prime so that the sum
# over a million hooks stays a 64-bit integer. Other databases have no stamp:
# there a moved fingerprint reloads every hook.
STAMP_SQL = {
    "postgresql": "CAST(date_part('epoch', {column}) * 1000000 AS BIGINT)",
    "sqlite": "CAST((julianday({column}) - 2440587.5) * 86400000000.0 AS INTEGER)",
}
STAMP_MODULUS = 2_147_483_647
# What a refresh reads again before the latest update it saw: rows written by
# clocks a little behind, or committed a little after a later one, are found
# there; anything older is found by comparing every hook's stamp.
RECHECK_WINDOW = datetime.timedelta(seconds=10)
# Fields a hook's events never read: not kept in memory for every hook.
NOT_LOADED = (
    "secret",
    "previous_secret",
    "previous_secret_expires_at",
    "rate_limit",
    *BUCKET_FIELDS,
    *(name for name in HEALTH_FIELDS if name != "enabled"),
    "create_datetime",
)


class Version(NamedTuple):
    """What a hook's row was when it was last read: a new one means load it again."""

    enabled: bool
    stamp: int | None
    signals: tuple[int, ...]

    def totals(self, pk: int) -> tuple[int, ...]:
        """This row's part of the fingerprint's sums (``Fingerprint.totals``)."""
        return (
            1,
            pk if self.enabled else 0,
            self.stamp or 0,
            len(self.signals),
            sum(self.signals),
            pk * sum(self.signals),
        )


class Fingerprint(NamedTuple):
    hooks: int
    enabled_ids: int
    stamps: int
    links: int
    link_signals: int
    link_pairs: int
    latest: datetime.datetime | None
    signals: tuple[Any, ...]

    @property
    def totals(self) -> tuple[int, ...]:
        return tuple(self[:6])


NO_TOTALS = (0,) * 6


@dataclasses.dataclass(frozen=True)
class Loaded:
    """One consistent state of the registry; a change makes a new one (other threads
    may be reading the old one)."""

    table: Table
    hooks: dict[int, Any]  # the enabled hooks that loaded, by id
    versions: dict[int, Version]  # every hook row, enabled or not
    totals: tuple[int, ...]  # the sums of ``versions``, as the fingerprint has them
    problems: dict[int, HttpHooksError]  # the hooks left out, by id
    signal_paths: dict[int, str]
    fingerprint: Fingerprint | None
    # Explicit events: the loaded hooks that have ``event_types``, by owner and entry.
    events: EventIndex = EMPTY_INDEX


EMPTY = Loaded(
    table={},
    hooks={},
    versions={},
    totals=NO_TOTALS,
    problems={},
    signal_paths={},
    fingerprint=None,
)


class HookRegistry:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._local = threading.local()
        self._state = EMPTY
        self._next_check = 0.0
        self._connected: dict[Route, DjangoSignal] = {}
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
        # OWNER_FIELDS decides where owned hooks are filed.
        setting_changed.connect(
            self._on_setting_changed, weak=False, dispatch_uid="http_hooks:settings"
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

    def _on_setting_changed(self, *, setting: str, **kwargs: Any) -> None:
        if setting == "HTTP_HOOKS":
            self.invalidate()

    def invalidate(self) -> None:
        """Forget what is loaded; the next lookup reads every hook again."""
        with self._lock:
            self._state = dataclasses.replace(self._state, fingerprint=None)
            self._next_check = 0.0
        # This thread's uncommitted view, if any, is built again at its next lookup.
        self._local.blocks = None

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
        from .models import Hook

        using = kwargs.get("using") or instance._state.db or "default"
        if sender is Hook:
            touched = {instance.pk}
        else:  # a signal: the hooks linked to it (none once it is deleted)
            links = Hook.signals.through.objects.using(using).filter(signal_id=instance.pk)
            touched = set(links.values_list("hook_id", flat=True))
        self.hooks_changed(using=using, touched=touched)

    def _on_definition_m2m(
        self, sender: Any, action: str, using: str, instance: Any, pk_set: Any, **kwargs: Any
    ) -> None:
        from .models import Hook

        if isinstance(instance, Hook):
            touched = {instance.pk}
        elif action == "pre_clear":  # a signal's links go: post_clear does not say whose
            links = Hook.signals.through.objects.using(using).filter(signal_id=instance.pk)
            self._local.cleared = (instance.pk, set(links.values_list("hook_id", flat=True)))
            return
        elif action == "post_clear":
            cleared = getattr(self._local, "cleared", None)
            self._local.cleared = None
            touched = cleared[1] if cleared and cleared[0] == instance.pk else None
        else:  # a signal's hooks added or removed: pk_set holds theirs
            touched = set(pk_set or ())
        if action.startswith("post_"):
            self.hooks_changed(using=using, touched=touched)

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
        if hooks_disabled() or hooks_settings.SHUT_DOWN or _is_own(sender):
            return
        table = self.table()
        instance = kwargs.get("instance")
        bucket = table.get((path, sender))
        hooks = bucket.for_instance(instance) if bucket is not None else ()
        if path == M2M_CHANGED and type(instance) is not sender:
            bucket = table.get((path, type(instance)))
            if bucket is not None:
                hooks = hooks + bucket.for_instance(instance)
        if hooks:
            chosen = select_hooks(hooks, path, kwargs)
            if chosen:
                record_event(chosen, path, {**kwargs, "sender": sender})

    def event_hooks(self, event_type: str, owner: str = "") -> list[Any]:
        """The enabled hooks that take an explicit event ``event_type`` sent for
        ``owner`` (``events.EventIndex``), as this thread should see them now."""
        return self.loaded().events.hooks_for(event_type, owner)

    def table(self) -> Table:
        """The map as this thread should see it now."""
        return self.loaded().table

    def loaded(self) -> Loaded:
        """What this thread should see now: the hooks, and the map built from them."""
        if getattr(self._local, "state", None) is not None:
            local = self._local_state()
            if local is not None:
                return local
        self._refresh_if_due()
        return self._state

    def _local_state(self) -> Loaded | None:
        """This thread's uncommitted view, while its transaction is open.

        The view lives as long as the publish-after-commit callback registered
        with it is still pending: Django drops that callback when the
        transaction (or the savepoint it was registered in) rolls back, and
        runs it on commit. If only inner atomic blocks changed since the view
        was built, a savepoint was released or rolled back, so the view is
        brought up to what the transaction sees now (as after ``invalidate``).
        """
        connection = connections[self._local.alias]
        if not self._publish_pending(connection):
            self._local.state = None
            return None
        blocks, recorded = list(connection.atomic_blocks), self._local.blocks
        if (
            recorded is None
            or len(blocks) != len(recorded)
            or any(a is not b for a, b in zip(blocks, recorded, strict=True))
        ):
            self._set_local(self._local.alias)
        return self._local.state

    def _publish_pending(self, connection) -> bool:
        publish = getattr(self._local, "publish", None)
        return (
            publish is not None
            and connection.in_atomic_block
            and any(entry[1] is publish for entry in connection.run_on_commit)
        )

    def _set_local(
        self, using: str, *, strict: bool = False, touched: set[int] | None = None
    ) -> None:
        problems: list[Problem] = []
        state = self._refreshed(self._state, using)
        problems.extend(_hook_problems(state))
        self._connect(state.table, problems)
        self._local.state, self._local.alias = state, using
        self._local.blocks = list(connections[using].atomic_blocks)
        _report(problems, strict=strict, touched=touched)

    # --- loading ------------------------------------------------------------

    def hooks_changed(self, *, using: str, touched: set[int] | None = None) -> None:
        """A hook or signal changed on ``using``: bring the map up to date now, in
        this thread's view, and publish it after commit.

        With ``DJANGO_HTTP_HOOKS_RAISE_EXCEPTIONS``, what raises is a problem of the
        hooks ``touched`` (the ids of the hooks changed; None: any hook): another
        hook that cannot be loaded must not refuse this change, or two broken hooks
        could never be deleted or disabled (each one's delete raised the other's)."""
        connection = connections[using]
        if not connection.in_atomic_block:
            try:
                self._update(using, strict=True, base=None, touched=touched)
            finally:
                run_reload_command()
            return
        self._local.alias = using
        if not self._publish_pending(connection):

            def publish() -> None:
                self._local.state = self._local.publish = None
                try:
                    # Raised, if at all, in the transaction: not again after its commit.
                    self.refresh(using=using, strict=False)
                finally:
                    run_reload_command()

            self._local.publish = publish
            transaction.on_commit(publish, using=using)
        self._set_local(using, strict=True, touched=touched)

    def reload(self, *, using: str | None = None, strict: bool = True) -> None:
        """Load every hook from the database now, in this process.

        Hooks that cannot be loaded are left out and logged; with ``strict``
        and ``DJANGO_HTTP_HOOKS_RAISE_EXCEPTIONS`` the first such error is then
        raised (the map is loaded all the same).
        """
        self._update(using, strict=strict, base=EMPTY)

    def refresh(self, *, using: str | None = None, strict: bool = True) -> None:
        """Bring the map up to date now, loading only the hooks that changed."""
        self._update(using, strict=strict, base=None)

    def _update(
        self,
        using: str | None,
        *,
        strict: bool,
        base: Loaded | None,
        touched: set[int] | None = None,
    ) -> None:
        using = using or router.db_for_read(_hook_model())
        problems: list[Problem] = []
        with self._lock:
            state = self._refreshed(self._state if base is None else base, using)
            if strict or state is not self._state:
                problems.extend(_hook_problems(state))
            if state is not self._state:
                self._connect(state.table, problems, prune=True)
                self._state = state
            self._next_check = time.monotonic() + float(hooks_settings.REGISTRY_TTL)
        _report(problems, strict=strict, touched=touched)

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
                self._update(using, strict=False, base=None)
            except DatabaseError:
                # Tables not migrated yet (migrate itself saves models): retry later.
                logger.debug("http_hooks registry not loaded: tables missing", exc_info=True)
                self._next_check = time.monotonic() + float(hooks_settings.REGISTRY_TTL)

    def _refreshed(self, state: Loaded, using: str) -> Loaded:
        """``state`` brought up to what ``using`` holds now (``state`` itself if
        nothing moved).

        In a transaction, the reads run in a savepoint: a table missing or not
        migrated yet (``migrate`` itself saves models) fails them without breaking
        the caller's transaction.
        """
        with _savepoint_if_needed(using):
            return self._read_changes(state, using)

    def _read_changes(self, state: Loaded, using: str) -> Loaded:
        fingerprint = _read_fingerprint(using)
        if fingerprint == state.fingerprint:
            return state
        if state.fingerprint is None or connections[using].vendor not in STAMP_SQL:
            return _load(EMPTY, using, fingerprint)
        versions, totals = dict(state.versions), list(state.totals)
        since = state.fingerprint.latest
        changed = _merge(
            versions, totals, _read_versions(using, since=since and since - RECHECK_WINDOW)
        )
        if fingerprint.signals != state.fingerprint.signals:
            # A signal added, renamed or deleted: the hooks linked to the last two.
            paths = _read_signal_paths(using)
            moved = {pk for pk, path in state.signal_paths.items() if paths.get(pk) != path}
            if moved:
                changed |= {pk for pk, v in versions.items() if not moved.isdisjoint(v.signals)}
            state = dataclasses.replace(state, signal_paths=paths)
        if tuple(totals) != fingerprint.totals and fingerprint.hooks != totals[0]:
            # Deleted hooks, most likely: the ids alone tell which.
            changed |= _drop_missing(versions, totals, _read_ids(using))
        if tuple(totals) != fingerprint.totals:
            every = _read_versions(using)
            changed |= _merge(versions, totals, every)
            changed |= _drop_missing(versions, totals, every.keys())
        state = dataclasses.replace(state, versions=versions, totals=tuple(totals))
        return _load(state, using, fingerprint, changed=changed)

    def _connect(self, table: Table, problems: list[Problem], *, prune: bool = False) -> None:
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
                    error = InvalidSignalError(f"signal {path} of a hook cannot connect: {exc}")
                    problems.append((frozenset(hook.pk for hook in table[path, model]), error))
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


def _load(
    state: Loaded, using: str, fingerprint: Fingerprint, *, changed: set[int] | None = None
) -> Loaded:
    """``state`` with the hooks of ``changed`` read again (every hook when None)."""
    from .models import Hook

    if changed is None:
        versions = _read_versions(using)
        totals = list(NO_TOTALS)
        for pk, version in versions.items():
            _shift(totals, pk, None, version)
        signal_paths = _read_signal_paths(using)
        state = Loaded(
            table={},
            hooks={},
            versions=versions,
            totals=tuple(totals),
            problems={},
            signal_paths=signal_paths,
            fingerprint=None,
        )
    rows = Hook.objects.using(using).filter(enabled=True).defer(*NOT_LOADED).order_by("pk")
    if changed is not None:
        wanted = [pk for pk in changed if pk in state.versions and state.versions[pk].enabled]
        rows = rows.filter(pk__in=wanted) if wanted else rows.none()
    left_out = dict(state.problems)
    loaded = []
    for hook in rows:
        left_out.pop(hook.pk, None)
        problem = _prepare(hook, state, using)
        if problem is None:
            loaded.append(hook)
        else:
            left_out[hook.pk] = problem
    gone = changed or set()
    for pk in gone - {hook.pk for hook in loaded}:
        if pk not in state.versions or not state.versions[pk].enabled:
            left_out.pop(pk, None)
    hooks = dict(state.hooks)
    removed = [hooks.pop(pk) for pk in gone if pk in hooks]
    hooks.update((hook.pk, hook) for hook in loaded)
    events = state.events
    if changed is None or any(hook.event_types for hook in (*removed, *loaded)):
        problems: list[HttpHooksError] = []
        events = EventIndex((hook for hook in hooks.values() if hook.event_types), problems)
        for problem in problems:
            logger.warning("http_hooks: %s", problem)
    return dataclasses.replace(
        state,
        table=place(state.table, removed, loaded),
        hooks=hooks,
        problems=left_out,
        fingerprint=fingerprint,
        events=events,
    )


def _prepare(hook: Any, state: Loaded, using: str) -> HttpHooksError | None:
    """Give the registry's copy of ``hook`` its model, compiled rule and routes;
    what keeps it from firing, if anything. A hook without a model (explicit events
    only) has no routes."""
    hook.rule, hook.routes = None, ()
    if hook.model_id is None:
        return None
    try:
        hook.model = ContentType.objects.db_manager(using).get_for_id(hook.model_id)
    except ContentType.DoesNotExist:
        model = None
    else:
        model = hook.model.model_class()
    if model is None or model._meta.app_label == "http_hooks":
        return InvalidModelError(f"hook {hook.pk} ignored: its model is missing or http_hooks' own")
    if hook.owner and model not in owner_paths():
        return InvalidHookError(
            f"hook {hook.pk} ignored: it has an owner, and {model._meta.label} has no entry "
            "in HTTP_HOOKS['OWNER_FIELDS'] to tell whose an instance is"
        )
    try:
        # The registry's own copy of the hook carries its compiled rule.
        hook.rule = compile_rule(hook, model)
    except HttpHooksError as exc:
        return InvalidHookError(f"hook {hook.pk} ignored: {exc}")
    signals = state.versions[hook.pk].signals if hook.pk in state.versions else ()
    hook.routes = tuple(
        (state.signal_paths[signal], model) for signal in signals if signal in state.signal_paths
    )
    return None


def _merge(versions: dict[int, Version], totals: list[int], read: dict[int, Version]) -> set[int]:
    """Put the versions ``read`` into ``versions`` (and their sums into ``totals``);
    the ids whose version is new or differs."""
    changed = set()
    for pk, version in read.items():
        old = versions.get(pk)
        if old == version:
            continue
        changed.add(pk)
        _shift(totals, pk, old, version)
        versions[pk] = version
    return changed


def _drop_missing(
    versions: dict[int, Version], totals: list[int], present: Collection[int]
) -> set[int]:
    """Take the hooks that are not ``present`` out of ``versions``; their ids."""
    missing = versions.keys() - present
    for pk in missing:
        _shift(totals, pk, versions.pop(pk), None)
    return missing


def _read_signal_paths(using: str) -> dict[int, str]:
    from .models import Signal

    return dict(Signal.objects.using(using).values_list("pk", "signal"))


def _read_ids(using: str) -> set[int]:
    from .models import Hook

    return set(Hook.objects.using(using).values_list("pk", flat=True))


def _shift(totals: list[int], pk: int, old: Version | None, new: Version | None) -> None:
    """Move ``totals`` from hook ``pk`` as ``old`` to it as ``new`` (None: no row)."""
    added = new.totals(pk) if new is not None else NO_TOTALS
    removed = old.totals(pk) if old is not None else NO_TOTALS
    for index, (plus, minus) in enumerate(zip(added, removed, strict=True)):
        totals[index] += plus - minus


def _read_versions(using: str, *, since: datetime.datetime | None = None) -> dict[int, Version]:
    """The version of each hook row (those updated at ``since`` or later only)."""
    from .models import Hook

    links = Hook.signals.through.objects.using(using)
    rows = Hook.objects.using(using)
    if since is not None:
        rows = rows.filter(update_datetime__gte=since)
        links = links.filter(hook__update_datetime__gte=since)
    stamp_sql = _stamp_sql(connections[using], "update_datetime") or "NULL"
    signals: dict[int, list[int]] = {}
    for hook_id, signal_id in links.values_list("hook_id", "signal_id"):
        signals.setdefault(hook_id, []).append(signal_id)
    rows = rows.annotate(stamp=RawSQL(stamp_sql, ())).values_list("pk", "enabled", "stamp")
    return {
        pk: Version(bool(enabled), stamp, tuple(sorted(signals.get(pk, ()))))
        for pk, enabled, stamp in rows
    }


def _stamp_sql(connection, column: str) -> str | None:
    template = STAMP_SQL.get(connection.vendor)
    if template is None:
        return None
    value = template.format(column=column)
    return f"({value} - ({value} / {STAMP_MODULUS}) * {STAMP_MODULUS})"


def _read_fingerprint(using: str) -> Fingerprint:
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
    stamp = _stamp_sql(connection, q("update_datetime")) or "0"
    # Counts, sums and the latest update time: what moves when a hook is added,
    # changed (its update time), deleted, switched on or off by a queryset
    # update, or given other signals.
    sql = (
        f"SELECT * FROM (SELECT COUNT(*), SUM(CASE WHEN enabled THEN id ELSE 0 END), "
        f"SUM({stamp}), MAX(update_datetime) FROM {hook}) h, "
        f"(SELECT COUNT(*), SUM({signal_id}), SUM({hook_id} * {signal_id}) FROM {through}) t, "
        f"(SELECT COUNT(*), MAX(update_datetime) FROM {signal}) s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        hooks, enabled, stamps, latest, links_count, signals, pairs, *signal_rows = (
            cursor.fetchone()
        )
    return Fingerprint(
        hooks=hooks,
        enabled_ids=int(enabled or 0),
        stamps=int(stamps or 0),
        links=links_count,
        link_signals=int(signals or 0),
        link_pairs=int(pairs or 0),
        latest=_as_datetime(latest),
        signals=tuple(signal_rows),
    )


def _as_datetime(value: Any) -> datetime.datetime | None:
    """A ``MAX(update_datetime)`` as the ORM would give it (SQLite answers text)."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and settings.USE_TZ and timezone.is_naive(value):
        value = timezone.make_aware(value, datetime.UTC)
    return value


def _is_own(sender: Any) -> bool:
    """Whether ``sender`` is one of http_hooks' models, which no hook may be on: their
    saves must not refresh the map (a hook saved in a transaction is not committed)."""
    meta = getattr(sender, "_meta", None)
    return meta is not None and meta.app_label == "http_hooks"


def _hook_model():
    from .models import Hook

    return Hook


def _savepoint_if_needed(using: str):
    if connections[using].in_atomic_block:
        return transaction.atomic(using=using)
    return nullcontext()


# Why some hooks were left out: their ids, and the error.
Problem = tuple[frozenset[int], HttpHooksError]


def _hook_problems(state: Loaded) -> list[Problem]:
    return [(frozenset({pk}), problem) for pk, problem in state.problems.items()]


def _report(problems: list[Problem], *, strict: bool, touched: set[int] | None = None) -> None:
    """Log each hook that could not be loaded; if asked to, raise the first problem of
    the hooks ``touched`` (None: of any hook)."""
    for _, problem in problems:
        logger.warning("%s", problem)
    if strict and hooks_settings.RAISE_EXCEPTIONS:
        for hooks, problem in problems:
            if touched is None or not hooks.isdisjoint(touched):
                raise problem


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
