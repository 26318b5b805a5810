"""Waiting for a state another thread or process brings about: the one polling loop
of the suite. A test waits for the state it needs, never for a length of time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

POLL = 0.05


def wait_until(
    condition: Callable[[], Any],
    *,
    timeout: float = 60.0,
    message: Callable[[], str] | str = "",
    alive: Callable[[], Any] | None = None,
) -> Any:
    """Ask ``condition()`` every ``POLL`` seconds until it is truthy; return its value.

    The timeout only bounds a test that would otherwise hang (a loaded machine
    may be slow, so it is generous). ``alive()``, when given, must stay true
    meanwhile (a child process that exits early fails at once). ``message``
    (or what it returns) says what was awaited when the wait fails.
    """
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not (value := condition()):
        describe = message() if callable(message) else message
        if alive is not None:
            assert alive(), f"exited while waiting: {describe}"
        assert time.monotonic() < deadline, f"timed out after {timeout} s: {describe}"
        pause.wait(POLL)
    return value
