"""Mount with ``path("api/", include("http_hooks.urls"))``."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

urlpatterns = [
    path("", include("http_hooks.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="http_hooks-schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="http_hooks-schema"),
        name="http_hooks-docs",
    ),
    path(
        "redoc/",
        SpectacularRedocView.as_view(
            url_name="http_hooks-schema", template_name="http_hooks/redoc.html"
        ),
        name="http_hooks-redoc",
    ),
]
