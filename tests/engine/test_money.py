"""Money: exact Decimals, rounded half-up to the currency's minor unit (SPEC section 5)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from connector.engine.money import minor_unit, round_money, to_decimal

ROUNDING = [
    ("2.5", "JPY", "3", "jpy-half-up-to-yen"),
    ("2.4999", "JPY", "2", "jpy-below-half"),
    ("1000.5", "jpy", "1001", "currency-code-case-insensitive"),
    ("1.0005", "BHD", "1.001", "bhd-three-places-half-up"),
    ("1.00049", "BHD", "1.000", "bhd-below-half"),
    ("0.125", "USD", "0.13", "usd-half-up-not-bankers"),
    ("0.135", "USD", "0.14", "usd-half-up-odd"),
    ("0.124", "USD", "0.12", "usd-below-half"),
    ("2.675", "USD", "2.68", "usd-no-float-trap"),
    ("83.333333333333", "USD", "83.33", "yearly-1000-monthly"),
    ("999.99999999999999999999996", "USD", "1000.00", "twelve-times-a-third"),
    ("7", "EUR", "7.00", "other-currency-two-places"),
    ("-0.125", "USD", "-0.13", "negative-half-away-from-zero"),
]


@pytest.mark.parametrize("amount,currency,expected", [r[:3] for r in ROUNDING], ids=[r[3] for r in ROUNDING])
def test_round_money(amount, currency, expected):
    rounded = round_money(Decimal(amount), currency)
    assert rounded == Decimal(expected)
    assert rounded.as_tuple().exponent == Decimal(expected).as_tuple().exponent


@pytest.mark.parametrize("currency,places", [("JPY", 0), ("BHD", 3), ("USD", 2), ("EUR", 2), ("KWD", 3)],
                         ids=["JPY", "BHD", "USD", "EUR", "KWD"])
def test_minor_unit(currency, places):
    assert minor_unit(currency) == places


@pytest.mark.parametrize("value,expected", [(0.1, "0.1"), (3, "3"), (" 12.50 ", "12.50"), (Decimal("1.1"), "1.1")],
                         ids=["float-through-repr", "int", "string-stripped", "decimal"])
def test_to_decimal_is_exact(value, expected):
    assert to_decimal(value) == Decimal(expected)
    assert str(to_decimal(value)) == expected


@pytest.mark.parametrize("value", [True, None, [1]], ids=["bool", "none", "list"])
def test_to_decimal_refuses_non_amounts(value):
    with pytest.raises(TypeError):
        to_decimal(value)
