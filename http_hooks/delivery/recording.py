"""Writing a window of outcomes (``record_outcomes``) for the sender, the callbacks
as they were when it fails."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from ..models import Callback
from ..transport import Outcome
from .outcomes import CALLBACK_RESULT_FIELDS, DeliveryReport, record_outcomes


def record(
    callbacks: Sequence[Callback],
    outcomes: Sequence[Outcome],
    report: DeliveryReport,
    probes: Collection[int],
    *,
    reconnect_delays: Sequence[float] | None = None,
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
