"""Property (issue 9): for any set of orders, `report arr-movements` explains every change exactly.

Per customer and period, opening + new + expansion + contraction + churn + reactivation + renewal
at a boundary = closing; summed over customers they are the totals; and the totals' opening and
closing are `report arr`'s, by month, quarter and year, on standard and 4-4-5 calendars.
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, reject, settings, strategies as st
from sqlalchemy import delete, func, select

from connector import reports
from connector.clock import FrozenClock
from connector.engine.fiscal import ExplicitFiscalCalendar, FiscalPeriod, StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.errors import ValidationFailed
from connector.importer import import_document, parse
from connector.jobs import JobContext, JobRunner
from connector.store import schema as t
from connector.store.db import open_store

ONE_DAY = dt.timedelta(days=1)
FIRST = dt.date(2023, 1, 1)
MOVES = ("new_arr", "expansion_arr", "contraction_arr", "churn_arr", "reactivation_arr", "renewal_boundary_arr")


def _calendar_445() -> ExplicitFiscalCalendar:
    periods, start = [], dt.date(2022, 1, 2)
    for year in range(2022, 2031):
        for n, weeks in enumerate([4, 4, 5] * 4, start=1):
            end = start + dt.timedelta(weeks=weeks) - ONE_DAY
            periods.append(FiscalPeriod(start, end, year, (n - 1) // 3 + 1, n))
            start = end + ONE_DAY
    return ExplicitFiscalCalendar(periods, "4-4-5 test calendar")


CALENDARS = [StandardFiscalCalendar(1), StandardFiscalCalendar(4), _calendar_445()]


@st.composite
def documents(draw):
    """An import document: new subscriptions (often starting on a 1st, or the day after another of
    the same customer ends), then updates, cancellations and renewals of some of them."""
    orders, follow = [], []
    n = draw(st.integers(1, 6))
    ends: dict[str, list[dt.date]] = {}
    for i in range(n):
        customer = draw(st.sampled_from(["A", "B", "C"]))
        how = draw(st.sampled_from(["any", "first", "after"]))
        if how == "after" and ends.get(customer):
            start = draw(st.sampled_from(ends[customer])) + ONE_DAY
        elif how == "first":
            start = dt.date(2023 + draw(st.integers(0, 1)), draw(st.integers(1, 12)), 1)
        else:
            start = FIRST + ONE_DAY * draw(st.integers(0, 700))
        end = start + ONE_DAY * draw(st.integers(0, 500))
        if draw(st.booleans()):  # end on a month's last day
            end = (end.replace(day=1) + dt.timedelta(days=32)).replace(day=1) - ONE_DAY
        ends.setdefault(customer, []).append(end)
        product = draw(st.sampled_from(["SEAT", "YEARLY"]))
        price = str(draw(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5000"), places=2)))
        sub = f"S-{i}"
        orders.append({"id": f"O-{i}", "account": customer, "owner": draw(st.sampled_from(["Ann", "Bob"])),
                       "booked_on": "2023-01-01", "currency": "USD",
                       "lines": [{"id": f"L-{i}", "action": "new", "product": product, "subscription": sub,
                                  "quantity": draw(st.integers(1, 20)), "unit_price": price,
                                  "start": start.isoformat(), "end": end.isoformat()}]})
        change = draw(st.sampled_from(["none", "update", "cancel", "renew"]))
        day = start + ONE_DAY * draw(st.integers(0, (end - start).days))
        line = {"id": f"L-{i}-c", "product": product, "subscription": sub}
        if change == "update":
            follow.append((customer, line | {"action": "update", "quantity": draw(st.integers(0, 25)),
                                             "start": day.isoformat()}))
        elif change == "cancel" and day > start:
            follow.append((customer, line | {"action": "cancel", "start": day.isoformat()}))
        elif change == "renew":
            follow.append((customer, line | {"action": "renew", "term_months": draw(st.integers(1, 12)),
                                             "unit_price": str(draw(st.decimals(min_value=Decimal("0.01"),
                                                                                max_value=Decimal("5000"),
                                                                                places=2)))}))
    for k, (customer, line) in enumerate(follow):
        orders.append({"id": f"O-c{k}", "account": customer, "owner": "Ann", "booked_on": "2023-01-01",
                       "currency": "USD", "lines": [line]})
    return {"accounts": [{"id": c, "name": f"Customer {c}"} for c in "ABC"],
            "products": [{"id": "SEAT", "name": "Seat", "provisioning": "subscription", "list_price": "1",
                          "price_period": "month"},
                         {"id": "YEARLY", "name": "Yearly", "provisioning": "subscription", "list_price": "1",
                          "price_period": "year"}],
            "orders": orders}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    engine = open_store(f"sqlite:///{tmp_path_factory.mktemp('movements-property') / 'store.db'}")
    yield engine
    engine.dispose()


def _empty(engine) -> None:
    with engine.begin() as conn:
        for table in reversed(t.metadata.sorted_tables):
            conn.execute(delete(table))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(doc=documents(), calendar=st.sampled_from(CALENDARS), owner=st.sampled_from([None, "Ann"]))
def test_opening_plus_movements_is_closing_and_totals_are_report_arrs(store, doc, calendar, owner):
    _empty(store)
    clock = FrozenClock(dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc))
    engine_settings = EngineSettings()
    runner = JobRunner(store, JobContext(calendar, engine_settings), clock)
    try:
        result = import_document(store, parse(json.dumps(doc), "doc"), "doc", calendar, engine_settings, clock,
                                 runner)
    except ValidationFailed:
        reject()  # a drawn change that the engine refuses (e.g. an update after a shorter renewal)
    assert not result.failed_jobs
    with store.connect() as conn:
        for by in ("month", "quarter", "year"):
            arr = reports.arr_summary(conn, calendar, by=by, owner=owner)
            totals = reports.arr_movements(conn, calendar, by=by, owner=owner)
            per_customer = reports.arr_movements(conn, calendar, by=by, owner=owner, per_customer=True)
            if owner is None:  # every drawn subscription has a price and a quantity: there are rows
                assert totals and conn.execute(select(func.count()).select_from(t.arr_rows)).scalar()
            assert [(r["period_start"], r["opening_arr"], r["closing_arr"]) for r in arr] == \
                [(r["period_start"], r["opening_arr"], r["closing_arr"]) for r in totals]
            for row in totals + per_customer:
                assert row["opening_arr"] + sum(row[k] for k in MOVES) == row["closing_arr"], (by, row)
            summed: dict = {}
            for row in per_customer:
                acc = summed.setdefault(row["period_start"], dict.fromkeys(("opening_arr", *MOVES, "closing_arr"),
                                                                           Decimal(0)))
                for key in acc:
                    acc[key] += row[key]
            for row in totals:
                expected = summed.get(row["period_start"])
                if expected is None:  # no customer moved or held ARR in the period
                    assert all(row[k] == 0 for k in ("opening_arr", *MOVES, "closing_arr"))
                else:
                    assert {k: row[k] for k in expected} == expected, (by, row)
            # per customer, a period's closing is the next one's opening
            by_customer: dict = {}
            for row in per_customer:
                by_customer.setdefault(row["customer"], {})[row["period_start"]] = row
            starts = [r["period_start"] for r in totals]
            for rows in by_customer.values():
                for before, after in zip(starts, starts[1:]):
                    closing = rows[before]["closing_arr"] if before in rows else Decimal(0)
                    opening = rows[after]["opening_arr"] if after in rows else Decimal(0)
                    assert closing == opening
