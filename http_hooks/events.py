"""Event types: their names, and which hooks subscribe to an explicit event.

An explicit event (``services.send_event``) has a type name such as
``order.paid``: lowercase segments of ``a-z``, ``0-9`` and ``_``, separated by
``.`` or ``-``. A hook subscribes with ``Hook.event_types``: exact names, a
name ending in ``.*`` (every name under it: ``order.*`` takes ``order.paid``
and ``order.item.added``, not ``order`` itself) or ``*`` (every event).

Model signals have type names too (``model_event_type``): ``<app_label>.<model>.created``,
``.updated`` and ``.deleted`` for the save and delete signals, the signal's
path for any other. A template sees it as ``event.type``; a hook with a model
and signals and event types takes both kinds.

``EventIndex`` answers "which hooks take events of this type, for this owner"
with dictionary lookups: one per name prefix at most, cached per type, built
once from the hooks the registry loads. ``send_event`` never scans the hooks.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any

from .conditions import Conditions, compile_payload_conditions, payload_value
from .exceptions import HttpHooksError, InvalidEventError, InvalidHookError
from .imports import shown

WILDCARD = "*"
MAX_EVENT_TYPE_LENGTH = 200
MAX_EVENT_TYPES = 50
MAX_SEGMENTS = 16
# The (owner, event type) answers an index remembers; past it the cache starts over.
CACHE_SIZE = 10_000

_SEGMENT = "[a-z0-9_]+"
_NAME = re.compile(rf"{_SEGMENT}(?:[.-]{_SEGMENT})*\Z")
# The rules of an event type (``_name_problem``, its length apart) and of a
# subscription (``validate_subscriptions``) as patterns of the API's schema.
_NAME_PATTERN = rf"{_SEGMENT}(?:[.-]{_SEGMENT}){{0,{MAX_SEGMENTS - 1}}}"
EVENT_TYPE_PATTERN = rf"^{_NAME_PATTERN}$"
SUBSCRIPTION_PATTERN = rf"^(?:\*|{_NAME_PATTERN}(?:\.\*)?)$"
_SEPARATORS = re.compile(r"[.-]")

SAVE_SIGNALS = frozenset(
    {"django.db.models.signals.pre_save", "django.db.models.signals.post_save"}
)
DELETE_SIGNALS = frozenset(
    {"django.db.models.signals.pre_delete", "django.db.models.signals.post_delete"}
)


# --- names ---------------------------------------------------------------------


def validate_event_type(name: Any, *, field: str = "event_type") -> str:
    """``name`` if it is an event type an event can have (no wildcard)."""
    problem = _name_problem(name)
    if problem:
        raise InvalidEventError(f"invalid event type {shown(name)}: {problem}", field=field)
    return name


def is_event_type(name: Any) -> bool:
    """Whether ``name`` is an event type an event can have."""
    return _name_problem(name) is None


def _name_problem(name: Any) -> str | None:
    if not isinstance(name, str):
        return "give a string"
    if not name:
        return "it is empty"
    if len(name) > MAX_EVENT_TYPE_LENGTH:
        return f"at most {MAX_EVENT_TYPE_LENGTH} characters"
    if not _NAME.match(name):
        return (
            "use lowercase segments of a-z, 0-9 and _ separated by '.' or '-' (e.g. 'order.paid')"
        )
    if len(_SEPARATORS.split(name)) > MAX_SEGMENTS:
        return f"at most {MAX_SEGMENTS} segments"
    return None


def validate_subscriptions(entries: Any) -> list[str]:
    """A hook's ``event_types``: names, ``prefix.*`` or ``*``, each once, in order."""
    if entries is None:
        return []
    if isinstance(entries, str | bytes | Mapping) or not isinstance(entries, Iterable):
        raise InvalidHookError(
            'event_types must be a list of event type names (e.g. ["order.paid", "invoice.*"])',
            field="event_types",
        )
    entries = list(itertools.islice(entries, MAX_EVENT_TYPES + 1))
    if len(entries) > MAX_EVENT_TYPES:
        raise InvalidHookError(
            f"a hook has at most {MAX_EVENT_TYPES} event types", field="event_types"
        )
    for entry in entries:
        if entry == WILDCARD:
            continue
        name = entry[:-2] if isinstance(entry, str) and entry.endswith(".*") else entry
        problem = _name_problem(name)
        if not problem and len(entry) > MAX_EVENT_TYPE_LENGTH:
            # Its ".*" too: a longer one would only cover types too long to exist.
            problem = f"at most {MAX_EVENT_TYPE_LENGTH} characters"
        if problem:
            raise InvalidHookError(
                f"invalid event type {shown(entry)} in event_types: {problem}; a wildcard "
                "is allowed only as a last '.*' segment or '*' alone",
                field="event_types",
            )
    return list(dict.fromkeys(entries))


def covering(name: str) -> Iterator[str]:
    """The subscriptions that take events of type ``name`` (or, for ``prefix.*``, that
    cover it): the name itself, ``<prefix>.*`` for each ``.``-prefix, and ``*``."""
    yield name
    stem = name[:-2] if name.endswith(".*") else name
    position = stem.rfind(".")
    while position > 0:
        yield f"{stem[:position]}.*"
        position = stem.rfind(".", 0, position)
    if name != WILDCARD:
        yield WILDCARD


def model_event_type(signal_path: str, short_type: str, model: Any) -> str:
    """The type name of a model signal's occurrence (``short_type``: ``created``,
    ``updated`` or the signal's path, as ``outbox.event_type_for`` gives it)."""
    if signal_path in SAVE_SIGNALS and hasattr(model, "_meta"):
        return f"{model._meta.label_lower}.{short_type}"
    if signal_path in DELETE_SIGNALS and hasattr(model, "_meta"):
        return f"{model._meta.label_lower}.deleted"
    return signal_path


def model_event_types(model: Any, signal_path: str) -> list[str]:
    """Every type name a hook on ``model`` and ``signal_path`` can send."""
    if signal_path in SAVE_SIGNALS:
        return [model_event_type(signal_path, kind, model) for kind in ("created", "updated")]
    return [model_event_type(signal_path, "", model)]


# --- the index -----------------------------------------------------------------


class EventIndex:
    """Which enabled hooks take explicit events of a type: by owner, then by entry.

    Built once per registry load from the hooks that have ``event_types``; each
    hook carries ``event_conditions``, its conditions compiled against a payload.
    The answers are remembered per (owner, type), ``CACHE_SIZE`` of them at most in
    all (then the cache starts over): an owner without hooks of its own shares the
    answer of the hooks with no owner, so sending many owners' events or many types
    costs the process no more memory than that.
    """

    def __init__(self, hooks: Iterable[Any] = (), problems: list[HttpHooksError] | None = None):
        self._owners: dict[str, dict[str, list[Any]]] = {}
        self._cache: dict[tuple[str, str], tuple[Any, ...]] = {}
        for hook in hooks:
            try:
                entries = _compiled(hook)
            except HttpHooksError as exc:
                if problems is not None:
                    problems.append(InvalidHookError(f"hook {hook.pk} ignored for events: {exc}"))
                continue
            by_entry = self._owners.setdefault(hook.owner or "", {})
            for entry in entries:
                by_entry.setdefault(entry, []).append(hook)

    def hooks_for(self, name: str, owner: str = "") -> list[Any]:
        """The hooks that take an event ``name`` sent for ``owner`` ("" for none): those
        with no owner and, when given, the owner's own; never another owner's."""
        owner = owner if owner in self._owners else ""
        hooks = self._cache.get((owner, name))
        if hooks is None:
            found = {
                hook.pk: hook
                for subscriber in {"", owner}
                for entry in covering(name)
                for hook in self._owners.get(subscriber, {}).get(entry, ())
            }
            hooks = tuple(found[pk] for pk in sorted(found))
            if len(self._cache) >= CACHE_SIZE:
                self._cache = {}
            self._cache[owner, name] = hooks
        return list(hooks)

    def subscribed_names(self, owners: Collection[str] | None = None) -> set[str]:
        """The exact names (no wildcard) that hooks subscribe to: every owner's, or
        only those of ``owners``."""
        owned = self._owners.values() if owners is None else map(self._owners.get, owners)
        return {
            entry for by_entry in owned for entry in by_entry or () if not entry.endswith(WILDCARD)
        }


def _compiled(hook: Any) -> list[str]:
    """The entries of the registry's copy of ``hook``, its payload conditions compiled
    on it; worked out once per copy (an index rebuilt for another hook's change
    reuses them).

    Checked again here: a row written around validation must not subscribe a
    string's characters ("*") or a wildcard in the wrong place."""
    entries = getattr(hook, "event_entries", None)
    if entries is None:
        entries = validate_subscriptions(hook.event_types)
        hook.event_conditions = compile_payload_conditions(hook.conditions, label=f"hook {hook.pk}")
        hook.event_entries = entries
    return entries


def accepts(hook: Any, payload: Any) -> bool:
    """Whether ``hook``'s conditions hold for an explicit event's payload."""
    conditions: Conditions | None = getattr(hook, "event_conditions", None)
    return conditions is None or conditions.matches(payload, payload_value)


EMPTY_INDEX = EventIndex()
