"""Inline SVG charts for the HTML report (pure: data in, SVG text out).

No JavaScript library and nothing fetched at view time: every chart is a
small, self-contained ``<svg>`` with its axes, lines or bars, and a legend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from squall.report.printable import html_text as escape

#: Line colours, in legend order.
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")

WIDTH, HEIGHT = 640, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 28, 36


@dataclass(frozen=True)
class Line:
    label: str
    points: Sequence[tuple[float, float]]


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.3g}"
    return f"{value:.2g}"


def _empty(title: str, why: str) -> str:
    return (
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} 60" width="{WIDTH}" height="60">'
        f'<text x="8" y="20" class="title">{escape(title)}</text>'
        f'<text x="8" y="44" class="muted">{escape(why)}</text></svg>'
    )


def line_chart(title: str, lines: Sequence[Line], *, x_label: str, y_label: str) -> str:
    """Lines on shared axes; an explanatory placeholder when there is nothing to draw.
    A point without a finite x and y (null, NaN, ±inf) is left out."""
    kept = (
        Line(line.label, [(x, y) for x, y in line.points if _finite(x) and _finite(y)])
        for line in lines
    )
    drawn = [line for line in kept if line.points]
    if not drawn:
        return _empty(title, "no samples recorded")
    xs = [x for line in drawn for x, _ in line.points]
    ys = [y for line in drawn for _, y in line.points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = 0.0, max(ys) * 1.1 or 1.0
    if x1 == x0:
        x1 = x0 + 1
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM

    def sx(x: float) -> float:
        return _LEFT + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return _TOP + plot_h - (y - y0) / (y1 - y0) * plot_h

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}" aria-label="{escape(title)}">',
        f'<text x="{_LEFT}" y="16" class="title">{escape(title)}</text>',
    ]
    for tick in _ticks(y0, y1):
        y = sy(tick)
        parts.append(
            f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
            f"{_fmt(tick)}</text>"
        )
    for tick in _ticks(x0, x1, 6):
        x = sx(tick)
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - _BOTTOM + 16}" class="tick" '
            f'text-anchor="middle">{_fmt(tick)}</text>'
        )
    parts.append(
        f'<text x="{WIDTH - _RIGHT}" y="{HEIGHT - 4}" class="tick" text-anchor="end">'
        f"{escape(x_label)}</text>"
        f'<text x="12" y="{_TOP + plot_h / 2:.1f}" class="tick" text-anchor="middle" '
        f'transform="rotate(-90 12 {_TOP + plot_h / 2:.1f})">{escape(y_label)}</text>'
    )
    for index, line in enumerate(drawn):
        colour = PALETTE[index % len(PALETTE)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in line.points)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}">'
            f"<title>{escape(line.label)}</title></polyline>"
        )
        lx = _LEFT + 8 + index * 150
        parts.append(
            f'<rect x="{lx}" y="{_TOP - 2}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="{_TOP + 7}" class="tick">{escape(line.label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(title: str, bars: Sequence[tuple[str, float]], *, y_label: str) -> str:
    """Labelled vertical bars (e.g. a latency histogram's share of requests per bucket); a
    value that is not finite counts as none."""
    bars = [(label, value if _finite(value) else 0.0) for label, value in bars]
    if not bars or max(v for _, v in bars) <= 0:
        return _empty(title, "no observations recorded")
    top = max(v for _, v in bars) * 1.1
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    width = plot_w / len(bars)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}" aria-label="{escape(title)}">',
        f'<text x="{_LEFT}" y="16" class="title">{escape(title)}</text>',
    ]
    for tick in _ticks(0.0, top):
        y = _TOP + plot_h - tick / top * plot_h
        parts.append(
            f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
            f"{_fmt(tick)}</text>"
        )
    step = max(1, math.ceil(len(bars) / 8))
    for index, (label, value) in enumerate(bars):
        h = value / top * plot_h
        x = _LEFT + index * width
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{_TOP + plot_h - h:.1f}" width="{max(1.0, width - 2):.1f}" '
            f'height="{h:.1f}" fill="{PALETTE[0]}"><title>{escape(label)}: {_fmt(value)}'
            "</title></rect>"
        )
        if index % step == 0:
            parts.append(
                f'<text x="{x + width / 2:.1f}" y="{HEIGHT - _BOTTOM + 16}" class="tick" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append(
        f'<text x="12" y="{_TOP + plot_h / 2:.1f}" class="tick" text-anchor="middle" '
        f'transform="rotate(-90 12 {_TOP + plot_h / 2:.1f})">{escape(y_label)}</text></svg>'
    )
    return "".join(parts)
