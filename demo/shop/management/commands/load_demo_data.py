"""Demo data: an admin user, a few shop objects and hooks aimed at the receiver page."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from http_hooks.api import create_hook
from http_hooks.models import Hook
from http_hooks.services import generate_secret
from shop.models import Customer

DEMO_USER = ("admin", "admin")

PARCEL_TEMPLATE = (
    '{"instance_id": {{instance.id}}, "event_type": "{{event_type}}", '
    '"instance_name": "{{instance.name}}", '
    '"nested_attribute": "{{instance.nested_attribute.name}}"}'
)
ORDER_TEMPLATE = (
    '{"order": {{instance.id}}, "name": "{{instance.name}}", "total": {{instance.total}}, '
    '"paid": {{instance.paid}}, "customer": {{instance.customer.name}}, '
    '"event": "{{event_type}}"}'
)
CUSTOMER_XML = (
    "<?xml version='1.0' encoding='utf-8'?><customer id='{{instance.id}}'>"
    "<name>{{instance.name}}</name><event>{{event_type}}</event></customer>"
)


class Command(BaseCommand):
    help = "Load the demo's user, customers and hooks (safe to run again)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="Where the demo server runs; hooks point at its /receiver/inbox/ pages.",
        )

    @transaction.atomic
    def handle(self, *args, base_url, **options):
        username, password = DEMO_USER
        user_model = get_user_model()
        if not user_model.objects.filter(username=username).exists():
            user_model.objects.create_superuser(username, "admin@example.com", password)
        if Hook.objects.exists():
            self.stdout.write("demo hooks already loaded")
            return
        inbox = f"{base_url.rstrip('/')}/receiver/inbox"
        save_and_delete = [
            "django.db.models.signals.post_save",
            "django.db.models.signals.post_delete",
        ]
        create_hook(
            name="Customers (default payload, signed)",
            model="shop.customer",
            signals=save_and_delete,
            target_url=f"{inbox}/customers/",
            headers="X-Demo: customers\nX-Source: http_hooks demo",
            secret=generate_secret(),
        )
        create_hook(
            name="Customers as XML",
            model="shop.customer",
            signals=["django.db.models.signals.post_save"],
            target_url=f"{inbox}/customers-xml/",
            content_type="application/xml",
            payload_template=CUSTOMER_XML,
        )
        create_hook(
            name="Orders (JSON template)",
            model="shop.order",
            signals=["django.db.models.signals.post_save"],
            target_url=f"{inbox}/orders/",
            content_type="application/json",
            payload_template=ORDER_TEMPLATE,
            headers={"test-token": "12345"},
        )
        create_hook(
            name="Orders (DRF serializer, PUT)",
            model="shop.order",
            signals=["django.db.models.signals.post_save"],
            target_url=f"{inbox}/orders-serialized/",
            http_method="PUT",
            serializer_class="shop.serializers.OrderSerializer",
        )
        create_hook(
            name="Parcels (the old package's example template)",
            model="shop.parcel",
            signals=["django.db.models.signals.post_save"],
            target_url=f"{inbox}/parcels/",
            content_type="application/json",
            payload_template=PARCEL_TEMPLATE,
        )
        if not Customer.objects.exists():
            Customer.objects.create(name="Ada Lovelace", email="ada@example.com", is_vip=True)
            Customer.objects.create(name="Grace Hopper", email="grace@example.com")
        self.stdout.write(f"demo data loaded; log in as {username} / {password}")
