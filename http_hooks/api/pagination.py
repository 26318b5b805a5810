"""Pages of the list endpoints: numbered pages, and cursors for callbacks.

Callbacks are paged by cursor on ``-id``: the newest page of a table with
millions of rows is an index range scan with no ``COUNT(*)`` and no ``OFFSET``.
"""

from __future__ import annotations

from rest_framework.pagination import CursorPagination, PageNumberPagination

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class HooksPageNumberPagination(PageNumberPagination):
    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE


class CallbackCursorPagination(CursorPagination):
    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    ordering = "-id"
