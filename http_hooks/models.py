"""Signal, Hook, Callback, Attempt, and the hourly delivery counts of hooks."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# Characters of a hook's ordering key template, and of a rendered key (a longer
# one is stored as its hash: ``delivery.ordering.stored_key``).
MAX_ORDERING_KEY_LENGTH = 255


def uuid7() -> uuid.UUID:
    """A version 7 UUID (RFC 9562): 48 bits of Unix time in milliseconds, then 74
    random bits. Callback event ids are these, not random version 4 UUIDs: the
    unique index on them is in the busiest table, where a random id lands on a
    random page of the index (one the database must read and write back at each
    insert once the index outgrows memory) and a time-ordered one on its last pages.
    """
    milliseconds = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    return uuid.UUID(
        int=(milliseconds & (1 << 48) - 1) << 80
        | 0x7 << 76
        | (rand >> 62 & 0xFFF) << 64
        | 0b10 << 62
        | rand & (1 << 62) - 1
    )


# The event type of ``send_test_event``'s synthetic events, tried once only.
TEST_EVENT_TYPE = "http_hooks.test"


class HttpMethod(models.TextChoices):
    POST = "POST", "POST"
    PUT = "PUT", "PUT"
    PATCH = "PATCH", "PATCH"
    GET = "GET", "GET"
    DELETE = "DELETE", "DELETE"


class ContentTypeChoice(models.TextChoices):
    JSON = "application/json", "application/json"
    XML = "application/xml", "application/xml"
    TEXT_XML = "text/xml", "text/xml"
    TEXT = "text/plain", "text/plain"
    JAVASCRIPT = "application/javascript", "application/javascript"
    HTML = "text/html", "text/html"
    NONE = "", _("(none)")


class CallbackStatus(models.TextChoices):
    WAITING = "waiting", _("waiting")
    SENDING = "sending", _("sending")
    SENT = "sent", _("sent")
    ERROR = "error", _("error")


class DisabledReason(models.TextChoices):
    """Why the app disabled a hook by itself (empty: it did not)."""

    NONE = "", _("(not disabled by http_hooks)")
    GONE = "gone", _("the receiver answered 410 Gone")
    FAILING = "failing", _("deliveries kept failing")


class Signal(models.Model):
    signal = models.CharField(
        _("signal"),
        max_length=255,
        unique=True,
        help_text=_("Dotted import path of a django.dispatch.Signal instance."),
    )
    create_datetime = models.DateTimeField(_("created"), auto_now_add=True)
    update_datetime = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["signal"]
        verbose_name = _("signal")
        verbose_name_plural = _("signals")

    def __str__(self) -> str:
        return self.signal


# The fields ``Hook.clear_health`` sets.
CLEARED_HEALTH = (
    "enabled",
    "disabled_reason",
    "disabled_at",
    "paused_until",
    "consecutive_failures",
    "breaker_trips",
    "failing_since",
)


class Hook(models.Model):
    """ "When ``model`` fires one of ``signals``, or an event of one of ``event_types``
    is sent (``send_event``), send this request to ``target_url``."

    A hook has a model and signals, event types, or both (``validators.validate_hook``).

    ``headers`` may hold the receiver's credentials. A header is a credential
    when its name says so (``headers.is_secret_header``: Authorization, Cookie,
    ``*token*``, ``*key*``, ``*auth*``, ...) or when it is listed in
    ``secret_headers``; its value is write-only: the API, the admin and the
    attempt log show ``********``, and a write that leaves it out or sends the
    mask back keeps it. Like the signing secrets, the headers are read from the
    hook when a request goes out (callbacks keep no copy), so a rotated
    credential applies to every pending retry.
    """

    name = models.CharField(_("name"), max_length=200, blank=True, default="")
    model = models.ForeignKey(
        ContentType,
        verbose_name=_("model"),
        on_delete=models.CASCADE,
        related_name="+",
        null=True,
        blank=True,
    )
    signals = models.ManyToManyField(
        Signal, verbose_name=_("signals"), related_name="hooks", blank=True
    )
    event_types = models.JSONField(
        _("event types"),
        default=list,
        blank=True,
        help_text=_(
            "Names of the explicit events (send_event) the hook receives, e.g. "
            '["order.paid", "invoice.*"]; a trailing ".*" takes every name under it, '
            '"*" every event. Empty: none.'
        ),
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    target_url = models.URLField(_("target URL"), max_length=2000)
    http_method = models.CharField(
        _("HTTP method"), max_length=6, choices=HttpMethod.choices, default=HttpMethod.POST
    )
    headers = models.JSONField(_("headers"), default=dict, blank=True)
    secret_headers = models.JSONField(
        _("secret headers"),
        default=list,
        blank=True,
        help_text=_(
            "Names of further headers whose values are credentials (never shown once set), "
            "besides Authorization, Cookie and names containing token, key, secret, auth, "
            "sig, password, credential or session."
        ),
    )
    content_type = models.CharField(
        _("content type"),
        max_length=32,
        choices=ContentTypeChoice.choices,
        default=ContentTypeChoice.NONE,
        blank=True,
    )
    payload_template = models.TextField(_("payload template"), blank=True, default="")
    serializer_class = models.CharField(
        _("serializer class"), max_length=255, blank=True, default=""
    )
    changed_fields = models.JSONField(
        _("changed fields"),
        default=list,
        blank=True,
        help_text=_(
            "On an update (pre_save, post_save), fire only if one of these fields changed "
            "since the instance was loaded or last saved. Empty: every save fires."
        ),
    )
    conditions = models.JSONField(
        _("conditions"),
        default=dict,
        blank=True,
        help_text=_(
            'Django-style lookups the instance must match, e.g. {"paid": true, '
            '"total__gte": 100}. Empty: no condition.'
        ),
    )
    ordering_key = models.CharField(
        _("ordering key"),
        max_length=MAX_ORDERING_KEY_LENGTH,
        blank=True,
        default="",
        help_text=_(
            "A template such as {{instance.pk}}: the callbacks of this hook with the same "
            "key are delivered one at a time, in the order they were created. Empty: no order."
        ),
    )
    secret = models.CharField(_("signing secret"), max_length=255, blank=True, default="")
    previous_secret = models.CharField(max_length=255, blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    rate_limit = models.PositiveIntegerField(
        _("rate limit"),
        null=True,
        blank=True,
        help_text=_(
            "Requests per second at most, all senders together (a whole number); empty: no limit."
        ),
    )
    # The rate limit's token bucket (``delivery.rates``), written by the senders only.
    rate_full_at = models.FloatField(default=0.0, editable=False)
    rate_granted = models.PositiveIntegerField(default=0, editable=False)
    # Endpoint health (``delivery.health``), written by the sender, never by a form.
    paused_until = models.DateTimeField(
        _("paused until"),
        null=True,
        blank=True,
        editable=False,
        help_text=_(
            "Its callbacks are not sent before this time (a Retry-After or the circuit "
            "breaker); once it has passed, one probe request decides."
        ),
    )
    consecutive_failures = models.PositiveIntegerField(
        _("consecutive failures"), default=0, editable=False
    )
    breaker_trips = models.PositiveSmallIntegerField(
        _("breaker trips in a row"), default=0, editable=False
    )
    failing_since = models.DateTimeField(_("failing since"), null=True, blank=True, editable=False)
    last_success_at = models.DateTimeField(_("last success"), null=True, blank=True, editable=False)
    last_failure_at = models.DateTimeField(_("last failure"), null=True, blank=True, editable=False)
    last_failure_reason = models.TextField(
        _("last failure reason"), blank=True, default="", editable=False
    )
    disabled_reason = models.CharField(
        _("disabled by"),
        max_length=16,
        choices=DisabledReason.choices,
        default=DisabledReason.NONE,
        blank=True,
        editable=False,
    )
    disabled_at = models.DateTimeField(_("disabled at"), null=True, blank=True, editable=False)
    slow_since = models.DateTimeField(
        _("slow since"),
        null=True,
        blank=True,
        editable=False,
        help_text=_(
            "Since when its tries take at least the shorter timeout (a receiver that "
            "hangs); empty once a try is quick. A slow hook gets no share of the "
            "transfers kept for idle hooks, in any sender."
        ),
    )
    # The tenant: the primary key, as text, of an instance of OWNER_MODEL; empty for
    # a hook of the project itself. Text rather than a foreign key so that a
    # project picks any owner model (any primary key type) without a migration.
    owner = models.CharField(_("owner"), max_length=255, blank=True, default="")
    create_datetime = models.DateTimeField(_("created"), auto_now_add=True)
    update_datetime = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("hook")
        verbose_name_plural = _("hooks")
        indexes = [
            models.Index(fields=["model", "enabled"], name="hook_model_enabled_idx"),
            # What every claim asks: the hooks whose callbacks are held back.
            models.Index(
                fields=["paused_until"],
                condition=models.Q(paused_until__isnull=False) | ~models.Q(disabled_reason=""),
                name="hook_held_idx",
            ),
            models.Index(fields=["owner"], condition=~models.Q(owner=""), name="hook_owner_idx"),
            # The registry's refresh reads the hooks changed since the last one it saw.
            models.Index(fields=["update_datetime"], name="hook_updated_idx"),
        ]
        permissions = [("view_all_hooks", _("Can see and manage the hooks of every owner"))]

    def __str__(self) -> str:
        return self.name or f"Hook {self.pk} → {self.target_url}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """A hook disabled by http_hooks and saved enabled again, by any code, gets a
        clean bill of health (``clear_health``): its disabled reason would otherwise
        keep holding its callbacks back."""
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:  # any iterable: a generator is read once
            update_fields = kwargs["update_fields"] = list(update_fields)
        if (
            self.enabled
            and self.disabled_reason
            and (update_fields is None or "enabled" in update_fields)
        ):
            self.clear_health()
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, *CLEARED_HEALTH}
        super().save(*args, **kwargs)

    def clear_health(self) -> None:
        """Enabled, with no disabled reason, no pause, the circuit breaker closed and
        its failure count reset (``CLEARED_HEALTH``)."""
        self.enabled = True
        self.disabled_reason = DisabledReason.NONE
        self.disabled_at = None
        self.paused_until = None
        self.consecutive_failures = 0
        self.breaker_trips = 0
        self.failing_since = None

    def signing_secrets(self, now=None) -> list[str]:
        """The secrets that sign a request now: the current one and, during a
        rotation's grace period, the previous one."""
        secrets = [self.secret] if self.secret else []
        if (
            self.previous_secret
            and self.previous_secret_expires_at
            and self.previous_secret_expires_at > (now or timezone.now())
        ):
            secrets.append(self.previous_secret)
        return secrets


class Callback(models.Model):
    """One event of a hook: the payload to send, and its delivery state.

    The payload, method and content type are fixed when the event happens
    (``target_url`` records the hook's URL then). The URL, headers and signing
    secrets a try uses are read from the hook when it goes out, so a rotated
    credential or a moved endpoint reaches the pending retries (a new token
    never goes to the old URL), and no credential is copied into the busiest
    table.
    """

    # No database constraint, on purpose: for up to REGISTRY_TTL seconds after a
    # hook is deleted, another process may still record an event for it, and
    # that must never make the user's own transaction fail at commit. The
    # sender deletes such orphans; deleting a hook still cascades in Django.
    hook = models.ForeignKey(
        Hook,
        verbose_name=_("hook"),
        on_delete=models.CASCADE,
        related_name="callbacks",
        db_constraint=False,
        # callback_hook_status_idx starts with hook: a second index would only
        # cost every insert and update of the busiest table.
        db_index=False,
    )
    event_id = models.UUIDField(_("event id"), default=uuid7, unique=True, editable=False)
    event_type = models.CharField(_("event type"), max_length=255, blank=True, default="")
    object_type = models.CharField(_("object type"), max_length=200, blank=True, default="")
    object_id = models.CharField(_("object id"), max_length=255, blank=True, default="")
    target_url = models.URLField(_("target URL"), max_length=2000)
    http_method = models.CharField(_("HTTP method"), max_length=6, choices=HttpMethod.choices)
    payload = models.TextField(_("payload"), blank=True, default="")
    content_type = models.CharField(_("content type"), max_length=32, blank=True, default="")
    status = models.CharField(
        _("status"),
        max_length=8,
        choices=CallbackStatus.choices,
        default=CallbackStatus.WAITING,
    )
    status_details = models.TextField(_("status details"), blank=True, default="")
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    # The retry budget counts ``attempts`` (reset by a resend); attempt numbers
    # go on from the tries before the last resend, kept here.
    earlier_attempts = models.PositiveIntegerField(_("attempts before the last resend"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), default=timezone.now)
    last_response_status = models.PositiveSmallIntegerField(
        _("last response status"), null=True, blank=True
    )
    claimed_until = models.DateTimeField(_("claimed until"), null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    # The hook's owner when the callback was stored (``Hook.owner``): an owner's
    # list is one index range, not a join through the hooks, at any table size.
    owner = models.CharField(_("owner"), max_length=255, blank=True, default="")
    # The hook's ordering key rendered for this event (``delivery.ordering``); empty:
    # the callback goes in any order.
    ordering_key = models.CharField(
        _("ordering key"), max_length=MAX_ORDERING_KEY_LENGTH, blank=True, default=""
    )
    create_datetime = models.DateTimeField(_("created"), default=timezone.now, db_index=False)
    update_datetime = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("callback")
        verbose_name_plural = _("callbacks")
        # ``GET /api/metrics/`` (staff need none).
        permissions = [
            ("view_metrics", _("Can view delivery metrics")),
            ("send_event", _("Can send explicit events (POST /api/events/)")),
        ]
        indexes = [
            # ordering_key last: a claim of unordered callbacks reads it from the index
            # and steps over the keyed ones without reading their rows.
            models.Index(
                fields=["status", "next_attempt_at", "ordering_key"], name="callback_due_idx"
            ),
            models.Index(fields=["hook", "status", "-id"], name="callback_hook_status_idx"),
            models.Index(fields=["status", "-id"], name="callback_status_idx"),
            models.Index(fields=["status", "update_datetime"], name="callback_monitor_idx"),
            models.Index(fields=["create_datetime"], name="callback_retention_idx"),
            # The admin's search by object id and its event type filter.
            models.Index(fields=["object_id"], name="callback_object_idx"),
            models.Index(fields=["event_type", "-id"], name="callback_event_type_idx"),
            # Only the rows of owned hooks: a project without tenants pays nothing.
            models.Index(
                fields=["owner", "-id"], condition=~models.Q(owner=""), name="callback_owner_idx"
            ),
            # A tenant's list by status: a status an owner rarely has would otherwise
            # walk all of that owner's callbacks (877 ms at 10 million).
            models.Index(
                fields=["owner", "status", "-id"],
                condition=~models.Q(owner=""),
                name="callback_owner_status_idx",
            ),
            # The heads of the keys (``delivery.ordering``), read from the index alone:
            # only keyed callbacks that may hold their key back are in it, so that
            # unordered ones cost nothing and a key's sent history is never read.
            models.Index(
                fields=["hook", "ordering_key", "id", "status"],
                condition=~models.Q(ordering_key="")
                & models.Q(status__in=["waiting", "sending", "error"]),
                name="callback_ordering_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Callback {self.pk} ({self.status}) → {self.target_url}"


class Attempt(models.Model):
    """One HTTP try of a callback, like GitHub's "recent deliveries"."""

    callback = models.ForeignKey(
        Callback,
        verbose_name=_("callback"),
        on_delete=models.CASCADE,
        related_name="attempt_log",
        db_index=False,  # attempt_callback_idx starts with callback
    )
    number = models.PositiveIntegerField(_("number"))
    attempted_at = models.DateTimeField(_("attempted at"), default=timezone.now)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)
    request_headers = models.JSONField(_("request headers"), default=dict, blank=True)
    response_status = models.PositiveSmallIntegerField(_("response status"), null=True, blank=True)
    response_headers = models.JSONField(_("response headers"), default=dict, blank=True)
    response_body = models.TextField(_("response body"), blank=True, default="")
    error = models.TextField(_("error"), blank=True, default="")

    class Meta:
        ordering = ["callback_id", "id"]
        verbose_name = _("attempt")
        verbose_name_plural = _("attempts")
        indexes = [models.Index(fields=["callback", "number"], name="attempt_callback_idx")]

    def __str__(self) -> str:
        return f"Attempt {self.number} of callback {self.callback_id}"

    @property
    def succeeded(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300


# Upper bounds (exclusive, in milliseconds) of the attempt duration buckets of
# ``DeliveryStats``; the last bucket holds everything from the last bound on.
DURATION_BOUNDS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)
DURATION_FIELDS = [
    *(f"under_{bound}ms" for bound in DURATION_BOUNDS_MS),
    f"from_{DURATION_BOUNDS_MS[-1]}ms",
]


class DeliveryStats(models.Model):
    """The tries of one hook in one hour: how many succeeded, how many failed, and
    how long they took, counted as they happen (``delivery.stats``), so that the
    health endpoint and the admin's overview never read the callbacks or attempts.

    The durations are a histogram: one integer column per bucket, on a 1-2-5 log
    scale from 1 ms to 50 s (``DURATION_BOUNDS_MS``). Integer columns, because the
    sender adds a window's counts to a row in one ``INSERT ... ON CONFLICT DO
    UPDATE SET n = n + excluded.n`` that PostgreSQL and SQLite both run (a JSON
    array cannot be added to in place on both). Percentiles are read from it to
    within a bucket, interpolated linearly inside it, as Prometheus does: at most
    2.5 times apart, which tells a receiver answering in 30 ms from one answering
    in 3 s, and costs 16 columns of a row per hook and hour.
    """

    # No database constraint, as for callbacks: the sender may count a try of a hook
    # deleted meanwhile, and that must not fail its write; deleting a hook in Django
    # still cascades, and retention deletes any row left over.
    hook = models.ForeignKey(
        Hook,
        verbose_name=_("hook"),
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,  # delivery_stats_hook_hour starts with hook
    )
    # A number, not a timestamp: the overview of 30 days reads 720 of them per hook,
    # and turning that many timestamps into datetimes cost more than the rest of it.
    hour = models.IntegerField(_("hour"), help_text=_("Hours since 1970-01-01 00:00 UTC."))
    sent = models.PositiveIntegerField(_("succeeded tries"), default=0)
    failed = models.PositiveIntegerField(_("failed tries"), default=0)

    class Meta:
        verbose_name = _("delivery stats")
        verbose_name_plural = _("delivery stats")
        constraints = [
            models.UniqueConstraint(fields=["hook", "hour"], name="delivery_stats_hook_hour"),
        ]
        # The overview's window over all hooks, and retention.
        indexes = [models.Index(fields=["hour"], name="delivery_stats_hour_idx")]

    def __str__(self) -> str:
        return f"Hook {self.hook_id}, hour {self.hour}"


# One column per duration bucket, from one list: the bounds and the columns cannot
# drift apart.
for _name in DURATION_FIELDS:
    DeliveryStats.add_to_class(_name, models.PositiveIntegerField(default=0))
del _name


class LegacyImport(models.Model):
    """An infi.django_http_hooks hook imported (``manage.py import_legacy_hooks``): which
    old row became which hook. A run skips what is recorded here, and two runs at once
    cannot both import a row (the unique constraint), so no hook and no waiting callback
    is imported twice, however the imported hook is changed later."""

    # The database alias the old tables were read from, and the old hook's id there.
    source = models.CharField(_("source database"), max_length=100)
    legacy_id = models.BigIntegerField(_("old hook id"))
    # Null once the imported hook is deleted: the old row stays imported.
    hook = models.ForeignKey(
        Hook, verbose_name=_("hook"), on_delete=models.SET_NULL, null=True, related_name="+"
    )
    create_datetime = models.DateTimeField(_("imported"), default=timezone.now)

    class Meta:
        verbose_name = _("imported old hook")
        verbose_name_plural = _("imported old hooks")
        constraints = [
            models.UniqueConstraint(fields=["source", "legacy_id"], name="legacy_import_once"),
        ]

    def __str__(self) -> str:
        return f"old hook {self.legacy_id} ({self.source}) → {self.hook_id}"
