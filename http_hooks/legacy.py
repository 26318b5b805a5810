"""Importing the hooks of infi.django_http_hooks (app label ``hooks``) from its tables.

The old tables are read with plain SQL, so the old app need not be importable any
more, only its tables present. Each old hook becomes a hook through
``services.create_hook``, validated as any other, in a transaction of its own: a
hook that is refused is reported with the reason and the others still go in.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import DEFAULT_DB_ALIAS, connections, router, transaction

from .exceptions import HttpHooksError, InvalidFilterError, InvalidHookError, InvalidModelError
from .models import Callback, CallbackStatus, ContentTypeChoice, Hook, HttpMethod
from .network import check_target_url
from .outbox import record_copied_requests
from .services import create_hook
from .validators import MAX_URL_LENGTH, resolve_model, validate_hook

# The old app, whose label ``hooks`` prefixes its tables.
LEGACY_APP = "infi.django_http_hooks.hooks"
HOOK_TABLE = "hooks_hook"
SIGNAL_TABLE = "hooks_signal"
HOOK_SIGNALS_TABLE = "hooks_hook_signals"
CALLBACK_TABLE = "hooks_callback"

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
    waiting callbacks copied), ``SKIPPED`` (already imported as ``hook_id``) or
    ``REFUSED`` for ``reason``."""

    legacy: LegacyHook
    outcome: str
    hook_id: int | None = None
    reason: str = ""
    callbacks: int = 0


@dataclass
class LegacyImport:
    outcomes: list[LegacyOutcome] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)

    @property
    def callbacks(self) -> int:
        return sum(o.callbacks for o in self.outcomes)


def legacy_tables_exist(using: str = DEFAULT_DB_ALIAS) -> bool:
    return HOOK_TABLE in connections[using].introspection.table_names()


def import_legacy_hooks(
    *, using: str = DEFAULT_DB_ALIAS, dry_run: bool = False, waiting_callbacks: bool = False
) -> LegacyImport:
    """Import every hook of the old tables on database ``using``, in id order.

    A hook identical to one already stored (``_twin``) is skipped, so a second run
    imports nothing new. ``waiting_callbacks`` copies the ``waiting`` callbacks of the
    hooks imported in this run as new waiting callbacks, due at once; the old
    ``sent`` and ``error`` ones are history and stay behind. ``dry_run`` does and
    reports it all, then rolls it back. ``InvalidFilterError`` (field ``database``)
    when ``using`` has no ``hooks_hook`` table; nothing is changed then.
    """
    if using not in connections:
        raise InvalidFilterError(f"no database {using!r} in DATABASES", field="database")
    if not legacy_tables_exist(using):
        raise InvalidFilterError(
            f"no table {HOOK_TABLE} in database {using!r}: nothing to import", field="database"
        )
    report = LegacyImport()
    write_db = router.db_for_write(Hook)
    with transaction.atomic(using=write_db) if dry_run else nullcontext():
        for legacy in read_legacy_hooks(using):
            report.outcomes.append(
                _import_hook(legacy, using=using, write_db=write_db, callbacks=waiting_callbacks)
            )
        if dry_run:
            transaction.set_rollback(True, using=write_db)
    return report


def read_legacy_hooks(using: str) -> list[LegacyHook]:
    """The old hooks by id, with their signals: two queries."""
    qn = connections[using].ops.quote_name
    columns = [
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
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(map(qn, columns))} FROM {qn(HOOK_TABLE)} ORDER BY {qn('id')}"
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
    """One old hook in a transaction (a savepoint in a dry run) of its own."""
    try:
        with transaction.atomic(using=write_db):
            fields = _hook_fields(legacy)
            twin = _twin(validate_hook(fields, owner=""), write_db)
            if twin is not None:
                return LegacyOutcome(legacy, SKIPPED, hook_id=twin.pk)
            hook = create_hook(**fields, enabled=legacy.enabled, secret="")
            copied = _copy_waiting_callbacks(legacy, hook, using=using) if callbacks else 0
    except HttpHooksError as exc:
        return LegacyOutcome(legacy, REFUSED, reason=exc.message)
    return LegacyOutcome(legacy, IMPORTED, hook_id=hook.pk, callbacks=copied)


def _hook_fields(legacy: LegacyHook) -> dict[str, Any]:
    try:
        content_type = ContentType.objects.get_for_id(legacy.model_id)
    except ContentType.DoesNotExist:
        raise InvalidModelError(
            f"invalid model: no content type with id {legacy.model_id}"
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


def _twin(cleaned: dict[str, Any], using: str) -> Hook | None:
    """A stored project hook (no owner) with every field the old hook has, as validated."""
    candidates = Hook.objects.using(using).filter(
        owner="",
        model=cleaned["model"],
        name=cleaned["name"],
        target_url=cleaned["target_url"],
        http_method=cleaned["http_method"],
        content_type=cleaned["content_type"],
        payload_template=cleaned["payload_template"],
        serializer_class=cleaned["serializer_class"],
    )
    signals = set(cleaned["signals"])
    for hook in candidates.prefetch_related("signals").order_by("pk"):
        if (
            hook.headers == cleaned["headers"]
            and not hook.event_types
            and {signal.signal for signal in hook.signals.all()} == signals
        ):
            return hook
    return None


def _copy_waiting_callbacks(legacy: LegacyHook, hook: Hook, *, using: str) -> int:
    """Copy the old hook's waiting callbacks to ``hook``: each request as the old one
    rendered it (its target URL, method, payload and content type), checked as a hook's
    fields are; the headers are the hook's, read when it goes out."""
    qn = connections[using].ops.quote_name
    columns = ["id", "target_url", "http_method", "payload", "content_type"]
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(map(qn, columns))} FROM {qn(CALLBACK_TABLE)} "
            f"WHERE {qn('hook_id')} = %s AND {qn('status')} = %s ORDER BY {qn('id')}",
            [legacy.id, CallbackStatus.WAITING.value],
        )
        rows = cursor.fetchall()
    requests = [_checked_request(hook, *row) for row in rows]
    return len(record_copied_requests(hook, requests, using=router.db_for_write(Callback)))


def _checked_request(
    hook: Hook,
    callback_id: int,
    target_url: str | None,
    http_method: str | None,
    payload: str | None,
    content_type: str | None,
) -> tuple[str, str, str, str]:
    try:
        target_url = target_url or hook.target_url
        if len(target_url) > MAX_URL_LENGTH:
            raise InvalidHookError(f"the target URL is longer than {MAX_URL_LENGTH} characters")
        check_target_url(target_url)
        method = (http_method or hook.http_method).upper()
        if method not in HttpMethod.values:
            raise InvalidHookError(f"invalid HTTP method {http_method!r}")
        content_type = content_type or ""
        if content_type not in ContentTypeChoice.values:
            raise InvalidHookError(f"invalid content type {content_type!r}")
    except HttpHooksError as exc:
        raise type(exc)(f"waiting callback {callback_id}: {exc.message}", field=exc.field) from exc
    return target_url, method, payload or "", content_type


def unimported_legacy_hooks(using: str) -> list[int]:
    """Ids of the old hooks on ``using`` that no project hook matches by model, name,
    target URL and method (a cheap likeness, for the system check; the import compares
    every field): two queries."""
    qn = connections[using].ops.quote_name
    columns = ["id", "model_id", "name", "target_url", "http_method"]
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(map(qn, columns))} FROM {qn(HOOK_TABLE)} ORDER BY {qn('id')}"
        )
        rows = cursor.fetchall()
    if not rows:
        return []
    known = set(
        Hook.objects.using(using)
        .filter(owner="", model_id__in={row[1] for row in rows})
        .values_list("model_id", "name", "target_url", "http_method")
    )
    return [
        hook_id
        for hook_id, model_id, name, target_url, method in rows
        if (model_id, name or "", target_url, (method or "").upper()) not in known
    ]
