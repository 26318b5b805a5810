"""The one place where errors become HTTP answers.

Every view of the REST API uses ``exception_handler`` (through
``views.HttpHooksAPIMixin``), so the project's ``REST_FRAMEWORK`` settings
need no change. The service layer's ``HttpHooksError`` becomes a 400 on the
field it names (a failed HTTP transport, ``TransportError``, becomes a 503, as
does a database out of reach: a dropped connection, a refused one, a locked
SQLite file, a standby refusing writes after a failover), a body over Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE`` a 413; every error, DRF's own included, the 404
of an unknown URL under the API (``not_found``) and, with
``handler400 = "http_hooks.api.errors.bad_request"`` in the project's root
URLconf, the 400s Django answers before any view (``bad_request``) get the same
body::

    {"code": "invalid_headers", "detail": "headers: invalid headers: ...",
     "errors": [{"field": "headers", "code": "invalid_headers", "message": "..."}]}
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    DisallowedHost,
    PermissionDenied,
    RequestDataTooBig,
    TooManyFieldsSent,
)
from django.db import connections
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    JsonResponse,
)
from django.urls import Resolver404, resolve
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from ..delivery.reconnect import log_database_failure, out_of_reach, read_only
from ..exceptions import HttpHooksError, TransportError, cut_short

logger = logging.getLogger(__name__)


class Conflict(exceptions.APIException):
    status_code = 409
    default_detail = "The request conflicts with the object's current state."
    default_code = "conflict"


class TransportUnavailable(exceptions.APIException):
    status_code = 503
    default_detail = "The HTTP transport failed; try again."
    default_code = "transport_error"


class DatabaseUnavailable(exceptions.APIException):
    status_code = 503
    default_detail = "The database did not answer; try again."
    default_code = "database_unavailable"


class RequestTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The request body is larger than the server accepts."
    default_code = "request_too_large"


def as_validation_error(error: HttpHooksError) -> exceptions.ValidationError:
    """A DRF ``ValidationError`` on the field ``error`` concerns, keeping its code."""
    field = error.field or api_settings.NON_FIELD_ERRORS_KEY
    return exceptions.ValidationError({field: [error.message]}, code=error.code)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, TransportError):
        exc = TransportUnavailable(exc.message, code=exc.code)
    elif isinstance(exc, HttpHooksError):
        exc = as_validation_error(exc)
    elif out_of_reach(exc):
        # Out of reach, busy (a lock, a deadlock, a statement timeout) or read-only (a
        # standby): a retry may pass, so a 503 in the API's body rather than the
        # project's 500 page.
        view = context.get("view")
        log_database_failure(logger, "%s: the database did not answer", type(view).__name__)
        if read_only(exc):
            close_connections_after_the_request()
        exc = DatabaseUnavailable()
        # In JSON whatever the client accepts: the browsable API's page would ask the
        # database again while it renders (the user, the forms), and fail as the
        # project's 500 page, outside any view.
        request = context.get("request")
        if request is not None:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    elif isinstance(exc, TooManyFieldsSent):  # over DATA_UPLOAD_MAX_NUMBER_FIELDS parameters
        exc = exceptions.ParseError(str(exc))
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = drf_exception_handler(exc, context)
    if response is not None:
        response.data = error_body(exc)
    return response


def close_connections_after_the_request() -> None:
    """The open connections are closed at the end of the request (Django's
    ``close_old_connections``), as if past their ``CONN_MAX_AGE``: one that met a standby
    answers, so Django found it usable and kept it, and every later write went to that
    standby, where a new connection may reach the new primary."""
    for db in connections.all(initialized_only=True):
        db.close_at = time.monotonic()


class JSONErrorsMixin:
    """For a view of the API outside its ViewSets (the API root, the schema, the docs
    pages): its errors get the API's body, in JSON whatever the view renders (the
    schema view would write DRF's error as YAML, the docs pages as a text page)."""

    def get_exception_handler(self):
        return exception_handler

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The project's ``handler400``: the API's error body for a URL under the API,
    Django's own page elsewhere.

    A 400 that Django raises before any view runs (a ``Host`` header not in
    ``ALLOWED_HOSTS``, refused by ``CommonMiddleware``) reaches no view of the API,
    so only the root URLconf's ``handler400`` can answer it in JSON.
    """
    try:
        match = resolve(request.path_info, getattr(request, "urlconf", None))
    except Resolver404:
        match = None
    if match is None or not match.func.__module__.startswith("http_hooks."):
        return defaults.bad_request(request, exception)
    if isinstance(exception, DisallowedHost):
        detail = "The Host header names no host this server answers to."
    else:
        detail = "Bad request."
    return JsonResponse(error_body(exceptions.ParseError(detail, code="bad_request")), status=400)


@csrf_exempt  # changes nothing; without it a POST is CsrfViewMiddleware's HTML 403
def not_found(request: HttpRequest) -> HttpResponse:
    """The answer to a URL under the API that no route matches: the JSON error body,
    not the project's HTML 404 page.

    Being a route itself, it keeps ``CommonMiddleware`` from adding the missing
    slash, so it does that here: a GET of ``/api/hooks`` still moves to
    ``/api/hooks/``; other methods get the 404 with the right URL in it.
    """
    path = request.path_info
    if settings.APPEND_SLASH and not path.endswith("/"):
        try:
            match = resolve(f"{path}/", getattr(request, "urlconf", None))
        except Resolver404:
            match = None
        if match is not None and match.func is not not_found:
            if request.method in ("GET", "HEAD"):
                return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
            detail = f"Not found; the URL ends with a slash: {request.path}/"
            return JsonResponse(error_body(exceptions.NotFound(detail)), status=404)
    return JsonResponse(error_body(exceptions.NotFound()), status=404)


def error_body(exc: exceptions.APIException) -> dict[str, Any]:
    if not isinstance(exc, exceptions.ValidationError):
        return {"code": _code_of(exc), "detail": encodable(str(exc.detail)), "errors": []}
    errors = [
        {
            "field": encodable(field),
            "code": getattr(message, "code", "invalid"),
            "message": encodable(str(message)),
        }
        for field, message in _flatten(exc.detail)
    ]
    return {
        "code": errors[0]["code"],
        "detail": "; ".join(f"{e['field']}: {e['message']}" for e in errors),
        "errors": errors,
    }


def encodable(text: str) -> str:
    """``text`` as UTF-8 can carry it, cut short: a message may quote the client's
    input, a lone surrogate (``"\\ud800"`` in JSON) would make the renderer fail with
    a 500, and DRF's own messages quote all of it (a megabyte long ``http_method`` came
    back twice in the 400: "... is not a valid choice")."""
    return cut_short(text).encode("utf-8", "replace").decode("utf-8")


def _code_of(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else exc.default_code


def _flatten(detail: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(field path, message)`` pairs of a nested DRF error detail; list items of a
    field are ``field.0``, nested fields ``field.name``."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            if isinstance(item, dict | list):
                yield from _flatten(item, f"{prefix}.{index}" if prefix else str(index))
            else:
                yield prefix or api_settings.NON_FIELD_ERRORS_KEY, item
    else:
        yield prefix or api_settings.NON_FIELD_ERRORS_KEY, detail
