"""Background jobs: a failing job leaves its order activated with metrics absent; `revsync jobs` shows
it, `revsync jobs retry` fills the metrics in; credits are drawn once whatever runs again."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from cli_support import ACCOUNTS, PRODUCTS, Call, all_reports, revsync, run_all, snapshot, workdir, write_doc
from connector import jobs as jobs_module
from connector.app import App
from connector.clock import FrozenClock
from connector.config import load_config
from connector.importer import import_document, parse
from connector.store import schema as t

pytestmark = pytest.mark.slow

DOC = {
    "accounts": ACCOUNTS,
    "products": PRODUCTS,
    "credits": [{"id": "A-prepaid", "account": "A", "currency": "USD", "amount": "500"}],
    "orders": [
        {"id": "O-1", "account": "A", "owner": "Chloe", "booked_on": "2023-01-01", "currency": "USD",
         "lines": [{"id": "OP-1", "action": "new", "product": "SEAT", "subscription": "S-A", "quantity": 10,
                    "start": "2023-01-01", "end": "2023-12-31", "credit_eligible": True}]},
        {"id": "O-2", "account": "B", "owner": "Dan", "booked_on": "2023-01-15", "currency": "USD",
         "lines": [{"id": "OP-2", "action": "new", "product": "PLAN", "subscription": "S-B", "quantity": 1,
                    "start": "2023-02-01", "end": "2023-04-30"}]},
        {"id": "O-3", "account": "A", "owner": "Chloe", "booked_on": "2023-01-20", "currency": "USD",
         "lines": [{"id": "OP-3", "action": "new", "product": "SEAT", "subscription": "S-A2", "quantity": 1,
                    "start": "2023-01-01", "end": "2023-03-31", "credit_eligible": True}]},
    ],
}
FAILING = ("subscription_metrics", "arr_by_period")
REPORTS = {
    "failed": ("jobs", "--failed", "-f", "json"),
    "subscriptions": ("report", "subscriptions", "--as-of", "2023-03-01", "-f", "json"),
    "arr_o2": ("report", "arr-by-period", "--order", "O-2", "-f", "json"),
}


def _failing(kind: str):
    real = jobs_module.JOBS[kind]

    def job(conn, orders, ctx):
        if "O-2" in orders:
            raise RuntimeError(f"{kind} store offline for O-2")
        return real(conn, orders, ctx)
    return job


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    wd = workdir(tmp_path_factory.mktemp("jobs"), "wd")
    doc_path = write_doc(wd / "orders.json", DOC)
    out: dict = {"wd": wd}
    # 1. import in-process with two jobs failing for O-2 (a subprocess cannot inject the fault)
    with pytest.MonkeyPatch.context() as mp:
        for kind in FAILING:
            mp.setitem(jobs_module.JOBS, kind, _failing(kind))
        app = App(load_config(str(wd / "config.toml")), FrozenClock(dt.datetime(2023, 3, 1, tzinfo=dt.timezone.utc)))
        try:
            result = import_document(app.store, parse(doc_path.read_text(), str(doc_path)), str(doc_path),
                                     app.calendar, app.settings, app.clock, app.runner)
            with app.store.connect() as conn:
                out["statuses"] = dict(conn.execute(select(t.orders.c.id, t.orders.c.status)).all())
            url = app.config.store_url()
        finally:
            app.store.dispose()
    out["import"] = result
    out["url"] = url
    # 2. the real command reports the failure and the missing metrics
    out["before"] = dict(zip(REPORTS, run_all([Call(wd, a) for a in REPORTS.values()])))
    out["before_reports"] = {k: json.loads(v) for k, v in all_reports(url, as_of="2023-03-01").items()}
    # 3. fixed: retry
    out["retry"] = revsync(wd, "jobs", "retry")
    out["snapshot"] = snapshot(url, skip=["jobs"])
    out["after_reports"] = {k: json.loads(v) for k, v in all_reports(url, as_of="2023-03-01").items()}
    # 4. the reports after the retry, beside the same file imported again and a file that changes an
    #    imported order and credit (neither may change anything)
    changed = {**DOC, "credits": [{**DOC["credits"][0], "amount": "600"}],
               "orders": [{**DOC["orders"][1], "owner": "Eve"}]}
    results = run_all([Call(wd, a) for a in REPORTS.values()] + [
        Call(wd, ("import", str(doc_path))),
        Call(wd, ("import", str(write_doc(wd / "changed.json", changed))))])
    out["after"] = dict(zip(REPORTS, results))
    out["reimport"], out["conflict"] = results[-2:]
    out["snapshot_reimport"] = snapshot(url, skip=["jobs"])
    # 5. every job run again (marked failed, then retried by the command)
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(update(t.jobs).values(status="failed", last_error="forced to run again"))
    engine.dispose()
    out["rerun"] = revsync(wd, "jobs", "retry")
    out["snapshot_rerun"] = snapshot(url, skip=["jobs"])
    return out


def test_import_reports_the_failed_jobs(scenario):
    failed = {(j.order_id, j.kind) for j in scenario["import"].failed_jobs}
    assert failed == {("O-2", k) for k in FAILING}
    assert scenario["import"].activated == ["O-1", "O-2", "O-3"]
    assert scenario["statuses"] == {"O-1": "activated", "O-2": "activated", "O-3": "activated"}


def test_failed_jobs_are_listed_with_their_error(scenario):
    failed = scenario["before"]["failed"].json()
    assert {(j["order"], j["kind"]) for j in failed} == {("O-2", k) for k in FAILING}
    for j in failed:
        assert j["status"] == "failed" and j["attempts"] == 1
        assert "RuntimeError" in j["error"] and "store offline for O-2" in j["error"]


def test_metrics_of_the_failed_order_are_absent_the_others_present(scenario):
    subs = {s["subscription"]: s for s in scenario["before"]["subscriptions"].json()}
    assert subs["S-B"]["status"] == "active"  # provisioned by the immediate step
    assert (subs["S-B"]["mrr"], subs["S-B"]["arr"], subs["S-B"]["tcv"]) == (None, None, None)
    assert (subs["S-A"]["mrr"], subs["S-A"]["tcv"]) == ("1000.00", "12000.00")
    assert scenario["before"]["arr_o2"].json() == []
    # jobs that did not fail for O-2 ran
    metrics = [m for m in scenario["before_reports"]["order_metrics"] if m["order"] == "O-2"]
    assert {m["metric"] for m in metrics} == {"mrr", "tcv", "tcb", "elp", "quantity"}
    # account metrics belong to the immediate step
    accounts = {a["account"]: a for a in scenario["before_reports"]["accounts"]}
    assert (accounts["B"]["tcv"], accounts["B"]["customer_since"]) == ("6000.00", "2023-02-01")


def test_retry_fills_the_metrics_in(scenario):
    retry = scenario["retry"]
    assert retry.code == 0, retry.stderr
    assert "2 failed job(s) retried: 2 succeeded" in retry.stdout
    after = scenario["after"]
    assert after["failed"].json() == []
    subs = {s["subscription"]: s for s in after["subscriptions"].json()}
    assert (subs["S-B"]["mrr"], subs["S-B"]["arr"], subs["S-B"]["tcv"]) == ("2000.00", "24000.00", "6000.00")
    rows = after["arr_o2"].json()
    assert [(r["period_start"], r["opening_cmrr"], r["closing_cmrr"]) for r in rows] == [
        ("2023-02-01", "0.00", "2000.00"), ("2023-03-01", "2000.00", "2000.00"), ("2023-04-01", "2000.00", "0.00")]
    assert scenario["after_reports"]["order_metrics"] == scenario["before_reports"]["order_metrics"]


def test_credit_is_drawn_once_by_the_first_eligible_line(scenario):
    drawdowns = scenario["snapshot"]["credit_drawdowns"]
    assert len(drawdowns) == 1
    # (line_pk, order_id, account, currency, amount, net_amount): 500 of O-1's 12,000, none left for O-3
    _, order, account, currency, amount, net = drawdowns[0]
    assert (order, account, currency, Decimal(amount), Decimal(net)) == ("O-1", "A", "USD", 500, 11500)


def test_importing_again_changes_nothing(scenario):
    assert scenario["reimport"].code == 0, scenario["reimport"].stderr
    assert scenario["snapshot_reimport"] == scenario["snapshot"]


def test_a_changed_order_and_a_changed_credit_are_both_refused(scenario):
    out = scenario["conflict"]
    assert out.code == 2
    assert "credit A-prepaid" in out.errors and "500" in out.errors
    assert "order O-2" in out.errors and "different content" in out.errors


def test_running_every_job_again_changes_nothing(scenario):
    assert scenario["rerun"].code == 0, scenario["rerun"].stderr
    assert "12 failed job(s) retried: 12 succeeded" in scenario["rerun"].stdout
    assert scenario["snapshot_rerun"] == scenario["snapshot"]
