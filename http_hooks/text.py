"""Rules on text: what every database can store, what a label may hold, what is a
whole number."""

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

# Controls (C0 with TAB, CR and LF, DEL, C1), invisible format characters (bidi
# overrides and isolates, zero-width space, word joiner, BOM, tags, ...) and the line
# and paragraph separators.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
# Format characters that text in Persian, Indic scripts and emoji sequences needs
# (RFC 8264's join controls), and that move nothing on a screen or in a log line.
JOINERS = frozenset({"\u200c", "\u200d"})
# What a label may not hold, as the messages and help texts say it.
LABEL_RULE = (
    "no control character, line break or invisible formatting character (bidi control, "
    "zero-width space)"
)
# ``label_problem`` as a JSON Schema ``pattern`` of a label that is not empty (the
# schema gives "" apart): a few of the characters it refuses, each one whatever the
# Unicode version, so that the schema may take more than the server, never less.
LABEL_PATTERN = (
    r"^[^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b\u200e\u200f"
    r"\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff]+$"
)


def storable_text(text: str) -> bool:
    """No NUL (PostgreSQL refuses it in text) and no lone surrogate (no UTF-8)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_hidden(char: str) -> bool:
    """Whether ``char`` is a control, an invisible format character or a line or
    paragraph separator (see ``HIDDEN_CATEGORIES``)."""
    return unicodedata.category(char) in HIDDEN_CATEGORIES


def label_problem(text: str) -> str | None:
    """What keeps ``text`` from being a label (a hook's name, an ordering key, an
    event's key), or None: a character that a log line, a terminal or a page would
    act on rather than show (a line break, an escape sequence, a bidi override that
    reverses what follows, a zero-width space that makes two names look alike). The
    joiners (``JOINERS``) are taken."""
    bad = next((char for char in text if is_hidden(char) and char not in JOINERS), None)
    if bad is None:
        return None
    name = unicodedata.name(bad, "")
    return f"it contains U+{ord(bad):04X}{f' {name}' if name else ''}: {LABEL_RULE}"


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
