"""Signals http_hooks sends."""

from django.dispatch import Signal

# Sent after commit when http_hooks disables a hook by itself, with ``hook`` (the
# Hook) and ``reason`` (a ``DisabledReason``: "gone" or "failing").
hook_disabled = Signal()
