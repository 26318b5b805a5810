"""Rows inserted in bulk without the model machinery: the app's two hottest inserts.

Why: ``bulk_create`` and ``QuerySet._insert`` compile the statement anew each
time and send every value of every field through the field's methods (a model
instance per row, too, for ``bulk_create``). For the callbacks of a user's save
and for an outcome window's attempt log, that cost more CPU than the work
around them (``bench/save_path.py``, ``bench/delivery.py``). Here each
statement is written once per database (and row count, on SQLite), and only
the values that need it (dates, JSON, UUIDs) go through their field: the
callers pass the others as the database takes them (``str``, ``int``, ``None``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from functools import cache, partial
from typing import Any, TypeVar

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

from .text import storable_text

# What a driver does not take as Python holds it, or takes differently per database.
ADAPTED_TYPES = frozenset({"DateTimeField", "JSONField", "UUIDField"})

# Defaults that instances may share.
IMMUTABLE = (str, int, float, Decimal, bytes, tuple, frozenset, type(None))

M = TypeVar("M", bound=Model)


@cache
def instance_maker(model: type[M], names: tuple[str, ...]) -> Callable[..., M]:
    """A function making a ``model`` instance from the values of the fields ``names``
    (attnames, in that order), each other field at its default.

    Why: by keyword, ``Model.__init__`` looks each field's default up anew and
    pops every keyword; by position (as Django makes the rows of a query) it only
    sets them. A new callback took 11.5 µs of CPU by keyword, 6.0 µs this way.
    Constant defaults are read once; callable and mutable ones, for each instance.
    """
    fields = model._meta.concrete_fields
    unknown = set(names) - {field.attname for field in fields}
    if unknown:
        raise ValueError(f"{model.__name__} has no field {', '.join(sorted(unknown))}")
    given = {name: index for index, name in enumerate(names)}
    template: list[Any] = []
    computed: list[tuple[int, Field]] = []
    picked: list[tuple[int, int]] = []
    for position, field in enumerate(fields):
        template.append(None)
        if field.attname in given:
            picked.append((position, given[field.attname]))
            continue
        default = field.get_default()
        if callable(field.default) or not isinstance(default, IMMUTABLE):
            computed.append((position, field))
        else:
            template[position] = default

    def make(*values: Any) -> M:
        row = template.copy()
        for position, field in computed:
            row[position] = field.get_default()
        for position, index in picked:
            row[position] = values[index]
        return model(*row)

    return make


_statements: dict[tuple[str, type[Model], tuple[str, ...], int], str] = {}


def row_preparer(
    fields: Sequence[Field], connection: BaseDatabaseWrapper
) -> Callable[[Sequence[Any]], list[Any]]:
    """A function turning one row's values (in ``fields`` order) into the database's.
    It prepares a date object once: the rows written together mostly share one."""
    adapted = []
    for index in _adapted(tuple(fields)):
        field = fields[index]
        prepare_value = partial(field.get_db_prep_save, connection=connection)
        if field.get_internal_type() == "DateTimeField":
            prepare_value = _same_object_once(prepare_value)
        adapted.append((index, prepare_value))

    def prepare(row: Sequence[Any]) -> list[Any]:
        values = list(row)
        for index, prepare_value in adapted:
            values[index] = prepare_value(values[index])
        return values

    return prepare


def _same_object_once(prepare: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``prepare``, whose result for the very object it was last given is reused. By
    identity, not equality: equal datetimes may differ (``fold``, a naive one read in
    the current time zone)."""
    last: list[Any] = [_NOTHING, None]

    def prepared(value: Any) -> Any:
        if value is not last[0]:
            last[:] = [value, prepare(value)]
        return last[1]

    return prepared


_NOTHING = object()


@cache
def _adapted(fields: tuple[Field, ...]) -> tuple[int, ...]:
    return tuple(
        index for index, field in enumerate(fields) if field.get_internal_type() in ADAPTED_TYPES
    )


def table_and_columns(
    model: type[Model], fields: Sequence[Field], connection: BaseDatabaseWrapper
) -> str:
    """``"table" ("column", ...)`` for an INSERT or a COPY into ``model``'s table."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    return f"{quote(model._meta.db_table)} ({columns})"


def insert_returning(
    model: type[Model],
    fields: Sequence[Field],
    rows: Sequence[Sequence[Any]],
    connection: BaseDatabaseWrapper,
) -> list[tuple[Any, ...]] | None:
    """INSERT ``rows`` (values in ``fields`` order) in one statement; return the values
    of the model's ``db_returning_fields`` (its id) for each, in order.

    On PostgreSQL the rows go as one JSON parameter that the statement unpacks
    (``jsonb_to_recordset``), whatever their number. As one value a row, psycopg
    parses again every statement of more than 50 values (it caches fewer) and
    dumps each value in Python: five hooks' callbacks took about 50% more CPU
    that way. Values there are text, numbers, ``None``, dates and UUIDs. On SQLite,
    one value a row.

    None, with nothing written, where this does not serve, and the caller uses
    ``bulk_create``: another database; too many values for one statement on
    SQLite; on PostgreSQL, text it cannot store (a NUL, a lone surrogate: the
    driver refuses it as before, before anything reaches the server, where a JSON
    error would abort the caller's transaction) or more JSON than ``jsonb`` takes.
    """
    count = len(rows)
    vendor = connection.vendor
    if vendor == "sqlite":
        if count > 1 and count > connection.ops.bulk_batch_size(fields, rows):
            return None
        if not connection.features.can_return_rows_from_bulk_insert:  # before SQLite 3.35
            return None
    elif vendor != "postgresql":
        return None
    prepare = row_preparer(fields, connection)
    if vendor == "postgresql":
        prepared = [prepare(row) for row in rows]
        if not all(
            storable_text(value) for row in prepared for value in row if isinstance(value, str)
        ):
            return None
        columns = [field.column for field in fields]
        document = json.dumps(
            [dict(zip(columns, row, strict=True)) for row in prepared],
            default=_json,
            ensure_ascii=False,
        )
        if len(document) > MAX_JSON_CHARACTERS:
            return None
        params = [document]
    else:
        params = [value for row in rows for value in prepare(row)]
    with connection.cursor() as cursor:
        cursor.execute(_statement(model, fields, connection, count), params)
        return cursor.fetchall()


# jsonb takes less than 256 MiB of text, at most 4 bytes a character.
MAX_JSON_CHARACTERS = 60 * 2**20


def _statement(
    model: type[Model], fields: Sequence[Field], connection: BaseDatabaseWrapper, count: int
) -> str:
    """The INSERT of ``insert_returning``: one per database, and per row count on SQLite."""
    postgres = connection.vendor == "postgresql"
    key = (
        connection.vendor,
        model,
        tuple(field.column for field in fields),
        0 if postgres else count,
    )
    sql = _statements.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        returned = ", ".join(quote(field.column) for field in model._meta.db_returning_fields)
        if postgres:
            shape = ", ".join(
                f"{quote(field.column)} {field.cast_db_type(connection)}" for field in fields
            )
            values = f"SELECT * FROM jsonb_to_recordset(%s::jsonb) AS rows ({shape})"
        else:
            values = connection.ops.bulk_insert_sql(fields, [["%s"] * len(fields)] * count)
        sql = _statements[key] = (
            f"INSERT INTO {table_and_columns(model, fields, connection)} {values} "
            f"RETURNING {returned}"
        )
    return sql


def _json(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} does not go into a bulk insert")
