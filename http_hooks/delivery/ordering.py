"""Ordered delivery per key: the callbacks of one hook that share an ordering key
(``Hook.ordering_key`` rendered when the event is stored, ``Callback.ordering_key``)
go one at a time, in the order they were created (their ids); other keys, and
callbacks without a key, go as they always do.

The rule is one condition on what a claim may take (``heads``): a keyed
callback is claimable only while it heads its key, that is while no earlier
callback of its hook and key is pending (it is the lowest id of its key's pending
callbacks); pending is ``waiting`` (due or waiting for a
retry), ``sending`` (whatever its lease), or, with ``ORDERED_ON_FAILURE =
"halt"``, ``error``. Every claim of every sender (the loop, ``--processes``, the
Celery and tasks workers, a web request's batch) asks it, in the same statement
that takes the rows.

Why two senders never have two callbacks of one key in flight. Say ``a`` and
``b`` (``a.id < b.id``) share a key and a sender holds ``a``: ``a`` is
``sending``, committed before the claim that took it returned. A claim decides
on ``b`` from one snapshot (PostgreSQL's READ COMMITTED takes one per
statement; a claim is one statement, ``claims._claim_returning``):

- A snapshot taken after ``a`` was claimed shows ``a`` as ``sending``, so ``b``
  is not a head. If that sender died, ``a`` stays ``sending`` with a lease that
  runs out: it blocks ``b`` all the same, and the expired-lease part of a claim
  takes ``a`` again (it heads its key: nothing earlier is pending), so ``a`` is
  re-sent before ``b`` can go.
- A snapshot taken before ``a`` was claimed shows ``a`` as ``waiting``, which
  blocks ``b`` too.
- Only a snapshot in which ``a`` is ``sent`` (or ``error`` with ``skip``), its
  outcome committed, makes ``b`` a head; by then ``a`` is not in flight. ``a``
  is pending again only if an operator resends it (see below).

``FOR UPDATE SKIP LOCKED`` only ever leaves rows out, and a row locked by a
concurrent claim that then commits is re-checked by PostgreSQL against the same
condition (on the same snapshot for the other rows), so it adds no other case.
SQLite runs each claim under its one write lock, and the claim without
``RETURNING`` repeats the condition in its ``UPDATE``: the same rule holds.
One claim takes at most one callback per key, as only the lowest pending id of
a key can head it.

A sender whose lease ran out while it still sent ``a`` (stalled, not dead) may
deliver ``a`` a second time after the sender that took it over: delivery is
at least once, as for every callback, and the ``webhook-id`` tells receivers so.
Resending an earlier callback that was done puts it back in its key's line by
its id: the later ones not yet sent wait for it, one already in flight does not.

A key's next callback goes as soon as its head's outcome is written: the sender
claims again at once (``sender``), and a run restricted to listed callbacks (a
Celery or tasks worker, which leaves the non-heads among its ids) takes the next
heads of the keys it finished itself (``next_heads``), so nobody has to.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Iterable
from functools import reduce
from typing import Any

from django.db import connection
from django.db.models import Min, Q
from django.db.models.expressions import RawSQL

from ..models import MAX_ORDERING_KEY_LENGTH, Callback, CallbackStatus
from ..payloads import context_lookup, render_template
from ..settings import hooks_settings

# What ORDERED_ON_FAILURE may be: a head that ends in ``error`` lets the next go, or
# holds its key until it is resent.
SKIP, HALT = "skip", "halt"
FAILURE_POLICIES = (SKIP, HALT)
# The statuses of the keyed callbacks in ``callback_ordering_idx`` (its condition).
INDEXED_STATUSES = [CallbackStatus.WAITING, CallbackStatus.SENDING, CallbackStatus.ERROR]


def render_ordering_key(template: str, context: dict[str, Any]) -> str:
    """The ordering key of one event: ``template`` rendered as text (``payloads``);
    a key longer than a column holds is stored as its SHA-256, which keeps it apart
    from every other key."""
    key = render_template(template, "text/plain", context_lookup(context))
    if len(key) > MAX_ORDERING_KEY_LENGTH:
        return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
    return key


def blocking_statuses() -> list[str]:
    """The statuses of an earlier callback that hold its key back."""
    statuses = [CallbackStatus.WAITING, CallbackStatus.SENDING]
    if hooks_settings.ORDERED_ON_FAILURE == HALT:
        statuses.append(CallbackStatus.ERROR)
    return statuses


def unordered() -> Q:
    """Callbacks without a key."""
    return Q(ordering_key="")


def heads() -> Q:
    """The keyed callbacks that head their key (see the module): the lowest id of
    each key's pending callbacks.

    Why a list of heads and not a ``NOT EXISTS`` per row: a claim stepped over
    every waiting callback of a key to find its head, with a probe each, and a
    claim over 5,000 keyed callbacks cost 50 ms. The heads are read from the
    partial index ``callback_ordering_idx`` (pending keyed callbacks only, by hook,
    key and id), once per statement: on PostgreSQL by skipping from each key to the
    next (a recursive query, one index descent per key, however long the keys'
    lines), elsewhere by grouping the index.
    """
    statuses = blocking_statuses()
    table = connection.ops.quote_name(Callback._meta.db_table)
    # The index's condition word for word, its values written out: SQLite uses a
    # partial index only for a query that repeats its condition's terms, and a
    # bound parameter repeats no value. They are this module's constants.
    pending = "NOT (ordering_key = '') AND status IN ({}) AND status IN ({})".format(
        ", ".join(f"'{status}'" for status in INDEXED_STATUSES), ", ".join(["%s"] * len(statuses))
    )
    if connection.vendor != "postgresql":
        sql = f"SELECT MIN(id) FROM {table} WHERE {pending} GROUP BY hook_id, ordering_key"
        return Q(pk__in=RawSQL(sql, statuses))
    # PostgreSQL has no skip scan of an index: the first pending callback of the first
    # key, then, key after key, the first of the next key (``LATERAL ... LIMIT 1``).
    order = "ORDER BY hook_id, ordering_key, id LIMIT 1"
    sql = (
        "WITH RECURSIVE ordering_heads AS ("
        f"(SELECT hook_id, ordering_key, id FROM {table} WHERE {pending} {order}) "
        "UNION ALL SELECT next_head.* FROM ordering_heads CROSS JOIN LATERAL ("
        f"SELECT hook_id, ordering_key, id FROM {table} WHERE {pending} "
        "AND (hook_id, ordering_key) > (ordering_heads.hook_id, ordering_heads.ordering_key) "
        f"{order}) AS next_head"
        ") SELECT id FROM ordering_heads"
    )
    return Q(pk__in=RawSQL(sql, statuses * 2))


def heads_only() -> Q:
    """Callbacks without a key, and the heads of the keys; the heads are only read
    when a keyed row is met."""
    return unordered() | heads()


def next_heads(finished: Iterable[Callback]) -> set[int]:
    """The first waiting callback after each keyed callback of ``finished`` that is
    done (``sent``, or ``error``), in one query: what a run restricted to listed
    callbacks takes next."""
    done = [
        callback
        for callback in finished
        if callback.ordering_key and callback.status in (CallbackStatus.SENT, CallbackStatus.ERROR)
    ]
    if not done:
        return set()
    keys = reduce(
        operator.or_,
        (Q(hook_id=c.hook_id, ordering_key=c.ordering_key, pk__gt=c.pk) for c in done),
    )
    firsts = (
        Callback.objects.filter(keys, ~Q(ordering_key=""), status=CallbackStatus.WAITING)
        .values("hook_id", "ordering_key")
        .annotate(first=Min("pk"))
        .order_by()
    )
    return {row["first"] for row in firsts}
