"""The demo project.

Its Celery app is loaded with Django when Celery is installed, so that tasks
queued by any process of the demo go to the demo's broker.
"""

try:
    from .celery import app as celery_app
except ModuleNotFoundError as exc:  # Celery is an optional extra.
    if exc.name != "celery":
        raise
    celery_app = None

__all__ = ["celery_app"]
