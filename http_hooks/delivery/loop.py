"""The ``send_callbacks --loop`` worker."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, close_old_connections

from ..exceptions import HttpHooksError, TransportError
from ..settings import hooks_settings
from .claims import anything_due
from .outcomes import DeliveryReport
from .reconnect import log_database_failure, with_reconnect
from .sender import Sender
from .wakeup import Waiter

logger = logging.getLogger(__name__)


def run_loop(
    *,
    stop: threading.Event,
    hook_id: int | None = None,
    on_report: Callable[[DeliveryReport], Any] | None = None,
) -> DeliveryReport:
    """Send due callbacks until ``stop`` is set: the ``send_callbacks --loop`` worker.

    After a poll that found work the next one follows ``LOOP_MIN_SLEEP`` later;
    each idle poll doubles the wait, up to ``LOOP_MAX_SLEEP``. On PostgreSQL a
    commit that stores callbacks ends the wait at once (``wakeup``), and while
    the worker listens the idle polls, which then only find retries that fell
    due, expired leases and callbacks whose notification was missed, are up to
    ``LOOP_LISTEN_MAX_SLEEP`` apart. A poll runs the sender only when a callback
    is due (``claims.anything_due``), so that idling costs one query a poll. Setting ``stop``
    finishes the transfers in flight and gives back the claimed callbacks not
    yet started. A database error that reconnecting did not cure (a restart, a failover) is
    logged and the worker tries again after ``LOOP_MAX_SLEEP`` instead of dying
    (what a run could not write meanwhile is written by the next one, or, when the
    worker is asked to stop first, tried once more before it ends: ``Sender.let_go``);
    a failed HTTP transport is replaced by a new one (the transfers it held are
    sent again when their lease runs out), and so is the transport of a run that
    failed for any other error, logged with its traceback, after ``LOOP_MAX_SLEEP``.
    """
    total = DeliveryReport()
    min_sleep, max_sleep = (
        float(hooks_settings.LOOP_MIN_SLEEP),
        float(hooks_settings.LOOP_MAX_SLEEP),
    )
    sleep = min_sleep
    with Sender() as sender, Waiter() as waiter:
        while not stop.is_set():
            close_old_connections()
            try:
                # What a run left unwritten when the database went away is written by
                # the next one, due or not: its callbacks are this sender's until then.
                due = sender.behind or with_reconnect(
                    lambda: anything_due(hook_id=hook_id), what="looking for due callbacks"
                )
                report = sender.send(hook_id=hook_id, stop=stop.is_set) if due else DeliveryReport()
            except DatabaseError:
                log_database_failure(
                    logger,
                    "send_callbacks loop: the database failed; trying again in %g s",
                    max_sleep,
                )
                stop.wait(max_sleep)
                continue
            except TransportError:
                logger.exception("send_callbacks loop: the HTTP transport failed; restarting it")
                sender.restart()
                stop.wait(min_sleep)
                continue
            except HttpHooksError:
                raise  # what the worker was given cannot work (a token file it cannot write)
            except Exception:
                # A bug, say in writing an outcome: logged whole, and the worker goes on,
                # so that one bad callback does not stop every hook's deliveries.
                logger.exception(
                    "send_callbacks loop: the run failed; trying again in %g s", max_sleep
                )
                sender.restart()
                stop.wait(max_sleep)
                continue
            total.add(report)
            if report.total:
                sleep = min_sleep
                if on_report:
                    on_report(report)
            waiter.wait(sleep, stop)
            if not report.total:
                sleep = min(sleep * 2, waiter.longest_pause())
        total.add(sender.let_go())
    return total
