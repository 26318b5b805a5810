"""The HTTP request of one try of a callback, and what of it the attempt log keeps."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence

from ..headers import MASKED, is_secret_header, mask_headers, parse_headers, without_reserved
from ..models import Callback, ContentTypeChoice, HttpMethod
from ..settings import hooks_settings
from ..signing import signature_headers
from ..transport import Request, header_lines, printable

__all__ = ["MASKED", "is_secret_header", "logged_headers", "request_for", "requests_for"]

# Django builds an enum's ``values`` list anew on each use: too slow for every request.
METHODS = frozenset(HttpMethod.values)
CONTENT_TYPES = frozenset(ContentTypeChoice.values)


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


class RequestShape:
    """What the requests of one hook with one content type share, made once (per
    claim, as hooks are loaded afresh) instead of once per request: the headers
    before signing, as libcurl takes them and as the attempt log keeps them.

    Why: merging and checking the same headers for every request was a good part
    of the sender's time per callback (``bench/delivery.py``)."""

    def __init__(self, hook_headers: Mapping[str, str], content_type: str, marked: Collection[str]):
        check_content_type(content_type)
        self.headers = merge_headers(
            {
                "User-Agent": str(hooks_settings.USER_AGENT),
                # Bodies are only logged; uncompressed, RESPONSE_BODY_LIMIT limits the wire.
                "Accept-Encoding": "identity",
            },
            without_reserved(hook_headers),
            {"Content-Type": content_type} if content_type else {},
        )
        # Encoded and logged once; each request adds its signature's.
        self.lines = header_lines(self.headers)
        self.marked = marked
        self.secret: dict[str, bool] = {}
        self.logged_headers = self.logged(self.headers)

    def request(self, callback: Callback) -> tuple[Request, dict[str, str]]:
        """The request of one try of ``callback`` (see ``request_for``), whose content
        type is the shape's, and its headers as the attempt log keeps them."""
        check_method(callback.http_method)
        hook = callback.hook
        body = (callback.payload or "").encode("utf-8")
        signature = signature_headers(
            hook.signing_secrets(), str(callback.event_id), int(time.time()), body
        )
        # The signature's names are reserved: never among the hook's headers. The URL is
        # the hook's as it is now, like its headers and secrets: a retry never takes the
        # hook's new credentials to the URL it had when the event happened.
        request = Request(
            callback.http_method,
            hook.target_url,
            {**self.headers, **signature},
            body,
            [*self.lines, *header_lines(signature, defaults=False)],
        )
        return request, {**self.logged_headers, **self.logged(signature)}

    def logged(self, headers: Mapping[str, str]) -> dict[str, str]:
        """``logged_headers`` of its requests' headers: its own, or a signature's."""
        secret = self.secret
        logged = {}
        for name, value in headers.items():
            hidden = secret.get(name)
            if hidden is None:
                hidden = secret[name] = is_secret_header(name, self.marked)
            logged[name] = MASKED if hidden else printable(str(value))
        return logged


def check_method(method: str) -> None:
    """``ValueError`` for a stored HTTP method that is not one of ours."""
    if method not in METHODS:
        raise ValueError(f"the stored HTTP method {method[:20]!r} is not allowed")


def check_content_type(content_type: str) -> None:
    """``ValueError`` for a stored content type that is not one of ours."""
    if content_type not in CONTENT_TYPES:
        raise ValueError(f"the stored content type {content_type[:40]!r} is not allowed")


def request_for(callback: Callback, hook_headers: Mapping[str, str] | None = None) -> Request:
    """The HTTP request of one try of ``callback``: its method and body, its hook's URL
    and headers as they are now (``hook_headers``, parsed once by
    the caller, or parsed here), its Content-Type and the Standard Webhooks headers.

    Stored headers a hook may not set (``Content-Length``, ``Host``, ...: written
    around validation, or before it refused them) are left out, so that no row
    can frame this request or smuggle another; for the same reason a stored method
    or content type that is not one of ours fails the try (``ValueError``)."""
    if hook_headers is None:
        hook_headers = parse_headers(callback.hook.headers, stored=True)
    shape = RequestShape(hook_headers, callback.content_type, callback.hook.secret_headers)
    request, _ = shape.request(callback)
    return request


def requests_for(batch: Sequence[Callback]) -> Callable[[int], Request]:
    """``request_at(index)``: the request of ``batch[index]``, made when it is called.
    Each hook's headers are parsed once for the batch, not once per callback."""
    parsed: dict[int, dict[str, str]] = {}

    def request_at(index: int) -> Request:
        callback = batch[index]
        headers = parsed.get(callback.hook_id)
        if headers is None:
            headers = parsed[callback.hook_id] = parse_headers(callback.hook.headers, stored=True)
        return request_for(callback, headers)

    return request_at


def logged_headers(headers: Mapping[str, str], marked: Collection[str] = ()) -> dict[str, str]:
    """Headers as an Attempt logs them: secret values masked, the rest printable."""
    return {name: printable(str(value)) for name, value in mask_headers(headers, marked).items()}
