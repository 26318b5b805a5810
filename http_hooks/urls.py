"""Mount with ``path("api/", include("http_hooks.urls"))``."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="http_hooks-schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="http_hooks-schema"),
        name="http_hooks-docs",
    ),
    path(
        "redoc/",
        SpectacularRedocView.as_view(url_name="http_hooks-schema"),
        name="http_hooks-redoc",
    ),
]
