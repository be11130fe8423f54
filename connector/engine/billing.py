"""Billing schedules (SPEC section 6): periods on the bill cycle day; partial periods prorated.

A partial period (the first one, up to the first bill cycle day, or the last one, cut short by
the line's end) is valued as its whole months first, counted from the period's start, then its
leftover days, each at 1/(days of the calendar month it falls in). A period shorter than a month
is only leftover days. So a line in service for exactly three months bills three months' MRR
whether it is billed monthly, quarterly or yearly: its TCB does not depend on how often it is
invoiced (the issue 9 case: bill cycle day 15, 300.00 monthly and 301.51 yearly before).
Amounts are exact until each period is rounded, once, to the currency.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Callable, Iterator

from connector.engine.dates import ONE_DAY, add_months, days_in_month
from connector.engine.model import BillingFrequency, BillingPeriod, ActivatedLine, Segment
from connector.engine.money import Amount, Exact, exact, minor_scale, round_money

_STEP = {BillingFrequency.MONTH: 1, BillingFrequency.QUARTER: 3, BillingFrequency.YEAR: 12}


@lru_cache(maxsize=65536)  # a few hundred months × bill cycle days; asked several times per piece
def cycle_date(year: int, month: int, bill_cycle_day: int) -> dt.date:
    """The bill cycle day in that month, clamped to the month's last day (31 → 30, 28 or 29).

    `month` may run past 12 (months after January of `year`): carried into the year in one step.
    """
    if month > 12:
        carry, month = divmod(month - 1, 12)
        year, month = year + carry, month + 1
    return dt.date(year, month, min(bill_cycle_day, days_in_month(year, month)))


#: lcm(28, 29, 30, 31): a day's share of a month of any length is a whole number of 1/_L months
_L = 377_580
_DAY_SHARE = {28: _L // 28, 29: _L // 29, 30: _L // 30, 31: _L // 31}


def _prorated_months(start: dt.date, end_excl: dt.date) -> int:
    """Months in [start, end_excl), each day worth 1/(days of the month it falls in), in 1/_L months."""
    dim = days_in_month(start.year, start.month)
    days = (end_excl - start).days
    if days <= dim - start.day + 1:  # within one month (up to the 1st of the next): the usual case
        return days * _DAY_SHARE[dim]
    months = 0
    day = start
    while day < end_excl:
        dim = days_in_month(day.year, day.month)
        stop = min(dt.date(day.year, day.month, dim) + ONE_DAY, end_excl)
        months += (stop - day).days * _DAY_SHARE[dim]
        day = stop
    return months


def prorated(mrr: Amount, start: dt.date, end_excl: dt.date) -> Exact:
    """MRR over [start, end_excl), each day worth 1/(days of the month it falls in). Exact."""
    return exact(mrr) * Fraction(_prorated_months(start, end_excl), _L)


def partial(mrr: Amount, start: dt.date, end_excl: dt.date,
            anniversary: Callable[[int], dt.date] | None = None) -> Exact:
    """A partial period [start, end_excl): whole months from `start`, then the leftover days prorated.

    `anniversary(k)` is the day k months after `start` (default: `add_months`, month-end anchored;
    the billing schedule passes its bill cycle dates). 2023-01-15..2023-04-14 is exactly 3 months;
    2023-01-15..2023-05-05 is 3 months + 16/30 (April 15..30) + 5/31 (May 1..5).
    """
    return exact(mrr) * Fraction(_partial_months(start, end_excl, anniversary), _L)


def _partial_months(start: dt.date, end_excl: dt.date,
                    anniversary: Callable[[int], dt.date] | None = None) -> int:
    """`partial`'s months, in 1/_L months: whole months from `start`, then the leftover days."""
    step = anniversary or (lambda k: add_months(start, k))
    # the anniversary in end_excl's month is the last one that can be on or before it
    whole = max((end_excl.year - start.year) * 12 + end_excl.month - start.month, 0)
    while whole > 0 and step(whole) > end_excl:
        whole -= 1
    last = step(whole) if whole else start
    rest = _prorated_months(last, end_excl) if last < end_excl else 0
    return whole * _L + rest


def _cycle_steps(begin: dt.date, bcd: int) -> Callable[[int], dt.date]:
    """The bill cycle dates 0, 1, 2 … months after `begin` (itself a bill cycle date)."""
    return lambda k: cycle_date(begin.year, begin.month + k, bcd)


def _segment_periods(line: str, seg: Segment, frequency: BillingFrequency, bcd: int,
                     currency: str) -> Iterator[BillingPeriod]:
    step = _STEP[frequency]
    first = cycle_date(seg.start.year, seg.start.month, bcd)
    if first < seg.start:
        first = cycle_date(seg.start.year, seg.start.month + 1, bcd)
    if seg.start < first:  # leading partial period up to the first bill cycle day
        stop = min(first, seg.end_excl)
        yield BillingPeriod(line, seg.start, stop - ONE_DAY,
                            round_money(partial(seg.mrr, seg.start, stop), currency))
    k = 0
    while True:
        begin = cycle_date(first.year, first.month + k * step, bcd)
        if begin >= seg.end_excl:
            return
        nxt = cycle_date(first.year, first.month + (k + 1) * step, bcd)
        if nxt <= seg.end_excl:
            amount = exact(seg.mrr) * step
        else:  # trailing partial period: whole months on the bill cycle day, then the days
            amount = partial(seg.mrr, begin, seg.end_excl, _cycle_steps(begin, bcd))
            nxt = seg.end_excl
        yield BillingPeriod(line, begin, nxt - ONE_DAY, round_money(amount, currency))
        k += 1


def billing_schedule(line: ActivatedLine, currency: str) -> list[BillingPeriod]:
    """The line's billing schedule: one-time charges on the start day, recurring pieces by cycle."""
    if not line.recurring:
        return [BillingPeriod(line.id, line.start, line.start,
                              round_money(line.one_time_amount, currency))]
    out: list[BillingPeriod] = []
    for seg in line.segments:
        if seg.mrr != 0:
            out.extend(_segment_periods(line.id, seg, line.billing_frequency, line.bill_cycle_day, currency))
    return out


def _rounded(n: int, d: int, months: int, scale: int) -> int:
    """(n/d) × (months/_L) in minor units of the currency (`scale` of them to the unit), rounded
    half-up (away from zero) once: `round_money` of the same exact amount, on integers only."""
    num, den = n * months * scale, d * _L
    units = (2 * abs(num) + den) // (2 * den)
    return -units if num < 0 else units


def _segment_total(seg: Segment, frequency: BillingFrequency, bcd: int, currency: str) -> Decimal:
    """Sum of one piece's rounded billing periods, counting full periods instead of listing them.

    On integers (issue 11): each period is its months in 1/_L months times the MRR's numerator,
    rounded to the currency's minor unit once, as `billing_schedule` rounds it; the total is the
    sum of those minor units.
    """
    step = _STEP[frequency]
    places, scale = minor_scale(currency)
    n, d = seg.mrr.as_integer_ratio()
    first = cycle_date(seg.start.year, seg.start.month, bcd)
    if first < seg.start:
        first = cycle_date(seg.start.year, seg.start.month + 1, bcd)
    units = 0
    if seg.start < first:
        units += _rounded(n, d, _partial_months(seg.start, min(first, seg.end_excl)), scale)
    if first < seg.end_excl:
        def boundary(k: int) -> dt.date:
            return cycle_date(first.year, first.month + k * step, bcd)

        months = (seg.end_excl.year - first.year) * 12 + seg.end_excl.month - first.month
        full = max(months // step, 0)
        while full > 0 and boundary(full) > seg.end_excl:
            full -= 1
        while boundary(full + 1) <= seg.end_excl:
            full += 1
        units += full * _rounded(n, d, step * _L, scale)
        tail = boundary(full)
        if tail < seg.end_excl:
            units += _rounded(n, d, _partial_months(tail, seg.end_excl, _cycle_steps(tail, bcd)), scale)
    return Decimal(units).scaleb(-places)


def billing_total(line: ActivatedLine, currency: str) -> Decimal:
    """Total contracted billing (TCB): the sum of `billing_schedule(line)`, computed without listing it."""
    if not line.recurring:
        return round_money(line.one_time_amount, currency)
    return sum((_segment_total(seg, line.billing_frequency, line.bill_cycle_day, currency)
                for seg in line.segments if seg.mrr != 0), Decimal(0))
