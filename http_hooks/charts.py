"""The admin overview's chart of a hook: tries per hour, succeeded under failed, as
the outline of an inline SVG drawn on the server (no script, nothing fetched)."""

from __future__ import annotations

from dataclasses import dataclass

from .selectors import HookHealth

HEIGHT = 40  # of the drawing; its width is one unit per hour of the window
BAR_WIDTH = 0.8  # of an hour's unit: a gap tells the hours apart


@dataclass(frozen=True)
class HourlyBars:
    """One bar per hour: ``sent_path`` from the baseline up, ``failed_path`` on top of it,
    both SVG path data in a box ``width`` (hours) by ``HEIGHT``, the busiest hour full
    height (``peak`` tries)."""

    width: int
    height: int
    peak: int
    sent_path: str
    failed_path: str


def hourly_bars(health: HookHealth) -> HourlyBars:
    """The bars of ``health``'s hours, placed by their hour in its window."""
    peak = max((hour.sent + hour.failed for hour in health.hourly), default=0)
    start = health.since.timestamp()
    sent, failed = [], []
    for hour in health.hourly:
        x = int((hour.hour.timestamp() - start) // 3600)
        sent_height = round(HEIGHT * hour.sent / peak, 2)
        failed_height = round(HEIGHT * hour.failed / peak, 2)
        if sent_height:
            sent.append(f"M{x} {HEIGHT}v-{sent_height:g}h{BAR_WIDTH}v{sent_height:g}z")
        if failed_height:
            base = round(HEIGHT - sent_height, 2)
            failed.append(f"M{x} {base:g}v-{failed_height:g}h{BAR_WIDTH}v{failed_height:g}z")
    return HourlyBars(
        width=health.hours,
        height=HEIGHT,
        peak=peak,
        sent_path="".join(sent),
        failed_path="".join(failed),
    )
