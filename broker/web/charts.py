"""Server-rendered SVG charts for the KPI dashboard: no script, no chart library, no styles.

Each chart is an inline ``<svg role="img">`` with a title and a description, drawn with
presentation attributes only (the pages' Content-Security-Policy allows no inline
styles), and the page prints the same figures as a table beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["Bar", "bar_chart", "month_bars"]

_WIDTH = 640
_HEIGHT = 240
_LEFT = 48
_RIGHT = 16
_TOP = 16
_BOTTOM = 52
_INK = "#1b1b1b"
_GRID = "#b1b4b6"
_BAR = "#1d70b8"
_EMPTY = "#505a5f"


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: its label, an optional second label line (the year), its value or ``None``."""

    label: str
    value: float | None
    sublabel: str = ""


def _ticks(top: float) -> list[float]:
    step = 1.0
    for candidate in (1, 2, 5, 10, 20, 25, 50, 100):
        step = float(candidate)
        if top / step <= 5:
            break
    ticks = []
    value = 0.0
    while value <= top + 1e-9:
        ticks.append(value)
        value += step
    return ticks


def bar_chart(
    bars: Sequence[Bar],
    *,
    chart_id: str,
    title: str,
    description: str,
    unit: str = "",
    maximum: float | None = None,
    targets: Sequence[tuple[float, str]] = (),
) -> Markup:
    """An accessible bar chart as inline SVG markup.

    Args:
        bars: the bars, left to right.
        chart_id: a unique id for the title and description elements.
        title: what the chart shows (read by screen readers).
        description: the figures in words.
        unit: appended to axis labels (``%``).
        maximum: the top of the axis; the largest value (at least 1) when omitted.
        targets: horizontal target lines ``(value, label)``.
    """
    values = [b.value for b in bars if b.value is not None]
    top = maximum if maximum is not None else max([1.0, *values])
    plot_w = _WIDTH - _LEFT - _RIGHT
    plot_h = _HEIGHT - _TOP - _BOTTOM
    slot = plot_w / max(1, len(bars))

    def y(value: float) -> float:
        return _TOP + plot_h - (value / top) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {_HEIGHT}" '
        f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" class="chart" '
        f'id="{chart_id}">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
    ]
    for tick in _ticks(top):
        ty = y(tick)
        parts.append(
            f'<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" '
            f'stroke="{_GRID}" stroke-width="1"/>'
            f'<text x="{_LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end" font-size="13" '
            f'fill="{_INK}">{tick:g}{escape(unit)}</text>'
        )
    for n, (value, label) in enumerate(sorted(targets)):
        ty = y(value)
        # Close targets (90%, 95%) would overprint: the lower one is labelled below its line.
        label_y = ty + 14 if n == 0 and len(targets) > 1 else ty - 4
        parts.append(
            f'<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" '
            f'stroke="{_INK}" stroke-width="1.5" stroke-dasharray="6 4"/>'
            f'<text x="{_LEFT + 6}" y="{label_y:.1f}" font-size="13" '
            f'fill="{_INK}">{escape(label)}</text>'
        )
    for n, bar in enumerate(bars):
        x = _LEFT + n * slot + slot * 0.2
        width = slot * 0.6
        label_x = _LEFT + n * slot + slot / 2
        if bar.value is None:
            parts.append(
                f'<text x="{label_x:.1f}" y="{y(0) - 6:.1f}" text-anchor="middle" '
                f'font-size="13" fill="{_EMPTY}">–</text>'
            )
        else:
            top_y = y(bar.value)
            parts.append(
                f'<rect x="{x:.1f}" y="{top_y:.1f}" width="{width:.1f}" '
                f'height="{max(0.0, y(0) - top_y):.1f}" fill="{_BAR}"/>'
                f'<text x="{label_x:.1f}" y="{top_y - 4:.1f}" text-anchor="middle" '
                f'font-size="13" fill="{_INK}">{bar.value:g}{escape(unit)}</text>'
            )
        parts.append(
            f'<text x="{label_x:.1f}" y="{_HEIGHT - _BOTTOM + 18}" text-anchor="middle" '
            f'font-size="13" fill="{_INK}">{escape(bar.label)}</text>'
        )
        if bar.sublabel:
            parts.append(
                f'<text x="{label_x:.1f}" y="{_HEIGHT - _BOTTOM + 34}" text-anchor="middle" '
                f'font-size="13" fill="{_INK}">{escape(bar.sublabel)}</text>'
            )
    parts.append(
        f'<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{y(0):.1f}" y2="{y(0):.1f}" '
        f'stroke="{_INK}" stroke-width="1"/></svg>'
    )
    return Markup("".join(parts))  # noqa: S704 - every text in it is escaped above


def month_bars(months: Sequence[str], values: Sequence[float | None]) -> list[Bar]:
    """Bars for ``YYYY-MM`` months: the month's short name, the year under January and the first."""
    names = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    bars = []
    for n, (month, value) in enumerate(zip(months, values, strict=True)):
        year, number = month.split("-")
        sublabel = year if n == 0 or number == "01" else ""
        bars.append(Bar(names[int(number) - 1], value, sublabel))
    return bars
