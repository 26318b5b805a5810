"""Validation shared by the Python API, the REST API and the admin."""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import signals as model_signals
from django.dispatch import Signal as DjangoSignal

from .conditions import compile_conditions, compile_payload_conditions
from .events import validate_subscriptions
from .exceptions import (
    InvalidFilterError,
    InvalidHookError,
    InvalidModelError,
    InvalidPayloadError,
    InvalidSignalError,
    InvalidTargetURLError,
)
from .headers import (
    MASKED,
    check_hook_headers,
    keep_secret_values,
    parse_header_names,
    parse_headers,
    refuse_unmasking,
)
from .imports import RefusedPath, project_object, shown
from .models import MAX_ORDERING_KEY_LENGTH, ContentTypeChoice, Hook, HttpMethod
from .network import check_target_url
from .outbox import SAVE_SIGNALS
from .owner_fields import check_owned_model
from .payloads import (
    BASE_NAMES,
    EXPLICIT_EVENT_NAMES,
    XML_TYPES,
    check_template_names,
    import_serializer,
    validate_template,
)
from .signing import SECRET_PREFIX
from .text import ascii_digits, label_problem, storable_text

APP_LABEL = "http_hooks"
_B64 = "[A-Za-z0-9+/]"
# Base64 as a secret takes it: padding only where it belongs (Python's decoder also
# takes "AAAA=====" and padding inside).
_BASE64 = re.compile(rf"(?:{_B64}{{4}})*(?:{_B64}{{2}}==|{_B64}{{3}}=)?")
# ``validate_secret``'s rule as a pattern of the API's schema, which says it all:
# 8 to 20 groups of 4 characters and a last short one (24 to 62 bytes), or 21 groups
# and one of a byte at most (63, 64).
SECRET_PATTERN = (
    rf"^{SECRET_PREFIX}(?:(?:{_B64}{{4}}){{8,20}}(?:{_B64}{{2}}==|{_B64}{{3}}=)?"
    rf"|(?:{_B64}{{4}}){{21}}(?:{_B64}{{2}}==)?)$"
)
INIT_SIGNALS = frozenset(
    {"django.db.models.signals.pre_init", "django.db.models.signals.post_init"}
)
# The writable fields of a hook that ``validate_hook`` checks together: the one list
# the service layer, the REST serializer and the admin form are built from.
HOOK_FIELDS = (
    "name",
    "model",
    "signals",
    "event_types",
    "target_url",
    "http_method",
    "headers",
    "secret_headers",
    "content_type",
    "payload_template",
    "serializer_class",
    "rate_limit",
    "changed_fields",
    "conditions",
    "ordering_key",
)
# What Django's model signals send a template besides ``signal`` and ``sender``,
# and whether a path may go on past each (pre_init's ``kwargs`` is a dict). Not
# ``model`` (m2m_changed) nor ``origin`` (the delete signals): a class, a model
# or a queryset, never data.
MODEL_SIGNAL_NAMES: dict[DjangoSignal, Mapping[str, bool]] = {
    model_signals.pre_init: {"args": False, "kwargs": True},
    model_signals.post_init: {},
    model_signals.pre_save: {"raw": False, "using": False, "update_fields": False},
    model_signals.post_save: {
        "created": False,
        "raw": False,
        "using": False,
        "update_fields": False,
    },
    model_signals.pre_delete: {"using": False},
    model_signals.post_delete: {"using": False},
    model_signals.m2m_changed: {"action": False, "reverse": False, "pk_set": False, "using": False},
}
# The sizes a hook may have, whichever entry point writes it.
# Ids are 64-bit (BigAutoField): a larger number is no row's.
MAX_ID = 2**63 - 1
MAX_NAME_LENGTH = 200
MAX_URL_LENGTH = 2000
MAX_SIGNALS = 50
MAX_TEMPLATE_LENGTH = 100_000
# Requests per second of a hook's rate limit at most: beyond, a sender is the limit.
MAX_RATE_LIMIT = 10_000
MAX_CHANGED_FIELDS = 50


def import_signal(path: Any) -> DjangoSignal:
    """Return the ``django.dispatch.Signal`` instance at dotted ``path``.

    Only the project's own code is imported (see ``imports.project_object``).
    """
    stripped = path.strip() if isinstance(path, str) else path
    try:
        signal = project_object(stripped)
    except RefusedPath as exc:
        raise InvalidSignalError(f"invalid signal {shown(stripped)}: {exc}") from exc
    if not isinstance(signal, DjangoSignal):
        raise InvalidSignalError(
            f"invalid signal {shown(stripped)}: it is not a django.dispatch.Signal"
        )
    return signal


def validate_signal_paths(paths: Iterable[Any]) -> list[str]:
    """The hook's signal paths, each checked, stripped and once."""
    return list(_resolve_signals(paths))


def _resolve_signals(paths: Iterable[Any]) -> dict[str, DjangoSignal]:
    if isinstance(paths, str | bytes | Mapping) or not isinstance(paths, Iterable):
        raise InvalidSignalError(f"invalid signals {paths!r}: give a list of dotted paths")
    paths = list(itertools.islice(paths, MAX_SIGNALS + 1))
    if len(paths) > MAX_SIGNALS:
        raise InvalidSignalError(f"a hook has at most {MAX_SIGNALS} signals")
    resolved: dict[str, DjangoSignal] = {}
    for path in paths:
        path = getattr(path, "signal", path)
        signal = import_signal(path)
        resolved.setdefault(path.strip(), signal)
    return resolved


def template_names(
    signals: Iterable[DjangoSignal], *, explicit_events: bool = False
) -> dict[str, bool]:
    """The names a template of a hook on ``signals`` (and, with ``explicit_events``,
    on event types) can use: the ones each kind of event gives (a name only some
    give would fail to render for the others), with whether a path may go on past
    it (see ``payloads.check_template_names``)."""
    kinds = [{**signal_names(signal), **BASE_NAMES} for signal in signals]
    if explicit_events:
        kinds.append(dict(EXPLICIT_EVENT_NAMES))
    common: dict[str, bool] | None = None
    for names in kinds:
        if common is None:
            common = names
        else:
            common = {name: deep or names[name] for name, deep in common.items() if name in names}
    return common if common is not None else dict(BASE_NAMES)


def signal_names(signal: DjangoSignal) -> Mapping[str, bool]:
    """What ``signal`` sends a template besides ``instance``, ``event_type`` and ``sender``.

    Django's model signals are known. A custom signal declares its keyword
    arguments as Django's ``Signal(providing_args=...)`` did before 4.0, by
    setting ``providing_args`` (a list of names) on it; their types are not
    known, so a path may go on past them and is checked when it renders.
    """
    if signal in MODEL_SIGNAL_NAMES:
        return MODEL_SIGNAL_NAMES[signal]
    declared = getattr(signal, "providing_args", None)
    if not isinstance(declared, list | tuple | set | frozenset):
        return {}
    return {name: True for name in declared if isinstance(name, str) and name.isidentifier()}


def resolve_model(value: Any) -> ContentType:
    """The ContentType of ``value``: ``'user'``, ``'auth.user'``, a model class or a ContentType."""
    if isinstance(value, ContentType):
        model = value.model_class()
    elif isinstance(value, type) and issubclass(value, models.Model):
        model = _installed_model(value)
    elif isinstance(value, str) and value.strip():
        model = _model_from_name(value.strip())
    else:
        raise InvalidModelError(f"invalid model {shown(value)}: give 'app_label.model'")
    if model is None:
        raise InvalidModelError(f"invalid model {shown(value)}: it is not installed")
    if model._meta.app_label == APP_LABEL:
        raise InvalidModelError(
            f"hooks on {model._meta.label} are refused: http_hooks' own models would loop"
        )
    return ContentType.objects.get_for_model(model, for_concrete_model=False)


def _installed_model(model: type[models.Model]) -> type[models.Model]:
    """The model of the app registry that ``model`` is (a historical model of a
    migration is the installed one of its label): not ``Model`` itself or an abstract
    model (a content type was made for it, and a hook that could never fire), nor a
    swapped one (``auth.User`` under a custom user model): their saves send no signal."""
    meta = getattr(model, "_meta", None)
    if meta is None or meta.abstract:
        name = getattr(model, "__qualname__", "?")
        raise InvalidModelError(f"invalid model {name}: an abstract model sends no signals")
    try:
        installed = apps.get_model(meta.app_label, meta.model_name)
    except LookupError:
        raise InvalidModelError(f"invalid model {meta.label}: it is not installed") from None
    if installed._meta.swapped:
        raise InvalidModelError(
            f"invalid model {meta.label}: it is swapped for {installed._meta.swapped}"
        )
    return installed


def _model_from_name(name: str) -> type[models.Model] | None:
    if "." in name:
        try:
            return apps.get_model(name)
        except (LookupError, ValueError) as exc:
            raise InvalidModelError(f"invalid model {shown(name)}: no such model") from exc
    matches = [m for m in apps.get_models() if m._meta.model_name == name.lower()]
    if not matches:
        raise InvalidModelError(f"invalid model {shown(name)}: no such model")
    if len(matches) > 1:
        labels = ", ".join(sorted(m._meta.label_lower for m in matches))
        raise InvalidModelError(f"model {name!r} is ambiguous: use one of {labels}")
    return matches[0]


def validate_secret(secret: str) -> str:
    """A Standard Webhooks secret: ``whsec_`` and base64 of 24 to 64 bytes."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise InvalidHookError("the secret must start with 'whsec_'", field="secret")
    encoded = secret[len(SECRET_PREFIX) :]
    if not _BASE64.fullmatch(encoded):
        raise InvalidHookError("the secret must be 'whsec_' + base64", field="secret")
    key = base64.b64decode(encoded)
    if not 24 <= len(key) <= 64:
        raise InvalidHookError("the secret's key must be 24 to 64 bytes long", field="secret")
    return secret


def validate_changed_fields(names: Any, model: type[models.Model] | None) -> list[str]:
    """The names of ``changed_fields``, each once: concrete fields of ``model``, not
    many-to-many, not reverse relations."""
    if names is None or (model is None and isinstance(names, list | tuple) and not names):
        return []
    if model is None:
        raise InvalidHookError(
            "changed_fields applies to a model's saves: the hook has no model",
            field="changed_fields",
        )
    if isinstance(names, str | bytes | Mapping) or not isinstance(names, Iterable):
        raise InvalidHookError(
            "changed_fields must be a list of field names", field="changed_fields"
        )
    names = list(itertools.islice(names, MAX_CHANGED_FIELDS + 1))
    if len(names) > MAX_CHANGED_FIELDS:
        raise InvalidHookError(
            f"changed_fields has at most {MAX_CHANGED_FIELDS} names", field="changed_fields"
        )
    for name in names:
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidHookError(
                f"invalid field name {shown(name)} in changed_fields", field="changed_fields"
            )
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            raise InvalidHookError(
                f"{model._meta.label} has no field {shown(name)} (changed_fields)",
                field="changed_fields",
            ) from None
        if field.name != name:
            raise InvalidHookError(
                f"changed_fields takes field names: {field.name!r}, not {shown(name)}",
                field="changed_fields",
            )
        if not getattr(field, "concrete", False) or field.many_to_many:
            raise InvalidHookError(
                f"{model._meta.label}.{name} is not a concrete field: changed_fields takes "
                "the model's own columns (no many-to-many or reverse relation)",
                field="changed_fields",
            )
    return list(dict.fromkeys(names))


def validate_hook(
    fields: Mapping[str, Any], *, current: Hook | None = None, owner: str | None = None
) -> dict[str, Any]:
    """Check every field of a hook (``HOOK_FIELDS``) together and return the cleaned values.

    ``model`` is a ContentType (see ``resolve_model``) or None; other missing fields
    are empty. A hook has a model and signals, event types, or both. ``current`` is
    the hook being changed (None for a new one): a secret header left out of
    ``headers`` or given as the mask keeps its stored value
    (``headers.keep_secret_values``). ``owner`` is the owner key the hook will have
    (None: the one it has); an owned hook with a model must be on a model of
    ``OWNER_FIELDS``. A hook that changes hands (``owner`` is not ``current``'s)
    keeps no secret value: the previous owner's credentials are never the new
    owner's, who could send them to a URL of their own; only values given anew
    stay. Raises the ``HttpHooksError`` subclass for the first field that is wrong.
    """
    unknown = set(fields) - set(HOOK_FIELDS)
    if unknown:
        raise TypeError(f"unknown hook fields: {', '.join(sorted(unknown))}")
    cleaned = {field: fields.get(field) for field in HOOK_FIELDS}
    for field in ("content_type", "payload_template", "serializer_class"):
        if cleaned[field] is not None and not isinstance(cleaned[field], str):
            raise InvalidHookError(f"{field} must be a string", field=field)
    check_storable_text(cleaned, current)
    name = "" if cleaned["name"] is None else cleaned["name"]
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH:
        raise InvalidHookError(
            f"the name must be a string of at most {MAX_NAME_LENGTH} characters", field="name"
        )
    cleaned["name"] = name.strip()
    signals = _resolve_signals(cleaned["signals"] or [])
    cleaned["signals"] = list(signals)
    event_types = cleaned["event_types"] = validate_subscriptions(cleaned["event_types"])
    model = cleaned["model"].model_class() if cleaned["model"] is not None else None
    _check_kinds(cleaned["model"], signals, event_types)
    target_url = cleaned["target_url"]
    if not isinstance(target_url, str) or not 1 <= len(target_url) <= MAX_URL_LENGTH:
        raise InvalidHookError(
            f"the target URL must be 1 to {MAX_URL_LENGTH} characters", field="target_url"
        )
    check_target_url(target_url)
    http_method = cleaned["http_method"]
    method = http_method.upper() if isinstance(http_method, str) else ""
    if method not in HttpMethod.values:
        raise InvalidHookError(
            f"invalid HTTP method {shown(http_method)}: use one of {', '.join(HttpMethod.values)}",
            field="http_method",
        )
    cleaned["http_method"] = method
    content_type = cleaned["content_type"] = cleaned["content_type"] or ""
    if content_type not in ContentTypeChoice.values:
        allowed = ", ".join(v for v in ContentTypeChoice.values if v)
        raise InvalidHookError(
            f"invalid content type {shown(content_type)}: use one of {allowed} or none",
            field="content_type",
        )
    was_marked = current.secret_headers if current else ()
    secret_headers = cleaned["secret_headers"] = parse_header_names(
        cleaned["secret_headers"], stored=was_marked
    )
    given = parse_headers(cleaned["headers"])
    stored = parse_headers(current.headers, stored=True) if current else {}
    if current is not None and owner is not None and owner != current.owner:
        given = {name: value for name, value in given.items() if value != MASKED}
        stored = {}
    refuse_unmasking(given, stored, was_marked, secret_headers)
    cleaned["headers"] = check_hook_headers(
        keep_secret_values(given, stored, {*secret_headers, *was_marked})
    )
    payload_template = cleaned["payload_template"] = cleaned["payload_template"] or ""
    if not isinstance(payload_template, str) or len(payload_template) > MAX_TEMPLATE_LENGTH:
        raise InvalidPayloadError(
            f"the payload template must be a string of at most {MAX_TEMPLATE_LENGTH} characters"
        )
    serializer_class = cleaned["serializer_class"] or ""
    if not isinstance(serializer_class, str):
        raise InvalidPayloadError(
            "the serializer class must be a dotted path", field="serializer_class"
        )
    serializer_class = cleaned["serializer_class"] = serializer_class.strip()
    names = template_names(signals.values(), explicit_events=bool(event_types))
    if payload_template:
        validate_template(payload_template, content_type, model, names)
    elif content_type in XML_TYPES:
        raise InvalidPayloadError(
            f"invalid XML: without a payload template the payload is JSON, not {content_type}",
            field="content_type",
        )
    if serializer_class:
        if model is None:
            raise InvalidPayloadError(
                "a serializer class renders a model's instance: a hook without a model "
                "sends the event's payload (or its template)",
                field="serializer_class",
            )
        import_serializer(serializer_class)
    cleaned["rate_limit"] = validate_rate_limit(cleaned["rate_limit"])
    if model is not None:
        owned = owner if owner is not None else getattr(current, "owner", "")
        check_owned_model(owned, model)
        if owned and INIT_SIGNALS & set(signals):
            # Whose an instance is cannot be told while it is being built, and
            # following its owner path would cost every load of the model a query.
            raise InvalidSignalError("a hook with an owner cannot listen to pre_init or post_init")
    changed_fields = cleaned["changed_fields"] = validate_changed_fields(
        cleaned["changed_fields"], model
    )
    # By path, as the registry tells save signals apart.
    if changed_fields and not SAVE_SIGNALS & set(signals):
        raise InvalidHookError(
            "changed_fields applies to pre_save and post_save: the hook has neither",
            field="changed_fields",
        )
    if model is not None:
        compile_conditions(cleaned["conditions"], model)
    if event_types:
        # On an explicit event they apply to its payload: the grammar is all there is to check.
        compile_payload_conditions(cleaned["conditions"])
    cleaned["conditions"] = cleaned["conditions"] or {}
    cleaned["ordering_key"] = validate_ordering_key(cleaned["ordering_key"], model, names)
    return cleaned


# A hook's text columns, and the error each one's refusal is.
TEXT_FIELD_ERRORS = {
    "name": InvalidHookError,
    "target_url": InvalidTargetURLError,
    "content_type": InvalidHookError,
    "payload_template": InvalidPayloadError,
    "serializer_class": InvalidPayloadError,
    "ordering_key": InvalidHookError,
}


# The text columns that label a hook, shown in lists, logs and terminals: what
# ``text.label_problem`` refuses is refused in them too, anywhere in the text; the
# spaces around them are then trimmed (``validate_hook``, ``validate_ordering_key``),
# whichever entry point they came through.
LABEL_FIELDS = frozenset({"name", "ordering_key"})


def check_storable_text(fields: Mapping[str, Any], current: Hook | None = None) -> None:
    """Refuse a NUL (PostgreSQL's text cannot hold it) or a lone surrogate (no UTF-8,
    which no database driver can send) in a text field: left to the database, the
    insert failed as a ``DataError`` or a ``UnicodeEncodeError``. In the labels
    (``LABEL_FIELDS``), refuse what ``text.label_problem`` refuses as well.

    Only in text given anew, not in what ``current`` (the hook being changed) stores:
    a NUL that SQLite took before this rule made every change of the hook a 400 on a
    field the client did not send (a name that only names). What the value means is
    still checked on the whole hook (a URL with a NUL cannot be sent, a template is
    checked against the content type it may have been given now)."""
    for field, error in TEXT_FIELD_ERRORS.items():
        value = fields.get(field)
        if current is not None and value == getattr(current, field):
            continue
        if isinstance(value, str) and not storable_text(value):
            raise error(
                f"{field} must be valid text: no NUL character or lone surrogate", field=field
            )
        problem = label_problem(value) if field in LABEL_FIELDS and isinstance(value, str) else None
        if problem:
            raise error(f"invalid {field}: {problem}", field=field)


def _check_kinds(
    model: ContentType | None, signals: Mapping[str, DjangoSignal], event_types: list[str]
) -> None:
    """A hook needs a model and signals, event types, or both."""
    if model is not None and not signals:
        raise InvalidSignalError("a hook on a model needs at least one signal")
    if model is None and signals:
        raise InvalidModelError("a hook with signals needs a model")
    if model is None and not event_types:
        raise InvalidModelError(
            "a hook needs a model and signals, event types (event_types), or both"
        )


def validate_ordering_key(
    template: Any, model: type[models.Model] | None, names: Mapping[str, bool]
) -> str:
    """A hook's ordering key: "" (no order), or a template its events can render
    (``payloads.check_template_names``), rendered as text when an event is stored."""
    if template is None:
        return ""
    if not isinstance(template, str) or len(template) > MAX_ORDERING_KEY_LENGTH:
        raise InvalidHookError(
            f"the ordering key must be a template of at most {MAX_ORDERING_KEY_LENGTH} "
            "characters, such as {{instance.pk}}",
            field="ordering_key",
        )
    template = template.strip()
    try:
        check_template_names(template, model, names)
    except InvalidPayloadError as exc:
        raise InvalidHookError(
            f"invalid ordering key: {exc.message}", field="ordering_key"
        ) from exc
    return template


def is_row_id(text: str) -> bool:
    """``text`` (as a form or a query string gives it) is a row's id: a whole number
    from 1 to ``MAX_ID`` in ASCII digits. Anything else matches no row, and a database
    refuses it (a ValueError, or an OverflowError on SQLite) rather than find nothing."""
    return ascii_digits(text) and len(text) < 20 and 1 <= int(text) <= MAX_ID


def whole_number(value: Any, field: str, *, minimum: int, maximum: int | None = None) -> int:
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


def validate_rate_limit(rate_limit: Any) -> int | None:
    """A hook's rate limit: a whole number of requests per second, or None for none.

    Whole, as Svix's: the bucket holds one second's worth (``delivery.rates``), and
    a fraction of a request could never go out."""
    if rate_limit is None:
        return None
    if isinstance(rate_limit, bool) or not isinstance(rate_limit, int):
        raise InvalidHookError(
            "the rate limit must be a whole number of requests per second, or null for none",
            field="rate_limit",
        )
    if not 1 <= rate_limit <= MAX_RATE_LIMIT:
        raise InvalidHookError(
            f"the rate limit must be 1 to {MAX_RATE_LIMIT:,} requests per second (null for none)",
            field="rate_limit",
        )
    return rate_limit
