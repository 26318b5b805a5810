"""``OWNER_FIELDS``: which owner an instance belongs to, for the hooks of tenants.

A hook with an owner fires only for the instances of that owner: the registry
reads the instance's owner once per signal, by the model's path in
``OWNER_FIELDS`` (``{"shop.Order": "customer__account"}``), and looks up that
owner's hooks alone. The path is followed in Python on the instance, as
conditions are (``conditions.instance_value``); its last step reads the foreign
key's column (``account_id``), so a path of one foreign key costs no query.

Fail closed: on a model without an entry, owned hooks never fire (the registry
leaves them out and logs it, ``check --database`` reports them, and a hook with
an owner cannot be written on such a model); an instance whose path stops at a
null foreign key belongs to nobody, and only the project's hooks fire for it.
"""

from __future__ import annotations

import logging
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from django.db import models

from .conditions import MISSING, instance_value
from .exceptions import InvalidHookError
from .owners import owner_model
from .settings import hooks_settings

logger = logging.getLogger(__name__)

# Attribute names from the instance to its owner's primary key.
OwnerPath = tuple[str, ...]
MAX_STEPS = 5


class OwnerPathError(ValueError):
    """An entry of ``OWNER_FIELDS`` that does not lead to an owner."""


def resolve_owner_path(model: type[models.Model], path: Any) -> OwnerPath:
    """The attribute names that read the owner's primary key from an instance of
    ``model``: each name a concrete field, every one but the last a forward foreign
    key or one-to-one, the last a foreign key to ``OWNER_MODEL`` (read as its column)
    or that model's primary key. Raises ``OwnerPathError``."""
    if not isinstance(path, str) or not path:
        raise OwnerPathError("the path must be a non-empty string such as 'customer__account'")
    names = path.split("__")
    if len(names) > MAX_STEPS:
        raise OwnerPathError(f"at most {MAX_STEPS} fields in a path")
    try:
        owner = owner_model()._meta.concrete_model
    except (LookupError, ValueError):
        raise OwnerPathError("OWNER_MODEL is not an installed model") from None
    attributes: list[str] = []
    current, previous = model, None
    for index, name in enumerate(names):
        try:
            field = current._meta.pk if name == "pk" else current._meta.get_field(name)
        except FieldDoesNotExist:
            raise OwnerPathError(f"{current._meta.label} has no field {name!r}") from None
        if not getattr(field, "concrete", False) or field.many_to_many:
            raise OwnerPathError(
                f"{current._meta.label}.{name} is not a concrete field (many-to-many and "
                "reverse relations are not followed)"
            )
        last = index == len(names) - 1
        if not last and not (field.many_to_one or field.one_to_one):
            raise OwnerPathError(f"{current._meta.label}.{name} is not a foreign key")
        if last and previous is not None and field is previous.target_field:
            # "account__id": the foreign key's own column holds it, no query.
            attributes[-1] = previous.attname
            field = previous
        elif last:
            attributes.append(field.attname)
        else:
            attributes.append(field.name)
            current, previous = field.related_model, field
    if not _holds_owner_key(field, owner):
        raise OwnerPathError(
            f"{path!r} ends at {field.model._meta.label}.{field.name}, not at a foreign key "
            f"to {owner._meta.label} (OWNER_MODEL) or its primary key"
        )
    return tuple(attributes)


def _holds_owner_key(field: models.Field, owner: type[models.Model]) -> bool:
    if field.primary_key and field.model._meta.concrete_model is owner:
        return True
    return bool(
        (field.many_to_one or field.one_to_one)
        and field.related_model._meta.concrete_model is owner
        and field.target_field.primary_key
    )


def parse_owner_fields(value: Any) -> tuple[dict[type[models.Model], OwnerPath], list[str]]:
    """The owner path of each model of ``OWNER_FIELDS``, and what is wrong with the
    entries left out (``checks`` reports them)."""
    if not isinstance(value, dict):
        return {}, ['Use a dict {"app_label.Model": "path__to__owner"}.']
    paths: dict[type[models.Model], OwnerPath] = {}
    problems = []
    for label, path in value.items():
        try:
            model = apps.get_model(label) if isinstance(label, str) else None
        except (LookupError, ValueError):
            model = None
        if model is None:
            problems.append(f"{label!r} is not an installed model (use 'app_label.Model').")
            continue
        try:
            paths[model] = resolve_owner_path(model, path)
        except OwnerPathError as exc:
            problems.append(f"{label}: {exc}.")
    return paths, problems


def owner_paths() -> dict[type[models.Model], OwnerPath]:
    """The valid entries of ``OWNER_FIELDS``, worked out once per settings."""
    return hooks_settings.derived(
        "owner_paths", lambda: parse_owner_fields(hooks_settings.OWNER_FIELDS)[0]
    )


def owner_of(instance: models.Model, path: OwnerPath) -> str | None:
    """The owner key (as ``Hook.owner`` stores it) of ``instance``; None when the path
    stops at a null foreign key or at a row that is gone."""
    try:
        value = instance_value(instance, path)
    except ObjectDoesNotExist:
        logger.warning(
            "the owner of %s %s is unknown: a row on its path is gone",
            instance._meta.label,
            instance.pk,
        )
        return None
    return None if value is MISSING or value is None else str(value)


def check_owned_model(owner: str, model: type[models.Model] | None) -> None:
    """``InvalidHookError`` (on ``model``) for a hook with an owner on a model without
    an ``OWNER_FIELDS`` entry: it could never tell that owner's instances apart."""
    if owner and model is not None and model not in owner_paths():
        raise InvalidHookError(
            f"{model._meta.label} has no entry in HTTP_HOOKS['OWNER_FIELDS']: a hook with "
            "an owner fires only on models whose instances name their owner",
            field="model",
        )
