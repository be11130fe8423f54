"""Activation of change orders (SPEC sections 3-5): update, renew, cancel, terms, categories, rejections."""
from __future__ import annotations

from decimal import Decimal

import pytest

from connector.engine.activation import OrderRejected
from connector.engine.fiscal import ExplicitFiscalCalendar
from connector.engine.model import Action, ChangeCategory, PricePeriod, Provisioning, TriggerDate
from connector.engine.settings import EngineSettings
from engine_builders import Book, D, M, line, order, tcv


def seats_2023(book: Book | None = None, *, quantity=10, price=100, account="A", item="S-1") -> Book:
    """A book holding S-1: 10 seats at 100/month for calendar 2023 (CMRR 1000)."""
    book = book or Book()
    book.activate(order("O-NEW", account, line("L-NEW", item=item, quantity=quantity, unit_price=price,
                                              start="2023-01-01", end="2023-12-31")))
    return book


# ---------------------------------------------------------------- update

UPDATES = [
    # quantity, price, end, delta, category, CMRR during, CMRR after the update's end (2023-10-01)
    (15, None, None, 500, ChangeCategory.UPSELL, 1500, 1500, "upsell-co-termed"),
    (6, None, None, -400, ChangeCategory.DOWNSELL, 600, 600, "downsell-co-termed"),
    (None, 120, None, 200, ChangeCategory.UPSELL, 1200, 1200, "price-increase-only"),
    (None, 80, None, -200, ChangeCategory.DOWNSELL, 800, 800, "price-decrease-only"),
    (15, None, "2023-09-30", 500, ChangeCategory.UPSELL, 1500, 1000, "explicit-earlier-end-then-back"),
]


@pytest.mark.parametrize("quantity,price,end,delta,category,during,after", [u[:7] for u in UPDATES],
                         ids=[u[7] for u in UPDATES])
def test_update(quantity, price, end, delta, category, during, after):
    book = seats_2023()
    a = book.activate(order("O-UPD", "A", line("L-UPD", Action.UPDATE, item="S-1", quantity=quantity,
                                              unit_price=price, start="2023-07-01", end=end)))
    (ln,) = a.lines
    assert ln.delta_mrr == delta
    assert ln.change_category is category
    assert ln.start == D("2023-07-01")
    assert ln.end == D(end or "2023-12-31")  # co-termed to the subscription's end unless given
    assert book.cmrr("S-1", "2023-06-30") == 1000
    assert book.cmrr("S-1", "2023-07-01") == during
    assert book.cmrr("S-1", "2023-10-01") == after
    assert book.cmrr("S-1", "2024-01-01") == 0
    months = 3 if end else 6
    assert tcv(ln) == delta * months
    (item,) = a.items
    assert item.version == 2 and item.end == D("2023-12-31")


def test_update_rows_show_the_delta_from_its_start():
    book = seats_2023()
    book.activate(order("O-UPD", "A", line("L-UPD", Action.UPDATE, item="S-1", quantity=15, start="2023-07-16")))
    rows = book.rows("L-UPD")
    assert [r.period_start.month for r in rows] == [7, 8, 9, 10, 11, 12]
    assert (rows[0].opening_cmrr, rows[0].closing_cmrr) == (0, 500)
    assert (rows[-1].opening_cmrr, rows[-1].closing_cmrr) == (500, 0)


def test_update_dated_before_an_earlier_activated_later_update_sets_the_total():
    """An update sets a new *total* from its start (SPEC 4), even when a later-dated change exists.

    S-1 runs at 10 seats; an order moves it to 0 seats from October, then a back-dated order moves it
    to 5 seats from July. From July to the end the subscription has 5 seats: never a negative CMRR.
    """
    book = seats_2023()
    book.activate(order("O-OCT", "A", line("L-OCT", Action.UPDATE, item="S-1", quantity=0, start="2023-10-01")))
    a = book.activate(order("O-JUL", "A", line("L-JUL", Action.UPDATE, item="S-1", quantity=5,
                                              start="2023-07-01")))
    assert book.cmrr("S-1", "2023-06-30") == 1000
    for day in ("2023-07-01", "2023-09-30", "2023-10-01", "2023-12-31"):
        assert book.cmrr("S-1", day) == 500, day
        assert book.ledger.quantity_on("S-1", D(day)) == 5, day
    (ln,) = a.lines
    assert ln.delta_mrr == -500 and ln.change_category is ChangeCategory.DOWNSELL
    assert tcv(ln) == -500 * 3 + 500 * 3


# ---------------------------------------------------------------- renew

RENEWALS = [
    (dict(), "2024-12-31", 1000, 12000, "default-term-is-current-term"),
    (dict(term_months=6), "2024-06-30", 1000, 6000, "term-months"),
    (dict(end="2025-12-31"), "2025-12-31", 1000, 24000, "explicit-end"),
    (dict(quantity=12, term_months=12), "2024-12-31", 1200, 14400, "new-quantity"),
    (dict(start="2024-01-01", term_months=12), "2024-12-31", 1000, 12000, "start-given-as-day-after-end"),
]


@pytest.mark.parametrize("extra,end,mrr,value", [r[:4] for r in RENEWALS], ids=[r[4] for r in RENEWALS])
def test_renew_starts_the_day_after_the_end(extra, end, mrr, value):
    book = seats_2023()
    a = book.activate(order("O-REN", "A", line("L-REN", Action.RENEW, item="S-1", **extra)))
    (ln,) = a.lines
    assert (ln.start, ln.end) == (D("2024-01-01"), D(end))
    assert ln.change_category is ChangeCategory.RENEWAL
    assert ln.delta_mrr == mrr
    assert tcv(ln) == value
    assert book.cmrr("S-1", "2023-12-31") == 1000
    assert book.cmrr("S-1", "2024-01-01") == mrr
    assert book.cmrr("S-1", end) == mrr
    assert book.cmrr("S-1", D(end).replace(day=1).replace(year=D(end).year + 1)) == 0
    # The renewal's rows start at the term's first day, so its first row opens at 0.
    rows = book.rows("L-REN")
    assert rows[0].period_start == D("2024-01-01") and rows[0].opening_cmrr == 0
    assert a.items[0].end == D(end)


def test_renew_keeps_the_current_quantity_after_an_update():
    book = seats_2023()
    book.activate(order("O-UPD", "A", line("L-UPD", Action.UPDATE, item="S-1", quantity=16, start="2023-04-01")))
    a = book.activate(order("O-REN", "A", line("L-REN", Action.RENEW, item="S-1")))
    assert a.lines[0].delta_mrr == 1600
    assert book.cmrr("S-1", "2024-06-01") == 1600


def test_renew_with_another_start_is_refused():
    book = seats_2023()
    with pytest.raises(OrderRejected) as err:
        book.activate(order("O-REN", "A", line("L-REN", Action.RENEW, item="S-1", start="2024-02-01", term_months=12)))
    (problem,) = err.value.problems
    assert problem.where == "order O-REN, line L-REN, field start"
    assert "2024-01-01" in problem.message


# ---------------------------------------------------------------- cancel

def test_cancel_mid_term_after_an_update_removes_every_piece():
    book = seats_2023()
    book.activate(order("O-UPD", "A", line("L-UPD", Action.UPDATE, item="S-1", quantity=16, start="2023-04-01")))
    a = book.activate(order("O-CAN", "A", line("L-CAN", Action.CANCEL, item="S-1", start="2023-07-15")))
    (ln,) = a.lines
    assert ln.change_category is ChangeCategory.CHURN
    assert len(ln.segments) >= 2  # the original line's piece and the update's
    assert sum(s.mrr for s in ln.segments) == -1600
    # Delta MRR of a cancel: minus the subscription's CMRR on that date (SPEC section 4).
    assert ln.delta_mrr == -1600
    assert ln.quantity_delta == -16
    assert book.cmrr("S-1", "2023-07-14") == 1600
    for day in ("2023-07-15", "2023-07-16", "2023-09-01", "2023-12-31"):
        assert book.cmrr("S-1", day) == 0, day
        assert book.ledger.quantity_on("S-1", D(day)) == 0, day
    # TCV: minus 1600 over 2023-07-15..2023-12-31 = 5 months + 17/31 (Dec 15 .. Jan 15 has 31 days).
    assert tcv(ln) == (-Decimal(1600) * (5 + Decimal(17) / 31)).quantize(Decimal("0.01"))
    (item,) = a.items
    assert item.status == "cancelled" and item.end == D("2023-07-14")
    # Its rows: July loses 1600 at the close, August..November stay at -1600, December ends at 0
    rows = {r.period_start.month: (r.opening_cmrr, r.closing_cmrr) for r in book.rows("L-CAN")}
    assert rows == {7: (0, -1600), 8: (-1600, -1600), 9: (-1600, -1600), 10: (-1600, -1600),
                    11: (-1600, -1600), 12: (-1600, 0)}
    # ... so over all lines the subscription closes July at zero.
    july = [r for ln_id in ("L-NEW", "L-UPD", "L-CAN") for r in book.rows(ln_id) if r.period_start == D("2023-07-01")]
    assert sum(r.closing_cmrr for r in july) == 0
    assert sum(r.opening_cmrr for r in july) == 1600


def test_cancel_on_the_first_day_leaves_nothing():
    book = seats_2023()
    book.activate(order("O-CAN", "A", line("L-CAN", Action.CANCEL, item="S-1", start="2023-01-01")))
    assert book.cmrr("S-1", "2023-01-01") == 0
    assert tcv(book.line("L-CAN")) == -12000


def test_a_cancelled_subscription_cannot_be_changed_again():
    book = seats_2023()
    book.activate(order("O-CAN", "A", line("L-CAN", Action.CANCEL, item="S-1", start="2023-07-01")))
    for action, extra in ((Action.UPDATE, dict(quantity=3, start="2023-03-01")), (Action.RENEW, {}),
                          (Action.CANCEL, dict(start="2023-05-01")), (Action.TERMS, dict(end="2024-06-30"))):
        with pytest.raises(OrderRejected) as err:
            book.try_activate(order("O-X", "A", line("L-X", action, item="S-1", **extra)))
        assert "cancelled" in str(err.value)


# ---------------------------------------------------------------- terms

def test_terms_extension_is_a_renewal_at_the_current_cmrr():
    book = seats_2023()
    book.activate(order("O-UPD", "A", line("L-UPD", Action.UPDATE, item="S-1", quantity=12, start="2023-06-01")))
    a = book.activate(order("O-T", "A", line("L-T", Action.TERMS, item="S-1", end="2024-03-31")))
    (ln,) = a.lines
    assert ln.change_category is ChangeCategory.RENEWAL
    assert (ln.start, ln.end) == (D("2024-01-01"), D("2024-03-31"))
    assert ln.delta_mrr == 1200
    assert tcv(ln) == 3600
    assert book.cmrr("S-1", "2024-03-31") == 1200
    assert book.cmrr("S-1", "2024-04-01") == 0
    assert a.items[0].end == D("2024-03-31")


def test_terms_shortening_is_churn_over_the_days_given_up():
    book = seats_2023()
    a = book.activate(order("O-T", "A", line("L-T", Action.TERMS, item="S-1", end="2023-09-30")))
    (ln,) = a.lines
    assert ln.change_category is ChangeCategory.CHURN
    assert (ln.start, ln.end) == (D("2023-10-01"), D("2023-12-31"))
    assert ln.delta_mrr == -1000
    assert tcv(ln) == -3000
    assert book.cmrr("S-1", "2023-09-30") == 1000
    assert book.cmrr("S-1", "2023-10-01") == 0
    assert a.items[0].end == D("2023-09-30")


def test_terms_shortening_after_an_update_removes_the_whole_cmrr():
    book = seats_2023()
    book.activate(order("O-UPD", "A", line("L-UPD", Action.UPDATE, item="S-1", quantity=12, start="2023-06-01")))
    a = book.activate(order("O-T", "A", line("L-T", Action.TERMS, item="S-1", end="2023-09-30")))
    (ln,) = a.lines
    assert ln.delta_mrr == -1200
    assert tcv(ln) == -3600
    assert book.cmrr("S-1", "2023-10-01") == 0


def test_terms_given_as_term_months_from_the_term_start():
    book = seats_2023()
    a = book.activate(order("O-T", "A", line("L-T", Action.TERMS, item="S-1", term_months=18)))
    assert a.items[0].end == D("2024-06-30")
    assert a.lines[0].change_category is ChangeCategory.RENEWAL


def test_terms_to_the_current_end_is_refused():
    book = seats_2023()
    with pytest.raises(OrderRejected, match="field end"):
        book.try_activate(order("O-T", "A", line("L-T", Action.TERMS, item="S-1", end="2023-12-31")))


# ---------------------------------------------------------------- New Business / Cross Sell

NEW_LINES = [
    ("A", "2023-06-01", ChangeCategory.CROSS_SELL, "same-account-active-the-day-before"),
    ("A", "2024-01-01", ChangeCategory.CROSS_SELL, "starts-the-day-after-the-last-day"),
    ("A", "2024-01-02", ChangeCategory.NEW_BUSINESS, "a-day-without-cmrr-in-between"),
    ("A", "2023-01-01", ChangeCategory.NEW_BUSINESS, "same-first-day-nothing-the-day-before"),
    ("A", "2022-06-01", ChangeCategory.NEW_BUSINESS, "back-dated-before-the-customer-started"),
    ("B", "2023-06-01", ChangeCategory.NEW_BUSINESS, "another-account"),
]


@pytest.mark.parametrize("account,start,category", [n[:3] for n in NEW_LINES], ids=[n[3] for n in NEW_LINES])
def test_new_business_or_cross_sell(account, start, category):
    book = seats_2023()
    a = book.activate(order("O-2", account, line("L-2", product="SUPPORT", item="S-2", quantity=1,
                                                start=start, term_months=6)))
    assert a.lines[0].change_category is category


def test_new_business_ignores_a_cancelled_subscription():
    book = seats_2023()
    book.activate(order("O-CAN", "A", line("L-CAN", Action.CANCEL, item="S-1", start="2023-03-01")))
    a = book.activate(order("O-2", "A", line("L-2", product="SUPPORT", item="S-2", start="2023-06-01",
                                            term_months=6)))
    assert a.lines[0].change_category is ChangeCategory.NEW_BUSINESS


# ---------------------------------------------------------------- one-time and price periods

def test_one_time_line_has_no_arr_rows_but_counts_in_tcv():
    book = seats_2023()
    a = book.activate(order("O-SETUP", "A", line("L-SETUP", product="SETUP", item="A-1", quantity=2,
                                                start="2023-02-01", end="2023-02-01")))
    (ln,) = a.lines
    assert not ln.recurring
    assert book.rows("L-SETUP") == []
    assert tcv(ln) == 1000
    assert a.account_tcv_delta == 1000
    assert a.items[0].kind is Provisioning.ASSET
    assert book.ledger.account_cmrr_on("A", D("2023-02-01")) == 1000  # unchanged by the fee
    assert a.customer_since is None


PERIODS = [
    ("ANNUAL", 1, "1000", PricePeriod.YEAR, "83.33", "1000.00", "1000.00", "yearly-1000"),
    ("ANNUAL", 7, "1000", PricePeriod.YEAR, "583.33", "7000.00", "7000.00", "yearly-seven-seats"),
    ("QUARTERLY", 1, "300", PricePeriod.QUARTER, "100.00", "1200.00", "1200.00", "quarterly-300"),
    ("QUARTERLY", 1, "1000", PricePeriod.QUARTER, "333.33", "4000.00", "4000.00", "quarterly-1000"),
    ("SEATS", 1, "1200", PricePeriod.YEAR, "100.00", "1200.00", "1200.00", "line-overrides-product-period"),
]


@pytest.mark.parametrize("product,qty,price,period,cmrr,arr,value", [p[:7] for p in PERIODS],
                         ids=[p[7] for p in PERIODS])
def test_yearly_and_quarterly_prices(product, qty, price, period, cmrr, arr, value):
    book = Book()
    a = book.activate(order("O-1", "A", line("L-1", product=product, item="S-1", quantity=qty, unit_price=price,
                                            price_period=period, start="2023-01-01", term_months=12)))
    rows = book.rows("L-1")
    assert len(rows) == 12
    assert (rows[0].opening_cmrr, rows[0].closing_cmrr) == (0, M(cmrr))
    assert (rows[0].opening_arr, rows[0].closing_arr) == (0, M(arr))
    assert (rows[5].opening_arr, rows[5].closing_arr) == (M(arr), M(arr))
    assert (rows[-1].closing_cmrr, rows[-1].closing_arr) == (0, 0)
    assert tcv(a.lines[0]) == M(value)


# ---------------------------------------------------------------- trigger dates

TRIGGERS = [
    (TriggerDate.SERVICE_ACTIVATION, dict(contract_effective="2023-01-01", service_activation="2023-02-01",
                                          customer_acceptance="2023-03-01"), "2023-02-01", "default-service-activation"),
    (TriggerDate.CONTRACT_EFFECTIVE, dict(contract_effective="2023-01-01", service_activation="2023-02-01",
                                          customer_acceptance="2023-03-01"), "2023-01-01", "contract-effective"),
    (TriggerDate.CUSTOMER_ACCEPTANCE, dict(contract_effective="2023-01-01", service_activation="2023-02-01",
                                           customer_acceptance="2023-03-01"), "2023-03-01", "customer-acceptance"),
    (TriggerDate.SERVICE_ACTIVATION, dict(contract_effective="2023-01-10"), "2023-01-10",
     "service-activation-missing-falls-back-to-contract-effective"),
    (TriggerDate.CUSTOMER_ACCEPTANCE, dict(contract_effective="2023-01-10", service_activation="2023-02-01"),
     "2023-01-10", "customer-acceptance-missing-falls-back-to-contract-effective"),
    (TriggerDate.SERVICE_ACTIVATION, dict(), "2022-12-15", "no-trigger-dates-uses-start"),
]


@pytest.mark.parametrize("trigger,dates,start", [t[:3] for t in TRIGGERS], ids=[t[3] for t in TRIGGERS])
def test_trigger_dates_start_service(trigger, dates, start):
    book = Book(settings=EngineSettings(service_start_trigger=trigger))
    a = book.activate(order("O-1", "A", line("L-1", item="S-1", quantity=1, start="2022-12-15", term_months=12,
                                            **dates)))
    (ln,) = a.lines
    assert ln.start == D(start)
    assert ln.end == D(start).replace(year=D(start).year + 1) - (D("2023-01-02") - D("2023-01-01"))
    assert book.cmrr("S-1", start) == 100


# ---------------------------------------------------------------- bill cycle day and links

@pytest.mark.parametrize("order_bcd,account,expected", [(20, "C", 20), (None, "C", 15), (None, "A", 1)],
                         ids=["order-wins", "account-next", "setting-default"])
def test_bill_cycle_day_is_stamped_on_every_item(order_bcd, account, expected):
    book = Book()
    a = book.activate(order("O-1", account, line("L-1", item="S-1", start="2023-01-01", term_months=12),
                            line("L-2", product="SETUP", item="A-1", start="2023-01-01", end="2023-01-01"),
                            line("L-3", product="SUPPORT", item="E-1", start="2023-01-01", term_months=12),
                            bill_cycle_day=order_bcd))
    assert a.bill_cycle_day == expected
    assert {i.bill_cycle_day for i in a.items} == {expected}
    assert {i.kind for i in a.items} == {Provisioning.SUBSCRIPTION, Provisioning.ASSET, Provisioning.ENTITLEMENT}


def test_activation_does_not_change_the_ledger_until_applied():
    book = seats_2023()
    before = (dict(book.ledger.items), {k: list(v) for k, v in book.ledger.segments.items()})
    book.try_activate(order("O-UPD", "A", line("L-UPD", Action.UPDATE, item="S-1", quantity=20, start="2023-03-01"),
                            line("L-2", item="S-2", start="2023-03-01", term_months=3)))
    assert (dict(book.ledger.items), {k: list(v) for k, v in book.ledger.segments.items()}) == before


def test_two_lines_of_one_order_changing_the_same_subscription_see_each_other():
    book = seats_2023()
    a = book.activate(order("O-2", "A", line("L-a", Action.UPDATE, item="S-1", quantity=15, start="2023-03-01"),
                            line("L-b", Action.UPDATE, item="S-1", quantity=12, start="2023-06-01")))
    assert [l.delta_mrr for l in a.lines] == [500, -300]
    assert book.cmrr("S-1", "2023-06-01") == 1200


# ---------------------------------------------------------------- rejections

def rejected(book: Book, o) -> list[tuple[str, str]]:
    with pytest.raises(OrderRejected) as err:
        book.try_activate(o)
    assert f"order {o.id}" in str(err.value)
    return [(p.where, p.message) for p in err.value.problems]


REJECTIONS = [
    (line("L-1", product="NOPE", item="S-9", start="2023-01-01", term_months=12), "product", "NOPE",
     "unknown-product"),
    (line("L-1", Action.UPDATE, item="S-9", quantity=3, start="2023-05-01"), "subscription", "S-9",
     "update-of-unknown-subscription"),
    (line("L-1", Action.UPDATE, item="S-1", quantity=3, start="2024-02-01"), "start", "2024-02-01",
     "update-on-a-day-the-subscription-does-not-run"),
    (line("L-1", Action.UPDATE, item="S-1", quantity=3, start="2022-12-31"), "start", "2022-12-31",
     "update-before-the-subscription-starts"),
    (line("L-1", Action.UPDATE, item="S-1", quantity=3, start="2023-05-01", end="2024-05-01"), "end", "2024-05-01",
     "update-ending-after-the-subscription"),
    (line("L-1", Action.CANCEL, item="S-1", start="2024-03-01"), "start", "2024-03-01", "cancel-outside-service"),
    (line("L-1", item="S-9", start="2023-05-01", end="2023-04-30"), "end", "2023-04-30", "end-before-start"),
    (line("L-1", item="S-9", start="2023-05-01", end="2024-05-31", term_months=12), "end", "2024-04-30",
     "new-end-and-term-disagree"),
    (line("L-1", Action.RENEW, item="S-1", end="2024-12-31", term_months=6), "end", "2024-06-30",
     "renew-end-and-term-disagree"),
    (line("L-1", Action.UPDATE, item="S-1", quantity=3, start="2023-05-01", end="2023-12-31", term_months=3),
     "end", "2023-07-31", "update-end-and-term-disagree"),
    (line("L-1", Action.TERMS, item="S-1", end="2024-12-31", term_months=18), "end", "2024-06-30",
     "terms-end-and-term-disagree"),
    (line("L-1", item="S-1", start="2023-05-01", term_months=12), "subscription", "S-1", "new-with-existing-id"),
    (line("L-1", item="S-9", start="2023-05-01"), "end", "end", "no-end-and-no-term"),
    (line("L-1", item="S-9", quantity=-1, start="2023-05-01", term_months=1), "quantity", "negative",
     "negative-quantity"),
]


@pytest.mark.parametrize("bad_line,field,mentioned", [r[:3] for r in REJECTIONS], ids=[r[3] for r in REJECTIONS])
def test_rejection_names_order_line_and_field(bad_line, field, mentioned):
    book = seats_2023()
    ((where, message),) = rejected(book, order("O-BAD", "A", bad_line))
    assert where == f"order O-BAD, line L-1, field {field}"
    assert mentioned in message


def test_unknown_account_is_named_with_its_field():
    problems = rejected(Book(), order("O-BAD", "Z", line("L-1", item="S-1", start="2023-01-01", term_months=12)))
    assert ("order O-BAD, field account") in [w for w, _ in problems]
    assert any("'Z'" in m for _, m in problems)


def test_every_problem_of_an_order_is_reported_at_once():
    book = seats_2023()
    problems = rejected(book, order(
        "O-BAD", "Z",
        line("L-1", product="NOPE", item="S-8", start="2023-01-01", term_months=12),
        line("L-2", item="S-9", start="2023-01-01", term_months=12),  # fine on its own
        line("L-3", item="S-7", start="2023-05-01", end="2023-04-30"),
        line("L-4", Action.UPDATE, item="S-404", quantity=1, start="2023-05-01"),
        sold_to="Y"))
    wheres = [w for w, _ in problems]
    assert "order O-BAD, field account" in wheres
    assert "order O-BAD, field sold_to" in wheres
    assert "order O-BAD, line L-1, field product" in wheres
    assert "order O-BAD, line L-3, field end" in wheres
    assert "order O-BAD, line L-4, field subscription" in wheres
    assert not any("L-2" in w for w in wheres)


def test_an_order_is_activated_once():
    book = seats_2023()
    problems = rejected(book, order("O-NEW", "A", line("L-X", item="S-X", start="2023-01-01", term_months=1)))
    assert any("already activated" in m for _, m in problems)


EXPLICIT_2023 = ExplicitFiscalCalendar.from_rows(
    [(D(f"2023-{m:02d}-01"), (D(f"2023-{m + 1:02d}-01") if m < 12 else D("2024-01-01")) - (D("2023-01-02") - D("2023-01-01")),
      None, None) for m in range(1, 13)], source="Salesforce Period")


@pytest.mark.parametrize("start,end,field,date", [
    ("2022-12-01", "2023-03-31", "start", "2022-12-01"),
    ("2023-10-01", "2024-03-31", "end", "2024-03-31"),
], ids=["start-before-the-calendar", "end-after-the-calendar"])
def test_a_date_outside_an_explicit_calendar_is_refused(start, end, field, date):
    book = Book(calendar=EXPLICIT_2023)
    ((where, message),) = rejected(book, order("O-1", "A", line("L-1", item="S-1", start=start, end=end)))
    assert where == f"order O-1, line L-1, field {field}"
    assert date in message
    assert "fiscal period" in message


def test_a_line_inside_an_explicit_calendar_is_accepted():
    book = Book(calendar=EXPLICIT_2023)
    book.activate(order("O-1", "A", line("L-1", item="S-1", quantity=1, start="2023-02-01", end="2023-12-31")))
    assert len(book.rows("L-1")) == 11
