"""Demo data: an admin user, a few shop objects and hooks aimed at the receiver page."""

import re

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from http_hooks.api import create_hook, update_hook
from http_hooks.models import Callback, CallbackStatus, Hook
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
# A hook aimed at a receiver page of the demo, wherever the demo ran when it was made.
RECEIVER_URL = re.compile(r"^https?://[^/]+/receiver/inbox/")
CUSTOMER_XML = (
    "<?xml version='1.0' encoding='utf-8'?><customer id='{{instance.id}}'>"
    "<name>{{instance.name}}</name><event>{{event_type}}</event></customer>"
)


class Command(BaseCommand):
    help = (
        "Load the demo's user, customers and hooks (safe to run again: hooks aimed at the "
        "receiver page are pointed at --base-url)."
    )

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
        inbox = f"{base_url.rstrip('/')}/receiver/inbox"
        if Hook.objects.exists():
            moved = self._aim_at(f"{inbox}/")
            self.stdout.write(f"demo hooks already loaded; {moved} aimed at {inbox}/ now")
            return
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
            name="Parcels (the old package's example template, unsigned)",
            model="shop.parcel",
            signals=["django.db.models.signals.post_save"],
            target_url=f"{inbox}/parcels/",
            content_type="application/json",
            payload_template=PARCEL_TEMPLATE,
            secret="",  # new hooks are signed unless told not to
        )
        if not Customer.objects.exists():
            Customer.objects.create(name="Ada Lovelace", email="ada@example.com", is_vip=True)
            Customer.objects.create(name="Grace Hopper", email="grace@example.com")
        self.stdout.write(f"demo data loaded; log in as {username} / {password}")

    def _aim_at(self, inbox: str) -> int:
        """Point the hooks aimed at a receiver page at ``inbox`` (the demo may run on
        another port than when they were made), and the callbacks still waiting to go
        there; return how many hooks changed."""
        moved = 0
        for hook in Hook.objects.filter(target_url__contains="/receiver/inbox/"):
            target = RECEIVER_URL.sub(inbox, hook.target_url)
            if target != hook.target_url:
                update_hook(hook, target_url=target)
                moved += 1
        waiting = Callback.objects.filter(
            status=CallbackStatus.WAITING, target_url__contains="/receiver/inbox/"
        )
        for callback in waiting.only("target_url"):
            callback.target_url = RECEIVER_URL.sub(inbox, callback.target_url)
            callback.save(update_fields=["target_url"])
        return moved
