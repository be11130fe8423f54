"""ARR-by-period rows (SPEC section 7): one per (order line, fiscal month) its service touches."""
from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from typing import Iterator

from connector.engine.dates import ONE_DAY
from connector.engine.fiscal import FiscalCalendar, FiscalPeriod
from connector.engine.model import ActivatedLine, ArrRow, Segment
from connector.engine.money import Amount, round_money

_TWELVE = Decimal(12)


def arr_rows(line: ActivatedLine, currency: str, calendar: FiscalCalendar) -> Iterator[ArrRow]:
    """The rows of one activated line, in period order; nothing for lines without MRR.

    Opening counts the pieces active before the period's first day and still active on it;
    closing counts the pieces active on its last day and still active the day after. So what a
    line adds on a first day shows as change, and opening(m) = closing(m − 1).
    """
    if not line.recurring or not line.segments:
        return
    segments = line.segments
    first = min(s.start for s in segments)
    last_excl = max(s.end_excl for s in segments)
    periods = None
    if line.evergreen:
        segments, periods = _evergreen(line, calendar)
    zero: Amount = Decimal(0)
    # Rows repeat the same few values; round each distinct exact value once.
    rounded: dict[Amount, tuple[Decimal, Decimal]] = {}

    def money(value: Amount) -> tuple[Decimal, Decimal]:
        pair = rounded.get(value)
        if pair is None:
            pair = rounded[value] = (round_money(value, currency), round_money(value * _TWELVE, currency))
        return pair

    if periods is None:
        periods = calendar.periods_touching(first, last_excl)
    if len(segments) == 1:
        # The common case, one piece: 0 → mrr in its first period, mrr → 0 in its last.
        (s,) = segments
        mrr_cmrr, mrr_arr = money(s.mrr)
        zero_cmrr, zero_arr = money(zero)
        for period in periods:
            opens = s.start < period.start
            closes = period.end_excl < s.end_excl
            yield ArrRow(line.id, period.start, period.end,
                         mrr_cmrr if opens else zero_cmrr, mrr_cmrr if closes else zero_cmrr,
                         mrr_arr if opens else zero_arr, mrr_arr if closes else zero_arr)
        return
    for period in periods:
        opening = closing = zero
        p_start, p_end_excl = period.start, period.end_excl
        for s in segments:
            if s.start < p_start < s.end_excl:
                opening += s.mrr
            if s.start < p_end_excl < s.end_excl:
                closing += s.mrr
        opening_cmrr, opening_arr = money(opening)
        closing_cmrr, closing_arr = money(closing)
        yield ArrRow(line.id, p_start, period.end, opening_cmrr, closing_cmrr, opening_arr, closing_arr)


#: how an evergreen piece's open end is written while its rows are computed: after every period
_OPEN_END = dt.date(9999, 12, 31)


def _evergreen(line: ActivatedLine, calendar: FiscalCalendar) -> tuple[tuple[Segment, ...], list[FiscalPeriod]]:
    """An evergreen line's pieces with the ones reaching its horizon left open, and its periods so far.

    The line's `end` is its horizon: the pieces that reach it run on past it, so no period's
    closing counts them as lost there. Rows go up to the period holding the horizon (within the
    calendar): a cancellation, which is dated by the horizon at the latest, always finds the rows
    of its period there. A later extension adds the periods after these, and never changes them.
    """
    horizon_excl = line.end + ONE_DAY
    segments = tuple(replace(s, end_excl=_OPEN_END) if s.end_excl == horizon_excl else s for s in line.segments)
    last = line.end
    calendar_last = calendar.last_day()
    if calendar_last is not None and calendar_last < last:
        last = calendar_last
    first = min(s.start for s in segments)
    if last < first:
        return segments, []
    return segments, calendar.periods_touching(first, last + ONE_DAY)
