from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class HttpHooksConfig(AppConfig):
    name = "http_hooks"
    verbose_name = _("HTTP hooks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .delivery.sweep import start_in_tasks_worker
        from .metrics import loaded as load_metrics
        from .owners import watch_owner_deletions
        from .registry import registry
        from .settings import hooks_settings

        if hooks_settings.DISPATCH == "celery":
            # The tasks and the worker's sweep, whatever the project's Celery app
            # autodiscovers: a worker without them drops every task as unregistered.
            from . import tasks  # noqa: F401

        registry.start()
        watch_owner_deletions()
        load_metrics()  # registers them in METRICS_REGISTRY, when they are on
        start_in_tasks_worker()
