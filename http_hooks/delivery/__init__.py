"""Sending callbacks: claim due ones, send them concurrently, record each outcome as it comes.

This package is the one send engine of the app: the ``send_callbacks`` command and
its ``--loop`` worker, the admin, the REST API and the Celery tasks all call
``send_callbacks()`` (or ``run_loop()``, which calls it over and over).

The pipeline (fair share between hooks, outcomes written in small windows) is
``sender``'s; claims and their lease are ``claims``'; a try's outcome and the
attempt log are ``outcomes``'; a window of them that one callback cannot stop is
``recording``'s; the request of a try is ``request``'; surviving a dropped
database connection is ``reconnect``'s.

Why no redirects: a redirect would send the payload, signed, to an address
nobody configured, around the network policy; a 3xx is a failed try that says
where it pointed. The HTTP side (pooling, timeouts, the policy at connect time,
the body limit) is ``transport.py``'s.
"""

from .claims import claim_batch, count_due
from .loop import run_loop
from .outcomes import DeliveryReport, retry_delay
from .request import MASKED, is_secret_header, logged_headers, request_for
from .sender import TEST_EVENT_TYPE, Sender, send_callbacks, send_test_event

__all__ = [
    "MASKED",
    "TEST_EVENT_TYPE",
    "DeliveryReport",
    "Sender",
    "claim_batch",
    "count_due",
    "is_secret_header",
    "logged_headers",
    "request_for",
    "retry_delay",
    "run_loop",
    "send_callbacks",
    "send_test_event",
]
