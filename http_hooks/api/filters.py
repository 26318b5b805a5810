"""FilterSets of the list endpoints (and of the bulk resend of callbacks).

Every query parameter means what the schema says or is a 400: an empty value
(``?status=``) is refused rather than read as "no filter", and so is an
unknown ``ordering``; leave a parameter out to not filter by it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.contrib.contenttypes.models import ContentType
from django.core.validators import RegexValidator
from django.db.models import Q
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema_field
from rest_framework import filters
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from ..events import (
    MAX_EVENT_TYPE_LENGTH,
    SUBSCRIPTION_PATTERN,
    covering,
    validate_subscriptions,
)
from ..exceptions import HttpHooksError
from ..models import MAX_ORDERING_KEY_LENGTH, Callback, CallbackStatus, Hook, HttpMethod, Signal
from ..owners import MAX_OWNER_LENGTH
from ..text import ascii_digits
from ..validators import MAX_NAME_LENGTH, MAX_URL_LENGTH, resolve_model
from .serializers import BLANK_MESSAGE, MAX_ID, date_time_problem

FIELD_NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$"
# Every text field refuses a NUL character (Django's forms, DRF's fields).
NO_NUL = "^[^\\x00]*$"
MAX_SEARCH_LENGTH = 100
# The filters that bound the creation time, and so order the list by it (without ``ordering``).
# A pattern of "contains" is at most as long as the column it searches: a longer one
# finds nothing, and SQLite refuses a LIKE pattern over 50,000 bytes with an
# OperationalError, which the API answers as a 503 "try again".
MAX_SIGNAL_PATH_LENGTH = Signal._meta.get_field("signal").max_length
CREATION_BOUNDS = ("created_after", "created_before", "updated_before")


class FilterForm(forms.Form):
    """The form of every FilterSet here: a parameter given empty is an error, and a
    text is taken as sent, not stripped: the schema's ``maxLength`` and ``pattern``
    hold of the value itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if isinstance(field, forms.CharField):
                field.strip = False

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for name in self.fields:
            if name in self.data and self.data.get(name) == "" and name not in self.errors:
                self.add_error(name, forms.ValidationError(BLANK_MESSAGE, code="blank"))
        return cleaned


class FilterBackend(DjangoFilterBackend):
    """django-filter's backend; its form in the browsable API leaves empty fields out
    of the query, since an empty value is an error here."""

    template = "http_hooks/filter_form.html"


class ModelLabelFormField(forms.CharField):
    def to_python(self, value: Any) -> ContentType | None:
        label = super().to_python(value)
        if not label:
            return None
        try:
            return resolve_model(label)
        except HttpHooksError as exc:
            raise exc.as_django_error() from exc


class StrictBooleanFormField(forms.NullBooleanField):
    """``true``/``false`` (or ``1``/``0``); anything else is an error, not "no filter"."""

    widget = forms.TextInput
    VALUES = {"true": True, "1": True, "false": False, "0": False}

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        try:
            return self.VALUES[str(value).lower()]
        except KeyError:
            raise forms.ValidationError("Enter true or false.", code="invalid") from None


class UTCDateTimeFormField(IsoDateTimeField):
    """An ISO 8601 date-time, given to the database in UTC.

    Python takes offsets up to 24 hours (``+20:00``), PostgreSQL only up to 16:
    passed on as given, such a value fails in the database, not here.
    """

    def to_python(self, value: Any) -> datetime | None:
        problem = None if value in self.empty_values else date_time_problem(value)
        if problem:
            raise forms.ValidationError(problem, code="invalid")
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("The date-time is out of range.", code="invalid") from None


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCDateTimeFormField


class BooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanFormField


class StrictIntegerFormField(forms.IntegerField):
    """ASCII digits only: Django's field would take "+1", " 1", "1.0" and any Unicode
    digit as a number."""

    def to_python(self, value: Any) -> int | None:
        if value not in self.empty_values and not ascii_digits(str(value), signed=True):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


class IntegerFilter(django_filters.NumberFilter):
    field_class = StrictIntegerFormField


def integer_filter(*, field_name: str, minimum: int, maximum: int, help_text: str) -> IntegerFilter:
    """A whole-number filter with its bounds and description in the schema."""
    schema = {"type": "integer", "minimum": minimum, "maximum": maximum, "description": help_text}
    return extend_schema_field(schema)(
        IntegerFilter(field_name=field_name, min_value=minimum, max_value=maximum)
    )


class OrderingFilter(filters.OrderingFilter):
    """DRF's ordering filter, strict: an unknown or empty field is a 400, not ignored.
    Several fields may be given, separated by commas."""

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> list[str] | None:
        if self.ordering_param not in request.query_params:
            return self.get_default_ordering(view)
        # ``?ordering=a,b`` or, as generated clients send a list, ``?ordering=a&ordering=b``.
        value = ",".join(request.query_params.getlist(self.ordering_param))
        allowed = self.allowed_values(queryset, view, request)
        terms = value.split(",")
        wrong = [term for term in terms if term not in allowed]
        if wrong:
            raise ValidationError(
                {
                    self.ordering_param: [
                        f"Unknown field {wrong[0]!r}; one of {', '.join(allowed)}."
                    ]
                },
                code="invalid_ordering",
            )
        return terms

    def allowed_values(self, queryset: Any, view: Any, request: Request | None = None) -> list[str]:
        context = {"request": request} if request is not None else {}
        names = [name for name, _ in self.get_valid_fields(queryset, view, context)]
        return [value for name in names for value in (name, f"-{name}")]

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        (parameter,) = super().get_schema_operation_parameters(view)
        parameter["description"] = (
            "Order by these fields (comma-separated); prefix a field with `-` for descending."
        )
        parameter["schema"] = {
            "type": "array",
            "items": {"type": "string", "enum": self.allowed_values(view.get_queryset(), view)},
            "minItems": 1,
        }
        parameter["style"] = "form"
        parameter["explode"] = False
        return [parameter]


class SearchFilter(filters.SearchFilter):
    """DRF's search, bounded: each term is an ``ILIKE`` of every search field, in the
    count and in the page, and a query of 2,000 terms kept PostgreSQL busy for
    seconds (20,000, for minutes). At most ``MAX_SEARCH_LENGTH`` characters, a term
    given twice counts once; errors name ``search``."""

    def get_search_terms(self, request: Request) -> list[str]:
        try:
            terms = super().get_search_terms(request)
        except ValidationError as exc:
            raise ValidationError({self.search_param: exc.detail}) from None
        value = request.query_params.get(self.search_param, "")
        if len(value) > MAX_SEARCH_LENGTH:
            raise ValidationError(
                {
                    self.search_param: [
                        f"Ensure this field has no more than {MAX_SEARCH_LENGTH} characters."
                    ]
                },
                code="max_length",
            )
        return list(dict.fromkeys(terms))

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["description"] = (
                "Terms (separated by spaces or commas) each found in one of the fields "
                f"searched; at most {MAX_SEARCH_LENGTH} characters in all."
            )
            parameter["schema"]["maxLength"] = MAX_SEARCH_LENGTH
            parameter["schema"]["pattern"] = NO_NUL
        return parameters


class PatternValidator:
    """A text filter's check, whose rule the schema also gives as the parameter's
    ``pattern``: a client that checks its values first is refused nothing."""

    def __init__(self, pattern: str, check: Callable[[str], None]) -> None:
        self.pattern = pattern
        self.check = check

    def __call__(self, value: str) -> None:
        self.check(value)


def check_subscription(value: str) -> None:
    """An entry of ``Hook.event_types`` (a name, ``prefix.*`` or ``*``), or a form error."""
    try:
        validate_subscriptions([value])
    except HttpHooksError as exc:
        raise exc.as_django_error() from exc


# ``$`` of the schema's pattern (ECMA) is the end; Python's also matches before a last "\n".
check_field_name = RegexValidator(
    FIELD_NAME_PATTERN.removesuffix("$") + r"\Z", "Enter a field name."
)


class CallbackOrderingFilter(OrderingFilter):
    """With a bound on the creation time (``CREATION_BOUNDS``) and no ``ordering``,
    callbacks come newest first by creation time, not by id: ``callback_retention_idx``
    then reads the page from the bound on. Ordered by id, a bound far back in time would
    make the database step over every newer callback (1.5-2.3 s at 10 million callbacks)."""

    BY_CREATION = ["-create_datetime", "-id"]

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> list[str] | None:
        given = request.query_params
        if self.ordering_param not in given and any(name in given for name in CREATION_BOUNDS):
            return self.BY_CREATION
        return super().get_ordering(request, queryset, view)


@extend_schema_field(
    {"type": "string", "description": "Hooks on this model, as `app_label.model`."}
)
class ModelLabelFilter(django_filters.Filter):
    field_class = ModelLabelFormField


class HookFilter(django_filters.FilterSet):
    model = ModelLabelFilter()
    signal = django_filters.CharFilter(
        field_name="signals__signal", help_text="Hooks fired by this signal (dotted path)."
    )
    http_method = django_filters.ChoiceFilter(choices=HttpMethod.choices, help_text="Method.")
    enabled = BooleanFilter(help_text="Enabled (`true`) or disabled (`false`) hooks.")
    name = django_filters.CharFilter(help_text="Hooks with exactly this name.")
    name__icontains = django_filters.CharFilter(
        field_name="name",
        lookup_expr="icontains",
        max_length=MAX_NAME_LENGTH,
        help_text="Name contains (any case).",
    )
    rate_limited = BooleanFilter(
        field_name="rate_limit",
        lookup_expr="isnull",
        exclude=True,
        help_text="Hooks with (`true`) or without (`false`) a rate limit.",
    )
    target_url = django_filters.CharFilter(help_text="Hooks sending to exactly this URL.")
    target_url__icontains = django_filters.CharFilter(
        field_name="target_url",
        lookup_expr="icontains",
        max_length=MAX_URL_LENGTH,
        help_text="URL contains (any case).",
    )

    has_model = BooleanFilter(
        field_name="model",
        lookup_expr="isnull",
        exclude=True,
        help_text="Hooks on a model (`true`) or taking explicit events only (`false`).",
    )
    event_type = django_filters.CharFilter(
        method="filter_event_type",
        max_length=MAX_EVENT_TYPE_LENGTH,
        validators=[PatternValidator(SUBSCRIPTION_PATTERN, check_subscription)],
        help_text="Hooks whose `event_types` take this type: the name itself, a `.*` "
        "wildcard over it, or `*` (`order.*` as a value: hooks with `order.*` or `*`).",
    )
    has_conditions = BooleanFilter(
        method="filter_has_conditions",
        help_text="Hooks with conditions (`true`) or without (`false`).",
    )
    owner = django_filters.CharFilter(
        max_length=MAX_OWNER_LENGTH,
        help_text="Hooks of this owner (its primary key as text); a user limited to their "
        "own owners finds nothing for another's.",
    )
    ordered = BooleanFilter(
        method="filter_ordered",
        help_text="Hooks with (`true`) or without (`false`) an ordering key.",
    )
    ordering_key = django_filters.CharFilter(
        max_length=MAX_ORDERING_KEY_LENGTH,
        help_text="Hooks with exactly this ordering key template.",
    )
    changed_field = django_filters.CharFilter(
        method="filter_changed_field",
        max_length=100,
        validators=[PatternValidator(FIELD_NAME_PATTERN, check_field_name)],
        help_text="Hooks whose `changed_fields` name this field (compared without case).",
    )

    class Meta:
        model = Hook
        form = FilterForm
        fields = ["name", "model", "enabled", "signal", "target_url", "http_method", "rate_limited"]

    def filter_has_conditions(self, queryset: Any, name: str, value: bool) -> Any:
        without = Q(conditions={})
        return queryset.exclude(without) if value else queryset.filter(without)

    def filter_event_type(self, queryset: Any, name: str, entry: str) -> Any:
        # Each entry is quoted in the list's JSON text; the same query on every database.
        matches = Q()
        for covering_entry in covering(entry):
            matches |= Q(event_types__icontains=f'"{covering_entry}"')
        return queryset.filter(matches)

    def filter_ordered(self, queryset: Any, name: str, value: bool) -> Any:
        unordered = Q(ordering_key="")
        return queryset.exclude(unordered) if value else queryset.filter(unordered)

    def filter_changed_field(self, queryset: Any, name: str, value: str) -> Any:
        # The list as JSON text holds the name in quotes; the same query on every database.
        return queryset.filter(changed_fields__icontains=f'"{value}"')


class SignalFilter(django_filters.FilterSet):
    signal = django_filters.CharFilter(help_text="The signal with exactly this path.")
    signal__icontains = django_filters.CharFilter(
        field_name="signal",
        lookup_expr="icontains",
        max_length=MAX_SIGNAL_PATH_LENGTH,
        help_text="Path contains (any case).",
    )

    class Meta:
        model = Signal
        form = FilterForm
        fields = ["signal"]


class CallbackFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=CallbackStatus.choices, help_text="Status.")
    hook = integer_filter(
        field_name="hook_id", minimum=1, maximum=MAX_ID, help_text="Callbacks of this hook."
    )
    created_after = DateTimeFilter(
        field_name="create_datetime", lookup_expr="gte", help_text="Created at or after."
    )
    created_before = DateTimeFilter(
        field_name="create_datetime", lookup_expr="lt", help_text="Created before."
    )
    updated_after = DateTimeFilter(
        field_name="update_datetime", lookup_expr="gte", help_text="Updated at or after."
    )
    updated_before = DateTimeFilter(
        field_name="update_datetime",
        method="filter_updated_before",
        help_text="Updated before (and so created before).",
    )
    response_status = integer_filter(
        field_name="last_response_status",
        minimum=100,
        maximum=599,
        help_text="HTTP status of the last answer.",
    )

    event_type = django_filters.CharFilter(
        help_text="`created`, `updated`, `http_hooks.test` or a signal's path for a model "
        "signal's event; the type (`order.paid`) of an explicit event."
    )
    event_id = django_filters.UUIDFilter(help_text="The callback with this `webhook-id`.")
    owner = django_filters.CharFilter(
        max_length=MAX_OWNER_LENGTH,
        help_text="Callbacks of this owner's hooks (its primary key as text); a user limited "
        "to their own owners finds nothing for another's.",
    )
    ordering_key = django_filters.CharFilter(
        max_length=MAX_ORDERING_KEY_LENGTH,
        help_text="Callbacks with this rendered ordering key (with `hook`, in the order they "
        "are delivered: sort by `id`).",
    )

    class Meta:
        model = Callback
        form = FilterForm
        fields = ["status", "hook", "event_type", "event_id"]

    def filter_updated_before(self, queryset: Any, name: str, value: datetime) -> Any:
        """Updated before ``value``, and created before it too, as a callback is updated
        no earlier than it was created (each process stamps its changes with its own
        clock: only a callback whose update a slower clock stamped before its creation
        differs). The creation bound lets ``callback_retention_idx`` find the rows, in the
        creation-time order ``CallbackOrderingFilter`` gives; without it a bound far back
        made the database step over every newer callback (2.1 s p95 at 10 million)."""
        return queryset.filter(update_datetime__lt=value, create_datetime__lt=value)
