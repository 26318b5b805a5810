"""REST API permissions: anonymous users see nothing; by default staff users and
users with the model permission of an action may use it; the permission classes
are configurable with HTTP_HOOKS['PERMISSION_CLASSES']."""

from __future__ import annotations

import base64

import pytest
from django.contrib.auth.models import Permission, User
from django.test import override_settings
from rest_framework.test import APIClient

from http_hooks.models import Callback, Hook, Signal
from shop.models import Order

pytestmark = pytest.mark.django_db

# (method, path with {hook}/{callback}/{signal}, body, the permission it needs)
ENDPOINTS = [
    ("get", "/api/hooks/", None, "view_hook"),
    ("post", "/api/hooks/", {}, "add_hook"),
    ("get", "/api/hooks/{hook}/", None, "view_hook"),
    ("put", "/api/hooks/{hook}/", {}, "change_hook"),
    ("patch", "/api/hooks/{hook}/", {"name": "x"}, "change_hook"),
    ("delete", "/api/hooks/{hook}/", None, "delete_hook"),
    ("post", "/api/hooks/{hook}/test/", None, "change_hook"),
    ("post", "/api/hooks/{hook}/rotate-secret/", {}, "change_hook"),
    ("post", "/api/hooks/{hook}/recover/", {"since": "2026-01-01T00:00:00Z"}, "change_hook"),
    ("get", "/api/signals/", None, "view_signal"),
    ("post", "/api/signals/", {"signal": "shop.signals.order_shipped"}, "add_signal"),
    ("get", "/api/signals/{signal}/", None, "view_signal"),
    ("delete", "/api/signals/{signal}/", None, "delete_signal"),
    ("get", "/api/callbacks/", None, "view_callback"),
    ("get", "/api/callbacks/{callback}/", None, "view_callback"),
    ("delete", "/api/callbacks/{callback}/", None, "delete_callback"),
    ("post", "/api/callbacks/{callback}/resend/", None, "change_callback"),
    ("post", "/api/callbacks/resend/", {"ids": [1]}, "change_callback"),
    ("post", "/api/callbacks/send/", {"ids": [1]}, "change_callback"),
    ("get", "/api/callbacks/monitor/?status=error", None, "view_callback"),
    ("get", "/api/callbacks/{callback}/attempts/", None, "view_callback"),
    ("post", "/api/callbacks/delete-old/", {"days": 30}, "delete_callback"),
]
ENDPOINT_IDS = [f"{method} {path}" for method, path, _, _ in ENDPOINTS]
ALL_PERMISSIONS = sorted({perm for *_, perm in ENDPOINTS})


@pytest.fixture
def objects(make_hook):
    hook = make_hook()
    Order.objects.create(name="A")
    return {
        "hook": hook.pk,
        "callback": Callback.objects.get().pk,
        "signal": Signal.objects.create(signal="shop.signals.order_shipped").pk,
    }


def user_with(*codenames: str, **fields) -> User:
    user = User.objects.create_user(f"user{User.objects.count()}", **fields)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="http_hooks", codename__in=codenames)
    )
    return user


def call(user: User | None, method: str, path: str, body, objects) -> object:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return getattr(client, method)(path.format(**objects), body, format="json")


@pytest.mark.parametrize(("method", "path", "body", "perm"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_anonymous_users_get_nothing(objects, method, path, body, perm):
    response = call(None, method, path, body, objects)
    assert response.status_code in (401, 403)
    assert response.json() == {
        "code": "not_authenticated",
        "detail": "Authentication credentials were not provided.",
        "errors": [],
    }


@pytest.mark.parametrize(("method", "path", "body", "perm"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_users_without_permissions_are_refused(objects, method, path, body, perm):
    response = call(user_with(), method, path, body, objects)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


@pytest.mark.parametrize(("method", "path", "body", "perm"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_every_other_permission_is_not_enough(objects, method, path, body, perm):
    others = [other for other in ALL_PERMISSIONS if other != perm]
    response = call(user_with(*others), method, path, body, objects)
    assert response.status_code == 403


@pytest.mark.parametrize(("method", "path", "body", "perm"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_the_model_permission_of_the_action_is_enough(objects, method, path, body, perm):
    user = user_with(perm)
    # The user's own objects: another owner's would be a 404 (test_tenants.py).
    for model in (Hook, Callback):
        model.objects.update(owner=str(user.pk))
    response = call(user, method, path, body, objects)
    assert response.status_code not in (401, 403, 404), response.content


@pytest.mark.parametrize(("method", "path", "body", "perm"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_staff_users_may_do_everything(objects, method, path, body, perm):
    response = call(user_with(is_staff=True), method, path, body, objects)
    assert response.status_code not in (401, 403), response.content


def test_user_with_view_permission_reads_hooks_but_cannot_change_them(objects):
    user = user_with("view_hook")
    Hook.objects.filter(pk=objects["hook"]).update(owner=str(user.pk))
    assert call(user, "get", "/api/hooks/", None, objects).json()["count"] == 1
    response = call(user, "patch", "/api/hooks/{hook}/", {"name": "changed"}, objects)
    assert response.status_code == 403


def test_basic_authentication_with_a_password(objects):
    User.objects.create_user("ops", password="s3cret", is_staff=True)
    client = APIClient()
    credentials = base64.b64encode(b"ops:s3cret").decode()
    response = client.get("/api/hooks/", HTTP_AUTHORIZATION=f"Basic {credentials}")
    assert response.status_code == 200
    assert response.json()["count"] == 1


def test_wrong_password_is_refused(objects):
    User.objects.create_user("ops", password="s3cret", is_staff=True)
    credentials = base64.b64encode(b"ops:wrong").decode()
    response = APIClient().get("/api/hooks/", HTTP_AUTHORIZATION=f"Basic {credentials}")
    assert response.status_code in (401, 403)
    assert response.json()["code"] == "authentication_failed"
    assert "results" not in response.json()


def test_permission_classes_come_from_the_settings(objects):
    user = user_with()
    assert call(user, "get", "/api/hooks/", None, objects).status_code == 403
    with override_settings(
        HTTP_HOOKS={
            "BLOCK_PRIVATE_NETWORKS": False,
            "PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
        }
    ):
        assert call(user, "get", "/api/hooks/", None, objects).status_code == 200
        assert call(None, "get", "/api/hooks/", None, objects).status_code in (401, 403)
