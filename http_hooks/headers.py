"""Hook headers: parsing (legacy ``Key: value`` text, a JSON object or a mapping),
which of them a hook may set, and which are credentials, masked wherever
headers are shown.

A hook's headers are hostile input: besides their syntax, the names that frame
a request or its connection (``Content-Length``, ``Transfer-Encoding``,
``Host``, ``Connection``, ...) are refused, because a hook that set them could
smuggle a second request onto a kept-alive connection, and so are the headers
http_hooks sets itself (``Content-Type``, the Standard Webhooks ``webhook-*``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from functools import lru_cache
from typing import Any

from .exceptions import InvalidHeadersError
from .imports import shown
from .payloads import StrictJSONDecoder

# RFC 9110 token characters, and nothing after them (``$`` would let a last line
# break through: a name "X-A\n" once reached the wire as such).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# What a server may read as a header name's hyphen: any token character but a letter or digit.
_SEPARATOR_LIKE = re.compile(r"[^a-z0-9]")
# Control characters, but the tab that RFC 9110 allows in a field value.
_FORBIDDEN_IN_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

MAX_HEADERS = 100
MAX_HEADERS_SIZE = 16 * 1024
# Framing and hop-by-hop headers (RFC 9110 7.6.1, 9112 6 and 9113 8.2.2): the
# transport sets them, or they concern one connection and not the request.
TRANSPORT_HEADERS = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "host",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "http2-settings",
    }
)
# Headers http_hooks sets on every request: the body's type and the signature.
OWN_HEADERS = {
    "content-type": "it comes from the hook's content_type",
    "webhook-id": "http_hooks sets it (Standard Webhooks)",
    "webhook-timestamp": "http_hooks sets it (Standard Webhooks)",
    "webhook-signature": "http_hooks sets it (Standard Webhooks)",
}


def parse_headers(value: Any, *, stored: bool = False) -> dict[str, str]:
    """Return the headers as a normalised ``{name: value}`` dict.

    Accepts ``None``/empty, a mapping, a JSON object string, or the old
    package's text form (one ``Key: value`` per line, ``\\r\\n`` or ``\\n``).
    Raises ``InvalidHeadersError`` with a message saying what is wrong.

    Header names are case-insensitive, so a name given twice (``X-A`` and
    ``x-a``, or one line twice) is refused: which value would go out, or be kept
    behind a mask, is not for the sender to guess. Headers ``stored`` before that
    rule keep the last of such names, as the old package's ``requests`` sent them.
    """
    if value is None or value == "" or value == {}:
        return {}
    if isinstance(value, Mapping):
        return _normalise(value.items(), stored=stored)
    if not isinstance(value, str):
        raise InvalidHeadersError(
            f"invalid headers: expected an object or 'Key: value' lines, got {type(value).__name__}"
        )
    if len(value) > MAX_HEADERS_SIZE:
        raise _too_large()
    text = value.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            loaded = json.loads(text, cls=StrictJSONDecoder, object_pairs_hook=_Pairs)
        except ValueError as exc:
            raise InvalidHeadersError(f"invalid headers: not a valid JSON object ({exc})") from exc
        if not isinstance(loaded, _Pairs):
            raise InvalidHeadersError("invalid headers: the JSON must be an object")
        return _normalise(loaded, stored=stored)
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, header_value = line.partition(":")
        if not colon:
            raise InvalidHeadersError(
                f"invalid headers: line {number} ({shown(line.strip())}) is not of the form "
                "'Key: value'"
            )
        pairs.append((name.strip(), header_value.strip()))
    return _normalise(pairs, stored=stored)


class _Pairs(list):
    """A JSON object's members in order, repeated names included (``json``'s
    ``object_pairs_hook``): a dict would keep the last of them without a word."""


def _normalise(pairs, *, stored: bool) -> dict[str, str]:
    headers: dict[str, str] = {}
    names: dict[str, str] = {}
    for name, value in pairs:
        if not isinstance(name, str):
            raise InvalidHeadersError(
                f"invalid headers: a header name must be text, not {type(name).__name__}"
            )
        if not name:
            raise InvalidHeadersError("invalid headers: a header name is empty")
        if not _TOKEN.match(name):
            raise InvalidHeadersError(f"invalid headers: {shown(name)} is not a valid header name")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InvalidHeadersError(
                f"invalid headers: the value of {shown(name)} must be a string"
            )
        try:
            text = str(value)
        except ValueError as exc:  # an int past Python's limit of digits
            raise InvalidHeadersError(
                f"invalid headers: the value of {shown(name)} is too long"
            ) from exc
        if _FORBIDDEN_IN_VALUE.search(text):
            raise InvalidHeadersError(
                f"invalid headers: the value of {shown(name)} contains a line break or another "
                "control character"
            )
        try:
            text.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise InvalidHeadersError(
                f"invalid headers: the value of {shown(name)} has characters HTTP headers cannot "
                "carry (use ASCII)"
            ) from exc
        earlier = names.get(name.lower())
        if earlier is not None:
            if not stored:
                raise InvalidHeadersError(
                    f"invalid headers: {shown(name)} is given twice"
                    + ("" if earlier == name else f" (as {earlier!r}: names ignore case)")
                )
            del headers[earlier]
        names[name.lower()] = name
        headers[name] = text
    return headers


def _too_large() -> InvalidHeadersError:
    return InvalidHeadersError(
        f"invalid headers: at most {MAX_HEADERS} headers of {MAX_HEADERS_SIZE} bytes in all"
    )


def check_hook_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Refuse parsed ``headers`` that a hook may not have: a name it may not set
    (see ``reserved_reason``), more than ``MAX_HEADERS`` or ``MAX_HEADERS_SIZE``."""
    for name in headers:
        reason = reserved_reason(name)
        if reason:
            raise InvalidHeadersError(f"invalid headers: {shown(name)} cannot be set: {reason}")
    size = sum(len(name) + len(value) for name, value in headers.items())
    if len(headers) > MAX_HEADERS or size > MAX_HEADERS_SIZE:
        raise _too_large()
    return dict(headers)


def reserved_reason(name: str) -> str | None:
    """Why a hook may not set header ``name`` (any case), or None when it may. Any
    character but a letter or digit counts as a hyphen: CGI and WSGI servers read
    ``Webhook_Id`` as ``HTTP_WEBHOOK_ID`` (PHP ``Webhook.Id`` too), and would merge
    it into ours."""
    lowered = _SEPARATOR_LIKE.sub("-", name.lower())
    if lowered in TRANSPORT_HEADERS or lowered.startswith("proxy-"):
        return "framing and hop-by-hop headers are the transport's"
    return OWN_HEADERS.get(lowered)


def without_reserved(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` without the ones a hook may not set: what stored data may send."""
    return {name: value for name, value in headers.items() if reserved_reason(name) is None}


def format_headers(headers: Mapping[str, str]) -> str:
    """The legacy text form, one ``Key: value`` per line (for the admin)."""
    return "\n".join(f"{name}: {value}" for name, value in headers.items())


# --- credentials ---------------------------------------------------------------

MASKED = "********"
# A header whose name contains one of these is a credential: its value is
# write-only everywhere (API, admin, attempt log). Parts, not whole names, so
# that ``X-Auth``, ``X-Hub-Sig``, ``X-Api-Key`` and ``Set-Cookie`` are caught too;
# masking a harmless header by mistake costs nothing, showing a secret does.
SECRET_NAME_PARTS = (
    "auth",  # Authorization, Proxy-Authorization, X-Auth-Token
    "cookie",
    "token",
    "secret",
    "key",
    "passw",  # password, passwd
    "pwd",
    "sig",  # signature, X-Hub-Sig
    "credential",
    "session",
    "jwt",
    "bearer",
)
MAX_SECRET_HEADER_NAMES = 100
MAX_HEADER_NAME_LENGTH = 200


@lru_cache(maxsize=1024)
def _name_is_secret(lowered: str) -> bool:
    return any(part in lowered for part in SECRET_NAME_PARTS)


def is_secret_header(name: str, marked: Collection[str] = ()) -> bool:
    """Whether the value of header ``name`` is a credential: its name contains one
    of ``SECRET_NAME_PARTS``, or it is one of ``marked`` (a hook's
    ``secret_headers``, lower-case). The one place that decides what is secret. A
    ``marked`` that is no list (written around validation) cannot say which headers
    are credentials: every one is."""
    if not isinstance(marked, list | tuple | set | frozenset):
        return True
    lowered = name.lower()
    return lowered in marked or _name_is_secret(lowered)


def mask_headers(headers: Mapping[str, Any], marked: Collection[str] = ()) -> dict[str, Any]:
    """``headers`` with the value of every secret header replaced by ``MASKED``; no
    headers for a value that is no mapping (written around validation)."""
    if not isinstance(headers, Mapping):
        return {}
    return {
        name: MASKED if is_secret_header(name, marked) else value for name, value in headers.items()
    }


def parse_header_names(value: Any, stored: Collection[str] = ()) -> list[str]:
    """Header names as a hook's ``secret_headers``: lower-case, each once.
    A name longer than ``MAX_HEADER_NAME_LENGTH`` is refused unless the hook
    ``stored`` it before the limit (a change of its other fields must not fail on it).

    Accepts ``None``/empty, a list of names or a string of names separated by
    commas, spaces or lines. Raises ``InvalidHeadersError`` (field ``secret_headers``).
    """
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = [name for name in re.split(r"[\s,]+", value) if name]
    elif not isinstance(value, list | tuple | set | frozenset):
        raise InvalidHeadersError(
            f"invalid secret headers: expected a list of header names, got {type(value).__name__}",
            field="secret_headers",
        )
    kept = {name.lower() for name in stored if isinstance(name, str)}
    names: list[str] = []
    for name in value:
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise InvalidHeadersError(
                f"invalid secret headers: {shown(name)} is not a valid header name",
                field="secret_headers",
            )
        if len(name) > MAX_HEADER_NAME_LENGTH and name.lower() not in kept:
            raise InvalidHeadersError(
                f"invalid secret headers: a header name has at most {MAX_HEADER_NAME_LENGTH} "
                f"characters, not {len(name):,}",
                field="secret_headers",
            )
        if name.lower() not in names:
            names.append(name.lower())
    if len(names) > MAX_SECRET_HEADER_NAMES:
        raise InvalidHeadersError(
            f"invalid secret headers: at most {MAX_SECRET_HEADER_NAMES} names",
            field="secret_headers",
        )
    return names


def keep_secret_values(
    given: Mapping[str, str], stored: Mapping[str, str], marked: Collection[str] = ()
) -> dict[str, str]:
    """The headers a write stores, given the ``stored`` ones (``{}`` for a new hook).

    Secret values are never shown, so a client cannot send them back: a secret
    header left out of ``given``, or given as ``MASKED``, keeps its stored value;
    given with an empty value, it is removed. Other headers are as given.
    Raises ``InvalidHeadersError`` for ``MASKED`` where nothing is stored.
    """
    stored_by_name = {name.lower(): (name, value) for name, value in stored.items()}
    headers: dict[str, str] = {}
    for name, value in given.items():
        if value == MASKED:
            if name.lower() not in stored_by_name:
                raise InvalidHeadersError(
                    f"invalid headers: {shown(name)} has no stored value to keep: give its real "
                    f"value instead of {MASKED!r}"
                )
            headers[name] = stored_by_name[name.lower()][1]
        elif value or not is_secret_header(name, marked):
            headers[name] = value
    given_names = {name.lower() for name in given}
    for lowered, (name, value) in stored_by_name.items():
        if lowered not in given_names and is_secret_header(name, marked):
            headers[name] = value
    return headers


def refuse_unmasking(
    given: Mapping[str, str],
    stored: Mapping[str, str],
    was_marked: Collection[str],
    marked: Collection[str],
) -> None:
    """Raise ``InvalidHeadersError`` when a write would show a stored secret value:
    a name taken out of ``secret_headers`` whose value was never shown must be
    given again, or the client that unmarks it reads the credential it never saw."""
    given_by_name = {name.lower(): value for name, value in given.items()}
    for name in stored:
        if not is_secret_header(name, was_marked) or is_secret_header(name, marked):
            continue
        if given_by_name.get(name.lower(), MASKED) == MASKED:
            raise InvalidHeadersError(
                f"invalid headers: {shown(name)} is no longer in secret_headers: give its value "
                "again to store it in the clear, or remove the header",
                field="secret_headers",
            )
