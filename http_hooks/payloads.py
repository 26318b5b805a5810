"""Rendering of callback payloads: templates, serializers and the default payload.

Pure functions, no database writes. A template is text with ``{{ path }}``
placeholders; a path is read with ``read_path``, which allows model fields,
relations, properties and plain data attributes only, so that a template can
never call code or change data. Values are escaped for the hook's content type:
inside a JSON string a value is string-escaped, a bare JSON placeholder becomes
a JSON literal, XML values are XML-escaped, everything else is plain text.
The fields of ``HIDDEN_FIELDS`` (password hashes, session keys) are never
shown: a template naming one is refused, and the default payload leaves them out.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import inspect
import itertools
import json
import math
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import defusedxml.ElementTree
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from django.db import models
from django.db.models.fields.files import FieldFile
from django.db.models.options import Options
from django.utils.functional import cached_property as django_cached_property
from rest_framework.utils.encoders import JSONEncoder

from .exceptions import InvalidPayloadError
from .imports import RefusedPath, project_object, shown
from .settings import hooks_settings

JSON_TYPES = frozenset({"application/json"})
# Twice what the REST API takes in a request body (``api.parsers.MAX_DEPTH``): an
# event's payload with a template around it.
MAX_PAYLOAD_DEPTH = 64
TOO_DEEP = object()
XML_TYPES = frozenset({"application/xml", "text/xml"})

_PATH = re.compile(r"^\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*$")
_MISSING = object()
# What a template may read of a file: not its ``path`` on the server, nor what would
# open or read it in storage at each event (``file``, ``size``, an image's ``width``).
FILE_ATTRIBUTES = frozenset({"name", "url"})
# The names every model signal's event gives a template, and whether a path may go
# on past each: ``instance`` is walked along the hook's model, ``event`` has the
# names of ``EVENT_FIELDS``, the others are plain.
BASE_NAMES: Mapping[str, bool] = {
    "instance": True,
    "event_type": False,
    "sender": False,
    "event": False,
}
# What an explicit event (``send_event``) gives a template: ``payload`` is the
# event's JSON, walked by its keys when it renders.
EXPLICIT_EVENT_NAMES: Mapping[str, bool] = {"event": False, "event_type": False, "payload": True}
# ``event.type``: the full type name (``shop.order.created``, ``order.paid``);
# ``event.key``: the explicit event's key, or a model signal's object id.
EVENT_FIELDS = ("type", "key")
PROPERTIES = (property, cached_property, django_cached_property)
DATA_TYPES = (
    models.Model,
    Mapping,
    list,
    tuple,
    set,
    frozenset,
    datetime.date,
    datetime.time,
    datetime.timedelta,
)


# Items an iterable that is no list or tuple (a generator, a set, a queryset) gives a
# payload at most: DRF's encoder reads it whole, and an endless one never ended.
MAX_ITERATED_ITEMS = 100_000


# A JSON string (kept whole: a word inside is text), or the word ``json`` writes for
# a float NaN or infinity.
_NON_FINITE = re.compile(r'("[^"\\]*(?:\\.[^"\\]*)*")|-?Infinity|NaN')


# A decimal's marker, as ``PayloadEncoder`` writes it: one pattern, compiled once (a
# pattern made of each call's own marker was compiled at each call, a save's main cost).
_DECIMAL_MARKER = re.compile(r'"decimal-([0-9a-f]{32})-(\d+)"')


class PayloadEncoder(JSONEncoder):
    """DRF's encoder, plus model instances (as their pk), files (as their name),
    decimals as exact JSON numbers, and iterables of ``MAX_ITERATED_ITEMS`` items at
    most (``ValueError`` beyond).

    DRF's encoder makes a decimal a float: 12345678901234567.89 lost its cents, and
    0.1 could be written 0.1000000000000000055511151231257827 by another float
    printer. ``json`` cannot write a number it does not know, so a decimal goes in
    as a marker string unique to the call and its digits replace the marker once
    the text is written.

    NaN and infinities, float or decimal, are null, as JavaScript's
    ``JSON.stringify`` writes them (``json`` would write ``NaN`` and ``Infinity``,
    which no strict parser takes), or a ``ValueError`` with ``allow_nan=False``.
    ``json``'s encoder in C has no hook for floats: the text is written refusing
    them, which costs nothing, and only when that fails written again with
    ``json``'s words, which are then replaced outside its strings. Iterators are
    read once, for both (``_read``)."""

    def iterencode(self, o: Any, _one_shot: bool = False) -> list[str]:
        # The text whole, as the markers are replaced in it (``dumps`` and ``dump`` alike).
        self._marker = ""
        self._read: dict[int, tuple[Any, list]] = {}
        if not self.allow_nan:
            return [self._text(o, _one_shot)]
        self.allow_nan = False
        try:
            return [self._text(o, _one_shot)]
        except ValueError:
            self.allow_nan = True
            text = self._text(o, _one_shot)
            return [_NON_FINITE.sub(lambda match: match[1] or "null", text)]
        finally:
            self.allow_nan = True

    def _text(self, o: Any, _one_shot: bool) -> str:
        self._decimals: list[str] = []
        text = "".join(super().iterencode(o, _one_shot))
        if self._decimals:
            text = _DECIMAL_MARKER.sub(self._digits, text)
        return text

    def _digits(self, match: re.Match) -> str:
        """A marker's decimal; text that only looks like one (another call's) stays."""
        return self._decimals[int(match[2])] if match[1] == self._marker else match[0]

    def default(self, obj: Any) -> Any:
        if isinstance(obj, decimal.Decimal):
            return self._exact(obj)
        if isinstance(obj, models.Model):
            return obj.pk
        if isinstance(obj, FieldFile):
            return obj.name or None
        # What DRF's encoder reads whole: iterators (generators) and sets. Not every
        # iterable: a lazy string, a mapping or a NumPy array is DRF's to write.
        if isinstance(obj, Iterator | AbstractSet):
            if id(obj) not in self._read:
                self._read[id(obj)] = (obj, list(itertools.islice(obj, MAX_ITERATED_ITEMS + 1)))
            items = self._read[id(obj)][1]
            if len(items) > MAX_ITERATED_ITEMS:
                raise ValueError(f"an iterable of more than {MAX_ITERATED_ITEMS:,} items")
            return items
        return super().default(obj)

    def _exact(self, number: decimal.Decimal) -> str | None:
        if not number.is_finite():
            if self.allow_nan:
                return None
            raise ValueError(f"{number} is no JSON number")
        if not self._marker:
            self._marker = uuid.uuid4().hex
        self._decimals.append(decimal.Decimal.__str__(number))
        return f"decimal-{self._marker}-{len(self._decimals) - 1}"


def to_json(value: Any) -> str:
    return json.dumps(value, cls=PayloadEncoder, ensure_ascii=False)


# --- hidden fields -------------------------------------------------------------


def parse_hidden_field(entry: Any) -> tuple[str, str, str] | None:
    """``(app_label, model, field)`` of a ``HIDDEN_FIELDS`` entry, lower-cased
    like Django's model labels; ``None`` if it is not ``"app_label.Model.field"``."""
    if not isinstance(entry, str):
        return None
    parts = entry.split(".")
    if len(parts) != 3 or not all(part.isidentifier() for part in parts):
        return None
    app_label, model, field = parts
    return app_label.lower(), model.lower(), field


def hidden_names(model: type[models.Model]) -> frozenset[str]:
    """The attribute names of ``model`` whose values no payload may show.

    A field is hidden when an entry names it on ``model`` or on any class
    ``model`` inherits from (abstract, concrete or proxied), and so is a
    forward relation whose value is a hidden field (a foreign key to a
    session is its key), ``pk`` when the primary key is hidden, and a reverse
    one-to-one whose model's key is hidden. Worked out once per model and
    settings change: the save path asks for it on every render.
    """
    cache = hooks_settings.derived("hidden_names", dict)
    names = cache.get(model)
    if names is None:
        names = cache[model] = _hidden_names(model)
    return names


def _named_hidden(model: type[models.Model]) -> set[str]:
    entries = hooks_settings.derived(
        "hidden_entries",
        lambda: [
            parsed
            for parsed in map(parse_hidden_field, hooks_settings.HIDDEN_FIELDS or ())
            if parsed
        ],
    )
    labels = {
        (klass._meta.app_label.lower(), klass._meta.object_name.lower())
        for klass in model.__mro__
        if isinstance(getattr(klass, "_meta", None), Options)
    }
    return {field for app_label, name, field in entries if (app_label, name) in labels}


def _hidden_names(model: type[models.Model]) -> frozenset[str]:
    names: set[str] = set()
    for field in model._meta.get_fields():
        if _is_hidden(model, field, frozenset()):
            names.add(field.name)
            names.add(getattr(field, "attname", field.name))
            if field.auto_created and not field.concrete:
                names.add(field.get_accessor_name())
    if model._meta.pk is not None and _is_hidden(model, model._meta.pk, frozenset()):
        names.add("pk")
    return frozenset(names)


def _is_hidden(model: type[models.Model], field: Any, seen: frozenset) -> bool:
    named = _named_hidden(model)
    if field.name in named or getattr(field, "attname", None) in named:
        return True
    if not field.is_relation or field.many_to_many or field.one_to_many:
        return False
    related = field.related_model
    if related is None:  # a generic foreign key: its target is only known per row
        return False
    if field.auto_created and not field.concrete:  # a reverse one-to-one: its key
        target = related._meta.pk
    elif field.concrete:  # a foreign key's value is its target field's
        target = field.target_field
    else:
        return False
    key = (related, target.name)
    if key in seen:
        return False
    return _is_hidden(related, target, seen | {key})


def shown_pk(instance: Any) -> Any:
    """``instance.pk``, or ``None`` when the primary key is hidden (a session's
    key): what the default payload and a callback's ``object_id`` show."""
    if isinstance(instance, models.Model) and "pk" in hidden_names(type(instance)):
        return None
    return getattr(instance, "pk", None)


def _refuse_hidden(model: type[models.Model], name: str, where: str) -> None:
    if name in hidden_names(model):
        raise InvalidPayloadError(
            f"cannot render {where}: {model._meta.label}.{name} is a hidden field "
            "(HTTP_HOOKS['HIDDEN_FIELDS']); no payload may show it"
        )


# --- templates -----------------------------------------------------------------


@dataclass(frozen=True)
class Placeholder:
    path: tuple[str, ...]
    in_json_string: bool

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


@functools.lru_cache(maxsize=1024)
def parse_template(template: str) -> tuple[str | Placeholder, ...]:
    """Split a template into literal text and placeholders (cached per text).

    Each placeholder knows whether it stands inside a JSON string, found by
    following the quotes of the literal text before it.
    """
    _refuse_template_language(template)
    parts: list[str | Placeholder] = []
    in_string = escaped = False
    position = 0
    for start, end in _placeholders(template):
        literal = template[position:start]
        in_string, escaped = _follow_quotes(literal, in_string, escaped)
        parts.append(literal)
        placeholder = template[start:end]
        path = _PATH.match(placeholder[2:-2])
        if not path:
            hint = " (filters are not supported)" if "|" in placeholder else ""
            raise InvalidPayloadError(
                f"invalid placeholder {placeholder!r}{hint}: use a dotted name like "
                "{{instance.id}}"
            )
        names = tuple(path.group(1).split("."))
        private = [name for name in names if name.startswith("_")]
        if private:
            raise InvalidPayloadError(
                f"invalid placeholder {placeholder!r}: {private[0]!r} is private"
            )
        parts.append(Placeholder(names, in_string))
        position = end
    parts.append(template[position:])
    return tuple(parts)


# Django's template tags and comments, as its lexer finds them: on one line.
_DJANGO_SYNTAX = (("{%", "%}", "tags such as {% if %}"), ("{#", "#}", "comments {# ... #}"))


def _refuse_template_language(template: str) -> None:
    """Refuse Django's template tags and comments, whatever they hold (a comment around
    a placeholder would otherwise send the value it commented out).

    infi.django_http_hooks rendered templates with Django's template language; here
    they would go out as literal text (``{% if instance.paid %}PAID{% endif %}``),
    so a template written for the old package is refused with the reason instead.
    A scan that moves on a line at a time: linear in the text."""
    for opening, closing, what in _DJANGO_SYNTAX:
        start = template.find(opening)
        while start != -1:
            line_end = template.find("\n", start)
            stop = len(template) if line_end == -1 else line_end
            if template.find(closing, start + 2, stop) != -1:
                raise InvalidPayloadError(
                    f"Django template {what} are not supported: a template has "
                    "{{ placeholders }} only"
                )
            start = -1 if line_end == -1 else template.find(opening, line_end)


def _placeholders(template: str) -> Iterator[tuple[int, int]]:
    """Where each ``{{ ... }}`` of ``template`` starts and ends: the first ``}}`` after
    a ``{{`` closes it. A scan, not a lazy regex: retried from every ``{{`` of a text
    with no ``}}``, the regex took quadratic time (100,000 "{": 45 s)."""
    position = 0
    while (start := template.find("{{", position)) != -1:
        end = template.find("}}", start + 2)
        if end == -1:
            return
        yield start, end + 2
        position = end + 2


def _follow_quotes(text: str, in_string: bool, escaped: bool) -> tuple[bool, bool]:
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and in_string:
            escaped = True
        elif char == '"':
            in_string = not in_string
    return in_string, escaped


def render_template(
    template: str, content_type: str, lookup: Callable[[tuple[str, ...]], Any]
) -> str:
    """Render ``template``, asking ``lookup`` for the value of each placeholder;
    ``InvalidPayloadError`` as soon as it is longer than ``TEMPLATE_PAYLOAD_LIMIT``."""
    limit = int(hooks_settings.TEMPLATE_PAYLOAD_LIMIT)
    out = []
    size = 0
    for part in parse_template(template):
        if not isinstance(part, str):
            part = _format(lookup(part.path), content_type, part.in_json_string)
        size += len(part)
        if size > limit:
            raise InvalidPayloadError(
                f"the rendered payload is longer than TEMPLATE_PAYLOAD_LIMIT ({limit} characters)"
            )
        out.append(part)
    return "".join(out)


def _format(value: Any, content_type: str, in_json_string: bool) -> str:
    if content_type in JSON_TYPES:
        if in_json_string:
            return json.dumps(to_text(value), ensure_ascii=False)[1:-1]
        return json_literal(value)
    if content_type in XML_TYPES:
        return xml_escape(to_text(value), {'"': "&quot;", "'": "&apos;"})
    return to_text(value)


def json_literal(value: Any) -> str:
    """A bare JSON value. Decimals keep every digit (a float would round
    12345678901234567.89); NaN and infinities, which JSON has no words for, are null,
    here and in lists and objects (``PayloadEncoder``)."""
    if isinstance(value, decimal.Decimal):
        return str(value) if value.is_finite() else "null"
    return to_json(value)


def to_text(value: Any) -> str:
    """A value as text, the way DRF would show it in JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time | datetime.timedelta):
        return PayloadEncoder().default(value)
    if isinstance(value, models.Model):
        return str(value.pk)
    return to_json(value)


def context_lookup(context: Mapping[str, Any]) -> Callable[[tuple[str, ...]], Any]:
    """A ``lookup`` for ``render_template`` over a signal's context; a name the
    signal did not send is an error, never an empty value."""

    def lookup(path: tuple[str, ...]) -> Any:
        if path[0] not in context:
            raise InvalidPayloadError(
                f"cannot render {'.'.join(path)}: this event has no {path[0]!r}"
            )
        return read_path(context[path[0]], path[1:], root=path[0])

    return lookup


def read_path(value: Any, names: tuple[str, ...], *, root: str = "instance") -> Any:
    """Follow ``names`` from ``value``; ``None`` part-way gives ``None``."""
    walked = root
    for name in names:
        if value is None:
            return None
        value = _read_attribute(value, name, walked)
        walked = f"{walked}.{name}"
    if callable(value) or isinstance(value, models.Manager | models.QuerySet):
        raise InvalidPayloadError(f"cannot render {walked}: it is not a data value")
    if isinstance(value, models.Model):  # it renders as its primary key
        _refuse_hidden(type(value), "pk", walked)
    return value


def _read_attribute(obj: Any, name: str, walked: str) -> Any:
    where = f"{walked}.{name}"
    if name.startswith("_"):
        raise InvalidPayloadError(f"cannot render {where}: private names are not allowed")
    if isinstance(obj, Mapping):
        if name in obj:
            return obj[name]
        raise InvalidPayloadError(f"cannot render {where}: no such key")
    try:
        if isinstance(obj, models.Model):
            _refuse_hidden(type(obj), name, where)
            kind = _model_attribute_kind(type(obj), name)
            if kind == "relation":
                try:
                    return getattr(obj, name)
                except ObjectDoesNotExist:
                    return None
            if kind in {"field", "property"}:
                return getattr(obj, name)
        elif isinstance(obj, FieldFile):
            if name in FILE_ATTRIBUTES:
                return getattr(obj, name)
        elif not isinstance(obj, type):
            static = inspect.getattr_static(type(obj), name, _MISSING)
            if isinstance(static, PROPERTIES):
                return _data_only(getattr(obj, name), where)
            if static is _MISSING and name in getattr(obj, "__dict__", {}):
                return _data_only(obj.__dict__[name], where)
            if static is not _MISSING and _is_plain_data(static):
                return static
    except InvalidPayloadError:
        raise
    except Exception as exc:
        raise InvalidPayloadError(f"cannot render {where}: {type(exc).__name__}: {exc}") from exc
    raise InvalidPayloadError(
        f"cannot render {where}: not a field, relation, property or data attribute"
    )


def _data_only(value: Any, where: str) -> Any:
    """Outside the user's models a path may only reach data, never other objects
    (storages, managers, settings holders) whose attributes it could then walk."""
    if _is_plain_data(value) or isinstance(value, DATA_TYPES):
        return value
    raise InvalidPayloadError(f"cannot render {where}: it is not a data value")


def _is_plain_data(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | decimal.Decimal | uuid.UUID | type(None))


def _model_attribute_kind(model: type[models.Model], name: str) -> str | None:
    """``field``, ``relation``, ``property``, ``many`` or ``None`` for ``name`` on ``model``."""
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        field = None
    if field is not None:
        if field.many_to_many or field.one_to_many:
            return "many"
        return "relation" if field.is_relation else "field"
    if any(f.attname == name for f in model._meta.concrete_fields):
        return "field"
    static = inspect.getattr_static(model, name, _MISSING)
    if isinstance(static, PROPERTIES):
        return "property"
    return None


def check_template_names(
    template: str, model: type[models.Model] | None, names: Mapping[str, bool]
) -> None:
    """Refuse placeholders that no event of the hook can render.

    ``names`` are the top-level names the hook's signals give a template, each
    with whether a path may go on past it (``True`` for a value whose type is
    not known here, such as a custom signal's argument). Under ``instance`` a
    path must follow ``model``'s fields, forward relations and properties, and
    stop at a plain field: ``{{instance.name.upper}}`` can never render.
    """
    for part in parse_template(template):
        if isinstance(part, str):
            continue
        root, *rest = part.path
        if root not in names:
            known = ", ".join(sorted(names))
            raise InvalidPayloadError(
                f"cannot render {part.dotted}: no event of this hook has {root!r} "
                f"(a template can use {known})"
            )
        if root == "instance":
            _check_model_path(model, rest)
        elif root == "event":
            if len(rest) > 1 or (rest and rest[0] not in EVENT_FIELDS):
                raise InvalidPayloadError(
                    f"cannot render {part.dotted}: an event has {', '.join(EVENT_FIELDS)}"
                )
        elif rest and not names[root]:
            raise InvalidPayloadError(
                f"cannot render {part.dotted}: {root} is a plain value, it has no {rest[0]!r}"
            )


def _check_model_path(model: type[models.Model] | None, names: list[str]) -> None:
    current = model
    walked = "instance"
    if model is not None and not names:  # the instance renders as its primary key
        _refuse_hidden(model, "pk", walked)
    for position, name in enumerate(names):
        if current is None:
            return
        where = f"{walked}.{name}"
        _refuse_hidden(current, name, where)
        kind = _model_attribute_kind(current, name)
        if name == "pk":
            # A property of every model, and always the key's plain value (a parent
            # link's id, not the parent): nothing follows it.
            kind = "plain"
        if kind == "many":
            raise InvalidPayloadError(
                f"cannot render {where}: to-many relations are not supported in templates"
            )
        if kind is None:
            raise InvalidPayloadError(
                f"cannot render {where}: {current._meta.label} has no field, relation "
                f"or property {name!r}"
            )
        if kind == "property":
            return  # its value's type is only known when it renders
        field = None if kind == "plain" else _field_or_none(current, name)
        following = names[position + 1 :]
        if kind == "relation" and field is not None and name == field.name:
            current, walked = field.related_model, where
            continue
        if isinstance(field, models.JSONField) or not following:
            return
        if (
            isinstance(field, models.FileField)
            and len(following) == 1
            and _is_file_attribute(field, following[0])
        ):
            return
        raise InvalidPayloadError(
            f"cannot render {where}.{following[0]}: {where} is a plain value, "
            f"it has no {following[0]!r}"
        )


def _field_or_none(model: type[models.Model], name: str):
    try:
        return model._meta.get_field(name)
    except FieldDoesNotExist:
        return None


def _is_file_attribute(field: models.FileField, name: str) -> bool:
    """``name`` of a file is readable: ``FILE_ATTRIBUTES`` only."""
    return name in FILE_ATTRIBUTES


# --- validation ----------------------------------------------------------------


def validate_payload(payload: str, content_type: str) -> None:
    """Raise ``InvalidPayloadError`` unless ``payload`` is valid for ``content_type``.
    JSON nested deeper than ``MAX_PAYLOAD_DEPTH`` is not: Python's parser fails at
    about 1,000 levels with a ``RecursionError``, and sooner the deeper the stack it
    is called from (a template that passed here would fail at each event)."""
    if content_type in JSON_TYPES:
        try:
            data = load_within(
                lambda: json.loads(payload, parse_constant=refuse_constant), MAX_PAYLOAD_DEPTH
            )
        except ValueError as exc:
            raise InvalidPayloadError(f"invalid JSON: {exc}") from exc
        if data is TOO_DEEP:
            raise InvalidPayloadError(
                f"invalid JSON: nested deeper than {MAX_PAYLOAD_DEPTH} levels"
            )
    elif content_type in XML_TYPES:
        try:
            defusedxml.ElementTree.fromstring(payload.encode("utf-8"))
        except Exception as exc:
            raise InvalidPayloadError(f"invalid XML: {exc}") from exc


def load_within(load: Callable[[], Any], limit: int) -> Any:
    """What ``load()`` parses, or ``TOO_DEEP`` when its lists and objects nest deeper
    than ``limit`` levels, a parser's ``RecursionError`` included."""
    try:
        data = load()
    except RecursionError:
        return TOO_DEEP
    return TOO_DEEP if depth_exceeds(data, limit) else data


def depth_exceeds(data: Any, limit: int) -> bool:
    """Whether lists and objects in ``data`` nest deeper than ``limit`` (without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        if depth > limit:
            return True
        stack.extend((item, depth + 1) for item in value)
    return False


def refuse_constant(name: str) -> None:
    """``parse_constant`` of ``json``: ``NaN``, ``Infinity`` and ``-Infinity`` are no JSON."""
    raise ValueError(f"{name} is not JSON")


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` of ``json``: an object with one key twice is refused. In a
    request body ``json`` would keep the last value silently (a receiver may keep the
    first); in a payload written from Python they are two keys JSON writes alike (1
    and "1", None and "null"), one value lost where it is read."""
    data = dict(pairs)
    if len(data) < len(pairs):
        seen = set()
        for name, _ in pairs:
            if name in seen:
                raise ValueError(f"an object has the key {shown(name)} twice in JSON")
            seen.add(name)
    return data


def finite_number(text: str) -> str:
    """The text of a JSON number a double holds: Python reads ``1e400`` as infinity,
    which JSON cannot carry and no receiver can read back."""
    if math.isinf(float(text)):
        raise ValueError(
            f"the number {shown(text)} is out of range (a double's largest is about 1.8e308)"
        )
    return text


class StrictJSONDecoder(json.JSONDecoder):
    """``json``'s decoder, refusing with a ``ValueError`` what it would take silently:
    an object with one key twice (``unique_keys``; ``object_pairs_hook`` replaces it for
    a caller that tells repeated names apart itself), ``NaN`` and ``Infinity``, and a
    number beyond a double's range. ``number`` makes a fraction of its text: ``float``,
    or ``Decimal`` to keep the digits as written. JSON typed into any entry point (a
    request's body, a form's field, a hook's headers) is read with it, so that each
    refuses the same text."""

    def __init__(
        self,
        *,
        number: Callable[[str], Any] = float,
        object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] = unique_keys,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            parse_float=lambda text: number(finite_number(text)),
            parse_constant=refuse_constant,
            object_pairs_hook=object_pairs_hook,
            **kwargs,
        )


def validate_template(
    template: str,
    content_type: str,
    model: type[models.Model] | None,
    names: Mapping[str, bool] = BASE_NAMES,
) -> None:
    """Check a template's names against ``model`` and ``names`` (see
    ``check_template_names``) and its shape against ``content_type``."""
    check_template_names(template, model, names)
    validate_payload(render_template(template, content_type, lambda path: 1), content_type)


# --- serializers and the default payload ---------------------------------------


def import_serializer(path: str) -> type:
    """The DRF serializer class at ``path``; only the project's own code is imported."""
    from rest_framework.serializers import BaseSerializer

    try:
        serializer = project_object(path)
    except RefusedPath as exc:
        raise InvalidPayloadError(
            f"invalid serializer class {shown(path)}: {exc}", field="serializer_class"
        ) from exc
    if not (inspect.isclass(serializer) and issubclass(serializer, BaseSerializer)):
        raise InvalidPayloadError(
            f"{shown(path)} is not a DRF serializer class", field="serializer_class"
        )
    return serializer


def serializer_payload(path: str, instance: Any) -> str:
    serializer = import_serializer(path)
    try:
        return to_json(serializer().to_representation(instance))
    except InvalidPayloadError:
        raise
    except Exception as exc:
        raise InvalidPayloadError(
            f"serializer {path!r} failed: {type(exc).__name__}: {exc}", field="serializer_class"
        ) from exc


def default_payload(instance: Any, event_type: str, model: type[models.Model]) -> str:
    """Every concrete field but the hidden ones; ``object_id`` is ``None`` when
    the primary key is hidden (a session's key)."""
    fields = {}
    if isinstance(instance, models.Model):
        hidden = hidden_names(type(instance))
        for field in instance._meta.concrete_fields:
            if field.name not in hidden:
                fields[field.name] = field.value_from_object(instance)
    return to_json(
        {
            "object_type": model._meta.label_lower,
            "object_id": shown_pk(instance),
            "event_type": event_type,
            "object_serialization": fields,
        }
    )


def build_payload(
    *,
    template: str,
    serializer_class: str,
    content_type: str,
    model: type[models.Model],
    context: Mapping[str, Any],
) -> tuple[str, str]:
    """Return ``(payload, content_type)`` for one event, from the first source that
    applies: the template, the serializer, or the default payload."""
    instance = context.get("instance")
    if template:
        return rendered_template(template, content_type, context)
    if serializer_class:
        payload = serializer_payload(serializer_class, instance)
    else:
        payload = default_payload(instance, context.get("event_type", ""), model)
    # Both are JSON made by json.dumps; only another declared type needs checking.
    if content_type and content_type not in JSON_TYPES:
        validate_payload(payload, content_type)
    return payload, content_type or "application/json"


def rendered_template(
    template: str, content_type: str, context: Mapping[str, Any]
) -> tuple[str, str]:
    """``(payload, content_type)`` of a hook's template over an event's ``context``."""
    payload = render_template(template, content_type, context_lookup(context))
    validate_payload(payload, content_type)
    return payload, content_type


def build_event_payload(
    *,
    template: str,
    content_type: str,
    context: Mapping[str, Any],
    timestamp: datetime.datetime,
    data_json: str,
) -> tuple[str, str]:
    """``(payload, content_type)`` of an explicit event: the hook's template, or the
    Standard Webhooks body ``{"type", "timestamp", "data"}`` (``data_json``, the
    event's payload as JSON, as ``data``; ``timestamp`` when it was sent). The text
    as written, not the payload's data written again: a fraction there is a decimal,
    which would spell 1e+20 1E+20 and 1e-05 0.00001."""
    if template:
        return rendered_template(template, content_type, context)
    event_type, sent_at = to_json(context["event"]["type"]), to_json(timestamp)
    body = f'{{"type": {event_type}, "timestamp": {sent_at}, "data": {data_json}}}'
    if content_type and content_type not in JSON_TYPES:
        validate_payload(body, content_type)
    return body, content_type or "application/json"
