"""Celery tasks: the ``celery`` dispatch mode (``HTTP_HOOKS["DISPATCH"] = "celery"``).

Each new callback is queued after the commit that stored it
(``enqueue_callbacks``, called by the outbox through ``on_commit``), and a
worker sends it with the same ``send_callbacks`` as every other entry point.
``send_due_callbacks`` is the task to schedule with Celery beat: it sends
whatever is due, retries included, and anything whose enqueueing was lost::

    CELERY_BEAT_SCHEDULE = {
        "http-hooks": {"task": "http_hooks.send_due_callbacks", "schedule": 10.0},
    }

Celery is an optional extra: without it this module still imports, the
functions are plain functions, and ``enqueue_callbacks`` logs an error (the
system check ``http_hooks.E009`` reports the setting first).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from .delivery import DeliveryReport, send_callbacks
from .settings import hooks_settings

try:
    from celery import shared_task
except ModuleNotFoundError:
    shared_task = None

logger = logging.getLogger(__name__)


def _task(name: str) -> Callable[[Callable[..., Any]], Any]:
    """Register the function as a Celery task, when Celery is installed."""

    def register(function: Callable[..., Any]) -> Any:
        if shared_task is None:
            return function
        return shared_task(name=name, ignore_result=True)(function)

    return register


def _counts(report: DeliveryReport) -> dict[str, int]:
    return {"sent": report.sent, "retried": report.retried, "failed": report.failed}


@_task("http_hooks.send_callbacks")
def send_listed_callbacks(callback_ids: list[int]) -> dict[str, int]:
    """Send the listed callbacks that are still waiting and due.

    New callbacks are due at once. A task delivered again (a worker lost, a
    late acknowledgement) finds a failed one waiting for its retry and leaves
    it to its schedule.
    """
    return _counts(send_callbacks(callback_ids=callback_ids, due_only=True))


@_task("http_hooks.send_due_callbacks")
def send_due_callbacks() -> dict[str, int]:
    """Send every due callback: the periodic task for Celery beat."""
    return _counts(send_callbacks())


def enqueue_callbacks(ids: Sequence[int]) -> None:
    """Queue callbacks for a worker, on ``CELERY_QUEUE`` (Celery's default queue when None).

    Runs after the commit that stored them, so it must never raise into the
    user's code: if the broker cannot be reached the error is logged, and
    ``send_due_callbacks`` sends the callbacks on its next run.
    """
    if shared_task is None:
        logger.error("DISPATCH is 'celery' but Celery is not installed; callbacks %s wait", ids)
        return
    try:
        send_listed_callbacks.apply_async(args=[list(ids)], queue=hooks_settings.CELERY_QUEUE)
    except Exception:
        logger.exception(
            "could not queue callbacks %s; send_due_callbacks will send them", list(ids)
        )
