"""Publishing without waiting for the broker (``http_hooks.publishing``): a publish that
fails or hangs pauses publishing for ``SWEEP_SECONDS``, and publishing resumes after.
The broker itself is in test_celery.py; here the publishes are plain functions."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from django.conf import settings
from django.test import override_settings

from http_hooks.publishing import HUNG_SECONDS, Publisher

from .waiting import wait_until


@pytest.fixture
def short_pause():
    with override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, "SWEEP_SECONDS": 0.5}):
        yield 0.5


def refused() -> None:
    raise ConnectionRefusedError("Connection refused")


def test_a_failed_publish_pauses_publishing_then_it_resumes(short_pause, caplog):
    publisher = Publisher()
    published = []
    with caplog.at_level(logging.WARNING, logger="http_hooks.publishing"):
        publisher.submit(refused, "callbacks 1..1 (1)")
        assert publisher.flush(5)
        publisher.submit(lambda: published.append("paused"), "callbacks 2..2 (1)")
        assert publisher.flush(5)
    assert published == []
    (record,) = caplog.records
    assert record.getMessage().startswith(
        "could not queue callbacks 1..1 (1): ConnectionRefusedError('Connection refused'); "
        "publishing pauses for 0.5 s"
    )
    assert record.exc_info is None

    def resumed() -> bool:
        publisher.submit(lambda: published.append("resumed"), "callbacks 3..3 (1)")
        return publisher.flush(5) and bool(published)

    wait_until(resumed, timeout=10)
    assert published == ["resumed"]


def test_a_hung_publish_never_holds_the_caller(short_pause, caplog):
    publisher = Publisher()
    broker_answers = threading.Event()
    published = []
    started = time.perf_counter()
    publisher.submit(broker_answers.wait, "callbacks 1..1 (1)")
    publisher.submit(lambda: published.append("behind"), "callbacks 2..2 (1)")
    assert time.perf_counter() - started < 0.1
    wait_until(lambda: publisher.busy_since is not None, timeout=5)
    wait_until(lambda: time.monotonic() - publisher.busy_since > HUNG_SECONDS, timeout=10)
    with caplog.at_level(logging.WARNING, logger="http_hooks.publishing"):
        publisher.submit(lambda: published.append("dropped"), "callbacks 3..3 (1)")
    assert "a publish has waited 2 s for the broker" in caplog.text
    assert "1 more publishes dropped" in caplog.text

    def resumed() -> bool:
        publisher.submit(lambda: published.append("resumed"), "callbacks 4..4 (1)")
        return publisher.flush(5) and bool(published)

    wait_until(resumed, timeout=10)
    assert published == ["resumed"]
    broker_answers.set()


def test_a_publish_given_up_as_hung_that_fails_later_pauses_nothing(short_pause, caplog):
    """A hung publish ends at last, by its socket timeout, after the broker is back and a
    newer thread publishes: its failure is logged, and no longer pauses publishing
    (it once dropped what came for another SWEEP_SECONDS)."""
    publisher = Publisher()
    published = []
    times_out = threading.Event()

    def hung_then_timed_out() -> None:
        times_out.wait(30)
        raise TimeoutError("Timeout reading from socket")

    publisher.submit(hung_then_timed_out, "callbacks 1..1 (1)")
    wait_until(lambda: publisher.busy_since is not None, timeout=5)
    wait_until(lambda: time.monotonic() - publisher.busy_since > HUNG_SECONDS, timeout=10)
    publisher.submit(lambda: published.append("dropped"), "callbacks 2..2 (1)")  # gives it up

    def resumed() -> bool:
        publisher.submit(lambda: published.append("resumed"), "callbacks 3..3 (1)")
        return publisher.flush(5) and bool(published)

    wait_until(resumed, timeout=10)
    caplog.clear()  # the pause of the hang itself is logged above
    with caplog.at_level(logging.WARNING, logger="http_hooks.publishing"):
        times_out.set()
        wait_until(lambda: "Timeout reading from socket" in caplog.text, timeout=10)
    publisher.submit(lambda: published.append("later"), "callbacks 4..4 (1)")
    assert publisher.flush(5)
    assert published[-1] == "later"
    assert "publishing pauses" not in caplog.text
