import pytest
from shop.models import Order

from http_hooks.api import send_callbacks
from http_hooks.models import Callback

pytestmark = pytest.mark.django_db


def test_save_creates_callback_and_send_delivers_it(make_hook, receiver):
    make_hook(content_type="application/json")
    order = Order.objects.create(name="A")
    callback = Callback.objects.get()
    assert callback.status == "waiting"
    assert callback.event_type == "created"
    report = send_callbacks()
    assert report.sent == 1
    (request,) = receiver.wait_for(1)
    assert request.json()["object_id"] == order.pk
