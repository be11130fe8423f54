"""Evergreen lines from the user's side (issue 9): `revsync import` a line with `"evergreen": true`, then
`revsync jobs extend-evergreen` moves its horizon; the reports show the rows and metrics, re-running
changes nothing, and with an org the new rows go to the outbox like every ARR row.

Horizon 3 months; 10 seats at 100 = 1000 a month; bill cycle day 1. Figures worked out by hand
(the same as tests/engine/test_evergreen.py).
"""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import create_engine, select

from cli_support import ACCOUNTS, PRODUCTS, revsync, snapshot, store_url, workdir, write_doc
from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.jobs import JobContext, extend_evergreen
from connector.store import schema as t

pytestmark = pytest.mark.slow

CONFIG = "[engine]\nevergreen_horizon_months = 3\n"
DOC = {
    "accounts": ACCOUNTS, "products": PRODUCTS,
    "orders": [{"id": "O-1", "account": "A", "owner": "Chloe", "booked_on": "2023-01-01", "currency": "USD",
                "lines": [{"id": "OP-1", "action": "new", "product": "SEAT", "subscription": "S-1", "quantity": 10,
                           "start": "2023-01-15", "evergreen": True}]}],
}


def _months(wd):
    return [(r["period_start"][:7], r["opening_cmrr"], r["closing_cmrr"])
            for r in revsync(wd, "report", "arr-by-period", "-f", "json").json()]


def _metrics(wd):
    return {m["metric"]: m["amount"] for m in revsync(wd, "report", "order-metrics", "--order", "O-1", "-f", "json").json()
            if m["metric"] in ("tcv", "tcb")}


def test_import_extend_and_rerun(tmp_path):
    wd = workdir(tmp_path, "evergreen", CONFIG)
    write_doc(wd / "doc.json", DOC)
    assert revsync(wd, "import", "doc.json").code == 0
    # first horizon: 2023-01-15 + 3 months = 2023-04-15; rows Jan..Apr, April still closing at 1000
    assert _months(wd) == [("2023-01", "0.00", "1000.00"), ("2023-02", "1000.00", "1000.00"),
                           ("2023-03", "1000.00", "1000.00"), ("2023-04", "1000.00", "1000.00")]
    # TCV 3 months + 1/30 = 3033.33; TCB 548.39 + 1000 + 1000 + 500.00 = 3048.39
    assert _metrics(wd) == {"tcv": "3033.33", "tcb": "3048.39"}
    (sub,) = revsync(wd, "report", "subscriptions", "--as-of", "2023-03-01", "-f", "json").json()
    assert (sub["end"], sub["tcv"], sub["mrr"]) == ("2023-04-15", "3033.33", "1000.00")

    done = revsync(wd, "jobs", "extend-evergreen", "--as-of", "2023-06-10")
    assert done.code == 0, done.stderr
    assert "1 evergreen line(s) extended through 2023-09-10; 5 ARR-by-period row(s) added." in " ".join(done.stdout.split())
    # rows Jan..Apr unchanged, May..Sep added
    assert _months(wd) == [("2023-01", "0.00", "1000.00")] + [
        (m, "1000.00", "1000.00") for m in ("2023-02", "2023-03", "2023-04", "2023-05", "2023-06", "2023-07",
                                            "2023-08", "2023-09")]
    # TCV 7 months + 27/31 = 7870.97; TCB 548.39 + 7 × 1000 + 10/30 × 1000 = 7881.72
    assert _metrics(wd) == {"tcv": "7870.97", "tcb": "7881.72"}
    (sub,) = revsync(wd, "report", "subscriptions", "--as-of", "2023-03-01", "-f", "json").json()
    assert (sub["end"], sub["tcv"]) == ("2023-09-10", "7870.97")
    (account,) = [a for a in revsync(wd, "report", "accounts", "--as-of", "2023-03-01", "-f", "json").json()
                  if a["account"] == "A"]
    assert account["tcv"] == "7870.97"  # the sum of its lines' TCV

    # the same day again (or an earlier one): nothing changes
    before = snapshot(store_url(wd))
    again = revsync(wd, "jobs", "extend-evergreen", "--as-of", "2023-06-10")
    assert again.code == 0 and "0 evergreen line(s) extended" in again.stdout
    assert revsync(wd, "jobs", "extend-evergreen", "--as-of", "2023-02-01").code == 0
    assert snapshot(store_url(wd)) == before

    # a cancellation ends it: the extension leaves it alone, and September closes at 0
    write_doc(wd / "cancel.json", {"orders": [{
        "id": "O-2", "account": "A", "owner": "Chloe", "booked_on": "2023-09-01", "currency": "USD",
        "lines": [{"id": "OP-2", "action": "cancel", "product": "SEAT", "subscription": "S-1", "start": "2023-09-05"}]}]})
    assert revsync(wd, "import", "cancel.json").code == 0
    quarter = revsync(wd, "report", "arr", "--by", "month", "--from", "2023-08-01", "--to", "2023-09-30",
                      "-f", "json").json()
    assert [(q["opening_cmrr"], q["closing_cmrr"]) for q in quarter] == [("1000.00", "1000.00"), ("1000.00", "0.00")]
    done = revsync(wd, "jobs", "extend-evergreen", "--as-of", "2023-12-01")
    assert "0 evergreen line(s) extended" in done.stdout


def test_a_line_without_end_is_not_evergreen_by_accident(tmp_path):
    wd = workdir(tmp_path, "no-end", CONFIG)
    doc = json.loads(json.dumps(DOC))
    del doc["orders"][0]["lines"][0]["evergreen"]
    write_doc(wd / "doc.json", doc)
    result = revsync(wd, "import", "doc.json")
    assert result.code == 2
    assert "order O-1, line OP-1, field end" in result.errors and '"evergreen": true' in result.errors
    doc["orders"][0]["lines"][0] |= {"evergreen": True, "end": "2023-12-31"}
    write_doc(wd / "doc.json", doc)
    result = revsync(wd, "import", "doc.json")
    assert result.code == 2 and "an evergreen line runs until cancelled: remove `end`" in result.errors


def test_extension_writes_back_through_the_outbox(tmp_path):
    wd = workdir(tmp_path, "outbox", CONFIG)
    write_doc(wd / "doc.json", DOC)
    assert revsync(wd, "import", "doc.json").code == 0
    engine = create_engine(store_url(wd))
    clock = FrozenClock(dt.datetime(2023, 6, 10, 8, tzinfo=dt.timezone.utc))
    ctx = JobContext(StandardFiscalCalendar(1), EngineSettings(evergreen_horizon_months=3), write_back=True,
                     clock=clock)
    result = extend_evergreen(engine, ctx, clock.today())
    assert (result.through, result.lines, result.rows) == (dt.date(2023, 9, 10), 1, 5)
    with engine.connect() as conn:
        entries = conn.execute(select(t.outbox.c.object, t.outbox.c.external_id, t.outbox.c.kind, t.outbox.c.payload)
                               .order_by(t.outbox.c.id)).all()
    engine.dispose()
    big = sorted((e.object, e.external_id) for e in entries if e.kind == "big_object")
    assert big == [("ArrByPeriodByCustomer__b", "OP-1"), ("ArrByPeriod__b", "OP-1")]
    records = {e.object: json.loads(e.payload) for e in entries if e.kind == "record"}
    assert records["Subscription__c"]["tcv"] == "7870.97"
    assert records["Account"]["tcv"] == "7870.97"


def test_the_daemon_extends_once_a_day(tmp_path, monkeypatch):
    """`revsync sync` runs `evergreen_daily(app)` after each pass (connector/runtime.py): at most once a UTC day."""
    from connector import jobs as jobs_module
    from connector.app import App
    from connector.config import load_config

    wd = workdir(tmp_path, "daily", CONFIG)
    write_doc(wd / "doc.json", DOC)
    assert revsync(wd, "import", "doc.json").code == 0
    clock = FrozenClock(dt.datetime(2023, 6, 10, 8, tzinfo=dt.timezone.utc))
    app = App(load_config(str(wd / "config.toml")), clock)
    runs = []
    real = jobs_module.extend_evergreen
    monkeypatch.setattr(jobs_module, "extend_evergreen", lambda *a: runs.append(a[2]) or real(*a))
    hook = jobs_module.evergreen_daily(app)
    hook()
    hook()  # a second pass the same day: not again
    assert runs == [dt.date(2023, 6, 10)]
    assert _months(wd)[-1] == ("2023-09", "1000.00", "1000.00")
    clock.advance(dt.timedelta(days=1))
    jobs_module.evergreen_daily(app)()  # a restarted daemon the next day: once more
    assert runs == [dt.date(2023, 6, 10), dt.date(2023, 6, 11)]
    app.store.dispose()
