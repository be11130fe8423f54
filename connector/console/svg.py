"""A bar chart as inline SVG, drawn on the server (no script, nothing fetched)."""
from __future__ import annotations

import math
from decimal import Decimal
from html import escape
from typing import Sequence

from connector.chart import amount_text

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 110, 10, 24, 46


def _money(value: Decimal, unit: str | None, *, signed: bool = False) -> str:
    """An amount whole with its currency code: 36,000.00 USD."""
    text = amount_text(value, signed=signed)
    return f"{text} {unit}" if unit else text


def bar_chart(points: Sequence[tuple[str, Decimal]], *, title: str, unit: str | None = None) -> str:
    """One bar per (label, amount) from zero; each bar's exact amount (with `unit`, its currency) in
    its tooltip, and in data-value."""
    top = max((v for _, v in points), default=Decimal(0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(points))
    bar_w = max(2.0, step * 0.7)
    every = max(1, math.ceil(80 / step))  # labels (ten characters) at least 80 px apart
    parts = [f'<svg id="arr-chart" role="img" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}"><title>{escape(title)}</title>',
             f'<text x="{LEFT}" y="16" font-size="13" font-weight="600">{escape(title)}</text>',
             f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#667085"/>',
             f'<text x="{LEFT - 6}" y="{TOP + 4}" font-size="11" text-anchor="end">{escape(_money(top, unit))}</text>',
             f'<text x="{LEFT - 6}" y="{TOP + plot_h}" font-size="11" text-anchor="end">0</text>']
    for i, (label, value) in enumerate(points):
        h = float(value / top) * plot_h if top > 0 and value > 0 else 0.0
        x = LEFT + i * step + (step - bar_w) / 2
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                     f'fill="#2e6fd8" data-label="{escape(label)}" data-value="{escape(str(value))}">'
                     f'<title>{escape(label)}: {escape(_money(value, unit))}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{TOP + plot_h + 16}" font-size="11" '
                         f'text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def waterfall_chart(opening: tuple[str, Decimal], steps: Sequence[tuple[str, Decimal]],
                    closing: tuple[str, Decimal], *, title: str, unit: str | None = None) -> str:
    """Opening and closing bars from zero, each step floating from the running total (up green,
    down red); labels and exact amounts beside each bar (horizontal bars, like the terminal's)."""
    rows = [(opening[0], Decimal(0), opening[1], "total")]
    running = opening[1]
    for label, amount in steps:
        rows.append((label, running, running + amount, "up" if amount > 0 else "down"))
        running += amount
    rows.append((closing[0], Decimal(0), closing[1], "total"))
    low = min(Decimal(0), *(min(a, b) for _, a, b, _ in rows))
    high = max(Decimal(0), *(max(a, b) for _, a, b, _ in rows))
    span = high - low
    label_w, value_w, row_h = 190, 140, 26
    plot_w = WIDTH - label_w - value_w - RIGHT
    height = TOP + row_h * len(rows) + 8

    def x(v: Decimal) -> float:
        return label_w + (float((v - low) / span) * plot_w if span > 0 else 0.0)

    colours = {"total": "#2e6fd8", "up": "#1a7f37", "down": "#b42318"}
    parts = [f'<svg id="arr-waterfall" role="img" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
             f'height="{height}" viewBox="0 0 {WIDTH} {height}"><title>{escape(title)}</title>',
             f'<text x="8" y="16" font-size="13" font-weight="600">{escape(title)}</text>']
    for i, (label, a, b, kind) in enumerate(rows):
        y = TOP + i * row_h
        left, right = sorted((x(a), x(b)))
        figure = _money(b - a, unit, signed=True) if kind != "total" else _money(b, unit)
        parts.append(f'<text x="{label_w - 8}" y="{y + 16}" font-size="12" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect class="step {kind}" x="{left:.1f}" y="{y + 4}" width="{max(right - left, 1.0):.1f}" '
                     f'height="{row_h - 8}" fill="{colours[kind]}" data-label="{escape(label)}" '
                     f'data-value="{escape(str(b - a if kind != "total" else b))}">'
                     f'<title>{escape(label)}: {escape(figure)}</title></rect>')
        parts.append(f'<text x="{WIDTH - RIGHT}" y="{y + 16}" font-size="12" text-anchor="end">{escape(figure)}</text>')
    parts.append("</svg>")
    return "".join(parts)
