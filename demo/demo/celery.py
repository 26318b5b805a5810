"""The demo's Celery app, for ``HTTP_HOOKS["DISPATCH"] = "celery"``.

Run a worker with its beat (the periodic ``send_due_callbacks``)::

    cd demo && celery -A demo worker --beat --loglevel info

The broker is ``$CELERY_BROKER_URL``, by default the Redis on
127.0.0.1:6379; any broker Celery supports works (RabbitMQ: ``amqp://...``).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

app = Celery("demo")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    broker_url=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
    broker_connection_retry_on_startup=True,
    beat_schedule={
        "http-hooks-send-due-callbacks": {
            "task": "http_hooks.send_due_callbacks",
            "schedule": float(os.environ.get("HTTP_HOOKS_BEAT_SECONDS", "10")),
        }
    },
)
app.autodiscover_tasks()
