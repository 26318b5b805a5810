"""A custom signal, as a project would declare one."""

from django.dispatch import Signal

order_shipped = Signal()
