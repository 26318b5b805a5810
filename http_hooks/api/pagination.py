"""Pages of the list endpoints: numbered pages, and cursors for callbacks.

Callbacks are paged by cursor on ``-id``: the newest page of a table with
millions of rows is an index range scan with no ``COUNT(*)`` and no ``OFFSET``.
"""

from __future__ import annotations

from typing import Any

from rest_framework.pagination import CursorPagination, PageNumberPagination

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class BoundedPageSize:
    """Documents the bounds of ``page`` and ``page_size``: generated clients and
    fuzzers then know that ``page=0`` is not a page."""

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == "page":
                parameter["schema"]["minimum"] = 1
            elif parameter["name"] == "page_size":
                parameter["schema"]["minimum"] = 1
                parameter["description"] = (
                    f"Results per page (default {PAGE_SIZE}; larger values than "
                    f"{MAX_PAGE_SIZE} give {MAX_PAGE_SIZE})."
                )
        return parameters


class HooksPageNumberPagination(BoundedPageSize, PageNumberPagination):
    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE


class CallbackCursorPagination(BoundedPageSize, CursorPagination):
    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    ordering = "-id"
