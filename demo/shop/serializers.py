from rest_framework import serializers

from .models import Order, Parcel


class OrderSerializer(serializers.ModelSerializer):
    customer_name = serializers.CharField(source="customer.name", default=None)

    class Meta:
        model = Order
        fields = ["id", "name", "total", "reference", "customer_name", "paid"]


class ParcelSerializer(serializers.ModelSerializer):
    class Meta:
        model = Parcel
        fields = ["id", "name", "weight"]
