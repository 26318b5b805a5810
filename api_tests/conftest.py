"""Shared fixtures: a real HTTP receiver, hook builders, service markers."""

from __future__ import annotations

import os
import socket
import urllib.parse
from importlib.util import find_spec

import pytest
from django.db import connection

from http_hooks.api import create_hook

from .receiver import Receiver

# In CI the services are there, so a test that would skip for want of one fails instead.
REQUIRE_SERVICES = os.environ.get("HTTP_HOOKS_REQUIRE_SERVICES") == "1"

# The broker of the Celery tests, as the demo's Celery app reads it: Redis unless
# ``CELERY_BROKER_URL`` names another (CI runs them on RabbitMQ too: make test-rabbitmq).
BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
BROKER_PORTS = {"redis": 6379, "amqp": 5672, "pyamqp": 5672}


def broker_port(url: str = BROKER_URL) -> int:
    parts = urllib.parse.urlsplit(url)
    return parts.port or BROKER_PORTS[parts.scheme]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def skip_or_fail(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"HTTP_HOOKS_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        skip_or_fail("needs PostgreSQL: run with HTTP_HOOKS_DB=postgres (make test-postgres)")
    if item.get_closest_marker("celery"):
        try:
            import celery  # noqa: F401
        except ImportError:
            skip_or_fail("needs the celery extra installed")
        if not port_open(broker_port()):
            scheme = urllib.parse.urlsplit(BROKER_URL).scheme
            skip_or_fail(f"needs the Celery broker ({scheme}) on 127.0.0.1:{broker_port()}")
    if item.get_closest_marker("tasks") and find_spec("django_tasks_db") is None:
        skip_or_fail("needs the tasks extra installed (django-tasks-db and its db_worker)")


@pytest.fixture
def same_db_env():
    """Environment for a child process (``manage.py`` or a script) that must use
    this test's database; needs a test with ``transactional_db`` to see its rows."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "demo.settings",
        "PYTHONPATH": os.pathsep.join([str(root / "demo"), str(root)]),
    }
    name = str(connection.settings_dict["NAME"])
    if connection.vendor == "postgresql":
        env["HTTP_HOOKS_DB"], env["HTTP_HOOKS_PG_NAME"] = "postgres", name
    else:
        env.pop("HTTP_HOOKS_DB", None)
        env["HTTP_HOOKS_SQLITE_PATH"] = name
    return env


@pytest.fixture(autouse=True)
def _no_slow_hooks_of_other_tests():
    """The sender's memory of slow hooks lives as long as the process: hook ids of
    another test (reused after its rollback on SQLite) must not be in it."""
    from http_hooks.delivery.sender import SLOW_HOOKS

    SLOW_HOOKS.clear()


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def make_hook(receiver):
    """Create a hook through the Python API, aimed at the receiver by default."""

    def make(**kwargs):
        kwargs.setdefault("signals", ["django.db.models.signals.post_save"])
        kwargs.setdefault("model", "shop.order")
        kwargs.setdefault("target_url", receiver.url())
        return create_hook(**kwargs)

    return make


@pytest.fixture
def staff_client(db):
    """A REST API client logged in as a staff user."""
    from django.contrib.auth.models import User
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(User.objects.create_user("staff", is_staff=True))
    return client
