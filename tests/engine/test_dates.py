"""Term arithmetic (SPEC section 5): inclusive ends, month-end anchoring, months with a partial month."""
from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

from connector.engine.dates import ONE_DAY, add_months, end_from_term, is_month_end, months_between
from engine_builders import D

# (start, inclusive end, expected months); the engine takes the exclusive end.
MONTHS = [
    ("2020-02-01", "2020-11-30", Fraction(10), "spec-10-months"),
    ("2017-02-27", "2018-01-31", 11 + Fraction(5, 31), "spec-11-and-5-31"),
    ("2023-01-15", "2024-01-14", Fraction(12), "twelve-from-mid-month"),
    ("2023-04-01", "2024-01-14", 9 + Fraction(14, 31), "spec-O-3-9-and-14-31"),
    ("2023-02-01", "2023-04-30", Fraction(3), "spec-O-2-three-months"),
    ("2023-01-15", "2023-01-31", Fraction(17, 31), "partial-only-jan15-to-feb15-is-31-days"),
    ("2023-02-15", "2023-02-28", Fraction(14, 28), "partial-only-in-february"),
    ("2024-02-15", "2024-02-29", Fraction(15, 29), "partial-only-in-leap-february"),
    ("2023-03-10", "2023-03-10", Fraction(1, 31), "one-day-of-march-10-to-april-10"),
    ("2020-01-31", "2020-02-28", Fraction(1), "month-end-jan31-to-leap-feb29-is-one-month"),
    ("2020-01-31", "2020-03-30", Fraction(2), "month-end-anchor-stays-at-march-31"),
    ("2023-02-28", "2023-03-30", Fraction(1), "feb28-is-month-end-so-next-anniversary-is-mar31"),
    ("2024-02-28", "2024-03-27", Fraction(1), "feb28-in-leap-year-is-not-month-end"),
    ("2024-02-29", "2025-02-27", Fraction(12), "leap-day-start-anchors-to-feb28"),
    ("2023-01-01", "2023-12-31", Fraction(12), "calendar-year"),
    ("2023-11-30", "2024-02-28", Fraction(3), "month-end-across-year-end-nov30-feb29"),
]


@pytest.mark.parametrize("start,end,expected", [m[:3] for m in MONTHS], ids=[m[3] for m in MONTHS])
def test_months_between(start, end, expected):
    assert months_between(D(start), D(end) + ONE_DAY) == expected


def test_months_between_empty_interval_is_zero():
    assert months_between(D("2023-05-05"), D("2023-05-05")) == 0


ADD = [
    ("2020-01-31", 1, "2020-02-29", "jan31-plus-1-leap"),
    ("2021-01-31", 1, "2021-02-28", "jan31-plus-1-common"),
    ("2020-01-31", 2, "2020-03-31", "month-end-anchor-kept"),
    ("2023-04-30", 1, "2023-05-31", "apr30-is-month-end"),
    ("2023-03-30", 1, "2023-04-30", "mar30-clamped-not-anchored"),
    ("2023-03-30", 2, "2023-05-30", "mar30-plus-2-stays-30th"),
    ("2023-01-15", 12, "2024-01-15", "one-year"),
    ("2023-11-15", 3, "2024-02-15", "across-year-end"),
    ("2024-02-29", 12, "2025-02-28", "leap-day-plus-year"),
    ("2024-02-29", 48, "2028-02-29", "leap-day-plus-four-years"),
    ("2023-03-31", -1, "2023-02-28", "backwards-month-end"),
    ("2023-05-15", 0, "2023-05-15", "zero"),
]


@pytest.mark.parametrize("anchor,months,expected", [a[:3] for a in ADD], ids=[a[3] for a in ADD])
def test_add_months(anchor, months, expected):
    assert add_months(D(anchor), months) == D(expected)


TERMS = [
    ("2023-01-15", 12, "2024-01-14", "spec-12-months-from-jan15"),
    ("2020-02-01", 10, "2020-11-30", "spec-10-months"),
    ("2023-01-01", 12, "2023-12-31", "calendar-year"),
    ("2023-02-01", 3, "2023-04-30", "quarter"),
    ("2023-01-31", 1, "2023-02-27", "month-end-start-next-anniversary-feb28"),
    ("2024-01-31", 1, "2024-02-28", "month-end-start-next-anniversary-feb29"),
    ("2024-02-29", 12, "2025-02-27", "leap-day-start"),
    ("2023-06-30", 6, "2023-12-30", "jun30-month-end-to-dec31-anniversary"),
]


@pytest.mark.parametrize("start,term,expected", [t[:3] for t in TERMS], ids=[t[3] for t in TERMS])
def test_end_from_term(start, term, expected):
    assert end_from_term(D(start), term) == D(expected)


@settings(max_examples=200, deadline=None)
@given(start=st.dates(min_value=D("2000-01-01"), max_value=D("2040-12-31")), term=st.integers(1, 120))
def test_start_and_term_give_an_end_that_gives_back_the_term(start, term):
    """Any two of start, end and term determine the third (SPEC section 5)."""
    end = end_from_term(start, term)
    assert end >= start
    assert months_between(start, end + ONE_DAY) == term


@settings(max_examples=200, deadline=None)
@given(start=st.dates(min_value=D("2000-01-01"), max_value=D("2040-12-31")), days=st.integers(0, 2000))
def test_months_between_is_monotone_and_splits_into_whole_and_partial(start, days):
    end_excl = start + days * ONE_DAY
    m = months_between(start, end_excl)
    whole = int(m)
    assert 0 <= m - whole < 1
    assert add_months(start, whole) <= end_excl < add_months(start, whole + 1)
    assert months_between(start, end_excl + ONE_DAY) > m
    if is_month_end(start):
        assert is_month_end(add_months(start, whole))
