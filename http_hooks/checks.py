"""System checks for the ``HTTP_HOOKS`` settings and for hooks that would loop.

Settings are checked at startup; the hook check needs the database and so is
only run with ``check --database default`` (Django's ``databases`` argument).
"""

from __future__ import annotations

import math
import os
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Count, Min
from django.db.models.options import Options
from django.utils.module_loading import import_string

from .delivery.ordering import FAILURE_POLICIES
from .exceptions import InvalidHeadersError
from .headers import parse_headers
from .owner_fields import owner_paths, parse_owner_fields
from .payloads import parse_hidden_field
from .settings import DEFAULTS, LEGACY, hooks_settings
from .text import first_line


def _positive_number(value: Any, *, integer: bool = False) -> bool:
    kinds = (int,) if integer else (int, float)
    return isinstance(value, kinds) and not isinstance(value, bool) and value > 0


# Durations are added to dates and times: past some thousands of years, Python's
# dates overflow (a receiver's Retry-After, capped at RETRY_AFTER_MAX, crashed the sender).
MAX_SECONDS = 10 * 365 * 24 * 3600
TEN_YEARS = "at most ten years"


def _seconds(value: Any, *, integer: bool = False, zero: bool = False) -> bool:
    """A duration in seconds: more than 0 (or 0 too, with ``zero``), finite, and at
    most ``MAX_SECONDS``."""
    kinds = (int,) if integer else (int, float)
    return (
        isinstance(value, kinds)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if zero else value > 0)
        and value <= MAX_SECONDS
    )


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    user = getattr(settings, "HTTP_HOOKS", {})
    if not isinstance(user, dict):
        return [Error("HTTP_HOOKS must be a dict.", id="http_hooks.E001")]
    for name in sorted(set(user) - set(DEFAULTS)):
        errors.append(
            Error(
                f"HTTP_HOOKS has an unknown setting {name!r}.",
                hint=f"Known settings: {', '.join(sorted(DEFAULTS))}.",
                id="http_hooks.E002",
            )
        )
    if errors:
        return errors
    s = hooks_settings

    def bad(name: str, hint: str, code: str) -> None:
        errors.append(Error(f"HTTP_HOOKS[{name!r}] is invalid.", hint=hint, id=code))

    timeout = s.TIMEOUT
    if not (
        _seconds(timeout)
        or (isinstance(timeout, list | tuple) and len(timeout) == 2 and all(map(_seconds, timeout)))
    ):
        bad(
            "TIMEOUT",
            f"Use seconds > 0 ({TEN_YEARS}), or a (connect, read) pair of them.",
            "http_hooks.E003",
        )
    for name in (
        "MAX_ATTEMPTS",
        "CONCURRENCY",
        "BATCH_SIZE",
        "RESEND_LIMIT",
        "ADMIN_COUNT_LIMIT",
        "ADMIN_SCAN_LIMIT",
        "METRICS_COUNT_LIMIT",
    ):
        if not _positive_number(getattr(s, name), integer=True):
            bad(name, "Use a whole number >= 1.", "http_hooks.E004")
    if not _seconds(s.LEASE_SECONDS, integer=True):
        bad(
            "LEASE_SECONDS", f"Use a whole number of seconds >= 1 ({TEN_YEARS}).", "http_hooks.E004"
        )
    if s.HOOK_CONCURRENCY is not None and not _positive_number(s.HOOK_CONCURRENCY, integer=True):
        bad(
            "HOOK_CONCURRENCY",
            "Use None (three quarters of CONCURRENCY) or a whole number >= 1.",
            "http_hooks.E004",
        )
    if not _positive_number(s.RESPONSE_BODY_LIMIT, integer=True):
        bad("RESPONSE_BODY_LIMIT", "Use a number of bytes >= 1.", "http_hooks.E004")
    if not _positive_number(s.TEMPLATE_PAYLOAD_LIMIT, integer=True):
        bad("TEMPLATE_PAYLOAD_LIMIT", "Use a number of characters >= 1.", "http_hooks.E004")
    schedule = s.RETRY_SCHEDULE
    if (
        not isinstance(schedule, list | tuple)
        or not schedule
        or not all(_seconds(x, zero=True) for x in schedule)
    ):
        bad(
            "RETRY_SCHEDULE",
            f"Use a non-empty list of seconds >= 0 ({TEN_YEARS} each).",
            "http_hooks.E005",
        )
    jitter = s.RETRY_JITTER
    if not isinstance(jitter, int | float) or isinstance(jitter, bool) or not 0 <= jitter < 1:
        bad("RETRY_JITTER", "Use a fraction from 0 up to (not including) 1.", "http_hooks.E006")
    if not _seconds(s.REGISTRY_TTL, zero=True):
        bad("REGISTRY_TTL", f"Use seconds >= 0 ({TEN_YEARS}).", "http_hooks.E007")
    if s.DISPATCH not in ("command", "celery", "tasks"):
        bad("DISPATCH", "Use 'command', 'celery' or 'tasks'.", "http_hooks.E008")
    elif s.DISPATCH == "celery":
        try:
            import celery  # noqa: F401
        except ImportError:
            bad(
                "DISPATCH",
                "Install the 'celery' extra: pip install http_hooks[celery].",
                "http_hooks.E009",
            )
        else:
            errors += _celery_messages()
    elif s.DISPATCH == "tasks":
        errors += _tasks_backend_messages()
    if not isinstance(s.BLOCK_PRIVATE_NETWORKS, bool):
        bad("BLOCK_PRIVATE_NETWORKS", "Use True or False.", "http_hooks.E010")
    if s.CA_BUNDLE is not None and not (
        isinstance(s.CA_BUNDLE, str) and os.path.isfile(s.CA_BUNDLE)
    ):
        bad("CA_BUNDLE", "Use None or the path of a CA bundle file (PEM).", "http_hooks.E014")
    classes = s.PERMISSION_CLASSES
    if not isinstance(classes, list | tuple):
        bad("PERMISSION_CLASSES", "Use a list of dotted paths.", "http_hooks.E011")
    else:
        for path in classes:
            try:
                import_string(path)
            except ImportError as exc:
                bad("PERMISSION_CLASSES", f"Cannot import {path!r}: {exc}.", "http_hooks.E011")
    errors += _owner_problems()
    for problem in parse_owner_fields(s.OWNER_FIELDS)[1]:
        bad("OWNER_FIELDS", problem, "http_hooks.E029")
    for problem in _hidden_field_problems(user.get("HIDDEN_FIELDS", ())):
        bad("HIDDEN_FIELDS", problem, "http_hooks.E015")
    if not _seconds(s.SECRET_ROTATION_GRACE, zero=True):
        bad("SECRET_ROTATION_GRACE", f"Use seconds >= 0 ({TEN_YEARS}).", "http_hooks.E012")
    if not _seconds(s.RETRY_AFTER_MAX, integer=True):
        bad(
            "RETRY_AFTER_MAX",
            f"Use a whole number of seconds >= 1 ({TEN_YEARS}).",
            "http_hooks.E016",
        )
    if not isinstance(s.DISABLE_ON_GONE, bool):
        bad("DISABLE_ON_GONE", "Use True or False.", "http_hooks.E016")
    if not _seconds(s.BREAKER_COOLDOWN):
        bad("BREAKER_COOLDOWN", f"Use seconds > 0 ({TEN_YEARS}).", "http_hooks.E016")
    for name in ("BREAKER_FAILURES", "AUTO_DISABLE_AFTER", "AUTO_DISABLE_FAILURES"):
        value = getattr(s, name)
        if value is not None and not _positive_number(value, integer=True):
            bad(name, "Use None (off) or a whole number >= 1.", "http_hooks.E016")
    sleeps = ("LOOP_MIN_SLEEP", "LOOP_MAX_SLEEP", "LOOP_LISTEN_MAX_SLEEP")
    if not all(_seconds(getattr(s, name)) for name in sleeps) or (
        min(s.LOOP_MAX_SLEEP, s.LOOP_LISTEN_MAX_SLEEP) < s.LOOP_MIN_SLEEP
    ):
        bad(
            "LOOP_MIN_SLEEP",
            "Use seconds > 0, LOOP_MIN_SLEEP no more than the two maximums.",
            "http_hooks.E023",
        )
    channel = s.NOTIFY_CHANNEL
    if channel is not None and not (
        isinstance(channel, str) and 0 < len(channel.encode()) <= 63 and "\0" not in channel
    ):
        bad(
            "NOTIFY_CHANNEL",
            "Use None (the loop workers only poll) or a PostgreSQL channel name of 1 to 63 bytes.",
            "http_hooks.E024",
        )
    if not _seconds(s.NOTIFY_INTERVAL, zero=True):
        bad("NOTIFY_INTERVAL", f"Use seconds >= 0 ({TEN_YEARS}).", "http_hooks.E034")
    if not _header_value(s.USER_AGENT):
        bad(
            "USER_AGENT",
            "Use non-empty text a header can carry: no line break or other control "
            "character, Latin-1 only.",
            "http_hooks.E032",
        )
    queue = s.CELERY_QUEUE
    if queue is not None and not (isinstance(queue, str) and queue.strip()):
        bad("CELERY_QUEUE", "Use None (Celery's default queue) or a queue name.", "http_hooks.E035")
    if s.SWEEP_SECONDS is not None and not _seconds(s.SWEEP_SECONDS):
        bad(
            "SWEEP_SECONDS", f"Use None (no sweep) or seconds > 0 ({TEN_YEARS}).", "http_hooks.E033"
        )
    if s.ORDERED_ON_FAILURE not in FAILURE_POLICIES:
        bad(
            "ORDERED_ON_FAILURE",
            "Use 'skip' (a key's next callback goes after its head ends in error) or 'halt' "
            "(the key waits until the head is resent).",
            "http_hooks.E031",
        )
    errors += _metrics_problems()
    errors += _event_type_problems(s.EVENT_TYPES)
    reload_command = getattr(settings, LEGACY["RELOAD"][0], None)
    if reload_command is not None and (
        not isinstance(reload_command, list | tuple)
        or not reload_command
        or not all(isinstance(part, str) for part in reload_command)
    ):
        errors.append(
            Error(
                "DJANGO_HTTP_HOOKS_RELOAD must be a command as a list of strings.",
                hint="For example ['touch', 'demo/wsgi.py'].",
                id="http_hooks.E013",
            )
        )
    if getattr(settings, "DJANGO_HTTP_HOOKS_RELOAD_CALLABLE", None):
        errors.append(
            Warning(
                "DJANGO_HTTP_HOOKS_RELOAD_CALLABLE is not used: infi.django_http_hooks "
                "called it to restart the server after a hook change, and http_hooks "
                "takes hook changes without a restart.",
                hint="Remove it. To act on hook changes, connect to the post_save and "
                "post_delete signals of http_hooks.models.Hook.",
                id="http_hooks.W024",
            )
        )
    return errors


def _header_value(value: Any) -> bool:
    """Text that goes out as a header's value as it is (``headers.parse_headers``' rules)."""
    if not isinstance(value, str) or not value.strip():
        return False
    try:
        parse_headers({"User-Agent": value})
    except InvalidHeadersError:
        return False
    return True


def _owner_problems() -> list[Error]:
    """``OWNER_MODEL`` must name an installed model, ``OWNER_RESOLVER`` a callable."""
    s = hooks_settings
    errors = []
    model = s.OWNER_MODEL
    if model is not None:
        problem = None
        if not isinstance(model, str):
            problem = 'Use None (the user model) or "app_label.Model".'
        else:
            try:
                apps.get_model(model)
            except (LookupError, ValueError) as exc:
                problem = (
                    f'Use None (the user model) or "app_label.Model" of an installed app: {exc}'
                )
        if problem:
            errors.append(
                Error("HTTP_HOOKS['OWNER_MODEL'] is invalid.", hint=problem, id="http_hooks.E027")
            )
    path = s.OWNER_RESOLVER
    problem = None
    if not isinstance(path, str):
        problem = "Use the dotted path of a callable(request) -> iterable of owners."
    else:
        try:
            if not callable(import_string(path)):
                problem = f"{path!r} is not callable."
        except ImportError as exc:
            problem = f"Cannot import {path!r}: {exc}."
    if problem:
        errors.append(
            Error("HTTP_HOOKS['OWNER_RESOLVER'] is invalid.", hint=problem, id="http_hooks.E028")
        )
    return errors


def _metrics_problems() -> list[Error]:
    """``METRICS`` and its companions; the registry is looked up only when the metrics
    are on and prometheus_client is installed."""
    s = hooks_settings
    problems = []
    for name in ("METRICS", "METRICS_BY_HOOK"):
        if not isinstance(getattr(s, name), bool):
            problems.append((name, "Use True or False."))
    cache = s.METRICS_CACHE_SECONDS
    if not isinstance(cache, int | float) or isinstance(cache, bool) or cache < 0:
        problems.append(("METRICS_CACHE_SECONDS", "Use seconds >= 0."))
    registry = s.METRICS_REGISTRY
    if registry is not None and not isinstance(registry, str):
        problems.append(("METRICS_REGISTRY", "Use None or the dotted path of a registry."))
    elif registry is not None and s.METRICS is True:
        problem = _registry_problem(registry)
        if problem:
            problems.append(("METRICS_REGISTRY", problem))
    return [
        Error(f"HTTP_HOOKS[{name!r}] is invalid.", hint=hint, id="http_hooks.E017")
        for name, hint in problems
    ]


def _registry_problem(path: str) -> str | None:
    """What is wrong with ``METRICS_REGISTRY``'s ``path``; nothing without prometheus_client."""
    try:
        from prometheus_client import CollectorRegistry
    except ImportError:
        return None
    try:
        found = import_string(path)
    except ImportError as exc:
        return f"Cannot import {path!r}: {exc}."
    if not isinstance(found, CollectorRegistry):
        return f"{path!r} is not a prometheus_client CollectorRegistry."
    return None


# Backends that come with Django 6 and the django-tasks backport and run no worker.
INLINE_BACKENDS = {
    f"{package}.backends.immediate.ImmediateBackend" for package in ("django.tasks", "django_tasks")
}
DUMMY_BACKENDS = {
    f"{package}.backends.dummy.DummyBackend" for package in ("django.tasks", "django_tasks")
}


def _celery_messages() -> list[CheckMessage]:
    """Celery's eager mode runs a task in the process that queued it: here in the
    publishing thread of the process that saved, with no worker, so no sweep."""
    from celery import current_app

    if not current_app.conf.task_always_eager:
        return []
    return [
        Warning(
            "HTTP_HOOKS['DISPATCH'] is 'celery' but Celery runs tasks eagerly "
            "(task_always_eager): each send runs in the process that saved, a send that "
            "outlasts 2 s pauses publishing, and with no worker nothing sweeps.",
            hint="Use HTTP_HOOKS['DISPATCH'] = 'command' where tasks run eagerly (tests, "
            "development), and send_callbacks to send.",
            id="http_hooks.W023",
        )
    ]


def _tasks_backend_messages() -> list[CheckMessage]:
    """What keeps the ``tasks`` mode from handing callbacks to workers: no tasks
    framework, or a ``default`` backend of ``TASKS`` that refuses the tasks (on
    ``TASKS_QUEUE``), or one that runs them in no worker."""
    setting = "HTTP_HOOKS['DISPATCH'] is 'tasks'"
    try:
        from . import tasks_framework

        if tasks_framework.task is None:
            return [
                Error(
                    f"{setting} but no tasks framework is installed.",
                    hint="Use Django 6 (django.tasks), or install the 'tasks' extra: "
                    "pip install http_hooks[tasks].",
                    id="http_hooks.E021",
                )
            ]
        on_queue = tasks_framework.send_listed_callbacks.using(
            queue_name=hooks_settings.TASKS_QUEUE
        )
        backend = on_queue.get_backend()
    except Exception as exc:
        return [
            Error(
                f"{setting} but the default backend of TASKS cannot take its tasks "
                f"on the queue {hooks_settings.TASKS_QUEUE!r}: {exc}",
                hint="Set HTTP_HOOKS['TASKS_QUEUE'] to a queue of the backend's QUEUES, "
                "or add it there.",
                id="http_hooks.E022",
            )
        ]
    paths = {f"{klass.__module__}.{klass.__qualname__}" for klass in type(backend).__mro__}
    hint = (
        "Fine in tests. To send in workers, use a backend that has them, such as "
        "django_tasks_db.DatabaseBackend with its db_worker command (the 'tasks' extra)."
    )
    if paths & INLINE_BACKENDS:
        return [
            Warning(
                f"{setting} but the default backend of TASKS runs tasks at once, in the "
                "process that saves: each hooked save waits, after its commit, for its "
                "deliveries.",
                hint=hint,
                id="http_hooks.W021",
            )
        ]
    if paths & DUMMY_BACKENDS:
        return [
            Warning(
                f"{setting} but the default backend of TASKS never runs tasks: callbacks go "
                "out only when send_callbacks sends them.",
                hint=hint,
                id="http_hooks.W022",
            )
        ]
    return []


def _hidden_field_problems(entries: Any) -> list[str]:
    """What is wrong with the project's ``HIDDEN_FIELDS``. Only a value the project
    sets is checked: the default names apps (sessions) a project may not install."""
    if not isinstance(entries, list | tuple):
        return ['Use a list of "app_label.Model.field" strings.']
    models = {}
    for model in apps.get_models():
        for klass in model.__mro__:
            meta = getattr(klass, "_meta", None)
            if isinstance(meta, Options):
                models.setdefault((meta.app_label.lower(), meta.object_name.lower()), klass)
    problems = []
    for entry in entries:
        parsed = parse_hidden_field(entry)
        if parsed is None:
            problems.append(f'{entry!r} is not "app_label.Model.field".')
            continue
        app_label, name, field = parsed
        model = models.get((app_label, name))
        if model is None:
            problems.append(f"{entry!r}: there is no model {app_label}.{name}.")
            continue
        try:
            model._meta.get_field(field)
        except FieldDoesNotExist:
            problems.append(f"{entry!r}: {model._meta.label} has no field {field!r}.")
    return problems


def _event_type_problems(declared: Any) -> list[Error]:
    """``EVENT_TYPES``: ``{name: description}`` or a list of names, each a valid type."""
    from .events import MAX_EVENT_TYPE_LENGTH, is_event_type

    if isinstance(declared, list | tuple):
        declared = {name if isinstance(name, str) else repr(name): "" for name in declared}
    if not isinstance(declared, dict):
        return [
            Error(
                "HTTP_HOOKS['EVENT_TYPES'] is invalid.",
                hint='Use {"order.paid": "An order was paid", ...} or a list of names.',
                id="http_hooks.E025",
            )
        ]
    return [
        Error(
            f"HTTP_HOOKS['EVENT_TYPES'] has an invalid entry {str(name)[:100]!r}.",
            hint=f"Names of at most {MAX_EVENT_TYPE_LENGTH} characters: lowercase segments of "
            "a-z, 0-9 and _ separated by '.' or '-', no wildcard; descriptions are text.",
            id="http_hooks.E026",
        )
        for name, description in declared.items()
        if not is_event_type(name) or not isinstance(description, str)
    ]


@register(Tags.database)
def check_hooks(app_configs=None, databases=None, **kwargs: Any) -> list[CheckMessage]:
    """Stored hooks on http_hooks' own models would loop; report each one. Report the
    hooks of infi.django_http_hooks not imported yet too."""
    if not databases:
        return []
    from django.db import connections

    from .legacy import HOOK_TABLE as LEGACY_HOOK_TABLE
    from .models import Hook, LegacyImport

    errors: list[CheckMessage] = []
    for alias in databases:
        tables = connections[alias].introspection.table_names()
        # migrate runs the checks before it creates the tables.
        if Hook._meta.db_table in tables:
            errors += _own_model_hooks(Hook.objects.using(alias))
            errors += _owned_hooks_without_owner_field(Hook.objects.using(alias))
        if LEGACY_HOOK_TABLE in tables and LegacyImport._meta.db_table in tables:
            errors += _legacy_hooks_not_imported(alias)
    return errors


def _legacy_hooks_not_imported(alias: str) -> list[CheckMessage]:
    """The old package's hooks table holds hooks not imported yet: the upgrade is not
    done, and those hooks are silent. A few cheap queries; silent when the tables are
    not the old package's."""
    from django.db import DatabaseError

    from .legacy import HOOK_TABLE as LEGACY_HOOK_TABLE
    from .legacy import legacy_tables_problem, unimported_legacy_hooks

    try:
        if legacy_tables_problem(alias) is not None:
            return []
        missing = unimported_legacy_hooks(alias)
    except DatabaseError as exc:
        return [
            Warning(
                f"The tables of infi.django_http_hooks in database {alias!r} cannot be read: "
                f"{first_line(exc)}"[:300],
                id="http_hooks.W025",
            )
        ]
    if not missing:
        return []
    option = "" if alias == "default" else f" --database {alias}"
    return [
        Warning(
            f"{len(missing)} hook(s) of infi.django_http_hooks in table {LEGACY_HOOK_TABLE} "
            f"of database {alias!r} (the first: {missing[0]}) are not imported: "
            "http_hooks does not send them.",
            hint=f"Run 'python manage.py import_legacy_hooks{option}', then drop the old tables.",
            id="http_hooks.W025",
        )
    ]


def _owned_hooks_without_owner_field(hooks) -> list[Error]:
    """Hooks with an owner on a model that has no ``OWNER_FIELDS`` entry never fire
    (the registry cannot tell whose an instance is): one error per model."""
    owned = (
        hooks.exclude(owner="")
        .exclude(model__app_label="http_hooks")
        .values_list("model__app_label", "model__model")
        .annotate(count=Count("pk"), first=Min("pk"))
        .order_by("model__app_label", "model__model")
    )
    known = {model._meta.label_lower for model in owner_paths()}
    return [
        Error(
            f"{count} hook(s) with an owner (the first: {first}) are on {app_label}.{name}, "
            "which has no entry in HTTP_HOOKS['OWNER_FIELDS']: they never fire.",
            hint="Add the model's path to its owner to OWNER_FIELDS, or delete the hooks.",
            id="http_hooks.E030",
        )
        for app_label, name, count, first in owned
        if f"{app_label}.{name}" not in known
    ]


def _own_model_hooks(hooks) -> list[Error]:
    errors = []
    for hook in hooks.filter(model__app_label="http_hooks").select_related("model"):
        errors.append(
            Error(
                f"Hook {hook.pk} is on {hook.model.app_label}.{hook.model.model}, one of "
                "http_hooks' own models: every callback would fire it again.",
                hint="Delete the hook or point it at another model.",
                obj=hook,
                id="http_hooks.E020",
            )
        )
    return errors
