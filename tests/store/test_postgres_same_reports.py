"""The same import on PostgreSQL gives exactly the reports it gives on SQLite."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import text

from connector import reports
from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.importer import import_document, parse
from connector.jobs import JobContext, JobRunner, regenerate_arr
from connector.render import to_csv, to_json
from connector.store.db import open_store
from store_support import postgres_schema

CLOCK = FrozenClock(dt.datetime(2024, 2, 1, 12, tzinfo=dt.timezone.utc))


def _line(lid, action, product, sub, **kw):
    return {"id": lid, "action": action, "product": product, "subscription": sub, **kw}


def _order(oid, account, owner, booked, lines, currency="USD", **kw):
    return {"id": oid, "account": account, "owner": owner, "booked_on": booked, "currency": currency,
            "lines": lines, **kw}


# the worked example, plus every kind of line, prices per year and quarter, credits, assets and one-time fees
DOC = {
    "accounts": [{"id": "A", "name": "Customer A", "bill_cycle_day": 1}, {"id": "B", "name": "Customer B"},
                 {"id": "C", "name": "Customer C", "bill_cycle_day": 31}, {"id": "E", "name": "Kunde E"}],
    "products": [
        {"id": "SEAT", "name": "Platform seat", "provisioning": "subscription", "list_price": "100",
         "price_period": "month"},
        {"id": "PLAN", "name": "Enterprise plan", "provisioning": "subscription", "list_price": "2000",
         "price_period": "month"},
        {"id": "YEARLY", "name": "Analytics (yearly)", "provisioning": "subscription", "list_price": "1000",
         "price_period": "year"},
        {"id": "QTR", "name": "Support (quarterly)", "provisioning": "entitlement", "list_price": "350.50",
         "price_period": "quarter"},
        {"id": "SETUP", "name": "Setup fee", "provisioning": "asset", "list_price": "1999.99",
         "price_period": "one_time"}],
    "credits": [{"id": "C-1", "account": "C", "currency": "USD", "amount": "1234.56"},
                {"account": "E", "currency": "EUR", "amount": "100"}],
    "orders": [
        _order("O-1", "A", "Chloe", "2023-01-01", [_line("OP-001", "new", "SEAT", "S-001", quantity=10,
                                                         unit_price="100", start="2023-01-15", end="2024-01-14")]),
        _order("O-2", "B", "Chloe", "2023-01-20", [_line("OP-002", "new", "PLAN", "S-002", quantity=1,
                                                         start="2023-02-01", end="2023-04-30")]),
        _order("O-3", "A", "Chloe", "2023-02-01", [_line("OP-003", "update", "SEAT", "S-001", quantity=16,
                                                         start="2023-04-01")]),
        _order("O-4", "C", "Dan", "2023-01-31", [
            _line("OP-004", "new", "YEARLY", "S-004", quantity=3, start="2023-01-31", term_months=12,
                  credit_eligible=True, billing_frequency="quarter"),
            _line("OP-005", "new", "QTR", "E-005", quantity=2, start="2023-02-15", end="2023-11-14"),
            _line("OP-006", "new", "SETUP", "AS-006", quantity=1, start="2023-01-31", end="2023-01-31",
                  credit_eligible=True)]),
        _order("O-5", "C", "Dan", "2023-06-10", [
            _line("OP-007", "update", "YEARLY", "S-004", quantity=2, start="2023-06-10"),
            _line("OP-008", "cancel", "QTR", "E-005", start="2023-09-01")], bill_cycle_day=15),
        _order("O-6", "C", "Dan", "2023-12-01", [
            _line("OP-009", "renew", "YEARLY", "S-004", term_months=12, unit_price="1100")]),
        _order("O-7", "A", "Chloe", "2023-11-01", [
            _line("OP-010", "terms", "SEAT", "S-001", end="2024-03-31")]),
        _order("O-8", "E", "Eve", "2023-03-03", [
            _line("OP-011", "new", "SEAT", "S-011", quantity=7, unit_price="33.3333", start="2023-03-03",
                  end="2023-12-02", credit_eligible=True)], currency="EUR"),
        _order("O-9", "A", "Chloe", "2024-01-01", [
            _line("OP-012", "terms", "SEAT", "S-001", end="2024-02-29")]),
    ],
}


def _import(url: str) -> dict[str, str]:
    engine = open_store(url)
    try:
        calendar, settings = StandardFiscalCalendar(1), EngineSettings()
        runner = JobRunner(engine, JobContext(calendar, settings), CLOCK)
        result = import_document(engine, parse(json.dumps(DOC), "doc"), "doc", calendar, settings, CLOCK, runner)
        assert not result.failed_jobs, result.failed_jobs
        again = import_document(engine, parse(json.dumps(DOC), "doc"), "doc", calendar, settings, CLOCK, runner)
        assert again.activated == [] and len(again.already_imported) == len(DOC["orders"])
        out = _reports(engine, calendar, "")
        regenerate_arr(engine, JobContext(StandardFiscalCalendar(4), settings))
        out.update(_reports(engine, StandardFiscalCalendar(4), "april "))
        return out
    finally:
        engine.dispose()


def _reports(engine, calendar, prefix: str) -> dict[str, str]:
    out: dict[str, list] = {}
    with engine.connect() as conn:
        out["arr_by_period"] = reports.arr_by_period(conn)
        out["arr_by_period owner Dan"] = reports.arr_by_period(conn, owner="Dan")
        out["arr_by_period order O-5"] = reports.arr_by_period(conn, order="O-5")
        for by in ("month", "quarter", "year"):
            out[f"arr {by} USD"] = reports.arr_summary(conn, calendar, by=by, customer="C")
            out[f"arr {by} Chloe"] = reports.arr_summary(conn, calendar, by=by, owner="Chloe",
                                                         start=dt.date(2022, 11, 1), end=dt.date(2024, 6, 30))
        for day in ("2023-01-31", "2023-06-10", "2023-09-01", "2024-03-31"):
            out[f"subscriptions {day}"] = reports.subscriptions(conn, dt.date.fromisoformat(day))
            out[f"accounts {day}"] = reports.accounts(conn, dt.date.fromisoformat(day))
        out["entitlements"] = reports.subscriptions(conn, dt.date(2023, 3, 1), kind="entitlement")
        out["order_metrics"] = reports.order_metrics(conn)
        out["jobs"] = [{k: v for k, v in j.items() if k != "updated_at"} for j in reports.jobs(conn)]
    # JSON and CSV as the command prints them: the same text, digit for digit
    return {f"{prefix}{name}": to_json(rows) + to_csv(rows) for name, rows in out.items()}


@pytest.fixture
def postgres_url():
    with postgres_schema() as url:
        yield url


@pytest.mark.postgres
def test_postgres_gives_exactly_the_sqlite_reports(postgres_url, tmp_path):
    on_sqlite = _import(f"sqlite:///{tmp_path / 'store.db'}")
    on_postgres = _import(postgres_url)
    assert on_postgres.keys() == on_sqlite.keys()
    for name in on_sqlite:
        assert on_postgres[name] == on_sqlite[name], name
    # the comparison is not empty-handed: every order's rows and metrics are there
    rows = json.loads(on_sqlite["arr_by_period"].split("\n]")[0] + "\n]")
    assert {r["order"] for r in rows} == {o["id"] for o in DOC["orders"]}


@pytest.mark.postgres
def test_the_schema_is_in_the_test_schema_only(postgres_url):
    engine = open_store(postgres_url)
    try:
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar()
            tables = conn.execute(text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"),
                                  {"s": schema}).scalar()
        assert schema.startswith("revsync_test_") and tables > 10
        open_store(postgres_url).dispose()  # a second open migrates nothing and does not fail
    finally:
        engine.dispose()
