"""HIDDEN_FIELDS: password hashes and session keys never leave in a payload.

A user who may only add hooks must not read them through a template (refused
when the hook is written and again when it renders) or the default payload.
"""

import datetime
import json
import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone
from rest_framework.test import APIClient

from http_hooks import disable_hooks
from http_hooks.api import create_hook
from http_hooks.checks import check_settings
from http_hooks.exceptions import InvalidPayloadError
from http_hooks.models import Callback, Hook
from http_hooks.payloads import build_payload, default_payload, validate_template
from shop.models import Customer, Order

POST_SAVE = "django.db.models.signals.post_save"
HASH = "pbkdf2_sha256$1000000$salt$c2VjcmV0aGFzaA=="


@pytest.fixture
def author_client(db):
    """A REST client of a user whose only permission is add_hook."""
    user = User.objects.create_user("author")
    user.user_permissions.add(Permission.objects.get(codename="add_hook"))
    client = APIClient()
    client.force_authenticate(user)
    return client


def hidden(name):
    return re.escape(f"{name} is a hidden field")


def render(template, instance, model=None):
    payload, _ = build_payload(
        template=template,
        serializer_class="",
        content_type="application/json",
        model=model or type(instance),
        context={"event_type": "created", "instance": instance},
    )
    return payload


@pytest.mark.parametrize(
    ("model", "template", "words"),
    [
        ("auth.user", '{"p": "{{instance.password}}"}', "auth.User.password is a hidden field"),
        (
            "admin.logentry",
            '{"p": "{{instance.user.password}}"}',
            "auth.User.password is a hidden field",
        ),
        (
            "sessions.session",
            '{"k": "{{instance.session_key}}"}',
            "sessions.Session.session_key is a hidden",
        ),
        (
            "sessions.session",
            '{"d": "{{instance.session_data}}"}',
            "sessions.Session.session_data is a hidden",
        ),
        ("sessions.session", '{"k": "{{instance.pk}}"}', "sessions.Session.pk is a hidden"),
    ],
)
def test_rest_create_with_a_hidden_field_in_the_template_is_a_400(
    author_client, model, template, words
):
    response = author_client.post(
        "/api/hooks/",
        {
            "name": "leak",
            "model": model,
            "signals": [POST_SAVE],
            "target_url": "http://127.0.0.1:9/hook",
            "content_type": "application/json",
            "payload_template": template,
        },
        format="json",
    )
    assert response.status_code == 400, response.content
    (error,) = response.json()["errors"]
    assert error["field"] == "payload_template"
    assert words in error["message"]
    assert not Hook.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "template"),
    [
        ("auth.user", "{{instance.password}}"),
        ("admin.logentry", "{{instance.user.password}}"),
        ("sessions.session", "{{instance.session_data}}"),
    ],
)
def test_python_create_hook_refuses_a_hidden_field(model, template):
    with pytest.raises(InvalidPayloadError, match="is a hidden field") as caught:
        create_hook(
            signals=[POST_SAVE],
            model=model,
            target_url="http://127.0.0.1:9/hook",
            content_type="text/plain",
            payload_template=template,
        )
    assert caught.value.field == "payload_template"
    assert not Hook.objects.exists()


def test_a_stored_template_naming_a_hidden_field_is_refused_at_render():
    """A template written around validation (an old row, a raw update) never renders one."""
    with disable_hooks():
        user = User(pk=3, username="ada", password=HASH)
        entry = LogEntry(pk=1, user=user, object_repr="x", action_flag=1)
        session = Session(session_key="k" * 32, session_data="secret-data")
    with pytest.raises(InvalidPayloadError, match=hidden("auth.User.password")):
        render('{"p": "{{instance.password}}"}', user)
    with pytest.raises(InvalidPayloadError, match=hidden("auth.User.password")):
        render('{"p": "{{instance.user.password}}"}', entry)
    with pytest.raises(InvalidPayloadError, match=hidden("sessions.Session.session_key")):
        render('{"k": "{{instance.session_key}}"}', session)
    # The object itself renders as its key: refused as well.
    with pytest.raises(InvalidPayloadError, match=hidden("sessions.Session.pk")):
        render('{"k": "{{instance}}"}', session, model=Session)
    with pytest.raises(InvalidPayloadError, match=hidden("sessions.Session.pk")):
        validate_template('{"k": "{{instance}}"}', "application/json", Session)
    assert json.loads(render('{"u": "{{instance.user.username}}"}', entry)) == {"u": "ada"}


@pytest.mark.django_db
def test_a_template_written_around_validation_is_an_error_callback_and_never_sent(
    make_hook, receiver
):
    hook = make_hook(model="auth.user", payload_template='{"u": "{{instance.username}}"}')
    Hook.objects.filter(pk=hook.pk).update(payload_template='{"p": "{{instance.password}}"}')
    user = User.objects.create_user("ada", password="pw")
    callback = Callback.objects.get()
    assert callback.status == "error"
    assert user.password not in json.dumps(
        [str(value) for value in Callback.objects.values().get().values()]
    )
    assert "hidden field" in callback.status_details


@pytest.mark.django_db
def test_the_default_payload_of_a_user_leaves_the_password_out(make_hook, receiver):
    make_hook(model="auth.user")
    user = User.objects.create_user("ada", password="correct horse")
    call_command("send_callbacks", "--quiet")
    (request,) = receiver.wait_for(1)
    payload = request.json()
    assert payload["object_id"] == user.pk
    assert "password" not in payload["object_serialization"]
    assert payload["object_serialization"]["username"] == "ada"
    assert user.password not in request.body.decode()


@pytest.mark.django_db
def test_the_default_payload_of_a_session_has_no_key_and_no_data(make_hook, receiver):
    make_hook(model="sessions.session")
    key = "s3cr3tk3y" * 4
    Session.objects.create(
        session_key=key,
        session_data="very-secret-data",
        expire_date=timezone.now() + datetime.timedelta(days=1),
    )
    callback = Callback.objects.get()
    assert callback.object_id == ""
    call_command("send_callbacks", "--quiet")
    (request,) = receiver.wait_for(1)
    payload = request.json()
    assert payload["object_type"] == "sessions.session"
    assert payload["object_id"] is None
    assert set(payload["object_serialization"]) == {"expire_date"}
    body = request.body.decode()
    assert key not in body and "very-secret-data" not in body


def test_the_setting_can_hide_more_fields_and_an_empty_list_hides_none(settings):
    settings.HTTP_HOOKS = {"HIDDEN_FIELDS": ["shop.Customer.email"]}
    with pytest.raises(InvalidPayloadError, match=hidden("shop.Customer.email")):
        validate_template('{"e": "{{instance.customer.email}}"}', "application/json", Order)
    with disable_hooks():
        customer = Customer(pk=1, name="Ada", email="ada@example.com")
    assert (
        "email"
        not in json.loads(default_payload(customer, "created", Customer))["object_serialization"]
    )
    # The list replaces the default: the password is shown again, as the project asked.
    validate_template('{"p": "{{instance.password}}"}', "application/json", User)

    settings.HTTP_HOOKS = {"HIDDEN_FIELDS": []}
    validate_template('{"p": "{{instance.password}}"}', "application/json", User)
    with disable_hooks():
        user = User(pk=2, username="ada", password=HASH)
    fields = json.loads(default_payload(user, "created", User))["object_serialization"]
    assert fields["password"] == HASH


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("auth.User.password", "Use a list"),
        (["auth.User"], 'is not "app_label.Model.field"'),
        ([5], 'is not "app_label.Model.field"'),
        (["auth.User.pass word"], 'is not "app_label.Model.field"'),
        (["auth.Usr.password"], "there is no model auth.usr"),
        (["nowhere.Model.field"], "there is no model nowhere.model"),
        (["auth.User.passwd"], "auth.User has no field 'passwd'"),
    ],
)
def test_a_bad_hidden_fields_entry_is_a_check_error(settings, value, words):
    settings.HTTP_HOOKS = {"HIDDEN_FIELDS": value}
    (error,) = check_settings()
    assert error.id == "http_hooks.E015"
    assert words in error.hint


def test_good_hidden_fields_entries_pass_the_check(settings):
    settings.HTTP_HOOKS = {
        "HIDDEN_FIELDS": ["auth.AbstractBaseUser.password", "auth.user.email", "shop.Order.name"]
    }
    assert check_settings() == []


@pytest.mark.django_db
def test_a_bad_hidden_fields_entry_stops_manage_py_check(settings):
    settings.HTTP_HOOKS = {"HIDDEN_FIELDS": ["auth.User.passwd"]}
    with pytest.raises(SystemCheckError, match=re.escape("http_hooks.E015")):
        call_command("check")
