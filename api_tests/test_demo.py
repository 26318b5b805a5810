"""The demo project: its data loads, and a change in the admin reaches the receiver page."""

import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from http_hooks.api import send_callbacks
from http_hooks.models import Callback, Hook
from receiver.models import ReceivedRequest
from shop.models import Customer, Order, Parcel


@pytest.mark.django_db(transaction=True)
def test_demo_data_hooks_deliver_to_the_receiver_page(live_server, client):
    call_command("load_demo_data", "--base-url", live_server.url)
    call_command("load_demo_data", "--base-url", live_server.url)  # safe to run again
    assert Hook.objects.count() == 5
    assert client.login(username="admin", password="admin")
    Callback.objects.all().delete()  # the demo's own customers

    response = client.post(
        reverse("admin:shop_customer_add"), {"name": 'Zoë "Z" Quote', "email": "z@example.com"}
    )
    assert response.status_code == 302
    customer = Customer.objects.get(name='Zoë "Z" Quote')
    Order.objects.create(name="Tea", customer=customer, total="2.50")
    Parcel.objects.create(name="Box", nested_attribute=customer)

    report = send_callbacks()
    assert (report.sent, report.failed, report.retried) == (5, 0, 0)
    received = {r.inbox: r for r in ReceivedRequest.objects.all()}
    assert set(received) == {"customers", "customers-xml", "orders", "orders-serialized", "parcels"}
    assert received["customers"].signature == "valid"
    assert json.loads(received["customers"].body)["object_serialization"]["name"] == customer.name
    assert json.loads(received["orders"].body)["customer"] == customer.name
    assert received["orders"].headers["Test-Token"] == "12345"
    assert received["orders-serialized"].method == "PUT"
    assert json.loads(received["parcels"].body)["nested_attribute"] == customer.name
    assert "<name>Zoë &quot;Z&quot; Quote</name>" in received["customers-xml"].body

    page = client.get("/receiver/")
    assert page.status_code == 200
    assert "customers-xml" in page.content.decode()
