"""Django's tasks framework: the ``tasks`` dispatch mode (``HTTP_HOOKS["DISPATCH"] = "tasks"``).

The tasks are defined with ``django.tasks`` on Django 6 and with the
``django-tasks`` backport on Django 5.2, whichever is importable, on the
``TASKS_QUEUE`` queue of the ``default`` backend of ``TASKS``. New callbacks
are queued after the commit that stored them, ``BATCH_SIZE`` ids a task
(``dispatch.enqueue_on_commit``, called by the outbox); a worker of the
backend sends them with the same ``services.send_callbacks`` as every other
entry point. With the ``django-tasks-db`` backend (the ``tasks`` extra)::

    python manage.py db_worker --queue-name default --no-reload

Retries and anything whose queueing was lost are sent by the sweep
(``delivery.sweep``), a thread in each worker process. Neither framework
signals a worker's start: the sweep starts when the app is ready in a
``db_worker`` process (``sweep.start_in_tasks_worker``), and in any other
worker with the first of these tasks it runs.

Without either framework this module still imports, the functions are plain
functions, and queueing fails with an error that ``dispatch`` logs (the system
check ``http_hooks.E021`` reports it first).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .exceptions import DispatchError
from .services import run_queued_send, start_sweeper
from .settings import hooks_settings

try:
    from django.tasks import task
except ModuleNotFoundError:  # Django before 6.0: the backport, when installed.
    try:
        from django_tasks import task
    except ModuleNotFoundError:
        task = None


def _task(function: Callable[..., Any]) -> Any:
    """Define the function as a task, when a tasks framework is installed."""
    if task is None:
        return function
    return task(queue_name=hooks_settings.TASKS_QUEUE)(function)


@_task
def send_listed_callbacks(callback_ids: list[int]) -> dict[str, int]:
    """Send the listed callbacks that are still waiting and due (``run_queued_send``)."""
    _sweep_here()
    return run_queued_send(ids=callback_ids)


@_task
def send_due_callbacks(hook_id: int | None = None) -> dict[str, int]:
    """Send every due callback (of one hook): what ``POST /callbacks/send/`` queues
    in the ``tasks`` mode, and a task to enqueue from a scheduler of your own."""
    _sweep_here()
    return run_queued_send(hook_id=hook_id)


def _sweep_here() -> None:
    """Start the sweep in this worker process, once."""
    if hooks_settings.DISPATCH == "tasks":
        start_sweeper()


def queue_listed(ids: list[int]) -> None:
    """Enqueue one ``send_listed_callbacks`` task on ``TASKS_QUEUE``. Raises what the
    backend raises (a queue it does not serve, its database down): ``dispatch`` logs it."""
    _on_queue(send_listed_callbacks).enqueue(ids)


def queue_due(*, hook_id: int | None = None) -> None:
    """Enqueue one ``send_due_callbacks`` task on ``TASKS_QUEUE``."""
    _on_queue(send_due_callbacks).enqueue(hook_id=hook_id)


def _on_queue(defined: Any) -> Any:
    if task is None:
        raise DispatchError(
            "DISPATCH is 'tasks' but no tasks framework is installed (Django 6, or the "
            "'tasks' extra on Django 5.2)"
        )
    return defined.using(queue_name=hooks_settings.TASKS_QUEUE)
