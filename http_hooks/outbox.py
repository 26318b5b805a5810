"""Turning one signal occurrence into stored Callbacks (the transactional outbox).

The rows are inserted with one ``bulk_create`` on the database of the instance
that fired the signal, inside whatever transaction the user's change runs in:
a rolled-back change leaves no callback, a committed one always has its
callbacks. Anything that must wait for the commit (queueing to the workers of
``DISPATCH``, or the ``NOTIFY`` that wakes the loop workers: ``dispatch``) goes
through ``transaction.on_commit`` on that same database alias.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from django.db import connections, router
from django.utils import timezone

from .bulk import insert_returning, instance_maker
from .delivery.ordering import render_ordering_key
from .dispatch import enqueue_on_commit
from .events import SAVE_SIGNALS, model_event_type
from .exceptions import HttpHooksError
from .headers import check_hook_headers, parse_headers
from .models import Callback, CallbackStatus, Hook
from .payloads import build_event_payload, build_payload, shown_pk

logger = logging.getLogger(__name__)

# The payloads rendered for one event: (payload, content type) by what renders them.
Rendered = dict[tuple, tuple[str, str]]


def event_type_for(signal_path: str, kwargs: dict[str, Any]) -> str:
    """``created``/``updated`` for save signals, the signal's path otherwise."""
    if signal_path in SAVE_SIGNALS:
        if "created" in kwargs:
            created = kwargs["created"]
        else:
            instance = kwargs.get("instance")
            created = getattr(getattr(instance, "_state", None), "adding", False)
        return "created" if created else "updated"
    return signal_path


def record_event(hooks: Iterable[Hook], signal_path: str, kwargs: dict[str, Any]) -> list[Callback]:
    """Insert one Callback per hook for this signal occurrence (``kwargs``: the
    signal's arguments, ``sender`` included)."""
    instance = kwargs.get("instance")
    event_type = event_type_for(signal_path, kwargs)
    context = {key: value for key, value in kwargs.items() if key != "signal"}
    context["event_type"] = event_type
    context.setdefault("instance", None)
    sender = context.get("sender")
    object_id = "" if shown_pk(instance) is None else str(instance.pk)
    context["event"] = {
        "type": model_event_type(signal_path, event_type, sender),
        "key": object_id,
    }
    # A template sees the sending model by its label, never the class itself.
    context["sender"] = sender._meta.label_lower if hasattr(sender, "_meta") else None
    now = timezone.now()
    payloads: Rendered = {}
    callbacks = [build_callback(hook, context, now, payloads=payloads) for hook in hooks]
    using = kwargs.get("using") or router.db_for_write(Callback, instance=instance)
    return _store(callbacks, using)


def record_explicit_event(
    hooks: Iterable[Hook],
    event_type: str,
    payload: Any,
    key: str,
    *,
    payload_json: str,
    using: str,
) -> list[Callback]:
    """Insert one Callback per hook for an explicit event (``services.send_event``):
    ``event_type`` its type, ``payload`` plain JSON data (``payload_json`` as text),
    ``key`` stored as the callback's ``object_id``."""
    now = timezone.now()
    context = {
        "event": {"type": event_type, "key": key},
        "event_type": event_type,
        "payload": payload,
    }
    callbacks = []
    for hook in hooks:
        callback = _new_callback(hook, event_type, "", key, now)
        _fill(
            callback,
            hook,
            context,
            lambda hook=hook: build_event_payload(
                template=hook.payload_template,
                content_type=hook.content_type,
                context=context,
                timestamp=now,
                data_json=payload_json,
            ),
        )
        callbacks.append(callback)
    return _store(callbacks, using)


def record_copied_requests(
    hook: Hook, requests: Iterable[tuple[str, str, str]], *, using: str
) -> list[Callback]:
    """Insert one waiting callback of ``hook``, due now, per request rendered elsewhere
    (``(http_method, payload, content_type)``, already checked): the waiting callbacks
    of infi.django_http_hooks (``legacy``). No event type nor key: the old callbacks
    did not keep them."""
    now = timezone.now()
    model = hook.model.model_class() if hook.model_id else None
    object_type = model._meta.label_lower if model else ""
    callbacks = []
    for http_method, payload, content_type in requests:
        callback = _new_callback(hook, "", object_type, "", now)
        callback.http_method, callback.payload, callback.content_type = (
            http_method,
            payload,
            content_type,
        )
        callbacks.append(callback)
    return _store(callbacks, using)


def _store(callbacks: list[Callback], using: str) -> list[Callback]:
    if not callbacks:
        return callbacks
    insert_callbacks(callbacks, using=using)
    enqueue_on_commit(
        [c.pk for c in callbacks if c.status == CallbackStatus.WAITING and c.pk], using=using
    )
    return callbacks


def insert_callbacks(callbacks: list[Callback], *, using: str) -> None:
    """Store new callbacks with one INSERT statement, their ids set from its ``RETURNING``.

    One statement is atomic by itself, so in autocommit it is one round trip and
    one commit, where ``bulk_create`` wraps even one statement in BEGIN and COMMIT
    (two round trips more on PostgreSQL) and ``save()`` runs the model signals and
    the save machinery once per row (``bulk.insert_returning``: what it spares).
    Where ``insert_returning`` does not serve (another database, more rows than
    one statement takes, text PostgreSQL cannot store) they go through
    ``bulk_create``.
    """
    connection = connections[using]
    fields = _insert_fields()
    rows = [[getattr(callback, field.attname) for field in fields] for callback in callbacks]
    returned = insert_returning(Callback, fields, rows, connection)
    if returned is None:
        Callback.objects.using(using).bulk_create(callbacks)
        return
    for callback, row in zip(callbacks, returned, strict=True):
        for field, value in zip(Callback._meta.db_returning_fields, row, strict=True):
            setattr(callback, field.attname, value)
        callback._state.adding, callback._state.db = False, using


@cache
def _insert_fields() -> list:
    return [field for field in Callback._meta.concrete_fields if not field.primary_key]


def build_callback(
    hook: Hook, context: dict[str, Any], now, *, payloads: Rendered | None = None
) -> Callback:
    """The event's request for ``hook`` (without headers: a try reads the hook's) and
    its ordering key; an ``error`` callback, without a key (it was never part of its
    key's line), if either cannot be built. ``payloads`` keeps the payloads rendered
    for this event: hooks that render alike (same template, serializer and content
    type, as hooks with the default payload do) render once.

    A failure never reaches the user's ``save()``, whatever
    ``DJANGO_HTTP_HOOKS_RAISE_EXCEPTIONS`` says (as in infi.django_http_hooks,
    which recorded bad payloads and headers even with it): the event is kept,
    with the reason in ``status_details``, so that nothing is lost silently.
    """
    model = hook.model.model_class()
    callback = _new_callback(
        hook,
        context["event_type"],
        model._meta.label_lower if model else "",
        context["event"]["key"],
        now,
    )

    def build() -> tuple[str, str]:
        key = (hook.payload_template, hook.serializer_class, hook.content_type, model)
        if payloads is None or key not in payloads:
            rendered = build_payload(
                template=hook.payload_template,
                serializer_class=hook.serializer_class,
                content_type=hook.content_type,
                model=model,
                context=context,
            )
            if payloads is None:
                return rendered
            payloads[key] = rendered
        return payloads[key]

    return _fill(callback, hook, context, build)


_NEW_CALLBACK = (
    "hook_id",
    "event_type",
    "object_type",
    "object_id",
    "owner",
    "target_url",
    "http_method",
    "content_type",
    "status",
    "next_attempt_at",
    "create_datetime",
    "update_datetime",
)


def _new_callback(hook: Hook, event_type: str, object_type: str, object_id: str, now) -> Callback:
    return instance_maker(Callback, _NEW_CALLBACK)(
        hook.pk,
        event_type,
        object_type,
        object_id,
        hook.owner,
        hook.target_url,
        hook.http_method,
        hook.content_type,
        CallbackStatus.WAITING,
        now,
        now,
        now,
    )


def _fill(
    callback: Callback,
    hook: Hook,
    context: dict[str, Any],
    build: Callable[[], tuple[str, str]],
) -> Callback:
    """Set the callback's payload from ``build()`` and its ordering key from ``context``;
    on failure make it an ``error`` callback with the reason (see ``build_callback``)."""
    try:
        # Not stored (a try reads the hook's headers as it goes out), only checked:
        # headers broken around validation make an error callback, as a bad payload does.
        check_hook_headers(parse_headers(hook.headers, stored=True))
        callback.payload, callback.content_type = build()
        if hook.ordering_key:
            callback.ordering_key = render_ordering_key(hook.ordering_key, context)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, HttpHooksError) else f"{type(exc).__name__}: {exc}"
        logger.warning(
            "hook %s: callback stored as error: %s",
            hook.pk,
            reason,
            exc_info=not isinstance(exc, HttpHooksError),
        )
        callback.status = CallbackStatus.ERROR
        callback.status_details = reason
    return callback
