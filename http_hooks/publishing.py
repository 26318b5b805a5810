"""Publishing to a broker without making the user's save wait for it.

A broker that is down costs Celery's publish its retries (about 0.6 s a
publish with nothing listening), and one that accepts connections but never
answers holds a socket read with no timeout: in the thread of a save, either
holds the user's request. So the tasks are published by a thread of their own,
one per process: the save only appends to its list. When a publish fails, or
has hung for longer than ``HUNG_SECONDS``, publishing pauses for
``SWEEP_SECONDS``: what arrives meanwhile is dropped with one log line, and
the callbacks wait for the sweep of the workers (``delivery.sweep``), which
sends what is due for longer than that. A hung publish is left to its thread
(Celery's time out on their own connection: ``tasks._publish``); the next
publish after the pause starts a new thread.

At exit a process waits up to ``EXIT_SECONDS`` for what it still has to publish
(a short script that saves and exits gets its tasks out); what is left then is
the sweep's.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable

from .settings import hooks_settings

logger = logging.getLogger(__name__)

# A publish takes about a millisecond; one that has taken this long is hung.
HUNG_SECONDS = 2.0
# At most this many publishes wait; beyond, new ones are dropped (the sweep sends).
MAX_WAITING = 10_000
EXIT_SECONDS = 2.0


class Publisher:
    """Publishes, in order, in a daemon thread; ``submit`` never waits for the broker."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.waiting: deque[tuple[Callable[[], None], str]] = deque()
        self.thread: threading.Thread | None = None
        # When the publish under way started (monotonic), None when idle.
        self.busy_since: float | None = None
        self.paused_until = 0.0
        self.thread_end: list[Callable[[], None]] = []

    def on_thread_end(self, release: Callable[[], None]) -> None:
        """Have ``release()`` called by a publishing thread as it ends (given up as hung,
        its publish done at last): what the thread holds of its own, a broker
        connection, is let go then, not at a garbage collection."""
        self.thread_end.append(release)

    def submit(self, publish: Callable[[], None], what: str) -> None:
        """Have ``publish()`` called soon, in the publishing thread; ``what`` names the
        work in the log line when it is dropped or fails."""
        with self.lock:
            now = time.monotonic()
            if self.busy_since is not None and now - self.busy_since > HUNG_SECONDS:
                self._pause(f"a publish has waited {now - self.busy_since:.0f} s for the broker")
                self.thread = None  # left hung; the next one after the pause is new
                self.busy_since = None
            if now < self.paused_until or len(self.waiting) >= MAX_WAITING:
                self._drop(what)
                return
            self.waiting.append((publish, what))
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._run, name="http_hooks publisher", daemon=True
                )
                self.thread.start()
            # All: a thread given up as hung may be waiting too, and must not take the call.
            self.lock.notify_all()

    def forget(self) -> None:
        """In a forked child: start afresh (the parent publishes what it had; a lock
        its thread held would never be released here)."""
        self.lock = threading.Condition()
        self.waiting.clear()
        self.thread = None
        self.busy_since = None

    def _run(self) -> None:
        try:
            self._publish_while_current()
        finally:
            for release in self.thread_end:
                release()

    def _publish_while_current(self) -> None:
        me = threading.current_thread()
        while True:
            with self.lock:
                while not self.waiting and self.thread is me:
                    self.lock.wait()
                if self.thread is not me:
                    return  # given up as hung: a newer thread publishes
                publish, what = self.waiting.popleft()
                self.busy_since = time.monotonic()
            try:
                publish()
            except Exception as exc:
                with self.lock:
                    if self.thread is me:
                        self._pause(f"could not queue {what}: {exc!r}")
                    else:
                        # Given up as hung, it failed at last: the pause was taken then,
                        # and a newer thread may be publishing to a broker that is back.
                        logger.warning("could not queue %s: %r", what, exc)
            finally:
                with self.lock:
                    if self.thread is me:
                        self.busy_since = None
                    self.lock.notify_all()

    def _pause(self, reason: str) -> None:
        """Stop publishing for ``SWEEP_SECONDS`` and drop what waits (lock held)."""
        pause = float(hooks_settings.SWEEP_SECONDS or 0)
        self.paused_until = time.monotonic() + pause
        dropped = len(self.waiting)
        self.waiting.clear()
        logger.warning(
            "%s; publishing pauses for %s s, %s more publishes dropped: the sweep of the "
            "workers sends those callbacks",
            reason,
            pause,
            dropped,
        )

    def _drop(self, what: str) -> None:
        logger.debug("publishing paused: %s dropped, left to the sweep", what)

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until nothing waits or is being published."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.waiting or self.busy_since is not None:
                left = deadline - time.monotonic()
                if left <= 0 or self.thread is None or not self.thread.is_alive():
                    return False
                self.lock.wait(left)
        return True


publisher = Publisher()
atexit.register(publisher.flush, EXIT_SECONDS)
os.register_at_fork(after_in_child=publisher.forget)
