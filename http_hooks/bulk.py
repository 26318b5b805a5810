"""Rows inserted in bulk without the model machinery: the app's two hottest inserts.

Why: ``bulk_create`` and ``QuerySet._insert`` compile the statement anew each
time and send every value of every field through the field's methods (a model
instance per row, too, for ``bulk_create``). For the callbacks of a user's save
and for an outcome window's attempt log, that cost more CPU than the work
around them (``bench/save_path.py``, ``bench/delivery.py``). Here each
statement is written once per database and row count, and only the values
that need it (dates, JSON, UUIDs) go through their field: the callers pass the
others as the database takes them (``str``, ``int``, ``None``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

# What a driver does not take as Python holds it, or takes differently per database.
ADAPTED_TYPES = frozenset({"DateTimeField", "JSONField", "UUIDField"})

_statements: dict[tuple[str, type[Model], tuple[str, ...], int], str] = {}


def row_preparer(
    fields: Sequence[Field], connection: BaseDatabaseWrapper
) -> Callable[[Sequence[Any]], list[Any]]:
    """A function turning one row's values (in ``fields`` order) into the database's."""
    adapted = [(index, fields[index].get_db_prep_save) for index in _adapted(tuple(fields))]

    def prepare(row: Sequence[Any]) -> list[Any]:
        values = list(row)
        for index, prepare_value in adapted:
            values[index] = prepare_value(values[index], connection)
        return values

    return prepare


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

    None, with nothing written, where one statement cannot do it: the database
    returns no rows from an INSERT of several (MySQL), or takes fewer values in one
    statement. The caller then uses ``bulk_create``.
    """
    count = len(rows)
    features = connection.features
    can_return = (
        features.can_return_rows_from_bulk_insert
        if count > 1
        else features.can_return_columns_from_insert
    )
    if not can_return or (count > 1 and count > connection.ops.bulk_batch_size(fields, rows)):
        return None
    key = (connection.vendor, model, tuple(field.column for field in fields), count)
    sql = _statements.get(key)
    if sql is None:
        values = connection.ops.bulk_insert_sql(fields, [["%s"] * len(fields)] * count)
        returning, _ = connection.ops.return_insert_columns(model._meta.db_returning_fields)
        sql = _statements[key] = (
            f"INSERT INTO {table_and_columns(model, fields, connection)} {values} {returning}"
        )
    prepare = row_preparer(fields, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in prepare(row)])
        return cursor.fetchall()
