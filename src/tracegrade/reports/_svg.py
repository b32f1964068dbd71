"""Inline SVG charts: a grader's pass rate per release with its interval as an error bar.

Plain SVG text, no script and no external reference, so an HTML report that embeds it opens
anywhere, offline. Every piece of text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from tracegrade.analysis import PassRate
from tracegrade.reports._format import release_name

WIDTH, HEIGHT = 520, 230
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 18, 58


def rate_chart(rates: Sequence[PassRate], *, title: str, highlight: dict[str, str] | None = None
               ) -> str:
    """A chart of ``rates`` (one grader, releases in order) as an SVG element.

    Args:
        rates: the grader's rate in each release, oldest first (releases without data skipped).
        title: the accessible title of the chart.
        highlight: release name → CSS colour for points to stand out (e.g. the candidate).
    """
    points = [r for r in rates if r.rate is not None]
    low, high = _y_range(points)
    step = (WIDTH - LEFT - RIGHT) / max(len(points), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">',
             f"<title>{escape(title)}</title>"]
    parts += _y_axis(low, high)
    for i, rate in enumerate(points):
        x = LEFT + step * (i + 0.5)
        colour = (highlight or {}).get(str(rate.release), "#3b6ea8")
        parts += _point(rate, x, low, high, colour)
        parts.append(_x_label(release_name(rate.release), x))
    if not points:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" '
                     'class="muted">no decided verdicts</text>')
    parts.append("</svg>")
    return "".join(parts)


def _y_range(points: Sequence[PassRate]) -> tuple[float, float]:
    lows = [p.low if p.low is not None else p.rate for p in points]
    bottom = min((v for v in lows if v is not None), default=0.0)
    # Zoom in on the data, in steps of 5 points, so a drop of a few points is visible.
    low = max(0.0, math.floor((bottom - 0.01) * 20) / 20)
    return low, 1.0


def _y(value: float, low: float, high: float) -> float:
    span = high - low or 1.0
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - (value - low) / span)


def _y_axis(low: float, high: float) -> list[str]:
    parts = [f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" class="axis"/>',
             f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" '
             f'y2="{HEIGHT - BOTTOM}" class="axis"/>']
    ticks = 5
    for k in range(ticks + 1):
        value = low + (high - low) * k / ticks
        y = _y(value, low, high)
        parts.append(f'<line x1="{LEFT - 4}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
                     'class="grid"/>')
        parts.append(f'<text x="{LEFT - 7}" y="{y + 4:.1f}" text-anchor="end" '
                     f'class="tick">{value * 100:.0f}%</text>')
    return parts


def _point(rate: PassRate, x: float, low: float, high: float, colour: str) -> list[str]:
    assert rate.rate is not None
    y = _y(rate.rate, low, high)
    tip = (f"{rate.release}: {rate.rate * 100:.1f}% pass, 95% CI "
           f"[{(rate.low or 0) * 100:.1f}, {(rate.high or 0) * 100:.1f}], n={rate.decided:,}, "
           f"errors={rate.errors:,}")
    parts = [f'<g class="point"><title>{escape(tip)}</title>']
    if rate.low is not None and rate.high is not None:
        top, bottom = _y(rate.high, low, high), _y(rate.low, low, high)
        parts += [
            f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" '
            f'class="bar" stroke="{colour}"/>',
            f'<line x1="{x - 6:.1f}" y1="{top:.1f}" x2="{x + 6:.1f}" y2="{top:.1f}" '
            f'class="bar" stroke="{colour}"/>',
            f'<line x1="{x - 6:.1f}" y1="{bottom:.1f}" x2="{x + 6:.1f}" y2="{bottom:.1f}" '
            f'class="bar" stroke="{colour}"/>',
        ]
    parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{colour}"/>')
    parts.append(f'<text x="{x + 9:.1f}" y="{y - 6:.1f}" class="value">'
                 f"{rate.rate * 100:.1f}%</text></g>")
    return parts


def _x_label(release: str, x: float) -> str:
    label = release if len(release) <= 16 else release[:15] + "…"
    y = HEIGHT - BOTTOM + 16
    return (f'<text x="{x:.1f}" y="{y}" text-anchor="end" class="tick" '
            f'transform="rotate(-30 {x:.1f} {y})">{escape(label)}</text>')
