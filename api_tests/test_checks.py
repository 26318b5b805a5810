"""System checks: wrong settings and hooks on http_hooks' own models are reported."""

import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from http_hooks.checks import check_hooks, check_settings
from http_hooks.models import Callback, Hook, Signal


def ids(errors):
    return [e.id for e in errors]


def test_default_settings_pass():
    assert check_settings() == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("not a dict", ["http_hooks.E001"]),
        ({"TIMEOUTS": 3}, ["http_hooks.E002"]),
        ({"TIMEOUT": 0}, ["http_hooks.E003"]),
        ({"TIMEOUT": (5, -1)}, ["http_hooks.E003"]),
        ({"MAX_ATTEMPTS": 0}, ["http_hooks.E004"]),
        ({"CONCURRENCY": "16"}, ["http_hooks.E004"]),
        ({"RESEND_LIMIT": 0}, ["http_hooks.E004"]),
        ({"TEMPLATE_PAYLOAD_LIMIT": 0}, ["http_hooks.E004"]),
        ({"ADMIN_COUNT_LIMIT": 1.5}, ["http_hooks.E004"]),
        ({"ADMIN_SCAN_LIMIT": 0}, ["http_hooks.E004"]),
        ({"HOOK_CONCURRENCY": 0}, ["http_hooks.E004"]),
        ({"HOOK_CONCURRENCY": 2.5}, ["http_hooks.E004"]),
        ({"RETRY_SCHEDULE": []}, ["http_hooks.E005"]),
        ({"RETRY_SCHEDULE": [5, -1]}, ["http_hooks.E005"]),
        ({"RETRY_JITTER": 1.5}, ["http_hooks.E006"]),
        ({"REGISTRY_TTL": -1}, ["http_hooks.E007"]),
        ({"DISPATCH": "cron"}, ["http_hooks.E008"]),
        ({"BLOCK_PRIVATE_NETWORKS": "yes"}, ["http_hooks.E010"]),
        ({"PERMISSION_CLASSES": ["nowhere.Permission"]}, ["http_hooks.E011"]),
        ({"LOOP_MAX_SLEEP": 0}, ["http_hooks.E023"]),
        ({"LOOP_MIN_SLEEP": 2, "LOOP_MAX_SLEEP": 1}, ["http_hooks.E023"]),
        ({"LOOP_LISTEN_MAX_SLEEP": 0.05}, ["http_hooks.E023"]),
        ({"NOTIFY_CHANNEL": ""}, ["http_hooks.E024"]),
        ({"NOTIFY_CHANNEL": "x" * 64}, ["http_hooks.E024"]),
        ({"NOTIFY_CHANNEL": 7}, ["http_hooks.E024"]),
        ({"ORDERED_ON_FAILURE": "stop"}, ["http_hooks.E031"]),
        ({"ORDERED_ON_FAILURE": None}, ["http_hooks.E031"]),
        # Durations past ten years, or infinite: added to a date, they crashed the sender.
        ({"TIMEOUT": float("inf")}, ["http_hooks.E003"]),
        ({"TIMEOUT": (5, float("inf"))}, ["http_hooks.E003"]),
        ({"LEASE_SECONDS": 10**12}, ["http_hooks.E004"]),
        ({"RETRY_SCHEDULE": [60, 10**12]}, ["http_hooks.E005"]),
        ({"RETRY_SCHEDULE": [float("inf")]}, ["http_hooks.E005"]),
        ({"REGISTRY_TTL": float("inf")}, ["http_hooks.E007"]),
        ({"SECRET_ROTATION_GRACE": 10**12}, ["http_hooks.E012"]),
        ({"RETRY_AFTER_MAX": 10**12}, ["http_hooks.E016"]),
        ({"BREAKER_COOLDOWN": float("inf")}, ["http_hooks.E016"]),
        ({"LOOP_MAX_SLEEP": float("inf")}, ["http_hooks.E023"]),
        ({"SWEEP_SECONDS": float("nan")}, ["http_hooks.E033"]),
        # Read in the user's save (the NOTIFY after a commit): a save raised there.
        ({"NOTIFY_INTERVAL": "abc"}, ["http_hooks.E034"]),
        ({"NOTIFY_INTERVAL": None}, ["http_hooks.E034"]),
        ({"NOTIFY_INTERVAL": -1}, ["http_hooks.E034"]),
        # A line break added a header of its own to every request.
        ({"USER_AGENT": "x\r\nX-Injected: yes"}, ["http_hooks.E032"]),
        ({"USER_AGENT": "caf\u00e9 \u2713"}, ["http_hooks.E032"]),
        ({"USER_AGENT": ""}, ["http_hooks.E032"]),
        ({"USER_AGENT": 5}, ["http_hooks.E032"]),
        ({"CELERY_QUEUE": 5}, ["http_hooks.E035"]),
        ({"CELERY_QUEUE": " "}, ["http_hooks.E035"]),
    ],
    ids=lambda v: str(v)[:40],
)
def test_wrong_settings_are_reported_with_an_id(settings, value, expected):
    settings.HTTP_HOOKS = value
    assert ids(check_settings()) == expected


# The package of the tasks framework installed: Django 6's, or the backport on 5.2.
FRAMEWORK = "django.tasks" if find_spec("django.tasks") else "django_tasks"


@pytest.mark.tasks
@pytest.mark.parametrize(
    ("backend", "tasks_queue", "expected"),
    [
        ({"BACKEND": "django_tasks_db.DatabaseBackend"}, "default", []),
        ({"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []}, "any", []),
        (
            {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["webhooks"]},
            "default",
            ["http_hooks.E022"],
        ),
        ({"BACKEND": "django_tasks_db.DatabaseBackend"}, "webhooks", ["http_hooks.E022"]),
        ({"BACKEND": "nowhere.Backend"}, "default", ["http_hooks.E022"]),
        (
            {"BACKEND": f"{FRAMEWORK}.backends.immediate.ImmediateBackend"},
            "default",
            ["http_hooks.W021"],
        ),
        ({"BACKEND": f"{FRAMEWORK}.backends.dummy.DummyBackend"}, "default", ["http_hooks.W022"]),
    ],
    ids=[
        "database",
        "any-queue",
        "queue-not-served",
        "other-queue",
        "no-such-backend",
        "immediate",
        "dummy",
    ],
)
def test_the_tasks_mode_needs_a_backend_with_workers(settings, backend, tasks_queue, expected):
    settings.TASKS = {"default": backend}
    settings.HTTP_HOOKS = {"DISPATCH": "tasks", "TASKS_QUEUE": tasks_queue}
    assert ids(check_settings()) == expected


@pytest.mark.parametrize(("eager", "expected"), [(False, []), (True, ["http_hooks.W023"])])
def test_the_celery_mode_warns_when_celery_runs_tasks_eagerly(settings, eager, expected):
    from celery import current_app

    settings.HTTP_HOOKS = {"DISPATCH": "celery"}
    previous = current_app.conf.task_always_eager
    current_app.conf.task_always_eager = eager
    try:
        assert ids(check_settings()) == expected
    finally:
        current_app.conf.task_always_eager = previous


def test_wrong_legacy_reload_setting_is_reported(settings):
    settings.DJANGO_HTTP_HOOKS_RELOAD = "touch demo/wsgi.py"
    assert ids(check_settings()) == ["http_hooks.E013"]


def test_the_old_reload_callable_is_reported_as_unused(settings):
    """infi.django_http_hooks called it on hook changes; ignored without a word, a user
    would believe it still runs."""
    settings.DJANGO_HTTP_HOOKS_RELOAD_CALLABLE = "myproject.reload:restart"
    assert ids(check_settings()) == ["http_hooks.W024"]


# Django 6 runs the model checks against every database, and the JSONField check
# asks SQLite whether it supports JSON: ``check`` opens a connection there.
@pytest.mark.django_db
def test_wrong_settings_stop_manage_py_check(settings):
    settings.HTTP_HOOKS = {"DISPATCH": "cron"}
    with pytest.raises(SystemCheckError, match="HTTP_HOOKS\\['DISPATCH'\\] is invalid"):
        call_command("check")


@pytest.mark.django_db
def test_a_hook_on_an_own_model_written_around_validation_is_reported():
    hook = Hook.objects.create(
        model=ContentType.objects.get_for_model(Callback), target_url="https://example.com/"
    )
    errors = check_hooks(databases=["default"])
    assert ids(errors) == ["http_hooks.E020"]
    assert errors[0].obj == hook
    assert check_hooks(databases=None) == []


@pytest.mark.django_db
def test_a_hook_on_an_own_model_never_fires():
    hook = Hook.objects.create(
        model=ContentType.objects.get_for_model(Callback), target_url="https://example.com/"
    )
    hook.signals.add(Signal.objects.get(signal="django.db.models.signals.post_save"))
    Callback.objects.create(hook=hook, target_url="https://example.com/", http_method="POST")
    assert Callback.objects.count() == 1


def test_migrate_on_an_empty_database_runs_the_database_checks(tmp_path):
    """``migrate`` runs the database checks before the tables exist."""
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, str(root / "demo" / "manage.py"), "migrate", "--no-input"],
        env={
            "PATH": "/usr/bin:/bin",
            "HTTP_HOOKS_SQLITE_PATH": str(tmp_path / "fresh.sqlite3"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Applying http_hooks.0002_default_signals... OK" in result.stdout
