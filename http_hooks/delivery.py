"""Sending callbacks: claim a batch, send it concurrently, record the outcome.

This is the one send function of the app; ``send_callbacks`` (command and
loop), the admin, the REST API and the Celery tasks all call
``send_callbacks()`` below.

Why claims with a lease: several senders may run at once. A sender marks the
callbacks it takes as ``sending`` with its own claim token and a lease time;
nobody else takes them while the lease runs, and if the sender dies the lease
expires and another sender picks them up again (at-least-once delivery).
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

import requests
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from requests.adapters import HTTPAdapter

from .headers import parse_headers
from .models import Attempt, Callback, CallbackStatus, Hook
from .settings import hooks_settings
from .signing import signature_headers

logger = logging.getLogger(__name__)

TEST_EVENT_TYPE = "http_hooks.test"
MASKED = "********"
SECRET_HEADER_WORDS = ("authorization", "token", "secret", "key", "password", "cookie", "signature")


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    duration: float = 0.0
    callback_ids: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.sent + self.retried + self.failed

    @property
    def rate(self) -> float:
        return self.total / self.duration if self.duration > 0 else 0.0


@dataclass
class Outcome:
    status_code: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""
    error: str = ""
    duration_ms: int = 0
    request_headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.error and self.status_code is not None and 200 <= self.status_code < 300


def build_session() -> requests.Session:
    """A keep-alive session with a connection pool as large as the worker pool."""
    session = requests.Session()
    size = int(hooks_settings.CONCURRENCY)
    adapter = HTTPAdapter(pool_connections=size, pool_maxsize=size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False
    return session


def retry_delay(attempts: int, *, max_attempts: int | None = None) -> float | None:
    """Seconds until the next try after ``attempts`` tries, or None when they are used up."""
    if attempts >= (max_attempts or int(hooks_settings.MAX_ATTEMPTS)):
        return None
    schedule = list(hooks_settings.RETRY_SCHEDULE)
    base = float(schedule[min(attempts - 1, len(schedule) - 1)])
    jitter = float(hooks_settings.RETRY_JITTER)
    return max(0.0, base * (1 + random.uniform(-jitter, jitter)))


def send_callbacks(
    *,
    hook_id: int | None = None,
    callback_ids: Sequence[int] | None = None,
    progress: Callable[[int], None] | None = None,
) -> DeliveryReport:
    """Send every due callback (of one hook, or the listed ones) and return a summary."""
    started = time.monotonic()
    report = DeliveryReport()
    session = build_session()
    workers = int(hooks_settings.CONCURRENCY)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http_hooks") as pool:
            while True:
                batch = claim_batch(hook_id=hook_id, callback_ids=callback_ids)
                if not batch:
                    break
                outcomes = list(pool.map(lambda cb: deliver(session, cb), batch))
                record_outcomes(batch, outcomes, report)
                if progress:
                    progress(len(batch))
    finally:
        session.close()
    report.duration = time.monotonic() - started
    return report


def claim_batch(
    *, hook_id: int | None = None, callback_ids: Sequence[int] | None = None
) -> list[Callback]:
    """Take up to ``BATCH_SIZE`` due callbacks for this sender, exclusively."""
    now = timezone.now()
    token = uuid.uuid4()
    lease_until = now + timedelta(seconds=int(hooks_settings.LEASE_SECONDS))
    due = Q(status=CallbackStatus.WAITING)
    if callback_ids is None:
        due &= Q(next_attempt_at__lte=now)
    claimable = due | Q(status=CallbackStatus.SENDING, claimed_until__lt=now)
    candidates = Callback.objects.filter(claimable)
    if hook_id is not None:
        candidates = candidates.filter(hook_id=hook_id)
    if callback_ids is not None:
        candidates = candidates.filter(pk__in=list(callback_ids))
    size = int(hooks_settings.BATCH_SIZE)
    with transaction.atomic():
        ids = list(candidates.order_by("next_attempt_at", "id").values_list("pk", flat=True)[:size])
        if not ids:
            return []
        Callback.objects.filter(claimable, pk__in=ids).update(
            status=CallbackStatus.SENDING, claim_token=token, claimed_until=lease_until
        )
    return list(Callback.objects.filter(claim_token=token).select_related("hook").order_by("id"))


def request_headers_for(callback: Callback, body: bytes) -> dict[str, str]:
    headers = dict(callback.headers or {})
    headers.setdefault("User-Agent", str(hooks_settings.USER_AGENT))
    if callback.content_type:
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        headers["Content-Type"] = callback.content_type
    headers.update(
        signature_headers(
            callback.hook.signing_secrets(), str(callback.event_id), int(time.time()), body
        )
    )
    return headers


def deliver(session: requests.Session, callback: Callback) -> Outcome:
    """One HTTP try of ``callback``; never raises."""
    body = (callback.payload or "").encode("utf-8")
    outcome = Outcome()
    started = time.monotonic()
    try:
        headers = request_headers_for(callback, body)
        outcome.request_headers = mask_headers(headers)
        response = session.request(
            callback.http_method,
            callback.target_url,
            data=body if body else None,
            headers=headers,
            timeout=(hooks_settings.connect_timeout, hooks_settings.read_timeout),
            allow_redirects=False,
            stream=True,
        )
        try:
            outcome.status_code = response.status_code
            outcome.response_headers = dict(response.headers)
            limit = int(hooks_settings.RESPONSE_BODY_LIMIT)
            raw = response.raw.read(limit, decode_content=True) or b""
            outcome.response_body = raw.decode("utf-8", errors="replace")
        finally:
            response.close()
        if not outcome.ok:
            outcome.error = f"HTTP {response.status_code}"
    except requests.RequestException as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:
        logger.exception("callback %s: unexpected error while sending", callback.pk)
        outcome.error = f"{type(exc).__name__}: {exc}"
    outcome.duration_ms = int((time.monotonic() - started) * 1000)
    return outcome


def mask_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers as logged in an Attempt: values of secret-looking names are masked."""
    return {
        name: MASKED
        if any(word in name.lower() for word in SECRET_HEADER_WORDS) and name != "webhook-id"
        else value
        for name, value in headers.items()
    }


def record_outcomes(
    batch: Sequence[Callback],
    outcomes: Sequence[Outcome],
    report: DeliveryReport,
    *,
    max_attempts: int | None = None,
) -> None:
    """Write the attempts and the callbacks' new state, in bulk."""
    now = timezone.now()
    attempts = []
    for callback, outcome in zip(batch, outcomes, strict=True):
        callback.attempts += 1
        attempts.append(
            Attempt(
                callback_id=callback.pk,
                number=callback.attempts,
                attempted_at=now,
                duration_ms=outcome.duration_ms,
                request_headers=outcome.request_headers,
                response_status=outcome.status_code,
                response_headers=outcome.response_headers,
                response_body=outcome.response_body,
                error=outcome.error,
            )
        )
        callback.last_response_status = outcome.status_code
        callback.claim_token = None
        callback.claimed_until = None
        callback.update_datetime = now
        report.callback_ids.append(callback.pk)
        if outcome.ok:
            callback.status = CallbackStatus.SENT
            callback.status_details = f"HTTP {outcome.status_code}"
            report.sent += 1
            continue
        delay = retry_delay(callback.attempts, max_attempts=max_attempts)
        if delay is None:
            callback.status = CallbackStatus.ERROR
            callback.status_details = f"{outcome.error} (attempt {callback.attempts}, giving up)"
            report.failed += 1
        else:
            callback.status = CallbackStatus.WAITING
            callback.next_attempt_at = now + timedelta(seconds=delay)
            callback.status_details = (
                f"{outcome.error} (attempt {callback.attempts}, "
                f"next at {callback.next_attempt_at.isoformat()})"
            )
            report.retried += 1
        logger.info(
            "callback %s of hook %s failed: %s", callback.pk, callback.hook_id, outcome.error
        )
    with transaction.atomic():
        Attempt.objects.bulk_create(attempts)
        Callback.objects.bulk_update(
            batch,
            [
                "status",
                "status_details",
                "attempts",
                "next_attempt_at",
                "last_response_status",
                "claim_token",
                "claimed_until",
                "update_datetime",
            ],
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
        headers=parse_headers(hook.headers),
        payload=json.dumps(payload),
        content_type="application/json",
        status=CallbackStatus.SENDING,
        claim_token=uuid.uuid4(),
        claimed_until=now + timedelta(seconds=int(hooks_settings.LEASE_SECONDS)),
        next_attempt_at=now,
        create_datetime=now,
        update_datetime=now,
    )
    callback.hook = hook
    session = build_session()
    try:
        outcome = deliver(session, callback)
    finally:
        session.close()
    record_outcomes([callback], [outcome], DeliveryReport(), max_attempts=1)
    return callback.attempt_log.latest("id")
