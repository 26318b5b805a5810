"""``GET /api/metrics/``: http_hooks' Prometheus metrics, as text.

Not a JSON endpoint, so it stays out of the OpenAPI schema (generated SDKs
have nothing to type here; Prometheus scrapes it). Its errors are the API's
JSON error body whatever the client accepts; the metrics themselves come in
Prometheus' text format, or OpenMetrics when the scraper asks for it.
"""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from .. import metrics
from .errors import exception_handler
from .permissions import CanViewMetrics


class ErrorsAsJSON(BaseContentNegotiation):
    """The one renderer (JSON) for every answer that goes through DRF, the errors:
    a scraper's ``Accept: text/plain`` must not turn a 403 into a 406."""

    def select_parser(self, request: Request, parsers: list) -> None:
        return None

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type


@extend_schema(exclude=True)
class MetricsView(APIView):
    """Staff and users with ``http_hooks.view_metrics`` read the metrics; 404 when
    they are off (``METRICS``) or prometheus_client is not installed."""

    permission_classes = [CanViewMetrics]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = ErrorsAsJSON

    def get_exception_handler(self):
        return exception_handler

    def get(self, request: Request) -> HttpResponse:
        prometheus = metrics.loaded()
        if prometheus is None:
            raise NotFound(
                "Metrics are off: install prometheus_client (the http_hooks[metrics] extra) "
                "and keep HTTP_HOOKS['METRICS'] on.",
                code="metrics_off",
            )
        body, content_type = prometheus.exposition(request.headers.get("Accept", ""))
        return HttpResponse(body, content_type=content_type)
