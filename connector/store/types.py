"""Column types that keep money exact and points in time UTC on every dialect."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import BigInteger, DateTime, String
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


class UtcDateTime(TypeDecorator):
    """A point in time: aware datetimes in, aware UTC datetimes out, on every dialect.

    Stored as `DateTime(timezone=True)` always was: `timestamp with time zone` on PostgreSQL, and
    on SQLite the text SQLAlchemy writes for a datetime ("2026-12-01 02:24:28.123456") holding
    the UTC wall time without an offset, which SQLite hands back naive: read back here as UTC.
    An aware datetime in another zone is converted to UTC before it is stored (SQLite would
    otherwise keep its local wall time as if it were UTC).

    A naive datetime is refused (ValueError) rather than guessed: the store cannot tell whether
    it meant UTC or local time, and every clock and parser of revsync gives aware UTC values.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise ValueError(f"{value!r} is not a datetime; a timestamp column takes an aware datetime")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{value.isoformat()} is a naive datetime; the store keeps timestamps in UTC: "
                             "give an aware one (datetime.now(timezone.utc), or .replace(tzinfo=timezone.utc) "
                             "when it is known to be UTC)")
        utc = value.astimezone(dt.timezone.utc)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite: the UTC wall time, as stored above
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)  # PostgreSQL: in the session's time zone
