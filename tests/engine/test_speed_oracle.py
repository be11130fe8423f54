"""The fast paths of issue 11 against the implementations they replace, kept here as oracles.

Every figure must stay the same to the cent: the ARR rows the job writes in their stored form are
those of encoding `arr_rows` row by row (the job's previous code), on random orders of every
action, on a standard and an explicit (4-4-5) fiscal calendar, and on evergreen lines.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import operator
import re
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import example, given, settings, strategies as st

from connector.engine.arr_by_period import arr_rows
from connector.engine.billing import _segment_total, billing_total, cycle_date, partial, prorated
from connector.engine.dates import ONE_DAY, add_months, by_anniversaries, days_in_month, months_between
from connector.engine.limits import (
    MAX_LINE_AMOUNT, MAX_LINE_MRR, MAX_TERM_MONTHS, _beyond_term_limit, _plain, line_amount_problems,
)
from connector.engine.fiscal import ExplicitFiscalCalendar, FiscalPeriod, StandardFiscalCalendar
from connector.engine.model import (
    Action, ActivatedLine, BillingFrequency, ChangeCategory, OrderMetric, PricePeriod, Provisioning, Segment,
)
from connector.engine.money import Exact, exact, round_money
from connector.engine.metrics import generated_reason, order_metrics
from connector.errors import FiscalCalendarError
from connector.job_rows import order_metric_rows, stored_arr_rows
from connector.store.encode import IsoDays as _IsoDays, SameDays as _SameDays, Units as _Units, stored_order_metrics
from engine_builders import Book, D, line, order
from test_properties import PROPERTY_SETTINGS, random_orders


def _calendar_445() -> ExplicitFiscalCalendar:
    periods, start = [], dt.date(2019, 12, 29)
    for year in range(2020, 2029):
        for number, weeks in enumerate([4, 4, 5] * 4, start=1):
            end = start + dt.timedelta(weeks=weeks) - dt.timedelta(days=1)
            periods.append(FiscalPeriod(start, end, year, (number - 1) // 3 + 1, number))
            start = end + dt.timedelta(days=1)
    return ExplicitFiscalCalendar(periods)


CALENDARS = st.sampled_from([StandardFiscalCalendar(1), StandardFiscalCalendar(4), _calendar_445()])


def _oracle(lines, calendar, units, day) -> list[tuple]:
    """What `repository.insert_arr_rows` stored of `arr_rows` before issue 11 (jobs.arr_by_period)."""
    return [(pk, day[r[1]], day[r[2]], units[r[3]], units[r[4]], units[r[5]], units[r[6]])
            for pk, ln, currency in lines for r in arr_rows(ln, currency, calendar)]


def _both(book: Book, calendar, day_kind) -> tuple[list, list]:
    lines = [(pk, ln, a.order.currency) for pk, (a, ln) in enumerate(
        ((a, ln) for a in book.activations for ln in a.lines), start=1)]
    return (stored_arr_rows(lines, calendar, _Units(), day_kind()), _oracle(lines, calendar, _Units(), day_kind()))


@PROPERTY_SETTINGS
@given(data=st.data(), calendar=CALENDARS, count=st.integers(1, 10), sqlite=st.booleans())
def test_stored_arr_rows_are_the_encoded_rows_of_random_orders(data, calendar, count, sqlite):
    book = Book(calendar=calendar)
    random_orders(data, book, count)
    fast, oracle = _both(book, calendar, _IsoDays if sqlite else _SameDays)
    assert fast == oracle


def test_stored_arr_rows_of_evergreen_one_time_and_several_pieces():
    book = Book()
    book.activate(order("O-1", "A", line("L-1", item="S-1", quantity=3, unit_price=Decimal("99.99"),
                                         start=D("2023-01-15"), evergreen=True)))
    book.activate(order("O-2", "A", line("L-2", item="S-2", quantity=1, unit_price=Decimal("1000"),
                                         price_period=PricePeriod.YEAR, start=D("2023-03-31"), term_months=13)))
    book.activate(order("O-3", "A", line("L-3", Action.UPDATE, item="S-2", quantity=4, start=D("2023-07-04"),
                                         price_period=PricePeriod.YEAR)))
    book.activate(order("O-4", "B", line("L-4", Action.NEW, "SETUP", item="S-4", quantity=1,
                                         start=D("2023-02-01"), term_months=1)))
    fast, oracle = _both(book, book.calendar, _IsoDays)
    assert fast == oracle
    assert {row[0] for row in fast} >= {1, 2, 3}  # evergreen, yearly and updated lines all have rows


def _oracle_cycle_date(year: int, month: int, bill_cycle_day: int) -> dt.date:
    """billing.cycle_date before issue 11: a year carried per loop turn."""
    while month > 12:
        year, month = year + 1, month - 12
    return dt.date(year, month, min(bill_cycle_day, days_in_month(year, month)))


def test_cycle_date_carries_months_into_years_as_before():
    for year in (2019, 2020, 2023, 2024):  # leap years and not, and their neighbours via the carry
        for month in range(1, 12 * 40 + 1):
            for day in (1, 15, 28, 29, 30, 31):
                assert cycle_date(year, month, day) == _oracle_cycle_date(year, month, day), (year, month, day)


# billing.py before issue 11's integer billing: prorated, partial and the piece total on `Exact`
def _oracle_prorated(mrr, start: dt.date, end_excl: dt.date) -> Exact:
    dim = days_in_month(start.year, start.month)
    if end_excl <= start + dt.timedelta(days=dim - start.day + 1):
        return exact(mrr) * Fraction((end_excl - start).days, dim)
    days_by_length: dict[int, int] = {}
    day = start
    while day < end_excl:
        dim = days_in_month(day.year, day.month)
        stop = min(dt.date(day.year, day.month, dim) + ONE_DAY, end_excl)
        days_by_length[dim] = days_by_length.get(dim, 0) + (stop - day).days
        day = stop
    months = exact(0)
    for dim, days in days_by_length.items():
        months += Fraction(days, dim)
    return exact(mrr) * months


def _oracle_partial(mrr, start: dt.date, end_excl: dt.date, anniversary=None) -> Exact:
    step = anniversary or (lambda k: add_months(start, k))
    whole = max((end_excl.year - start.year) * 12 + end_excl.month - start.month, 0)
    while whole > 0 and step(whole) > end_excl:
        whole -= 1
    last = step(whole) if whole else start
    rest = _oracle_prorated(mrr, last, end_excl) if last < end_excl else exact(0)
    return exact(mrr) * whole + rest if whole else rest


def _oracle_segment_total(seg: Segment, frequency: BillingFrequency, bcd: int, currency: str) -> Decimal:
    step = {BillingFrequency.MONTH: 1, BillingFrequency.QUARTER: 3, BillingFrequency.YEAR: 12}[frequency]
    first = cycle_date(seg.start.year, seg.start.month, bcd)
    if first < seg.start:
        first = cycle_date(seg.start.year, seg.start.month + 1, bcd)
    total = Decimal(0)
    if seg.start < first:
        total += round_money(_oracle_partial(seg.mrr, seg.start, min(first, seg.end_excl)), currency)
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
        total += round_money(_oracle_partial(seg.mrr, tail, seg.end_excl,
                                             lambda k: cycle_date(tail.year, tail.month + k, bcd)), currency)
    return total


def _oracle_billing_total(ln, currency: str) -> Decimal:
    if not ln.recurring:
        return round_money(ln.one_time_amount, currency)
    return sum((_oracle_segment_total(seg, ln.billing_frequency, ln.bill_cycle_day, currency)
                for seg in ln.segments if seg.mrr != 0), Decimal(0))


MRRS = (st.decimals(Decimal("-99999.9999"), Decimal("99999.9999"), places=4)
        | st.builds(lambda n, d: exact(Fraction(n, d)), st.integers(-10**9, 10**9), st.integers(1, 10**4)))


@PROPERTY_SETTINGS
@given(start=st.dates(dt.date(2019, 1, 1), dt.date(2030, 12, 31)), days=st.integers(1, 2000), mrr=MRRS,
       bcd=st.integers(1, 31), frequency=st.sampled_from(list(BillingFrequency)),
       currency=st.sampled_from(["USD", "JPY", "KWD", "CLF"]))
def test_integer_piece_total_is_the_sum_of_its_rounded_periods_as_before(start, days, mrr, bcd, frequency, currency):
    seg = Segment(start, start + dt.timedelta(days=days), mrr, Decimal(1))
    fast, oracle = _segment_total(seg, frequency, bcd, currency), _oracle_segment_total(seg, frequency, bcd, currency)
    assert fast == oracle and fast.as_tuple() == oracle.as_tuple()  # same value, same places shown
    assert prorated(mrr, start, seg.end_excl) == _oracle_prorated(mrr, start, seg.end_excl)
    assert partial(mrr, start, seg.end_excl) == _oracle_partial(mrr, start, seg.end_excl)


@PROPERTY_SETTINGS
@given(data=st.data(), count=st.integers(1, 10), currency=st.sampled_from(["USD", "JPY", "KWD"]))
def test_billing_total_of_random_orders_is_as_before(data, count, currency):
    book = Book()
    random_orders(data, book, count)
    for a in book.activations:
        for ln in a.lines:
            assert billing_total(ln, currency).as_tuple() == _oracle_billing_total(ln, currency).as_tuple()


@PROPERTY_SETTINGS
@given(start=st.dates(dt.date(1900, 1, 1), dt.date(2999, 12, 31)),
       offset=st.integers(-40, 40), anchor=st.sampled_from([0, 1, 1199, 1200, 1201]))
def test_term_limit_by_dates_is_the_months_comparison_as_before(start, offset, anchor):
    """limits.line_amount_problems compared months_between(start, end + 1 day) with
    MAX_TERM_MONTHS; it compares dates now: the same answer on both sides of the limit."""
    end = add_months(start, anchor) + dt.timedelta(days=offset)
    if end < start:
        return
    assert _beyond_term_limit(start, end) == (months_between(start, end + ONE_DAY) > MAX_TERM_MONTHS)


@PROPERTY_SETTINGS
@given(a=MRRS, b=MRRS | st.integers(-10**6, 10**6) | st.fractions(max_denominator=10**6)
       | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([Decimal("NaN"), Decimal("Infinity"),
                                                                            Decimal("-Infinity")]))
def test_exact_compares_on_integers_as_fraction_did(a, b):
    """Exact's comparisons and equality on integers give what Fraction's gave, both ways round, for
    every operand the engine meets (and floats, NaN and infinities: Fraction's rules, as before)."""
    def outcome(compare, left, right):
        try:
            return compare(left, right)
        except Exception as exc:  # noqa: BLE001 - the same error, or none, both ways
            return type(exc)

    x = exact(a)
    for compare in (operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne):
        assert outcome(compare, x, b) == outcome(compare, Fraction(x), b), (compare, x, b)
        assert outcome(compare, b, x) == outcome(compare, b, Fraction(x)), (compare, b, x)
    assert hash(x) == hash(Fraction(x))


def _oracle_order_metrics(ln, currency: str, which, tcv=None) -> list[OrderMetric]:
    """metrics.order_metrics before `metric_amounts`: every amount worked out, the wanted kept."""
    wanted = set(which)
    reason = generated_reason(ln)
    out: list[OrderMetric] = []

    def add(metric, amount, start, end):
        if metric in wanted:
            out.append(OrderMetric(ln.id, metric, amount, start, end, reason))

    if not ln.recurring:
        amount = round_money(ln.one_time_amount, currency)
        add("tcv", amount, ln.start, ln.end)
        add("tcb", amount, ln.start, ln.end)
        add("elp", round_money(exact(ln.list_price_monthly) * ln.quantity, currency), ln.start, ln.end)
        add("quantity", ln.quantity, ln.start, ln.end)
        return out
    single = len(ln.segments) == 1
    for seg in ln.segments:
        end = seg.end_excl - ONE_DAY
        months = exact(months_between(seg.start, seg.end_excl))
        add("mrr", round_money(seg.mrr, currency), seg.start, end)
        if single:
            add("tcv", round_money(ln.tcv, currency) if tcv is None else tcv, seg.start, end)
        else:
            add("tcv", round_money(exact(seg.mrr) * months, currency), seg.start, end)
        add("elp", round_money(exact(ln.list_price_monthly) * seg.quantity * months, currency), seg.start, end)
        add("quantity", seg.quantity, seg.start, end)
    if "tcb" in wanted and ln.segments:
        out.append(OrderMetric(ln.id, "tcb", billing_total(ln, currency), ln.segments[0].start,
                               max(s.end_excl for s in ln.segments) - ONE_DAY, reason))
    return out


def _oracle_order_metric_rows(lines, which, units, day, tcvs) -> list[tuple]:
    """What the order metrics job stored before `metric_amounts`: a metric object per row, encoded."""
    return stored_order_metrics(
        ((pk, m) for pk, ln, currency in lines
         for m in _oracle_order_metrics(ln, currency, which, Decimal(tcvs[pk]).scaleb(-4) if pk in tcvs else None)),
        units, day)


WHICH = st.lists(st.sampled_from(["mrr", "tcv", "tcb", "elp", "quantity"]), unique=True)


@PROPERTY_SETTINGS
@given(data=st.data(), count=st.integers(1, 10), which=WHICH, sqlite=st.booleans(), stored_tcv=st.booleans(),
       twice=st.booleans())
def test_order_metric_rows_are_the_encoded_metrics_of_random_orders(data, count, which, sqlite, stored_tcv, twice):
    book = Book()
    random_orders(data, book, count)
    lines = [(pk, ln, a.order.currency) for pk, (a, ln) in enumerate(
        ((a, ln) for a in book.activations for ln in a.lines), start=1)]
    if twice and lines:  # a line given twice is numbered across both, as the oracle numbers it
        lines.append(lines[0])
    tcvs = {pk: _Units()[round_money(ln.tcv, currency)] for pk, ln, currency in lines} if stored_tcv else {}
    day = _IsoDays if sqlite else _SameDays
    fast = order_metric_rows(lines, which, _Units(), day(), tcvs)
    assert fast == _oracle_order_metric_rows(lines, which, _Units(), day(), tcvs)
    # ... and the metric objects are those of before, amount for amount
    for _, ln, currency in lines:
        got, want = order_metrics(ln, currency, which), _oracle_order_metrics(ln, currency, which)
        assert got == want and [m.amount.as_tuple() for m in got] == [m.amount.as_tuple() for m in want]


def test_order_metric_rows_of_a_line_of_several_pieces_number_each_metric():
    book = Book()
    book.activate(order("O-1", "A", line("L-1", item="S-1", quantity=10, unit_price=Decimal("120"),
                                         start=D("2024-01-01"), term_months=12)))
    book.activate(order("O-2", "A", line("L-2", Action.UPDATE, item="S-1", quantity=15, start=D("2024-04-01"))))
    book.activate(order("O-3", "A", line("L-3", Action.CANCEL, item="S-1", start=D("2024-07-01"))))
    lines = [(pk, ln, "USD") for pk, ln in enumerate((ln for a in book.activations for ln in a.lines), start=1)]
    several = [(pk, ln, c) for pk, ln, c in lines if len(ln.segments) > 1]
    assert several, "the cancellation after an update removes two pieces"
    rows = order_metric_rows(several, ["mrr", "tcv", "tcb"], _Units(), _IsoDays())
    assert [(r[1], r[2]) for r in rows] == [("mrr", 0), ("tcv", 0), ("mrr", 1), ("tcv", 1), ("tcb", 0)]
    assert rows == _oracle_order_metric_rows(several, ["mrr", "tcv", "tcb"], _Units(), _IsoDays(), {})


@PROPERTY_SETTINGS
@given(calendar=CALENDARS, start=st.dates(dt.date(2020, 1, 1), dt.date(2028, 6, 30)), days=st.integers(-40, 3000))
def test_a_span_touching_is_the_ends_and_count_of_the_periods_touching(calendar, start, days):
    end_excl = start + dt.timedelta(days=days)
    try:
        touching = calendar.periods_touching(start, end_excl)
    except FiscalCalendarError as exc:  # beyond an explicit calendar: the same error
        with pytest.raises(FiscalCalendarError, match=re.escape(str(exc))):
            calendar.span_touching(start, end_excl)
        return
    expected = (touching[0], touching[-1], len(touching)) if touching else None
    assert calendar.span_touching(start, end_excl) == expected


def _oracle_line_amount_problems(line) -> list[tuple[str, str]]:
    """limits.line_amount_problems before its check on integers: every comparison on rationals."""
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



def _near(limit: Decimal):
    """Amounts around `limit` (either sign), as Decimals and as exact rationals."""
    scale = st.sampled_from([Decimal(1), Decimal("0.5"), Decimal("0.999999"), Decimal("1.000001"), Decimal(2),
                             Decimal("1E-8")])
    decimal = (st.builds(lambda s, sign: sign * limit * s, scale, st.sampled_from([1, -1]))
               | st.builds(lambda k, sign: sign * (limit + k), st.sampled_from([Decimal(-1), Decimal("-0.01"),
                           Decimal(0), Decimal("0.0001"), Decimal("0.5")]), st.sampled_from([1, -1])))
    rational = st.builds(lambda d, k, sign: exact(Fraction(sign * (int(limit) * d + k), d)),
                         st.integers(1, 10**4), st.integers(-3, 3), st.sampled_from([1, -1]))
    return decimal | rational


@settings(max_examples=400, deadline=None)
@given(mrrs=st.lists(_near(MAX_LINE_MRR), min_size=0, max_size=3), price=_near(MAX_LINE_MRR),
       quantity=st.sampled_from([Decimal(1), Decimal("0.5"), Decimal(3), Decimal("1.0001")]),
       one_time=_near(MAX_LINE_AMOUNT), recurring=st.booleans(), years=st.sampled_from([1, 50, 100, 101]))
@example(mrrs=[MAX_LINE_MRR + Decimal("0.01")], price=Decimal(1), quantity=Decimal(1), one_time=Decimal(0),
         recurring=True, years=1)
@example(mrrs=[], price=Decimal(1), quantity=Decimal(1), one_time=MAX_LINE_AMOUNT + Decimal("0.01"),
         recurring=False, years=1)
@example(mrrs=[Decimal(1)], price=exact(Fraction(int(MAX_LINE_MRR) * 3 + 1, 3)), quantity=Decimal(1),
         one_time=Decimal(0), recurring=True, years=1)
@example(mrrs=[MAX_LINE_MRR], price=Decimal(1), quantity=Decimal(1), one_time=Decimal(0), recurring=True, years=100)
def test_the_amount_limits_on_integers_find_what_the_rational_checks_found(mrrs, price, quantity, one_time,
                                                                           recurring, years):
    start = D("2024-01-01")
    end = add_months(start, 12 * years) - ONE_DAY
    ln = _line_for_limits(start, end, mrrs, price, quantity, one_time, recurring)
    assert line_amount_problems(ln) == _oracle_line_amount_problems(ln)


def _line_for_limits(start, end, mrrs, price, quantity, one_time, recurring) -> ActivatedLine:
    pieces = tuple(Segment(start + dt.timedelta(days=30 * i), end + ONE_DAY, mrr, quantity)
                   for i, mrr in enumerate(mrrs))
    return ActivatedLine(
        order="O-1", id="L-1", seq=0, action=Action.NEW, product="P", product_name="P", item="S-1",
        item_kind=Provisioning.SUBSCRIPTION, quantity=quantity, unit_price=Decimal(1),
        price_period=PricePeriod.MONTH if recurring else PricePeriod.ONE_TIME, list_price_monthly=price,
        start=start, end=end, billing_frequency=BillingFrequency.MONTH, credit_eligible=False,
        change_category=ChangeCategory.NEW_BUSINESS,
        segments=pieces if recurring else (), one_time_amount=Decimal(0) if recurring else one_time,
        bill_cycle_day=1)


def _oracle_tcv(ln: ActivatedLine) -> Exact:
    """`ActivatedLine.tcv` before issue 11's integer sum: Exact products added piece by piece."""
    total = exact(ln.one_time_amount)
    for s in ln.segments:
        total += exact(s.mrr) * months_between(s.start, s.end_excl)
    return total


_AMOUNTS = st.one_of(
    st.decimals(min_value=-10**9, max_value=10**9, places=4, allow_nan=False, allow_infinity=False),
    st.builds(lambda n, d: exact(Fraction(n, d)), st.integers(-10**12, 10**12), st.integers(1, 10**6)))


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.tuples(_AMOUNTS, st.integers(0, 4000), st.integers(1, 4000)), max_size=5),
       one_time=st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False),
       recurring=st.booleans())
@example(pieces=[(Decimal("10.50"), 0, 365)], one_time=Decimal(0), recurring=True)
@example(pieces=[(Decimal("0.01"), 0, 31), (Decimal("-0.01"), 0, 31)], one_time=Decimal(0), recurring=True)
@example(pieces=[], one_time=Decimal("12.34"), recurring=False)
def test_tcv_summed_on_integers_is_the_rational_sum_as_before(pieces, one_time, recurring):
    """The same rational, in lowest terms, as adding Exact products piece by piece: amounts of any
    places (and rationals), partial months, pieces cancelling to zero."""
    start = D("2023-01-31")
    ln = _line_for_limits(start, start + dt.timedelta(days=4000), [], Decimal(1), Decimal(1), one_time, recurring)
    ln = dataclasses.replace(ln, segments=tuple(
        Segment(start + dt.timedelta(days=offset), start + dt.timedelta(days=offset + days), mrr, Decimal(1))
        for mrr, offset, days in pieces))
    got, want = ln.tcv, _oracle_tcv(ln)
    assert type(got) is Exact and (got.numerator, got.denominator) == (want.numerator, want.denominator)


def _oracle_months_between(start: dt.date, end_excl: dt.date) -> Fraction:
    """`months_between` before issue 11's direct count: anniversaries tried one month after another
    for every start (`dates.by_anniversaries`, now the way for starts from the 28th on)."""
    if end_excl < start:
        return -_oracle_months_between(end_excl, start)
    return by_anniversaries(start, end_excl)


@settings(max_examples=2000, deadline=None)
@given(start=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2200, 12, 31)),
       days=st.integers(-40_000, 40_000))
@example(start=dt.date(2023, 1, 27), days=32)   # the 27th: the last day of the direct count
@example(start=dt.date(2023, 1, 28), days=31)   # the 28th: anniversaries tried as before
@example(start=dt.date(2024, 2, 27), days=366)  # across a leap day
@example(start=dt.date(2023, 3, 15), days=0)
def test_months_between_counted_directly_is_the_count_as_before(start, days):
    end_excl = start + dt.timedelta(days=days)
    got, want = months_between.__wrapped__(start, end_excl), _oracle_months_between(start, end_excl)
    assert type(got) is Fraction and got == want
