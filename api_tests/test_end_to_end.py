"""The old package's documented workflow, end to end over real HTTP."""

import json
from xml.etree import ElementTree

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import override_settings

from http_hooks.models import Callback
from shop.models import Order

pytestmark = pytest.mark.django_db


def test_headers_arrive_at_the_server(make_hook, receiver):
    make_hook(headers="test-token: 12345")
    Order.objects.create(name="x")
    call_command("send_callbacks", "--quiet")
    (request,) = receiver.wait_for(1)
    assert request.headers["test-token"] == "12345"


def test_default_payload_of_a_user(make_hook, receiver):
    make_hook(model="auth.user")
    user = User.objects.create_user("ada", email="ada@example.com", first_name="Ada")
    call_command("send_callbacks", "--quiet")
    (request,) = receiver.wait_for(1)
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    payload = request.json()
    assert payload["object_type"] == "auth.user"
    assert payload["object_id"] == user.pk
    assert payload["event_type"] == "created"
    fields = payload["object_serialization"]
    assert (fields["username"], fields["email"], fields["first_name"]) == (
        "ada",
        "ada@example.com",
        "Ada",
    )
    assert set(fields) >= {"id", "last_login", "is_superuser", "date_joined"}
    assert "password" not in fields  # HIDDEN_FIELDS


def test_json_template_is_delivered_as_valid_json(make_hook, receiver):
    make_hook(
        content_type="application/json",
        payload_template='{"id": {{instance.id}}, "event_type": "{{event_type}}"}',
    )
    order = Order.objects.create(name='Tea "for two"\n')
    call_command("send_callbacks", "--quiet")
    (request,) = receiver.wait_for(1)
    assert request.json() == {"id": order.pk, "event_type": "created"}


def test_xml_template_is_delivered_as_valid_xml(make_hook, receiver):
    make_hook(
        content_type="application/xml",
        payload_template="<?xml version='1.0' encoding='utf-8'?><id>{{instance.id}}</id>",
    )
    order = Order.objects.create(name="x")
    call_command("send_callbacks", "--quiet")
    (request,) = receiver.wait_for(1)
    assert request.headers["content-type"] == "application/xml"
    assert ElementTree.fromstring(request.body).text == str(order.pk)


def test_serializer_payload_is_delivered(make_hook, receiver):
    make_hook(serializer_class="shop.serializers.OrderSerializer", http_method="PATCH")
    order = Order.objects.create(name="Tea", total="2.50")
    call_command("send_callbacks", "--quiet")
    (request,) = receiver.wait_for(1)
    assert request.method == "PATCH"
    assert request.json()["id"] == order.pk
    assert request.json()["total"] == "2.50"


@override_settings(HTTP_HOOKS={"BLOCK_PRIVATE_NETWORKS": False, "MAX_ATTEMPTS": 1})
def test_send_callbacks_sets_status_details_and_update_time(make_hook, receiver):
    ok = make_hook()
    failing = make_hook(target_url=receiver.url("/broken"))
    receiver.respond("/broken", status=500)
    Order.objects.create(name="x")
    before = {c.hook_id: c.update_datetime for c in Callback.objects.all()}
    call_command("send_callbacks", "--quiet")
    sent = Callback.objects.get(hook=ok)
    error = Callback.objects.get(hook=failing)
    assert (sent.status, error.status) == ("sent", "error")
    assert "200" in sent.status_details
    assert "500" in error.status_details
    assert sent.update_datetime > before[ok.pk]
    assert error.update_datetime > before[failing.pk]


def test_send_callbacks_of_one_hook_or_some_callbacks(make_hook, receiver):
    first, second = make_hook(), make_hook(target_url=receiver.url("/second"))
    for name in ("a", "b", "c"):
        Order.objects.create(name=name)
    call_command("send_callbacks", "--hook_id", str(second.pk), "--quiet")
    assert set(Callback.objects.filter(status="sent").values_list("hook_id", flat=True)) == {
        second.pk
    }
    ids = list(Callback.objects.filter(hook=first).order_by("id").values_list("id", flat=True))
    call_command("send_callbacks", "--callbacks", str(ids[0]), str(ids[1]), "--quiet")
    call_command("send_callbacks", "--callback", str(ids[2]), "--quiet")
    assert not Callback.objects.exclude(status="sent").exists()
    bodies = [json.loads(r.body)["object_id"] for r in receiver.wait_for(6)]
    assert len(bodies) == 6
