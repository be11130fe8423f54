"""The fiscal calendar: monthly fiscal periods, grouped into quarters and years (SPEC section 8).

Two kinds: a standard year of calendar months starting in a given month, unbounded in both
directions; or an explicit list of periods (4-4-5 or 13-period years, or Salesforce's ``Period``
records), outside of which a date is an error that names it, never a silent fallback.
"""
from __future__ import annotations

import bisect
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Iterable, Sequence

from connector.engine.dates import ONE_DAY, days_in_month
from connector.errors import FiscalCalendarError


@dataclass(frozen=True, order=True)
class FiscalPeriod:
    """One fiscal month: inclusive start and end, its fiscal year and quarter."""

    start: dt.date
    end: dt.date
    fiscal_year: int
    quarter: int
    number: int

    @property
    def end_excl(self) -> dt.date:
        return self.end + ONE_DAY


class FiscalCalendar:
    """Maps dates to fiscal periods and lists the periods an interval touches."""

    def periods_touching(self, start: dt.date, end_excl: dt.date) -> list[FiscalPeriod]:
        """Every period that shares at least one day with [start, end_excl)."""
        raise NotImplementedError

    def period_of(self, day: dt.date) -> FiscalPeriod:
        """The period holding `day`, or FiscalCalendarError naming it."""
        raise NotImplementedError

    def check_covers(self, first: dt.date, last: dt.date) -> None:
        """Raise FiscalCalendarError naming the first of these two days that no period holds."""
        self.period_of(first)
        self.period_of(last)

    def fingerprint(self) -> str:
        """A short text that changes whenever the periods change (to detect a changed calendar)."""
        raise NotImplementedError

    def last_day(self) -> dt.date | None:
        """The last day a period holds, or None when the calendar has no end."""
        return None

    def group_start(self, period: FiscalPeriod, by: str) -> FiscalPeriod:
        """The first period of the month, quarter or year that `period` belongs to."""
        raise NotImplementedError

    def group_end(self, period: FiscalPeriod, by: str) -> FiscalPeriod:
        """The last period of the month, quarter or year that `period` belongs to."""
        raise NotImplementedError

    def next_period(self, period: FiscalPeriod) -> FiscalPeriod | None:
        """The period after `period`, or None when `period` is the last one the calendar defines."""
        try:
            return self.period_of(period.end_excl)
        except FiscalCalendarError:
            return None  # an explicit calendar ends; a standard one never does

    def groups(self, first: dt.date, last: dt.date, by: str) -> list[tuple[FiscalPeriod, FiscalPeriod]]:
        """(first period, last period) of every month, quarter or year from the one holding `first`
        to the one holding `last`, both days included.

        Stops at the calendar's last period rather than stepping past it: a group that ends on
        the last day an explicit calendar defines is the last group (FiscalCalendarError only
        when `first` or `last` themselves fall outside every period).
        """
        group: FiscalPeriod | None = self.group_start(self.period_of(first), by)
        stop = self.group_end(self.period_of(last), by)
        out = []
        while group is not None and group.start <= stop.start:
            end = self.group_end(group, by)
            out.append((group, end))
            group = self.next_period(end)
        return out


class StandardFiscalCalendar(FiscalCalendar):
    """Calendar months; the fiscal year starts on the first of `start_month` and is named by its start year."""

    def __init__(self, start_month: int = 1):
        if not 1 <= start_month <= 12:
            raise ValueError(f"fiscal start_month must be 1..12, not {start_month}")
        self.start_month = start_month
        self._cache: dict[tuple[int, int], FiscalPeriod] = {}

    def _period(self, year: int, month: int) -> FiscalPeriod:
        key = (year, month)
        period = self._cache.get(key)
        if period is None:
            offset = (month - self.start_month) % 12
            fiscal_year = year if month >= self.start_month else year - 1
            period = FiscalPeriod(
                start=dt.date(year, month, 1),
                end=dt.date(year, month, days_in_month(year, month)),
                fiscal_year=fiscal_year,
                quarter=offset // 3 + 1,
                number=offset + 1,
            )
            self._cache[key] = period
        return period

    def period_of(self, day: dt.date) -> FiscalPeriod:
        return self._period(day.year, day.month)

    def periods_touching(self, start: dt.date, end_excl: dt.date) -> list[FiscalPeriod]:
        if end_excl <= start:
            return []
        last = end_excl - ONE_DAY
        first_index = start.year * 12 + start.month - 1
        last_index = last.year * 12 + last.month - 1
        period = self._period
        return [period(i // 12, i % 12 + 1) for i in range(first_index, last_index + 1)]

    def _shift(self, period: FiscalPeriod, months: int) -> FiscalPeriod:
        total = period.start.year * 12 + period.start.month - 1 + months
        return self._period(total // 12, total % 12 + 1)

    def group_start(self, period: FiscalPeriod, by: str) -> FiscalPeriod:
        index = period.number - 1
        back = {"month": 0, "quarter": index % 3, "year": index}[by]
        return self._shift(period, -back)

    def group_end(self, period: FiscalPeriod, by: str) -> FiscalPeriod:
        index = period.number - 1
        ahead = {"month": 0, "quarter": 2 - index % 3, "year": 11 - index}[by]
        return self._shift(period, ahead)

    def fingerprint(self) -> str:
        return f"standard:{self.start_month}"


class ExplicitFiscalCalendar(FiscalCalendar):
    """An explicit, gap-free list of periods: 4-4-5 years, 13-period years, Salesforce ``Period`` rows."""

    def __init__(self, periods: Iterable[FiscalPeriod], source: str = "fiscal periods"):
        self.periods: list[FiscalPeriod] = sorted(periods)
        self.source = source
        if not self.periods:
            raise FiscalCalendarError(f"{source}: no fiscal periods defined",
                                      hint="define at least one period, or use [fiscal] start_month")
        for before, after in zip(self.periods, self.periods[1:]):
            if after.start != before.end_excl:
                raise FiscalCalendarError(
                    f"{source}: periods must follow each other without gap or overlap, "
                    f"but {before.start}..{before.end} is followed by {after.start}..{after.end}",
                    hint="fix the periods so that each starts the day after the previous one ends")
        self._starts = [p.start for p in self.periods]
        self._index = {p: i for i, p in enumerate(self.periods)}

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[dt.date, dt.date, int | None, int | None]],
                  source: str = "fiscal periods") -> "ExplicitFiscalCalendar":
        """Build from (start, end, fiscal_year, quarter) rows; missing years/quarters are counted.

        Without a fiscal_year column, every 12 periods make a year; without a quarter column,
        every 3 periods of a year make a quarter (13-period years must give both columns).
        """
        ordered = sorted(rows, key=lambda r: r[0])
        periods = []
        number_in_year: dict[int, int] = {}
        for i, (start, end, year, quarter) in enumerate(ordered):
            if end < start:
                raise FiscalCalendarError(f"{source}: period {start}..{end} ends before it starts")
            fiscal_year = year if year is not None else ordered[0][0].year + i // 12
            number = number_in_year.get(fiscal_year, 0) + 1
            number_in_year[fiscal_year] = number
            q = quarter if quarter is not None else min((number - 1) // 3 + 1, 4)
            periods.append(FiscalPeriod(start, end, fiscal_year, q, number))
        return cls(periods, source)

    def period_of(self, day: dt.date) -> FiscalPeriod:
        i = bisect.bisect_right(self._starts, day) - 1
        if i < 0 or day > self.periods[i].end:
            first, last = self.periods[0].start, self.periods[-1].end
            raise FiscalCalendarError(
                f"the date {day} is outside every fiscal period ({source_span(first, last)} in {self.source})",
                hint="define the fiscal periods that cover it, then run `revsync regenerate arr`")
        return self.periods[i]

    def last_day(self) -> dt.date | None:
        return self.periods[-1].end

    def periods_touching(self, start: dt.date, end_excl: dt.date) -> list[FiscalPeriod]:
        if end_excl <= start:
            return []
        first = self._index[self.period_of(start)]
        last = self._index[self.period_of(end_excl - ONE_DAY)]
        return self.periods[first:last + 1]

    def _group(self, period: FiscalPeriod, by: str) -> list[FiscalPeriod]:
        if by == "month":
            return [period]
        return [p for p in self.periods if p.fiscal_year == period.fiscal_year
                and (by == "year" or p.quarter == period.quarter)]

    def group_start(self, period: FiscalPeriod, by: str) -> FiscalPeriod:
        return self._group(period, by)[0]

    def group_end(self, period: FiscalPeriod, by: str) -> FiscalPeriod:
        return self._group(period, by)[-1]

    def fingerprint(self) -> str:
        text = ";".join(f"{p.start}/{p.end}/{p.fiscal_year}/{p.quarter}" for p in self.periods)
        return "explicit:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def source_span(first: dt.date, last: dt.date) -> str:
    """Human text for the span a calendar covers."""
    return f"known periods run from {first} to {last}"
