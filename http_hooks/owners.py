"""Tenants: who owns a hook, and which owners a request may act for.

An owner is an instance of ``OWNER_MODEL`` (the user model unless set); hooks and
callbacks store its primary key as text (``Hook.owner``, ``Callback.owner``; ""
for the project's own). ``OWNER_RESOLVER`` maps a request to the owners its user
acts for. A user who is staff or has ``http_hooks.view_all_hooks`` is not limited:
``owners_for`` gives None, "every owner". Everyone else gets a list of owner keys,
perhaps empty, and every read and write of the API is narrowed to it
(``scope``), so another owner's rows are "not found", never "forbidden".
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable
from contextlib import suppress
from typing import Any, TypeVar

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.signals import setting_changed
from django.db.models import Model, QuerySet
from django.db.models.signals import post_delete
from django.http import HttpRequest
from django.utils.module_loading import import_string

from .delivery.ids import listed
from .exceptions import InvalidFilterError, InvalidHookError
from .models import Hook
from .settings import hooks_settings
from .text import ascii_digits, is_listing, storable_text

# None: every owner (staff and ``view_all_hooks``); a collection: only these keys.
Owners = Collection[str] | None
Scoped = TypeVar("Scoped", bound=QuerySet)

VIEW_ALL_PERMISSION = "http_hooks.view_all_hooks"
MAX_OWNER_LENGTH = Hook._meta.get_field("owner").max_length


def owner_model() -> type[Model]:
    """The model of owners: ``OWNER_MODEL``, or the project's user model."""
    return apps.get_model(hooks_settings.OWNER_MODEL or settings.AUTH_USER_MODEL)


OWNER_DELETED = "http_hooks:owner_deleted"
_watched: list[type[Model]] = []


def watch_owner_deletions() -> None:
    """Delete an owner's hooks and callbacks with the owner (``services.delete_owner_data``,
    in the transaction of the owner's delete): connected to ``post_delete`` of the
    owner model and its proxies (of no other model: a receiver for every model would
    stop Django's fast deletes everywhere), and again when the settings change.

    Only deletes through the ORM are seen (a ``QuerySet.delete()`` and cascades
    included); rows deleted by SQL of one's own leave their hooks, as any receiver of
    ``post_delete`` would. An ``OWNER_MODEL`` that is not installed connects nothing
    (``http_hooks.E027`` says why); ``SHUT_DOWN`` neither."""
    setting_changed.connect(_on_setting_changed, dispatch_uid=OWNER_DELETED)
    while _watched:
        post_delete.disconnect(sender=_watched.pop(), dispatch_uid=OWNER_DELETED)
    if hooks_settings.SHUT_DOWN:
        return
    try:
        model = owner_model()
    except (LookupError, ValueError, TypeError, AttributeError):
        return
    # A proxy's delete sends post_delete with the proxy as its sender.
    for sender in apps.get_models():
        if sender._meta.concrete_model is model._meta.concrete_model:
            post_delete.connect(
                _owner_deleted, sender=sender, weak=False, dispatch_uid=OWNER_DELETED
            )
            _watched.append(sender)


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("HTTP_HOOKS", "AUTH_USER_MODEL") or setting.startswith("DJANGO_HTTP_HOOKS_"):
        watch_owner_deletions()


def _owner_deleted(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    from .services import delete_owner_data

    # InvalidHookError: a key no hook can have (too long for Hook.owner), nothing to do.
    with suppress(InvalidHookError):
        delete_owner_data(instance.pk)  # the key as stored: "1" for a pk given as "01"


def owner_resolver() -> Callable[[HttpRequest], Iterable[Any]]:
    return hooks_settings.derived(
        "owner_resolver", lambda: import_string(hooks_settings.OWNER_RESOLVER)
    )


def request_user(request: HttpRequest) -> list[Any]:
    """The default ``OWNER_RESOLVER``: the request's user is its only owner."""
    user = getattr(request, "user", None)
    return [user] if user is not None and user.is_authenticated else []


def sees_every_owner(user: Any) -> bool:
    return bool(
        user
        and user.is_authenticated
        and user.is_active
        and (user.is_staff or user.has_perm(VIEW_ALL_PERMISSION))
    )


def owners_for(request: HttpRequest) -> Owners:
    """The owner keys ``request`` may act for, or None for every owner (staff and
    users with ``http_hooks.view_all_hooks``). Anonymous users have none."""
    user = getattr(request, "user", None)
    if sees_every_owner(user):
        return None
    if user is None or not user.is_authenticated:
        return []
    keys = (_key_of(owner) for owner in owner_resolver()(request) or ())
    # "" is the project's: never an owner's, whatever a resolver returns.
    return sorted({key for key in keys if key})


def _key_of(owner: Any) -> str:
    return str(owner.pk if isinstance(owner, Model) else owner)


def scope(queryset: Scoped, owners: Owners) -> Scoped:
    """The rows of ``queryset`` (hooks or callbacks: both have ``owner``) that
    ``owners`` may see; all of them for None."""
    if owners is None:
        return queryset
    keys = owner_keys(owners)
    return queryset.filter(owner__in=keys) if keys else queryset.none()


def owner_keys(owners: Any) -> list[str]:
    """The keys of ``owners``, a collection of owner keys (text, or a whole number or
    UUID) or saved instances of ``OWNER_MODEL``; ``InvalidFilterError`` (field
    ``owners``) for anything else. A string was read as its characters ("12": owners
    "1" and "2", whose callbacks ``delete_old_callbacks`` then deleted), an instance
    as its text (``str(user)``: a username)."""
    message = "owners must be a list of owner keys or owners (None: every owner)"
    if not is_listing(owners):
        raise InvalidFilterError(message, field="owners")
    keys = []
    for owner in listed(owners, "owners", what="owners"):
        if isinstance(owner, Model):
            if not isinstance(owner, owner_model()) or owner.pk is None:
                raise InvalidFilterError(message, field="owners")
            owner = owner.pk
        if isinstance(owner, bool) or not isinstance(owner, str | int | uuid.UUID):
            raise InvalidFilterError(message, field="owners")
        if not storable_text(str(owner)):
            # No row's key: PostgreSQL refused the query's NUL with a driver's error.
            raise InvalidFilterError("an owner key holds a NUL or a lone surrogate", field="owners")
        keys.append(str(owner))
    return keys


def owner_key(owner: Any, *, must_exist: bool = True) -> str:
    """What ``Hook.owner`` stores for ``owner``: an instance of ``OWNER_MODEL`` or its
    primary key (as its type or as text) that names an existing row (any well-formed
    key when not ``must_exist``); "" for None or "" (the project's hook).
    ``InvalidHookError`` on ``owner`` otherwise."""
    if owner is None or owner == "":
        return ""
    model = owner_model()
    if isinstance(owner, Model):
        if not isinstance(owner, model) or owner.pk is None:
            raise InvalidHookError(
                f"the owner must be a saved {model._meta.label} (OWNER_MODEL)", field="owner"
            )
        owner = owner.pk
    if isinstance(owner, bool) or not isinstance(owner, str | int | uuid.UUID):
        raise InvalidHookError(
            f"the owner must be a {model._meta.label} or its primary key", field="owner"
        )
    if len(str(owner)) > MAX_OWNER_LENGTH or not storable_text(str(owner)):
        raise InvalidHookError(
            f"the owner's key must be at most {MAX_OWNER_LENGTH} characters, with no NUL or "
            "lone surrogate",
            field="owner",
        )
    try:
        pk = model._meta.pk.to_python(owner)
        # A whole number's text in ASCII digits: int() also reads " 10", "1_0", "+10" and
        # Arabic-Indic digits as 10, and delete_owner_data(" 10") deleted owner 10's hooks.
        found = not (
            isinstance(owner, str) and isinstance(pk, int) and not ascii_digits(owner, signed=True)
        ) and (not must_exist or model._default_manager.filter(pk=pk).exists())
    except (ValidationError, ValueError, TypeError, OverflowError):
        found = False
    if not found:
        raise InvalidHookError(f"no {model._meta.label} with key {str(owner)!r}", field="owner")
    return str(pk)


def owner_for_write(requested: Any, *, owners: Owners, current: str | None = None) -> str:
    """The owner a hook gets when a request with ``owners`` writes it.

    Every owner (None): ``requested`` as ``owner_key`` checks it; left out (``current``
    is the hook's owner, None for a new hook) it stays, or is "" on a new hook.
    Otherwise ``requested`` must be one of ``owners``; left out, a new hook takes the
    only one, and a request with several (or none) must name one."""
    if owners is None:
        if requested is None:
            return current or ""
        return owner_key(requested)
    if requested is None:
        if current is not None:
            return current
        if len(owners) == 1:
            return next(iter(owners))
        if not owners:
            raise InvalidHookError("you act for no owner", field="owner")
        raise InvalidHookError(
            f"you act for {len(owners)} owners: name the hook's owner", field="owner"
        )
    key = _key_of(requested)
    if key not in owners:
        raise InvalidHookError(f"{key[:255]!r} is not one of your owners", field="owner")
    return key
