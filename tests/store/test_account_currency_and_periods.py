"""Issue 9, store side: migration 0005 fills `account_metrics` per currency from a store made before
it; reports on a calendar of Salesforce Period records reach its last period."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from alembic import command
from sqlalchemy import insert, select, text

from connector import reports
from connector.clock import FrozenClock
from connector.engine.settings import EngineSettings
from connector.importer import import_document, parse
from connector.ingest import StoreCalendar
from connector.jobs import JobContext, JobRunner
from connector.engine.fiscal import StandardFiscalCalendar
from connector.store import schema as t
from connector.store.db import _alembic_config, open_store

CLOCK = FrozenClock(dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc))


def _doc(orders):
    return {"accounts": [{"id": "M", "name": "Multi"}],
            "products": [{"id": "SEAT", "name": "Seat", "provisioning": "subscription", "list_price": "100",
                          "price_period": "month"}],
            "orders": orders}


def _order(oid, currency, lid, qty, start, end):
    return {"id": oid, "account": "M", "owner": "Ann", "booked_on": "2023-01-01", "currency": currency,
            "lines": [{"id": lid, "action": "new", "product": "SEAT", "subscription": lid, "quantity": qty,
                       "unit_price": "100", "start": start, "end": end}]}


def _import(engine, doc, calendar):
    settings = EngineSettings()
    runner = JobRunner(engine, JobContext(calendar, settings), CLOCK)
    result = import_document(engine, parse(json.dumps(doc), "doc"), "doc", calendar, settings, CLOCK, runner)
    assert not result.failed_jobs


def test_migration_0005_fills_account_metrics_per_currency(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(url)
    # USD: 2 × 100 for 3 months = 600; JPY: 1 × 100 for 12 months = 1,200, then 3 × 100 for 1 month = 300
    _import(engine, _doc([_order("O-1", "USD", "L-1", 2, "2023-01-01", "2023-03-31"),
                          _order("O-2", "JPY", "L-2", 1, "2023-01-01", "2023-12-31"),
                          _order("O-3", "JPY", "L-3", 3, "2023-02-01", "2023-02-28")]),
            StandardFiscalCalendar(1))
    engine.dispose()
    cfg = _alembic_config(url)
    command.downgrade(cfg, "0004")  # a store as revsync left it before account metrics per currency
    check = open_store(url, migrate=False)
    with check.connect() as conn:
        assert "account_metrics" not in {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master"))}
    check.dispose()
    engine = open_store(url)  # migrates to the head again: 0005 fills the table from the stored lines
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(t.account_metrics).order_by(t.account_metrics.c.currency)).all()
            assert [(r.account, r.currency, r.tcv) for r in rows] == [("M", "JPY", Decimal(1500)),
                                                                     ("M", "USD", Decimal(600))]
            # the accounts report: USD first (M's first order), JPY without decimals
            assert [(a["currency"], str(a["tcv"])) for a in reports.accounts(conn, dt.date(2023, 2, 15))] == [
                ("USD", "600.00"), ("JPY", "1500")]
        # a later import adds to the row of its currency: JPY 1 × 100 for 2 months = 200 → 1,700;
        # EUR is new: 1 × 100 for 1 month = 100
        _import(engine, _doc([_order("O-4", "JPY", "L-4", 1, "2023-05-01", "2023-06-30"),
                              _order("O-5", "EUR", "L-5", 1, "2023-05-01", "2023-05-31")]),
                StandardFiscalCalendar(1))
        with engine.connect() as conn:
            assert [(a["currency"], str(a["tcv"])) for a in reports.accounts(conn, dt.date(2023, 5, 15))] == [
                ("USD", "600.00"), ("EUR", "100.00"), ("JPY", "1700")]
    finally:
        engine.dispose()


def test_a_salesforce_period_calendar_is_reported_to_its_last_period(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        # thirteen 4-week Period records, 2023-01-01 .. 2023-12-30, quarters of 3, 3, 3 and 4
        with engine.begin() as conn:
            conn.execute(insert(t.fiscal_periods), [
                dict(id=f"0260000000000{k:02d}AAA", start=dt.date(2023, 1, 1) + dt.timedelta(days=28 * k),
                     end=dt.date(2023, 1, 1) + dt.timedelta(days=28 * k + 27), fiscal_year=2023,
                     quarter=min(k // 3 + 1, 4)) for k in range(13)])
        calendar = StoreCalendar(engine)
        # 5 × 100 = 500 CMRR = 6,000 ARR from 2023-03-26 (Q2's first day) to 2023-12-30 (the last day)
        _import(engine, _doc([_order("O-1", "USD", "L-1", 5, "2023-03-26", "2023-12-30")]), calendar)
        with engine.connect() as conn:
            quarters = reports.arr_summary(conn, calendar, by="quarter", end=dt.date(2023, 10, 1))
            years = reports.arr_summary(conn, calendar, by="year")
            moves = reports.arr_movements(conn, calendar, by="quarter")
        # Q2 03-26..06-17: 0 → 6,000 (added on its first day); Q3 06-18..09-09 flat; Q4 09-10..12-30: 6,000 → 0
        assert [(str(q["period_start"]), str(q["period_end"]), q["opening_arr"], q["closing_arr"]) for q in quarters] == [
            ("2023-03-26", "2023-06-17", Decimal("0.00"), Decimal("6000.00")),
            ("2023-06-18", "2023-09-09", Decimal("6000.00"), Decimal("6000.00")),
            ("2023-09-10", "2023-12-30", Decimal("6000.00"), Decimal("0.00"))]
        assert [(str(y["period_start"]), str(y["period_end"])) for y in years] == [("2023-01-01", "2023-12-30")]
        assert [(m["new_arr"], m["churn_arr"]) for m in moves] == [
            (Decimal("6000.00"), 0), (0, 0), (0, Decimal("-6000.00"))]
        # an evergreen line's rows stop at the calendar's last period, not at its horizon past it
        assert calendar.last_day() == dt.date(2023, 12, 30)
        evergreen = _order("O-2", "USD", "L-2", 1, "2023-11-01", None)
        evergreen["lines"][0].pop("end")
        evergreen["lines"][0]["evergreen"] = True
        _import(engine, _doc([evergreen]), calendar)
        with engine.connect() as conn:
            starts = sorted(conn.execute(select(t.arr_rows.c.period_start).join(
                t.order_lines, t.order_lines.c.pk == t.arr_rows.c.line_pk).where(
                t.order_lines.c.id == "L-2")).scalars())
        assert starts and starts[-1] <= dt.date(2023, 12, 30)
    finally:
        engine.dispose()


def test_migration_0007_labels_the_periods_already_read(tmp_path):
    """A store that read Period records before labels were kept: 0008 takes each label from the mirror."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(url)
    engine.dispose()
    command.downgrade(_alembic_config(url), "0007")
    old = open_store(url, migrate=False)
    stamp = dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc)
    with old.begin() as conn:
        for n, (pid, label) in enumerate([("0PP1", "January FY2024"), ("0PP2", "February FY2024")], start=1):
            conn.execute(text("INSERT INTO fiscal_periods (id, start, \"end\") VALUES (:i, :s, :e)"),
                         {"i": pid, "s": dt.date(2023, n, 1), "e": dt.date(2023, n + 1, 1) - dt.timedelta(days=1)})
            conn.execute(insert(t.sf_records).values(object="Period", id=pid, system_modstamp=stamp, is_deleted=False,
                                                     data=json.dumps({"Id": pid, "FullyQualifiedLabel": label})))
    old.dispose()
    engine = open_store(url)
    try:
        calendar = StoreCalendar(engine)
        assert calendar.label(calendar.period_of(dt.date(2023, 2, 10)), "month") == "February FY2024"
        assert calendar.label(calendar.period_of(dt.date(2023, 2, 10)), "quarter") == "FY2024 Q1"
    finally:
        engine.dispose()
