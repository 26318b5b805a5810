"""A custom signal, as a project would declare one."""

from django.dispatch import Signal

order_shipped = Signal()
# The keyword arguments it sends, which hook templates may use ({{carrier}}).
order_shipped.providing_args = ["carrier"]
