"""Pages of the list endpoints: numbered pages, and cursors for callbacks.

Callbacks are paged by cursor on ``-id`` (or on their creation time, see
``filters.CallbackOrderingFilter``): the newest page of a table with millions of
rows is an index range scan with no ``COUNT(*)`` and no ``OFFSET``.

``page`` and ``page_size`` are whole numbers within their documented bounds or
a 400 (DRF would read ``page_size=0`` or ``page_size=x`` as the default, and a
size above the maximum as the maximum); a page past the last is a 404.
"""

from __future__ import annotations

import binascii
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.settings import spectacular_settings
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination, PageNumberPagination
from rest_framework.request import Request

from ..models import Callback
from ..text import ascii_digits
from ..validators import MAX_ID

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def whole_number(request: Request, name: str, maximum: int | None = None) -> int | None:
    """The query parameter ``name`` as a whole number from 1 to ``maximum``, None when
    it is not given; anything else is a 400 on that parameter."""
    value = request.query_params.get(name)
    if value is None:
        return None
    if not ascii_digits(value):
        number = 0
    elif len(value) > 18:  # past any page or size (and int() refuses 4,300 digits)
        number = 10**18
    else:
        number = int(value)
    if number < 1 or (maximum is not None and number > maximum):
        bounds = f"from 1 to {maximum}" if maximum is not None else "from 1"
        raise ValidationError({name: [f"Give a whole number {bounds}."]}, code="invalid")
    return number


class BoundedPageSize:
    """Checks ``page_size`` and documents the bounds of ``page`` and ``page_size``:
    generated clients and fuzzers then know that ``page=0`` is not a page."""

    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int:
        return whole_number(request, self.page_size_query_param, self.max_page_size) or (
            self.page_size
        )

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == "page":
                parameter["schema"]["minimum"] = 1
                parameter["description"] = "The page number (from 1; past the last page: 404)."
            elif parameter["name"] == "page_size":
                parameter["schema"]["minimum"] = 1
                parameter["schema"]["maximum"] = MAX_PAGE_SIZE
                parameter["description"] = (
                    f"Results per page (default {PAGE_SIZE}, at most {MAX_PAGE_SIZE})."
                )
        return parameters

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        """DRF's page schema with every key of the page required, as it always is there;
        the links nullable in the terms of the schema's OpenAPI version (3.1's
        ``type: [string, null]``, 3.0's ``nullable``: drf-spectacular's default, which
        a project keeps unless it sets ``OAS_VERSION``)."""
        paginated = super().get_paginated_response_schema(schema)
        if spectacular_settings.OAS_VERSION.startswith("3.0"):
            nullable_text: dict[str, Any] = {"type": "string", "nullable": True}
        else:
            nullable_text = {"type": ["string", "null"]}
        for name in ("next", "previous"):
            paginated["properties"][name] = {
                **nullable_text,
                "format": "uri",
                "description": f"The URL of the {name} page; null when there is none.",
            }
        paginated["properties"].get("count", {}).pop("example", None)
        paginated["required"] = list(paginated["properties"])
        return paginated


class HooksPageNumberPagination(BoundedPageSize, PageNumberPagination):
    last_page_strings = ()

    def get_page_number(self, request: Request, paginator: Any) -> int:
        return whole_number(request, self.page_query_param) or 1


class CallbackCursorPagination(BoundedPageSize, CursorPagination):
    ordering = "-id"

    def decode_cursor(self, request: Request) -> Cursor | None:
        """DRF's, plus a check of the position: a cursor is the client's text, and a
        forged one (``p=x``) would otherwise reach the lookup as a 500. Its text must be
        base64 of something: DRF's decoding drops the characters that are not base64,
        so that ``!!!`` or an empty cursor read as no cursor at all, the first page."""
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is not None:
            try:
                decoded = binascii.a2b_base64(encoded.encode("ascii"), strict_mode=True)
            except (ValueError, UnicodeError):
                decoded = b""
            if not decoded:
                raise NotFound(self.invalid_cursor_message)
        cursor = super().decode_cursor(request)
        position = None if cursor is None else cursor.position
        if position is None:
            return cursor
        if self.ordering[0].lstrip("-") == "id":
            if not ascii_digits(position):
                raise NotFound(self.invalid_cursor_message)
            if len(position) > 19 or int(position) > MAX_ID:
                raise NotFound(self.invalid_cursor_message)
            return cursor
        field = Callback._meta.get_field(self.ordering[0].lstrip("-"))
        try:
            valid = field.to_python(position) is not None
        except DjangoValidationError:
            valid = False
        if not valid:
            raise NotFound(self.invalid_cursor_message)
        return cursor
