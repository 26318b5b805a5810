"""Importing the hooks of infi.django_http_hooks (app label ``hooks``) from its tables.

The old tables are read with plain SQL, so the old app need not be importable any
more, only its tables present. Each old hook becomes a hook through
``services.create_hook``, validated as any other, in a transaction of its own: a
hook that is refused is reported with the reason and the others still go in.
Which old row became which hook is recorded (``models.LegacyImport``): a second
run, or two at once, import nothing twice.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    IntegrityError,
    connections,
    router,
    transaction,
)

from .exceptions import HttpHooksError, InvalidFilterError, InvalidHookError, InvalidModelError
from .imports import shown
from .models import Callback, CallbackStatus, ContentTypeChoice, Hook, HttpMethod, LegacyImport
from .outbox import record_copied_requests
from .services import check_flag, create_hook
from .text import first_line, storable_text
from .validators import resolve_model

# The old app, whose label ``hooks`` prefixes its tables.
LEGACY_APP = "infi.django_http_hooks.hooks"
HOOK_TABLE = "hooks_hook"
SIGNAL_TABLE = "hooks_signal"
HOOK_SIGNALS_TABLE = "hooks_hook_signals"
CALLBACK_TABLE = "hooks_callback"
HOOK_COLUMNS = [
    "id",
    "name",
    "model_id",
    "enabled",
    "target_url",
    "http_method",
    "headers",
    "payload_template",
    "serializer_class",
    "content_type",
]
# The columns each old table must have, as its migrations made them.
LEGACY_COLUMNS = {
    HOOK_TABLE: set(HOOK_COLUMNS),
    SIGNAL_TABLE: {"id", "signal"},
    HOOK_SIGNALS_TABLE: {"hook_id", "signal_id"},
    CALLBACK_TABLE: {"id", "hook_id", "status", "target_url", "http_method", "payload"},
}

IMPORTED, SKIPPED, REFUSED = "imported", "skipped", "refused"


@dataclass(frozen=True)
class LegacyHook:
    """A row of ``hooks_hook`` with the paths of its signals."""

    id: int
    name: str | None
    model_id: int
    enabled: bool
    target_url: str
    http_method: str
    headers: str | None
    payload_template: str | None
    serializer_class: str | None
    content_type: str | None
    signals: tuple[str, ...] = ()


@dataclass(frozen=True)
class LegacyOutcome:
    """What became of one old hook: ``IMPORTED`` as ``hook_id`` (with ``callbacks``
    waiting callbacks copied), ``SKIPPED`` (imported before, as ``hook_id``: None if
    that hook was deleted since) or ``REFUSED`` for ``reason``."""

    legacy: LegacyHook
    outcome: str
    hook_id: int | None = None
    reason: str = ""
    callbacks: int = 0


@dataclass
class ImportReport:
    outcomes: list[LegacyOutcome] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)

    @property
    def callbacks(self) -> int:
        return sum(o.callbacks for o in self.outcomes)


def legacy_tables_problem(using: str = DEFAULT_DB_ALIAS) -> str | None:
    """Why the tables of database ``using`` are not the old package's to import (no
    ``hooks_hook`` table, another app's, columns missing); None when they are."""
    other = [c.name for c in apps.get_app_configs() if c.label == "hooks" and c.name != LEGACY_APP]
    if other:
        return f"the app labelled hooks is {other[0]}, not infi.django_http_hooks"
    connection = connections[using]
    tables = set(connection.introspection.table_names())
    if HOOK_TABLE not in tables:
        return f"no table {HOOK_TABLE} in database {using!r}: nothing to import"
    with connection.cursor() as cursor:
        for table, columns in LEGACY_COLUMNS.items():
            if table not in tables:
                return f"no table {table} in database {using!r}: not infi.django_http_hooks'"
            found = {c.name for c in connection.introspection.get_table_description(cursor, table)}
            missing = sorted(columns - found)
            if missing:
                return f"table {table} has no column {', '.join(missing)}: not the old package's"
    return None


def import_legacy_hooks(
    *, using: str = DEFAULT_DB_ALIAS, dry_run: bool = False, waiting_callbacks: bool = False
) -> ImportReport:
    """Import every hook of the old tables on database ``using``, in id order.

    An old hook imported before (``LegacyImport``) is skipped, whatever became of its
    hook since. ``waiting_callbacks`` copies the ``waiting`` callbacks of the hooks
    imported in this run as new waiting callbacks, due at once; the old ``sent`` and
    ``error`` ones are history and stay behind. ``dry_run`` does and reports it all,
    then rolls it back. ``InvalidFilterError`` (field ``database``) when ``using``
    holds no tables of the old package; nothing is changed then.
    """
    check_flag(dry_run, "dry_run")
    check_flag(waiting_callbacks, "waiting_callbacks")
    if not isinstance(using, str) or using not in connections:
        raise InvalidFilterError(f"no database {shown(using)} in DATABASES", field="database")
    problem = legacy_tables_problem(using)
    if problem is not None:
        raise InvalidFilterError(problem, field="database")
    try:
        old_hooks = read_legacy_hooks(using)
    except DatabaseError as exc:  # text that is no UTF-8, in SQLite
        raise InvalidFilterError(
            f"the old tables cannot be read: {first_line(exc)}"[:500], field="database"
        ) from exc
    report = ImportReport()
    write_db = router.db_for_write(Hook)
    with transaction.atomic(using=write_db) if dry_run else nullcontext():
        for legacy in old_hooks:
            report.outcomes.append(
                _import_hook(legacy, using=using, write_db=write_db, callbacks=waiting_callbacks)
            )
        if dry_run:
            transaction.set_rollback(True, using=write_db)
    return report


def read_legacy_hooks(using: str) -> list[LegacyHook]:
    """The old hooks by id, with their signals: two queries."""
    qn = connections[using].ops.quote_name
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(map(qn, HOOK_COLUMNS))} FROM {qn(HOOK_TABLE)} ORDER BY {qn('id')}"
        )
        rows = cursor.fetchall()
        cursor.execute(
            f"SELECT l.{qn('hook_id')}, s.{qn('signal')} FROM {qn(HOOK_SIGNALS_TABLE)} l "
            f"JOIN {qn(SIGNAL_TABLE)} s ON s.{qn('id')} = l.{qn('signal_id')} "
            f"ORDER BY l.{qn('hook_id')}, s.{qn('signal')}"
        )
        signals: dict[int, list[str]] = {}
        for hook_id, path in cursor.fetchall():
            signals.setdefault(hook_id, []).append(path)
    return [
        LegacyHook(*row[:3], bool(row[3]), *row[4:], signals=tuple(signals.get(row[0], ())))
        for row in rows
    ]


def _import_hook(
    legacy: LegacyHook, *, using: str, write_db: str, callbacks: bool
) -> LegacyOutcome:
    """One old hook in a transaction (a savepoint in a dry run) of its own. The record
    of the import is written first: a run importing the same row at the same time
    waits for it there, then finds it imported."""
    try:
        with transaction.atomic(using=write_db):
            imports = LegacyImport.objects.using(write_db)
            earlier = imports.filter(source=using, legacy_id=legacy.id).first()
            if earlier is not None:
                return LegacyOutcome(legacy, SKIPPED, hook_id=earlier.hook_id)
            record = imports.create(source=using, legacy_id=legacy.id)
            hook = create_hook(**_hook_fields(legacy, using), enabled=legacy.enabled, secret="")
            record.hook = hook
            record.save(update_fields=["hook"])
            copied = _copy_waiting_callbacks(legacy, hook, using=using) if callbacks else 0
    except IntegrityError:
        earlier = LegacyImport.objects.using(write_db).filter(source=using, legacy_id=legacy.id)
        return LegacyOutcome(
            legacy, SKIPPED, hook_id=earlier.values_list("hook", flat=True).first()
        )
    except HttpHooksError as exc:
        return LegacyOutcome(legacy, REFUSED, reason=exc.message)
    return LegacyOutcome(legacy, IMPORTED, hook_id=hook.pk, callbacks=copied)


def _hook_fields(legacy: LegacyHook, using: str) -> dict[str, Any]:
    """The arguments of ``create_hook`` for an old hook; its model is read by its natural
    key from the old database's own content types (ids differ between databases)."""
    qn = connections[using].ops.quote_name
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT {qn('app_label')}, {qn('model')} FROM {qn(ContentType._meta.db_table)} "
            f"WHERE {qn('id')} = %s",
            [legacy.model_id],
        )
        natural_key = cursor.fetchone()
    try:
        if natural_key is None:
            raise ContentType.DoesNotExist
        content_type = ContentType.objects.db_manager(
            router.db_for_read(ContentType)
        ).get_by_natural_key(*natural_key)
    except ContentType.DoesNotExist:
        raise InvalidModelError(
            f"invalid model: no content type with id {legacy.model_id}"
            + (f" ({'.'.join(natural_key)})" if natural_key else "")
        ) from None
    return {
        "signals": list(legacy.signals),
        "model": resolve_model(content_type),
        "name": legacy.name or "",
        "target_url": legacy.target_url,
        "http_method": legacy.http_method,
        "headers": legacy.headers,
        "content_type": legacy.content_type or "",
        "payload_template": legacy.payload_template or "",
        "serializer_class": legacy.serializer_class or "",
    }


def _copy_waiting_callbacks(legacy: LegacyHook, hook: Hook, *, using: str) -> int:
    """Copy the old hook's waiting callbacks to ``hook``: each request's method, payload
    and content type as the old package rendered them, checked as a hook's are. The URL,
    headers and secret are the hook's, read when it goes out, as for any callback: the
    callback records the hook's URL (the old one's is history, never sent to)."""
    qn = connections[using].ops.quote_name
    columns = ["id", "http_method", "payload", "content_type"]
    try:
        with connections[using].cursor() as cursor:
            cursor.execute(
                f"SELECT {', '.join(map(qn, columns))} FROM {qn(CALLBACK_TABLE)} "
                f"WHERE {qn('hook_id')} = %s AND {qn('status')} = %s ORDER BY {qn('id')}",
                [legacy.id, CallbackStatus.WAITING.value],
            )
            rows = cursor.fetchall()
    except DatabaseError as exc:
        raise InvalidHookError(f"its waiting callbacks cannot be read: {first_line(exc)}") from exc
    requests = [_checked_request(hook, *row) for row in rows]
    return len(record_copied_requests(hook, requests, using=router.db_for_write(Callback)))


def _checked_request(
    hook: Hook,
    callback_id: int,
    http_method: str | None,
    payload: str | None,
    content_type: str | None,
) -> tuple[str, str, str]:
    if payload is not None and not (isinstance(payload, str) and storable_text(payload)):
        # A BLOB (SQLite keeps what it is given) was copied as bytes, and every send that
        # claimed the callback failed on it; a NUL was PostgreSQL's DataError.
        raise InvalidHookError(
            f"waiting callback {callback_id}: its payload is not text a database can "
            "store (bytes, a NUL character or a lone surrogate)"
        )
    method = (http_method or hook.http_method).upper()
    if method not in HttpMethod.values:
        raise InvalidHookError(
            f"waiting callback {callback_id}: invalid HTTP method {http_method!r}"
        )
    content_type = content_type or ""
    if content_type not in ContentTypeChoice.values:
        raise InvalidHookError(
            f"waiting callback {callback_id}: invalid content type {content_type!r}"
        )
    return method, payload or "", content_type


def unimported_legacy_hooks(using: str) -> list[int]:
    """Ids of the old hooks on ``using`` that were not imported yet: two queries."""
    qn = connections[using].ops.quote_name
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT {qn('id')} FROM {qn(HOOK_TABLE)} ORDER BY {qn('id')}")
        ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return []
    imported = set(
        LegacyImport.objects.using(router.db_for_read(LegacyImport))
        .filter(source=using)
        .values_list("legacy_id", flat=True)
    )
    return [pk for pk in ids if pk not in imported]
