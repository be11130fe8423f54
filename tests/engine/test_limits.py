"""The store's ranges (engine.limits): values outside them are problems with their place, for every origin.

Activation is where an order from Salesforce and one from a file meet, so these tests hand it
`LineInput`s directly: no value may end in `decimal.InvalidOperation` or an overflow, and every
amount of a line that passes fits a money column.
"""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st
from engine_builders import Book, line, order

from connector.engine import limits
from connector.engine.activation import OrderRejected
from connector.engine.model import PricePeriod, Product, Provisioning


@pytest.mark.parametrize("value, words", [
    (Decimal("1e30"), "larger than the store can hold"),
    (Decimal("1E+400"), "larger than the store can hold"),
    (Decimal("NaN"), "finite number"),
    (Decimal("-Infinity"), "finite number"),
    (Decimal("-1"), "cannot be below 0"),
    (Decimal("0.0000000000001"), "more than 12 decimal places"),
], ids=["1e30", "1e400", "nan", "-inf", "negative", "13-places"])
def test_out_of_range_quantities_are_named(value, words):
    assert words in limits.check_quantity(value)


@pytest.mark.parametrize("value", [Decimal(0), Decimal("1e9"), Decimal("0.000000000001"), Decimal("12.50")],
                         ids=["zero", "max", "12-places", "trailing-zero"])
def test_in_range_quantities_pass(value):
    assert limits.check_quantity(value) is None


def test_the_column_limit_is_a_bigint_of_ten_thousandths():
    assert limits.MAX_STORED_AMOUNT == Decimal("922337203685477.5807")
    # the largest line amount leaves room for many lines in one account's total
    assert limits.MAX_LINE_AMOUNT * 50 < limits.MAX_STORED_AMOUNT


def _problems(o, book: Book | None = None) -> list[str]:
    with pytest.raises(OrderRejected) as caught:
        (book or Book()).try_activate(o)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("fields, where, words", [
    (dict(quantity="1e30"), "field quantity", "larger than the store can hold"),
    (dict(unit_price="1E+400"), "field unit_price", "larger than the store can hold"),
    (dict(unit_price=Decimal("NaN")), "field unit_price", "finite number"),
    (dict(quantity="1000000000", unit_price="1000"), "field quantity × unit_price", "a month per line"),
    (dict(end="9999-12-31"), "field end", "outside the dates the engine accepts"),
    (dict(end=None, term_months=100000), "field term_months", "between 1 and 1200"),
    (dict(start="1990-01-01", end="2100-01-01"), "field end", "more than 1200 months"),
], ids=["quantity-1e30", "price-1e400", "price-nan", "mrr", "end-9999", "term", "span"])
def test_activation_rejects_values_beyond_the_limits(fields, where, words):
    fields = {"start": "2023-01-01", "end": "2023-12-31", **fields}
    fields = {k: v for k, v in fields.items() if v is not None}
    problems = _problems(order("O-1", "A", line("L-1", **fields)))
    assert any(p.startswith(f"order O-1, line L-1, {where}:") and words in p for p in problems), problems


def test_a_product_list_price_beyond_the_limit_is_named():
    book = Book()
    book.products["HUGE"] = Product("HUGE", "Huge", Provisioning.SUBSCRIPTION, Decimal("1e20"), PricePeriod.YEAR)
    problems = _problems(order("O-1", "A", line("L-1", product="HUGE", start="2023-01-01", end="2023-12-31")), book)
    assert problems == ["order O-1, line L-1, field product: the list price of product 'HUGE' 1E+20 is larger "
                        "than the store can hold: at most 1,000,000,000 (see the limits in README.md)"]


def test_list_prices_told_once_per_price_still_name_each_product():
    """A list price is checked once per value, not once per line: a product whose equal price passed
    passes, one beyond the limit is named with its own id and price as written, however many times."""
    book = Book()
    book.products["A"] = Product("A", "A", Provisioning.SUBSCRIPTION, Decimal("1200"), PricePeriod.YEAR)
    book.products["B"] = Product("B", "B", Provisioning.SUBSCRIPTION, Decimal("1200.00"), PricePeriod.YEAR)
    book.products["C"] = Product("C", "C", Provisioning.SUBSCRIPTION, Decimal("2E+9"), PricePeriod.YEAR)
    book.products["D"] = Product("D", "D", Provisioning.SUBSCRIPTION, Decimal("2000000000"), PricePeriod.YEAR)
    for n in range(2):
        a = book.activate(order(f"O-{n}", "A", line(f"A-{n}", product="A", start="2023-01-01", end="2023-12-31"),
                                line(f"B-{n}", product="B", start="2023-01-01", end="2023-12-31")))
        assert [l.list_price_monthly for l in a.lines] == [100, 100]
        for product, written in (("C", "2E+9"), ("D", "2000000000")):
            problems = _problems(order(f"X-{n}", "A", line(f"X-{n}", product=product, start="2023-01-01",
                                                          end="2023-12-31")), book)
            assert problems == [f"order X-{n}, line X-{n}, field product: the list price of product {product!r} "
                                f"{written} is larger than the store can hold: at most 1,000,000,000 (see the "
                                "limits in README.md)"]


def test_the_largest_line_fits_and_its_amounts_stay_within_the_line_limit():
    book = Book()
    book.products["BIG"] = Product("BIG", "Big", Provisioning.SUBSCRIPTION, Decimal(10), PricePeriod.MONTH)
    a = book.activate(order("O-1", "A", line("L-1", product="BIG", quantity="1000000000", unit_price="10",
                                             start="2000-01-01", end="2099-12-31")))
    (only,) = a.lines
    assert only.tcv == limits.MAX_LINE_AMOUNT
    assert limits.line_amount_problems(only) == []


@settings(max_examples=500, deadline=None)
@given(digits=st.integers(-10**22, 10**22), exponent=st.integers(-12, 6))
def test_values_told_to_fit_are_those_the_checks_pass(digits, exponent):
    """`fits_quantity` and `fits_price` remember what passed by value: the same answer as the
    check for every value, whatever zeros it is written with, asked before or after an equal one."""
    from connector.engine.limits import check_price, check_quantity, fits_price, fits_quantity
    value = Decimal(digits).scaleb(exponent)
    for written in (value, value.normalize(), value.quantize(Decimal(1).scaleb(min(exponent, 0) - 3))
                    if abs(value) < 10**20 else value):
        assert fits_quantity(written) == (check_quantity(written) is None)
        assert fits_price(written) == (check_price(written) is None)
