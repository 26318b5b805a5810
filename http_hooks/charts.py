"""The admin overview's chart of a hook: tries per hour, succeeded under failed, as
the outline of an inline SVG drawn on the server (no script, nothing fetched)."""

from __future__ import annotations

from dataclasses import dataclass

from .selectors import HookHealth

# Of the drawing, shown 40 pixels high: whole units a tenth of a pixel high keep the
# path short and its numbers integers. Its width is one unit per hour of the window.
HEIGHT = 400
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
    sent, failed = [], []
    for hour in health.hourly:
        x = hour.hour - health.first_hour
        sent_height = hour.sent * HEIGHT // peak
        failed_height = (hour.sent + hour.failed) * HEIGHT // peak - sent_height
        if sent_height:
            sent.append(f"M{x} {HEIGHT}v-{sent_height}h{BAR_WIDTH}v{sent_height}z")
        if failed_height:
            base = HEIGHT - sent_height
            failed.append(f"M{x} {base}v-{failed_height}h{BAR_WIDTH}v{failed_height}z")
    return HourlyBars(
        width=health.hours,
        height=HEIGHT,
        peak=peak,
        sent_path="".join(sent),
        failed_path="".join(failed),
    )
