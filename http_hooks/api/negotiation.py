"""Content negotiation of the app's API views."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer

from ..imports import shown


class KnownFormats(DefaultContentNegotiation):
    """DRF's negotiation; a ``?format=`` (``URL_FORMAT_OVERRIDE``) that names none of the
    view's renderers is a 400 on that parameter, naming the ones there are. DRF answered
    404 Not Found, for a URL that exists: an answer the schema documents nowhere, and a
    client reads it as the resource gone."""

    def filter_renderers(self, renderers: list[BaseRenderer], format: str) -> list[BaseRenderer]:
        matching = [renderer for renderer in renderers if renderer.format == format]
        if not matching:
            known = ", ".join(dict.fromkeys(renderer.format for renderer in renderers))
            parameter = self.settings.URL_FORMAT_OVERRIDE or "format"
            raise ValidationError(
                {parameter: [f"Unknown format {shown(format)}: one of {known}."]}, code="invalid"
            )
        return matching
