"""Date arithmetic for terms: inclusive end dates outside, half-open intervals inside (SPEC section 5)."""
from __future__ import annotations

import calendar
import datetime as dt
from fractions import Fraction
from functools import lru_cache

ONE_DAY = dt.timedelta(days=1)


_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def days_in_month(year: int, month: int) -> int:
    """Days of that calendar month (a table lookup: this is called millions of times in a backfill)."""
    if month == 2 and calendar.isleap(year):
        return 29
    return _DAYS[month]


def is_month_end(day: dt.date) -> bool:
    """True on the last day of its month."""
    return day.day == days_in_month(day.year, day.month)


def add_months(anchor: dt.date, months: int) -> dt.date:
    """The anniversary `months` after `anchor`; a month-end anchor stays month-end anchored.

    2020-01-31 + 1 = 2020-02-29, + 2 = 2020-03-31; 2023-04-30 + 1 = 2023-05-31.
    A day that does not exist in the target month is clamped to its last day.
    """
    total = anchor.year * 12 + (anchor.month - 1) + months
    year, month = divmod(total, 12)
    month += 1
    last = days_in_month(year, month)
    day = last if is_month_end(anchor) else min(anchor.day, last)
    return dt.date(year, month, day)


def end_from_term(start: dt.date, term_months: int) -> dt.date:
    """Inclusive end of a term: 12 months from 2023-01-15 ends 2024-01-14."""
    return add_months(start, term_months) - ONE_DAY


@lru_cache(maxsize=65536)  # lines share their dates; TCV, ELP and metrics all ask
def months_between(start: dt.date, end_excl: dt.date) -> Fraction:
    """Months in [start, end_excl): whole months from start, then leftover days / days of that partial month.

    2020-02-01..2020-12-01 is 10; 2017-02-27..2018-02-01 is 11 + 5/31. The partial month is the
    one starting at the last whole anniversary, so its length is the days to the next anniversary.
    Exact (a Fraction), so money is rounded once, at the end.
    """
    if end_excl < start:
        return -months_between(end_excl, start)
    day = start.day
    if day < 28:
        # Every anniversary falls on the same day of its month (no month is shorter than 28
        # days): the whole months and both anniversaries without trying one month after another
        # (half the lines of a large import are a pair of dates not seen before: issue 11)
        first = start.year * 12 + start.month - 1
        whole = end_excl.year * 12 + end_excl.month - 1 - first - (end_excl.day < day)
        year, month = divmod(first + whole, 12)
        anniversary = dt.date(year, month + 1, day)
        leftover = (end_excl - anniversary).days
        if leftover == 0:
            return Fraction(whole)
        year, month = divmod(first + whole + 1, 12)
        period = (dt.date(year, month + 1, day) - anniversary).days
        return Fraction(whole * period + leftover, period)
    return by_anniversaries(start, end_excl)


def by_anniversaries(start: dt.date, end_excl: dt.date) -> Fraction:
    """`months_between` for `end_excl` not before `start`, trying one anniversary after another:
    the way for any start (a month-end start's anniversaries move with the month's length)."""
    whole = (end_excl.year - start.year) * 12 + (end_excl.month - start.month)
    while whole > 0 and add_months(start, whole) > end_excl:
        whole -= 1
    while add_months(start, whole + 1) <= end_excl:
        whole += 1
    anniversary = add_months(start, whole)
    leftover = (end_excl - anniversary).days
    if leftover == 0:
        return Fraction(whole)
    period = (add_months(start, whole + 1) - anniversary).days
    return whole + Fraction(leftover, period)
