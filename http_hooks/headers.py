"""Parsing of hook headers: legacy ``Key: value`` text, a JSON object or a mapping."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .exceptions import InvalidHeadersError

# RFC 9110 token characters.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")


def parse_headers(value: Any) -> dict[str, str]:
    """Return the headers as a normalised ``{name: value}`` dict.

    Accepts ``None``/empty, a mapping, a JSON object string, or the old
    package's text form (one ``Key: value`` per line, ``\\r\\n`` or ``\\n``).
    Raises ``InvalidHeadersError`` with a message saying what is wrong.
    """
    if value is None or value == "" or value == {}:
        return {}
    if isinstance(value, Mapping):
        return _normalise(value.items())
    if not isinstance(value, str):
        raise InvalidHeadersError(
            f"invalid headers: expected an object or 'Key: value' lines, got {type(value).__name__}"
        )
    text = value.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise InvalidHeadersError(f"invalid headers: not a valid JSON object ({exc})") from exc
        if not isinstance(loaded, dict):
            raise InvalidHeadersError("invalid headers: the JSON must be an object")
        return _normalise(loaded.items())
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, header_value = line.partition(":")
        if not colon:
            raise InvalidHeadersError(
                f"invalid headers: line {number} ({line.strip()!r}) is not of the form 'Key: value'"
            )
        pairs.append((name.strip(), header_value.strip()))
    return _normalise(pairs)


def _normalise(pairs) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in pairs:
        if not isinstance(name, str) or not name:
            raise InvalidHeadersError("invalid headers: a header name is empty")
        if not _TOKEN.match(name):
            raise InvalidHeadersError(f"invalid headers: {name!r} is not a valid header name")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InvalidHeadersError(f"invalid headers: the value of {name!r} must be a string")
        text = str(value)
        if _FORBIDDEN_IN_VALUE.search(text):
            raise InvalidHeadersError(
                f"invalid headers: the value of {name!r} contains a line break or NUL"
            )
        try:
            text.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise InvalidHeadersError(
                f"invalid headers: the value of {name!r} has characters HTTP headers cannot "
                "carry (use ASCII)"
            ) from exc
        headers[name] = text
    return headers


def format_headers(headers: Mapping[str, str]) -> str:
    """The legacy text form, one ``Key: value`` per line (for the admin)."""
    return "\n".join(f"{name}: {value}" for name, value in headers.items())
