"""Input shape and output representation of the REST API.

Serializers check types and sizes, reuse ``validators`` for the meaning of a
value (a model label, a signal path, headers, a URL, a secret) and call
``services`` to write. The business rules stay in the service layer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.validators import RegexValidator
from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.validators import UniqueValidator

from ..conditions import MAX_DEPTH, MAX_LOOKUPS, MAX_SIZE
from ..delivery.health import BREAKER_STATES, PAUSE_REASONS
from ..delivery.stats import MAX_WINDOW_HOURS, WINDOWS
from ..events import (
    EVENT_TYPE_PATTERN,
    MAX_EVENT_TYPE_LENGTH,
    MAX_EVENT_TYPES,
    SUBSCRIPTION_PATTERN,
    validate_event_type,
    validate_subscriptions,
)
from ..exceptions import HttpHooksError
from ..headers import (
    MASKED,
    MAX_HEADER_NAME_LENGTH,
    MAX_HEADERS,
    MAX_HEADERS_SIZE,
    MAX_SECRET_HEADER_NAMES,
    check_hook_headers,
    mask_headers,
    parse_headers,
)
from ..imports import DOTTED_PATTERN, MAX_PATH_LENGTH
from ..models import (
    MAX_ORDERING_KEY_LENGTH,
    Attempt,
    Callback,
    CallbackStatus,
    DisabledReason,
    Hook,
    Signal,
)
from ..network import check_target_url
from ..owners import MAX_OWNER_LENGTH, owner_for_write, scope
from ..payloads import PayloadEncoder
from ..services import (
    MAX_DAYS,
    MAX_EVENT_KEY_LENGTH,
    MAX_MINUTES,
    MONITORED_STATUSES,
    SendResult,
    check_send_limit,
    create_hook,
    create_signal,
    new_hook_fields,
    update_hook,
)
from ..settings import hooks_settings
from ..text import LABEL_PATTERN, LABEL_RULE, ascii_digits, text_items
from ..validators import (
    HOOK_FIELDS,
    MAX_CHANGED_FIELDS,
    MAX_ID,
    MAX_NAME_LENGTH,
    MAX_RATE_LIMIT,
    MAX_SIGNALS,
    MAX_TEMPLATE_LENGTH,
    MAX_URL_LENGTH,
    SECRET_PATTERN,
    import_signal,
    resolve_model,
    validate_rate_limit,
    validate_secret,
    validate_signal_paths,
)

MAX_IDS = 1000
# A query parameter given empty (``?status=``), in the filters and the query serializers.
BLANK_MESSAGE = "Give a value, or leave the parameter out."


@contextmanager
def field_errors() -> Iterator[None]:
    """Turn the service layer's errors into a validation error of the current field."""
    try:
        yield
    except HttpHooksError as exc:
        raise serializers.ValidationError(exc.message, code=exc.code) from exc


# --- fields --------------------------------------------------------------------


class JSONTyped:
    """A field that takes only its JSON type: DRF reads ``"5"`` as the number 5,
    ``1`` and ``"yes"`` as true and ``5`` as the text ``"5"``, so a body that does
    not match the schema's types would be accepted on a guess."""

    json_type: type = object
    type_name = "value"

    def to_internal_value(self, data: Any) -> Any:
        if self.json_type is int and isinstance(data, float) and data.is_integer():
            # JSON has one kind of number: ``249.0`` is the whole number 249, as JSON
            # Schema (and so the schema's clients) read it.
            data = int(data)
        is_bool = isinstance(data, bool)
        if not isinstance(data, self.json_type) or (is_bool and self.json_type is not bool):
            raise serializers.ValidationError(f"Not a {self.type_name}.", code="invalid")
        return super().to_internal_value(data)


class StringField(JSONTyped, serializers.CharField):
    json_type, type_name = str, "string"


class PatternField(StringField):
    """A string whose rule the schema gives as a ``pattern`` (``extend_schema_field``
    on the subclass): taken as sent, not trimmed, since the pattern refuses the
    spaces that trimming would let through."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)


@extend_schema_field({"type": "string", "pattern": LABEL_PATTERN})
class LabelField(PatternField):
    """Text that labels something (a hook's name, an ordering key, an event's key),
    shown in lists, logs and terminals: what ``text.label_problem`` refuses (a control
    character, a line break, a bidi control, a zero-width space) is refused by the
    service layer, which knows what the hook stores already, and which trims the spaces
    around a hook's name or ordering key after that, as for every entry point."""


class WholeNumberField(JSONTyped, serializers.IntegerField):
    json_type, type_name = int, "whole number"


class RateLimitField(WholeNumberField):
    """A hook's rate limit, refused with the same message as in the other entry points."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, max_value=MAX_RATE_LIMIT, **kwargs)

    def to_internal_value(self, data: Any) -> int | None:
        with field_errors():
            return validate_rate_limit(super().to_internal_value(data))


class BooleanField(JSONTyped, serializers.BooleanField):
    json_type, type_name = bool, "boolean (true or false)"


def id_field(**kwargs: Any) -> WholeNumberField:
    return WholeNumberField(min_value=1, max_value=MAX_ID, **kwargs)


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class HookIdField(JSONTyped, serializers.PrimaryKeyRelatedField):
    """The id of an existing hook (the ``Hook``)."""

    json_type, type_name = int, "whole number"

    def to_internal_value(self, data: Any) -> Hook:
        if isinstance(data, int) and not 1 <= data <= MAX_ID:
            self.fail("does_not_exist", pk_value=data)
        return super().to_internal_value(data)

    def get_queryset(self) -> models.QuerySet[Hook]:
        """Only the hooks of the request's owners: another's is as missing as no hook."""
        return scope(super().get_queryset(), self.context.get("owners"))


class ModelSerializer(serializers.ModelSerializer):
    """DRF's, with the model's text and boolean fields taking only their JSON type, and
    the model's defaults as the fields' initial values (the browsable API's form)."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StringField,
        models.TextField: StringField,
        models.BooleanField: BooleanField,
    }

    def build_standard_field(
        self, field_name: str, model_field: models.Field
    ) -> tuple[type[serializers.Field], dict[str, Any]]:
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        if model_field.has_default():
            kwargs["initial"] = model_field.get_default()
        return field_class, kwargs


class ModelLabelField(StringField):
    """A model as ``app_label.model`` (e.g. ``shop.order``)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 200)
        kwargs.setdefault(
            "help_text",
            "The model whose signals fire the hook, as `app_label.model` (e.g. `auth.user`).",
        )
        super().__init__(**kwargs)

    def run_validation(self, data: Any = serializers.empty) -> ContentType | None:
        label = super().run_validation(data)
        if label is None:
            return None
        with field_errors():
            return resolve_model(label)

    def to_representation(self, value: ContentType) -> str:
        return f"{value.app_label}.{value.model}"


@extend_schema_field(
    {"type": "string", "maxLength": MAX_PATH_LENGTH, "pattern": f"^{DOTTED_PATTERN}$"}
)
class SignalPathField(PatternField):
    """A signal's dotted path of Python identifiers (``package.module.name``), as sent:
    what it names is checked by the service layer."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", MAX_PATH_LENGTH)
        super().__init__(**kwargs)
        self.validators.append(
            RegexValidator(
                rf"\A{DOTTED_PATTERN}\Z",
                "invalid signal: give the full dotted import path (package.module.name, "
                "of Python identifiers)",
                code="invalid_signal",
            )
        )


class SignalPathsField(serializers.ListField):
    """The signals of a hook, by dotted path."""

    child = SignalPathField()

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", MAX_SIGNALS)
        kwargs.setdefault(
            "help_text",
            "Dotted paths of the `django.dispatch.Signal` instances that fire the hook "
            "(e.g. `django.db.models.signals.post_save`); at least one for a hook with a "
            "`model`, none without. Only the project's own code is "
            "imported: a path's module must be loaded already or belong to an installed app.",
        )
        super().__init__(**kwargs)

    def run_validation(self, data: Any = serializers.empty) -> list[str]:
        paths = super().run_validation(data)
        with field_errors():
            return validate_signal_paths(paths)

    def to_representation(self, value: Any) -> list[str]:
        return [signal.signal for signal in value.all()]


@extend_schema_field(
    {"type": "string", "maxLength": MAX_EVENT_TYPE_LENGTH, "pattern": SUBSCRIPTION_PATTERN}
)
class SubscriptionField(PatternField):
    """An entry of ``event_types``, checked with the others (``EventTypesField``)."""


class TextListField(serializers.ListField):
    """A list of text; shown as its text items, whatever was stored around validation."""

    def to_representation(self, data: Any) -> list[Any]:
        return super().to_representation(text_items(data))


class EventTypesField(TextListField):
    """The explicit events a hook takes (``events.validate_subscriptions``)."""

    child = SubscriptionField(max_length=MAX_EVENT_TYPE_LENGTH)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", MAX_EVENT_TYPES)
        kwargs.setdefault(
            "help_text",
            "Types of the explicit events (`POST /events/`, `send_event`) the hook receives: "
            "names of lowercase segments of `a-z`, `0-9` and `_` separated by `.` or `-` "
            "(`order.paid`), a name ending in `.*` for every type under it (`order.*` takes "
            "`order.paid` and `order.item.added`, not `order`), or `*` for every event. A hook "
            "has a `model` and `signals`, `event_types`, or both. Empty: none.",
        )
        super().__init__(**kwargs)

    def run_validation(self, data: Any = serializers.empty) -> list[str]:
        entries = super().run_validation(data)
        with field_errors():
            return validate_subscriptions(entries)


class HeadersField(serializers.Field):
    """HTTP headers as an object; the legacy ``Key: value`` text is accepted on input."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "help_text",
            "Extra HTTP headers of each request, as an object of strings (at most "
            f"{MAX_HEADERS}, {MAX_HEADERS_SIZE} bytes in all). On input the legacy text form "
            "(one `Key: value` per line) is accepted too. Refused: a name given twice, in "
            "any case (`X-Team` and `x-team`), framing and hop-by-hop "
            "headers (`Content-Length`, `Transfer-Encoding`, `Host`, `Connection`, "
            "`Keep-Alive`, `Upgrade`, `TE`, `Trailer`, `Expect`, `Proxy-*`) and the ones "
            "http_hooks sets (`Content-Type`, `webhook-id`, `webhook-timestamp`, "
            "`webhook-signature`), in any case. Credentials are "
            "write-only: the value of `Authorization`, `Cookie`, a name containing `auth`, "
            "`token`, `key`, `secret`, `sig`, `password`, `credential` or `session`, or a "
            f"name in `secret_headers` is shown as `{MASKED}`. On update such a header "
            f"keeps its value when it is left out or sent as `{MASKED}`, and is removed when "
            "sent with an empty value.",
        )
        super().__init__(**kwargs)

    default_error_messages = {
        "not_a_string": "the value of {name} must be a string",
    }

    def to_internal_value(self, data: Any) -> dict[str, str]:
        # The schema says an object of strings: a number is a client's mistake here,
        # though the Python API takes one for the old package's sake.
        if isinstance(data, dict):
            for name, value in data.items():
                if not isinstance(value, str):
                    self.fail("not_a_string", name=repr(name)[:100])
        with field_errors():
            return check_hook_headers(parse_headers(data))

    def to_representation(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):  # stored around validation
            return {}
        return {name: str(text) for name, text in value.items()}


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": True,
        "example": {"paid": True, "total__gte": 100, "not": {"customer__isnull": True}},
    }
)
class ConditionsField(serializers.JSONField):
    """The conditions of a hook: an object of lookups (``http_hooks.conditions``)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "help_text",
            "Lookups the instance must match for the hook to fire, tested in Python on each "
            'occurrence (no query): `{"field": value}` or `{"field__lookup": value}` '
            "with lookups `exact`, `iexact`, `in` (a list), `gt`, `gte`, `lt`, `lte`, "
            "`isnull` (true/false), `contains`, `icontains`, `startswith`, `endswith` (text "
            "fields); `__` follows a foreign key (`customer__is_vip`), which may cost a query "
            "when its object is not loaded; a null foreign key on the way makes the lookup "
            'false (`isnull`: true). Several keys must all hold; `{"not": {...}}` negates and '
            '`{"any": [{...}, ...]}` holds when one item holds. At most '
            f"{MAX_LOOKUPS} lookups, {MAX_DEPTH} levels of `not`/`any`, {MAX_SIZE} bytes as JSON. "
            "A value of another type at save time makes the conditions false (logged). "
            "Empty: no condition.",
        )
        kwargs.setdefault("initial", dict)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError("Not an object.", code="invalid")
        return data


@extend_schema_field(
    {
        "type": "string",
        "maxLength": MAX_URL_LENGTH,
        # A scheme, a host (no credentials, no percent sign), and no space or control
        # character anywhere.
        "pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@%:\s\x00-\x1f\x7f-\x9f]"
        r"[^/?#@%\s\x00-\x1f\x7f-\x9f]*(?:[/?#][^\s\x00-\x1f\x7f-\x9f]*)?$",
    }
)
class TargetURLField(PatternField):
    """An absolute http(s) URL that the network policy allows.

    Only its form is checked here, with the other fields: the service layer
    checks it again and resolves its host for the network policy, once per write.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", MAX_URL_LENGTH)
        kwargs.setdefault(
            "help_text",
            "Where the requests go: an absolute http:// or https:// URL. Targets on "
            "private networks are refused while `BLOCK_PRIVATE_NETWORKS` is on.",
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        url = super().to_internal_value(data)
        with field_errors():
            check_target_url(url, resolve_host=False)
        return url


@extend_schema_field({"type": "string", "maxLength": 255, "pattern": SECRET_PATTERN})
class SecretField(PatternField):
    """A Standard Webhooks signing secret: ``whsec_`` + base64 of 24 to 64 bytes."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 255)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        secret = super().to_internal_value(data)
        if not secret:
            return ""  # unsigned
        with field_errors():
            return validate_secret(secret)


# --- hooks ---------------------------------------------------------------------


# A hook that any project can create as it stands: the browsable API's form and
# the schema's example of a new hook.
NEW_HOOK = {
    "name": "new users",
    "model": "auth.user",
    "signals": ["django.db.models.signals.post_save"],
    "target_url": "https://receiver.example/webhook",
}


# The hook's health as clients see it (``delivery.health``), read-only.
HEALTH_FIELDS = ["paused_until", "consecutive_failures", "disabled_reason", "disabled_at"]


class HookSerializer(ModelSerializer):
    name = LabelField(
        required=False,
        allow_blank=True,
        max_length=MAX_NAME_LENGTH,
        help_text=f"A name for people, stored without the spaces around it: {LABEL_RULE}.",
    )
    model = ModelLabelField(
        required=False,
        allow_null=True,
        help_text="The model whose signals fire the hook, as `app_label.model` (e.g. "
        "`auth.user`); `null` for a hook that takes explicit events only (`event_types`).",
    )
    signals = SignalPathsField(required=False)
    event_types = EventTypesField(required=False)
    target_url = TargetURLField()
    headers = HeadersField(required=False, initial=dict)
    secret_headers = TextListField(
        child=StringField(max_length=MAX_HEADER_NAME_LENGTH),
        required=False,
        max_length=MAX_SECRET_HEADER_NAMES,
        help_text="Names of further headers whose values are credentials, shown as "
        f"`{MASKED}` like `Authorization` (case does not matter; stored in lower case).",
    )
    payload_template = StringField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=MAX_TEMPLATE_LENGTH,
        help_text="Text with `{{ placeholders }}` (`{{instance.name}}`, `{{event.type}}`, ...); "
        "checked against `content_type`. Takes precedence over `serializer_class`. A model "
        "signal's event gives `instance`, `event_type` (`created`, `updated` or the signal's "
        "path), `event.type` (`shop.order.created`), `event.key` (the object's id), `sender` "
        "and the arguments of its signal; an explicit event gives `event.type`, `event.key`, "
        "`event_type` and `payload.<key>...`. A name must be one that every kind of event of "
        "the hook gives; unknown names and paths past a plain value are refused.",
    )
    serializer_class = StringField(
        required=False,
        allow_blank=True,
        max_length=MAX_PATH_LENGTH,
        help_text="Dotted path of a DRF serializer class that renders the payload of a model "
        "signal's event (of a module loaded already or in an installed app); a hook needs a "
        "`model` for it. An explicit event without a template sends "
        '`{"type", "timestamp", "data"}`.',
    )
    changed_fields = TextListField(
        child=StringField(max_length=100),
        required=False,
        max_length=MAX_CHANGED_FIELDS,
        help_text="Names of fields of the hook's model: on an update (`pre_save`, `post_save`) "
        "the hook fires only if one of them changed since the instance was loaded or last "
        "saved (`save(update_fields=...)` writes only those fields). A create always fires. "
        "Concrete fields only: no many-to-many or reverse relation. Empty: every save fires.",
    )
    conditions = ConditionsField(required=False)
    ordering_key = LabelField(
        required=False,
        allow_blank=True,
        max_length=MAX_ORDERING_KEY_LENGTH,
        help_text="A template such as `{{instance.pk}}`, rendered as text when an event is "
        "stored: callbacks of this hook with the same key are delivered one at a time, in "
        "the order they were created (a failing one holds back its key only; "
        "`ORDERED_ON_FAILURE` says what its final error does). Names as in "
        f"`payload_template`; {LABEL_RULE}. Empty: no order.",
    )
    secret = SecretField(
        write_only=True,
        required=False,
        allow_blank=True,
        help_text="The signing secret (`whsec_` + base64). Write-only: generated when not "
        "given on create, and shown only in the answer of create and rotate-secret. A new "
        "one given in a change is a rotation: the old one keeps signing for "
        '`SECRET_ROTATION_GRACE`. An empty string (`""`) makes the hook unsigned.',
    )
    rate_limit = RateLimitField(
        required=False,
        allow_null=True,
        help_text="Requests per second at most, all senders together (a whole number); "
        "`null`: no limit. Callbacks held back by it stay `waiting`, not charged a try. "
        "Over any 10 seconds the receiver sees at most 11 times the limit (a second's "
        "worth at once, then the limit's pace).",
    )
    has_secret = serializers.SerializerMethodField(
        help_text="Whether requests of this hook are signed (`webhook-signature`)."
    )
    owner = StringField(
        required=False,
        allow_blank=True,
        max_length=MAX_OWNER_LENGTH,
        help_text="The tenant the hook belongs to: the primary key, as text, of an instance of "
        '`OWNER_MODEL` (the user model by default); `""`: the project\'s own hook, seen by '
        "staff only. Set from the request on create: a user who acts for several owners "
        "names one of them, and may move a hook only between their own. Staff and users with "
        "`http_hooks.view_all_hooks` may give any existing owner. A hook that changes hands "
        "gets a new signing secret (unless `secret` is given with the change; the old one "
        "stops signing at once), keeps no credential header value not given anew, and starts "
        "with the health and hourly counts of a new hook: nothing of the previous owner's "
        "tries (a hook http_hooks disabled stays disabled until enabled).",
    )

    class Meta:
        model = Hook
        fields = [
            "id",
            *HOOK_FIELDS,
            "enabled",
            "secret",
            "has_secret",
            "owner",
            *HEALTH_FIELDS,
            "create_datetime",
            "update_datetime",
        ]
        read_only_fields = [*HEALTH_FIELDS, "create_datetime", "update_datetime"]
        extra_kwargs = {
            "paused_until": {
                "help_text": "Callbacks of this hook are not sent before this time (the "
                "receiver's `Retry-After`, or the circuit breaker's cool-down); once it has "
                "passed, one probe request decides whether the hook resumes."
            },
            "consecutive_failures": {
                "help_text": "Failed tries in a row; `BREAKER_FAILURES` of them pause the hook."
            },
            "disabled_reason": {
                "help_text": "Why http_hooks disabled the hook by itself: `gone` (the receiver "
                "answered 410 Gone) or `failing` (no success for `AUTO_DISABLE_AFTER` seconds "
                "and at least `AUTO_DISABLE_FAILURES` tries); empty otherwise. Its waiting "
                "callbacks wait until the hook is enabled again (`enable`)."
            },
            "disabled_at": {"help_text": "When http_hooks disabled the hook."},
        }

    def get_has_secret(self, hook: Hook) -> bool:
        return bool(hook.secret)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "owner" in attrs or self.instance is None:
            current = self.instance.owner if self.instance is not None else None
            try:
                attrs["owner"] = owner_for_write(
                    attrs.get("owner"), owners=self.context.get("owners"), current=current
                )
            except HttpHooksError as exc:
                raise serializers.ValidationError({"owner": [exc.message]}, code=exc.code) from exc
        return attrs

    def to_representation(self, hook: Hook) -> dict[str, Any]:
        data = super().to_representation(hook)
        data["headers"] = mask_headers(data["headers"], hook.secret_headers)
        return data

    def get_initial(self) -> dict[str, Any]:
        """The body the browsable API offers for a new hook: the model's defaults
        (enabled, POST, ...) and ``NEW_HOOK``, accepted as it stands. No ``secret``:
        one is generated (``""`` would mean an unsigned hook); no ``owner``: it comes
        from the request (``""`` would be refused to a user limited to their owners)."""
        initial = super().get_initial()
        if hasattr(self, "initial_data"):
            return initial
        initial.pop("secret", None)
        initial.pop("owner", None)
        return {**initial, **NEW_HOOK}

    def create(self, validated_data: dict[str, Any]) -> Hook:
        return create_hook(**validated_data)

    def update(self, instance: Hook, validated_data: dict[str, Any]) -> Hook:
        if not self.partial:  # PUT replaces: what it leaves out is as a new hook has it
            validated_data = {**new_hook_fields(), **validated_data}
        return update_hook(instance, **validated_data)


class HookWithSecretSerializer(HookSerializer):
    """A hook just created, with its secret: the only time the secret is shown."""

    secret = serializers.CharField(
        read_only=True, help_text="The signing secret. Store it now: it is not shown again."
    )


# The body of an action: a key it does not know is a 400, not ignored, so that a
# misspelt or renamed option (``callback_ids`` for ``ids``) never widens what is done.
# (A comment, not a docstring: spectacular would make it every body's description.)
class RequestSerializer(serializers.Serializer):
    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, Mapping):
            unknown = sorted(str(key) for key in data if key not in self.fields)
            if unknown:
                raise serializers.ValidationError(
                    {key[:100]: ["unknown field"] for key in unknown}, code="unknown_field"
                )
        return super().to_internal_value(data)

    def get_initial(self) -> dict[str, Any]:
        """The browsable API's raw form starts from this: the fields a client must give
        and those with a default, never an optional one as ``""`` or ``null`` (a
        rotation's ``"secret": ""`` would leave the hook unsigned, an event's
        ``"owner": ""`` is refused)."""
        return {
            name: value
            for name, value in super().get_initial().items()
            if self.fields[name].required or self.fields[name].default is not empty
        }


class NoBodySerializer(RequestSerializer):
    """The body of an action that takes none: ``{}`` (``views.take_no_body``)."""


class RotateSecretSerializer(RequestSerializer):
    secret = SecretField(
        required=False,
        help_text="The new secret; a random one is generated when not given.",
    )


class SecretSerializer(serializers.Serializer):
    secret = serializers.CharField(
        help_text="The new signing secret. Store it now: it is not shown again."
    )
    previous_secret_expires_at = serializers.DateTimeField(
        allow_null=True,
        help_text="Until when the previous secret still signs requests too (null when the "
        "hook had no secret).",
    )


# --- signals -------------------------------------------------------------------


class SignalSerializer(ModelSerializer):
    signal = SignalPathField(
        help_text="Dotted path of a `django.dispatch.Signal` instance.",
        validators=[
            UniqueValidator(
                queryset=Signal.objects.all(), message="signal with this signal already exists."
            )
        ],
    )

    class Meta:
        model = Signal
        fields = ["id", "signal", "create_datetime", "update_datetime"]

    def validate_signal(self, path: str) -> str:
        with field_errors():
            import_signal(path)
        return path.strip()

    def create(self, validated_data: dict[str, Any]) -> Signal:
        return create_signal(signal=validated_data["signal"])


# --- callbacks and attempts ----------------------------------------------------


class CallbackSerializer(serializers.ModelSerializer):
    # Text, not ``format: uri``: a hook's URL may be an IRI (``http://exämple.com/``).
    target_url = serializers.CharField(
        read_only=True, help_text="The hook's target URL when the event happened."
    )

    class Meta:
        model = Callback
        fields = [
            "id",
            "hook",
            "owner",
            "event_id",
            "event_type",
            "object_type",
            "object_id",
            "target_url",
            "http_method",
            "payload",
            "content_type",
            "status",
            "status_details",
            "attempts",
            "next_attempt_at",
            "last_response_status",
            "claimed_until",
            "ordering_key",
            "create_datetime",
            "update_datetime",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "claimed_until": {
                "help_text": "While `sending`: until when its sender's lease runs. Past it the "
                "callback is stuck (its sender stopped or died): the next sender takes it "
                "and sends it again. Null otherwise."
            },
            "event_id": {"help_text": "Sent as `webhook-id`; receivers drop duplicates by it."},
            "attempts": {"help_text": "Tries since the callback was created or last resent."},
            "owner": {"help_text": 'The owner of its hook (`Hook.owner`); `""`: the project\'s.'},
            "ordering_key": {
                "help_text": "Its hook's ordering key as rendered for this event: callbacks of "
                "one hook with the same key go one at a time, by `id`. Empty: any order."
            },
        }


class AttemptSerializer(serializers.ModelSerializer):
    """One try; give the hook's ``secret_headers`` in the context as ``secret_headers``."""

    request_headers = serializers.DictField(
        child=serializers.CharField(),
        read_only=True,
        help_text=f"Headers sent, with the values of credentials shown as `{MASKED}`.",
    )
    response_headers = serializers.DictField(
        child=serializers.CharField(),
        read_only=True,
        help_text="The answer's headers, with the values of credentials (`Set-Cookie`, ...) "
        f"shown as `{MASKED}`.",
    )
    succeeded = serializers.BooleanField(read_only=True, help_text="A 2xx answer.")

    class Meta:
        model = Attempt
        fields = [
            "id",
            "callback",
            "number",
            "attempted_at",
            "duration_ms",
            "request_headers",
            "response_status",
            "response_headers",
            "response_body",
            "error",
            "succeeded",
        ]
        read_only_fields = fields

    def to_representation(self, attempt: Attempt) -> dict[str, Any]:
        data = super().to_representation(attempt)
        # Request headers are masked when logged already; again with today's rule, for
        # rows logged before it. A receiver's answer may carry its own (Set-Cookie).
        marked = self.context.get("secret_headers", ())
        for field in ("request_headers", "response_headers"):
            data[field] = mask_headers(data[field], marked)
        return data


def confirm_field() -> BooleanField:
    """The ``confirm`` of a bulk resend (``services.resend_callbacks``)."""
    return BooleanField(
        default=False,
        help_text="Required to resend more than `RESEND_LIMIT` (default 10,000) callbacks "
        "at once; without it such a request is refused (400, `too_many_callbacks`).",
    )


class ResendManySerializer(RequestSerializer):
    ids = serializers.ListField(
        child=id_field(),
        required=False,
        min_length=1,
        max_length=MAX_IDS,
        help_text="Only these callbacks (combined with the query's filters).",
    )
    confirm = confirm_field()


# In ASCII digits: ``\d`` takes the digits of other scripts, which ``int()`` reads.
DATE_AND_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")
# The rest an ISO 8601 date-time may have: seconds and their fraction, an offset.
WHOLE_DATE_AND_TIME = re.compile(
    DATE_AND_TIME.pattern
    + r"(?::[0-9]{2}(?:[.,][0-9]+)?)?[ \t]*"
    + r"(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)?)?"
)
NO_TIME = "Enter a date and a time (ISO 8601: 2026-01-31T12:00:00Z), not a date alone."
TEXT_AFTER_TIME = "Enter a date and a time (ISO 8601: 2026-01-31T12:00:00Z) with nothing after it."


def text_after_time(value: Any) -> bool:
    """Whether text that begins with a date and a time goes on past them (an offset
    aside): Python's ISO parser stops at a NUL, so ``...T00:00:00Z\\x00junk`` was read as
    that time, and Django's regex takes other scripts' digits in a fraction."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    return DATE_AND_TIME.match(text) is not None and WHOLE_DATE_AND_TIME.fullmatch(text) is None


def date_time_problem(value: Any) -> str | None:
    """What keeps a date-time given as text from being one the schema's ``date-time``
    describes, or None: a date alone (Python's ISO parser takes ``2026-01-31`` as
    midnight), or text after the time (``text_after_time``)."""
    if not isinstance(value, str):
        return None
    if DATE_AND_TIME.match(value.strip()) is None:
        return NO_TIME
    return TEXT_AFTER_TIME if text_after_time(value) else None


class DateTimeField(serializers.DateTimeField):
    """DRF's date-time, whole (``date_time_problem``)."""

    def to_internal_value(self, value: Any) -> Any:
        problem = date_time_problem(value)
        if problem:
            raise serializers.ValidationError(problem, code="invalid")
        return super().to_internal_value(value)


class RecoverSerializer(RequestSerializer):
    since = DateTimeField(
        help_text="Queue again the hook's `error` callbacks created at or after this time "
        "(ISO 8601; without an offset, in the server's time zone): not in the future, "
        "at most 100 years ago.",
    )
    confirm = confirm_field()


class AnyJSONField(serializers.JSONField):
    """Any JSON value, null included: ``{}`` in the schema. DRF's JSONField with
    ``allow_null`` would be ``oneOf: [{}, {type: null}]`` there, which no null
    matches (a null matches both branches). Its fractions are decimals
    (``parsers.ExactJSONParser``), checked as a payload is written."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("encoder", PayloadEncoder)
        super().__init__(**kwargs)

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data is None:
            return (True, None)
        return super().validate_empty_values(data)


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_EVENT_TYPE_LENGTH,
        "pattern": EVENT_TYPE_PATTERN,
    }
)
class EventTypeField(PatternField):
    """The type of an explicit event (``events.validate_event_type``): no wildcard."""

    def to_internal_value(self, data: Any) -> str:
        with field_errors():
            return validate_event_type(super().to_internal_value(data))


class SendEventSerializer(RequestSerializer):
    event_type = EventTypeField(
        max_length=MAX_EVENT_TYPE_LENGTH,
        help_text="The event's type (`order.paid`): lowercase segments of `a-z`, `0-9` and `_` "
        "separated by `.` or `-`, no wildcard.",
    )
    payload = AnyJSONField(
        help_text="Any JSON value: the `data` of the default body, `payload` in templates "
        "and what the hooks' conditions test. A fraction goes out with the digits sent "
        "(`0.10`, `12345678901234567.89`), never rounded to a float.",
    )
    key = LabelField(
        required=False,
        allow_blank=True,
        max_length=MAX_EVENT_KEY_LENGTH,
        help_text="The event's key (e.g. the id of the object it is about): `event.key` in "
        f"templates, the callbacks' `object_id`; {LABEL_RULE}.",
    )
    owner = StringField(
        required=False,
        max_length=MAX_OWNER_LENGTH,
        help_text="The primary key of an owner: the event reaches that owner's hooks. Staff and "
        "users with `http_hooks.view_all_hooks` may name any owner that exists (the hooks "
        "with no owner take the event too); others one of their own.",
    )


class SendEventResultSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="The ids of the callbacks stored, one per hook that takes the event (in "
        "hook order); empty when none does.",
    )


class EventTypeSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The type's name (`order.paid`, `shop.order.created`).")
    description = serializers.CharField(
        help_text="From the `EVENT_TYPES` setting; empty when it does not declare the type."
    )
    sources = serializers.ListField(
        child=serializers.ChoiceField(choices=["declared", "subscribed", "model_signal"]),
        help_text="Why the type is known: `declared` in `EVENT_TYPES`, `subscribed` to by a "
        "hook's `event_types`, or sent by a `model_signal` of an enabled hook.",
    )


class ResendResultSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="How many callbacks were queued again.")


class SendRequestSerializer(RequestSerializer):
    hook_id = HookIdField(
        queryset=Hook.objects.all(),
        required=False,
        help_text="Only the callbacks of this hook.",
    )
    ids = serializers.ListField(
        child=id_field(),
        required=False,
        min_length=1,
        max_length=MAX_IDS,
        help_text="Only these callbacks; they are sent even if their retry time has not come.",
    )
    limit = WholeNumberField(
        required=False,
        min_value=1,
        help_text="Send at most this many callbacks (at most, and by default, `BATCH_SIZE`).",
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # The schema's maximum: the setting as it is now (check_send_limit refuses more).
        fields["limit"].max_value = int(hooks_settings.BATCH_SIZE)
        return fields

    def validate_limit(self, limit: int) -> int:
        with field_errors():
            return check_send_limit(limit)


class SendResultSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(
        choices=[
            ("sent", "One batch was sent by this request"),
            ("queued", "Handed to the workers"),
        ],
        help_text="`sent`: this request sent one batch itself (the counts say how it went). "
        "`queued`: `DISPATCH` is `celery` or `tasks` and the work was handed to the workers; "
        "nothing was sent by this request and the counts are 0.",
    )
    sent = serializers.IntegerField(help_text="Delivered (2xx).")
    retried = serializers.IntegerField(help_text="Failed and scheduled for another try.")
    failed = serializers.IntegerField(help_text="Failed for good (status `error`).")
    total = serializers.IntegerField(help_text="Tried in all.")
    duration = serializers.FloatField(help_text="Seconds the sending took.")
    rate = serializers.FloatField(help_text="Callbacks tried per second.")
    more = serializers.BooleanField(
        help_text="`sent` mode: the batch was full and callbacks of the request are still "
        "due; send again (or let a sender run). Always false when `queued`."
    )

    def to_representation(self, result: SendResult) -> dict[str, Any]:
        report = result.report
        return {
            "mode": result.mode,
            "sent": report.sent,
            "retried": report.retried,
            "failed": report.failed,
            "total": report.total,
            "duration": report.duration,
            "rate": report.rate,
            "more": result.more,
        }


class QueryIntegerField(serializers.IntegerField):
    """A whole number in a query string, in ASCII digits: DRF's would take "+1", " 1 ",
    "1.0" and an Arabic-Indic one as 1."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, str) and not ascii_digits(data, signed=True):
            self.fail("invalid")
        return super().to_internal_value(data)


class QuerySerializer(serializers.Serializer):
    """Query parameters: one given empty (``?hours=``) is a 400, as in the filters,
    not taken as left out (DRF's reading of an empty form value)."""

    def to_internal_value(self, data: Any) -> Any:
        blank = {
            name: [serializers.ErrorDetail(BLANK_MESSAGE, "blank")]
            for name in self.fields
            if name in data and data.get(name) == ""
        }
        if blank:
            raise serializers.ValidationError(blank)
        return super().to_internal_value(data)


class MonitorQuerySerializer(QuerySerializer):
    status = serializers.ChoiceField(
        choices=[(status.value, status.label) for status in MONITORED_STATUSES],
        help_text="The status to count; `sending` counts the stuck ones only, whose "
        "sender's lease ran out and which no sender has taken back yet.",
    )
    callbacks_limit = QueryIntegerField(
        min_value=1,
        max_value=MAX_ID,
        default=10,
        help_text="`exceeded` is true when at least this many callbacks have the status.",
    )
    minutes_ago = QueryIntegerField(
        min_value=0,
        max_value=MAX_MINUTES,
        required=False,
        help_text="Count only callbacks updated in the last this many minutes "
        "(the whole table when absent or 0). Not for `sending`: every stuck one counts, "
        "however long ago its lease ran out.",
    )


class MonitorResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=CallbackStatus.choices)
    count = serializers.IntegerField(help_text="Callbacks with that status in the window.")
    callbacks_limit = serializers.IntegerField()
    minutes_ago = serializers.IntegerField(
        allow_null=True, help_text="The window in minutes; null for the whole table."
    )
    exceeded = serializers.BooleanField(help_text="`count >= callbacks_limit`.")


class HealthQuerySerializer(QuerySerializer):
    window = serializers.ChoiceField(
        choices=list(WINDOWS),
        required=False,
        help_text="The window by name: the last hour, day, week or 30 days (default `24h`).",
    )
    hours = QueryIntegerField(
        min_value=1,
        max_value=MAX_WINDOW_HOURS,
        required=False,
        help_text="The window in hours, instead of `window`.",
    )

    def validate(self, data: dict[str, Any]) -> dict[str, int]:
        if "window" in data and "hours" in data:
            raise serializers.ValidationError("give window or hours, not both", code="invalid")
        return {"hours": data.get("hours") or WINDOWS[data.get("window", "24h")]}


class HourCountSerializer(serializers.Serializer):
    hour = serializers.DateTimeField(source="start", help_text="The start of the hour.")
    sent = serializers.IntegerField(help_text="Tries that succeeded in that hour.")
    failed = serializers.IntegerField(help_text="Tries that failed in that hour.")


class HookHealthSerializer(serializers.Serializer):
    hook_id = serializers.IntegerField(source="hook.pk")
    hours = serializers.IntegerField(help_text="The window in hours, the current hour included.")
    since = serializers.DateTimeField(help_text="The start of the window's first hour.")
    sent = serializers.IntegerField(help_text="Tries in the window that succeeded (a 2xx).")
    failed = serializers.IntegerField(
        help_text="Tries in the window that failed (an error, a timeout, a non-2xx answer)."
    )
    success_rate = serializers.FloatField(
        allow_null=True, help_text="`sent / (sent + failed)`, from 0 to 1; null without tries."
    )
    duration_p50_ms = serializers.FloatField(
        allow_null=True,
        help_text="The median duration of a try in the window, in milliseconds, to within "
        "its bucket of a 1-2-5 scale from 1 ms to 50 s (interpolated inside it); null "
        "without tries.",
    )
    duration_p95_ms = serializers.FloatField(
        allow_null=True, help_text="The 95th percentile, like `duration_p50_ms`."
    )
    last_success_at = serializers.DateTimeField(
        source="hook.last_success_at",
        allow_null=True,
        help_text="The last successful try (to within a second), whatever the window.",
    )
    last_failure_at = serializers.DateTimeField(
        source="hook.last_failure_at", allow_null=True, help_text="The last failed try."
    )
    last_failure_reason = serializers.CharField(
        source="hook.last_failure_reason",
        help_text="The error of the last failed try (e.g. `HTTP 500`, `read timeout (15 s)`).",
    )
    breaker = serializers.ChoiceField(
        choices=BREAKER_STATES,
        help_text="The circuit breaker: `closed` (requests go out), `open` (paused after "
        "`BREAKER_FAILURES` failed tries, until `paused_until`) or `half_open` (the pause "
        "has passed; the next due callback is the probe that decides).",
    )
    consecutive_failures = serializers.IntegerField(
        source="hook.consecutive_failures", help_text="Failed tries in a row."
    )
    paused_until = serializers.DateTimeField(
        source="hook.paused_until",
        allow_null=True,
        help_text="No callback of the hook is sent before this time.",
    )
    paused_reason = serializers.ChoiceField(
        choices=PAUSE_REASONS,
        help_text="Why the hook is paused now: `breaker`, `retry_after` (the receiver asked "
        "with `Retry-After`); empty when it is not.",
    )
    slow_since = serializers.DateTimeField(
        source="hook.slow_since",
        allow_null=True,
        help_text="Since when the hook's tries take at least the shorter of the connect and "
        "read timeouts (a receiver that hangs); null once a try is quick. A slow hook gets "
        "none of the transfers the senders keep for idle hooks.",
    )
    enabled = serializers.BooleanField(source="hook.enabled")
    disabled_reason = serializers.ChoiceField(
        source="hook.disabled_reason",
        choices=DisabledReason.choices,
        help_text="Why http_hooks disabled the hook by itself (`gone`, `failing`); empty "
        "otherwise.",
    )
    disabled_at = serializers.DateTimeField(source="hook.disabled_at", allow_null=True)
    hourly = HourCountSerializer(
        many=True, help_text="The hours of the window that had tries, oldest first."
    )


class DeleteOldSerializer(RequestSerializer):
    days = WholeNumberField(
        min_value=0,
        max_value=MAX_DAYS,
        help_text="Delete callbacks created more than this many days ago.",
    )
    include_undelivered = BooleanField(
        default=False,
        help_text="Delete old `waiting` and `sending` callbacks too (their events are lost), "
        "but not one a sender holds now (its lease running); without it they are kept.",
    )


class DeletedSerializer(serializers.Serializer):
    deleted = serializers.IntegerField(help_text="How many callbacks were deleted.")


# --- errors --------------------------------------------------------------------


class ErrorItemSerializer(serializers.Serializer):
    field = serializers.CharField(
        help_text="The input field at fault (`signals.0` for a list item); "
        "`non_field_errors` when no single field is."
    )
    code = serializers.CharField(help_text="A stable code, e.g. `invalid_headers`, `required`.")
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="A stable code: the first field error's code for a 400, otherwise e.g. "
        "`not_authenticated`, `permission_denied`, `not_found`."
    )
    detail = serializers.CharField(help_text="A human-readable summary.")
    errors = ErrorItemSerializer(many=True, help_text="Field-level errors (400 only).")
