"""Small line charts as SVG, stacked on one shared x axis (no plotting library needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH = 760
PANEL_H = 170
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 28, 22


@dataclass
class Panel:
    """One chart: a title, its y values (NaN = gap) and optional guides."""

    title: str
    ys: Sequence[float]
    color: str = "#1f77b4"
    #: Horizontal band (low, high), e.g. the allowed RSS range.
    band: tuple[float, float] | None = None
    #: Horizontal reference lines (value, label).
    hlines: list[tuple[float, str]] = field(default_factory=list)
    y_min: float | None = None


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round tick values covering lo..hi."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks = [round(first, 10)]
    while ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _fmt(v: float) -> str:
    if abs(v) >= 100 or v == int(v):
        return f"{v:,.0f}"
    return f"{v:.3g}"


def charts(
    xs: Sequence[float],
    panels: Sequence[Panel],
    x_label: str,
    title: str = "",
    vlines: Sequence[tuple[float, str]] = (),
    x_min: float | None = None,
) -> str:
    """An SVG document: one chart per panel, all on the x range of ``xs``."""
    head = 24 if title else 0
    height = head + len(panels) * (PANEL_H + TOP + BOTTOM) + 20
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
    ]
    if title:
        out.append(f'<text x="{LEFT}" y="16" font-size="13">{escape(title)}</text>')
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x_min is not None:
        x0 = min(x0, x_min)
    if x1 <= x0:
        x1 = x0 + 1.0
    plot_w = WIDTH - LEFT - RIGHT
    x_ticks = nice_ticks(x0, x1, 8)

    def sx(v: float) -> float:
        return LEFT + (v - x0) / (x1 - x0) * plot_w

    for k, panel in enumerate(panels):
        top = head + k * (PANEL_H + TOP + BOTTOM) + TOP
        bottom = top + PANEL_H
        values = [y for y in panel.ys if not math.isnan(y)]
        extra = [v for v, _ in panel.hlines] + (list(panel.band) if panel.band else [])
        lo = min(values + extra) if values else 0.0
        hi = max(values + extra) if values else 1.0
        if panel.y_min is not None:
            lo = min(lo, panel.y_min)
        pad = (hi - lo) * 0.08 or max(abs(hi) * 0.05, 1.0)
        lo -= pad
        if panel.y_min is not None:
            lo = max(lo, panel.y_min)
        y_ticks = nice_ticks(lo, hi + pad, 4)
        y0, y1 = y_ticks[0], y_ticks[-1]

        def sy(v: float, y0: float = y0, y1: float = y1, bottom: float = bottom) -> float:
            return bottom - (v - y0) / (y1 - y0) * PANEL_H

        out.append(f'<text x="{LEFT}" y="{top - 8}" font-size="12">{escape(panel.title)}</text>')
        out.append(
            f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_H}" '
            'fill="none" stroke="#999"/>'
        )
        if panel.band:
            b_lo, b_hi = panel.band
            out.append(
                f'<rect x="{LEFT}" y="{sy(b_hi):.1f}" width="{plot_w}" '
                f'height="{sy(b_lo) - sy(b_hi):.1f}" fill="#2ca02c" fill-opacity="0.12"/>'
            )
        for t in y_ticks:
            y = sy(t)
            out.append(
                f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            )
            out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
        for t in x_ticks:
            if x0 <= t <= x1:
                x = sx(t)
                out.append(
                    f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">{_fmt(t)}</text>'
                )
        for v, label in panel.hlines:
            y = sy(v)
            out.append(
                f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                'stroke="#2ca02c" stroke-dasharray="4 3"/>'
            )
            out.append(
                f'<text x="{LEFT + plot_w - 4}" y="{y - 4:.1f}" text-anchor="end" '
                f'fill="#2ca02c">{escape(label)}</text>'
            )
        for v, label in vlines:
            x = sx(v)
            out.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" '
                'stroke="#d62728" stroke-dasharray="4 3"/>'
            )
            if k == 0:
                out.append(
                    f'<text x="{x + 4:.1f}" y="{top + 12}" fill="#d62728">{escape(label)}</text>'
                )
        # A NaN breaks the line: one polyline per run of numbers.
        run: list[str] = []
        for x, y in [*zip(xs, panel.ys, strict=True), (math.nan, math.nan)]:
            if math.isnan(y):
                if len(run) > 1:
                    out.append(
                        f'<polyline fill="none" stroke="{panel.color}" stroke-width="1.6" '
                        f'points="{" ".join(run)}"/>'
                    )
                run = []
                continue
            run.append(f"{sx(x):.1f},{sy(y):.1f}")
    last = head + len(panels) * (PANEL_H + TOP + BOTTOM) + 8
    out.append(
        f'<text x="{LEFT + plot_w / 2:.0f}" y="{last}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"
