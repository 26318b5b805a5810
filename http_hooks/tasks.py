"""Celery tasks: the ``celery`` dispatch mode (``HTTP_HOOKS["DISPATCH"] = "celery"``).

New callbacks are queued after the commit that stored them, ``BATCH_SIZE`` ids a
task (``dispatch.enqueue_on_commit``, called by the outbox), published by a
thread of their own (``publishing``: a broker that is down or hangs never holds
the save), and a worker sends them with the same ``services.send_callbacks`` as
every other entry point. Retries, the callbacks of a worker that died, and any
whose publish was lost are sent by the sweep each worker runs in a thread
(``delivery.sweep``, started when the worker is ready): no Celery beat needed.
``send_due_callbacks`` sends every due callback: what ``POST /callbacks/send/``
queues.

Celery is an optional extra: without it this module still imports, the
functions are plain functions, and queueing fails with an error that ``dispatch``
logs (the system check ``http_hooks.E009`` reports the setting first).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from .exceptions import DispatchError
from .publishing import publisher
from .services import run_queued_send, start_sweeper, stop_sweeper
from .settings import hooks_settings

try:
    from celery import shared_task
    from celery.signals import worker_ready, worker_shutdown
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
    """Send every due callback (of one hook): what ``POST /callbacks/send/`` queues in
    the ``celery`` mode (a beat schedule of your own may run it too; the workers'
    sweep makes that unnecessary)."""
    return run_queued_send(hook_id=hook_id)


def queue_due(*, hook_id: int | None = None) -> None:
    """Queue one ``send_due_callbacks`` task on ``CELERY_QUEUE``, soon (``publishing``)."""
    what = "a send of due callbacks" + ("" if hook_id is None else f" of hook {hook_id}")
    _apply(send_due_callbacks, what, kwargs={"hook_id": hook_id})


def queue_listed(ids: list[int]) -> None:
    """Queue one ``send_listed_callbacks`` task on ``CELERY_QUEUE`` (Celery's default
    queue when None), soon: the publishing thread logs what the broker raises."""
    _apply(send_listed_callbacks, f"callbacks {ids[0]}..{ids[-1]} ({len(ids)})", args=[ids])


def _apply(task: Any, what: str, **options: Any) -> None:
    if shared_task is None:
        raise DispatchError("DISPATCH is 'celery' but Celery is not installed")
    queue = hooks_settings.CELERY_QUEUE
    publisher.submit(partial(_publish, task, queue=queue, **options), what)


# Seconds a publish waits for the broker on its socket (to connect, send or read).
PUBLISH_TIMEOUT = 5.0
_thread = threading.local()


def _publish(task: Any, **options: Any) -> None:
    """``task.apply_async``, in the publishing thread, on a broker connection of that
    thread, with socket timeouts.

    Why not Celery's pool of producers: a publish to a broker that accepts and never
    answers held its pooled connection for good, and once the pool's ten were held
    every later publish waited for one for ever, the broker back or not (a thread
    more each pause). Here a hung publish times out; a thread given up as hung
    keeps only its own connection, and the next thread opens another."""
    connection = getattr(_thread, "connection", None)
    if connection is None:
        timeouts = {
            name: PUBLISH_TIMEOUT
            for name in (
                "socket_timeout",
                "socket_connect_timeout",
                "read_timeout",
                "write_timeout",
            )
        }
        connection = _thread.connection = task.app.connection_for_write(
            connect_timeout=PUBLISH_TIMEOUT, transport_options=timeouts
        )
    try:
        task.apply_async(connection=connection, **options)
    except Exception:
        _close_connection()
        raise


def _close_connection() -> None:
    """Close the publishing thread's broker connection, its sockets without waiting for
    the broker. A thread given up as hung whose publish went out at last (a RabbitMQ
    that blocked publishers under a memory alarm) left it open until a garbage
    collection: kombu's objects hold each other in a cycle."""
    connection = getattr(_thread, "connection", None)
    _thread.connection = None
    if connection is not None:
        connection.collect()


publisher.on_thread_end(_close_connection)


if shared_task is not None:

    @worker_ready.connect
    def _start_sweep(**kwargs: Any) -> None:
        """The worker's sweep, in its main process (``delivery.sweep``)."""
        if hooks_settings.DISPATCH == "celery":
            start_sweeper()

    @worker_shutdown.connect
    def _stop_sweep(**kwargs: Any) -> None:
        stop_sweeper()
