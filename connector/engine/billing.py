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
from typing import Callable, Iterator

from connector.engine.dates import ONE_DAY, add_months, days_in_month
from connector.engine.model import BillingFrequency, BillingPeriod, ActivatedLine, Segment
from connector.engine.money import Amount, Exact, exact, round_money

_STEP = {BillingFrequency.MONTH: 1, BillingFrequency.QUARTER: 3, BillingFrequency.YEAR: 12}


def cycle_date(year: int, month: int, bill_cycle_day: int) -> dt.date:
    """The bill cycle day in that month, clamped to the month's last day (31 → 30, 28 or 29).

    `month` may run past 12 (months after January of `year`): carried into the year in one step.
    """
    if month > 12:
        carry, month = divmod(month - 1, 12)
        year, month = year + carry, month + 1
    return dt.date(year, month, min(bill_cycle_day, days_in_month(year, month)))


def prorated(mrr: Amount, start: dt.date, end_excl: dt.date) -> Exact:
    """MRR over [start, end_excl), each day worth 1/(days of the month it falls in). Exact."""
    dim = days_in_month(start.year, start.month)
    if end_excl <= start + dt.timedelta(days=dim - start.day + 1):  # within one month: the usual case
        return exact(mrr) * Fraction((end_excl - start).days, dim)
    days_by_length: dict[int, int] = {}  # days counted per month length (28..31), then one sum
    day = start
    while day < end_excl:
        dim = days_in_month(day.year, day.month)
        month_end_excl = dt.date(day.year, day.month, dim) + ONE_DAY
        stop = min(month_end_excl, end_excl)
        days_by_length[dim] = days_by_length.get(dim, 0) + (stop - day).days
        day = stop
    months = exact(0)
    for dim, days in days_by_length.items():
        months += Fraction(days, dim)
    return exact(mrr) * months


def partial(mrr: Amount, start: dt.date, end_excl: dt.date,
            anniversary: Callable[[int], dt.date] | None = None) -> Exact:
    """A partial period [start, end_excl): whole months from `start`, then the leftover days prorated.

    `anniversary(k)` is the day k months after `start` (default: `add_months`, month-end anchored;
    the billing schedule passes its bill cycle dates). 2023-01-15..2023-04-14 is exactly 3 months;
    2023-01-15..2023-05-05 is 3 months + 16/30 (April 15..30) + 5/31 (May 1..5).
    """
    step = anniversary or (lambda k: add_months(start, k))
    # the anniversary in end_excl's month is the last one that can be on or before it
    whole = max((end_excl.year - start.year) * 12 + end_excl.month - start.month, 0)
    while whole > 0 and step(whole) > end_excl:
        whole -= 1
    last = step(whole) if whole else start
    rest = prorated(mrr, last, end_excl) if last < end_excl else exact(0)
    return exact(mrr) * whole + rest if whole else rest


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


def _segment_total(seg: Segment, frequency: BillingFrequency, bcd: int, currency: str) -> Decimal:
    """Sum of one piece's rounded billing periods, counting full periods instead of listing them."""
    step = _STEP[frequency]
    first = cycle_date(seg.start.year, seg.start.month, bcd)
    if first < seg.start:
        first = cycle_date(seg.start.year, seg.start.month + 1, bcd)
    total = Decimal(0)
    if seg.start < first:
        total += round_money(partial(seg.mrr, seg.start, min(first, seg.end_excl)), currency)
    if first >= seg.end_excl:
        return total

    def boundary(k: int) -> dt.date:
        return cycle_date(first.year, first.month + k * step, bcd)

    months = (seg.end_excl.year - first.year) * 12 + seg.end_excl.month - first.month
    full = max(months // step, 0)
    while full > 0 and boundary(full) > seg.end_excl:
        full -= 1
    while boundary(full + 1) <= seg.end_excl:
        full += 1
    total += full * round_money(exact(seg.mrr) * step, currency)
    tail = boundary(full)
    if tail < seg.end_excl:
        total += round_money(partial(seg.mrr, tail, seg.end_excl, _cycle_steps(tail, bcd)), currency)
    return total


def billing_total(line: ActivatedLine, currency: str) -> Decimal:
    """Total contracted billing (TCB): the sum of `billing_schedule(line)`, computed without listing it."""
    if not line.recurring:
        return round_money(line.one_time_amount, currency)
    return sum((_segment_total(seg, line.billing_frequency, line.bill_cycle_day, currency)
                for seg in line.segments if seg.mrr != 0), Decimal(0))
