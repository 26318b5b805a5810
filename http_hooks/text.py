"""Rules on text: what every database can store, what is a whole number."""

from collections.abc import Iterable, Mapping
from typing import Any


def storable_text(text: str) -> bool:
    """No NUL (PostgreSQL refuses it in text) and no lone surrogate (no UTF-8)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def ascii_digits(text: str, *, signed: bool = False) -> bool:
    """``text`` is a whole number in ASCII digits (after one "-" if ``signed``), and
    nothing else: no sign "+", space, "_" or newline.

    ``str.isdigit()`` alone accepts other digits (Arabic-Indic ones, superscripts such
    as "²") that ``int()`` refuses or reads differently, and a regex ``[0-9]+$`` would
    accept a trailing newline.
    """
    if signed and text.startswith("-"):
        text = text[1:]
    return text.isascii() and text.isdigit()


def first_line(exc: BaseException) -> str:
    """An exception's message in one line (a driver's error has a DETAIL and a HINT
    after it), or its class's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def text_items(value: Any) -> list[str]:
    """The text items of a hook's list field as stored (``event_types``,
    ``changed_fields``, ``secret_headers``): a value written around validation may be
    anything, and what shows it must not fail on it."""
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    return []


def is_listing(value: Any) -> bool:
    """Whether ``value`` lists items: an iterable that is not text (read as a list, a
    string is its characters: ``"12"`` was the ids or owners 1 and 2) nor a mapping."""
    return isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping)
