"""Prometheus metrics, when prometheus_client is installed (the ``metrics`` extra).

This module imports nothing of prometheus_client, so that the app works without
it: ``loaded()`` imports ``http_hooks.metrics.prometheus`` (which does) the first
time it is asked, when ``METRICS`` is on and the package is there, and registers
the metrics in ``METRICS_REGISTRY``. The app asks at startup (``AppConfig.ready``)
so that a registry's own endpoint (django-prometheus's ``/metrics``) shows them
from the start, and the sender asks for every window of outcomes it records.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from ..settings import hooks_settings

if TYPE_CHECKING:
    from ..models import Callback
    from ..transport import Outcome

logger = logging.getLogger(__name__)


def loaded() -> ModuleType | None:
    """``http_hooks.metrics.prometheus``, its metrics registered; None when the
    metrics are off or prometheus_client is not installed."""
    return hooks_settings.derived("metrics", _load)


def _load() -> ModuleType | None:
    if not hooks_settings.METRICS:
        return None
    try:
        from . import prometheus
    except ModuleNotFoundError as exc:
        if exc.name == "prometheus_client":
            return None
        raise
    try:
        prometheus.register(hooks_settings.METRICS_REGISTRY)
    except (ImportError, AttributeError) as exc:
        # At startup, before the system checks could say so (http_hooks.E017).
        logger.warning(
            "http_hooks metrics not registered in METRICS_REGISTRY %r: %s",
            hooks_settings.METRICS_REGISTRY,
            exc,
        )
    return prometheus


def record_attempts(
    batch: Sequence[Callback], outcomes: Sequence[Outcome], recorded: Collection[int]
) -> None:
    """Count the tries of ``batch`` whose outcomes were recorded (their ids in
    ``recorded``), after ``outcomes.apply_outcome`` set the callbacks' new state."""
    prometheus = loaded()
    if prometheus is not None:
        prometheus.record_attempts(batch, outcomes, recorded)
