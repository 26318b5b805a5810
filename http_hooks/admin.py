"""The Django admin: hooks with validation, signals, callbacks with their attempts."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.exceptions import DisallowedModelAdminToField
from django.contrib.admin.options import IS_POPUP_VAR, TO_FIELD_VAR, IncorrectLookupParameters
from django.contrib.admin.templatetags.admin_list import _boolean_icon
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import BadRequest, PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import dateformat, timezone
from django.utils.cache import add_never_cache_headers
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import services
from .charts import hourly_bars
from .delivery.stats import MAX_WINDOW_HOURS, WINDOWS
from .exceptions import HookChangedHandsError, InvalidHeadersError, TooManyCallbacksError
from .forms import HookAdminForm, RecoverForm, SignalAdminForm
from .headers import format_headers, mask_headers, parse_headers
from .models import Attempt, Callback, CallbackStatus, Hook, Signal
from .selectors import (
    RowCount,
    callbacks_named_by,
    count_rows,
    estimated_rows,
    event_types,
    explicit_event_types,
    hooked_models,
    hooks_health,
    recovery_start,
)
from .settings import hooks_settings
from .text import ascii_digits, text_items
from .validators import is_row_id


def _time(value: datetime.datetime | None) -> str:
    """Date over time, to the second, in the current time zone: narrow, and exact
    enough to tell the tries of a callback apart."""
    if value is None:
        return "-"
    local = timezone.localtime(value)
    return format_html(
        '<span class="nowrap">{}<br>{}</span>',
        dateformat.format(local, "Y-m-d"),
        dateformat.format(local, "H:i:s"),
    )


def _short(text: str, length: int) -> str:
    """At most ``length`` characters, broken anywhere when they hold no space (a long
    word would widen its column past the window); the whole text in the tooltip."""
    return format_html(
        '<span title="{}" style="overflow-wrap: anywhere">{}</span>',
        text,
        Truncator(text).chars(length),
    )


def _short_signal(path: str) -> str:
    """``post_save`` for ``django.db.models.signals.post_save``."""
    return _short(path.rsplit(".", 1)[-1], 30)


# What Django's answer to an add in a popup reads of its POST (``_source_model``:
# Django 6.1's ``SOURCE_MODEL_VAR``, the model of the form that opened it).
SOURCE_MODEL_VAR = "_source_model"
POPUP_PARAMETERS = (IS_POPUP_VAR, TO_FIELD_VAR, SOURCE_MODEL_VAR)


def check_source_model(query: QueryDict) -> None:
    """A popup's ``_source_model`` is refused unless it is ``app_label.model_name``:
    Django 6.1 unpacks it split at its first dot, and text with none was a 500 (the
    popup's closing page takes it from a link anyone can craft)."""
    name = query.get(SOURCE_MODEL_VAR)
    if name and "." not in name:
        raise BadRequest(f"{SOURCE_MODEL_VAR} must be app_label.model_name, not {name[:50]!r}.")


class ModelAdmin(admin.ModelAdmin):
    """The admin of http_hooks' models: a list whose parameters hold a NUL
    character is a bad lookup (Django's own "?e=1" page), not a 500 from
    PostgreSQL, which cannot compare text with one."""

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        if any("\x00" in "".join([key, *values]) for key, values in request.GET.lists()):
            raise IncorrectLookupParameters("a NUL character in the list's parameters")
        return super().get_changelist_instance(request)

    def response_action(
        self, request: HttpRequest, queryset: QuerySet, **kwargs: Any
    ) -> HttpResponse | None:
        """A selection that holds anything but ids of rows is refused, with a message:
        Django filtered the rows by it, a 500 ("abc", an empty value, a number past
        64 bits). ``kwargs``: what Django 6.1 adds (``action_location``)."""
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if not all(is_row_id(value) for value in selected):
            self.message_user(
                request,
                _("No action was taken: the selection holds something that is no row's id."),
                messages.ERROR,
            )
            return None
        return super().response_action(request, queryset, **kwargs)


class HookModelFilter(admin.SimpleListFilter):
    """The models that have hooks, read from the hooks: Django's filter on
    ``hook__model`` offered every model of the project."""

    title = _("model")
    parameter_name = "hook__model"

    def lookups(self, request, model_admin):
        return [(ct.pk, f"{ct.app_label}.{ct.model}") for ct in hooked_models()]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        if not is_row_id(str(self.value())):  # an int when the facets count each choice
            raise IncorrectLookupParameters(f"{self.parameter_name} takes a model's id")
        return queryset.filter(hook__model_id=self.value())


class OwnerFilter(admin.SimpleListFilter):
    """The owners that have hooks, read from the hooks (``hook_owner_idx``), at most
    ``OWNER_CHOICES`` of them listed; ``?owner=<key>`` finds any other."""

    title = _("owner")
    parameter_name = "owner"
    PROJECT = "-"
    OWNER_CHOICES = 100

    def lookups(self, request, model_admin):
        owners = Hook.objects.exclude(owner="").order_by("owner").values_list("owner", flat=True)
        return [
            (self.PROJECT, _("the project's (none)")),
            *((owner, owner) for owner in owners.distinct()[: self.OWNER_CHOICES]),
        ]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(owner="" if self.value() == self.PROJECT else self.value())


class EventTypeFilter(admin.SimpleListFilter):
    """The event types the signals can produce: Django's filter on a plain field
    reads every distinct value of the callbacks table."""

    title = _("event type")
    parameter_name = "event_type"

    def lookups(self, request, model_admin):
        signals = [(event, event.rsplit(".", 1)[-1]) for event in event_types()]
        return signals + [(event, event) for event in explicit_event_types()]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(event_type=self.value())


@admin.register(Signal)
class SignalAdmin(ModelAdmin):
    form = SignalAdminForm
    list_display = ["signal", "hook_count", "created"]
    search_fields = ["signal"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Signal]:
        return super().get_queryset(request).annotate(_hook_count=Count("hooks"))

    def has_delete_permission(self, request: HttpRequest, obj: Signal | None = None) -> bool:
        """A signal in use is not deleted: the hooks listening to it would go deaf."""
        if obj is not None and obj.hooks.exists():
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description=_("hooks"), ordering="_hook_count")
    def hook_count(self, obj: Signal) -> int:
        return obj._hook_count

    @admin.display(description=_("created"), ordering="create_datetime")
    def created(self, obj: Signal) -> str:
        return _time(obj.create_datetime)


HEALTH_FIELDS = [
    "paused_until",
    "consecutive_failures",
    "last_success_at",
    "last_failure_at",
    "last_failure_reason",
    "slow_since",
    "disabled_reason",
    "disabled_at",
]


class DisabledByListFilter(admin.ChoicesFieldListFilter):
    """The hooks http_hooks disabled by itself, by reason."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.title = _("disabled by…")


@admin.register(Hook)
class HookAdmin(ModelAdmin):
    form = HookAdminForm
    list_display = [
        "hook_name",
        "model_label",
        "signal_list",
        "request",
        "enabled_health",
        "updated",
    ]
    list_filter = [
        "enabled",
        ("disabled_reason", DisabledByListFilter),
        ("rate_limit", admin.EmptyFieldListFilter),
        ("ordering_key", admin.EmptyFieldListFilter),
        "http_method",
        ("model", admin.RelatedOnlyFieldListFilter),
        OwnerFilter,
    ]
    search_fields = ["name", "target_url"]
    filter_horizontal = ["signals"]
    readonly_fields = [
        "signing",
        "shown_headers",
        *HEALTH_FIELDS,
        "create_datetime",
        "update_datetime",
    ]
    actions = [
        "enable_hooks",
        "disable_hooks",
        "rotate_secrets",
        "send_test_events",
        "recover_failed_callbacks",
    ]
    fieldsets = [
        (
            _("When it fires"),
            {"fields": ["name", "model", "signals", "event_types", "enabled", "owner"]},
        ),
        (_("Conditions"), {"fields": ["changed_fields", "conditions"]}),
        (
            _("Request"),
            {
                "fields": [
                    "target_url",
                    "http_method",
                    "headers",
                    "secret_headers",
                    "content_type",
                    "rate_limit",
                    "ordering_key",
                ]
            },
        ),
        (
            _("Payload"),
            {
                "fields": ["payload_template", "serializer_class"],
                "description": _(
                    "A template wins over a serializer; with neither, the default payload "
                    "(object type, id, event type and every field) is sent."
                ),
            },
        ),
        (_("Signing"), {"fields": ["signing", "create_datetime", "update_datetime"]}),
        (_("Health"), {"fields": HEALTH_FIELDS}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Hook]:
        return super().get_queryset(request).select_related("model").prefetch_related("signals")

    def get_fieldsets(self, request: HttpRequest, obj: Hook | None = None):
        """A new hook: whether to sign it, in place of its signing state. For a user who
        may only view, the headers as ``shown_headers``: Django would show a read-only
        model field's raw value, credentials included."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            swap = {
                "signing": ["sign"],
                "create_datetime": [],
                "update_datetime": [],
                **{name: [] for name in HEALTH_FIELDS},
            }
        elif not self.has_change_permission(request, obj):
            swap = {"headers": ["shown_headers"]}
        else:
            return fieldsets
        return [
            (
                title,
                {
                    **options,
                    "fields": [new for name in options["fields"] for new in swap.get(name, [name])],
                },
            )
            for title, options in fieldsets
        ]

    def save_model(self, request: HttpRequest, obj: Hook, form, change: bool) -> None:
        """A new hook gets its secret from the service layer, as from every entry point;
        ``response_add`` shows it."""
        if not change:
            obj.secret = services.new_hook_secret(None if form.cleaned_data.get("sign") else "")
            super().save_model(request, obj, form, change)
        else:
            # Only what the user changed: the row may have moved on since the page was
            # shown (the sender pausing or disabling the hook), and a stale copy of the
            # rest must not be written back.
            columns = {field.name for field in obj._meta.concrete_fields}
            changed = [name for name in form.changed_data if name in columns]
            if "owner" in changed:
                # Handed over: none of the previous owner's credentials (the form's
                # clean dropped the secret header values not given anew), nor what their
                # tries left.
                services.hand_over_secret(obj)
                services.forget_previous_owners_tries(obj)
                changed += [
                    "headers",
                    *services.HANDED_OVER_FIELDS,
                    *services.PREVIOUS_TRIES_FIELDS,
                ]
            obj.save(update_fields=[*dict.fromkeys(changed), "update_datetime"])
            if "owner" in changed:
                services.part_with_previous_owners(obj)
        if change and obj.enabled and "enabled" in form.changed_data:
            services.enable_hook(obj)

    def response_add(
        self, request: HttpRequest, obj: Hook, post_url_continue: str | None = None
    ) -> HttpResponse:
        """A signed new hook: its secret on a page of its own, in place of the redirect
        Django answers with (its "Continue" leads there), as the rotate action does.
        Added in a popup (the "+" by a hook's field in another form), in place of the
        page that closes the popup at once: its "Continue" leads to that page
        (``popup_added_view``)."""
        if IS_POPUP_VAR in request.POST:
            check_source_model(request.POST)
        if obj.secret and IS_POPUP_VAR in request.POST:
            popup = {name: request.POST[name] for name in POPUP_PARAMETERS if name in request.POST}
            url = reverse("admin:http_hooks_hook_popup_added", args=[obj.pk])
            return self._secrets_page(request, [(obj, obj.secret)], f"{url}?{urlencode(popup)}")
        response = super().response_add(request, obj, post_url_continue)
        if not obj.secret or not isinstance(response, HttpResponseRedirect):
            return response
        return self._secrets_page(request, [(obj, obj.secret)], response["Location"])

    def popup_added_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Django's answer to an add in a popup, which closes it and puts the new hook in
        the field that opened it, once its secret was shown. Django reads the popup's
        parameters from the add's POST: they are this page's query. The field it answers
        with is one Django would answer with (``to_field_allowed``: the secret is no
        field another model points to). Without ``_popup`` the page is refused: Django
        would answer a plain add, a message that the hook was added and a redirect, to
        whoever followed a crafted link to it."""
        if IS_POPUP_VAR not in request.GET:
            raise BadRequest("This page closes the popup a hook was added in (_popup) only.")
        check_source_model(request.GET)
        obj = self.get_object(request, object_id) if is_row_id(object_id) else None
        if obj is None:
            raise Http404(f"No hook with the id {object_id[:30]!r}.")
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        to_field = request.GET.get(TO_FIELD_VAR)
        if to_field and not self.to_field_allowed(request, to_field):
            raise DisallowedModelAdminToField(f"The field {to_field[:50]!r} cannot be referenced.")
        request.POST = request.GET.copy()
        return super().response_add(request, obj)

    def get_urls(self):
        popup_added = self.admin_site.admin_view(self.popup_added_view)
        return [
            path("<path:object_id>/popup-added/", popup_added, name="http_hooks_hook_popup_added"),
            *super().get_urls(),
        ]

    def _secrets_page(
        self, request: HttpRequest, secrets: list[tuple[Hook, str]], continue_url: str
    ) -> HttpResponse:
        """The secrets in this response's body only, never cached: in a message they
        would go back to the browser in Django's ``messages`` cookie (signed, not
        encrypted) or into the session table, and stay there until the next page."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": ngettext(
                "Signing secret (shown once)", "Signing secrets (shown once)", len(secrets)
            ),
            "secrets": secrets,
            "continue_url": continue_url,
            "is_popup": IS_POPUP_VAR in request.POST,
        }
        response = TemplateResponse(request, "admin/http_hooks/hook/secrets.html", context)
        add_never_cache_headers(response)
        return response

    @admin.display(description=_("headers"))
    def shown_headers(self, obj: Hook) -> str:
        try:
            headers = parse_headers(obj.headers, stored=True)
        except InvalidHeadersError as exc:
            return exc.message
        return format_headers(mask_headers(headers, obj.secret_headers))

    @admin.display(description=_("enabled"), ordering="enabled")
    def enabled_health(self, obj: Hook) -> str:
        """Enabled, and under it one word on the hook's health when it is not well (the
        details in the tooltip): a column of its own would not fit a 1,400-pixel window."""
        icon = _boolean_icon(obj.enabled)
        if obj.disabled_reason:
            word, details = obj.disabled_reason, obj.get_disabled_reason_display()
        elif obj.paused_until is not None:
            word = _("paused")
            details = _("until %(time)s") % {"time": timezone.localtime(obj.paused_until)}
        elif obj.consecutive_failures:
            word = _("failing")
            details = _("%(count)s failed tries in a row") % {"count": obj.consecutive_failures}
        else:
            return icon
        return format_html('{}<br><small title="{}">{}</small>', icon, details, word)

    @admin.display(description=_("hook"), ordering="name")
    def hook_name(self, obj: Hook) -> str:
        return _short(str(obj), 30)

    @admin.display(description=_("model"), ordering="model__model")
    def model_label(self, obj: Hook) -> str:
        return f"{obj.model.app_label}.{obj.model.model}" if obj.model else "—"

    @admin.display(description=_("signals, events"))
    def signal_list(self, obj: Hook) -> str:
        signals = [s.signal.rsplit(".", 1)[-1] for s in obj.signals.all()]
        return ", ".join([*signals, *text_items(obj.event_types)])

    @admin.display(description=_("request"), ordering="target_url")
    def request(self, obj: Hook) -> str:
        """The method and the target URL in one column, the URL cut short, and the rate
        limit under them when there is one."""
        request = format_html("{} {}", obj.http_method, _short(obj.target_url, 30))
        if obj.rate_limit is None:
            return request
        limit = _("at most %(limit)s/s") % {"limit": obj.rate_limit}
        return format_html("{}<br><small>{}</small>", request, limit)

    @admin.display(description=_("updated"), ordering="update_datetime")
    def updated(self, obj: Hook) -> str:
        return _time(obj.update_datetime)

    @admin.display(description=_("signing secret"))
    def signing(self, obj: Hook) -> str:
        if not obj.secret:
            return _("Not signed. Use the 'Rotate signing secret' action to create a secret.")
        return _("Signed (secret ends in …%(tail)s).") % {"tail": obj.secret[-4:]}

    @admin.action(
        description=_("Enable selected hooks (ends a pause or a disable by http_hooks)"),
        permissions=["change"],
    )
    def enable_hooks(self, request: HttpRequest, queryset: QuerySet[Hook]) -> None:
        for hook in queryset:
            self._unless_changed_hands(request, hook, services.set_hook_enabled, hook, True)
        self.message_user(request, _("Hooks enabled."))

    @admin.action(description=_("Disable selected hooks"), permissions=["change"])
    def disable_hooks(self, request: HttpRequest, queryset: QuerySet[Hook]) -> None:
        for hook in queryset:
            self._unless_changed_hands(request, hook, services.set_hook_enabled, hook, False)
        self.message_user(request, _("Hooks disabled."))

    def _unless_changed_hands(
        self, request: HttpRequest, hook: Hook, work: Callable[..., Any], *args: Any
    ) -> tuple[bool, Any]:
        """``(True, work(*args))``; ``(False, None)``, said to the user, when ``hook`` was
        deleted or changed hands since the action read it (``HookChangedHandsError``):
        a bulk action goes on with the other hooks rather than fail as a 500 page."""
        try:
            return True, work(*args)
        except HookChangedHandsError:
            self.message_user(
                request,
                _("%(hook)s changed hands or was deleted meanwhile: not done.") % {"hook": hook},
                messages.ERROR,
            )
            return False, None

    @admin.action(description=_("Rotate signing secret (shown once)"), permissions=["change"])
    def rotate_secrets(self, request: HttpRequest, queryset: QuerySet[Hook]) -> HttpResponse | None:
        """The new secrets on a page of their own; its "Continue" leads back to the page
        the action was run from, where Django redirects after an action."""
        secrets = []
        for hook in queryset:
            try:
                secrets.append((hook, services.rotate_secret(hook)))
            except HookChangedHandsError:
                self.message_user(
                    request,
                    _("%(hook)s changed hands or was deleted meanwhile: not rotated.")
                    % {"hook": hook},
                    messages.ERROR,
                )
        if not secrets:
            return None
        return self._secrets_page(request, secrets, request.get_full_path())

    @admin.action(description=_("Send a test event now"), permissions=["change"])
    def send_test_events(self, request: HttpRequest, queryset: QuerySet[Hook]) -> None:
        for hook in queryset:
            done, attempt = self._unless_changed_hands(
                request, hook, services.send_test_event, hook
            )
            if not done:
                continue
            level = messages.SUCCESS if attempt.succeeded else messages.ERROR
            outcome = attempt.response_status or attempt.error
            self.message_user(request, f"{hook}: {outcome}", level)

    @admin.action(description=_("Recover failed callbacks…"), permissions=["change"])
    def recover_failed_callbacks(
        self, request: HttpRequest, queryset: QuerySet[Hook]
    ) -> HttpResponse | None:
        """Asks since when (by default since the oldest callback its outage cost was
        created: ``recovery_start``), then queues again the hook's ``error`` callbacks
        created since then."""
        if queryset.count() != 1:
            self.message_user(request, _("Select one hook to recover."), messages.WARNING)
            return None
        hook = queryset.get()
        form = RecoverForm(
            request.POST if "recover" in request.POST else None,
            initial={"since": recovery_start(hook)},
        )
        if form.is_valid():
            try:
                count = services.recover_hook(hook, **form.cleaned_data)
            except TooManyCallbacksError as exc:
                form.add_error("confirm", exc.as_django_error())
            else:
                self.message_user(
                    request,
                    _("%(count)d failed callbacks of %(hook)s queued again.")
                    % {"count": count, "hook": hook},
                )
                return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Recover failed callbacks of %(hook)s") % {"hook": hook},
            "hook": hook,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/http_hooks/hook/recover.html", context)


def _callbacks_beyond_scan() -> int | None:
    """PostgreSQL's estimate of the callbacks when it is above ``ADMIN_SCAN_LIMIT``:
    then the admin does nothing that reads the whole table. None otherwise."""
    estimate = estimated_rows(Callback.objects.all())
    if estimate is not None and estimate > int(hooks_settings.ADMIN_SCAN_LIMIT):
        return estimate
    return None


class CallbackPaginator(Paginator):
    """Counts at most ``count_limit`` rows (Django's counts them all for the page
    links). Beyond, the count is PostgreSQL's estimate, and the pages stop at that many
    rows: a page further down would read every row above it."""

    def __init__(self, *args, count_limit: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.count_limit = count_limit

    @cached_property
    def row_count(self) -> RowCount:
        return count_rows(self.object_list, exact_up_to=self.count_limit)

    @cached_property
    def count(self) -> int:
        return self.row_count.value

    @cached_property
    def num_pages(self) -> int:
        if not self.row_count.estimated:
            return super().num_pages
        return -(-self.count_limit // self.per_page)


class CallbackChangeList(ChangeList):
    """On a table too big to scan: no facet counts (Django's "Show counts" counts every
    row for each choice), and an estimated count said to be one."""

    def __init__(self, request: HttpRequest, *args, **kwargs) -> None:
        super().__init__(request, *args, **kwargs)
        facets = self.is_facets_optional or self.add_facets
        if facets and _callbacks_beyond_scan() is not None:
            self.add_facets = self.is_facets_optional = False
        if self.paginator.row_count.estimated:
            # The search form's "N results" would show the estimate as exact;
            # the note under the pagination line says it is one.
            self.full_result_count = self.result_count


class AttemptInline(admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    fields = [
        "number",
        "attempted_at",
        "duration_ms",
        "response_status",
        "error",
        "sent_headers",
        "answer_headers",
        "response_body",
    ]
    readonly_fields = fields

    @admin.display(description=_("request headers"))
    def sent_headers(self, attempt: Attempt) -> str:
        """Masked when logged already; again with today's rule, for rows logged before it."""
        return self._masked(attempt, attempt.request_headers)

    @admin.display(description=_("response headers"))
    def answer_headers(self, attempt: Attempt) -> str:
        """A receiver's answer may carry credentials of its own (Set-Cookie)."""
        return self._masked(attempt, attempt.response_headers)

    def _masked(self, attempt: Attempt, headers: dict[str, str]) -> str:
        hook = Hook.objects.filter(pk=attempt.callback.hook_id).first()
        marked = hook.secret_headers if hook else ()
        return json.dumps(mask_headers(headers, marked), ensure_ascii=False)

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Callback)
class CallbackAdmin(ModelAdmin):
    list_display = [
        "id",
        "hook_name",
        "event",
        "status",
        "tries",
        "http_status",
        "next_attempt",
        "created",
    ]
    # No date hierarchy: it reads every distinct day of the callbacks table.
    list_filter = [
        "status",
        "hook",
        HookModelFilter,
        "hook__enabled",
        OwnerFilter,
        EventTypeFilter,
        ("create_datetime", admin.DateFieldListFilter),
    ]
    # Searched as text on a small table only; ids are looked up in get_search_results.
    search_fields = ["target_url", "object_id", "status_details"]
    search_help_text = _(
        "An event id, a callback id or an object id; on a small table, also text in the "
        "target URL or the status details."
    )
    list_select_related = ["hook"]
    show_full_result_count = False
    inlines = [AttemptInline]
    actions = ["resend_selected", "send_selected_now"]
    change_list_template = "admin/http_hooks/callback/change_list.html"
    readonly_fields = [f.name for f in Callback._meta.fields]

    @admin.display(description=_("hook"), ordering="hook")
    def hook_name(self, obj: Callback) -> str:
        return _short(str(obj.hook), 30)

    @admin.display(description=_("event"), ordering="event_type")
    def event(self, obj: Callback) -> str:
        """A model signal's event by its signal's name; an explicit event by its type."""
        if obj.object_type:
            return _short_signal(obj.event_type)
        return _short(obj.event_type, 30)

    @admin.display(description=_("tries"), ordering="attempts")
    def tries(self, obj: Callback) -> int:
        return obj.attempts

    @admin.display(description=_("HTTP"), ordering="last_response_status")
    def http_status(self, obj: Callback) -> int | None:
        return obj.last_response_status

    @admin.display(description=_("next try"), ordering="next_attempt_at")
    def next_attempt(self, obj: Callback) -> str:
        return _time(obj.next_attempt_at)

    @admin.display(description=_("created"), ordering="create_datetime")
    def created(self, obj: Callback) -> str:
        return _time(obj.create_datetime)

    def get_changelist(self, request: HttpRequest, **kwargs) -> type[ChangeList]:
        return CallbackChangeList

    def get_paginator(self, request: HttpRequest, queryset, per_page: int, *args, **kwargs):
        count_limit = int(hooks_settings.ADMIN_COUNT_LIMIT)
        return CallbackPaginator(queryset, per_page, *args, count_limit=count_limit, **kwargs)

    def get_sortable_by(self, request: HttpRequest) -> list[str] | tuple[str, ...]:
        """Above ``ADMIN_SCAN_LIMIT`` callbacks, the columns an index sorts both ways (the
        list adds ``-id`` to every order): any other would sort the whole table."""
        if _callbacks_beyond_scan() is None:
            return super().get_sortable_by(request)
        return ["id", "created"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Callback], search_term: str
    ) -> tuple[QuerySet[Callback], bool]:
        """Ids are looked up exactly, by index; text is searched as Django does (a scan
        of the table) only while PostgreSQL estimates at most ``ADMIN_SCAN_LIMIT``
        callbacks."""
        if not search_term.strip():
            return queryset, False
        named = callbacks_named_by(queryset, search_term)
        estimate = _callbacks_beyond_scan()
        if estimate is not None:
            self.message_user(
                request,
                _(
                    "Searched ids only (event id, callback id, object id): text search "
                    "would read all of about %(count)s callbacks. Filter by hook, status "
                    "or date instead."
                )
                % {"count": f"{estimate:,}"},
                messages.INFO,
            )
            return named, False
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        return found | named, may_have_duplicates

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        """Callbacks are a log: nobody edits them in a form."""
        return False

    def has_resend_permission(self, request: HttpRequest) -> bool:
        """Resending or sending needs the change permission, as in the REST API."""
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    @admin.action(description=_("Resend selected callbacks"), permissions=["resend"])
    def resend_selected(self, request: HttpRequest, queryset: QuerySet[Callback]) -> None:
        try:
            count = services.resend_callbacks(queryset=queryset)
        except TooManyCallbacksError as exc:
            self.message_user(
                request,
                _("Nothing was resent: %(error)s (POST /api/callbacks/resend/ with confirm).")
                % {"error": exc.message},
                messages.ERROR,
            )
            return
        self.message_user(request, _("%(count)d callbacks queued again.") % {"count": count})

    @admin.action(description=_("Send selected callbacks now"), permissions=["resend"])
    def send_selected_now(self, request: HttpRequest, queryset: QuerySet[Callback]) -> None:
        """One batch, as in the REST API: a page of the admin is no place for a long loop."""
        batch_size = int(hooks_settings.BATCH_SIZE)
        waiting = queryset.filter(status=CallbackStatus.WAITING).order_by("pk")
        ids = list(waiting.values_list("pk", flat=True)[: batch_size + 1])
        chosen = ids[:batch_size]
        result = services.send_batch_or_queue(ids=chosen)
        report = result.report
        if result.mode == "queued":
            message = _("%(count)d callbacks handed to the Celery workers.") % {
                "count": len(chosen)
            }
        else:
            message = _("Sent %(sent)d, retrying %(retried)d, failed %(failed)d.") % {
                "sent": report.sent,
                "retried": report.retried,
                "failed": report.failed,
            }
        self.message_user(request, message)
        if len(ids) > batch_size or result.more:
            self.message_user(
                request,
                _("At most %(size)d callbacks are sent at a time: run the action again.")
                % {"size": batch_size},
                messages.WARNING,
            )

    def get_urls(self):
        overview = self.admin_site.admin_view(self.overview_view)
        return [
            path("overview/", overview, name="http_hooks_callback_overview"),
            *super().get_urls(),
        ]

    def overview_view(self, request: HttpRequest) -> HttpResponse:
        """Each hook's health over a recent window, with its tries per hour drawn: read
        from the hourly counts (``DeliveryStats``) and the hooks, not the callbacks."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        # ASCII digits: int() reads Arabic-Indic ones, " 12" and "1_2" too.
        text = request.GET.get("hours", "")
        hours = 24
        if ascii_digits(text) and len(text) <= 20:
            hours = max(1, min(MAX_WINDOW_HOURS, int(text)))
        health = hooks_health(hours=hours)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Delivery overview"),
            "rows": [{"health": entry, "chart": hourly_bars(entry)} for entry in health],
            "hours": hours,
            "windows": WINDOWS,
            "totals": {
                "sent": sum(entry.sent for entry in health),
                "failed": sum(entry.failed for entry in health),
            },
        }
        return TemplateResponse(request, "admin/http_hooks/callback/overview.html", context)
