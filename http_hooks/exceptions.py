"""The errors of http_hooks, all under one base class.

Each error names the field it concerns, so that the REST API turns it into a
field-level 400 and the admin into a form error without guessing.
"""

from __future__ import annotations

import signal

from django.core.exceptions import ValidationError

# The longest message an error keeps: each quotes what it refuses cut short
# (``imports.shown``), and this is for any that does not, so that a megabyte of input
# does not come back in a 400, a log line or a command's error line.
MAX_MESSAGE_LENGTH = 1000


def cut_short(message: str) -> str:
    """``message`` in ``MAX_MESSAGE_LENGTH`` characters at most."""
    if len(message) <= MAX_MESSAGE_LENGTH:
        return message
    return message[: MAX_MESSAGE_LENGTH - 3] + "..."


class HttpHooksError(Exception):
    """Base class of every error this app raises on purpose."""

    field: str | None = None
    code: str = "invalid"
    default_message = "Invalid input."

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.message = cut_short(message or self.default_message)
        if field is not None:
            self.field = field
        super().__init__(self.message)

    def as_django_error(self) -> ValidationError:
        """This error as a Django ``ValidationError`` (a form or filter error).

        The message goes in as a parameter, never as the format string: it
        quotes user input, and code that formats messages with their
        parameters (django-filter always does, ``message % (params or ())``)
        would read a ``%`` the user typed as a placeholder and fail.
        """
        return ValidationError("%(message)s", code=self.code, params={"message": self.message})


class InvalidSignalError(HttpHooksError):
    field = "signals"
    code = "invalid_signal"
    default_message = "Invalid signal."


class SignalInUseError(InvalidSignalError):
    """A signal that hooks listen to, which is not deleted: a conflict with the hooks
    (409 in the REST API), not bad input."""

    field = "signal"
    code = "signal_in_use"


class InvalidHeadersError(HttpHooksError):
    field = "headers"
    code = "invalid_headers"
    default_message = "Invalid headers."


class InvalidPayloadError(HttpHooksError):
    field = "payload_template"
    code = "invalid_payload"
    default_message = "Invalid payload."


class InvalidModelError(HttpHooksError):
    field = "model"
    code = "invalid_model"
    default_message = "Invalid model."


class InvalidTargetURLError(HttpHooksError):
    field = "target_url"
    code = "invalid_target_url"
    default_message = "Invalid target URL."


class BlockedNetworkError(InvalidTargetURLError):
    code = "blocked_network"
    default_message = "The target address is not allowed by the network policy."


class InvalidHookError(HttpHooksError):
    """Any other field of a hook (name, http_method, content_type, ...)."""

    code = "invalid_hook"


class InvalidEventError(HttpHooksError):
    """An explicit event that cannot be sent: its type, payload, key or owner."""

    field = "event_type"
    code = "invalid_event"
    default_message = "Invalid event."


class InvalidFilterError(HttpHooksError):
    """A bad argument to a service call (unknown status, negative days, ...)."""

    code = "invalid_argument"


class TooManyCallbacksError(HttpHooksError):
    """A bulk operation over more callbacks than its limit, not confirmed."""

    field = "confirm"
    code = "too_many_callbacks"


class HookChangedHandsError(HttpHooksError):
    """The hook was given to another owner (or deleted) after the caller read it: what
    the caller asked of it, on the strength of an owner it no longer has, is not done."""

    code = "hook_changed_hands"
    default_message = "The hook changed hands or was deleted meanwhile; nothing was done."


class TransportError(HttpHooksError):
    """The HTTP engine itself failed (libcurl's multi interface), whatever the input.

    The outcomes already known are written and the claimed callbacks not yet
    started given back; those in flight stay claimed until their lease runs out
    and are then sent again. The ``--loop`` worker starts a new transport and
    carries on.
    """

    code = "transport_error"
    default_message = "The HTTP transport failed."


class DispatchError(HttpHooksError):
    """Callbacks could not be handed to the workers of ``DISPATCH`` (an engine that is
    not installed, a backend that refuses the task). Never reaches the user's save:
    ``dispatch`` logs it, and the periodic send of due callbacks sends them."""

    code = "dispatch_error"
    default_message = "The callbacks could not be queued."


class Terminated(SystemExit):
    """SIGTERM (a service manager stopping the process, ``kill``) in a command that
    does not stop on it by itself: raised where the command is, as SIGINT raises
    ``KeyboardInterrupt``, and for the same reason not an ``Exception``, which code
    that carries on after a failure would catch. The transaction it interrupts is
    rolled back; what was committed stays. A ``SystemExit`` (exit status 143, 128 +
    SIGTERM's number): psycopg cancels the query it waits on for one, where the server
    went on running it, and held its locks, after the process was gone; and one raised
    again while the command unwinds (a second SIGTERM) still ends the process with that
    status, not a traceback."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)
