"""Inline SVG charts drawn on the server: no chart library, no script.

Every label goes through :func:`html.escape`; numbers are formatted by us. Colours come
from CSS classes (``series-0`` …) so the page's CSP needs no inline style.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 640
HEIGHT = 200
PAD_LEFT = 44
PAD_BOTTOM = 24
PAD_TOP = 10


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float]


def _scale(top: float) -> float:
    return top if top > 0 else 1.0


def _label(value: float, percent: bool) -> str:
    if percent:
        return f"{value * 100:.0f}%"
    return f"{value:,.0f}"


def _frame(labels: Sequence[str], top: float, percent: bool, title: str) -> list[str]:
    inner_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="none">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(5):
        y = PAD_TOP + inner_h - inner_h * i / 4
        parts.append(
            f'<line class="grid" x1="{PAD_LEFT}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{PAD_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_label(top * i / 4, percent))}</text>"
        )
    if labels:
        step = max(1, len(labels) // 6)
        for i in range(0, len(labels), step):
            x = _x(i, len(labels))
            parts.append(
                f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
                f"{escape(labels[i])}</text>"
            )
    return parts


def _x(i: int, count: int) -> float:
    inner_w = WIDTH - PAD_LEFT - 8
    if count <= 1:
        return PAD_LEFT + inner_w / 2
    return PAD_LEFT + inner_w * i / (count - 1)


def _y(value: float, top: float) -> float:
    inner_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    return PAD_TOP + inner_h - inner_h * (value / top)


def lines(labels: Sequence[str], series: Sequence[Series], *, percent: bool, title: str) -> str:
    """A line per series over ``labels`` (dates); rates when ``percent``."""
    top = _scale(max((v for s in series for v in s.values), default=0.0))
    if percent:
        top = min(1.0, max(top, 0.05))
    parts = _frame(labels, top, percent, title)
    for n, s in enumerate(series):
        points = " ".join(
            f"{_x(i, len(s.values)):.1f},{_y(v, top):.1f}" for i, v in enumerate(s.values)
        )
        parts.append(f'<polyline class="line series-{n % 6}" points="{points}"/>')
    parts.append("</svg>")
    return "".join(parts)


def bars(labels: Sequence[str], values: Sequence[float], *, title: str) -> str:
    """One bar per label (daily volume)."""
    # At least 4, so the five grid labels are distinct whole numbers.
    top = max(_scale(max(values, default=0.0)), 4.0)
    parts = _frame(labels, top, False, title)
    count = max(len(values), 1)
    inner_w = WIDTH - PAD_LEFT - 8
    width = max(1.0, inner_w / count * 0.7)
    base = _y(0, top)
    for i, value in enumerate(values):
        x = _x(i, count) - width / 2
        y = _y(value, top)
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
            f'height="{max(base - y, 0):.1f}"><title>{escape(labels[i])}: '
            f"{value:,.0f}</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)
