"""The one parser of the REST API: JSON, with a bound on nesting."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from ..payloads import TOO_DEEP, load_within

# No input of this API nests deeper than a few levels (a list of ids, an object
# of headers); Python's parser fails at about 1,000 with a RecursionError.
MAX_DEPTH = 32


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser; a body nested deeper than ``MAX_DEPTH`` levels is a 400."""

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Mapping | None = None
    ) -> Any:
        parse = super().parse
        data = load_within(lambda: parse(stream, media_type, parser_context), MAX_DEPTH)
        if data is TOO_DEEP:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels")
        return data
