"""OpenAPI details drf-spectacular cannot infer: the headers field, and the
requests this app sends (``webhooks``, so that receivers can generate types)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.contrib.django_filters import DjangoFilterExtension
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, OpenApiWebhook, extend_schema
from rest_framework import serializers

from ..models import HttpMethod
from .filters import NO_NUL, PatternValidator

HEADERS_OBJECT = {"type": "object", "additionalProperties": {"type": "string"}}


class HeadersFieldExtension(OpenApiSerializerFieldExtension):
    """Headers are an object in answers; requests may also give the legacy text form."""

    target_class = "http_hooks.api.serializers.HeadersField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        description = self.target.help_text
        if direction == "response":
            return {**HEADERS_OBJECT, "description": description}
        return {
            "oneOf": [HEADERS_OBJECT, {"type": "string", "maxLength": 16 * 1024}],
            "description": description,
        }


class RequestSerializerExtension(OpenApiSerializerExtension):
    """An action's body refuses a key it does not know (``RequestSerializer``): say so,
    so that clients and fuzzers do not send one (``additionalProperties: false``)."""

    target_class = "http_hooks.api.serializers.RequestSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        return {**schema, "additionalProperties": False}


SIGNING_DESCRIPTION = (
    "Every request carries the Standard Webhooks headers `webhook-id` (the callback's "
    "`event_id`, the same on every retry: drop duplicates by it), `webhook-timestamp` "
    "(unix seconds) and, when the hook has a secret, `webhook-signature` "
    "(`v1,<base64 HMAC-SHA256 of '{id}.{timestamp}.{body}'>`, several separated by spaces "
    "during a secret rotation), plus the hook's own headers. Answer with a 2xx status; "
    "anything else is retried on the hook's retry schedule. Redirects are not followed."
)


class DefaultPayloadSerializer(serializers.Serializer):
    object_type = serializers.CharField(help_text="The model, as `app_label.model`.")
    object_id = serializers.JSONField(
        help_text="The primary key of the object; `null` when it is a hidden field "
        "(`HIDDEN_FIELDS`, such as a session's key)."
    )
    event_type = serializers.CharField(
        help_text="`created` or `updated` for pre_save/post_save, otherwise the signal's path."
    )
    object_serialization = serializers.DictField(
        help_text="Every concrete field of the object but the hidden ones (`HIDDEN_FIELDS`: "
        "by default password hashes and session keys and data)."
    )


class ExplicitEventSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="The event's type (`order.paid`).")
    timestamp = serializers.DateTimeField(help_text="When the event was sent (`send_event`).")
    data = serializers.JSONField(help_text="The event's payload, as it was sent.")


class HookTestEventSerializer(serializers.Serializer):
    event_type = serializers.CharField(help_text="Always `http_hooks.test`.")
    hook_id = serializers.IntegerField(min_value=1)
    hook_name = serializers.CharField()
    timestamp = serializers.DateTimeField()


RECEIVER_RESPONSES = {
    200: OpenApiResponse(description="Received (any 2xx status)."),
}


class WebhookSchema(AutoSchema):
    """A webhook's body whatever its method: drf-spectacular documents a request body
    for POST, PUT and PATCH only, but a hook sending with GET or DELETE sends the same
    body, signed the same."""

    def _get_request_body(self, direction: str = "request") -> dict[str, Any] | None:
        method, self.method = self.method, "POST"
        try:
            return super()._get_request_body(direction)
        finally:
            self.method = method


def with_each_method(**kwargs: Any) -> dict[str, Any]:
    """A webhook under every method a hook may send with (its ``http_method``): the
    schema then says which methods a receiver must answer."""

    def decorate(view: type) -> type:
        view.schema = WebhookSchema()
        return extend_schema(**kwargs)(view)

    return {method.lower(): decorate for method in HttpMethod.values}


callback_webhook = OpenApiWebhook(
    name="callback",
    decorator=with_each_method(
        summary="A callback: the request sent when a hook fires",
        description="Sent with the hook's `http_method` (POST unless set otherwise) to its "
        "`target_url`. The body is the hook's rendered `payload_template`, its "
        "`serializer_class` output, or (shown here) the default payload; a GET or DELETE "
        f"carries it too. {SIGNING_DESCRIPTION}",
        request=DefaultPayloadSerializer,
        responses=RECEIVER_RESPONSES,
    ),
)

event_webhook = OpenApiWebhook(
    name="event",
    decorator=with_each_method(
        summary="An explicit event: the request sent for `send_event` or `POST /events/`",
        description="Sent with the hook's `http_method` (POST unless set otherwise) to the "
        "`target_url` of each hook whose `event_types` take the event. The body is the "
        "hook's rendered `payload_template` or (shown here) the Standard Webhooks shape "
        f"`{{type, timestamp, data}}`; a GET or DELETE carries it too. {SIGNING_DESCRIPTION}",
        request=ExplicitEventSerializer,
        responses=RECEIVER_RESPONSES,
    ),
)

test_event_webhook = OpenApiWebhook(
    name="test_event",
    decorator=with_each_method(
        summary="The test event of `POST /hooks/{id}/test/`",
        description="Sent once, with the hook's `http_method` (POST unless set otherwise) "
        "and its headers, to its `target_url`; the body is this JSON object "
        f"(`Content-Type: application/json`), whatever the method. {SIGNING_DESCRIPTION}",
        request=HookTestEventSerializer,
        responses=RECEIVER_RESPONSES,
    ),
)


class FilterBackendExtension(DjangoFilterExtension):
    """django-filter's parameters, with the rules of the text ones: ``minLength: 1``
    (an empty value is a 400, ``filters.FilterForm``, as for every other type), no
    NUL character, and the ``maxLength`` and ``pattern`` a filter checks its value
    against."""

    target_class = "http_hooks.api.filters.FilterBackend"
    priority = 1

    def resolve_filter_field(
        self, auto_schema: Any, model: Any, filterset_class: Any, field_name: str, filter_field: Any
    ) -> list[dict[str, Any]]:
        parameters = super().resolve_filter_field(
            auto_schema, model, filterset_class, field_name, filter_field
        )
        extra = filter_field.extra
        for parameter in parameters:
            schema = parameter["schema"]
            if schema.get("type") != "string" or {"enum", "format"} & set(schema):
                continue
            schema["minLength"] = 1
            schema["pattern"] = NO_NUL
            if extra.get("max_length"):
                schema["maxLength"] = extra["max_length"]
            for validator in extra.get("validators", ()):
                if isinstance(validator, PatternValidator):
                    schema["pattern"] = validator.pattern
        return parameters
