"""Celery tasks: the ``celery`` dispatch mode (``HTTP_HOOKS["DISPATCH"] = "celery"``).

New callbacks are queued after the commit that stored them, ``BATCH_SIZE`` ids a
task (``dispatch.enqueue_on_commit``, called by the outbox), and a worker sends
them with the same ``services.send_callbacks`` as every other entry point.
``send_due_callbacks`` is the task to schedule with Celery beat: it sends
whatever is due, retries included, and anything whose enqueueing was lost::

    CELERY_BEAT_SCHEDULE = {
        "http-hooks": {"task": "http_hooks.send_due_callbacks", "schedule": 10.0},
    }

Celery is an optional extra: without it this module still imports, the
functions are plain functions, and queueing fails with an error that ``dispatch``
logs (the system check ``http_hooks.E009`` reports the setting first).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .exceptions import DispatchError
from .services import run_queued_send
from .settings import hooks_settings

try:
    from celery import shared_task
except ModuleNotFoundError:
    shared_task = None


def _task(name: str) -> Callable[[Callable[..., Any]], Any]:
    """Register the function as a Celery task, when Celery is installed."""

    def register(function: Callable[..., Any]) -> Any:
        if shared_task is None:
            return function
        return shared_task(name=name, ignore_result=True)(function)

    return register


@_task("http_hooks.send_callbacks")
def send_listed_callbacks(callback_ids: list[int]) -> dict[str, int]:
    """Send the listed callbacks that are still waiting and due (``run_queued_send``)."""
    return run_queued_send(ids=callback_ids)


@_task("http_hooks.send_due_callbacks")
def send_due_callbacks(hook_id: int | None = None) -> dict[str, int]:
    """Send every due callback (of one hook): the periodic task for Celery beat, and
    what ``POST /callbacks/send/`` queues in the ``celery`` mode."""
    return run_queued_send(hook_id=hook_id)


def queue_due(*, hook_id: int | None = None) -> None:
    """Queue one ``send_due_callbacks`` task on ``CELERY_QUEUE``."""
    _apply(send_due_callbacks, kwargs={"hook_id": hook_id})


def queue_listed(ids: list[int]) -> None:
    """Queue one ``send_listed_callbacks`` task on ``CELERY_QUEUE`` (Celery's default
    queue when None). Raises what the broker raises: ``dispatch`` logs it."""
    _apply(send_listed_callbacks, args=[ids])


def _apply(task: Any, **options: Any) -> None:
    if shared_task is None:
        raise DispatchError("DISPATCH is 'celery' but Celery is not installed")
    task.apply_async(queue=hooks_settings.CELERY_QUEUE, **options)
