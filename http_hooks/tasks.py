"""Celery tasks: the ``celery`` dispatch mode (``HTTP_HOOKS["DISPATCH"] = "celery"``).

Each new callback is queued after the commit that stored it
(``enqueue_callbacks``, called by the outbox through ``on_commit``), and a
worker sends it with the same ``services.send_callbacks`` as every other entry
point.
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

from .services import DeliveryReport, send_callbacks
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
    return _counts(send_callbacks(ids=callback_ids, due_only=True))


@_task("http_hooks.send_due_callbacks")
def send_due_callbacks(hook_id: int | None = None) -> dict[str, int]:
    """Send every due callback (of one hook): the periodic task for Celery beat, and
    what ``POST /callbacks/send/`` queues in the ``celery`` mode."""
    return _counts(send_callbacks(hook_id=hook_id))


def enqueue_due(*, hook_id: int | None = None) -> None:
    """Queue one ``send_due_callbacks`` task; a broker error is logged (beat's next run
    sends what is due anyway)."""
    _apply(send_due_callbacks, kwargs={"hook_id": hook_id}, what="a send of due callbacks")


def enqueue_callbacks(ids: Sequence[int]) -> None:
    """Queue callbacks for a worker, on ``CELERY_QUEUE`` (Celery's default queue when None).

    Runs after the commit that stored them, so it must never raise into the
    user's code: if the broker cannot be reached the error is logged, and
    ``send_due_callbacks`` sends the callbacks on its next run.
    """
    _apply(send_listed_callbacks, args=[list(ids)], what=f"callbacks {list(ids)}")


def _apply(task: Any, *, what: str, **options: Any) -> None:
    if shared_task is None:
        logger.error("DISPATCH is 'celery' but Celery is not installed; %s wait(s)", what)
        return
    try:
        task.apply_async(queue=hooks_settings.CELERY_QUEUE, **options)
    except Exception:
        logger.exception("could not queue %s; send_due_callbacks will send them", what)
