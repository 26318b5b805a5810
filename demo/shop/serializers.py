from rest_framework import serializers

from .models import Order


class OrderSerializer(serializers.ModelSerializer):
    customer_name = serializers.CharField(source="customer.name", default=None)

    class Meta:
        model = Order
        fields = ["id", "name", "total", "reference", "customer_name", "paid"]
