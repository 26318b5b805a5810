"""Settings of the demo project, also used by the test suite.

``HTTP_HOOKS_DB=postgres`` switches to PostgreSQL on 127.0.0.1 (trust auth,
user ``postgres``; override with ``HTTP_HOOKS_PG_*``); the default is an
embedded SQLite file.
"""

import json
import os
import tempfile
from importlib.util import find_spec
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-insecure-key-do-not-use-in-production")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "http_hooks",
    "shop",
    "receiver",
]

# Django's tasks framework, for HTTP_HOOKS["DISPATCH"] = "tasks": the database backend
# and its db_worker (the `tasks` extra), on django.tasks (Django 6) or the backport.
if find_spec("django_tasks_db"):
    if find_spec("django.tasks") is None:
        INSTALLED_APPS.append("django_tasks")
    INSTALLED_APPS.append("django_tasks_db")
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo.urls"
WSGI_APPLICATION = "demo.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if os.environ.get("HTTP_HOOKS_DB") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("HTTP_HOOKS_PG_NAME", "http_hooks"),
            "USER": os.environ.get("HTTP_HOOKS_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("HTTP_HOOKS_PG_PASSWORD", ""),
            "HOST": os.environ.get("HTTP_HOOKS_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("HTTP_HOOKS_PG_PORT", "5432"),
            # Persistent connections, as many projects run them (tests set it).
            "CONN_MAX_AGE": int(os.environ.get("HTTP_HOOKS_PG_CONN_MAX_AGE", "0")),
            # One test database per test run here too, so that runs side by side
            # (several engineers, one checkout) never drop each other's.
            "TEST": {"NAME": f"test_http_hooks_{os.getpid()}"},
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("HTTP_HOOKS_SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            # IMMEDIATE: a transaction takes the write lock when it begins, so it waits
            # (up to the timeout) for the sender's writes; one begun as a reader that
            # then writes is refused at once ("database is locked") while another writes.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
            # A file, not memory, so that tests can start other processes on the same
            # database; one per test run, so that runs side by side do not collide.
            "TEST": {
                "NAME": os.path.join(
                    tempfile.gettempdir(), f"http_hooks_test_{os.getpid()}.sqlite3"
                )
            },
        }
    }

AUTH_PASSWORD_VALIDATORS = []
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "http_hooks API",
    "DESCRIPTION": "Manage webhooks (hooks), the signals that fire them and their deliveries "
    "(callbacks and attempts).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # 3.1 for `webhooks` (the requests http_hooks sends); split components so that
    # write-only fields (a hook's secret) appear in requests only.
    "OAS_VERSION": "3.1.0",
    "COMPONENT_SPLIT_REQUEST": True,
    "WEBHOOKS": [
        "http_hooks.api.schema.callback_webhook",
        "http_hooks.api.schema.event_webhook",
        "http_hooks.api.schema.test_event_webhook",
    ],
}

HTTP_HOOKS = {
    # The demo's receiver runs on 127.0.0.1, so the private-network block is
    # switched off here, on purpose. Keep it on in production.
    "BLOCK_PRIVATE_NETWORKS": False,
    "RETRY_SCHEDULE": [1, 5, 30, 120, 600, 1800, 3600],
    # Tenants are users (OWNER_MODEL's default): whose each shop row is.
    "OWNER_FIELDS": {
        "auth.User": "pk",
        "shop.Customer": "account",
        "shop.Order": "customer__account",
        "shop.Parcel": "nested_attribute__account",
    },
}
# Processes started by the tests and benchmarks (senders, Celery and tasks workers) get
# other settings through this variable: a JSON object merged into HTTP_HOOKS.
HTTP_HOOKS.update(json.loads(os.environ.get("HTTP_HOOKS_OVERRIDES", "{}")))

# The handler is the root logger's: a Celery worker replaces it with its own, and a
# handler of http_hooks' own would write each of its lines there a second time.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"http_hooks": {"level": "INFO"}},
}
