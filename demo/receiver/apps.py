from django.apps import AppConfig


class ReceiverConfig(AppConfig):
    name = "receiver"
    default_auto_field = "django.db.models.BigAutoField"
