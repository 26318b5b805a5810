"""Outgoing webhooks for Django: hooks on model signals, stored callbacks, reliable delivery."""

from .context import disable_hooks

__all__ = ["disable_hooks"]
__version__ = "0.1.0"
