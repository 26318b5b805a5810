"""Swagger UI and ReDoc pages that work with no internet in any project.

drf-spectacular takes the assets' location from ``SPECTACULAR_SETTINGS``, whose
defaults load them from a CDN: a project that did not copy the demo's settings
got blank pages offline. These views always serve drf-spectacular-sidecar's copy
through the project's static files, whatever those settings say.
"""

from django.templatetags.static import static
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from .errors import JSONErrorsMixin


def _sidecar(path: str) -> str:
    return static(f"drf_spectacular_sidecar/{path}")


class SchemaView(JSONErrorsMixin, SpectacularAPIView):
    pass


class SwaggerView(JSONErrorsMixin, SpectacularSwaggerView):
    @staticmethod
    def _swagger_ui_resource(filename: str) -> str:
        return _sidecar(f"swagger-ui-dist/{filename}")

    @staticmethod
    def _swagger_ui_favicon() -> str:
        return _sidecar("swagger-ui-dist/favicon-32x32.png")


class RedocView(JSONErrorsMixin, SpectacularRedocView):
    # drf-spectacular's page without the web fonts it loads from Google.
    template_name = "http_hooks/redoc.html"

    @staticmethod
    def _redoc_standalone() -> str:
        return _sidecar("redoc/bundles/redoc.standalone.js")
