"""Charts for the terminal: the ARR trend and the movement waterfall, drawn with Unicode blocks.

Pure: rows in, text out (no I/O, no terminal queries). Bars are horizontal, one line per period
or movement, so any number of periods fits the width; every amount is printed whole beside its
bar (a bar is a picture, the number is the figure).

Reuse: `trend()` and `waterfall()` take plain (label, amount) pairs; `arr_chart()` (and
`print_arr()`, which sizes it to a rich Console) adapts the rows of `revsync report arr`
(period_start, period_end, period_label, opening_arr, closing_arr, changes by category in CMRR);
`movements_chart()` (and `print_movements()`) those of `revsync report arr-movements` (opening,
the six movements, closing). Another report builds the pairs and calls `trend()` and
`waterfall()`. The web console draws the same movements (`arr_movements()`) as SVG.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterable, Sequence

FULL = "█"
#: partial blocks, one to seven eighths of a cell
EIGHTHS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")
GREEN, RED, BOLD, RESET = "\x1b[32m", "\x1b[31m", "\x1b[1m", "\x1b[0m"
MIN_BAR = 10


def amount_text(value: Decimal, *, signed: bool = False) -> str:
    """An amount whole, with thousands separators: 36,000.00, +600.00, -2,000.00 (never cut)."""
    text = f"{value:,}"
    if signed and value > 0:
        text = "+" + text
    return text


def _bar(value: Decimal, scale: Decimal) -> str:
    """A bar of `value / scale` cells, to the eighth of a cell (scale: amount per cell)."""
    if scale <= 0 or value <= 0:
        return ""
    eighths = int((value / scale * 8).to_integral_value())
    return FULL * (eighths // 8) + EIGHTHS[eighths % 8]


def _paint(text: str, colour: str, color: bool) -> str:
    return f"{colour}{text}{RESET}" if color and text else text


def trend(points: Sequence[tuple[str, Decimal]], *, width: int = 80, title: str = "", color: bool = False) -> str:
    """One bar per point, from zero: `label │bar amount` (negative amounts get no bar, a red figure)."""
    lines = [_paint(title, BOLD, color)] if title else []
    if not points:
        return "\n".join(lines + ["(no periods)"]) + "\n"
    label_w = max(len(label) for label, _ in points)
    value_w = max(len(amount_text(v)) for _, v in points)
    room = max(MIN_BAR, width - label_w - value_w - 3)
    top = max((v for _, v in points), default=Decimal(0))
    scale = top / room if top > 0 else Decimal(1)
    for label, value in points:
        bar = _bar(value, scale)
        figure = amount_text(value).rjust(value_w)
        lines.append(f"{label.ljust(label_w)} │{_paint(bar, GREEN if value >= 0 else RED, color)}"
                     f"{' ' * (room - len(bar))} {_paint(figure, RED, color) if value < 0 else figure}")
    return "\n".join(lines) + "\n"


def waterfall(opening: tuple[str, Decimal], steps: Sequence[tuple[str, Decimal]], closing: tuple[str, Decimal],
              *, width: int = 80, title: str = "", color: bool = False) -> str:
    """Opening bar, one floating bar per change (up green, down red) from the running total, closing bar."""
    lines = [_paint(title, BOLD, color)] if title else []
    rows: list[tuple[str, Decimal, Decimal, str]] = [(opening[0], Decimal(0), opening[1], "total")]
    running = opening[1]
    for label, amount in steps:
        rows.append((label, running, running + amount, "step"))
        running += amount
    rows.append((closing[0], Decimal(0), closing[1], "total"))
    label_w = max(len(r[0]) for r in rows)
    figures = [amount_text(b - a if kind == "step" else b, signed=kind == "step") for _, a, b, kind in rows]
    value_w = max(len(f) for f in figures)
    room = max(MIN_BAR, width - label_w - value_w - 3)
    low = min(Decimal(0), *(min(a, b) for _, a, b, _ in rows))
    high = max(Decimal(0), *(max(a, b) for _, a, b, _ in rows))
    span = high - low
    cells = (lambda v: int(((v - low) / span * room).to_integral_value())) if span > 0 else (lambda v: 0)
    for (label, a, b, kind), figure in zip(rows, figures):
        left, right = sorted((cells(a), cells(b)))
        if kind == "step" and a != b and left == right:
            right = min(room, left + 1) if right < room else right
            left = right - 1  # a movement too small for a cell still shows as one
        bar = FULL * (right - left)
        colour = BOLD if kind == "total" else (GREEN if b > a else RED)
        if kind == "step" and b < a:
            bar = "▒" * len(bar)  # without colour, a decrease is still told apart
        lines.append(f"{label.ljust(label_w)} │{' ' * left}{_paint(bar, colour, color)}"
                     f"{' ' * (room - right)} {figure.rjust(value_w)}")
    return "\n".join(lines) + "\n"


def arr_movements(rows: Sequence[dict[str, Any]], categories: Iterable[str] | None = None
                  ) -> tuple[Decimal, list[tuple[str, Decimal]], Decimal]:
    """(opening ARR, [(step label, ARR change)], closing ARR) over `report arr` rows.

    Changes are the rows' `changes` (change in CMRR by category) × 12, increases and decreases of
    a category apart (`New Business ↑`, `New Business ↓`), categories in the order given. A
    difference left between the steps' sum and the closing ARR (rounding to the currency) is its
    own `Rounding` step, never hidden.
    """
    ups: dict[str, Decimal] = {}
    downs: dict[str, Decimal] = {}
    for r in rows:  # a category that grew and shrank shows both
        for category, cmrr in (r.get("changes") or {}).items():
            arr = Decimal(cmrr) * 12
            side = ups if arr > 0 else downs
            if arr:
                side[category] = side.get(category, Decimal(0)) + arr
    order = list(categories) if categories is not None else []
    order += [c for c in [*ups, *downs] if c not in order]
    steps = []
    for c in order:
        if c in ups:
            steps.append((f"{c} ↑", ups[c]))
        if c in downs:
            steps.append((f"{c} ↓", downs[c]))
    opening = Decimal(rows[0]["opening_arr"])
    closing = Decimal(rows[-1]["closing_arr"])
    rest = closing - opening - sum((v for _, v in steps), Decimal(0))
    if rest:
        steps.append(("Rounding", rest))
    return opening, steps, closing


def _period(row: dict[str, Any], key: str = "period_start") -> str:
    """A period as a chart names it: its label beside the date (`FY2023 Q1 2023-01-01`)."""
    label = row.get("period_label")
    return f"{label} {row[key]}" if label else str(row[key])


def _ends(rows: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """The waterfall's first and last bars: the first period's opening, the last one's closing."""
    last = rows[-1]
    return f"Opening {_period(rows[0])}", f"Closing {_period(last, 'period_end' if 'period_end' in last else 'period_start')}"


def arr_chart(rows: Sequence[dict[str, Any]], *, width: int = 80, color: bool = False,
              categories: Iterable[str] | None = None) -> str:
    """The ARR trend (closing ARR per period) and the waterfall from the first opening to the last
    closing (`arr_movements`), for `report arr` rows (period_start, period_end, period_label,
    opening_arr, closing_arr, changes)."""
    if not rows:
        return "No ARR rows to chart.\n"
    points = [(_period(r), Decimal(r["closing_arr"])) for r in rows]
    out = trend(points, width=width, title="Closing ARR per period", color=color)
    opening, steps, closing = arr_movements(rows, categories)
    first, last = _ends(rows)
    out += "\n" + waterfall((first, opening), steps, (last, closing), width=width,
                            title="ARR movements (change in CMRR × 12)", color=color)
    return out


#: `report arr-movements` keys and their names in the chart, in the report's order
MOVEMENT_STEPS = (("new_arr", "New"), ("expansion_arr", "Expansion"), ("contraction_arr", "Contraction"),
                  ("churn_arr", "Churn"), ("reactivation_arr", "Reactivation"),
                  ("renewal_boundary_arr", "Renewal boundary"))


def movements_chart(rows: Sequence[dict[str, Any]], *, width: int = 80, color: bool = False) -> str:
    """The ARR trend and the movement waterfall for `report arr-movements` rows (totals, one row a
    period): the first period's opening, each movement summed over the periods (every movement,
    in the report's order, 0.00 included), the last period's closing. Opening + movements = closing
    exactly (the report's own property), so no step is left over."""
    if not rows:
        return "No ARR movements to chart.\n"
    points = [(_period(r), Decimal(r["closing_arr"])) for r in rows]
    out = trend(points, width=width, title="Closing ARR per period", color=color)
    steps = [(name, sum((Decimal(r[key]) for r in rows), Decimal(0))) for key, name in MOVEMENT_STEPS]
    first, last = _ends(rows)
    out += "\n" + waterfall((first, Decimal(rows[0]["opening_arr"])), steps, (last, Decimal(rows[-1]["closing_arr"])),
                            width=width, title="ARR movements", color=color)
    return out


def _fit(console) -> tuple[int, bool]:
    """A rich Console's width for a chart (40 to 120 columns), and whether to colour: only on a
    terminal and without NO_COLOR."""
    return max(40, min(console.width, 120)), console.is_terminal and not console.no_color


def _write(console, text: str) -> None:
    console.file.write(text)
    console.file.flush()


def print_arr(console, rows: Sequence[dict[str, Any]]) -> None:
    """Write `arr_chart` of `report arr` rows to a rich Console, sized and coloured by `_fit`."""
    from connector.reports import CATEGORIES

    width, color = _fit(console)
    _write(console, arr_chart(rows, width=width, color=color, categories=CATEGORIES))


def print_movements(console, rows: Sequence[dict[str, Any]]) -> None:
    """Write `movements_chart` of `report arr-movements` rows to a rich Console, sized and coloured by `_fit`."""
    width, color = _fit(console)
    _write(console, movements_chart(rows, width=width, color=color))
