"""Writes: hooks, signals, sending, resending, monitoring and retention.

Every entry point (Python API, REST API, admin, management commands, Celery
and Django tasks) calls these functions; none reaches the send engine
(``delivery``) directly. They validate with ``validators`` and raise the errors of
``exceptions``; a failed call changes nothing.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import inspect
import json
import secrets as secrets_module
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.dispatch import Signal as DjangoSignal
from django.utils import timezone

from . import delivery, dispatch
from .context import hooks_disabled
from .delivery import DeliveryReport
from .delivery.claims import held_by_a_sender
from .delivery.health import HEALTH_FIELDS
from .delivery.ids import listed
from .delivery.ordering import HALT
from .delivery.processes import MAX_PROCESSES as MAX_PROCESSES
from .delivery.processes import Supervision, check_processes, run_processes
from .delivery.processes import partial_token_file as partial_token_file
from .delivery.processes import stop_when_orphaned as stop_when_orphaned
from .delivery.processes import write_report as write_report
from .delivery.processes import write_tokens_to as write_tokens_to
from .delivery.rates import BUCKET_FIELDS
from .delivery.stats import delete_old_stats
from .delivery.sweep import start_sweeper as start_sweeper
from .delivery.sweep import stop_sweeper as stop_sweeper
from .events import accepts, validate_event_type
from .exceptions import (
    HookChangedHandsError,
    HttpHooksError,
    InvalidEventError,
    InvalidFilterError,
    InvalidHookError,
    InvalidSignalError,
    SignalInUseError,
    TooManyCallbacksError,
)
from .headers import mask_headers
from .imports import shown
from .models import (
    CLEARED_HEALTH,
    Attempt,
    Callback,
    CallbackStatus,
    DeliveryStats,
    Hook,
    Signal,
)
from .outbox import record_explicit_event
from .owners import Owners, owner_for_write, owner_key, owner_model, scope
from .payloads import PayloadEncoder, unique_keys
from .registry import registry
from .selectors import callbacks_updated_since
from .settings import hooks_settings
from .signing import SECRET_PREFIX
from .text import is_listing, label_problem, storable_text
from .validators import (
    HOOK_FIELDS,
    MAX_ID,
    import_signal,
    resolve_model,
    validate_hook,
    validate_secret,
    whole_number,
)

# The longest ``key`` of an explicit event (``Callback.object_id`` holds 255 characters).
MAX_EVENT_KEY_LENGTH = 255

# --- signals -------------------------------------------------------------------


def create_signal(signal: str, create: bool = True) -> Signal | DjangoSignal:
    """Register a signal by its dotted path; returns the existing row if there is one.

    With ``create=False`` (the old package's option) nothing is stored: the
    path is checked and the ``django.dispatch.Signal`` it names is returned.
    """
    check_flag(create, "create", InvalidSignalError)
    (path,) = _clean_signals([signal])
    if not create:
        return import_signal(path)
    obj, _ = Signal.objects.get_or_create(signal=path)
    return obj


def _clean_signals(signals: Iterable[Any]) -> list[str]:
    from .validators import validate_signal_paths

    if isinstance(signals, str):
        signals = [signals]
    return validate_signal_paths(signals)


def delete_signal(*, signal: Signal, owners: Owners = None) -> None:
    """Delete a signal no hook listens to; one in use is refused, to leave no hook deaf.
    The refusal names the hooks ``owners`` may see, never another owner's."""
    check_saved(signal, Signal, InvalidSignalError)
    if signal.hooks.exists():
        hook_ids = sorted(scope(signal.hooks.all(), owners).values_list("pk", flat=True))
        used_by = f"hooks {', '.join(map(str, hook_ids))}" if hook_ids else "other owners' hooks"
        raise SignalInUseError(
            f"signal {signal.signal} is used by {used_by}: remove it from them first"
        )
    signal.delete()


# --- hooks ---------------------------------------------------------------------


def generate_secret() -> str:
    """A new Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets_module.token_bytes(32)).decode()


def new_hook_secret(secret: str | None = None) -> str:
    """The signing secret a new hook is stored with, whatever the entry point: a
    generated one for None (the default: new hooks are signed), ``secret``
    itself once validated, or "" (unsigned) for ""."""
    if secret is None:
        return generate_secret()
    return validate_secret(secret) if check_secret_type(secret) else ""


def check_secret_type(secret: Any) -> Any:
    """``secret`` if it is None or text; ``InvalidHookError`` otherwise: a False, 0 or
    [] read as "" made the hook unsigned."""
    if secret is not None and not isinstance(secret, str):
        raise InvalidHookError("the secret must be text (or None)", field="secret")
    return secret


def create_hook(
    signals: Iterable[Any] | str = (),
    model: Any = None,
    *,
    event_types: Iterable[str] | None = None,
    target_url: str | None = None,
    http_method: str = "POST",
    content_type: str = "",
    headers: Any = None,
    secret_headers: Any = None,
    payload_template: str = "",
    serializer_class: str = "",
    rate_limit: int | None = None,
    changed_fields: Iterable[str] | None = None,
    conditions: dict[str, Any] | None = None,
    ordering_key: str = "",
    name: str = "",
    enabled: bool = True,
    secret: str | None = None,
    owner: Any = None,
) -> Hook:
    """Validate and store a hook; it fires at once, in every process within REGISTRY_TTL.

    ``signals`` and ``model`` may come by position, as in infi.django_http_hooks;
    its parameters here are ``HOOK_FIELDS`` (the one list of a hook's fields),
    plus ``enabled`` and ``secret``. A missing model or target URL is an
    ``HttpHooksError`` like any other mistake.

    Its requests are signed with a generated secret (read it from ``hook.secret``)
    unless ``secret`` gives one, or is "" for an unsigned hook.

    ``event_types`` (names, ``prefix.*`` or ``*``) subscribe it to explicit events
    (``send_event``); a hook has a model and signals, event types, or both.

    ``changed_fields`` (field names) and ``conditions`` (lookups, see
    ``conditions``) narrow which saves fire it; both are checked against the model.
    On an explicit event the conditions apply to its payload.

    ``owner`` (an instance of ``OWNER_MODEL`` or its primary key; None: the
    project's hook) makes it that tenant's: only they see it in the API.
    ``ordering_key``, a template such as ``{{instance.pk}}``, delivers the callbacks
    that render the same key one at a time, in order (``delivery.ordering``).
    """
    arguments = locals()
    fields = {field: arguments[field] for field in HOOK_FIELDS}
    fields["model"] = None if model is None else resolve_model(model)
    fields["signals"] = [signals] if isinstance(signals, str) else signals
    owner = owner_key(owner)
    cleaned = validate_hook(fields, owner=owner)
    secret = new_hook_secret(secret)
    check_flag(enabled, "enabled", InvalidHookError)
    signal_paths = cleaned.pop("signals")
    with transaction.atomic():
        hold_owner(owner)
        hook = Hook.objects.create(enabled=bool(enabled), secret=secret, owner=owner, **cleaned)
        hook.signals.set(_signal_rows(signal_paths))
    return hook


# What a replacement keeps when it leaves it out, besides the secret (rotated apart) and
# the owner (kept unless moved): the names marked as credentials, whose stored values a
# client never saw and so cannot give again (``headers.refuse_unmasking``).
KEPT_BY_REPLACEMENT = frozenset({"secret_headers"})


def new_hook_fields() -> dict[str, Any]:
    """What a new hook has of each field it is not given (``create_hook``'s defaults, the
    one place they are written): what a replacement (``PUT``) leaves out becomes, but
    ``KEPT_BY_REPLACEMENT``."""
    parameters = inspect.signature(create_hook).parameters
    return {
        name: parameters[name].default
        for name in (*HOOK_FIELDS, "enabled")
        if name not in KEPT_BY_REPLACEMENT
    }


def update_hook(hook: Hook, **changes: Any) -> Hook:
    """Change some fields of ``hook``; the whole hook is validated again.

    Secret header values are kept when ``headers`` leaves them out or gives
    them as ``********``, and removed when given empty (see ``Hook``).

    A new ``owner`` (see ``create_hook``) takes the hook, not its callbacks: they
    stay with the owner whose data they hold (``part_with_previous_owners``); nor the
    previous owner's credentials: a new secret unless ``secret`` is given
    (``hand_over_secret``), and only the secret header values given anew.

    ``HookChangedHandsError``, nothing changed, when the hook was deleted or given to
    another owner since ``hook`` was read."""
    unknown = set(changes) - set(HOOK_FIELDS) - {"enabled", "secret", "owner"}
    if unknown:
        raise TypeError(f"update_hook() got unknown fields: {', '.join(sorted(unknown))}")
    check_hook_argument(hook)
    merged = {field: getattr(hook, field) for field in HOOK_FIELDS if field != "signals"}
    merged["signals"] = [s.signal for s in hook.signals.all()]
    if not merged["signals"]:
        # Deleted since it was read (its signals went with it)? Said so, rather than
        # "needs a signal".
        check_same_hands(hook)
    # Headers left out are as the caller sees them, secret values masked: kept as they
    # are, but never shown by a change that unmarks them (``refuse_unmasking``).
    merged["headers"] = mask_headers(hook.headers or {}, hook.secret_headers)
    merged.update((k, v) for k, v in changes.items() if k in HOOK_FIELDS)
    merged["model"] = None if merged["model"] is None else resolve_model(merged["model"])
    if isinstance(merged["signals"], str):
        merged["signals"] = [merged["signals"]]
    owner = owner_key(changes["owner"]) if "owner" in changes else hook.owner
    cleaned = validate_hook(merged, current=hook, owner=owner)
    if changes.get("secret"):
        validate_secret(changes["secret"])
    check_secret_type(changes.get("secret"))
    if "enabled" in changes:
        check_flag(changes["enabled"], "enabled", InvalidHookError)
    signal_paths = cleaned.pop("signals")
    # The sender writes the health fields and the rate limit's bucket at any time: a
    # stale copy never overwrites them.
    kept = set(HEALTH_FIELDS) - ({"enabled"} if "enabled" in changes else set())
    with transaction.atomic():
        current = _locked_row(hook, *HEALTH_FIELDS)
        for field, value in cleaned.items():
            setattr(hook, field, value)
        if "enabled" in changes:
            # Whether the hook is disabled is the row's: the sender may have disabled it
            # since ``hook`` was loaded.
            for field in HEALTH_FIELDS:
                setattr(hook, field, getattr(current, field))
            if changes["enabled"] and not hook.enabled:
                hook.clear_health()
                kept = set()
            hook.enabled = bool(changes["enabled"])
        if "secret" in changes and (changes["secret"] or "") != hook.secret:
            _take_secret(hook, changes["secret"] or "")
        if owner != hook.owner:
            hold_owner(owner)
            hook.owner = owner
            if changes.get("secret") is None:
                hand_over_secret(hook)
            else:  # given with the change: it signs alone, with no grace for the old one
                hook.previous_secret, hook.previous_secret_expires_at = "", None
            part_with_previous_owners(hook)
            forget_previous_owners_tries(hook)
            kept -= set(PREVIOUS_TRIES_FIELDS)
        hook.save(
            update_fields=[
                field.name
                for field in Hook._meta.concrete_fields
                if not field.primary_key and field.name not in {*kept, *BUCKET_FIELDS}
            ]
        )
        hook.signals.set(_signal_rows(signal_paths))
    return hook


def _locked_row(hook: Hook, *fields: str, missing_ok: bool = False) -> Hook | None:
    """``fields`` of ``hook``'s row as it is now, locked for the caller's transaction.
    ``HookChangedHandsError`` when the row has another owner than ``hook`` says, or is
    gone (None then with ``missing_ok``): what the caller was about to write was decided
    on a copy read before that change (a stale copy of the previous owner's would take
    the hook back, give the new owner's hook a secret the previous owner is shown, or
    delete it)."""
    current = Hook.objects.select_for_update().only("owner", *fields).filter(pk=hook.pk).first()
    if current is None and missing_ok:
        return None
    if current is None or current.owner != hook.owner:
        raise HookChangedHandsError()
    return current


# What ``hand_over_secret`` changes (the admin saves them with a change of owner).
HANDED_OVER_FIELDS = ("secret", "previous_secret", "previous_secret_expires_at")


def hand_over_secret(hook: Hook) -> None:
    """After ``hook`` changed hands: a new signing secret (none for an unsigned hook),
    and the previous owner's no longer signs, not even for ``SECRET_ROTATION_GRACE``.
    Requests signed with it, of events the new owner chooses, would pass the previous
    owner's receiver as genuine. The new owner learns the new one by rotating it."""
    hook.secret = generate_secret() if hook.secret else ""
    hook.previous_secret, hook.previous_secret_expires_at = "", None


# What ``forget_previous_owners_tries`` clears: the health the sender writes, but
# ``enabled``.
PREVIOUS_TRIES_FIELDS = tuple(field for field in HEALTH_FIELDS if field != "enabled")


def forget_previous_owners_tries(hook: Hook) -> None:
    """After ``hook`` changed hands: what the previous owner's tries left is theirs, as
    the answers to their tries in flight at the change count toward no health of the
    hook (``health.record_health``). The hook's counts per hour (``DeliveryStats``) are
    deleted, and its health state (``PREVIOUS_TRIES_FIELDS``: failures in a row, the
    breaker, a pause, the last success and failure with its error, ``slow_since``, why
    and when http_hooks disabled it) set as a new hook's, for the caller to save. A
    hook http_hooks disabled stays disabled: the new owner enables it when they choose.

    In the caller's transaction, which saves the new owner, with the hook's row locked
    before its counts are deleted (``update_hook`` holds it already; the admin does
    not), as a sender's write of outcomes locks it before their counts
    (``outcomes.lock_hooks``): a window written meanwhile waits for the change, then
    counts nothing of the previous owner's for the new one; in the other order, each
    side waited for what the other held."""
    list(Hook.objects.select_for_update().filter(pk=hook.pk).values_list("pk", flat=True))
    for field in PREVIOUS_TRIES_FIELDS:
        setattr(hook, field, Hook._meta.get_field(field).get_default())
    DeliveryStats.objects.filter(hook=hook).delete()


def part_with_previous_owners(hook: Hook) -> int:
    """After ``hook`` changed hands: its callbacks stay with the owner whose data they
    hold (their ``owner``), and those still waiting end in ``error`` unsent: they would
    go out with the new owner's URL, secret and headers (``resend_callbacks`` passes
    them over too). Returns how many were stopped.

    None of them holds an ordering key of the hook any more (``delivery.ordering``):
    they can never be resent through it, so with ``ORDERED_ON_FAILURE = "halt"`` one
    in ``error`` (stopped here, failed before, or in flight now and failing) would
    hold back the new owner's callbacks of its key for good, behind a row the new
    owner cannot see, resend or delete. The ones in flight keep their
    ``update_datetime``: it is their sender's claim stamp."""
    now = timezone.now()
    previous = Callback.objects.filter(hook=hook).exclude(owner=hook.owner)
    stopped = previous.filter(status=CallbackStatus.WAITING).update(
        status=CallbackStatus.ERROR,
        status_details="not sent: its hook moved to another owner",
        claimed_until=None,
        claim_token=None,
        ordering_key="",
        update_datetime=now,
    )
    previous.filter(status__in=[CallbackStatus.SENDING, CallbackStatus.ERROR]).exclude(
        ordering_key=""
    ).update(ordering_key="")
    return stopped


def _signal_rows(paths: Sequence[str]) -> list[Signal]:
    existing = {s.signal: s for s in Signal.objects.filter(signal__in=paths)}
    return [existing.get(path) or Signal.objects.create(signal=path) for path in paths]


def set_hook_enabled(hook: Hook, enabled: bool) -> Hook:
    """Enable (``enable_hook``) or disable ``hook``."""
    check_flag(enabled, "enabled", InvalidHookError)
    if enabled:
        return enable_hook(hook)
    check_hook_argument(hook)
    with transaction.atomic():
        _locked_row(hook)
        hook.enabled = False
        hook.save(update_fields=["enabled", "update_datetime"])
    return hook


def enable_hook(hook: Hook) -> Hook:
    """Enable ``hook`` with a clean bill of health: no disabled reason, no pause,
    the circuit breaker closed and its failure count reset. Callbacks it kept
    waiting while disabled or paused go out at the next send."""
    check_hook_argument(hook)
    with transaction.atomic():
        _locked_row(hook)
        hook.clear_health()
        # Only what it clears: the rest of the hook's health is the sender's, and ``hook``
        # may be a copy older than what the sender wrote since.
        hook.save(update_fields=[*CLEARED_HEALTH, "update_datetime"])
    return hook


def check_hook_argument(hook: Any) -> None:
    """``hook`` is a saved ``Hook``: ``InvalidHookError`` (field ``hook``) for anything
    else (another model's instance was deleted by ``delete_hook``, an unsaved hook or
    an object failed deep inside)."""
    check_saved(hook, Hook, InvalidHookError)


def check_saved(value: Any, model: type[Hook | Signal], error: type[HttpHooksError]) -> None:
    """``value`` is a saved instance of ``model``: ``error`` on the model's field
    (``hook``, ``signal``) otherwise."""
    if not isinstance(value, model) or value.pk is None:
        name = model.__name__
        raise error(f"expected a saved {name}, not {described(value)}", field=name.lower())


def check_same_hands(hook: Hook) -> None:
    """``HookChangedHandsError`` for a hook deleted or given to another owner since it
    was read (``_locked_row``, without the lock: for work that is no write of the row)."""
    if not Hook.objects.filter(pk=hook.pk, owner=hook.owner).exists():
        raise HookChangedHandsError()


def described(value: Any) -> str:
    """What a value of the wrong kind is, for an error message: its type, never its
    text (a model's ``__str__`` may query, or show what it holds)."""
    if isinstance(value, Hook | Signal) and value.pk is None:
        return f"an unsaved {type(value).__name__}"
    return f"a {type(value).__module__}.{type(value).__qualname__}"


def hold_owner(owner: str) -> None:
    """Lock the row of ``owner`` (a key) until the transaction ends, so that it is not
    deleted while a hook is given to it (the deletion would not see that hook, and a
    later owner with the same key would take it over); ``InvalidHookError`` if it was
    deleted since ``owner_key`` found it. Outside a transaction only the check."""
    if not owner:
        return
    model = owner_model()
    using = router.db_for_write(model)
    rows = model._default_manager.using(using).filter(pk=owner)
    if transaction.get_connection(using).in_atomic_block:
        rows = rows.select_for_update(no_key=True)
    if not rows.exists():
        raise InvalidHookError(f"no {model._meta.label} with key {owner!r}", field="owner")


def delete_hook(hook: Hook) -> None:
    """Delete a hook and its callbacks (one already deleted: nothing).

    ``HookChangedHandsError``, nothing deleted, when the hook was given to another owner
    since ``hook`` was read: the row is locked and its owner compared first, as a change
    does (``_locked_row``). Django deletes by primary key, so the previous owner's
    delete racing a move deleted the new owner's hook and every callback of it."""
    check_hook_argument(hook)
    with transaction.atomic(using=router.db_for_write(Hook)):
        if _locked_row(hook, missing_ok=True) is not None:
            hook.delete()


# Callbacks a statement pair when an owner's are deleted.
OWNER_DELETE_BATCH = 5000


def delete_owner_data(owner: Any) -> tuple[int, int]:
    """Delete what ``owner`` (an instance of ``OWNER_MODEL`` or its key) had: their
    hooks, with every callback stored on them (as deleting a hook does: those of a
    previous owner of the hook too), and the callbacks stored for them on hooks that
    moved to another owner; attempts with their callbacks. Returns (hooks, callbacks)
    deleted. Left behind, a deleted owner's payloads would stay, and a later owner
    with the same key would take over their hooks. None or "" (the project's)
    deletes nothing.

    In the caller's transaction, or one of its own; callbacks go in SQL,
    ``OWNER_DELETE_BATCH`` at a time, none loaded."""
    key = owner_key(owner, must_exist=False)
    if not key:
        return 0, 0
    using = router.db_for_write(Callback)
    callbacks = 0
    with transaction.atomic(using=using, savepoint=False):
        # Their hooks locked first: one being given to another owner right now is read
        # again once that commits (and left to its new owner), and none moves meanwhile.
        hook_ids = list(
            Hook.objects.using(using)
            .filter(owner=key)
            .select_for_update()
            .values_list("pk", flat=True)
        )
        selections = [Q(owner=key), *([Q(hook_id__in=hook_ids)] if hook_ids else [])]
        for theirs in selections:
            # Locked before their attempts go: a sender writing an outcome of one of them
            # commits its attempt first, and the batch then sees and deletes it.
            ids = (
                Callback.objects.using(using)
                .filter(theirs)
                .select_for_update()
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            # Each batch from where the last one ended (a batch from the start would step
            # over every row deleted before it), then once more from the start for what
            # others committed meanwhile below that point.
            last = 0
            while batch := list(ids.filter(pk__gt=last)[:OWNER_DELETE_BATCH]):
                callbacks += _delete_callbacks(batch, using)
                last = batch[-1]
            while batch := list(ids[:OWNER_DELETE_BATCH]):
                callbacks += _delete_callbacks(batch, using)
        deleted = {}
        if hook_ids:
            _, deleted = Hook.objects.using(using).filter(pk__in=hook_ids).delete()
    return deleted.get(Hook._meta.label, 0), callbacks


def rotate_secret(hook: Hook, *, secret: str | None = None) -> str:
    """Give ``hook`` a new secret; the old one keeps signing for ``SECRET_ROTATION_GRACE``.

    Done on the row as it is, locked: the old secret is the row's, and a hook that
    changed hands since ``hook`` was read (``HookChangedHandsError``, nothing done)
    keeps the secret its new owner got: the caller, whom the new secret is shown to,
    may be the previous owner, and the previous secret would sign on for the grace
    period (``hand_over_secret``)."""
    check_hook_argument(hook)
    new_secret = validate_secret(secret) if check_secret_type(secret) else generate_secret()
    with transaction.atomic(using=router.db_for_write(Hook)):
        current = _locked_row(hook, *HANDED_OVER_FIELDS)
        for field in HANDED_OVER_FIELDS:
            setattr(hook, field, getattr(current, field))
        _take_secret(hook, new_secret)
        hook.save(update_fields=[*HANDED_OVER_FIELDS, "update_datetime"])
    return new_secret


def _take_secret(hook: Hook, new_secret: str) -> None:
    """``new_secret`` signs from now on, and the old one with it for
    ``SECRET_ROTATION_GRACE``, so that receivers can switch in their own time; with
    no grace when the hook was unsigned or becomes so (``new_secret`` empty). Only the
    last secret before it is kept: a rotation within the grace of another ends it."""
    grace = bool(hook.secret and new_secret)
    hook.previous_secret = hook.secret if grace else ""
    hook.previous_secret_expires_at = (
        timezone.now() + datetime.timedelta(seconds=hooks_settings.SECRET_ROTATION_GRACE)
        if grace
        else None
    )
    hook.secret = new_secret


# --- sending -------------------------------------------------------------------


def send_callbacks(
    *,
    hook_id: int | None = None,
    ids: Sequence[int] | None = None,
    due_only: bool = False,
    limit: int | None = None,
    progress: Callable[[int], Any] | None = None,
    stop: Callable[[], bool] | None = None,
) -> DeliveryReport:
    """Send due callbacks now, in this process: all of them, those of one hook, or the
    listed ones (due or not, unless ``due_only``); at most ``limit`` when given.

    ``progress(n)`` is called as callbacks finish; ``stop()`` is asked before
    each batch. Raises ``InvalidFilterError`` for a hook that does not exist, and for
    a ``hook_id``, ``ids`` or ``limit`` that is not whole numbers of 1 or more (ids of
    at most 2^63-1, ``MAX_LISTED_IDS`` of them at most).
    """
    hook_id = check_id(hook_id, "hook_id")
    ids = check_ids(ids)
    if limit is not None:
        whole_number(limit, "limit", minimum=1)
    check_flag(due_only, "due_only")
    check_function(progress, "progress")
    check_function(stop, "stop")
    return delivery.send_callbacks(
        hook_id=hook_id,
        callback_ids=ids,
        due_only=due_only,
        limit=limit,
        progress=progress,
        stop=stop,
    )


def run_queued_send(
    *, ids: Sequence[int] | None = None, hook_id: int | None = None
) -> dict[str, int]:
    """What a worker's task does, on Celery or Django's tasks framework: send the
    listed callbacks that are still waiting and due, then go on with whatever else is
    due, for up to ``DRAIN_SECONDS``; or without ids every due one (of one hook). The
    counts, as a task's result can hold them.

    New callbacks are due at once. A task delivered again (a worker lost, a late
    acknowledgement, a task queued twice) finds a sent callback done and a failed
    one waiting for its retry, and leaves both alone.

    Why go on past the listed ids: a commit queues a task per transaction, often of
    one callback, and a task that sent one callback cost about 36 ms (its claim, its
    outcome written, its lease), 20-odd deliveries a second a worker process. Going
    on, a task claims ``BATCH_SIZE`` at a time like ``send_callbacks``, and the tasks
    whose callbacks it took find them done, for a query each.
    """
    report = send_callbacks(hook_id=hook_id, ids=ids, due_only=ids is not None)
    if ids is not None:
        deadline = time.monotonic() + DRAIN_SECONDS
        report.add(send_callbacks(stop=lambda: time.monotonic() > deadline))
    return {"sent": report.sent, "retried": report.retried, "failed": report.failed}


# Seconds a task goes on sending due callbacks after its own: long enough to take up a
# backlog in batches, short enough to hand the worker back to its other tasks (and to
# keep under time limits); the next task goes on where it stopped.
DRAIN_SECONDS = 10.0


def count_due(*, hook_id: int | None = None, ids: Sequence[int] | None = None) -> int:
    """How many callbacks ``send_callbacks`` would take now."""
    return delivery.count_due(hook_id=check_id(hook_id, "hook_id"), callback_ids=check_ids(ids))


def check_flag(value: Any, field: str, error: type[HttpHooksError] = InvalidFilterError) -> bool:
    """``value`` if it is a bool; ``error`` on ``field`` otherwise: "no" or "false" were
    true, and enabled a hook, confirmed a resend or deleted the callbacks not
    delivered yet."""
    if not isinstance(value, bool):
        raise error(f"{field} must be True or False", field=field)
    return value


def check_function(value: Any, field: str) -> None:
    """``value`` is None or callable: ``InvalidFilterError`` on ``field`` otherwise, before
    any work (called late, it failed after the first batch was done)."""
    if value is not None and not callable(value):
        raise InvalidFilterError(f"{field} must be a function (or None)", field=field)


def check_id(value: Any, field: str) -> int | None:
    """None, or a row's id: a whole number from 1 to ``MAX_ID`` (``InvalidFilterError``
    otherwise: a larger one was an ``OverflowError`` of the driver, a bool or a float
    was read as a number)."""
    return None if value is None else whole_number(value, field, minimum=1, maximum=MAX_ID)


def check_ids(ids: Any, field: str = "ids") -> list[int] | None:
    """None, or a collection of at most ``MAX_LISTED_IDS`` ids (``check_id``) as a
    list: a generator is read once."""
    if ids is None:
        return None
    if not is_listing(ids):
        raise InvalidFilterError(f"{field} must be a list of ids", field=field)
    return [whole_number(pk, field, minimum=1, maximum=MAX_ID) for pk in listed(ids, field)]


def run_sender(
    *,
    stop: threading.Event,
    hook_id: int | None = None,
    on_report: Callable[[DeliveryReport], Any] | None = None,
) -> DeliveryReport:
    """Send due callbacks until ``stop`` is set: the ``send_callbacks --loop`` worker."""
    return delivery.run_loop(stop=stop, hook_id=hook_id, on_report=on_report)


def check_hook_exists(hook_id: int | None, *, owners: Owners = None) -> None:
    """``InvalidFilterError`` unless ``hook_id`` is None or names a hook (of ``owners``:
    another owner's is as missing as one that never was)."""
    if hook_id is not None and not scope(Hook.objects.filter(pk=hook_id), owners).exists():
        raise InvalidFilterError(f"no hook with id {hook_id}", field="hook_id")


def run_sender_processes(
    *, processes: int, loop: bool, stop: threading.Event, hook_id: int | None = None
) -> Supervision:
    """Run ``processes`` sender processes (``--loop`` workers with ``loop``) until they
    are done or ``stop`` is set: ``send_callbacks --processes``. Raises
    ``InvalidFilterError`` for a bad number of processes or a hook that does not exist."""
    processes = check_processes(processes)
    check_hook_exists(hook_id)
    return run_processes(processes=processes, loop=loop, hook_id=hook_id, stop=stop)


def send_test_event(hook: Hook) -> Attempt:
    """Send a synthetic ``http_hooks.test`` event to ``hook`` now, once; return its attempt."""
    check_hook_argument(hook)
    # The previous owner's copy, read before a move: its URL, headers and secret must
    # not send through the new owner's hook (whose health and log the outcome joins).
    check_same_hands(hook)
    return delivery.send_test_event(hook)


@dataclass(frozen=True)
class SendResult:
    """What a bounded send did: ``mode`` is ``sent`` (one batch sent here, ``report``
    says how it went, ``more`` whether callbacks of the request are still due) or
    ``queued`` (handed to the workers of ``DISPATCH``; nothing sent here)."""

    mode: str
    report: DeliveryReport
    more: bool


def check_send_limit(limit: Any) -> int:
    """A limit of one bounded send: 1 to ``BATCH_SIZE``."""
    return whole_number(limit, "limit", minimum=1, maximum=int(hooks_settings.BATCH_SIZE))


def send_batch_or_queue(
    *,
    hook_id: int | None = None,
    ids: Sequence[int] | None = None,
    limit: int | None = None,
    owners: Owners = None,
) -> SendResult:
    """What a web request may do to send: never an unbounded loop.

    With ``DISPATCH`` ``celery`` or ``tasks`` the work goes to the workers: the
    listed callbacks that are waiting become due now and are queued, or, without
    ids, a send of due callbacks is queued (for one hook or all).
    Otherwise one batch is sent here: at most ``limit`` callbacks, and never
    more than ``BATCH_SIZE``; no new try starts once one try's time (connect and
    read timeouts together) has passed, so a receiver that hangs holds the web
    request for at most twice that, not once per wave of transfers.

    With ``owners`` (a request limited to some tenants) only their callbacks are
    sent: the listed ones of theirs (others' ids are passed over like ids that do
    not exist), or, without ids, at most ``limit`` of their due ones, as a list.
    """
    batch_size = int(hooks_settings.BATCH_SIZE)
    limit = batch_size if limit is None else check_send_limit(limit)
    check_hook_exists(hook_id, owners=owners)
    listed = ids is not None
    if owners is not None:
        ids = _owned_selection(hook_id=hook_id, ids=ids, owners=owners, limit=limit)
    if dispatch.queues_work():
        if ids is None:
            dispatch.enqueue_due(hook_id=hook_id)
        else:
            waiting = Callback.objects.filter(pk__in=list(ids), status=CallbackStatus.WAITING)
            if hook_id is not None:
                waiting = waiting.filter(hook_id=hook_id)
            with transaction.atomic():
                chosen = list(waiting.values_list("pk", flat=True))
                waiting.update(next_attempt_at=timezone.now())
                dispatch.enqueue_on_commit(chosen)
        return SendResult(mode="queued", report=DeliveryReport(), more=False)
    deadline = time.monotonic() + hooks_settings.connect_timeout + hooks_settings.read_timeout
    report = send_callbacks(
        hook_id=hook_id, ids=ids, limit=limit, stop=lambda: time.monotonic() >= deadline
    )
    # A batch that was neither full nor cut short took everything there was to take.
    cut_short = report.total >= limit or time.monotonic() >= deadline
    if not cut_short:
        more = False
    elif owners is not None and not listed:
        more = _owned_due(hook_id=hook_id, owners=owners).exists()
    else:
        more = count_due(hook_id=hook_id, ids=ids) > 0
    return SendResult(mode="sent", report=report, more=more)


# --- explicit events -----------------------------------------------------------


def send_event(
    event_type: str,
    payload: Any,
    *,
    owner: Any = None,
    key: str | None = None,
    shared: bool = True,
) -> list[Callback]:
    """Store one callback for every enabled hook subscribed to ``event_type``; return them.

    In the caller's transaction, like a model signal's callbacks: a rolled-back
    transaction leaves none, and they are handed to the sender at commit.
    ``payload`` is any JSON-serialisable value (dates, decimals and UUIDs as DRF
    writes them); templates and conditions see it as the receiver will.
    ``owner`` (an instance of the owner model, or its primary key) reaches that
    owner's hooks besides the hooks with no owner; without it, only those. ``key``
    (at most 255 characters) is the event's ``event.key`` and the callbacks'
    ``object_id``. Raises ``InvalidEventError`` and stores nothing for a bad type,
    payload, key or owner. Inside ``disable_hooks()`` nothing is stored.
    ``shared=False`` leaves the hooks with no owner out (what a tenant sends through
    the API reaches only their own hooks, never the project's).
    """
    event_type = validate_event_type(event_type)
    check_flag(shared, "shared", InvalidEventError)
    data, text = plain_json(payload)
    key = _event_key(key)
    try:
        owner = owner_key(owner, must_exist=False)
    except InvalidHookError as exc:
        raise InvalidEventError(exc.message, field="owner") from None
    if hooks_disabled() or hooks_settings.SHUT_DOWN:
        return []
    hooks = [
        hook
        for hook in registry.event_hooks(event_type, owner)
        if (shared or hook.owner) and accepts(hook, data)
    ]
    return record_explicit_event(
        hooks, event_type, data, key, payload_json=text, using=router.db_for_write(Callback)
    )


def send_event_for(
    owners: Owners, event_type: str, payload: Any, *, owner: Any = None, key: str | None = None
) -> list[Callback]:
    """``send_event`` on behalf of a request acting for ``owners`` (None: every owner).

    A user limited to owners sends as one of them (``owner``, or their only one) and
    reaches that owner's hooks only: a tenant can neither speak for another owner nor
    feed events to the project's own hooks."""
    if owners is None:
        if owner is not None:
            # Named in a request, an owner must exist, as for a hook: a typo is a 400,
            # not an event that reaches only the hooks with no owner.
            try:
                owner = owner_key(owner)
            except InvalidHookError as exc:
                raise InvalidEventError(exc.message, field="owner") from None
        return send_event(event_type, payload, owner=owner, key=key)
    try:
        chosen = owner_for_write(owner, owners=owners)
    except InvalidHookError as exc:
        raise InvalidEventError(exc.message, field="owner") from None
    return send_event(event_type, payload, owner=chosen, key=key, shared=False)


def _event_key(key: Any) -> str:
    if key is None:
        return ""
    if not isinstance(key, str) or len(key) > MAX_EVENT_KEY_LENGTH or not storable_text(key):
        raise InvalidEventError(
            f"the key must be text of at most {MAX_EVENT_KEY_LENGTH} characters "
            "(no NUL, valid UTF-8)",
            field="key",
        )
    problem = label_problem(key)
    if problem:
        raise InvalidEventError(f"invalid key: {problem}", field="key")
    return key


def plain_json(payload: Any) -> tuple[Any, str]:
    """``payload`` as JSON text, and as the data a receiver parses from it: dicts,
    lists, text, numbers (a fraction as a ``Decimal``, with the digits it was given),
    booleans and nulls. ``InvalidEventError`` (field ``payload``) for a value that JSON
    cannot carry (an object, NaN, a NUL or a lone surrogate in a string, an iterable
    of more than ``MAX_ITERATED_ITEMS`` items, two keys one text in JSON)."""
    try:
        text = json.dumps(payload, cls=PayloadEncoder, ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
        data = json.loads(text, parse_float=decimal.Decimal, object_pairs_hook=unique_keys)
    except (TypeError, ValueError, RecursionError) as exc:
        reason = "a lone surrogate" if isinstance(exc, UnicodeEncodeError) else exc
        raise InvalidEventError(
            f"the payload is not JSON-serialisable: {reason}", field="payload"
        ) from None
    if "\\u0000" in text and _has_nul(data):
        raise InvalidEventError("the payload holds a NUL character", field="payload")
    return data, text


def _has_nul(data: Any) -> bool:
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def _owned_due(*, hook_id: int | None, owners: Owners) -> QuerySet[Callback]:
    due = Callback.objects.filter(
        status=CallbackStatus.WAITING, next_attempt_at__lte=timezone.now()
    )
    if hook_id is not None:
        due = due.filter(hook_id=hook_id)
    return scope(due, owners)


def _owned_selection(
    *, hook_id: int | None, ids: Sequence[int] | None, owners: Owners, limit: int
) -> list[int]:
    """The callbacks a send limited to ``owners`` takes: those of ``ids`` that are
    theirs, or their due ones (oldest due first, by ``callback_due_idx``)."""
    if ids is not None:
        return list(
            scope(Callback.objects.filter(pk__in=list(ids)), owners).values_list("pk", flat=True)
        )
    due = _owned_due(hook_id=hook_id, owners=owners).order_by("next_attempt_at")
    return list(due.values_list("pk", flat=True)[:limit])


# --- callbacks -----------------------------------------------------------------


def delete_callback(callback: Callback) -> bool:
    """Delete ``callback`` and its attempts, unless a sender holds it (False then): its
    outcome would be lost, and its key's next callback would go while it is in flight.
    One left ``sending`` by a sender whose lease ran out is not held.

    The row is locked first, under that condition: Django's delete reads the rows and
    then deletes them by id, and a claim between the two (one whose lease ran out is
    what a claim takes first) was deleted under the sender. Locked, a claim passes it
    over; one that locked it first makes the condition fail once it commits."""
    with transaction.atomic():
        free = Callback.objects.filter(pk=callback.pk).exclude(held_by_a_sender())
        if not list(free.select_for_update().values_list("pk", flat=True)):
            return False
        free.delete()
    return True


def resend_callbacks(
    *,
    ids: Sequence[int] | None = None,
    queryset: QuerySet[Callback] | None = None,
    confirm: bool = False,
    owners: Owners = None,
) -> int:
    """Put callbacks back in the queue, due now, with a fresh retry budget (their
    attempt numbers go on from the last one).

    Their event ids stay the same, so receivers that drop duplicates still can.
    More than ``RESEND_LIMIT`` callbacks are resent only with ``confirm``
    (``TooManyCallbacksError`` otherwise, and nothing changes). They are
    updated, and queued to the workers of ``DISPATCH``, ``BATCH_SIZE`` at a time,
    each chunk in a transaction of its own: no list of every id, no transaction
    that locks a million rows. Returns how many were queued.

    With ``owners`` only their callbacks are resent; others are passed over as
    ids that do not exist are.
    """
    check_flag(confirm, "confirm")
    ids = check_ids(ids)
    if queryset is not None and not (isinstance(queryset, QuerySet) and queryset.model is Callback):
        raise InvalidFilterError(
            f"queryset must be a QuerySet of callbacks (or None), not {described(queryset)}",
            field="queryset",
        )
    callbacks = scope(queryset if queryset is not None else Callback.objects.all(), owners)
    if ids is not None:
        callbacks = callbacks.filter(pk__in=ids)
    # Not the ones a sender holds right now: its result would overwrite ours; nor those
    # of a hook that has changed hands since (``part_with_previous_owners``). Tested
    # with EXISTS, not a join: with a join Django would move the whole condition into
    # a subquery of the UPDATE, and PostgreSQL would no longer check the status again
    # on the rows it waited for.
    same_owner = Hook.objects.filter(pk=OuterRef("hook_id"), owner=OuterRef("owner"))
    callbacks = callbacks.exclude(held_by_a_sender()).filter(Exists(same_owner)).order_by("pk")
    limit = int(hooks_settings.RESEND_LIMIT)
    if not confirm and callbacks.values_list("pk", flat=True)[limit : limit + 1]:
        raise TooManyCallbacksError(
            f"more than {limit} callbacks match (RESEND_LIMIT): narrow the selection, "
            "or confirm to resend them all"
        )
    chunk_size = int(hooks_settings.BATCH_SIZE)
    count, last = 0, 0
    while True:
        now = timezone.now()
        with transaction.atomic():
            chosen = list(callbacks.filter(pk__gt=last).values_list("pk", flat=True)[:chunk_size])
            if not chosen:
                return count
            # Those still selected: another resend may have queued them since they were
            # picked, and then they are that one's (PostgreSQL checks again the rows it
            # waited for).
            count += callbacks.filter(pk__in=chosen).update(
                status=CallbackStatus.WAITING,
                next_attempt_at=now,
                earlier_attempts=F("earlier_attempts") + F("attempts"),
                attempts=0,
                claimed_until=None,
                claim_token=None,
                status_details="queued again for delivery",
                update_datetime=now,
            )
            dispatch.enqueue_on_commit(chosen)
        last = chosen[-1]


def recover_hook(hook: Hook, *, since: datetime.datetime, confirm: bool = False) -> int:
    """Queue again the callbacks of ``hook`` that failed for good (status ``error``) and
    were created at or after ``since``: Svix's "recover", after a receiver's outage.

    They are resent as ``resend_callbacks`` resends (``RESEND_LIMIT`` with
    ``confirm``, ``BATCH_SIZE`` chunks); other statuses and other hooks' callbacks
    are left alone. The hook is not enabled: the callbacks of a hook http_hooks
    disabled (410 Gone, failing) or paused wait until it is enabled or its pause
    ends. Returns how many were queued.
    """
    check_hook_argument(hook)
    since = check_since(since)
    # A copy read before the hook changed hands recovers none of the new owner's
    # callbacks (the previous owner's own are never resent through it anyway).
    check_same_hands(hook)
    failed = Callback.objects.filter(
        hook=hook, owner=hook.owner, status=CallbackStatus.ERROR, create_datetime__gte=since
    )
    return resend_callbacks(queryset=failed, confirm=confirm)


def check_since(since: Any) -> datetime.datetime:
    """The start of a window that has begun: a datetime (a naive one in the current
    time zone) from ``MAX_DAYS`` ago to now, returned in UTC."""
    if not isinstance(since, datetime.datetime):
        raise InvalidFilterError("since must be a date and time", field="since")
    if timezone.is_naive(since):
        since = timezone.make_aware(since)
    now = timezone.now()
    if since > now:
        raise InvalidFilterError("since must not be in the future", field="since")
    if since < now - datetime.timedelta(days=MAX_DAYS):
        raise InvalidFilterError(f"since must be within the last {MAX_DAYS} days", field="since")
    return since.astimezone(datetime.UTC)


# Bounds of the time arguments: far beyond any real use, well inside what datetime
# arithmetic and the databases accept (100 years).
MAX_DAYS = 100 * 365
# Callbacks a batch of ``delete_old_callbacks`` deletes at most: one transaction, its
# ids in memory.
MAX_DELETE_BATCH = 100_000
MAX_MINUTES = MAX_DAYS * 24 * 60


@dataclass(frozen=True)
class MonitorResult:
    status: str
    count: int
    callbacks_limit: int
    minutes_ago: int | None
    exceeded: bool


MONITORED_STATUSES = (CallbackStatus.ERROR, CallbackStatus.WAITING, CallbackStatus.SENDING)


def monitor_callbacks(
    *,
    status: str,
    callbacks_limit: int = 10,
    minutes_ago: int | None = None,
    owners: Owners = None,
) -> MonitorResult:
    """Count callbacks with ``status`` updated in the last ``minutes_ago`` minutes
    (the whole table when None or 0, as infi.django_http_hooks read 0), of ``owners``
    only when given; ``exceeded`` when the count reaches the limit.

    ``sending`` counts the stuck ones only: claimed by a sender whose lease ran out
    (it died, or stalls), which no sender or sweep has taken back yet."""
    if status not in MONITORED_STATUSES:
        raise InvalidFilterError(
            f"invalid status {shown(status)}: use one of {', '.join(MONITORED_STATUSES)}",
            field="status",
        )
    whole_number(callbacks_limit, "callbacks_limit", minimum=1)
    if minutes_ago is not None:
        whole_number(minutes_ago, "minutes_ago", minimum=0, maximum=MAX_MINUTES)
        minutes_ago = minutes_ago or None
    since = (
        None if minutes_ago is None else timezone.now() - datetime.timedelta(minutes=minutes_ago)
    )
    count = scope(callbacks_updated_since(status=status, since=since), owners).count()
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
    owners: Owners = None,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Delete callbacks created more than ``days`` days ago, and their attempts,
    ``batch_size`` callbacks at a time, then reclaim space where the database supports
    it (VACUUM ANALYZE on PostgreSQL, when ``vacuum``: a web request leaves it to the
    command). ``on_batch`` is called with the count of each batch once it is committed.

    Callbacks not delivered yet (``waiting``, ``sending``) are kept unless
    ``include_undelivered``: an old callback still waiting for a retry is an
    event a receiver has not had. Even then one a sender holds (``sending``, its
    lease running) is kept. Returns how many callbacks were deleted.

    Each batch is one short transaction: it takes the next oldest callbacks by
    ``callback_retention_idx`` from where the last batch ended (no rescan of what
    is kept or already deleted, and the last batch reads no further than the
    cutoff), locks them (on PostgreSQL a resend at the same moment waits, then
    finds them gone; on SQLite a write waits for the database anyway), and
    deletes their attempts and then them by id, with no object loaded: memory
    does not grow with the table, no lock outlives its batch, and a stop between
    batches leaves whole callbacks with their attempts.

    The hourly delivery counts older than the longest window of the health
    endpoint and the overview go too, whatever ``days`` (``stats.delete_old_stats``),
    unless ``owners`` limits the deletion to the callbacks of those owners.
    """
    whole_number(days, "days", minimum=0, maximum=MAX_DAYS)
    whole_number(batch_size, "batch_size", minimum=1, maximum=MAX_DELETE_BATCH)
    check_flag(include_undelivered, "include_undelivered")
    check_flag(vacuum, "vacuum")
    check_function(on_batch, "on_batch")
    now = timezone.now()
    if owners is None:
        delete_old_stats(now)
    using = router.db_for_write(Callback)
    cutoff = now - datetime.timedelta(days=days)
    old = scope(Callback.objects.using(using).filter(create_datetime__lt=cutoff), owners)
    if not include_undelivered:
        old = old.exclude(status__in=UNDELIVERED_STATUSES)
    else:
        # As ``delete_callback``: its outcome would be lost, and its key's next callback
        # would go while it is in flight. A later run deletes it.
        old = old.exclude(held_by_a_sender())
    if hooks_settings.ORDERED_ON_FAILURE == HALT:
        # A halted key's head waits for an operator's resend: deleting it would let the
        # callbacks queued behind it go on (``delivery.ordering``).
        queued_behind = Callback.objects.filter(
            ~Q(ordering_key=""),
            hook_id=OuterRef("hook_id"),
            ordering_key=OuterRef("ordering_key"),
            pk__gt=OuterRef("pk"),
            status__in=UNDELIVERED_STATUSES,
        )
        old = old.exclude(Exists(queued_behind), status=CallbackStatus.ERROR)
    old = old.order_by("create_datetime").select_for_update().values_list("pk", "create_datetime")
    deleted, reached = 0, None
    while True:
        with transaction.atomic(using=using):
            # From ``reached`` on, not after it: callbacks created in the same
            # microsecond as the last one taken may not all have fitted in its batch.
            batch = old if reached is None else old.filter(create_datetime__gte=reached)
            rows = list(batch[:batch_size])
            if not rows:
                break
            count = _delete_callbacks([pk for pk, _ in rows], using)
        reached = rows[-1][1]
        deleted += count
        if on_batch is not None:
            on_batch(count)
    if vacuum and deleted:
        _reclaim_space()
    return deleted


def _delete_callbacks(ids: list[int], using: str) -> int:
    """Delete the callbacks ``ids`` and their attempts in SQL (Django's ``delete()``
    would load the callbacks to cascade), as many ids a statement as the database
    takes. Returns how many callbacks were deleted."""
    deleted = 0
    size = connections[using].ops.bulk_batch_size(["pk"], ids)
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        Attempt.objects.using(using).filter(callback_id__in=chunk)._raw_delete(using)
        deleted += Callback.objects.using(using).filter(pk__in=chunk)._raw_delete(using)
    return deleted


def _reclaim_space() -> None:
    using = router.db_for_write(Callback)
    connection = connections[using]
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    with connection.cursor() as cursor:
        for model in (Callback, Attempt):
            cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
