"""``disable_hooks()``: switch hooks off for a block of code."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_disabled: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "http_hooks_disabled", default=False
)


@contextlib.contextmanager
def disable_hooks() -> Iterator[None]:
    """No callbacks are created inside the block, in this thread or async task only.

    Built on ``contextvars``, so other threads and other asyncio tasks keep
    firing hooks while one of them loads data in bulk.
    """
    token = _disabled.set(True)
    try:
        yield
    finally:
        _disabled.reset(token)


def hooks_disabled() -> bool:
    return _disabled.get()
