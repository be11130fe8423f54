"""Evergreen lines (SPEC section 7, issue 9): materialized up to a horizon, extended as time passes.

Horizon 3 months; 10 seats at 100 = 1000 a month; account A bills on day 1 (the default).
Every figure is worked out by hand in the comments.
"""
from __future__ import annotations

import pytest

from connector.engine.activation import OrderRejected, line_tcv
from connector.engine.arr_by_period import arr_rows
from connector.engine.billing import billing_total
from connector.engine.evergreen import extend_line, horizon
from connector.engine.money import round_money
from connector.engine.settings import EngineSettings
from engine_builders import Book, D, M, line, order

SETTINGS = EngineSettings(evergreen_horizon_months=3)


def book_with_evergreen() -> Book:
    book = Book(settings=SETTINGS)
    book.activate(order("O-1", "A", line("L-1", item="S-1", quantity=10, start="2023-01-15", evergreen=True)))
    return book


def rows(line_, calendar):
    return [(str(r.period_start)[:7], str(r.opening_cmrr), str(r.closing_cmrr)) for r in arr_rows(line_, "USD", calendar)]


def test_first_horizon_is_the_horizon_after_the_start():
    book = book_with_evergreen()
    ln = book.line("L-1")
    # add_months(2023-01-15, 3) = 2023-04-15: the line and its subscription are materialized to it
    assert (ln.end, book.ledger.items["S-1"].end, ln.evergreen, book.ledger.items["S-1"].evergreen) == \
        (D("2023-04-15"), D("2023-04-15"), True, True)
    # Rows up to the period holding the horizon (April); the line runs on, so April closes at 1000.
    assert rows(ln, book.calendar) == [("2023-01", "0.00", "1000.00"), ("2023-02", "1000.00", "1000.00"),
                                       ("2023-03", "1000.00", "1000.00"), ("2023-04", "1000.00", "1000.00")]
    # TCV over [2023-01-15, 2023-04-16): 3 whole months + 1 day of the month Apr 15..May 14 (30 days)
    # = 3000 + 33.333… = 3033.33
    assert round_money(line_tcv(ln), "USD") == M("3033.33")
    # TCB (monthly, day 1): Jan 15..31 17/31 × 1000 = 548.39, Feb 1000, Mar 1000, Apr 1..15 15/30 = 500.00
    assert billing_total(ln, "USD") == M("3048.39")


# (today, horizon's last day, rows added after April, TCV, TCB)
EXTENSIONS = [
    # 2023-06-10 + 3 months = 2023-09-10. New rows May..Sep, 1000 → 1000.
    # TCV [Jan 15, Sep 11): 7 whole months (to Aug 15) + Aug 15..Sep 10 = 27 days of 31 (Aug 15..Sep 14):
    # 7000 + 870.967… = 7870.97.
    # TCB: 548.39 + Feb..Aug 7 × 1000 + Sep 1..10 10/30 × 1000 = 333.33 → 7881.72.
    ("2023-06-10", "2023-09-10", ["2023-05", "2023-06", "2023-07", "2023-08", "2023-09"], "7870.97", "7881.72"),
    # 2023-01-31 + 3 months = 2023-04-30 (month end): one more day than the first horizon, no new period.
    # TCV [Jan 15, May 1): 3 whole months + 16 days of 30 (Apr 15..May 14) = 3000 + 533.33 = 3533.33.
    # TCB: 548.39 + 1000 + 1000 + April whole 1000 = 3548.39.
    ("2023-01-31", "2023-04-30", [], "3533.33", "3548.39"),
]


@pytest.mark.parametrize("today,through,added,tcv,tcb", EXTENSIONS, ids=["june", "month-end"])
def test_extension_moves_the_horizon_and_adds_rows_only(today, through, added, tcv, tcb):
    book = book_with_evergreen()
    before = list(arr_rows(book.line("L-1"), "USD", book.calendar))
    assert horizon(D(today), SETTINGS) == D(through)
    after = extend_line(book.line("L-1"), D(through))
    assert after.end == D(through) and after.segments[0].end_excl == D(through) + (D("2023-01-02") - D("2023-01-01"))
    new_rows = list(arr_rows(after, "USD", book.calendar))
    assert new_rows[:len(before)] == before  # rows never change
    assert [(str(r.period_start)[:7], str(r.opening_cmrr), str(r.closing_cmrr)) for r in new_rows[len(before):]] == \
        [(m, "1000.00", "1000.00") for m in added]
    assert round_money(line_tcv(after), "USD") == M(tcv)
    assert billing_total(after, "USD") == M(tcb)
    # run again, or with an earlier day: nothing to do
    assert extend_line(after, D(through)) is None
    assert extend_line(after, D("2023-02-01")) is None


def test_a_co_termed_update_runs_on_with_the_subscription():
    book = book_with_evergreen()
    # 16 seats from 2023-03-01: +600, co-termed with the evergreen subscription, so evergreen too
    book.activate(order("O-2", "A", line("L-2", "update", item="S-1", quantity=16, start="2023-03-01")))
    up = book.line("L-2")
    assert (up.evergreen, up.end) == (True, D("2023-04-15"))
    assert rows(up, book.calendar) == [("2023-03", "0.00", "600.00"), ("2023-04", "600.00", "600.00")]
    # TCV [Mar 1, Apr 16): 1 whole month + 15 days of 30 (Apr 1..30) = 1.5 × 600 = 900.00
    assert round_money(line_tcv(up), "USD") == M("900.00")
    longer = extend_line(up, D("2023-06-30"))
    assert rows(longer, book.calendar)[2:] == [("2023-05", "600.00", "600.00"), ("2023-06", "600.00", "600.00")]
    # an update with its own end stops there: not evergreen
    book.activate(order("O-3", "A", line("L-3", "update", item="S-1", quantity=20, start="2023-03-10",
                                         end="2023-03-31")))
    assert book.line("L-3").evergreen is False


def test_a_cancellation_in_the_horizon_period_closes_at_zero():
    book = book_with_evergreen()
    book.activate(order("O-2", "A", line("L-X", "cancel", item="S-1", start="2023-04-10")))
    cancel = book.line("L-X")
    item = book.ledger.items["S-1"]
    assert (cancel.evergreen, item.evergreen, item.status, item.end) == (True, False, "cancelled", D("2023-04-09"))
    # April: the evergreen line 1000 → 1000 (it runs on), the cancellation 0 → -1000 (its removal
    # runs on too): together 1000 → 0, and nothing after.
    assert rows(cancel, book.calendar) == [("2023-04", "0.00", "-1000.00")]
    april = [r for l in ("L-1", "L-X") for r in arr_rows(book.line(l), "USD", book.calendar)
             if str(r.period_start) == "2023-04-01"]
    assert (sum(r.opening_cmrr for r in april), sum(r.closing_cmrr for r in april)) == (M(1000), M(0))
    # TCV of the cancellation: -(Apr 10..15 = 6 days of 30 (Apr 10..May 9)) × 1000 = -200.00
    assert round_money(line_tcv(cancel), "USD") == M("-200.00")
    assert book.cmrr("S-1", "2023-04-09") == 1000 and book.cmrr("S-1", "2023-04-10") == 0


def test_terms_gives_an_evergreen_subscription_an_end():
    book = book_with_evergreen()
    book.activate(order("O-2", "A", line("L-T", "terms", item="S-1", end="2023-03-31")))
    terms = book.line("L-T")
    item = book.ledger.items["S-1"]
    assert (terms.evergreen, item.evergreen, item.end) == (True, False, D("2023-03-31"))
    # the removal starts on Apr 1: April 0 → -1000; with the evergreen line's 1000 → 1000, April is 1000 → 0
    assert rows(terms, book.calendar) == [("2023-04", "0.00", "-1000.00")]


REFUSED = [
    (line("L-2", item="S-2", quantity=1, start="2023-01-01", end="2023-12-31", evergreen=True), "evergreen",
     "an evergreen line has no end"),
    (line("L-2", item="S-2", quantity=1, start="2023-01-01", term_months=12, evergreen=True), "evergreen",
     "an evergreen line has no end"),
    (line("L-2", item="S-2", quantity=1, start="2023-01-01"), "end", "`\"evergreen\": true`"),
    (line("L-2", "renew", item="S-1"), "subscription", "is evergreen: it runs until cancelled"),
    (line("L-2", "terms", item="S-1", end="2023-06-30"), "end", "materialized up to 2023-04-15"),
    (line("L-2", "update", item="S-1", quantity=3, start="2023-02-01", evergreen=True), "evergreen",
     "only a `new` line can be evergreen"),
    (line("L-2", product="SETUP", item="S-2", start="2023-01-01", evergreen=True), "evergreen",
     "a one-time charge cannot be evergreen"),
]


@pytest.mark.parametrize("bad,field,message", REFUSED, ids=["end-given", "term-given", "no-end-not-evergreen",
                                                            "renew", "terms-past-horizon", "update-marked",
                                                            "one-time"])
def test_refused(bad, field, message):
    book = book_with_evergreen()
    with pytest.raises(OrderRejected) as caught:
        book.activate(order("O-2", "A", bad))
    (problem,) = caught.value.problems
    assert problem.where.endswith(f"field {field}") and message in problem.message, problem
