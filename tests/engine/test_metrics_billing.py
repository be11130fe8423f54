"""Order metrics, billing schedules (SPEC section 6) and credit review (SPEC section 9)."""
from __future__ import annotations

import datetime as dt
import inspect
from fractions import Fraction
from decimal import Decimal

import pytest

from connector.engine.billing import billing_schedule, cycle_date, prorated
from connector.engine.credits import review_credits
from connector.engine.metrics import generated_reason, order_metrics
from connector.engine.model import Action, BillingFrequency
from connector.engine.settings import ALL_ORDER_METRICS, EngineSettings
from engine_builders import Book, D, M, line, order, tcv

CENT = Decimal("0.01")


def cents(x) -> Decimal:
    return Decimal(x).quantize(CENT)


def seats(book=None, **kw):
    book = book or Book()
    args = dict(item="S-1", quantity=10, unit_price=100, start="2023-01-01", end="2023-12-31") | kw
    book.activate(order("O-NEW", kw.pop("account", "A"), line("L-NEW", **args)))
    return book


# ---------------------------------------------------------------- generated reasons

REASONS = [
    (None, "IncreaseQuantity", "new"),
    (line("L-X", Action.UPDATE, item="S-1", quantity=12, start="2023-06-01"), "IncreaseQuantity", "more-seats"),
    (line("L-X", Action.UPDATE, item="S-1", quantity=8, start="2023-06-01"), "DecreaseQuantity", "fewer-seats"),
    (line("L-X", Action.UPDATE, item="S-1", unit_price=90, start="2023-06-01"), "ChangePrice", "price-only"),
    (line("L-X", Action.RENEW, item="S-1"), "Extension", "renew"),
    (line("L-X", Action.TERMS, item="S-1", end="2024-06-30"), "Extension", "terms-extension"),
    (line("L-X", Action.CANCEL, item="S-1", start="2023-06-01"), "Contraction", "cancel"),
    (line("L-X", Action.TERMS, item="S-1", end="2023-06-30"), "Contraction", "terms-shortening"),
]


@pytest.mark.parametrize("change,reason", [r[:2] for r in REASONS], ids=[r[2] for r in REASONS])
def test_generated_reason(change, reason):
    book = seats()
    if change is not None:
        book.activate(order("O-X", "A", change))
    ln = book.lines[-1]
    assert generated_reason(ln) == reason
    assert {m.generated_reason for m in order_metrics(ln, "USD", ALL_ORDER_METRICS)} == {reason}
    assert {m.type for m in order_metrics(ln, "USD", ALL_ORDER_METRICS)} == {"Regular"}


# ---------------------------------------------------------------- order metrics

def metric_rows(ln, which=ALL_ORDER_METRICS):
    return sorted((m.metric, m.amount, m.start, m.end) for m in order_metrics(ln, "USD", which))


def test_new_line_metrics_at_a_discount():
    book = seats(unit_price=90)  # list price 100: ELP counts the list price, TCV the sold price
    ln = book.line("L-NEW")
    start, end = D("2023-01-01"), D("2023-12-31")
    assert metric_rows(ln) == sorted([
        ("mrr", M("900.00"), start, end),
        ("tcv", M("10800.00"), start, end),
        ("tcb", M("10800.00"), start, end),
        ("elp", M("12000.00"), start, end),
        ("quantity", M(10), start, end),
    ])


def test_metrics_are_time_sliced_by_the_pieces_of_a_cancellation():
    """Cancelling a renewed subscription removes two pieces, each with its own rows."""
    book = seats()
    book.activate(order("O-REN", "A", line("L-REN", Action.RENEW, item="S-1", quantity=12)))
    book.activate(order("O-CAN", "A", line("L-CAN", Action.CANCEL, item="S-1", start="2023-10-01")))
    ln = book.line("L-CAN")
    q4 = (D("2023-10-01"), D("2023-12-31"))
    y24 = (D("2024-01-01"), D("2024-12-31"))
    assert metric_rows(ln, ("mrr", "tcv", "elp", "quantity")) == sorted([
        ("mrr", M("-1000.00"), *q4), ("mrr", M("-1200.00"), *y24),
        ("tcv", M("-3000.00"), *q4), ("tcv", M("-14400.00"), *y24),
        ("elp", M("-3000.00"), *q4), ("elp", M("-14400.00"), *y24),
        ("quantity", M(-10), *q4), ("quantity", M(-12), *y24),
    ])
    (tcb,) = [m for m in order_metrics(ln, "USD", ("tcb",))]
    assert (tcb.amount, tcb.start, tcb.end) == (M("-17400.00"), D("2023-10-01"), D("2024-12-31"))
    assert tcv(ln) == M("-17400.00")


def test_one_time_line_metrics():
    book = Book()
    book.activate(order("O-1", "A", line("L-1", product="SETUP", item="A-1", quantity=2, unit_price=450,
                                        start="2023-02-01", end="2023-02-01")))
    rows = {m.metric: m.amount for m in order_metrics(book.line("L-1"), "USD", ALL_ORDER_METRICS)}
    assert rows["tcv"] == rows["tcb"] == M("900.00")
    assert rows["elp"] == M("1000.00")  # list price 500 × quantity 2
    assert rows["quantity"] == 2
    assert "mrr" not in rows


@pytest.mark.parametrize("which,absent", [
    (("mrr", "tcv", "tcb", "quantity"), "elp"),
    (("mrr", "tcv", "elp", "quantity"), "tcb"),
    (("tcv",), "mrr"),
], ids=["without-elp", "without-tcb", "tcv-only"])
def test_settings_turn_metrics_off(which, absent):
    book = seats()
    book.activate(order("O-UPD", "A", line("L-UPD", Action.UPDATE, item="S-1", quantity=12, start="2023-06-01")))
    produced = {m.metric for m in order_metrics(book.line("L-UPD"), "USD", which)}
    assert produced == set(which)
    assert absent not in produced


def test_default_settings_produce_every_metric():
    assert set(EngineSettings().order_metrics) == {"mrr", "tcv", "tcb", "elp", "quantity"}


# ---------------------------------------------------------------- billing

CYCLE = [
    (2023, 2, 31, "2023-02-28", "bcd31-february"),
    (2024, 2, 31, "2024-02-29", "bcd31-leap-february"),
    (2024, 2, 30, "2024-02-29", "bcd30-leap-february"),
    (2023, 4, 31, "2023-04-30", "bcd31-april"),
    (2023, 13, 5, "2024-01-05", "month-past-december"),
    (2023, 26, 15, "2025-02-15", "two-years-on"),
]


@pytest.mark.parametrize("year,month,bcd,expected", [c[:4] for c in CYCLE], ids=[c[4] for c in CYCLE])
def test_cycle_date(year, month, bcd, expected):
    assert cycle_date(year, month, bcd) == D(expected)


def test_prorated_by_the_days_of_each_month():
    assert prorated(M(3100), D("2023-01-15"), D("2023-02-01")) == M(1700)  # 17/31
    assert prorated(M(2800), D("2023-02-15"), D("2023-03-01")) == M(1400)  # 14/28
    assert prorated(M(2900), D("2024-02-15"), D("2024-03-01")) == M(1500)  # 15/29, leap year
    # exactly 100 + 3100/28 (a rational: no 28-digit Decimal quotient)
    assert prorated(M(3100), D("2023-01-31"), D("2023-02-02")) == 100 + Fraction(3100, 28)


def schedule(book, line_id, currency="USD"):
    return [(p.start, p.end, p.amount) for p in billing_schedule(book.line(line_id), currency)]


def test_bill_cycle_day_1_prorates_the_first_and_last_partial_months():
    book = seats(start="2023-01-15", end="2024-01-14")  # 1000/month
    got = schedule(book, "L-NEW")
    assert got[0] == (D("2023-01-15"), D("2023-01-31"), cents(Decimal(17000) / 31))
    assert got[1] == (D("2023-02-01"), D("2023-02-28"), M("1000.00"))
    assert got[11] == (D("2023-12-01"), D("2023-12-31"), M("1000.00"))
    assert got[12] == (D("2024-01-01"), D("2024-01-14"), cents(Decimal(14000) / 31))
    assert len(got) == 13
    assert sum(a for *_, a in got) == M("12000.00")


def test_bill_cycle_day_aligned_with_the_start_has_whole_periods():
    book = Book()
    book.activate(order("O-1", "C", line("L-1", item="S-1", quantity=10, start="2023-01-15", end="2024-01-14")))
    assert book.line("L-1").bill_cycle_day == 15
    got = schedule(book, "L-1")
    assert len(got) == 12
    assert all(a == 1000 for *_, a in got)
    assert [s for s, *_ in got] == [dt.date(2023, m, 15) for m in range(1, 13)]
    assert got[-1][1] == D("2024-01-14")


def test_bill_cycle_day_31_in_february():
    book = Book()
    book.activate(order("O-1", "A", line("L-1", item="S-1", quantity=10, start="2023-02-01", end="2023-05-31"),
                        bill_cycle_day=31))
    assert schedule(book, "L-1") == [
        (D("2023-02-01"), D("2023-02-27"), cents(Decimal(27000) / 28)),  # leading partial: 27 of 28 days
        (D("2023-02-28"), D("2023-03-30"), M("1000.00")),
        (D("2023-03-31"), D("2023-04-29"), M("1000.00")),
        (D("2023-04-30"), D("2023-05-30"), M("1000.00")),
        (D("2023-05-31"), D("2023-05-31"), cents(Decimal(1000) / 31)),  # trailing partial: 1 of 31 days
    ]


def test_quarterly_billing():
    book = Book()
    book.activate(order("O-1", "A", line("L-1", item="S-1", quantity=10, start="2023-01-15", end="2024-01-14",
                                        billing_frequency=BillingFrequency.QUARTER)))
    got = schedule(book, "L-1")
    assert got == [
        (D("2023-01-15"), D("2023-01-31"), cents(Decimal(17000) / 31)),
        (D("2023-02-01"), D("2023-04-30"), M("3000.00")),
        (D("2023-05-01"), D("2023-07-31"), M("3000.00")),
        (D("2023-08-01"), D("2023-10-31"), M("3000.00")),
        (D("2023-11-01"), D("2024-01-14"), cents(2000 + Decimal(14000) / 31)),
    ]
    assert sum(a for *_, a in got) == M("12000.00")


def test_yearly_billing_of_a_yearly_price():
    book = Book()
    book.activate(order("O-1", "A", line("L-1", product="ANNUAL", item="S-1", quantity=3, start="2023-01-01",
                                        term_months=24, billing_frequency=BillingFrequency.YEAR)))
    assert schedule(book, "L-1") == [(D("2023-01-01"), D("2023-12-31"), M("3000.00")),
                                     (D("2024-01-01"), D("2024-12-31"), M("3000.00"))]


def test_billing_in_jpy_rounds_to_yen():
    book = Book()
    book.activate(order("O-1", "A", line("L-1", item="S-1", quantity=1, unit_price=1000, start="2023-01-15",
                                        end="2023-02-28"), currency="JPY"))
    assert schedule(book, "L-1", "JPY") == [(D("2023-01-15"), D("2023-01-31"), M(548)),
                                            (D("2023-02-01"), D("2023-02-28"), M(1000))]


def test_one_time_charge_is_billed_once_on_its_start():
    book = Book()
    book.activate(order("O-1", "A", line("L-1", product="SETUP", item="A-1", start="2023-03-05", end="2023-03-05")))
    assert schedule(book, "L-1") == [(D("2023-03-05"), D("2023-03-05"), M("500.00"))]


TCB_CASES = [
    dict(start="2023-01-15", end="2024-01-14"),
    dict(start="2023-01-31", end="2023-07-30", billing_frequency=BillingFrequency.QUARTER),
    dict(start="2023-02-10", end="2024-02-29", billing_frequency=BillingFrequency.YEAR),
    dict(product="ANNUAL", quantity=1, start="2023-03-03", end="2023-11-11"),
]


@pytest.mark.parametrize("kw", TCB_CASES, ids=["monthly", "quarterly", "yearly", "yearly-price-odd-dates"])
@pytest.mark.parametrize("bcd", [1, 15, 31], ids=["bcd1", "bcd15", "bcd31"])
def test_tcb_is_the_sum_of_the_billing_schedule(kw, bcd):
    book = Book()
    args = dict(item="S-1", quantity=10) | kw
    book.activate(order("O-1", "A", line("L-1", **args), bill_cycle_day=bcd))
    ln = book.line("L-1")
    periods = billing_schedule(ln, "USD")
    (tcb,) = order_metrics(ln, "USD", ("tcb",))
    assert tcb.amount == sum(p.amount for p in periods)
    # The periods tile the line's service without gap or overlap.
    assert periods[0].start == ln.start and periods[-1].end == ln.end
    for a, b in zip(periods, periods[1:]):
        assert b.start == a.end + dt.timedelta(days=1)
        assert b.start == cycle_date(b.start.year, b.start.month, bcd)  # after the first, on the cycle day


# ---------------------------------------------------------------- credits

def credit_book():
    book = Book()
    book.activate(order("O-1", "A",
                        line("L-1", item="S-1", quantity=1, unit_price=250, start="2023-01-01", term_months=12,
                             credit_eligible=True),  # TCV 3000
                        line("L-2", item="S-2", quantity=1, unit_price=100, start="2023-01-01", term_months=12),
                        line("L-3", item="S-3", quantity=1, unit_price=4000, start="2023-01-01", term_months=1,
                             credit_eligible=True),  # TCV 4000
                        line("L-4", item="S-4", quantity=1, unit_price=10, start="2023-01-01", term_months=1,
                             credit_eligible=True)))
    return book


def test_credit_review_draws_down_in_line_order_and_never_below_zero():
    book = credit_book()
    balances = {("A", "USD"): M(5000)}
    draws = review_credits("O-1", "A", "USD", book.lines, balances)
    assert [(d.line, d.amount, d.net_amount) for d in draws] == [("L-1", M(3000), M(0)), ("L-3", M(2000), M(2000))]
    assert all(d.order == "O-1" and d.account == "A" and d.currency == "USD" for d in draws)
    assert sum(d.amount for d in draws) <= balances[("A", "USD")]
    assert balances == {("A", "USD"): M(5000)}  # the caller records the drawdowns, not this function


@pytest.mark.parametrize("balances,drawn", [
    ({}, 0),
    ({("A", "EUR"): M(5000)}, 0),
    ({("B", "USD"): M(5000)}, 0),
    ({("A", "USD"): M(0)}, 0),
    ({("A", "USD"): M(100000)}, 7010),
], ids=["no-credit", "other-currency", "other-account", "zero-balance", "more-than-enough"])
def test_credit_review_balance_cases(balances, drawn):
    draws = review_credits("O-1", "A", "USD", credit_book().lines, balances)
    assert sum((d.amount for d in draws), Decimal(0)) == drawn
    assert all(d.amount > 0 and d.net_amount >= 0 for d in draws)


def test_credit_review_does_not_draw_for_a_cancellation():
    book = seats(credit_eligible=True)
    book.activate(order("O-CAN", "A", line("L-CAN", Action.CANCEL, item="S-1", start="2023-07-01",
                                          credit_eligible=True)))
    assert review_credits("O-CAN", "A", "USD", [book.line("L-CAN")], {("A", "USD"): M(500)}) == []


def test_credit_review_rerun_with_the_recorded_drawdowns_draws_nothing_twice():
    """The docstring's contract: the caller records drawdowns per order and passes what is left."""
    book = credit_book()
    first = review_credits("O-1", "A", "USD", book.lines, {("A", "USD"): M(5000)})
    assert review_credits("O-1", "A", "USD", book.lines, {("A", "USD"): M(5000)}) == first  # pure
    left = M(5000) - sum(d.amount for d in first)
    assert review_credits("O-1", "A", "USD", book.lines, {("A", "USD"): left}) == []
    doc = inspect.getdoc(review_credits)
    assert "never below zero" in doc and "twice" in doc
