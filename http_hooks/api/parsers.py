"""The one parser of the REST API: JSON, with a bound on nesting."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

# No input of this API nests deeper than a few levels (a list of ids, an object
# of headers); Python's parser fails at about 1,000 with a RecursionError.
MAX_DEPTH = 32


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser; a body nested deeper than ``MAX_DEPTH`` levels is a 400."""

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Mapping | None = None
    ) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            data = None
            too_deep = True
        else:
            too_deep = depth_exceeds(data, MAX_DEPTH)
        if too_deep:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels")
        return data


def depth_exceeds(data: Any, limit: int) -> bool:
    """Whether lists and objects in ``data`` nest deeper than ``limit`` (without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        if depth > limit:
            return True
        stack.extend((item, depth + 1) for item in value)
    return False
