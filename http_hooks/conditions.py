"""``Hook.conditions``: Django-style lookups tested in Python on the signal's instance.

The grammar, as JSON::

    {"status": "paid", "total__gte": 100}          several keys: all must hold
    {"customer__is_vip": true}                      ``__`` follows a foreign key
    {"not": {"paid": true}}                         negation
    {"any": [{"total__gt": 1000}, {"customer__is_vip": true}]}   or

A key is a path of fields ending in a lookup (``exact`` when none is given):
``exact``, ``iexact``, ``in``, ``gt``, ``gte``, ``lt``, ``lte``, ``isnull``,
``contains``, ``icontains``, ``startswith``, ``endswith``.

``compile_conditions`` is both the validation (when a hook is written) and the
compilation (when the registry loads it): every name must be a concrete field
of the model, every step but the last a forward foreign key or one-to-one, and
each value is converted by its field's ``to_python`` once, so a comparison at
save time is between values of the same type. Names are resolved against the
model's ``_meta`` only: nothing else of the instance is ever read.

Evaluation reads values through a getter: ``instance_value`` for a model
instance, ``payload_value`` for an explicit event's payload (keys of JSON
objects). A payload has no schema, so ``compile_payload_conditions`` checks the
grammar only: ``customer__tier__in`` reads ``payload["customer"]["tier"]``, a
key that is missing (or a step that is not an object) reads as null, and the
values are compared as the JSON gives them. A value of another type than the
condition's (a ``str`` where a number was expected) makes the condition false
and is logged once per compiled hook; no error reaches the user's save.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import operator
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.db.models.fields.files import FieldFile
from django.utils import timezone

from .exceptions import InvalidHookError

logger = logging.getLogger(__name__)

# Bounds of what a hook author may write.
MAX_DEPTH = 8  # nested "not" / "any"
MAX_LOOKUPS = 100  # lookups in all
MAX_IN_VALUES = 1000  # items of one "in" list
MAX_PATH_STEPS = 5  # fields in one key (four foreign keys followed)
MAX_SIZE = 20_000  # bytes of the conditions as JSON (UTF-8)
MAX_INT = 2**63 - 1

# A value the getter could not reach: a null foreign key along the path.
MISSING = object()
# Reads ``path`` (attribute or key names) from the root object; MISSING if it stops short.
Getter = Callable[[Any, Sequence[str]], Any]
Test = Callable[[Any, Getter], bool]


class TypeMismatch(Exception):
    """A value of another type than the condition's: the condition is false."""


def _kind(value: Any) -> type:
    """What a value is compared as: numbers of any type are one kind, as are dates
    and date-times (Python refuses to order those two, which is a mismatch too)."""
    if isinstance(value, bool):
        return bool
    if isinstance(value, int | float | Decimal):
        return Decimal
    if isinstance(value, str):
        return str
    return type(value)


def _same_kind(value: Any, expected: Any) -> None:
    if _kind(value) is not _kind(expected):
        raise TypeMismatch(f"{type(value).__name__} compared with {type(expected).__name__}")


def _exact(value: Any, expected: Any) -> bool:
    if expected is None or value is None:
        return value is expected
    _same_kind(value, expected)
    return value == expected


def _in(value: Any, expected: tuple) -> bool:
    """Among the values of the value's kind: ``["paid", 1]`` takes "paid" and 1."""
    if value is None:
        return False
    kind = _kind(value)
    alike = [item for item in expected if _kind(item) is kind]
    if expected and not alike:
        _same_kind(value, expected[0])  # a mismatch: of no kind of the list
    return value in alike


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def test(value: Any, expected: Any) -> bool:
        if value is None:
            return False
        _same_kind(value, expected)
        try:
            return compare(value, expected)
        except TypeError as exc:  # aware against naive date-times
            raise TypeMismatch(str(exc)) from exc

    return test


def _text(compare: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    def test(value: Any, expected: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, str):
            raise TypeMismatch(f"{type(value).__name__} compared with text")
        return compare(value, expected)

    return test


LOOKUPS: dict[str, Callable[[Any, Any], bool]] = {
    "exact": _exact,
    "iexact": _text(lambda value, expected: value.casefold() == expected),
    "in": _in,
    "gt": _ordered(operator.gt),
    "gte": _ordered(operator.ge),
    "lt": _ordered(operator.lt),
    "lte": _ordered(operator.le),
    "isnull": lambda value, expected: (value is None) is expected,
    "contains": _text(lambda value, expected: expected in value),
    "icontains": _text(lambda value, expected: expected in value.casefold()),
    "startswith": _text(str.startswith),
    "endswith": _text(str.endswith),
}
TEXT_LOOKUPS = frozenset({"iexact", "contains", "icontains", "startswith", "endswith"})
CASELESS_LOOKUPS = frozenset({"iexact", "icontains"})
TEXT_FIELDS = (models.CharField, models.TextField, models.FileField)  # a file: its name
NOT, ANY = "not", "any"


class Conditions:
    """Compiled conditions of one hook: ``matches(root, getter)``."""

    def __init__(self, test: Test, label: str) -> None:
        self._test = test
        self._label = label
        self._warned = False

    def matches(self, root: Any, getter: Getter) -> bool:
        """Whether the conditions hold for ``root``; false on a type mismatch or an
        error reading a value (logged once), never an exception."""
        try:
            return self._test(root, getter)
        except Exception as exc:
            if not self._warned:
                self._warned = True
                logger.warning("%s: conditions taken as false: %s", self._label, exc)
            return False


def instance_value(instance: Any, path: Sequence[str]) -> Any:
    """The value at ``path`` (attribute names checked by ``compile_conditions``) of a
    model instance; MISSING when a foreign key along it is null. Following a
    foreign key whose object is not loaded yet costs a query."""
    value = instance
    for name in path:
        if value is None:
            return MISSING
        value = getattr(value, name)
    # A file is compared by its name, as a query compares the column.
    return value.name if isinstance(value, FieldFile) else value


def payload_value(payload: Any, path: Sequence[str]) -> Any:
    """The value at ``path`` (object keys) of an explicit event's payload; MISSING
    when a key is absent or a step is not an object."""
    value = payload
    for name in path:
        if not isinstance(value, dict) or name not in value:
            return MISSING
        value = value[name]
    return value


def compile_payload_conditions(data: Any, *, label: str = "hook") -> Conditions | None:
    """``compile_conditions`` for an explicit event's payload: the grammar, the lookups
    and the values' JSON types are checked, not the names (a payload has no schema)."""
    return compile_conditions(data, None, label=label)


def compile_conditions(
    data: Any, model: type[models.Model] | None, *, label: str = "hook"
) -> Conditions | None:
    """The conditions ``data`` on ``model`` (None: on a payload), checked and compiled;
    None when there are none. Raises ``InvalidHookError`` (field ``conditions``) for
    the first mistake."""
    if data is None or data == {}:
        return None
    if not isinstance(data, dict):
        raise _error("the conditions must be an object of lookups")
    counter = [0]
    test = _compile_all(data, model, depth=0, counter=counter, where="")
    _check_size(data)
    return Conditions(test, label)


def _error(message: str) -> InvalidHookError:
    return InvalidHookError(f"invalid conditions: {message}", field="conditions")


def _check_size(data: dict) -> None:
    # Depth and counts are bounded already, so this cannot recurse far. A lone
    # surrogate ("\ud800") is no UTF-8: no database could store it.
    try:
        size = len(json.dumps(data, allow_nan=False, ensure_ascii=False).encode())
    except (TypeError, ValueError) as exc:
        raise _error("they must be plain JSON text (UTF-8)") from exc
    if size > MAX_SIZE:
        raise _error(f"at most {MAX_SIZE} bytes as JSON")


def _compile_all(
    data: Any, model: type[models.Model] | None, *, depth: int, counter: list[int], where: str
) -> Test:
    if not isinstance(data, dict) or not data:
        raise _error(f"{where or 'the conditions'} must be an object of at least one lookup")
    if depth > MAX_DEPTH:
        raise _error(f"nested deeper than {MAX_DEPTH} levels")
    tests = [
        _compile_key(key, value, model, depth=depth, counter=counter, where=where)
        for key, value in data.items()
    ]
    if len(tests) == 1:
        return tests[0]
    return lambda root, get: all(test(root, get) for test in tests)


def _compile_key(
    key: Any,
    value: Any,
    model: type[models.Model] | None,
    *,
    depth: int,
    counter: list[int],
    where: str,
) -> Test:
    if not isinstance(key, str):
        raise _error(f"keys must be strings, not {type(key).__name__}")
    if "\x00" in key or len(key) > 200:
        raise _error("a key must be at most 200 characters, without NUL")
    if key == NOT:
        inner = _compile_all(value, model, depth=depth + 1, counter=counter, where='"not"')
        return lambda root, get: not inner(root, get)
    if key == ANY:
        if not isinstance(value, list) or not value:
            raise _error('"any" must be a non-empty list of objects')
        if len(value) > MAX_LOOKUPS:
            raise _error(f'"any" has at most {MAX_LOOKUPS} items')
        branches = [
            _compile_all(item, model, depth=depth + 1, counter=counter, where='an item of "any"')
            for item in value
        ]
        return lambda root, get: any(branch(root, get) for branch in branches)
    counter[0] += 1
    if counter[0] > MAX_LOOKUPS:
        raise _error(f"at most {MAX_LOOKUPS} lookups")
    if model is None:
        path, lookup = _payload_lookup(key)
        expected = _expected_value(key, lookup, None, value)
    else:
        path, lookup, field = resolve_lookup(model, key)
        expected = _expected_value(key, lookup, field, value)
    compare = LOOKUPS[lookup]
    return lambda root, get: _test_value(get(root, path), compare, expected, lookup)


def _payload_lookup(key: str) -> tuple[tuple[str, ...], str]:
    """``(key path, lookup)`` of a key on a payload: ``customer__tier__in``."""
    names = key.split("__")
    lookup = "exact"
    if len(names) > 1 and names[-1] in LOOKUPS:
        lookup = names.pop()
    if "" in names:
        raise _error(f"{key!r}: an empty name (two underscores too many?)")
    if len(names) > MAX_PATH_STEPS:
        raise _error(f"{key!r}: at most {MAX_PATH_STEPS} keys in a path")
    return tuple(names), lookup


def _test_value(
    value: Any, compare: Callable[[Any, Any], bool], expected: Any, lookup: str
) -> bool:
    if value is MISSING:  # a null foreign key on the way: as SQL's LEFT JOIN sees it
        return expected is True if lookup == "isnull" else lookup == "exact" and expected is None
    return compare(value, expected)


def resolve_lookup(
    model: type[models.Model], key: str
) -> tuple[tuple[str, ...], str, models.Field]:
    """``(attribute path, lookup, last field)`` of a key such as ``customer__name__icontains``.

    Each name must be a concrete field of the model reached so far (``pk`` is its
    primary key); only a forward foreign key or one-to-one may be followed. A key
    ending at a foreign key, or at the key its foreign key points to
    (``customer__id``), reads the key column (``customer_id``): no query.
    """
    names = key.split("__")
    lookup = "exact"
    if len(names) > 1 and names[-1] in LOOKUPS:
        lookup = names.pop()
    if "" in names:
        raise _error(f"{key!r}: an empty name (two underscores too many?)")
    if len(names) > MAX_PATH_STEPS:
        raise _error(f"{key!r}: at most {MAX_PATH_STEPS} fields in a path")
    path: list[str] = []
    current, field = model, None
    for index, name in enumerate(names):
        if field is not None:
            if not (field.many_to_one or field.one_to_one) and index == len(names) - 1:
                raise _error(f"{key!r}: unknown lookup {name!r} (use {', '.join(LOOKUPS)})")
            if not (field.many_to_one or field.one_to_one):
                raise _error(
                    f"{key!r}: {field.name} is not a foreign key, {name!r} cannot follow it"
                )
            if index == len(names) - 1 and _names_target(field, name):
                break
            current = field.related_model
        field = _concrete_field(current, name, key)
        path.append(field.name)
    assert field is not None  # a key has at least one name
    if field.is_relation:
        path[-1] = field.attname
        field = field.target_field
    return tuple(path), lookup, field


def _names_target(field: models.Field, name: str) -> bool:
    target = field.target_field
    return name in (target.name, target.attname) or (name == "pk" and target.primary_key)


def _concrete_field(model: type[models.Model], name: str, key: str) -> models.Field:
    from .payloads import hidden_names

    if not name:
        raise _error(f"{key!r}: an empty name")
    try:
        field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    except FieldDoesNotExist:
        raise _error(f"{key!r}: {model._meta.label} has no field {name!r}") from None
    if not getattr(field, "concrete", False) or field.many_to_many:
        raise _error(
            f"{key!r}: {model._meta.label}.{name} is not a concrete field (many-to-many "
            "and reverse relations are not followed)"
        )
    if field.name in hidden_names(model) or name in hidden_names(model):
        raise _error(
            f"{key!r}: {model._meta.label}.{field.name} is a hidden field "
            "(HTTP_HOOKS['HIDDEN_FIELDS'])"
        )
    return field


def _expected_value(key: str, lookup: str, field: models.Field | None, value: Any) -> Any:
    if lookup == "isnull":
        if not isinstance(value, bool):
            raise _error(f"{key!r}: isnull takes true or false")
        return value
    if lookup == "in":
        if not isinstance(value, list):
            raise _error(f"{key!r}: in takes a list")
        if len(value) > MAX_IN_VALUES:
            raise _error(f"{key!r}: in takes at most {MAX_IN_VALUES} values")
        return tuple(_field_value(key, lookup, field, item) for item in value)
    return _field_value(key, lookup, field, value)


def _field_value(key: str, lookup: str, field: models.Field | None, value: Any) -> Any:
    """``value`` as the field holds it (a ``Decimal``, a ``date``, ...); as given for a
    payload (``field`` None)."""
    if value is None:
        if lookup != "exact":
            raise _error(f"{key!r}: {lookup} needs a value, not null")
        return None
    if isinstance(value, dict | list):
        raise _error(f"{key!r}: the value must be a string, number or boolean")
    if isinstance(value, str) and "\x00" in value:
        raise _error(f"{key!r}: a NUL character in the value")
    if isinstance(value, float) and not math.isfinite(value):
        raise _error(f"{key!r}: the value must be a finite number")
    # A float too, past the 64-bit range: PostgreSQL's JSON gives 1e19 back as the
    # integer 10000000000000000000, which a hook read again would refuse.
    if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise _error(f"{key!r}: the number is out of range")
    if lookup in TEXT_LOOKUPS:
        if field is not None and not isinstance(field, TEXT_FIELDS):
            raise _error(f"{key!r}: {lookup} applies to text fields only")
        if not isinstance(value, str):
            raise _error(f"{key!r}: {lookup} takes a string")
        return value.casefold() if lookup in CASELESS_LOOKUPS else value
    if field is None:
        # A payload's fractions are decimals (``services.plain_json``): 9.9 is their 9.90.
        return Decimal(repr(value)) if isinstance(value, float) else value
    try:
        converted = field.to_python(value)
    except ValidationError as exc:
        raise _error(f"{key!r}: {' '.join(exc.messages)}") from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise _error(f"{key!r}: not a value of {field.name}: {exc}") from None
    # An integer field's ``to_python`` truncates a float: 1.5 would mean 1.
    if isinstance(value, float) and isinstance(converted, int) and converted != value:
        raise _error(f"{key!r}: {field.name} holds whole numbers, not {value!r}")
    # A naive date-time means the current time zone, as Django reads it in a query.
    if (
        isinstance(converted, datetime.datetime)
        and settings.USE_TZ
        and timezone.is_naive(converted)
    ):
        converted = timezone.make_aware(converted)
    return converted
