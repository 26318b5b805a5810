"""The HTTP request of one try of a callback, and what of it the attempt log keeps."""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import lru_cache

from ..models import Callback
from ..settings import hooks_settings
from ..signing import signature_headers
from ..transport import Request, printable

MASKED = "********"
SECRET_HEADER_WORDS = ("authorization", "token", "secret", "key", "password", "cookie", "signature")


def merge_headers(*layers: Mapping[str, str]) -> dict[str, str]:
    """The layers' headers in one dict; a later layer's value wins whatever the case of its name."""
    merged: dict[str, str] = {}
    names: dict[str, str] = {}
    for layer in layers:
        for name, value in layer.items():
            previous = names.get(name.lower())
            if previous is not None:
                del merged[previous]
            names[name.lower()] = name
            merged[name] = str(value)
    return merged


def request_for(callback: Callback) -> Request:
    """The HTTP request of one try of ``callback``: its method, URL and body, our
    headers, the callback's own, its Content-Type and the Standard Webhooks headers."""
    body = (callback.payload or "").encode("utf-8")
    headers = merge_headers(
        {
            "User-Agent": str(hooks_settings.USER_AGENT),
            # Bodies are only logged; uncompressed, RESPONSE_BODY_LIMIT limits the wire.
            "Accept-Encoding": "identity",
        },
        callback.headers or {},
        {"Content-Type": callback.content_type} if callback.content_type else {},
        signature_headers(
            callback.hook.signing_secrets(), str(callback.event_id), int(time.time()), body
        ),
    )
    return Request(callback.http_method, callback.target_url, headers, body)


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers as logged in an Attempt: values of secret-looking names are masked."""
    return {
        name: MASKED if is_secret_header(name) else printable(str(value))
        for name, value in headers.items()
    }


@lru_cache(maxsize=1024)
def is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_HEADER_WORDS)
