"""The demo's own models: what a project would put hooks on."""

import uuid

from django.conf import settings
from django.db import models
from django.utils.functional import cached_property


class Customer(models.Model):
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    is_vip = models.BooleanField(default=False)
    avatar = models.FileField(upload_to="avatars/", blank=True)
    # The user whose customer this is: the demo's tenants (OWNER_FIELDS in settings).
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="customers",
    )

    def __str__(self) -> str:
        return self.name

    def shout(self) -> str:
        """A method: templates may not call it."""
        return self.name.upper()


class Order(models.Model):
    name = models.CharField(max_length=200)
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL)
    total = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    reference = models.UUIDField(default=uuid.uuid4)
    placed_on = models.DateField(null=True, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    paid = models.BooleanField(default=False)
    notes = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        return f"#{self.pk} {self.name}"

    @cached_property
    def customer_name(self) -> str:
        return self.customer.name if self.customer else ""

    @property
    def discount_rate(self):
        """A property that fails for orders without a customer."""
        return 0.1 if self.customer.is_vip else 0.0


class Parcel(models.Model):
    """Shaped like the old package's example template (``instance.nested_attribute.name``)."""

    name = models.CharField(max_length=200)
    nested_attribute = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="parcels"
    )
    # A float, as a scale reports it: NaN or an infinity when it could not weigh.
    weight = models.FloatField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name
