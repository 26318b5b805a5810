"""Mount with ``path("api/", include("http_hooks.urls"))``."""

from django.urls import include, path, re_path

from .api.docs import RedocView, SchemaView, SwaggerView
from .api.errors import not_found

urlpatterns = [
    path("", include("http_hooks.api.urls")),
    path("schema/", SchemaView.as_view(), name="http_hooks-schema"),
    path("docs/", SwaggerView.as_view(url_name="http_hooks-schema"), name="http_hooks-docs"),
    path("redoc/", RedocView.as_view(url_name="http_hooks-schema"), name="http_hooks-redoc"),
    # Last: any other URL under the API is a JSON 404, not the project's HTML page.
    re_path(r"", not_found),
]
