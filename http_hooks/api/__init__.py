"""The Python API: ``from http_hooks.api import create_hook, create_signal``.

The REST API lives in the submodules of this package (``serializers``,
``views``, ...); this module only re-exports the service functions (and the health selector).
"""

from ..selectors import hooks_health
from ..services import (
    DeliveryReport,
    MonitorResult,
    create_hook,
    create_signal,
    delete_hook,
    delete_old_callbacks,
    delete_owner_data,
    delete_signal,
    enable_hook,
    generate_secret,
    monitor_callbacks,
    recover_hook,
    resend_callbacks,
    rotate_secret,
    send_callbacks,
    send_event,
    send_test_event,
    update_hook,
)

__all__ = [
    "DeliveryReport",
    "MonitorResult",
    "create_hook",
    "create_signal",
    "delete_hook",
    "delete_old_callbacks",
    "delete_owner_data",
    "delete_signal",
    "enable_hook",
    "generate_secret",
    "hooks_health",
    "monitor_callbacks",
    "recover_hook",
    "resend_callbacks",
    "rotate_secret",
    "send_callbacks",
    "send_event",
    "send_test_event",
    "update_hook",
]
