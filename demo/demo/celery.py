"""The demo's Celery app, for ``HTTP_HOOKS["DISPATCH"] = "celery"``.

Run a worker (no beat: each worker sweeps for retries and lost callbacks itself,
``http_hooks.delivery.sweep``)::

    cd demo && celery -A demo worker --loglevel info

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
)
app.autodiscover_tasks()
