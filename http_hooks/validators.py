"""Validation shared by the Python API, the REST API and the admin."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.dispatch import Signal as DjangoSignal
from django.utils.module_loading import import_string

from .exceptions import (
    InvalidHookError,
    InvalidModelError,
    InvalidPayloadError,
    InvalidSignalError,
)
from .headers import keep_secret_values, parse_header_names, parse_headers
from .models import ContentTypeChoice, Hook, HttpMethod
from .network import check_target_url
from .payloads import XML_TYPES, import_serializer, validate_template
from .signing import SECRET_PREFIX

APP_LABEL = "http_hooks"
# The writable fields of a hook that ``validate_hook`` checks together: the one list
# the service layer, the REST serializer and the admin form are built from.
HOOK_FIELDS = (
    "name",
    "model",
    "signals",
    "target_url",
    "http_method",
    "headers",
    "secret_headers",
    "content_type",
    "payload_template",
    "serializer_class",
)


def import_signal(path: str) -> DjangoSignal:
    """Return the ``django.dispatch.Signal`` instance at dotted ``path``."""
    if not isinstance(path, str) or not path.strip() or "." not in path:
        raise InvalidSignalError(f"invalid signal {path!r}: give the full dotted import path")
    try:
        signal = import_string(path.strip())
    except ImportError as exc:
        raise InvalidSignalError(f"invalid signal {path!r}: cannot import it ({exc})") from exc
    if not isinstance(signal, DjangoSignal):
        raise InvalidSignalError(f"invalid signal {path!r}: it is not a django.dispatch.Signal")
    return signal


def validate_signal_paths(paths: Iterable[Any]) -> list[str]:
    cleaned = []
    for path in paths:
        path = getattr(path, "signal", path)
        import_signal(path)
        if path.strip() not in cleaned:
            cleaned.append(path.strip())
    if not cleaned:
        raise InvalidSignalError("a hook needs at least one signal")
    return cleaned


def resolve_model(value: Any) -> ContentType:
    """The ContentType of ``value``: ``'user'``, ``'auth.user'``, a model class or a ContentType."""
    if isinstance(value, ContentType):
        model = value.model_class()
    elif isinstance(value, type) and issubclass(value, models.Model):
        model = value
    elif isinstance(value, str) and value.strip():
        model = _model_from_name(value.strip())
    else:
        raise InvalidModelError(f"invalid model {value!r}: give 'app_label.model'")
    if model is None:
        raise InvalidModelError(f"invalid model {value!r}: it is not installed")
    if model._meta.app_label == APP_LABEL:
        raise InvalidModelError(
            f"hooks on {model._meta.label} are refused: http_hooks' own models would loop"
        )
    return ContentType.objects.get_for_model(model, for_concrete_model=False)


def _model_from_name(name: str) -> type[models.Model] | None:
    if "." in name:
        try:
            return apps.get_model(name)
        except (LookupError, ValueError) as exc:
            raise InvalidModelError(f"invalid model {name!r}: no such model") from exc
    matches = [m for m in apps.get_models() if m._meta.model_name == name.lower()]
    if not matches:
        raise InvalidModelError(f"invalid model {name!r}: no such model")
    if len(matches) > 1:
        labels = ", ".join(sorted(m._meta.label_lower for m in matches))
        raise InvalidModelError(f"model {name!r} is ambiguous: use one of {labels}")
    return matches[0]


def validate_secret(secret: str) -> str:
    """A Standard Webhooks secret: ``whsec_`` and base64 of 24 to 64 bytes."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise InvalidHookError("the secret must start with 'whsec_'", field="secret")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidHookError("the secret must be 'whsec_' + base64", field="secret") from exc
    if not 24 <= len(key) <= 64:
        raise InvalidHookError("the secret's key must be 24 to 64 bytes long", field="secret")
    return secret


def validate_hook(fields: Mapping[str, Any], *, current: Hook | None = None) -> dict[str, Any]:
    """Check every field of a hook (``HOOK_FIELDS``) together and return the cleaned values.

    ``model`` is a ContentType (see ``resolve_model``); other missing fields are
    empty. ``current`` is the hook being changed (None for a new one): a secret
    header left out of ``headers`` or given as the mask keeps its stored value
    (``headers.keep_secret_values``). Raises the ``HttpHooksError`` subclass for
    the first field that is wrong.
    """
    unknown = set(fields) - set(HOOK_FIELDS)
    if unknown:
        raise TypeError(f"unknown hook fields: {', '.join(sorted(unknown))}")
    cleaned = {field: fields.get(field) for field in HOOK_FIELDS}
    name = "" if cleaned["name"] is None else cleaned["name"]
    if not isinstance(name, str) or len(name) > 200:
        raise InvalidHookError("the name must be a string of at most 200 characters", field="name")
    cleaned["name"] = name
    cleaned["signals"] = validate_signal_paths(cleaned["signals"] or [])
    target_url = cleaned["target_url"]
    if not isinstance(target_url, str) or not target_url or len(target_url) > 2000:
        raise InvalidHookError("the target URL must be 1 to 2000 characters", field="target_url")
    check_target_url(target_url)
    http_method = cleaned["http_method"]
    method = (http_method or "").upper()
    if method not in HttpMethod.values:
        raise InvalidHookError(
            f"invalid HTTP method {http_method!r}: use one of {', '.join(HttpMethod.values)}",
            field="http_method",
        )
    cleaned["http_method"] = method
    content_type = cleaned["content_type"] = cleaned["content_type"] or ""
    if content_type not in ContentTypeChoice.values:
        allowed = ", ".join(v for v in ContentTypeChoice.values if v)
        raise InvalidHookError(
            f"invalid content type {content_type!r}: use one of {allowed} or none",
            field="content_type",
        )
    secret_headers = cleaned["secret_headers"] = parse_header_names(cleaned["secret_headers"])
    cleaned["headers"] = keep_secret_values(
        parse_headers(cleaned["headers"]),
        parse_headers(current.headers) if current else {},
        {*secret_headers, *(current.secret_headers if current else ())},
    )
    payload_template = cleaned["payload_template"] = cleaned["payload_template"] or ""
    serializer_class = cleaned["serializer_class"] = (cleaned["serializer_class"] or "").strip()
    if payload_template:
        validate_template(payload_template, content_type, cleaned["model"].model_class())
    elif content_type in XML_TYPES:
        raise InvalidPayloadError(
            f"invalid XML: without a payload template the payload is JSON, not {content_type}",
            field="content_type",
        )
    if serializer_class:
        import_serializer(serializer_class)
    return cleaned
