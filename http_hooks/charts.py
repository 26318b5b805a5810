"""The admin overview's chart of a hook: tries per hour, succeeded under failed, as
the outline of an inline SVG drawn on the server (no script, nothing fetched).

At most ``MAX_BARS`` bars: past that a bar would be narrower than a pixel of the
240-pixel chart and its failures would vanish, so a long window draws a bar per
few hours (30 days: one per 6 hours)."""

from __future__ import annotations

from dataclasses import dataclass

from .selectors import HookHealth

# Of the drawing, shown 40 pixels high: whole units a tenth of a pixel high keep the
# path short and its numbers integers. Its width is one unit per hour of the window.
HEIGHT = 400
BAR_WIDTH = 0.8  # of a bar's unit: a gap tells the bars apart
MAX_BARS = 120


@dataclass(frozen=True)
class HourlyBars:
    """One bar per ``hours_per_bar`` hours: ``sent_path`` from the baseline up,
    ``failed_path`` on top of it, both SVG path data in a box ``width`` (bars) by
    ``HEIGHT``, the busiest bar full height (``peak`` tries)."""

    width: int
    height: int
    hours_per_bar: int
    peak: int
    sent_path: str
    failed_path: str


def hourly_bars(health: HookHealth) -> HourlyBars:
    """The bars of ``health``'s hours, placed by their hour in its window."""
    per_bar = -(-health.hours // MAX_BARS)
    width = -(-health.hours // per_bar)
    sent_by_bar, failed_by_bar = [0] * width, [0] * width
    for hour in health.hourly:
        bar = (hour.hour - health.first_hour) // per_bar
        sent_by_bar[bar] += hour.sent
        failed_by_bar[bar] += hour.failed
    peak = max(s + f for s, f in zip(sent_by_bar, failed_by_bar, strict=True))
    sent, failed = [], []
    for x, (tries_sent, tries_failed) in enumerate(zip(sent_by_bar, failed_by_bar, strict=True)):
        if not tries_sent + tries_failed:
            continue
        sent_height = tries_sent * HEIGHT // peak
        failed_height = (tries_sent + tries_failed) * HEIGHT // peak - sent_height
        if sent_height:
            sent.append(f"M{x} {HEIGHT}v-{sent_height}h{BAR_WIDTH}v{sent_height}z")
        if failed_height:
            base = HEIGHT - sent_height
            failed.append(f"M{x} {base}v-{failed_height}h{BAR_WIDTH}v{failed_height}z")
    return HourlyBars(
        width=width,
        height=HEIGHT,
        hours_per_bar=per_bar,
        peak=peak,
        sent_path="".join(sent),
        failed_path="".join(failed),
    )
