"""The sender: claim, send and record batch after batch (and the test event)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from django.utils import timezone

from ..exceptions import InvalidFilterError
from ..models import Attempt, Callback, CallbackStatus, Hook
from ..settings import hooks_settings
from ..transport import Outcome, Request, Transport
from .claims import claim_batch, renew_claims
from .outcomes import DeliveryReport, record_outcomes
from .request import logged_headers, requests_for

TEST_EVENT_TYPE = "http_hooks.test"


class Sender:
    """A transport (``CONCURRENCY`` transfers at once over keep-alive connections),
    reused batch after batch (and poll after poll in loop mode)."""

    def __init__(self) -> None:
        self.transport = Transport()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.transport.close()

    def restart(self) -> None:
        """A new transport in place of one that failed."""
        self.transport.close()
        self.transport = Transport()

    def send(
        self,
        *,
        hook_id: int | None = None,
        callback_ids: Sequence[int] | None = None,
        due_only: bool = False,
        limit: int | None = None,
        progress: Callable[[int], Any] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> DeliveryReport:
        """Claim, send and record batch after batch until none is left, ``limit``
        callbacks were tried, or ``stop()``.

        Listed callbacks are due whatever their retry time, so each is tried
        once per run: a failed one is not claimed again straight away.
        """
        started = time.monotonic()
        report = DeliveryReport()
        untried = None if callback_ids is None else set(callback_ids)
        left = limit
        while not (stop and stop()) and untried != set() and left != 0:
            batch = claim_batch(hook_id=hook_id, callback_ids=untried, due_only=due_only, size=left)
            if not batch:
                break
            record_outcomes(batch, send(self.transport, batch, progress), report)
            if left is not None:
                left -= len(batch)
            if untried is not None:
                untried.difference_update(c.pk for c in batch)
        report.duration = time.monotonic() - started
        return report


def send(
    transport: Transport, batch: Sequence[Callback], progress: Callable[[int], Any] | None = None
) -> list[Outcome]:
    """One try of each callback of a claimed batch, renewing its lease while in flight.

    Each request is made (and signed) as its transfer starts: a batch can take
    minutes to get through, and receivers refuse old signature timestamps.
    """
    requests: list[Request | None] = [None] * len(batch)
    make_request = requests_for(batch)

    def request_at(index: int) -> Request:
        requests[index] = request = make_request(index)
        return request

    outcomes = transport.send_all(
        len(batch),
        request_at,
        on_done=(lambda index, outcome: progress(1)) if progress else None,
        every=(int(hooks_settings.LEASE_SECONDS) / 3, lambda: renew_claims(batch)),
    )
    for callback, request, outcome in zip(batch, requests, outcomes, strict=True):
        if request is not None:
            outcome.request_headers = logged_headers(request.headers, callback.hook.secret_headers)
    return outcomes


def send_callbacks(
    *,
    hook_id: int | None = None,
    callback_ids: Sequence[int] | None = None,
    due_only: bool = False,
    limit: int | None = None,
    progress: Callable[[int], Any] | None = None,
    stop: Callable[[], bool] | None = None,
) -> DeliveryReport:
    """Send every due callback (of one hook, or the listed ones, due or not); return counts.

    With ``due_only`` the listed callbacks are sent only when due (a queued
    task run again must not bring a retry forward); with ``limit`` at most that
    many are tried (one web request sends a batch). ``progress(n)`` is called
    as callbacks finish; ``stop()`` is asked before each batch is claimed, so
    stopping finishes the batch in hand.
    Raises ``InvalidFilterError`` for a hook that does not exist.
    """
    if hook_id is not None and not Hook.objects.filter(pk=hook_id).exists():
        raise InvalidFilterError(f"no hook with id {hook_id}", field="hook_id")
    with Sender() as sender:
        return sender.send(
            hook_id=hook_id,
            callback_ids=callback_ids,
            due_only=due_only,
            limit=limit,
            progress=progress,
            stop=stop,
        )


def send_test_event(hook: Hook) -> Attempt:
    """Send a synthetic ``http_hooks.test`` event to ``hook`` now; return its Attempt.

    The event is a stored callback delivered by the same code as any other
    (signed, policy-checked, logged), but tried once only: a test answers "does
    the receiver work now?", and a retry an hour later would answer nothing.
    """
    now = timezone.now()
    payload = {
        "event_type": TEST_EVENT_TYPE,
        "hook_id": hook.pk,
        "hook_name": hook.name,
        "timestamp": now.isoformat(),
    }
    callback = Callback.objects.create(
        hook=hook,
        event_type=TEST_EVENT_TYPE,
        target_url=hook.target_url,
        http_method=hook.http_method,
        payload=json.dumps(payload),
        content_type="application/json",
        status=CallbackStatus.SENDING,
        claim_token=uuid.uuid4(),
        claimed_until=now + timedelta(seconds=int(hooks_settings.LEASE_SECONDS)),
        next_attempt_at=now,
        create_datetime=now,
        update_datetime=now,
    )
    with Transport(concurrency=1) as transport:
        outcomes = send(transport, [callback])
    record_outcomes([callback], outcomes, DeliveryReport(), max_attempts=1)
    return callback.attempt_log.get()
