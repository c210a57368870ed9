"""Inline SVG line charts for the HTML report: one series over time, fault windows shaded,
alert firings marked.

Hand-written because the report must open with no network and no JavaScript (a file
attached to a ticket): plotting libraries either need a browser runtime (Chart.js, Plotly)
or bring a heavy stack to draw three polylines (matplotlib). It is ~80 lines of geometry.
"""

from __future__ import annotations

import math
from html import escape

W, H = 560, 150
PAD_L, PAD_R, PAD_T, PAD_B = 48, 10, 18, 24


def _nice_max(value: float) -> float:
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * exp:
            return float(step * exp)
    return float(10 * exp)


def line_chart(
    title: str,
    points: list[tuple[float, float | None]],
    *,
    t0: float,
    t1: float,
    unit: str = "",
    scale: float = 1.0,
    shaded: list[tuple[float, float]] = (),  # type: ignore[assignment]
    marks: list[tuple[float, str]] = (),  # type: ignore[assignment]
) -> str:
    """``points`` are (t, value); values are multiplied by ``scale`` for display."""
    span = max(t1 - t0, 1e-9)
    values = [v * scale for t, v in points
              if v is not None and math.isfinite(v) and t0 <= t <= t1]  # fmt: skip
    top = _nice_max(max(values, default=0.0))

    def x(t: float) -> float:
        return PAD_L + (min(max(t, t0), t1) - t0) / span * (W - PAD_L - PAD_R)

    def y(v: float) -> float:
        return H - PAD_B - (v / top) * (H - PAD_T - PAD_B)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" '
        f'height="{H}" role="img" aria-label="{escape(title)}" class="chart">',
        f'<text x="{PAD_L}" y="12" class="ct">{escape(title)}</text>',
    ]
    for a, b in shaded:
        if b < t0 or a > t1:
            continue
        parts.append(
            f'<rect x="{x(a):.1f}" y="{PAD_T}" width="{max(x(b) - x(a), 1):.1f}" '
            f'height="{H - PAD_T - PAD_B}" class="fault"><title>fault {a:.1f}-{b:.1f} s'
            "</title></rect>"
        )
    for frac in (0.0, 0.5, 1.0):
        v = top * frac
        parts.append(
            f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
            f'<text x="{PAD_L - 4}" y="{y(v) + 4:.1f}" class="ax" text-anchor="end">'
            f"{v:g}{escape(unit)}</text>"
        )
    parts.append(
        f'<text x="{PAD_L}" y="{H - 6}" class="ax">t={t0:.0f} s</text>'
        f'<text x="{W - PAD_R}" y="{H - 6}" class="ax" text-anchor="end">t={t1:.0f} s</text>'
    )
    coords = [
        f"{x(t):.1f},{y(v * scale):.1f}"
        for t, v in points
        if v is not None and math.isfinite(v) and t0 <= t <= t1
    ]
    if coords:
        parts.append(f'<polyline points="{" ".join(coords)}" class="line"/>')
    else:
        parts.append(
            f'<text x="{W / 2}" y="{H / 2}" class="ax" text-anchor="middle">no data</text>'
        )
    for t, name in marks:
        if t0 <= t <= t1:
            parts.append(
                f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{PAD_T}" y2="{H - PAD_B}" '
                f'class="alert"><title>{escape(name)} at t={t:.1f} s</title></line>'
            )
    parts.append("</svg>")
    return "".join(parts)
