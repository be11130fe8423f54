"""Column types that keep money exact on every dialect."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import BigInteger, String
from sqlalchemy.types import TypeDecorator

from fractions import Fraction

from connector.engine.money import STORE_SCALE, exact_text, parse_exact

_UNIT = Decimal(1).scaleb(-STORE_SCALE)
_FACTOR = 10 ** STORE_SCALE


class Money(TypeDecorator):
    """A rounded amount stored as an integer count of 10**-4 units.

    SQLite has no exact decimal type (NUMERIC becomes a float), so amounts that reports add up in
    SQL are integers there and in PostgreSQL alike: sums are exact on both dialects.
    """

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        scaled = Decimal(value).scaleb(STORE_SCALE)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} has more than {STORE_SCALE} decimal places; round it before storing")
        return int(scaled)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return Decimal(int(value)).scaleb(-STORE_SCALE)


class ExactDecimal(TypeDecorator):
    """An unrounded value kept exactly, as text: a Decimal (a price, a quantity), or a rational
    that does not terminate as a decimal (a yearly price / 12) as "numerator/denominator", read
    back as `connector.engine.money.Exact` (engine.money explains what is stored exactly)."""

    impl = String(64)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, Fraction):
            return exact_text(value)
        if isinstance(value, str) and "/" in value:
            return exact_text(parse_exact(value))
        return str(Decimal(value))

    def process_result_value(self, value, dialect):
        return None if value is None else parse_exact(value)
