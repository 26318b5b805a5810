from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.generic import RedirectView

# Browsers ask every site for /favicon.ico: an icon, not a 404 in their consoles on
# each first page of the admin or the browsable API.
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<circle cx="8" cy="8" r="7" fill="#417690"/></svg>'
)


def favicon(request: HttpRequest) -> HttpResponse:
    return HttpResponse(FAVICON, content_type="image/svg+xml")


urlpatterns = [
    path("", RedirectView.as_view(url="/receiver/", permanent=False)),
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("api/", include("http_hooks.urls")),
    path("receiver/", include("receiver.urls")),
]

# Under /api/, a 400 that Django answers before any view (an unknown Host) in the API's JSON.
handler400 = "http_hooks.api.errors.bad_request"
