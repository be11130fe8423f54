"""The fiscal calendar: monthly fiscal periods, grouped into quarters and years (SPEC section 8).

Two kinds: a standard year of calendar months starting in a given month, unbounded in both
directions; or an explicit list of periods (4-4-5 or 13-period years, or Salesforce's ``Period``
records), outside of which a date is an error that names it, never a silent fallback.
"""
from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

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
    #: the period's own name where the calendar gives one (Salesforce's FullyQualifiedLabel,
    #: e.g. "January FY2023"); not part of the period's identity or of the calendar's fingerprint
    label: str | None = field(default=None, compare=False)

    @property
    def end_excl(self) -> dt.date:
        return self.end + ONE_DAY


#: how a fiscal year is named: by the calendar year it ends in (the common usage: a year from
#: 2023-02-01 to 2024-01-31 is FY2024), or by the one it starts in
YEAR_NAMING = ("end", "start")


class FiscalCalendar:
    """Maps dates to fiscal periods and lists the periods an interval touches."""

    year_named_by: str = "end"

    def resolved(self) -> "FiscalCalendar":
        """This calendar as plain data, to hand to another process: itself, unless it reads its
        periods from somewhere else (the store's calendar of Salesforce periods gives what it read)."""
        return self

    def year_name(self, period: FiscalPeriod) -> int:
        """The number in the name of `period`'s fiscal year (FY2023): the calendar year the fiscal
        year ends in, or starts in (`year_named_by`)."""
        if self.year_named_by == "start":
            return self.group_start(period, "year").start.year
        return self.group_end(period, "year").end.year

    def label(self, period: FiscalPeriod, by: str) -> str:
        """The name of the month, quarter or year `period` belongs to: `FY2023 P04`, `FY2023 Q1`,
        `FY2023`; a month the calendar names itself (Salesforce's label) keeps that name."""
        if by == "month" and period.label:
            return period.label
        year = f"FY{self.year_name(period)}"
        if by == "year":
            return year
        if by == "quarter":
            return f"{year} Q{period.quarter}"
        return f"{year} P{period.number:02d}"

    def periods_touching(self, start: dt.date, end_excl: dt.date) -> list[FiscalPeriod]:
        """Every period that shares at least one day with [start, end_excl)."""
        raise NotImplementedError

    def period_of(self, day: dt.date) -> FiscalPeriod:
        """The period holding `day`, or FiscalCalendarError naming it."""
        raise NotImplementedError

    def span_touching(self, start: dt.date, end_excl: dt.date) -> tuple[FiscalPeriod, FiscalPeriod, int] | None:
        """(first, last, how many) of `periods_touching(start, end_excl)`, None when none: for a
        caller that needs only the ends (an ARR span: issue 11), without listing the periods between."""
        touching = self.periods_touching(start, end_excl)
        return (touching[0], touching[-1], len(touching)) if touching else None

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
    """Calendar months; the fiscal year starts on the first of `start_month`.

    Its `fiscal_year` (for grouping) is the year it starts in; its name (`label`) follows
    `year_named_by`: by default the year it ends in (start_month 2: 2023-02-01..2024-01-31 is FY2024).
    """

    def __init__(self, start_month: int = 1, year_named_by: str = "end"):
        if not 1 <= start_month <= 12:
            raise ValueError(f"fiscal start_month must be 1..12, not {start_month}")
        if year_named_by not in YEAR_NAMING:
            raise ValueError(f"fiscal year_named_by must be one of {YEAR_NAMING}, not {year_named_by!r}")
        self.start_month = start_month
        self.year_named_by = year_named_by
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

    def span_touching(self, start: dt.date, end_excl: dt.date) -> tuple[FiscalPeriod, FiscalPeriod, int] | None:
        if end_excl <= start:
            return None
        last = end_excl - ONE_DAY
        first_index = start.year * 12 + start.month - 1
        last_index = last.year * 12 + last.month - 1
        return (self._period(start.year, start.month), self._period(last.year, last.month),
                last_index - first_index + 1)

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

    def __init__(self, periods: Iterable[FiscalPeriod], source: str = "fiscal periods", *,
                 year_named_by: str = "end", years_given: bool = False):
        self.periods: list[FiscalPeriod] = sorted(periods)
        self.source = source
        self.year_named_by = year_named_by
        #: the fiscal years are numbered by the source (a `fiscal_year` column): they are the names
        self.years_given = years_given
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
        self._year_names: dict[int, int] = {}

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[Any, ...]], source: str = "fiscal periods", *,
                  year_named_by: str = "end") -> "ExplicitFiscalCalendar":
        """Build from (start, end, fiscal_year, quarter[, label]) rows; missing years/quarters are counted.

        Without a fiscal_year column, every 12 periods make a year; without a quarter column,
        every 3 periods of a year make a quarter (13-period years must give both columns). A
        given fiscal_year is also the year's name (FY<fiscal_year>); a counted one is named by
        `year_named_by`.
        """
        ordered = sorted(rows, key=lambda r: r[0])
        periods = []
        number_in_year: dict[int, int] = {}
        for i, (start, end, year, quarter, *rest) in enumerate(ordered):
            if end < start:
                raise FiscalCalendarError(f"{source}: period {start}..{end} ends before it starts")
            fiscal_year = year if year is not None else ordered[0][0].year + i // 12
            number = number_in_year.get(fiscal_year, 0) + 1
            number_in_year[fiscal_year] = number
            q = quarter if quarter is not None else min((number - 1) // 3 + 1, 4)
            periods.append(FiscalPeriod(start, end, fiscal_year, q, number, rest[0] if rest else None))
        return cls(periods, source, year_named_by=year_named_by,
                   years_given=any(r[2] is not None for r in ordered))

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

    def span_touching(self, start: dt.date, end_excl: dt.date) -> tuple[FiscalPeriod, FiscalPeriod, int] | None:
        if end_excl <= start:
            return None
        first, last = self.period_of(start), self.period_of(end_excl - ONE_DAY)
        return first, last, self._index[last] - self._index[first] + 1

    def _group(self, period: FiscalPeriod, by: str) -> list[FiscalPeriod]:
        if by == "month":
            return [period]
        return [p for p in self.periods if p.fiscal_year == period.fiscal_year
                and (by == "year" or p.quarter == period.quarter)]

    def group_start(self, period: FiscalPeriod, by: str) -> FiscalPeriod:
        return self._group(period, by)[0]

    def group_end(self, period: FiscalPeriod, by: str) -> FiscalPeriod:
        return self._group(period, by)[-1]

    def year_name(self, period: FiscalPeriod) -> int:
        if self.years_given:
            return period.fiscal_year
        name = self._year_names.get(period.fiscal_year)
        if name is None:
            named = _year_in_label(self._group(period, "year")[0].label)
            # the source's own name for the year ("January FY2023": 2023), else by the naming rule
            name = named if named is not None else super().year_name(period)
            self._year_names[period.fiscal_year] = name
        return name

    def fingerprint(self) -> str:
        text = ";".join(f"{p.start}/{p.end}/{p.fiscal_year}/{p.quarter}" for p in self.periods)
        return "explicit:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _year_in_label(label: str | None) -> int | None:
    """The fiscal year a period's own label names ("January FY2023", "September FY 2016", "FY2024 P01"),
    when it names exactly one year."""
    found = set(re.findall(r"(?<!\d)(\d{4})(?!\d)", label or ""))
    return int(found.pop()) if len(found) == 1 else None


def source_span(first: dt.date, last: dt.date) -> str:
    """Human text for the span a calendar covers."""
    return f"known periods run from {first} to {last}"
