"""The metrics in prometheus_client's terms; imported only by ``http_hooks.metrics.loaded``.

Two kinds:

- Counted by the process that sends, as it records each window of outcomes:
  ``http_hooks_deliveries_total{hook, outcome}`` and
  ``http_hooks_attempt_duration_seconds{hook}`` (``hook`` empty, which Prometheus
  reads as no label, with ``METRICS_BY_HOOK`` off: a project with thousands of
  hooks would otherwise export a dozen series per hook). They live in that process
  (with ``PROMETHEUS_MULTIPROC_DIR`` set, in its files there, which the
  endpoint of any process adds up).
- Read from the database when scraped (``StateCollector``), and reused for
  ``METRICS_CACHE_SECONDS``: callbacks by status, the age of the oldest due
  callback, paused, breaker-open and disabled hooks.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter as Tally
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence

from django.db import DatabaseError, connections, router, transaction
from django.utils.module_loading import import_string
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ..models import Callback, CallbackStatus, DisabledReason
from ..selectors import DeliveryState, delivery_state
from ..settings import hooks_settings
from ..transport import Outcome

logger = logging.getLogger(__name__)

PREFIX = "http_hooks_"
# A try's outcome is what it did to its callback, as ``send_callbacks`` reports it:
# sent, to be retried, or failed for good (the callback is now in ``error``).
OUTCOMES = {
    CallbackStatus.SENT: "sent",
    CallbackStatus.WAITING: "retried",
    CallbackStatus.ERROR: "failed",
}
# Seconds. A webhook receiver answers in tens to hundreds of milliseconds; a try
# lasts at most the connect and read timeouts together (20 s by default).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)
# Seconds each statement of a scrape's database read may take (PostgreSQL).
STATE_TIMEOUT = 2.0
# Who disabled a hook: http_hooks (after a 410, or failing too long), or a user.
DISABLED_BY = (DisabledReason.GONE.value, DisabledReason.FAILING.value, "user")

DELIVERIES = Counter(
    "http_hooks_deliveries",
    "Tries of callbacks by hook and outcome: sent, retried (the callback waits for "
    "its next try) or failed (it ends in error).",
    ["hook", "outcome"],
    registry=None,
)
ATTEMPT_DURATION = Histogram(
    "http_hooks_attempt_duration_seconds",
    "How long each try of a callback took, by hook.",
    ["hook"],
    buckets=DURATION_BUCKETS,
    registry=None,
)
# Set while counting fails, so that it is logged once, not at every window of outcomes.
# Counting comes after the outcomes are committed and must never end a run: in
# multiprocess mode prometheus_client writes each process's counts to a file in
# ``PROMETHEUS_MULTIPROC_DIR``, and a directory that is missing (not created yet,
# removed, a typo) or a file it cannot read made the sender stop with a
# traceback, its other claimed callbacks left ``sending`` until their lease ran out.
COUNTING_FAILED = threading.Event()


def record_attempts(
    batch: Sequence[Callback], outcomes: Sequence[Outcome], recorded: Collection[int]
) -> None:
    """Count a window of tries: one counter step per hook and outcome, one histogram
    child looked up per hook (``labels()`` takes a lock and formats its labels)."""
    tally: Tally[tuple[str, str]] = Tally()
    durations: defaultdict[str, list[float]] = defaultdict(list)
    by_hook = hooks_settings.METRICS_BY_HOOK
    for callback, outcome in zip(batch, outcomes, strict=True):
        if callback.pk in recorded:
            hook = str(callback.hook_id) if by_hook else ""
            tally[hook, OUTCOMES[callback.status]] += 1
            durations[hook].append(outcome.duration_ms / 1000)
    try:
        for (hook, label), count in tally.items():
            DELIVERIES.labels(hook, label).inc(count)
        for hook, seconds in durations.items():
            child = ATTEMPT_DURATION.labels(hook)
            for value in seconds:
                child.observe(value)
    except Exception as exc:  # whatever the file or the library failed with: see above
        if not COUNTING_FAILED.is_set():
            COUNTING_FAILED.set()
            logger.warning(
                "http_hooks metrics: tries not counted until this is fixed: %s: %s",
                type(exc).__name__,
                exc,
            )
        return
    if COUNTING_FAILED.is_set():
        COUNTING_FAILED.clear()
        logger.info("http_hooks metrics: tries are counted again")


class StateCollector(Collector):
    """Gauges read from the database at scrape time (``selectors.delivery_state``),
    kept for ``METRICS_CACHE_SECONDS``.

    A scrape never waits long for a database that is slow or locked: one read at a
    time (a scrape that comes during another's read shows the figures read before,
    or none), and on PostgreSQL each of its statements waits at most
    ``STATE_TIMEOUT`` seconds. Before, a table lock held every scrape for as long
    as it lasted, each with a query of its own, and with them the whole registry
    that django-prometheus serves."""

    def __init__(self) -> None:
        self._state: DeliveryState | None = None
        self._read_at = 0.0
        self._reading = threading.Lock()

    def describe(self) -> Iterator[Metric]:
        """The families without values, so that registering reads no database."""
        return iter(self._families(None))

    def collect(self) -> Iterator[Metric]:
        """The gauges; none when the database cannot be read, so that a scrape of the
        whole registry (django-prometheus's) still shows everything else."""
        now = time.monotonic()
        stale = self._state is None or now - self._read_at >= hooks_settings.METRICS_CACHE_SECONDS
        if stale and self._reading.acquire(blocking=False):
            try:
                self._state = read_state()
            except DatabaseError as exc:
                logger.warning("http_hooks metrics: the database could not be read: %s", exc)
                self._state = None
            finally:
                self._read_at = time.monotonic()
                self._reading.release()
        return iter(self._families(self._state))

    @staticmethod
    def _families(state: DeliveryState | None) -> list[Metric]:
        callbacks = GaugeMetricFamily(
            "http_hooks_callbacks",
            "Callbacks by status: exact up to METRICS_COUNT_LIMIT, beyond it "
            "PostgreSQL's estimate.",
            labels=["status"],
        )
        oldest = GaugeMetricFamily(
            "http_hooks_oldest_due_callback_age_seconds",
            "Seconds since the oldest callback a sender would take now became due "
            "(0: none); paused and disabled hooks' callbacks are not counted.",
        )
        paused = GaugeMetricFamily(
            "http_hooks_hooks_paused",
            "Hooks whose callbacks are held back now (circuit breaker or Retry-After).",
        )
        breaker = GaugeMetricFamily(
            "http_hooks_hooks_breaker_open",
            "Hooks whose circuit breaker is open (paused, or waiting for its probe).",
        )
        disabled = GaugeMetricFamily(
            "http_hooks_hooks_disabled",
            "Disabled hooks, by who disabled them: http_hooks after a 410 (gone) or "
            "failing too long (failing), or a user (user).",
            labels=["reason"],
        )
        if state is not None:
            for status in CallbackStatus.values:
                callbacks.add_metric([status], state.callbacks[status].value)
            oldest.add_metric([], state.oldest_due_seconds)
            paused.add_metric([], state.hooks_paused)
            breaker.add_metric([], state.hooks_breaker_open)
            for reason in DISABLED_BY:
                disabled.add_metric([reason], state.hooks_disabled[reason])
        return [callbacks, oldest, paused, breaker, disabled]


def read_state() -> DeliveryState:
    """``delivery_state``, each statement bounded by ``STATE_TIMEOUT`` on PostgreSQL
    (in a transaction, or a savepoint of the request's, that takes the limit with it).

    Elsewhere in no transaction of its own: SQLite's, begun ``IMMEDIATE`` as the README
    advises, took the write lock for a read, so that a scrape waited for any sender's
    or retention's write (up to the ``timeout``, 20 s in the demo) and then lost its
    gauges, where a read goes on beside a write."""
    using = router.db_for_read(Callback)
    db = connections[using]
    exact_up_to = int(hooks_settings.METRICS_COUNT_LIMIT)
    if db.vendor != "postgresql":
        return delivery_state(exact_up_to=exact_up_to)
    with transaction.atomic(using=using):
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('statement_timeout', %s, true)",
                [str(int(STATE_TIMEOUT * 1000))],
            )
        state = delivery_state(exact_up_to=exact_up_to)
        transaction.set_rollback(True, using=using)  # the limit goes; nothing was written
    return state


class ProcessFiles(Collector):
    """http_hooks' counters and histograms of every process (``PROMETHEUS_MULTIPROC_DIR``),
    without the other metrics of the project found there.

    A directory that is gone or a file that cannot be read leaves them out of that
    scrape, with a warning, as a database that fails leaves out the gauges: the
    endpoint answered a 500 page instead, without the figures it could read."""

    def collect(self) -> Iterator[Metric]:
        try:
            families = MultiProcessCollector(None).collect()  # reads every file now
        except Exception as exc:  # a bad file fails the parser in many ways
            logger.warning(
                "http_hooks metrics: the files of PROMETHEUS_MULTIPROC_DIR %r could not be "
                "read: %s: %s",
                os.environ.get("PROMETHEUS_MULTIPROC_DIR"),
                type(exc).__name__,
                exc,
            )
            return
        for family in families:
            if family.name.startswith(PREFIX):
                yield family


STATE = StateCollector()
_registered_in: list[CollectorRegistry] = []


def register(registry: str | CollectorRegistry | None) -> None:
    """Register the metrics in ``registry`` too (a dotted path, as ``METRICS_REGISTRY``
    holds it), once; None registers them nowhere else."""
    if isinstance(registry, str):
        registry = import_string(registry)
    if registry is None or any(registry is done for done in _registered_in):
        return
    for collector in (DELIVERIES, ATTEMPT_DURATION, STATE):
        registry.register(collector)
    _registered_in.append(registry)


# What ``GET /api/metrics/`` shows: http_hooks' metrics only, whatever the registry.
OWN = CollectorRegistry()
register(OWN)


def exposition(accept: str) -> tuple[bytes, str]:
    """http_hooks' metrics in the format ``accept`` asks for (Prometheus' text format
    unless it asks for OpenMetrics), and its content type. In multiprocess mode the
    counters and histograms are those of every process, from their files."""
    registry = OWN
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        registry.register(ProcessFiles())
        registry.register(STATE)
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type
