"""Receiver credentials in hook headers are write-only: the REST API, the browsable
API, the admin and the attempt log never show them; writes that leave them out or
send the mask back keep them; the receiver gets the real value."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from http_hooks.api import send_callbacks, update_hook
from http_hooks.exceptions import InvalidHeadersError
from http_hooks.headers import MASKED, is_secret_header
from http_hooks.models import Attempt, Callback, Hook
from shop.models import Order

pytestmark = pytest.mark.django_db

# Each value is unique, so that finding it anywhere in an answer is a leak.
CREDENTIALS = {
    "Authorization": "Bearer value-of-authorization",
    "Cookie": "sid=value-of-cookie",
    "X-Upstream-Authorization": "Basic value-of-upstream-authorization",
    "X-Api-Key": "value-of-api-key",
    "X-Auth": "value-of-x-auth",
    "X-Credentials": "value-of-x-credentials",
    "X-Session": "value-of-x-session",
    "X-Hub-Sig": "value-of-x-hub-sig",
    "X-Access-Token": "value-of-access-token",
    "X-Client-Secret": "value-of-client-secret",
    "X-Password": "value-of-password",
    "X-Partner": "value-of-marked-header",  # secret because the hook says so
}
RECEIVER_COOKIE = "value-of-set-cookie"  # in the receiver's answer
PLAIN = {"X-Team": "shop", "X-Request-Source": "orders"}


# Proxy-Authorization is a credential too, though a hook may not set it (hop-by-hop).
@pytest.mark.parametrize("name", [*list(CREDENTIALS)[:-1], "Proxy-Authorization"])
def test_credential_names_are_secret(name):
    assert is_secret_header(name)
    assert is_secret_header(name.upper())


@pytest.mark.parametrize("name", [*PLAIN, "Content-Type", "Accept", "X-Partner"])
def test_other_names_are_not_secret_unless_marked(name):
    assert not is_secret_header(name)
    assert is_secret_header(name, marked=[name.lower()])


@pytest.fixture
def secret_hook(make_hook):
    return make_hook(
        name="partner",
        headers={**CREDENTIALS, **PLAIN},
        secret_headers=["x-PARTNER"],
        content_type="application/json",
    )


def user_with(*codenames: str, is_staff: bool = False) -> User:
    """A user with only these permissions (staff only to log in to the admin)."""
    user = User.objects.create_user(f"viewer{User.objects.count()}", is_staff=is_staff)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="http_hooks", codename__in=codenames)
    )
    return user


def assert_no_credential(text: str) -> None:
    leaked = [name for name, value in CREDENTIALS.items() if value in text]
    assert leaked == []
    assert RECEIVER_COOKIE not in text


def test_the_receiver_gets_the_real_values_and_the_attempt_log_masks_them(secret_hook, receiver):
    Order.objects.create(name="A")
    assert send_callbacks().sent == 1
    (request,) = receiver.wait_for(1)
    for name, value in {**CREDENTIALS, **PLAIN}.items():
        assert request.headers[name.lower()] == value
    logged = Attempt.objects.get().request_headers
    assert {name: logged[name] for name in CREDENTIALS} == dict.fromkeys(CREDENTIALS, MASKED)
    assert {name: logged[name] for name in PLAIN} == PLAIN
    assert Hook.objects.get().secret_headers == ["x-partner"]


def test_a_view_only_user_sees_no_credential_in_the_api(secret_hook, receiver):
    receiver.respond(headers={"Set-Cookie": "receiver=value-of-set-cookie"})
    Order.objects.create(name="A")
    send_callbacks()
    callback = Callback.objects.get()
    client = APIClient()
    # Every owner's viewer: a tenant sees only their own hooks (test_tenants.py).
    client.force_authenticate(user_with("view_hook", "view_callback", "view_all_hooks"))
    for path in [
        "/api/hooks/",
        f"/api/hooks/{secret_hook.pk}/",
        "/api/callbacks/",
        f"/api/callbacks/{callback.pk}/",
        f"/api/callbacks/{callback.pk}/attempts/",
    ]:
        for accept in ("application/json", "text/html"):
            response = client.get(path, HTTP_ACCEPT=accept)
            assert response.status_code == 200, path
            assert_no_credential(response.content.decode())
    hook = client.get(f"/api/hooks/{secret_hook.pk}/").json()
    assert hook["headers"] == {**dict.fromkeys(CREDENTIALS, MASKED), **PLAIN}
    assert hook["secret_headers"] == ["x-partner"]
    (attempt,) = client.get(f"/api/callbacks/{callback.pk}/attempts/").json()["results"]
    assert attempt["request_headers"]["X-Partner"] == MASKED
    assert attempt["response_headers"]["Set-Cookie"] == MASKED


def test_the_browsable_api_forms_of_an_editor_show_no_credential(secret_hook, staff_client):
    for path in ["/api/hooks/", f"/api/hooks/{secret_hook.pk}/"]:
        response = staff_client.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 200
        assert "<form" in response.content.decode()
        assert_no_credential(response.content.decode())


def test_the_test_event_answer_shows_no_credential(secret_hook, receiver, staff_client):
    response = staff_client.post(f"/api/hooks/{secret_hook.pk}/test/")
    assert response.status_code == 200
    assert_no_credential(response.content.decode())
    assert response.json()["request_headers"]["X-Hub-Sig"] == MASKED
    (request,) = receiver.wait_for(1)
    assert request.headers["x-hub-sig"] == CREDENTIALS["X-Hub-Sig"]


def test_attempts_logged_before_a_name_was_secret_are_masked_when_shown(
    secret_hook, receiver, staff_client, admin_client
):
    Order.objects.create(name="A")
    send_callbacks()
    # As an older version logged it, and a name the hook marked secret afterwards.
    Attempt.objects.update(
        request_headers={"X-Auth": CREDENTIALS["X-Auth"], "X-Partner": CREDENTIALS["X-Partner"]}
    )
    callback = Callback.objects.get()
    response = staff_client.get(f"/api/callbacks/{callback.pk}/attempts/")
    assert response.json()["results"][0]["request_headers"] == {
        "X-Auth": MASKED,
        "X-Partner": MASKED,
    }
    page = admin_client.get(reverse("admin:http_hooks_callback_change", args=[callback.pk]))
    assert page.status_code == 200
    assert_no_credential(page.content.decode())


@pytest.mark.parametrize("permissions", [("view_hook", "view_callback"), ()], ids=["view", "all"])
def test_the_admin_shows_no_credential(secret_hook, receiver, permissions):
    receiver.respond(headers={"Set-Cookie": "receiver=value-of-set-cookie"})
    Order.objects.create(name="A")
    send_callbacks()
    callback = Callback.objects.get()
    if permissions:
        user = user_with(*permissions, is_staff=True)
    else:
        user = User.objects.create_superuser("root")
    client = Client()
    client.force_login(user)
    for url in [
        reverse("admin:http_hooks_hook_changelist"),
        reverse("admin:http_hooks_hook_change", args=[secret_hook.pk]),
        reverse("admin:http_hooks_callback_changelist"),
        reverse("admin:http_hooks_callback_change", args=[callback.pk]),
    ]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_no_credential(response.content.decode())
    page = client.get(reverse("admin:http_hooks_hook_change", args=[secret_hook.pk]))
    assert f"X-Auth: {MASKED}" in page.content.decode()
    assert "X-Team: shop" in page.content.decode()


# --- writes keep what they cannot see --------------------------------------------


def put_back(client: APIClient, hook: Hook, **changes) -> dict:
    """PUT the hook as GET shows it (credentials masked), with ``changes``."""
    body = {**client.get(f"/api/hooks/{hook.pk}/").json(), **changes}
    response = client.put(f"/api/hooks/{hook.pk}/", body, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def test_put_with_the_masks_sent_back_keeps_the_credentials(secret_hook, staff_client, receiver):
    put_back(staff_client, secret_hook, name="renamed")
    secret_hook.refresh_from_db()
    assert secret_hook.headers == {**CREDENTIALS, **PLAIN}
    Order.objects.create(name="A")
    send_callbacks()
    (request,) = receiver.wait_for(1)
    assert request.headers["authorization"] == CREDENTIALS["Authorization"]
    assert request.headers["x-partner"] == CREDENTIALS["X-Partner"]


def test_put_and_patch_without_the_credentials_keep_them(secret_hook, staff_client):
    put_back(staff_client, secret_hook, headers={"X-Team": "billing"})
    secret_hook.refresh_from_db()
    assert secret_hook.headers == {**CREDENTIALS, "X-Team": "billing"}
    response = staff_client.patch(
        f"/api/hooks/{secret_hook.pk}/", {"headers": "X-Team: support"}, format="json"
    )
    assert response.status_code == 200
    assert_no_credential(response.content.decode())
    secret_hook.refresh_from_db()
    assert secret_hook.headers == {**CREDENTIALS, "X-Team": "support"}


def test_a_credential_is_replaced_by_a_new_value_and_removed_by_an_empty_one(
    secret_hook, staff_client
):
    response = staff_client.patch(
        f"/api/hooks/{secret_hook.pk}/",
        {"headers": {"authorization": "Bearer rotated", "Cookie": "", "X-Api-Key": MASKED}},
        format="json",
    )
    assert response.status_code == 200
    assert "rotated" not in response.content.decode()
    secret_hook.refresh_from_db()
    expected = {**CREDENTIALS, "authorization": "Bearer rotated"}
    del expected["Authorization"], expected["Cookie"]
    assert secret_hook.headers == expected


def test_a_callback_sends_the_hooks_credential_as_it_is_when_it_goes_out(secret_hook, receiver):
    receiver.respond(status=503)
    Order.objects.create(name="A")
    assert send_callbacks().retried == 1
    update_hook(secret_hook, headers={"Authorization": "Bearer rotated"})
    Callback.objects.update(next_attempt_at=Callback.objects.get().create_datetime)
    receiver.respond(status=200)
    assert send_callbacks().sent == 1
    assert receiver.wait_for(2)[1].headers["authorization"] == "Bearer rotated"


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": MASKED}, f"X-Other: {MASKED}"],
    ids=["mask-for-a-new-secret", "mask-for-a-new-plain-header"],
)
def test_the_mask_where_nothing_is_stored_is_refused(make_hook, staff_client, headers):
    hook = make_hook(headers=PLAIN)
    response = staff_client.patch(f"/api/hooks/{hook.pk}/", {"headers": headers}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "headers"
    assert "no stored value" in response.json()["errors"][0]["message"]
    hook.refresh_from_db()
    assert hook.headers == PLAIN
    with pytest.raises(InvalidHeadersError, match="no stored value"):
        make_hook(headers=headers)


def test_update_hook_keeps_credentials_left_out_or_masked(secret_hook):
    update_hook(secret_hook, headers={"X-Team": "billing", "X-Partner": MASKED})
    secret_hook.refresh_from_db()
    assert secret_hook.headers == {**CREDENTIALS, "X-Team": "billing"}


@pytest.mark.parametrize(
    "secret_headers",
    [["bad name"], [""], "x-ok, bad:name", 42, [["x-a"]]],
    ids=["space", "empty", "colon-in-text", "not-a-list", "not-a-string"],
)
def test_bad_secret_header_names_are_refused(make_hook, staff_client, secret_headers):
    with pytest.raises(InvalidHeadersError) as info:
        make_hook(secret_headers=secret_headers)
    assert info.value.field == "secret_headers"
    hook = make_hook()
    response = staff_client.patch(
        f"/api/hooks/{hook.pk}/", {"secret_headers": secret_headers}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"].startswith("secret_headers")


def test_a_long_secret_header_name_stored_before_the_limit_blocks_no_other_change(
    make_hook, staff_client
):
    """Names over ``MAX_HEADER_NAME_LENGTH`` were stored (the admin and the Python API
    took them) before the limit: a change of another field must not fail on one, as
    it did (a PATCH of ``enabled`` was a 400 ``invalid_headers``); a new one is refused."""
    from http_hooks.headers import MAX_HEADER_NAME_LENGTH

    hook = make_hook()
    stored = "X-" + "a" * MAX_HEADER_NAME_LENGTH
    Hook.objects.filter(pk=hook.pk).update(secret_headers=[stored])
    response = staff_client.patch(f"/api/hooks/{hook.pk}/", {"enabled": False}, format="json")
    assert response.status_code == 200, response.content
    assert Hook.objects.get(pk=hook.pk).enabled is False
    longer = {"secret_headers": [stored, "X-" + "b" * MAX_HEADER_NAME_LENGTH]}
    response = staff_client.patch(f"/api/hooks/{hook.pk}/", longer, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"].startswith("secret_headers")


def test_admin_form_keeps_credentials_masked_or_left_out(secret_hook, admin_client, receiver):
    from .test_admin import hook_form

    url = reverse("admin:http_hooks_hook_change", args=[secret_hook.pk])
    response = admin_client.post(
        url,
        hook_form(
            receiver,
            headers=f"Authorization: {MASKED}\nCookie:\nX-Team: billing",
            secret_headers="X-Partner",
        ),
    )
    assert response.status_code == 302, response.content.decode()
    secret_hook.refresh_from_db()
    expected = {**CREDENTIALS, "X-Team": "billing"}
    del expected["Cookie"]
    assert secret_hook.headers == expected
    assert secret_hook.secret_headers == ["x-partner"]


def test_admin_form_refuses_the_mask_where_nothing_is_stored(make_hook, admin_client, receiver):
    from .test_admin import hook_form

    hook = make_hook(headers=PLAIN)
    url = reverse("admin:http_hooks_hook_change", args=[hook.pk])
    response = admin_client.post(url, hook_form(receiver, headers=f"X-Api-Key: {MASKED}"))
    assert response.status_code == 200
    assert "no stored value" in response.content.decode()
    hook.refresh_from_db()
    assert hook.headers == PLAIN


def test_a_hook_whose_stored_headers_are_broken_fails_its_tries_alone(make_hook, receiver):
    broken = make_hook(name="broken")
    make_hook(name="fine")
    Order.objects.create(name="A")
    Hook.objects.filter(pk=broken.pk).update(headers="no colon here")  # around validation
    report = send_callbacks()
    assert (report.sent, report.retried) == (1, 1)
    attempt = Attempt.objects.get(callback__hook=broken)
    assert attempt.error.startswith("invalid request: invalid headers")


def test_stored_headers_with_a_name_twice_go_out_once(make_hook, receiver):
    """A hook stored before such names were refused sends the last of them, once."""
    hook = make_hook()
    Hook.objects.filter(pk=hook.pk).update(headers={"X-Team": "old", "x-team": "new"})
    Order.objects.create(name="A")
    assert send_callbacks().sent == 1
    (request,) = receiver.wait_for(1)
    assert [line for line in request.lines if line[0].lower() == "x-team"] == [("x-team", "new")]


def test_admin_form_refuses_a_header_name_given_twice(make_hook, admin_client, receiver):
    from .test_admin import hook_form

    hook = make_hook(headers=PLAIN)
    url = reverse("admin:http_hooks_hook_change", args=[hook.pk])
    response = admin_client.post(url, hook_form(receiver, headers="X-Team: a\nx-team: b"))
    assert response.status_code == 200
    assert "given twice" in response.content.decode()
    hook.refresh_from_db()
    assert hook.headers == PLAIN


@pytest.mark.parametrize("entry", ["patch", "update_hook"])
def test_unmarking_a_header_never_shows_its_stored_value(make_hook, staff_client, entry):
    """Taking a name out of secret_headers must not reveal the value nobody was shown:
    the write is refused unless the value is given again."""
    hook = make_hook(headers={"X-Custom": "S3CRET"}, secret_headers=["x-custom"])
    if entry == "patch":
        response = staff_client.patch(
            f"/api/hooks/{hook.pk}/", {"secret_headers": []}, format="json"
        )
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "secret_headers"
        assert "S3CRET" not in response.content.decode()
    else:
        with pytest.raises(InvalidHeadersError, match="no longer in secret_headers"):
            update_hook(hook, secret_headers=[])
    hook.refresh_from_db()
    assert hook.secret_headers == ["x-custom"]
    assert hook.headers == {"X-Custom": "S3CRET"}


def test_unmarking_a_header_with_its_value_given_again_stores_it_in_the_clear(
    make_hook, staff_client
):
    hook = make_hook(headers={"X-Custom": "S3CRET"}, secret_headers=["x-custom"])
    response = staff_client.patch(
        f"/api/hooks/{hook.pk}/",
        {"secret_headers": [], "headers": {"X-Custom": "public"}},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["headers"] == {"X-Custom": "public"}
