"""Handing callbacks to workers: the ``celery`` and ``tasks`` values of ``DISPATCH``.

``DISPATCH = "celery"`` queues Celery tasks (``tasks.py``), ``"tasks"`` the tasks
of Django's tasks framework (``tasks_framework.py``); with ``"command"`` nothing
is queued and ``send_callbacks`` sends. The rest of the app asks this module
only, whichever engine runs the workers:

- ``enqueue_on_commit(ids)`` after the outbox stores callbacks, or a resend
  puts them back: the ids wait for the commit of the transaction, and go out
  as one task per ``BATCH_SIZE`` callbacks of that transaction, not one task
  per save (with ``"command"``, the commit wakes the idle loop workers);
- ``enqueue_due(hook_id=...)`` for ``POST /callbacks/send/`` without ids.

Queueing never raises into the caller: it runs after the user's commit, so an
error (a tasks backend refusing) is logged, and the callbacks wait for the
sweep of the workers (``delivery.sweep``). Celery tasks are published by a
thread of their own (``publishing``), so a broker that is down or never
answers does not hold the commit either.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache, partial
from types import ModuleType

from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from .delivery.ids import MAX_LISTED_IDS
from .delivery.wakeup import can_notify, notify
from .settings import hooks_settings

logger = logging.getLogger(__name__)

QUEUED_MODES = ("celery", "tasks")


def queues_work() -> bool:
    """Whether ``DISPATCH`` hands the sending to workers."""
    return hooks_settings.DISPATCH in QUEUED_MODES


def _engine() -> ModuleType:
    if hooks_settings.DISPATCH == "celery":
        from . import tasks as engine
    else:
        from . import tasks_framework as engine
    return engine


def enqueue_callbacks(ids: Sequence[int]) -> None:
    """Queue the listed callbacks now, ``BATCH_SIZE`` ids a task (``MAX_LISTED_IDS`` at
    most: a task of more would be refused). After an error the rest are not tried: a
    broker or backend that failed once would make each chunk wait for it again."""
    ids = list(ids)
    size = min(int(hooks_settings.BATCH_SIZE), MAX_LISTED_IDS)
    for start in range(0, len(ids), size):
        try:
            _engine().queue_listed(ids[start : start + size])
        except Exception:
            logger.exception(
                "could not queue callbacks %s (DISPATCH %r); they wait for the next send "
                "of due callbacks",
                ids[start:],
                hooks_settings.DISPATCH,
            )
            return


def enqueue_due(*, hook_id: int | None = None) -> None:
    """Queue one send of every due callback (of one hook)."""
    try:
        _engine().queue_due(hook_id=hook_id)
    except Exception:
        logger.exception(
            "could not queue a send of due callbacks (DISPATCH %r, hook %s)",
            hooks_settings.DISPATCH,
            hook_id,
        )


@dataclass(eq=False)
class _AtCommit:
    """What the commit of one transaction does with the ids of the callbacks it stored
    (Django's ``on_commit``): ``action(ids)`` once, however many saves stored them.

    ``position`` is where it stands in the connection's list of commit hooks: it
    takes more ids while it is still there. A savepoint rolled back after it was
    opened leaves it there, with the ids stored under that savepoint: a task sends
    only the waiting callbacks it finds, so they cost nothing. A savepoint rolled
    back with it in it drops it, and the ids stored after go into a new one.
    Looking it up by position, not by scanning the commit hooks, keeps a
    transaction of many saves linear.
    """

    action: Callable[[list[int]], None]
    position: int
    ids: list[int] = field(default_factory=list)
    done: bool = False

    def __call__(self) -> None:
        self.done = True
        _after_commit(self.action, self.ids)

    def takes_more(self, connection: BaseDatabaseWrapper, action: Callable) -> bool:
        hooks = connection.run_on_commit
        return (
            not self.done
            and self.action is action
            and self.position < len(hooks)
            and hooks[self.position][1] is self
        )


def _after_commit(action: Callable[[list[int]], None], ids: list[int]) -> None:
    """``action(ids)``, logged if it fails, never raised: the user's change is committed
    by now, and the sweep or the workers' poll finds the callbacks. (Django's own
    ``robust`` commit hooks fail to log a callable object: AttributeError, raised.)"""
    try:
        action(ids)
    except Exception:
        logger.exception("after the commit that stored callbacks %s", ids)


_open: weakref.WeakKeyDictionary[BaseDatabaseWrapper, _AtCommit] = weakref.WeakKeyDictionary()


@cache
def _notifier(using: str) -> Callable[[list[int]], None]:
    """``delivery.wakeup.notify`` on ``using``, one object per database (``takes_more``
    tells actions apart by identity)."""
    return partial(notify, using=using)


def enqueue_on_commit(ids: Sequence[int], *, using: str | None = None) -> None:
    """Queue the callbacks once the transaction on ``using`` commits (at once in
    autocommit), with the other callbacks that transaction stores; when ``DISPATCH``
    queues no work, wake the idle ``--loop`` workers instead (``delivery.wakeup``, on
    PostgreSQL), once per transaction. A rolled-back transaction does neither."""
    if not ids:
        return
    using = using or DEFAULT_DB_ALIAS
    if queues_work():
        action = enqueue_callbacks
    elif can_notify(using):
        action = _notifier(using)
    else:
        return
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        _after_commit(action, list(ids))
        return
    batch = _open.get(connection)
    if batch is None or not batch.takes_more(connection, action):
        batch = _AtCommit(action, position=len(connection.run_on_commit))
        transaction.on_commit(batch, using=using)
        _open[connection] = batch
    batch.ids.extend(ids)
