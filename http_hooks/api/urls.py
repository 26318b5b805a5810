"""The REST API's routes; ``http_hooks.urls`` includes them."""

from django.urls import path
from rest_framework.routers import APIRootView, DefaultRouter

from .errors import JSONErrorsMixin
from .metrics import MetricsView
from .views import CallbackViewSet, EventTypeViewSet, EventViewSet, HookViewSet, SignalViewSet


class RootView(JSONErrorsMixin, APIRootView):
    pass


router = DefaultRouter()
router.APIRootView = RootView
router.include_format_suffixes = False
router.register("hooks", HookViewSet, basename="hook")
router.register("signals", SignalViewSet, basename="signal")
router.register("callbacks", CallbackViewSet, basename="callback")
router.register("events", EventViewSet, basename="event")
router.register("event-types", EventTypeViewSet, basename="event-type")

urlpatterns = [
    *router.urls,
    path("metrics/", MetricsView.as_view(), name="http_hooks-metrics"),
]
