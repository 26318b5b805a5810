"""``WHERE id IN (...)`` for long id lists, at the cost of one parameter.

Why: a claim or an outcome window names hundreds of callbacks, and Django's
``pk__in`` makes a placeholder of each, which Django and psycopg then handle one
by one (``bench/delivery.py`` showed it as a tenth of the sender's CPU). On
PostgreSQL the list goes as one array, ``id = ANY(%s)``. The hooks a claim
leaves out (paused, disabled: ``health.held_hooks``; rate-limited) have no bound,
and a statement takes 32,766 parameters on SQLite by default (65,535 on
PostgreSQL with server-side binding): on SQLite they go as one JSON array
(``json_each``). Elsewhere ``__in`` is kept.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Collection, Iterable
from typing import Any

from django.db import connections
from django.db.models import F, Lookup, Q

from ..exceptions import InvalidFilterError


class AnyOf(Lookup):
    """PostgreSQL's ``field = ANY(array)``; used as an expression, never registered
    (a project's own lookups keep their names)."""

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = [self.lhs.output_field.get_db_prep_value(v, connection) for v in self.rhs]
        # Cast, or psycopg picks the array's type from its largest value (int2[]).
        array_type = self.lhs.output_field.cast_db_type(connection)
        return f"{lhs} = ANY(%s::{array_type}[])", [*lhs_params, values]


class InJSONArray(Lookup):
    """SQLite's ``field IN (SELECT value FROM json_each(array))``, the array one JSON
    text; used as an expression, never registered."""

    lookup_name = "in_json_array"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = [self.lhs.output_field.get_db_prep_value(v, connection) for v in self.rhs]
        return f"{lhs} IN (SELECT value FROM json_each(%s))", [*lhs_params, json.dumps(values)]


# Ids a call lists at most (``services.check_ids``; a task's chunk, ``dispatch``): its
# queries hold them, some twice, and SQLite takes 32,766 or 250,000 parameters a
# statement, depending on its build (more was its OperationalError, "too many SQL
# variables", as a database failure).
MAX_LISTED_IDS = 10_000


def listed(items: Iterable[Any], field: str, *, what: str = "ids") -> list[Any]:
    """``items`` as a list of ``MAX_LISTED_IDS`` at most, read no further than one more:
    ``InvalidFilterError`` on ``field`` beyond (an endless iterable never ended)."""
    taken = list(itertools.islice(items, MAX_LISTED_IDS + 1))
    if len(taken) > MAX_LISTED_IDS:
        raise InvalidFilterError(
            f"{field} lists at most {MAX_LISTED_IDS:,} {what}: give more in several calls",
            field=field,
        )
    return taken


def ids_among(ids: Collection[int], *, using: str = "default") -> Q | AnyOf:
    """The primary key is one of ``ids``: one array parameter on PostgreSQL, else ``pk__in``."""
    if connections[using].vendor == "postgresql":
        return AnyOf(F("pk"), list(ids))
    return Q(pk__in=list(ids))


def among(field: str, ids: Collection[int], *, using: str = "default") -> Q:
    """``field`` is one of ``ids``, however many (hooks: ``health.held_hooks``, the
    rate-limited ones): one parameter on PostgreSQL and SQLite."""
    vendor = connections[using].vendor
    if vendor == "postgresql":
        return Q(AnyOf(F(field), list(ids)))
    if vendor == "sqlite":
        return Q(InJSONArray(F(field), list(ids)))
    return Q(**{f"{field}__in": list(ids)})
