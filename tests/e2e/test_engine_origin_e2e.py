"""Engine-origin orders (SPEC section 2): written to Salesforce as Draft with their items, set to
Activated only once the engine has finished activating them (every background job succeeded)."""
from __future__ import annotations

import json

import pytest
import requests
from e2e_support import CLIENT_ID, CLIENT_SECRET, site, worked_seed

from connector import jobs
from connector.app import App
from connector.clock import SystemClock
from connector.config import Config
from connector.importer import import_document, parse
from connector.reports import jobs as job_rows
from connector.runtime import build

ORDER = "/composite/sobjects/Order/"
ITEM = "/composite/sobjects/OrderItem/"


def engine_order(refs: dict[str, str]) -> dict:
    """One engine-origin order naming its account and product by their Salesforce Ids."""
    return {"orders": [{"id": "ENG-1", "account": refs["b"], "owner": "Chloe", "booked_on": "2023-05-15",
                        "currency": "USD", "lines": [{
                            "id": "ENG-1-1", "action": "new", "product": refs["seat"], "quantity": 5,
                            "unit_price": "100", "start": "2023-06-01", "end": "2024-05-31"}]}]}


def order_writes(org) -> list[str]:
    return ["Order" if ORDER in e.path else "OrderItem" for e in org.request_log
            if e.method == "PATCH" and (ORDER in e.path or ITEM in e.path)]


@pytest.fixture
def in_process(tmp_path, monkeypatch):
    """The sandbox over HTTPS and the connector's pieces in this process (a job can be made to fail)."""
    with site(tmp_path, worked_seed()) as s:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(s.server.ca_path))
        monkeypatch.setenv("REVSYNC_SF_CONSUMER_SECRET", CLIENT_SECRET)
        config = Config.model_validate({
            "store": {"url": f"sqlite:///{tmp_path / 'in-process.db'}"}, "fiscal": {"source": "salesforce"},
            "salesforce": {"auth": "client_credentials", "login_url": s.server.url, "consumer_key": CLIENT_ID}})
        app = App(config, SystemClock())
        session = requests.Session()
        try:
            yield s, app, build(app, session=session)
        finally:
            session.close()
            app.store.dispose()


def test_activation_waits_for_failed_jobs(in_process, monkeypatch):
    s, app, runtime = in_process
    runtime.service.cycle()  # reads the Period records (the calendar) and the worked example
    app.refresh_calendar()
    runtime.writer.flush()

    def broken(conn, orders, ctx):
        raise RuntimeError("ARR job broken for the test")

    working = jobs.JOBS["arr_by_period"]
    monkeypatch.setitem(jobs.JOBS, "arr_by_period", broken)
    doc = parse(json.dumps(engine_order(s.refs)), "eng.json")
    result = import_document(app.store, doc, "eng.json", app.calendar, app.settings, app.clock, app.runner)
    assert [j.kind for j in result.failed_jobs] == ["arr_by_period"]

    report = runtime.writer.flush()
    order = next(r for r in s.org.records("Order") if r.get("ExternalId__c") == "ENG-1")
    assert order["Status"] == "Draft"
    assert report.waiting.get("Order") == 1
    assert runtime.writer.left() == {"NEW": 1}  # the activation, held back
    runtime.writer.flush()  # nothing changes while the job is failed
    assert order["Status"] == "Draft"
    with app.store.connect() as conn:
        assert [(j["order"], j["kind"]) for j in job_rows(conn, failed_only=True)] == [("ENG-1", "arr_by_period")]

    monkeypatch.setitem(jobs.JOBS, "arr_by_period", working)  # the cause is fixed
    outcomes = app.runner.retry_failed()
    assert [(o.kind, o.ok) for o in outcomes] == [("arr_by_period", True)]
    runtime.writer.flush()
    order = next(r for r in s.org.records("Order") if r.get("ExternalId__c") == "ENG-1")
    assert order["Status"] == "Activated"
    assert runtime.writer.left() == {}
    assert order_writes(s.org) == ["Order", "OrderItem", "Order"]
