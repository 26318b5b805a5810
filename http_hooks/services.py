"""Writes: hooks, signals, resending, monitoring and retention.

Every entry point (Python API, REST API, admin, management commands) calls
these functions. They validate with ``validators`` and raise the errors of
``exceptions``; a failed call changes nothing.
"""

from __future__ import annotations

import base64
import datetime
import secrets as secrets_module
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections, router, transaction
from django.db.models import QuerySet
from django.utils import timezone

from .exceptions import InvalidFilterError, InvalidSignalError
from .models import Callback, CallbackStatus, Hook, Signal
from .selectors import callbacks_updated_since
from .settings import hooks_settings
from .validators import SECRET_PREFIX, resolve_model, validate_hook, validate_secret

HOOK_FIELDS = (
    "name",
    "model",
    "signals",
    "target_url",
    "http_method",
    "headers",
    "content_type",
    "payload_template",
    "serializer_class",
)


# --- signals -------------------------------------------------------------------


def create_signal(*, signal: str) -> Signal:
    """Register a signal by its dotted path; returns the existing row if there is one."""
    (path,) = _clean_signals([signal])
    obj, _ = Signal.objects.get_or_create(signal=path)
    return obj


def _clean_signals(signals: Iterable[Any]) -> list[str]:
    from .validators import validate_signal_paths

    if isinstance(signals, str):
        signals = [signals]
    return validate_signal_paths(signals)


def delete_signal(*, signal: Signal) -> None:
    """Delete a signal no hook listens to; one in use is refused, to leave no hook deaf."""
    hook_ids = sorted(signal.hooks.values_list("pk", flat=True))
    if hook_ids:
        raise InvalidSignalError(
            f"signal {signal.signal} is used by hooks {', '.join(map(str, hook_ids))}: "
            "remove it from them first",
            field="signal",
        )
    signal.delete()


# --- hooks ---------------------------------------------------------------------


def generate_secret() -> str:
    """A new Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets_module.token_bytes(32)).decode()


def create_hook(
    *,
    signals: Iterable[Any],
    model: Any,
    target_url: str,
    http_method: str = "POST",
    content_type: str = "",
    headers: Any = None,
    payload_template: str = "",
    serializer_class: str = "",
    name: str = "",
    enabled: bool = True,
    secret: str | None = None,
) -> Hook:
    """Validate and store a hook; it fires at once, in every process within REGISTRY_TTL."""
    cleaned = validate_hook(
        name=name,
        model=resolve_model(model),
        signals=list(signals) if not isinstance(signals, str) else [signals],
        target_url=target_url,
        http_method=http_method,
        headers=headers,
        content_type=content_type,
        payload_template=payload_template,
        serializer_class=serializer_class,
    )
    if secret:
        validate_secret(secret)
    signal_paths = cleaned.pop("signals")
    with transaction.atomic():
        hook = Hook.objects.create(enabled=bool(enabled), secret=secret or "", **cleaned)
        hook.signals.set(_signal_rows(signal_paths))
    return hook


def update_hook(hook: Hook, **changes: Any) -> Hook:
    """Change some fields of ``hook``; the whole hook is validated again."""
    unknown = set(changes) - set(HOOK_FIELDS) - {"enabled", "secret"}
    if unknown:
        raise TypeError(f"update_hook() got unknown fields: {', '.join(sorted(unknown))}")
    current = {
        "name": hook.name,
        "model": hook.model,
        "signals": [s.signal for s in hook.signals.all()],
        "target_url": hook.target_url,
        "http_method": hook.http_method,
        "headers": hook.headers,
        "content_type": hook.content_type,
        "payload_template": hook.payload_template,
        "serializer_class": hook.serializer_class,
    }
    merged = {**current, **{k: v for k, v in changes.items() if k in HOOK_FIELDS}}
    merged["model"] = resolve_model(merged["model"])
    if isinstance(merged["signals"], str):
        merged["signals"] = [merged["signals"]]
    cleaned = validate_hook(**merged)
    if changes.get("secret"):
        validate_secret(changes["secret"])
    signal_paths = cleaned.pop("signals")
    with transaction.atomic():
        for field, value in cleaned.items():
            setattr(hook, field, value)
        if "enabled" in changes:
            hook.enabled = bool(changes["enabled"])
        if "secret" in changes:
            hook.secret = changes["secret"] or ""
        hook.save()
        hook.signals.set(_signal_rows(signal_paths))
    return hook


def _signal_rows(paths: Sequence[str]) -> list[Signal]:
    existing = {s.signal: s for s in Signal.objects.filter(signal__in=paths)}
    return [existing.get(path) or Signal.objects.create(signal=path) for path in paths]


def set_hook_enabled(hook: Hook, enabled: bool) -> Hook:
    hook.enabled = enabled
    hook.save(update_fields=["enabled", "update_datetime"])
    return hook


def delete_hook(hook: Hook) -> None:
    """Delete a hook and its callbacks."""
    hook.delete()


def rotate_secret(hook: Hook, *, secret: str | None = None) -> str:
    """Give ``hook`` a new secret; the old one keeps signing for ``SECRET_ROTATION_GRACE``."""
    new_secret = validate_secret(secret) if secret else generate_secret()
    hook.previous_secret = hook.secret
    hook.previous_secret_expires_at = (
        timezone.now() + datetime.timedelta(seconds=hooks_settings.SECRET_ROTATION_GRACE)
        if hook.secret
        else None
    )
    hook.secret = new_secret
    hook.save(
        update_fields=["secret", "previous_secret", "previous_secret_expires_at", "update_datetime"]
    )
    return new_secret


# --- callbacks -----------------------------------------------------------------


def resend_callbacks(
    *, ids: Sequence[int] | None = None, queryset: QuerySet[Callback] | None = None
) -> int:
    """Put callbacks back in the queue, due now, with a fresh retry budget.

    Their event ids stay the same, so receivers that drop duplicates still can.
    Returns how many were queued.
    """
    callbacks = queryset if queryset is not None else Callback.objects.all()
    if ids is not None:
        callbacks = callbacks.filter(pk__in=list(ids))
    now = timezone.now()
    with transaction.atomic():
        # Not the ones a sender holds right now: its result would overwrite ours.
        chosen = list(callbacks.exclude(status=CallbackStatus.SENDING).values_list("pk", flat=True))
        count = Callback.objects.filter(pk__in=chosen).update(
            status=CallbackStatus.WAITING,
            next_attempt_at=now,
            attempts=0,
            claimed_until=None,
            claim_token=None,
            status_details="queued again for delivery",
            update_datetime=now,
        )
    if chosen and hooks_settings.DISPATCH == "celery":
        from .tasks import enqueue_callbacks

        transaction.on_commit(lambda: enqueue_callbacks(chosen))
    return count


# Bounds of the time arguments: far beyond any real use, well inside what datetime
# arithmetic and the databases accept (100 years).
MAX_DAYS = 100 * 365
MAX_MINUTES = MAX_DAYS * 24 * 60


def _whole_number(value: Any, field: str, *, minimum: int, maximum: int | None = None) -> int:
    """``value`` if it is an int within the bounds; ``InvalidFilterError`` otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise InvalidFilterError(f"{field} must be a whole number {bounds}", field=field)
    return value


@dataclass(frozen=True)
class MonitorResult:
    status: str
    count: int
    callbacks_limit: int
    minutes_ago: int | None
    exceeded: bool


MONITORED_STATUSES = (CallbackStatus.ERROR, CallbackStatus.WAITING)


def monitor_callbacks(
    *, status: str, callbacks_limit: int = 10, minutes_ago: int | None = None
) -> MonitorResult:
    """Count callbacks with ``status`` updated in the last ``minutes_ago`` minutes
    (the whole table when None); ``exceeded`` when the count reaches the limit."""
    if status not in MONITORED_STATUSES:
        raise InvalidFilterError(
            f"invalid status {status!r}: use one of {', '.join(MONITORED_STATUSES)}",
            field="status",
        )
    _whole_number(callbacks_limit, "callbacks_limit", minimum=1)
    if minutes_ago is not None:
        _whole_number(minutes_ago, "minutes_ago", minimum=0, maximum=MAX_MINUTES)
    since = (
        None if minutes_ago is None else timezone.now() - datetime.timedelta(minutes=minutes_ago)
    )
    count = callbacks_updated_since(status=status, since=since).count()
    return MonitorResult(
        status=status,
        count=count,
        callbacks_limit=callbacks_limit,
        minutes_ago=minutes_ago,
        exceeded=count >= callbacks_limit,
    )


UNDELIVERED_STATUSES = (CallbackStatus.WAITING, CallbackStatus.SENDING)


def delete_old_callbacks(
    *,
    days: int,
    include_undelivered: bool = False,
    batch_size: int = 5000,
    vacuum: bool = True,
) -> int:
    """Delete callbacks created more than ``days`` days ago, ``batch_size`` rows at a time,
    then reclaim space where the database supports it (VACUUM ANALYZE on PostgreSQL,
    when ``vacuum``: a web request leaves it to the command).

    Callbacks not delivered yet (``waiting``, ``sending``) are kept unless
    ``include_undelivered``: an old callback still waiting for a retry is an
    event a receiver has not had. Small batches keep each transaction and its
    locks short on big tables. Returns how many callbacks were deleted.
    """
    _whole_number(days, "days", minimum=0, maximum=MAX_DAYS)
    _whole_number(batch_size, "batch_size", minimum=1)
    cutoff = timezone.now() - datetime.timedelta(days=days)
    old = Callback.objects.filter(create_datetime__lt=cutoff)
    if not include_undelivered:
        old = old.exclude(status__in=UNDELIVERED_STATUSES)
    deleted = 0
    while True:
        ids = list(old.order_by("id").values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        with transaction.atomic():
            Callback.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
    if vacuum and deleted:
        _reclaim_space()
    return deleted


def _reclaim_space() -> None:
    from .models import Attempt

    using = router.db_for_write(Callback)
    connection = connections[using]
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    with connection.cursor() as cursor:
        for model in (Callback, Attempt):
            cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
