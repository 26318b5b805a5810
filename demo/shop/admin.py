from django.contrib import admin

from .models import Customer, Order, Parcel


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["name", "email", "is_vip"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["name", "customer", "total", "paid"]


@admin.register(Parcel)
class ParcelAdmin(admin.ModelAdmin):
    list_display = ["name", "nested_attribute"]
