"""ARR-by-period rows (SPEC section 7): one per (order line, fiscal month) its service touches."""
from __future__ import annotations

from decimal import Decimal
from typing import Iterator

from connector.engine.fiscal import FiscalCalendar
from connector.engine.model import ActivatedLine, ArrRow
from connector.engine.money import round_money

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
    zero = Decimal(0)
    for period in calendar.periods_touching(first, last_excl):
        opening = closing = zero
        p_start, p_end_excl = period.start, period.end_excl
        for s in segments:
            if s.start < p_start < s.end_excl:
                opening += s.mrr
            if s.start < p_end_excl < s.end_excl:
                closing += s.mrr
        yield ArrRow(
            line=line.id,
            period_start=p_start,
            period_end=period.end,
            opening_cmrr=round_money(opening, currency),
            closing_cmrr=round_money(closing, currency),
            opening_arr=round_money(opening * _TWELVE, currency),
            closing_arr=round_money(closing * _TWELVE, currency),
        )
