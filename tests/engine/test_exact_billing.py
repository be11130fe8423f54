"""Issue 9: TCB does not depend on the billing frequency, and amounts are rounded once, exactly.

Every figure below is worked out by hand in the comments (MRR 100 a month unless said otherwise).
A partial billing period counts its whole months from its start (on the bill cycle day), then its
leftover days, each at 1/(days of the calendar month it falls in) (SPEC section 6).
"""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from connector.engine.activation import line_tcv, monthly_price
from connector.engine.billing import billing_schedule, billing_total, partial
from connector.engine.metrics import order_metrics
from connector.engine.model import BillingFrequency, PricePeriod, Product, Provisioning
from connector.engine.money import Exact, exact_text, parse_exact, round_money
from engine_builders import Book, D, M, line, order

MONTH, QUARTER, YEAR = BillingFrequency.MONTH, BillingFrequency.QUARTER, BillingFrequency.YEAR

# (bill cycle day, start, end, expected schedule per frequency: [(start, end, amount)], TCB)
TCB_CASES = [
    # BCD 15, 2023-01-15..2023-04-14: exactly three months on every frequency.
    # monthly: three full months, 3 × 100; quarterly: one full quarter, 300;
    # yearly: one period cut short at the end: whole months Jan 15→Feb 15→Mar 15→Apr 15 = 3, no days
    # left, so 300.00 (it was 17/31 + 1 + 1 + 14/30 = 3.0151 months = 301.51 before).
    (15, "2023-01-15", "2023-04-14", {
        MONTH: [("2023-01-15", "2023-02-14", "100.00"), ("2023-02-15", "2023-03-14", "100.00"),
                ("2023-03-15", "2023-04-14", "100.00")],
        QUARTER: [("2023-01-15", "2023-04-14", "300.00")],
        YEAR: [("2023-01-15", "2023-04-14", "300.00")],
    }, "300.00", "bcd15-three-months"),
    # BCD 15, 2023-01-15..2023-05-05: three whole months, then April 15..30 (16 days of 30) and
    # May 1..5 (5 days of 31): 100 × (16/30 + 5/31) = 53.3333… + 16.1290… = 69.4623… → 69.46.
    # Monthly and quarterly bill 300 then 69.46; yearly bills one period of 369.4623… → 369.46.
    (15, "2023-01-15", "2023-05-05", {
        MONTH: [("2023-01-15", "2023-02-14", "100.00"), ("2023-02-15", "2023-03-14", "100.00"),
                ("2023-03-15", "2023-04-14", "100.00"), ("2023-04-15", "2023-05-05", "69.46")],
        QUARTER: [("2023-01-15", "2023-04-14", "300.00"), ("2023-04-15", "2023-05-05", "69.46")],
        YEAR: [("2023-01-15", "2023-05-05", "369.46")],
    }, "369.46", "bcd15-leftover-days-across-two-months"),
    # BCD 1, 2023-01-15..2023-04-14. The first bill cycle day is Feb 1.
    # Leading period Jan 15..31: 17/31 × 100 = 54.8387… → 54.84 on every frequency.
    # Monthly: Feb 100, Mar 100, Apr 1..14: 14/30 × 100 = 46.6666… → 46.67; total 301.51.
    # Quarterly and yearly: one period from Feb 1 cut short: whole months Feb 1→Mar 1→Apr 1 = 2,
    # then Apr 1..14 = 14/30: 246.6666… → 246.67; total 54.84 + 246.67 = 301.51.
    (1, "2023-01-15", "2023-04-14", {
        MONTH: [("2023-01-15", "2023-01-31", "54.84"), ("2023-02-01", "2023-02-28", "100.00"),
                ("2023-03-01", "2023-03-31", "100.00"), ("2023-04-01", "2023-04-14", "46.67")],
        QUARTER: [("2023-01-15", "2023-01-31", "54.84"), ("2023-02-01", "2023-04-14", "246.67")],
        YEAR: [("2023-01-15", "2023-01-31", "54.84"), ("2023-02-01", "2023-04-14", "246.67")],
    }, "301.51", "bcd1-start-mid-month"),
    # BCD 1, 2023-01-01..2023-08-31: whole calendar months, 8 × 100 = 800.
    # Quarterly: Jan–Mar 300, Apr–Jun 300, Jul 1..Aug 31 = 2 whole months 200.
    # Yearly: one period cut short: 8 whole months, 800.
    (1, "2023-01-01", "2023-08-31", {
        QUARTER: [("2023-01-01", "2023-03-31", "300.00"), ("2023-04-01", "2023-06-30", "300.00"),
                  ("2023-07-01", "2023-08-31", "200.00")],
        YEAR: [("2023-01-01", "2023-08-31", "800.00")],
    }, "800.00", "bcd1-calendar-months"),
    # BCD 31, 2023-01-31..2023-05-30: bill cycle dates Jan 31, Feb 28, Mar 31, Apr 30, May 31
    # (31 clamped to each month's last day): exactly 4 months, 400.00 on every frequency.
    # Quarterly: Jan 31..Apr 29 = 300, then Apr 30..May 30 = 1 whole month (to May 31) = 100.
    (31, "2023-01-31", "2023-05-30", {
        MONTH: [("2023-01-31", "2023-02-27", "100.00"), ("2023-02-28", "2023-03-30", "100.00"),
                ("2023-03-31", "2023-04-29", "100.00"), ("2023-04-30", "2023-05-30", "100.00")],
        QUARTER: [("2023-01-31", "2023-04-29", "300.00"), ("2023-04-30", "2023-05-30", "100.00")],
        YEAR: [("2023-01-31", "2023-05-30", "400.00")],
    }, "400.00", "bcd31-month-ends"),
    # BCD 31, 2023-02-10..2023-08-09. First bill cycle day Feb 28 (31 clamped).
    # Leading Feb 10..27: 18/28 × 100 = 64.2857… → 64.29.
    # Monthly: Feb 28, Mar 31, Apr 30, May 31, Jun 30 start 5 full months (500), then Jul 31..Aug 9:
    # 1/31 (Jul 31) + 9/31 (Aug 1..9) = 10/31 × 100 = 32.2580… → 32.26; total 596.55.
    # Quarterly: Feb 28..May 30 = 300; May 31..Aug 9: whole months to Jun 30, Jul 31 = 2, then
    # 10/31: 232.2580… → 232.26; total 64.29 + 300 + 232.26 = 596.55.
    # Yearly: Feb 28..Aug 9: whole months to Mar 31, Apr 30, May 31, Jun 30, Jul 31 = 5, then 10/31:
    # 532.2580… → 532.26; total 64.29 + 532.26 = 596.55.
    (31, "2023-02-10", "2023-08-09", {
        QUARTER: [("2023-02-10", "2023-02-27", "64.29"), ("2023-02-28", "2023-05-30", "300.00"),
                  ("2023-05-31", "2023-08-09", "232.26")],
        YEAR: [("2023-02-10", "2023-02-27", "64.29"), ("2023-02-28", "2023-08-09", "532.26")],
    }, "596.55", "bcd31-leading-and-trailing"),
    # BCD 15 across a leap February, yearly: 2024-01-15..2024-03-20. Whole months Jan 15→Feb 15→
    # Mar 15 = 2, then Mar 15..20 = 6/31: 200 + 19.3548… = 219.35. Monthly: 100, 100, 6/31 → 19.35.
    (15, "2024-01-15", "2024-03-20", {
        MONTH: [("2024-01-15", "2024-02-14", "100.00"), ("2024-02-15", "2024-03-14", "100.00"),
                ("2024-03-15", "2024-03-20", "19.35")],
        QUARTER: [("2024-01-15", "2024-03-20", "219.35")],
        YEAR: [("2024-01-15", "2024-03-20", "219.35")],
    }, "219.35", "bcd15-leap-year"),
]


def _line(bcd, start, end, frequency, product="SEATS", quantity=1, unit_price=100):
    book = Book()
    book.activate(order("O", "A", line("L", product=product, item="S", quantity=quantity, unit_price=unit_price,
                                       start=start, end=end, billing_frequency=frequency),
                        bill_cycle_day=bcd))
    return book.line("L")


@pytest.mark.parametrize("bcd,start,end,schedules,tcb", [c[:5] for c in TCB_CASES], ids=[c[5] for c in TCB_CASES])
def test_tcb_does_not_depend_on_the_billing_frequency(bcd, start, end, schedules, tcb):
    for frequency in (MONTH, QUARTER, YEAR):
        ln = _line(bcd, start, end, frequency)
        total = billing_total(ln, "USD")
        assert total == M(tcb), frequency
        periods = billing_schedule(ln, "USD")
        assert sum(p.amount for p in periods) == total, frequency  # the total is the schedule's sum
        if frequency in schedules:
            assert [(str(p.start), str(p.end), str(p.amount)) for p in periods] == schedules[frequency], frequency
        (tcb_row,) = [m for m in order_metrics(ln, "USD", ("tcb",))]
        assert tcb_row.amount == M(tcb)


def test_partial_counts_whole_months_first():
    # 2017-02-27..2018-01-31 (end_excl 2018-02-01): 11 whole months to 2018-01-27, then Jan 27..31 = 5/31
    assert partial(M(3100), D("2017-02-27"), D("2018-02-01")) == 11 * 3100 + 500
    # less than a month: only days, each over its own month: Jan 20..31 = 12/31, Feb 1..14 = 14/28
    assert partial(M(3100), D("2023-01-20"), D("2023-02-15")) == 1200 + Exact(3100 * 14, 28)


# Rounding once, exactly. (price, period, quantity, months of term, MRR, ARR, TCV)
ROUNDING_CASES = [
    # 2.0049999995 a month: MRR 2.0049999995 → 2.00 (it became 2.01 through a 9-place cut before);
    # ARR 24.059999994 → 24.06; three months' TCV 6.0149999985 → 6.01 (6.02 before).
    ("2.0049999995", PricePeriod.MONTH, "1", 3, "2.00", "24.06", "6.01", "nine-places-not-cut"),
    # 24.06 a year: MRR exactly 2.005 → 2.01 (half-up); ARR 24.06; TCV 12 months 24.06.
    ("24.06", PricePeriod.YEAR, "1", 12, "2.01", "24.06", "24.06", "yearly-exact-half-cent"),
    # 24.059999994 a year: MRR 2.0049999995 → 2.00; ARR 24.059999994 → 24.06.
    ("24.059999994", PricePeriod.YEAR, "1", 12, "2.00", "24.06", "24.06", "yearly-just-below-half"),
    # 0.000000000006 a year × 10^9 seats = 0.006 a year: ARR 0.006 → 0.01, MRR 0.0005 → 0.00,
    # TCV 0.006 → 0.01. The 12-place monthly price (5e-13 cut to 0E-12) made all three 0.00 before.
    ("0.000000000006", PricePeriod.YEAR, "1000000000", 12, "0.00", "0.01", "0.01", "tiny-yearly-price"),
    # 1000 a year: MRR 83.3333… → 83.33, ARR exactly 1000.00, TCV 7 months 583.3333… → 583.33.
    ("1000", PricePeriod.YEAR, "1", 7, "83.33", "1000.00", "583.33", "yearly-thirds"),
    # 100 a quarter, 7 seats: MRR 233.3333… → 233.33, ARR 2800.00, TCV 5 months 1166.6666… → 1166.67.
    ("100", PricePeriod.QUARTER, "7", 5, "233.33", "2800.00", "1166.67", "quarterly-thirds"),
]


@pytest.mark.parametrize("price,period,quantity,months,mrr,arr,tcv", [c[:7] for c in ROUNDING_CASES],
                         ids=[c[7] for c in ROUNDING_CASES])
def test_amounts_are_rounded_once(price, period, quantity, months, mrr, arr, tcv):
    book = Book()
    book.products["P"] = Product("P", "P", Provisioning.SUBSCRIPTION, M(price), period)
    end = {3: "2023-03-31", 5: "2023-05-31", 7: "2023-07-31", 12: "2023-12-31"}[months]
    book.activate(order("O", "A", line("L", product="P", item="S", quantity=quantity, start="2023-01-01", end=end)))
    ln = book.line("L")
    assert round_money(ln.delta_mrr, "USD") == M(mrr)
    rows = book.rows("L")
    assert (rows[0].closing_cmrr, rows[0].closing_arr) == (M(mrr), M(arr))
    assert round_money(line_tcv(ln), "USD") == M(tcv)
    metrics = {m.metric: m.amount for m in order_metrics(ln, "USD", ("mrr", "tcv"))}
    assert (metrics["mrr"], metrics["tcv"]) == (M(mrr), M(tcv))


def test_a_cancellation_brings_cmrr_back_to_exactly_zero():
    # 1000 a year is 250/3 a month; cancelling removes exactly that, no 1e-12 left behind.
    book = Book()
    book.activate(order("O-1", "A", line("L-1", product="ANNUAL", item="S", start="2023-01-01", end="2023-12-31")))
    book.activate(order("O-2", "A", line("L-2", "cancel", product="ANNUAL", item="S", start="2023-05-01")))
    assert book.cmrr("S", "2023-04-30") == Exact(250, 3)
    assert book.cmrr("S", "2023-05-01") == 0


@pytest.mark.parametrize("value,text", [
    (Exact(250, 3), "250/3"), (Exact(5, 4), "1.25"), (Exact(-7, 20), "-0.35"), (Decimal("0.10"), "0.10"),
    (monthly_price(M("0.145"), PricePeriod.YEAR), "29/2400"),
], ids=["third", "terminating", "negative", "decimal-as-is", "yearly-price"])
def test_exact_values_are_stored_exactly(value, text):
    assert exact_text(value) == text
    assert parse_exact(text) == value


@pytest.mark.parametrize("amount,currency,expected", [
    (Exact(29, 200), "USD", "0.15"),   # 0.145 exactly: half-up
    (Exact(-29, 200), "USD", "-0.15"),  # away from zero
    (Exact(1, 3), "JPY", "0"), (Exact(5, 2), "JPY", "3"), (Exact(10005, 10000), "KWD", "1.001"),
    (Decimal("2.0049999995"), "USD", "2.00"), (Decimal("2.005"), "USD", "2.01"),
], ids=["half-up", "negative", "jpy-third", "jpy-half", "kwd", "decimal-below-half", "decimal-half"])
def test_round_money_exact(amount, currency, expected):
    out = round_money(amount, currency)
    assert str(out) == expected and isinstance(out, Decimal)


def test_exact_text_remembered_is_the_text_worked_out(monkeypatch):
    """An Exact's text is remembered by its numerator and denominator: asked again (and for an
    equal value made anew) it is the text worked out the first time, and once the memory is full
    new values are worked out without being kept."""
    from connector.engine import money
    monkeypatch.setattr(money, "_TEXTS", {})
    monkeypatch.setattr(money, "_TEXTS_MAX", 3)
    values = [Exact(250, 3), Exact(5, 4), Exact(-7, 20), Exact(1, 7), Exact(12, 1)]
    first = [exact_text(v) for v in values]
    assert first == ["250/3", "1.25", "-0.35", "1/7", "12"]
    assert [exact_text(Exact(v.numerator, v.denominator)) for v in values] == first
    assert [exact_text(Fraction(v.numerator, v.denominator)) for v in values] == first  # not remembered: the same
    assert len(money._TEXTS) == 3 and money._TEXTS[(250, 3)] == "250/3"
