from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/receiver/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/", include("http_hooks.urls")),
    path("receiver/", include("receiver.urls")),
]

# Under /api/, a 400 that Django answers before any view (an unknown Host) in the API's JSON.
handler400 = "http_hooks.api.errors.bad_request"
