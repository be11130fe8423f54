"""A bar chart as inline SVG, drawn on the server (no script, nothing fetched)."""
from __future__ import annotations

from decimal import Decimal
from html import escape
from typing import Sequence

from connector.chart import amount_text

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 90, 10, 24, 46


def bar_chart(points: Sequence[tuple[str, Decimal]], *, title: str) -> str:
    """One bar per (label, amount) from zero; each bar's exact amount in its tooltip and data-value."""
    top = max((v for _, v in points), default=Decimal(0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(points))
    bar_w = max(2.0, step * 0.7)
    every = max(1, len(points) // 12)  # at most about twelve labels under the axis
    parts = [f'<svg id="arr-chart" role="img" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}"><title>{escape(title)}</title>',
             f'<text x="{LEFT}" y="16" font-size="13" font-weight="600">{escape(title)}</text>',
             f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#667085"/>',
             f'<text x="{LEFT - 6}" y="{TOP + 4}" font-size="11" text-anchor="end">{escape(amount_text(top))}</text>',
             f'<text x="{LEFT - 6}" y="{TOP + plot_h}" font-size="11" text-anchor="end">0</text>']
    for i, (label, value) in enumerate(points):
        h = float(value / top) * plot_h if top > 0 and value > 0 else 0.0
        x = LEFT + i * step + (step - bar_w) / 2
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                     f'fill="#2e6fd8" data-label="{escape(label)}" data-value="{escape(str(value))}">'
                     f'<title>{escape(label)}: {escape(amount_text(value))}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{TOP + plot_h + 16}" font-size="11" '
                         f'text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
