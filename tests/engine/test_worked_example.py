"""The worked example of SPEC section 7, figure by figure."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from connector.engine.activation import line_tcv
from connector.engine.model import Action, ChangeCategory
from engine_builders import Book, D, line, order, tcv


def months(first: str, last: str) -> list[dt.date]:
    """First days of the months first..last (YYYY-MM)."""
    y, m = map(int, first.split("-"))
    ly, lm = map(int, last.split("-"))
    out = []
    while (y, m) <= (ly, lm):
        out.append(dt.date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


# The table of SPEC section 7, expanded to one entry per month: line -> {month: (opening, closing)}.
EXPECTED: dict[str, dict[dt.date, tuple[int, int]]] = {
    "O-1": {D("2023-01-01"): (0, 1000), **{m: (1000, 1000) for m in months("2023-02", "2023-12")},
            D("2024-01-01"): (1000, 0)},
    "O-2": {D("2023-02-01"): (0, 2000), D("2023-03-01"): (2000, 2000), D("2023-04-01"): (2000, 0)},
    "O-3": {D("2023-04-01"): (0, 600), **{m: (600, 600) for m in months("2023-05", "2023-12")},
            D("2024-01-01"): (600, 0)},
}


@pytest.fixture(scope="module")
def book() -> Book:
    b = Book()
    b.activate(order("O-1", "A", line("O-1", product="SEATS", item="S-001", quantity=10, unit_price=100,
                                      start="2023-01-15", end="2024-01-14"), booked_on="2023-01-01"))
    b.activate(order("O-2", "B", line("O-2", product="PLATFORM", item="S-002", quantity=1, unit_price=2000,
                                      start="2023-02-01", end="2023-04-30"), booked_on="2023-01-20"))
    b.activate(order("O-3", "A", line("O-3", Action.UPDATE, product="SEATS", item="S-001", quantity=16,
                                      start="2023-04-01"), booked_on="2023-02-01"))
    return b


ROW_CASES = [(ln, month, oc) for ln, rows in EXPECTED.items() for month, oc in rows.items()]


@pytest.mark.parametrize("line_id,month,expected", ROW_CASES,
                         ids=[f"{ln}-{m:%Y-%m}" for ln, m, _ in ROW_CASES])
def test_monthly_row(book, line_id, month, expected):
    (row,) = [r for r in book.rows(line_id) if r.period_start == month]
    opening, closing = (Decimal(x) for x in expected)
    assert row.period_end.month == month.month and row.period_end.day >= 28
    assert (row.opening_cmrr, row.closing_cmrr) == (opening, closing)
    assert (row.opening_arr, row.closing_arr) == (12 * opening, 12 * closing)
    assert row.change_cmrr == closing - opening
    assert row.change_arr == 12 * (closing - opening)


@pytest.mark.parametrize("line_id", list(EXPECTED), ids=list(EXPECTED))
def test_one_row_per_month_touched_and_no_more(book, line_id):
    assert [r.period_start for r in book.rows(line_id)] == list(EXPECTED[line_id])


@pytest.mark.parametrize("line_id,category", [("O-1", ChangeCategory.NEW_BUSINESS),
                                              ("O-2", ChangeCategory.NEW_BUSINESS),
                                              ("O-3", ChangeCategory.UPSELL)], ids=["O-1", "O-2", "O-3"])
def test_change_category(book, line_id, category):
    assert book.line(line_id).change_category is category


def test_O_3_is_co_termed_with_delta_600(book):
    o3 = book.line("O-3")
    assert (o3.start, o3.end) == (D("2023-04-01"), D("2024-01-14"))
    assert o3.delta_mrr == 600
    assert book.cmrr("S-001", "2023-03-31") == 1000
    assert book.cmrr("S-001", "2023-04-01") == 1600
    assert book.cmrr("S-001", "2024-01-14") == 1600
    assert book.cmrr("S-001", "2024-01-15") == 0


QUARTERS = [("Q1", "2023-01-01", 0, 3000), ("Q2", "2023-04-01", 3000, 1600),
            ("Q3", "2023-07-01", 1600, 1600), ("Q4", "2023-10-01", 1600, 1600)]


@pytest.mark.parametrize("first_day,opening,closing", [q[1:] for q in QUARTERS], ids=[q[0] for q in QUARTERS])
def test_quarters_for_chloe(book, first_day, opening, closing):
    """A quarter's opening is its first month's opening, its closing its last month's, summed over lines."""
    cal = book.calendar
    period = cal.period_of(D(first_day))
    first, last = cal.group_start(period, "quarter"), cal.group_end(period, "quarter")
    chloe = [l.id for a in book.activations if a.order.owner == "Chloe" for l in a.lines]
    rows = [r for ln in chloe for r in book.rows(ln)]
    q_open = sum((r.opening_cmrr for r in rows if r.period_start == first.start), Decimal(0))
    q_close = sum((r.closing_cmrr for r in rows if r.period_start == last.start), Decimal(0))
    assert (q_open, q_close) == (opening, closing)
    assert sum((r.opening_arr for r in rows if r.period_start == first.start), Decimal(0)) == 12 * opening
    assert sum((r.closing_arr for r in rows if r.period_start == last.start), Decimal(0)) == 12 * closing
    # ... and the three months' changes add up to the quarter's change.
    in_quarter = [r for r in rows if first.start <= r.period_start <= last.start]
    assert sum((r.change_cmrr for r in in_quarter), Decimal(0)) == closing - opening


@pytest.mark.parametrize("line_id,expected", [("O-1", "12000.00"), ("O-2", "6000.00"), ("O-3", "5670.97")],
                         ids=["O-1", "O-2", "O-3"])
def test_tcv(book, line_id, expected):
    assert tcv(book.line(line_id)) == Decimal(expected)


def test_tcv_is_exact_until_shown(book):
    # 600 × (9 + 14/31) is not a whole number of cents; rounding happens only when shown.
    assert line_tcv(book.line("O-3")) != Decimal("5670.97")
    assert abs(line_tcv(book.line("O-3")) - (Decimal(600) * 9 + Decimal(600 * 14) / 31)) < Decimal("1e-20")


def test_account_metrics(book):
    by_order = {a.order.id: a for a in book.activations}
    assert by_order["O-1"].account_tcv_delta == 12000
    assert by_order["O-1"].customer_since == D("2023-01-15")
    assert by_order["O-2"].customer_since == D("2023-02-01")
