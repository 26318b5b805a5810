"""The parsers of the REST API: strict JSON, with a bound on nesting."""

from __future__ import annotations

import decimal
import json
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from ..imports import shown
from ..payloads import TOO_DEEP, StrictJSONDecoder, load_within

# No input of this API nests deeper than a few levels (a list of ids, an object
# of headers); Python's parser fails at about 1,000 with a RecursionError.
MAX_DEPTH = 32


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with a 400 (``parse_error``) for what ``json`` would take
    silently: an object with one key twice (``json`` keeps the last value), ``NaN``
    and ``Infinity`` (whatever ``STRICT_JSON`` says), a number out of a double's range
    and nesting deeper than ``MAX_DEPTH`` levels.

    A fraction is a float (``number``), as the fields take it: ``5.0`` is a whole
    number, and a hook's conditions are stored as JSON, which has no decimals."""

    number: Callable[[str], Any] = float

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Mapping | None = None
    ) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            # Text codecs only: ``bytes.decode`` refuses one such as bz2_codec, which
            # would expand a small body past the upload limit.
            text = stream.read().decode(encoding)
        except LookupError:
            raise ParseError(f"Unsupported charset {shown(encoding)} in the Content-Type") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        try:
            data = load_within(lambda: self.load(text), MAX_DEPTH)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if data is TOO_DEEP:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels")
        return data

    def load(self, text: str) -> Any:
        return json.loads(text, cls=StrictJSONDecoder, number=self.number)


class ExactJSONParser(JSONParser):
    """For an event, whose payload goes to receivers: a fraction is a ``Decimal`` with
    the digits the client wrote (a float would send 12345678901234567.89 as
    12345678901234568), as ``send_event`` takes it from Python."""

    number = decimal.Decimal
