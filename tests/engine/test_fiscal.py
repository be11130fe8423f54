"""Fiscal calendars (SPEC section 8): standard years, explicit 4-4-5 and 13-period years, no silent fallback."""
from __future__ import annotations

import datetime as dt

import pytest

from connector.engine.fiscal import ExplicitFiscalCalendar, FiscalPeriod, StandardFiscalCalendar
from connector.errors import FiscalCalendarError
from engine_builders import D

STANDARD = [
    # start_month, day, (period start, period end, fiscal year, quarter, number)
    (1, "2023-05-17", ("2023-05-01", "2023-05-31", 2023, 2, 5), "jan-start-may"),
    (1, "2023-01-01", ("2023-01-01", "2023-01-31", 2023, 1, 1), "jan-start-first-day"),
    (1, "2024-02-29", ("2024-02-01", "2024-02-29", 2024, 1, 2), "jan-start-leap-feb"),
    (1, "2023-12-31", ("2023-12-01", "2023-12-31", 2023, 4, 12), "jan-start-last-day"),
    (4, "2023-04-01", ("2023-04-01", "2023-04-30", 2023, 1, 1), "apr-start-first-month"),
    (4, "2023-05-17", ("2023-05-01", "2023-05-31", 2023, 1, 2), "apr-start-may"),
    (4, "2023-07-04", ("2023-07-01", "2023-07-31", 2023, 2, 4), "apr-start-july-is-q2"),
    (4, "2024-02-10", ("2024-02-01", "2024-02-29", 2023, 4, 11), "apr-start-feb-belongs-to-previous-year"),
    (4, "2023-03-31", ("2023-03-01", "2023-03-31", 2022, 4, 12), "apr-start-march-is-last"),
    (10, "2023-09-30", ("2023-09-01", "2023-09-30", 2022, 4, 12), "oct-start-september"),
]


@pytest.mark.parametrize("start_month,day,expected", [s[:3] for s in STANDARD], ids=[s[3] for s in STANDARD])
def test_standard_period_of(start_month, day, expected):
    p = StandardFiscalCalendar(start_month).period_of(D(day))
    start, end, year, quarter, number = expected
    assert (p.start, p.end, p.fiscal_year, p.quarter, p.number) == (D(start), D(end), year, quarter, number)


GROUPS = [
    # start_month, a day, by, first period start, last period end
    (1, "2023-05-17", "quarter", "2023-04-01", "2023-06-30", "jan-q2"),
    (1, "2023-05-17", "year", "2023-01-01", "2023-12-31", "jan-year"),
    (1, "2023-05-17", "month", "2023-05-01", "2023-05-31", "jan-month"),
    (4, "2023-05-17", "quarter", "2023-04-01", "2023-06-30", "apr-q1"),
    (4, "2024-02-10", "quarter", "2024-01-01", "2024-03-31", "apr-q4-across-calendar-year"),
    (4, "2023-12-25", "quarter", "2023-10-01", "2023-12-31", "apr-q3"),
    (4, "2023-05-17", "year", "2023-04-01", "2024-03-31", "apr-year"),
    (4, "2024-03-01", "year", "2023-04-01", "2024-03-31", "apr-year-from-last-month"),
    (2, "2023-01-15", "quarter", "2022-11-01", "2023-01-31", "feb-start-q4-nov-to-jan"),
]


@pytest.mark.parametrize("start_month,day,by,first,last", [g[:5] for g in GROUPS], ids=[g[5] for g in GROUPS])
def test_standard_group_start_and_end(start_month, day, by, first, last):
    cal = StandardFiscalCalendar(start_month)
    p = cal.period_of(D(day))
    assert cal.group_start(p, by).start == D(first)
    assert cal.group_end(p, by).end == D(last)


def test_standard_periods_touching_counts_partial_months_and_excludes_the_end():
    cal = StandardFiscalCalendar()
    periods = cal.periods_touching(D("2023-01-15"), D("2024-01-15"))
    assert [p.start for p in periods] == [dt.date(2023, m, 1) for m in range(1, 13)] + [D("2024-01-01")]
    # An exclusive end on the first of a month does not touch that month.
    assert cal.periods_touching(D("2023-02-01"), D("2023-05-01"))[-1].start == D("2023-04-01")
    assert cal.periods_touching(D("2023-02-01"), D("2023-02-01")) == []


@pytest.mark.parametrize("start_month", [0, 13], ids=["zero", "thirteen"])
def test_standard_start_month_must_be_a_month(start_month):
    with pytest.raises(ValueError):
        StandardFiscalCalendar(start_month)


def four_four_five(first: dt.date) -> list[tuple[dt.date, dt.date, None, None]]:
    """Twelve periods of 4, 4 and 5 weeks with no year or quarter given."""
    rows, start = [], first
    for weeks in [4, 4, 5] * 4:
        end = start + dt.timedelta(weeks=weeks) - dt.timedelta(days=1)
        rows.append((start, end, None, None))
        start = end + dt.timedelta(days=1)
    return rows


FOUR_FOUR_FIVE = ExplicitFiscalCalendar.from_rows(four_four_five(D("2024-01-01")), source="fiscal.toml")

EXPLICIT = [
    ("2024-01-01", ("2024-01-01", "2024-01-28", 2024, 1, 1), "first-day"),
    ("2024-03-20", ("2024-02-26", "2024-03-31", 2024, 1, 3), "third-period-is-five-weeks"),
    ("2024-04-02", ("2024-04-01", "2024-04-28", 2024, 2, 4), "second-quarter"),
    ("2024-12-29", ("2024-11-25", "2024-12-29", 2024, 4, 12), "last-day-of-year"),
]


@pytest.mark.parametrize("day,expected", [e[:2] for e in EXPLICIT], ids=[e[2] for e in EXPLICIT])
def test_explicit_4_4_5_period_of(day, expected):
    p = FOUR_FOUR_FIVE.period_of(D(day))
    start, end, year, quarter, number = expected
    assert (p.start, p.end, p.fiscal_year, p.quarter, p.number) == (D(start), D(end), year, quarter, number)


def test_explicit_4_4_5_groups():
    cal = FOUR_FOUR_FIVE
    p5 = cal.period_of(D("2024-05-15"))
    assert p5.number == 5
    assert cal.group_start(p5, "quarter").start == D("2024-04-01")
    assert cal.group_end(p5, "quarter").end == D("2024-06-30")
    assert cal.group_start(p5, "year").start == D("2024-01-01")
    assert cal.group_end(p5, "year").end == D("2024-12-29")
    assert cal.group_start(p5, "month") == p5 == cal.group_end(p5, "month")
    assert len(cal.periods_touching(D("2024-01-28"), D("2024-01-30"))) == 2


def thirteen_periods(year: int, first: dt.date) -> list[tuple[dt.date, dt.date, int, int]]:
    """A 13-period year of four-week periods, quarters of 3, 3, 3 and 4 periods."""
    quarters = [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 4]
    rows, start = [], first
    for q in quarters:
        end = start + dt.timedelta(days=27)
        rows.append((start, end, year, q))
        start = end + dt.timedelta(days=1)
    return rows


def test_explicit_13_period_year():
    cal = ExplicitFiscalCalendar.from_rows(thirteen_periods(2025, D("2024-12-29")) + thirteen_periods(2026, D("2025-12-28")))
    last = cal.period_of(D("2025-12-27"))
    assert (last.fiscal_year, last.quarter, last.number) == (2025, 4, 13)
    assert last.start == D("2025-11-30")
    assert cal.group_start(last, "quarter").start == D("2025-09-07")  # period 10
    assert cal.group_start(last, "year").start == D("2024-12-29")
    assert cal.group_end(cal.period_of(D("2025-01-01")), "year") == last
    nxt = cal.period_of(D("2025-12-28"))
    assert (nxt.fiscal_year, nxt.number, nxt.quarter) == (2026, 1, 1)
    assert len(cal.periods_touching(D("2025-01-01"), D("2026-01-01"))) == 14


@pytest.mark.parametrize("day", ["2023-12-31", "2024-12-30", "2031-06-01"],
                         ids=["day-before-first-period", "day-after-last-period", "far-future"])
def test_explicit_calendar_names_a_date_outside_every_period(day):
    with pytest.raises(FiscalCalendarError) as err:
        FOUR_FOUR_FIVE.period_of(D(day))
    text = str(err.value)
    assert day in text
    assert "fiscal.toml" in text
    assert err.value.hint and "period" in err.value.hint


def test_explicit_periods_touching_outside_raises_instead_of_falling_back():
    with pytest.raises(FiscalCalendarError, match="2024-12-31"):
        FOUR_FOUR_FIVE.periods_touching(D("2024-06-01"), D("2025-01-01"))


def test_explicit_periods_with_a_gap_are_refused():
    p1 = FiscalPeriod(D("2024-01-01"), D("2024-01-31"), 2024, 1, 1)
    p2 = FiscalPeriod(D("2024-02-02"), D("2024-02-29"), 2024, 1, 2)
    with pytest.raises(FiscalCalendarError, match="gap"):
        ExplicitFiscalCalendar([p1, p2])
    with pytest.raises(FiscalCalendarError):
        ExplicitFiscalCalendar([])


def test_fingerprint_changes_with_the_periods():
    other = ExplicitFiscalCalendar.from_rows(four_four_five(D("2024-01-08")))
    assert FOUR_FOUR_FIVE.fingerprint() != other.fingerprint()
    assert FOUR_FOUR_FIVE.fingerprint() == ExplicitFiscalCalendar.from_rows(four_four_five(D("2024-01-01"))).fingerprint()
    assert StandardFiscalCalendar(1).fingerprint() != StandardFiscalCalendar(4).fingerprint()


THIRTEEN_2025 = ExplicitFiscalCalendar.from_rows(thirteen_periods(2025, D("2024-12-29")))

GROUPS_TO_THE_END = [
    # calendar, first day, last day, by, [(group start, group end)] worked out from the periods
    # 4-4-5 2024: P1 01-01..01-28, P3 02-26..03-31, P4 04-01, P7 07-01, P10 09-30, P12 11-25..12-29 (last day)
    (FOUR_FOUR_FIVE, "2024-10-15", "2024-12-29", "quarter", [("2024-09-30", "2024-12-29")], "445-last-quarter"),
    (FOUR_FOUR_FIVE, "2024-01-01", "2024-12-01", "year", [("2024-01-01", "2024-12-29")], "445-year-to-inside"),
    (FOUR_FOUR_FIVE, "2024-10-28", "2024-12-29", "month",
     [("2024-10-28", "2024-11-24"), ("2024-11-25", "2024-12-29")], "445-last-months"),
    # 13 periods of 28 days from 2024-12-29: P4 2025-03-23, P6 05-18..06-14, P7 06-15, P9 ..09-06,
    # P10 09-07, P13 11-30..12-27 (the last day); quarters P4–P6, P7–P9, P10–P13
    (THIRTEEN_2025, "2025-06-01", "2025-12-27", "quarter",
     [("2025-03-23", "2025-06-14"), ("2025-06-15", "2025-09-06"), ("2025-09-07", "2025-12-27")], "13-last-quarters"),
    (THIRTEEN_2025, "2025-12-01", "2025-12-27", "month", [("2025-11-30", "2025-12-27")], "13-last-month"),
    (StandardFiscalCalendar(1), "2023-11-15", "2024-01-02", "quarter",
     [("2023-10-01", "2023-12-31"), ("2024-01-01", "2024-03-31")], "standard-never-ends"),
]


@pytest.mark.parametrize("cal,first,last,by,expected", [g[:5] for g in GROUPS_TO_THE_END],
                         ids=[g[5] for g in GROUPS_TO_THE_END])
def test_groups_stop_at_the_last_period(cal, first, last, by, expected):
    got = cal.groups(D(first), D(last), by)
    assert [(s.start, e.end) for s, e in got] == [(D(a), D(b)) for a, b in expected]


def test_next_period_is_none_after_the_last_one():
    last = FOUR_FOUR_FIVE.period_of(D("2024-12-29"))
    assert FOUR_FOUR_FIVE.next_period(last) is None
    assert FOUR_FOUR_FIVE.next_period(FOUR_FOUR_FIVE.period_of(D("2024-11-01"))) == last
    dec = StandardFiscalCalendar(1).period_of(D("2023-12-31"))
    assert StandardFiscalCalendar(1).next_period(dec).start == D("2024-01-01")
    with pytest.raises(FiscalCalendarError, match="2024-12-30"):
        FOUR_FOUR_FIVE.groups(D("2024-01-01"), D("2024-12-30"), "quarter")


LABELS = [
    # start_month, naming, day, by, label
    (1, "end", "2023-04-17", "month", "FY2023 P04", "jan-month"),
    (1, "end", "2023-04-17", "quarter", "FY2023 Q2", "jan-quarter"),
    (1, "start", "2023-04-17", "year", "FY2023", "jan-year-either-naming"),
    (2, "end", "2023-02-10", "month", "FY2024 P01", "feb-start-named-by-end-year"),
    (2, "end", "2024-01-31", "quarter", "FY2024 Q4", "feb-start-last-quarter"),
    (2, "start", "2023-02-10", "quarter", "FY2023 Q1", "feb-start-named-by-start-year"),
    (10, "end", "2023-10-01", "year", "FY2024", "oct-start-us-federal-style"),
]


@pytest.mark.parametrize("start_month,naming,day,by,label", [s[:5] for s in LABELS], ids=[s[5] for s in LABELS])
def test_standard_labels(start_month, naming, day, by, label):
    calendar = StandardFiscalCalendar(start_month, naming)
    assert calendar.label(calendar.period_of(D(day)), by) == label


def test_explicit_labels_given_years_counted_years_and_own_month_labels():
    rows = [(dt.date(2023, m, 1), dt.date(2023, m + 1, 1) - dt.timedelta(days=1)) for m in range(2, 12)]
    rows += [(dt.date(2023, 12, 1), dt.date(2023, 12, 31)), (dt.date(2024, 1, 1), dt.date(2024, 1, 31))]
    given = ExplicitFiscalCalendar.from_rows([(s, e, 2030, None) for s, e in rows])
    assert given.label(given.period_of(D("2023-05-01")), "quarter") == "FY2030 Q2"  # the file's own number
    counted = ExplicitFiscalCalendar.from_rows([(s, e, None, None) for s, e in rows])
    assert counted.label(counted.period_of(D("2023-05-01")), "quarter") == "FY2024 Q2"  # ends in 2024
    by_start = ExplicitFiscalCalendar.from_rows([(s, e, None, None) for s, e in rows], year_named_by="start")
    assert by_start.label(by_start.period_of(D("2023-05-01")), "year") == "FY2023"
    # Salesforce's own labels: the month keeps it; its year names the quarter and the year
    named = ExplicitFiscalCalendar.from_rows([(s, e, None, None, f"{s:%B} FY 2025") for s, e in rows])
    may = named.period_of(D("2023-05-01"))
    assert (named.label(may, "month"), named.label(may, "quarter"), named.label(may, "year")) == \
        ("May FY 2025", "FY2025 Q2", "FY2025")
    # a label is a name, not part of the period: same fingerprint with or without labels
    assert named.fingerprint() == counted.fingerprint()
