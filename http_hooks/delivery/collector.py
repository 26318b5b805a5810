"""The pace of Python's garbage collector while a sender runs."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Allocations between two collections of the youngest generation while a sender
# runs; Python's default is 700.
SENDING_THRESHOLD = 20_000

_lock = threading.Lock()
_runs = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect the youngest generation every ``SENDING_THRESHOLD`` allocations, not
    every 700, while the block runs (unless the process set a higher threshold).

    Why: a sender keeps a few objects per callback (the callback, its outcome, its
    headers) until the outcome is written, a window later. At Python's pace they
    outlive two collections and reach the oldest generation, and every few
    thousand callbacks a full collection walks every object of the process: 60 to
    90 ms per 5,000 callbacks here, about a twentieth of sending them. With
    20,000, ``bench/delivery.py``'s sender made 5-12% more deliveries a second.
    Only reference cycles wait longer to be freed; what reference counting frees,
    nearly everything, goes at once as before. Runs in several threads at once
    share the setting: the first sets it, the last puts the process's back (unless
    someone changed it meanwhile).
    """
    global _runs, _saved
    with _lock:
        if _runs == 0:
            current = gc.get_threshold()
            # 0: collection switched off by the process, which stays so.
            if 0 < current[0] < SENDING_THRESHOLD:
                _saved = current
                gc.set_threshold(SENDING_THRESHOLD, *current[1:])
        _runs += 1
    try:
        yield
    finally:
        with _lock:
            # Never below 0: a child forked within a run ends it with no run counted.
            _runs = max(_runs - 1, 0)
            if _runs == 0:
                _put_back()


def _put_back() -> None:
    """The process's threshold again, unless it was changed during the runs."""
    global _saved
    if _saved is not None and gc.get_threshold() == (SENDING_THRESHOLD, *_saved[1:]):
        gc.set_threshold(*_saved)
    _saved = None


def _forget_runs() -> None:
    """In a child forked while a run went on in another thread (a Celery pool child
    forked beside the sweep): that run goes on in the parent only, so the child puts
    its threshold back and counts no run (with a new lock, which the fork may have
    copied held)."""
    global _lock, _runs
    _lock = threading.Lock()
    _put_back()
    _runs = 0


os.register_at_fork(after_in_child=_forget_runs)
