"""connector.chart: given rows, the bars drawn and the amounts printed (pure functions, no terminal)."""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from connector.chart import arr_chart, trend, waterfall


def _bars(text: str) -> dict[str, str]:
    """label → the part between the │ and the figure (bar and padding)."""
    out = {}
    for line in text.splitlines():
        if "│" in line:
            label, rest = line.split("│", 1)
            out[label.strip()] = rest.rsplit(" ", 1)[0]
    return out


@pytest.mark.parametrize("points, width, expected", [
    # the largest amount fills the room (width - label - figure - 3); others in proportion, to 1/8 cell
    ([("Q1", D("100")), ("Q2", D("50"))], 30, {"Q1": "█" * 22, "Q2": "█" * 11}),
    ([("Q1", D("0")), ("Q2", D("8"))], 30, {"Q1": "", "Q2": "█" * 24}),
    ([("Q1", D("1")), ("Q2", D("16"))], 31, {"Q1": "█▌", "Q2": "█" * 24}),
    ([("Q1", D("1")), ("Q2", D("64"))], 31, {"Q1": "▍", "Q2": "█" * 24}),
    # all zero: no bars, no division by zero
    ([("Q1", D("0"))], 20, {"Q1": ""}),
    # a negative amount has no bar
    ([("Q1", D("-5")), ("Q2", D("10"))], 30, {"Q1": "", "Q2": "█" * 23}),
])
def test_trend_bars(points, width, expected):
    text = trend(points, width=width)
    assert {k: v.rstrip() for k, v in _bars(text).items()} == expected
    for line, (_, value) in zip(text.splitlines(), points):
        assert len(line) == width  # fits exactly the width it was given
        assert line.endswith(f"{value:,}")  # the figure is printed whole


@pytest.mark.parametrize("opening, steps, closing, width, expected", [
    # 100 → +50 → -30 → 120 on a 0..150 scale of 30 cells (width 43 = label 7 + 2 + 30 + 1 + figure 3)
    (D("100"), [("Up", D("50")), ("Down", D("-30"))], D("120"), 43,
     {"Opening": "█" * 20, "Up": " " * 20 + "█" * 10, "Down": " " * 24 + "▒" * 6, "Closing": "█" * 24}),
    # a movement too small for a cell still shows as one cell
    (D("1000"), [("Tiny", D("1"))], D("1001"), 45,  # figures "1,000": 5 wide
     {"Opening": "█" * 30, "Tiny": " " * 29 + "█", "Closing": "█" * 30}),
])
def test_waterfall_bars(opening, steps, closing, width, expected):
    text = waterfall(("Opening", opening), steps, ("Closing", closing), width=width)
    assert {k: v.rstrip() for k, v in _bars(text).items()} == expected
    assert all(len(line) == width for line in text.splitlines())


def test_waterfall_figures_are_signed_and_whole():
    text = waterfall(("Opening", D("1234567.89")), [("Churn", D("-1234.50")), ("New", D("0.01"))],
                     ("Closing", D("1233333.40")), width=60)
    lines = text.splitlines()
    assert lines[0].endswith(" 1,234,567.89")
    assert lines[1].endswith(" -1,234.50")
    assert lines[2].endswith(" +0.01")
    assert lines[3].endswith(" 1,233,333.40")


ROWS = [  # `report arr -f json` rows of the worked example by quarter (2023 Q1, Q2)
    {"period_start": "2023-01-01", "period_end": "2023-03-31", "opening_arr": "0.00", "closing_arr": "36000.00",
     "changes": {"New Business": "3000.00"}},
    {"period_start": "2023-04-01", "period_end": "2023-06-30", "opening_arr": "36000.00",
     "closing_arr": "19200.00", "changes": {"New Business": "-2000.00", "Upsell/Expansion": "600.00"}},
]


def test_arr_chart_trend_and_waterfall_from_report_rows():
    text = arr_chart(ROWS, width=80, categories=["Upsell/Expansion", "New Business"])
    trend_part, fall_part = text.split("\n\n")
    assert trend_part.splitlines()[1].endswith(" 36,000.00")
    assert trend_part.splitlines()[2].endswith(" 19,200.00")
    labels = [line.split("│")[0].strip() for line in fall_part.splitlines()[1:]]
    # categories in the order given, increases and decreases apart, changes in CMRR × 12
    assert labels == ["Opening 2023-01-01", "Upsell/Expansion ↑", "New Business ↑", "New Business ↓",
                      "Closing 2023-06-30"]
    figures = [line.rsplit(" ", 1)[1] for line in fall_part.splitlines()[1:]]
    assert figures == ["0.00", "+7,200.00", "+36,000.00", "-24,000.00", "19,200.00"]
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "\x1b[" not in text


def test_arr_chart_shows_a_difference_it_cannot_explain_as_rounding():
    rows = [dict(ROWS[0], closing_arr="36000.04")]
    last = arr_chart(rows).splitlines()[-2]
    assert last.startswith("Rounding") and last.endswith(" +0.04")


def test_colour_only_when_asked():
    assert "\x1b[32m" in arr_chart(ROWS, color=True)
    assert "\x1b[" not in arr_chart(ROWS, color=False)


def test_no_rows():
    assert arr_chart([]) == "No ARR rows to chart.\n"
