"""A window of outcomes written so that no one callback's outcome stops the others'.

Why: ``record_outcomes`` writes a window (up to ``OUTCOME_WINDOW_SIZE`` callbacks)
in one transaction. A database out of reach is waited for (``with_reconnect``) or
the window kept for a later run (``Sender.unwritten``). An error that writing the
window again would meet again, though (a bug, a row whose outcome cannot be
stored: an attempt number out of the column's range), failed the whole window:
its callbacks stayed ``sending`` until their lease ran out, were claimed and sent
again, and failed again at the same place. Every receiver of the window got its
events over and over, and nothing was recorded.

Such a window is written again one callback at a time, each in its own
transaction, so that the others' outcomes land. Only for an error one row may
bring about (``of_one_callback``): not for one that says something of the whole
database (away, busy or read-only, a statement wrong for it, its own failure),
which every callback would meet, or some of them only while it lasts (a failover
in the middle of the window), and each would end as ``error`` after one try. A
callback whose own write fails too, while others' went through, is ended as
``error`` (a plain UPDATE, under the claim's token as any outcome) and logged with
the traceback, never sent again unless someone resends it. When each callback's
own write went through, none of them is to blame (an exception a signal raised,
say, or a bug of windows only): the window is written all the same, and its error
stands for the caller. When none went through, none is blamed either: what
refuses every row (a CHECK constraint or a trigger on the attempt log, no
partition for the rows of now: PostgreSQL's IntegrityError) is the run's error, as
before; so is a window of one callback that cannot be written, sent again after
each lease.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

from django.db import DatabaseError, DataError, IntegrityError
from django.db.models import F
from django.utils import timezone

from ..models import Callback, CallbackStatus
from ..text import first_line
from ..transport import Outcome
from .outcomes import CALLBACK_RESULT_FIELDS, DeliveryReport, record_outcomes
from .reconnect import with_reconnect

logger = logging.getLogger(__name__)

# What ``record`` says of a callback whose own write failed, once ``end_unrecorded`` has
# ended it, or found it no longer this sender's (its outcome committed before the
# failure, a count after it failing; or taken over once its lease ran out).
UNRECORDED = (
    "callback %s of hook %s: the outcome of its try could not be recorded; "
    "it ends as error and is not sent again unless resent"
)
UNRECORDED_NOT_HELD = (
    "callback %s of hook %s: writing the outcome of its try failed, and it is no longer "
    "this sender's to end (its outcome written before the failure, or taken over by "
    "another sender); it is left as it is"
)


def of_one_callback(exc: Exception) -> bool:
    """Whether ``exc`` may be one callback's own doing, so that the others' outcomes may
    be written without it: no database error at all (a bug, a value Python cannot
    convert, an exception a signal raised), or the database's ``DataError`` (a value it
    cannot store) or ``IntegrityError`` (a constraint, a trigger refusing a row).

    Any other database error says something of the whole database, never of a row:
    away, busy or read-only (``OperationalError``, ``InterfaceError``, a standby's
    ``InternalError``: ``out_of_reach``), a statement wrong for it (``ProgrammingError``,
    ``NotSupportedError``, SQLite's "no such table", an ``OperationalError``), its own
    failure (``InternalError``: XX000, a transaction's state) or one Django has no
    class for."""
    return not isinstance(exc, DatabaseError) or isinstance(exc, DataError | IntegrityError)


def record(
    callbacks: Sequence[Callback],
    outcomes: Sequence[Outcome],
    report: DeliveryReport,
    probes: Collection[int],
    *,
    reconnect_delays: Sequence[float] | None = None,
) -> set[int]:
    """``record_outcomes``; a window that fails for an error a row may bring about is
    written again one callback at a time (see the module's docstring).
    Return the hooks the written outcomes paused or disabled."""
    try:
        return record_restoring(callbacks, outcomes, report, probes, reconnect_delays)
    except Exception as exc:
        if not of_one_callback(exc):
            raise
        failure = exc
    logger.warning(
        "writing a window of %s outcome(s) failed (%s: %s); writing them one at a time",
        len(callbacks),
        type(failure).__name__,
        first_line(failure),
    )
    paused: set[int] = set()
    written = False
    unwritten: list[tuple[Callback, Exception]] = []
    for callback, outcome in zip(callbacks, outcomes, strict=True):
        try:
            paused |= record_restoring((callback,), (outcome,), report, probes, reconnect_delays)
            written = True
        except Exception as exc:
            if not of_one_callback(exc):
                raise
            unwritten.append((callback, exc))
    if not (written and unwritten):
        # None to blame, or none written: what fails every row (a constraint or a
        # trigger on the whole attempt log, a partition missing) is the run's error.
        raise failure
    for callback, exc in unwritten:
        ended = end_unrecorded(callback, exc, reconnect_delays)
        report.failed += ended
        logger.error(
            UNRECORDED if ended else UNRECORDED_NOT_HELD,
            callback.pk,
            callback.hook_id,
            exc_info=exc,
        )
    return paused


def record_restoring(
    callbacks: Sequence[Callback],
    outcomes: Sequence[Outcome],
    report: DeliveryReport,
    probes: Collection[int],
    reconnect_delays: Sequence[float] | None,
) -> set[int]:
    """``record_outcomes``; when it fails, the callbacks are as they were before it,
    so that a later try applies the outcomes once."""
    # As loaded, deferred fields left deferred: reading one would be a query.
    fields = CALLBACK_RESULT_FIELDS
    before = [{n: c.__dict__[n] for n in fields if n in c.__dict__} for c in callbacks]
    try:
        return record_outcomes(
            callbacks, outcomes, report, probes=probes, reconnect_delays=reconnect_delays
        )
    except BaseException:
        for callback, values in zip(callbacks, before, strict=True):
            for name in fields:
                callback.__dict__.pop(name, None)
            callback.__dict__.update(values)
        raise


def end_unrecorded(
    callback: Callback, exc: Exception, reconnect_delays: Sequence[float] | None
) -> int:
    """End ``callback``, whose outcome could not be written, as ``error``, its try
    counted; 1 when this sender still held it, else 0 (its outcome committed before
    what failed, or the callback taken over). A plain UPDATE: none of the code that
    failed (the outcome's state, the attempt log, the counts, health). Said by the
    caller once done, as done: an UPDATE that fails too (the database turned
    read-only since) ended nothing."""
    now = timezone.now()
    details = (
        f"http_hooks could not record the outcome of its last try "
        f"({type(exc).__name__}, see the sender's log); not sent again unless resent"
    )
    held = Callback.objects.filter(
        pk=callback.pk, claim_token=callback.claim_token, status=CallbackStatus.SENDING
    )
    return with_reconnect(
        lambda: held.update(
            status=CallbackStatus.ERROR,
            status_details=details,
            attempts=F("attempts") + 1,
            claimed_until=None,
            update_datetime=now,
        ),
        what="ending a callback whose outcome could not be recorded",
        delays=reconnect_delays,
    )
