"""Every setting of the app, read through one object with defaults.

Like DRF's ``api_settings``: ``hooks_settings.TIMEOUT`` looks the name up in
``settings.HTTP_HOOKS`` and falls back to ``DEFAULTS``. The three legacy
``DJANGO_HTTP_HOOKS_*`` names of the old package are top-level settings and are
read here too, so that the rest of the code has one place to ask. The cache is
dropped when tests override settings (Django's ``setting_changed``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # (connect, read) timeouts of one delivery, in seconds.
    "TIMEOUT": (5.0, 15.0),
    # Tries per callback in all; 1 is the old package's "one try, then error".
    "MAX_ATTEMPTS": 8,
    # Seconds to wait after try N before try N+1; the last one repeats.
    "RETRY_SCHEDULE": [5, 300, 1800, 7200, 18000, 36000, 36000],
    # Each wait is stretched or shrunk at random by up to this fraction.
    "RETRY_JITTER": 0.1,
    "CONCURRENCY": 16,
    # Transfers one hook may hold at once; None: three quarters of CONCURRENCY.
    "HOOK_CONCURRENCY": None,
    "BATCH_SIZE": 500,
    # A bulk resend of more callbacks than this must be confirmed.
    "RESEND_LIMIT": 10_000,
    # The admin's callback list counts this many rows at most; beyond, an estimate.
    "ADMIN_COUNT_LIMIT": 10_000,
    # Above this many callbacks, the admin neither searches text nor counts facets.
    "ADMIN_SCAN_LIMIT": 50_000,
    # How long a sender's claim on a callback lasts before others may take it.
    "LEASE_SECONDS": 300,
    # Bytes of a response body read and logged; the rest is not read (the status counts).
    "RESPONSE_BODY_LIMIT": 16 * 1024,
    # Characters a hook's template may render for one event: each placeholder repeats
    # the event's data, and a template of thousands of them made a 140 MB row of a
    # 20 KB event. Past it the event's callback is stored in error, without the payload.
    "TEMPLATE_PAYLOAD_LIMIT": 4 * 1024 * 1024,
    "BLOCK_PRIVATE_NETWORKS": True,
    # A CA bundle (file path) that verifies receivers' TLS certificates; None: certifi's.
    "CA_BUNDLE": None,
    # Seconds after which a process notices hook changes made elsewhere.
    "REGISTRY_TTL": 2.0,
    # "command" (send_callbacks / --loop), "celery" or "tasks" (Django's tasks framework).
    "DISPATCH": "command",
    # Seconds during which the previous secret still signs after a rotation.
    "SECRET_ROTATION_GRACE": 24 * 3600,
    "USER_AGENT": "http_hooks",
    # Poll interval bounds of ``send_callbacks --loop``, in seconds.
    "LOOP_MIN_SLEEP": 0.1,
    "LOOP_MAX_SLEEP": 0.5,
    # ... and the longest between the idle polls of a worker that listens (PostgreSQL):
    # a NOTIFY wakes it for new callbacks, the polls find retries that fell due.
    "LOOP_LISTEN_MAX_SLEEP": 5.0,
    # PostgreSQL channel on which a commit that stores callbacks wakes the idle
    # ``--loop`` workers (LISTEN/NOTIFY); None: they only poll.
    "NOTIFY_CHANNEL": "http_hooks",
    # A process sends that NOTIFY at most once per this many seconds; the workers
    # it wakes poll again within this time, for the commits that sent none.
    "NOTIFY_INTERVAL": 0.05,
    # Endpoint health (``delivery.health``). The longest Retry-After honoured, in seconds.
    "RETRY_AFTER_MAX": 86_400,
    # A 410 Gone disables the hook (the callback ends in error either way).
    "DISABLE_ON_GONE": True,
    # Failed tries in a row that pause a hook (None: no circuit breaker) ...
    "BREAKER_FAILURES": 5,
    # ... for this many seconds, doubled at each failed probe up to an hour.
    "BREAKER_COOLDOWN": 30,
    # A hook failing with no success for this many seconds and at least this many
    # tries is disabled; None drops that condition (both None: never).
    "AUTO_DISABLE_AFTER": 5 * 24 * 3600,
    "AUTO_DISABLE_FAILURES": 20,
    # Ordered delivery (``Hook.ordering_key``): when a key's head ends in error, "skip"
    # lets the next one go, "halt" holds the key until the head is resent.
    "ORDERED_ON_FAILURE": "skip",
    "PERMISSION_CLASSES": ["http_hooks.api.permissions.IsStaffOrModelPermission"],
    # Tenants (``owners``): the model of a hook's owner, "app_label.Model"; None: the user model.
    "OWNER_MODEL": None,
    # Dotted path of a callable(request) -> iterable of owners (instances or primary keys)
    # the request's user acts for; the default: the user themself.
    "OWNER_RESOLVER": "http_hooks.owners.request_user",
    # {"app_label.Model": "path"}: the owner of an instance, a path of forward foreign
    # keys ending at OWNER_MODEL ("customer__account"). A hook with an owner fires only
    # for its owner's instances, and only on the models listed here.
    "OWNER_FIELDS": {},
    # Prometheus metrics (``http_hooks.metrics``), when prometheus_client is installed.
    "METRICS": True,
    # Dotted path of the CollectorRegistry the metrics are registered in too (the
    # default one is django-prometheus's); None: only ``GET /api/metrics/`` shows them.
    "METRICS_REGISTRY": "prometheus_client.REGISTRY",
    # Seconds a scrape's database figures (callbacks by status, hooks' health) are reused.
    "METRICS_CACHE_SECONDS": 10,
    # Callbacks of a status counted exactly up to this many; beyond, PostgreSQL's estimate.
    "METRICS_COUNT_LIMIT": 10_000,
    # The tries' counter and histogram by hook (a series per hook and outcome, and per
    # hook and bucket); False: all hooks together, for projects with many hooks.
    "METRICS_BY_HOOK": True,
    # The catalog of explicit event types (``GET /api/event-types/``), like Svix's:
    # {"order.paid": "An order was paid", ...} or a list of names.
    "EVENT_TYPES": {},
    "CELERY_QUEUE": None,
    # Seconds between the sweeps of a Celery or tasks worker (``sweep``): a callback
    # due for longer than this, or whose lease ran out, is sent by the sweep; after
    # a failed publish to the broker, publishing pauses this long. None: no sweep.
    "SWEEP_SECONDS": 10,
    # The queue of the tasks of the "tasks" mode, on the default backend of TASKS.
    "TASKS_QUEUE": "default",
    # "app_label.Model.field" whose values no payload ever shows (a model also
    # matches its subclasses: the first entry is every user model's password).
    "HIDDEN_FIELDS": [
        "auth.AbstractBaseUser.password",
        "sessions.Session.session_key",
        "sessions.Session.session_data",
    ],
}

LEGACY = {
    "RELOAD": ("DJANGO_HTTP_HOOKS_RELOAD", None),
    "RAISE_EXCEPTIONS": ("DJANGO_HTTP_HOOKS_RAISE_EXCEPTIONS", False),
    "SHUT_DOWN": ("DJANGO_HTTP_HOOKS_SHUT_DOWN", False),
}


class HooksSettings:
    """Attribute access to ``HTTP_HOOKS`` with defaults, cached until settings change."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, "HTTP_HOOKS", None)
        return value if isinstance(value, dict) else {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._cache:
            return self._cache[name]
        if name in LEGACY:
            setting_name, default = LEGACY[name]
            value = getattr(settings, setting_name, default)
        elif name in DEFAULTS:
            value = self.user_settings.get(name, DEFAULTS[name])
        else:
            raise AttributeError(f"Invalid http_hooks setting: {name!r}")
        self._cache[name] = value
        return value

    @property
    def hook_concurrency(self) -> int:
        """``HOOK_CONCURRENCY``, or three quarters of ``CONCURRENCY`` (at least 1)."""
        if self.HOOK_CONCURRENCY is not None:
            return int(self.HOOK_CONCURRENCY)
        return max(1, int(self.CONCURRENCY) * 3 // 4)

    @property
    def connect_timeout(self) -> float:
        return self._timeouts()[0]

    @property
    def read_timeout(self) -> float:
        return self._timeouts()[1]

    def _timeouts(self) -> tuple[float, float]:
        timeout = self.TIMEOUT
        if isinstance(timeout, int | float):
            return float(timeout), float(timeout)
        connect, read = timeout
        return float(connect), float(read)

    def derived(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, kept like a setting until the settings change: for values
        worked out from settings that hot paths ask for (``payloads.hidden_names``)."""
        key = f"derived:{name}"
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def reload(self) -> None:
        self._cache.clear()


hooks_settings = HooksSettings()


def _reload_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "HTTP_HOOKS" or setting.startswith("DJANGO_HTTP_HOOKS_"):
        hooks_settings.reload()


setting_changed.connect(_reload_on_change)
