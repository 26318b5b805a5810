"""Headless Chromium for the tests that look at pages as a browser renders them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from .conftest import skip_or_fail


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    skip_or_fail("needs headless Chromium (apt-get install chromium)")
    raise AssertionError  # not reached


def _headless(tmp_path: Path, width: int, *options: str) -> list[str]:
    """Chromium's command line, headless and offline but for 127.0.0.1."""
    return [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-features=AutofillServerCommunication",
        f"--user-data-dir={tmp_path / 'profile'}",
        # No internet: every name but 127.0.0.1 fails to resolve.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--window-size={width},900",
        *options,
    ]


def render(url: str, tmp_path: Path, *, width: int = 1400) -> tuple[str, set[str]]:
    """The DOM Chromium built for ``url`` in a window ``width`` pixels wide, and the
    URLs of every request the page made."""
    net_log = tmp_path / "net-log.json"
    done = subprocess.run(
        _headless(
            tmp_path,
            width,
            f"--log-net-log={net_log}",
            # Script time runs ahead until the page is idle: Swagger UI and ReDoc
            # fetch the schema and render it before the DOM is dumped.
            "--virtual-time-budget=30000",
            "--dump-dom",
            url,
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    started = [
        event["params"]
        for event in log["events"]
        if event["type"] == start_job and "url" in event.get("params", {})
    ]
    # The page's own requests are those keyed to its top-level site; the browser's
    # background traffic (update and account checks) is keyed to no site or its own.
    requested = {
        params["url"]
        for params in started
        if str(params.get("network_isolation_key")).split()[0] == "http://127.0.0.1"
    }
    return done.stdout, requested


def screenshot(url: str, path: Path, *, width: int = 1400) -> bytes:
    """A PNG of ``url`` as Chromium paints it in a window ``width`` pixels wide, kept
    at ``path`` for a person to look at."""
    done = subprocess.run(
        _headless(path.parent, width, f"--screenshot={path}", url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return path.read_bytes()
