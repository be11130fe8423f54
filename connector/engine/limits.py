"""The ranges the store can hold, and checks that name a value outside them (pure; no I/O).

Money is stored as a BIGINT count of 10**-4 units (connector/store/types.py `Money`) on SQLite and
PostgreSQL alike, so no stored amount may exceed (2**63 - 1) / 10**4 = 922,337,203,685,477.5807.
Quantities and prices are stored as text (`ExactDecimal`, at most 64 characters) and ids in
columns of 64 characters (connector/store/schema.py).

The bounds below are chosen so that every amount a line produces fits with room to spare:

- a line's monthly amount (quantity × monthly price, and quantity × monthly list price) is at most
  ``MAX_LINE_MRR`` = 10**10, so its ARR (12 × CMRR) is at most 1.2 × 10**11;
- a line spans at most ``MAX_TERM_MONTHS`` = 1,200 months (100 years), so its TCV, TCB and ELP are
  at most 10**10 × 1,200 = 1.2 × 10**13, and a one-time charge (quantity × price) is held to the
  same ``MAX_LINE_AMOUNT``;
- 1.2 × 10**13 is 1/76 of the column's limit, and an account's TCV (the sum of its lines) is
  checked against ``MAX_STORED_AMOUNT`` itself before anything is written.

Every input is also bounded on its own (quantity and prices ≤ 10**9, at most 12 decimal places,
dates in 1900..2999) so that arithmetic on it never leaves Decimal's 28-digit context (which is
what raised `decimal.InvalidOperation` on a quantity of 1e30). The file import and records from
Salesforce use the same checks.
"""
from __future__ import annotations

import datetime as dt
from functools import lru_cache
from decimal import Decimal
from typing import Iterable

from connector.engine.dates import add_months, months_between
from connector.engine.model import ActivatedLine
from connector.engine.money import STORE_SCALE, Amount, Exact, as_decimal

#: the largest value of a BIGINT column (SQLite INTEGER and PostgreSQL bigint alike)
BIGINT_MAX = 2**63 - 1
#: the largest amount a money column can hold: 922,337,203,685,477.5807
MAX_STORED_AMOUNT = Decimal(BIGINT_MAX).scaleb(-STORE_SCALE)

#: the largest quantity of a line
MAX_QUANTITY = Decimal(10) ** 9
#: the largest unit price or list price, for any price period
MAX_PRICE = Decimal(10) ** 9
#: the largest credit grant
MAX_CREDIT = Decimal(10) ** 12
#: decimal places a quantity, price or credit may have
MAX_PLACES = 12
#: the largest monthly amount of one line (quantity × monthly price, and × monthly list price)
MAX_LINE_MRR = Decimal(10) ** 10
#: the longest a line may run (100 years)
MAX_TERM_MONTHS = 1200
#: the largest amount one line may produce (TCV, TCB, ELP, a one-time charge): MRR × term
MAX_LINE_AMOUNT = MAX_LINE_MRR * MAX_TERM_MONTHS
#: dates the engine accepts (inclusive); a far end like 9999-12-31 has no day after it
MIN_DATE = dt.date(1900, 1, 1)
MAX_DATE = dt.date(2999, 12, 31)
#: the longest id (account, product, order, line, subscription) the store's columns hold
MAX_ID_LENGTH = 64
#: the longest text (names, owner) accepted; the columns are unbounded, this keeps rows sane
MAX_TEXT_LENGTH = 1000


def _plain(value: Amount) -> str:
    """A number as people write it (1,000,000,000, not 1E+9), to two places when it has a fraction."""
    value = as_decimal(value)
    return f"{value if value == value.to_integral_value() else round(value, 2):,f}"


def _shown(value: Decimal) -> str:
    """The value as given, or in scientific notation when it is too long to read."""
    text = str(value)
    return text if len(text) <= 30 else f"{value:.6E}"


def check_number(value: Decimal, *, maximum: Decimal, minimum: Decimal = Decimal(0),
                 places: int = MAX_PLACES, what: str = "the value") -> str | None:
    """A message when `value` is not a finite number in [minimum, maximum] with at most `places` places."""
    if not value.is_finite():
        return f"{what} must be a finite number, not {value}"
    if value < minimum:
        return f"{what} cannot be below {_plain(minimum)} (got {_shown(value)})"
    if value > maximum:
        return (f"{what} {_shown(value)} is larger than the store can hold: at most {_plain(maximum)} "
                "(see the limits in README.md)")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places and value != value.quantize(Decimal(1).scaleb(-places)):
        return f"{what} {_shown(value)} has more than {places} decimal places"
    return None


def check_quantity(value: Decimal) -> str | None:
    """Problem with a line's quantity, or None."""
    return check_number(value, maximum=MAX_QUANTITY, what="quantity")


def check_price(value: Decimal, what: str = "unit price") -> str | None:
    """Problem with a unit price or list price, or None."""
    return check_number(value, maximum=MAX_PRICE, what=what)


@lru_cache(maxsize=4096)
def fits_quantity(value: Decimal) -> bool:
    """Whether `check_quantity` finds nothing wrong with this finite quantity. What it finds depends
    on the value alone (not on how many zeros it is written with), so it is told once per value:
    a file's lines have few distinct quantities and prices among hundreds of thousands, each
    checked when the file is read and again when the line is activated (issue 11). Only for a
    finite Decimal: a signalling NaN cannot be hashed."""
    return check_quantity(value) is None


@lru_cache(maxsize=4096)
def fits_price(value: Decimal) -> bool:
    """`fits_quantity` for `check_price`."""
    return check_price(value) is None


def check_credit(value: Decimal) -> str | None:
    """Problem with a credit grant's amount, or None."""
    return check_number(value, maximum=MAX_CREDIT, what="amount")


def check_date(value: dt.date, what: str = "the date") -> str | None:
    """Problem with a date outside MIN_DATE..MAX_DATE, or None."""
    if not MIN_DATE <= value <= MAX_DATE:
        return f"{what} {value} is outside the dates the engine accepts ({MIN_DATE}..{MAX_DATE})"
    return None


def check_term_months(value: int) -> str | None:
    """Problem with a term in months, or None."""
    if not 1 <= value <= MAX_TERM_MONTHS:
        return f"term_months must be between 1 and {MAX_TERM_MONTHS} (100 years), not {value}"
    return None


def check_id(value: str, what: str = "the id") -> str | None:
    """Problem with an id the store keeps in a 64-character column, or None."""
    if len(value) > MAX_ID_LENGTH:
        return f"{what} is {len(value)} characters long; at most {MAX_ID_LENGTH}"
    return check_text(value, what)


def check_text(value: str, what: str = "the text") -> str | None:
    """Problem with a text (NUL characters, which PostgreSQL cannot store; absurd length), or None."""
    if "\x00" in value:
        return f"{what} contains a NUL character (\\u0000), which the store cannot hold"
    if len(value) > MAX_TEXT_LENGTH:
        return f"{what} is {len(value)} characters long; at most {MAX_TEXT_LENGTH}"
    return None


def _beyond_term_limit(start: dt.date, end: dt.date) -> bool:
    """Whether a line from `start` to `end` (inclusive) runs more than MAX_TERM_MONTHS months.

    `months_between(start, end + 1 day)` grows with the end and is MAX_TERM_MONTHS when the end is
    the day before `add_months(start, MAX_TERM_MONTHS)`: so one date comparison tells, instead of
    a rational one, for every line activated (issue 11). Near the calendar's end, the months.
    """
    if start.year < dt.date.max.year - MAX_TERM_MONTHS // 12 - 1:
        return end >= add_months(start, MAX_TERM_MONTHS)
    return months_between(start, end + dt.timedelta(days=1)) > MAX_TERM_MONTHS


_MRR_LIMIT, _AMOUNT_LIMIT = int(MAX_LINE_MRR), int(MAX_LINE_AMOUNT)


def _at_most(value: Amount, limit: int) -> bool:
    """|value| <= limit (an integer), exactly: an exact rational on its integers, without the
    rational objects `abs` and a comparison make."""
    if type(value) is Exact:
        return abs(value._numerator) <= limit * value._denominator
    return -limit <= value <= limit  # a Decimal compares exactly with an int


def _within_amount_limits(line: ActivatedLine) -> bool:
    """Whether none of `line_amount_problems`' amount checks finds anything: the same comparisons,
    on integers (issue 11: about 7 % of validating a file went to building rationals for them)."""
    limit = _MRR_LIMIT if line.recurring else _AMOUNT_LIMIT
    for seg in line.segments:
        if not _at_most(seg.mrr, _MRR_LIMIT):
            return False
    price, quantity = line.list_price_monthly, line.quantity
    if type(price) is Exact:
        n, d = quantity.as_integer_ratio()
        if abs(price._numerator * n) > limit * price._denominator * d:
            return False
    elif not _at_most(price * quantity, limit):  # the same Decimal product as below
        return False
    if not line.recurring and not _at_most(line.one_time_amount, _AMOUNT_LIMIT):
        return False
    return _at_most(line.tcv, _AMOUNT_LIMIT)


def line_amount_problems(line: ActivatedLine) -> list[tuple[str, str]]:
    """(field, message) for each amount of an activated line beyond the limits; empty when it fits.

    Checked on the line as activated (after defaults and the item's earlier versions are applied),
    so it holds for every origin of the line.
    """
    if not _beyond_term_limit(line.start, line.end) and _within_amount_limits(line):
        return []  # the usual case, told on integers; the messages below only for a line beyond
    problems: list[tuple[str, str]] = []
    if _beyond_term_limit(line.start, line.end):
        problems.append(("end", f"the line runs {line.start}..{line.end}, more than {MAX_TERM_MONTHS} "
                                "months (100 years)"))
        return problems  # the amounts below grow with the span; one message says it
    fld = "quantity × unit_price"
    for seg in line.segments:
        if abs(seg.mrr) > MAX_LINE_MRR:  # type: ignore[operator]
            problems.append((fld, f"quantity × monthly price is {_plain(abs(seg.mrr))} a month; at most "  # type: ignore[arg-type]
                                  f"{_plain(MAX_LINE_MRR)} a month per line (see the limits in README.md)"))
            break
    elp_monthly = abs(line.list_price_monthly * line.quantity)
    if line.recurring and elp_monthly > MAX_LINE_MRR:  # type: ignore[operator]
        problems.append(("quantity", f"quantity × monthly list price is {_plain(elp_monthly)} a month; at most "  # type: ignore[arg-type]
                                     f"{_plain(MAX_LINE_MRR)} per line"))
    if not line.recurring and (abs(line.one_time_amount) > MAX_LINE_AMOUNT  # type: ignore[operator]
                               or elp_monthly > MAX_LINE_AMOUNT):  # type: ignore[operator]
        problems.append((fld, f"quantity × price is {_plain(max(abs(line.one_time_amount), elp_monthly))}; "  # type: ignore[call-overload]
                              f"at most {_plain(MAX_LINE_AMOUNT)} per line"))
    if not problems and abs(line.tcv) > MAX_LINE_AMOUNT:
        problems.append((fld, f"the line's TCV is {_plain(abs(line.tcv))}; at most {_plain(MAX_LINE_AMOUNT)}"))
    return problems


def total_problem(amounts: Iterable[Decimal], what: str) -> str | None:
    """A message when a running total (an account's TCV) would not fit in a money column."""
    total = sum(amounts, Decimal(0))
    if abs(total) > MAX_STORED_AMOUNT:
        return (f"{what} would reach {_plain(total)}, beyond the {_plain(MAX_STORED_AMOUNT)} a money "
                "column of the store can hold")
    return None
