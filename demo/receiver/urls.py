from django.urls import path

from . import views

urlpatterns = [
    path("", views.received, name="received"),
    path("inbox/<slug:name>/", views.inbox, name="inbox"),
]
