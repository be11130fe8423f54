"""The writer's big-object capacity check (connector.capacity), in process against the sandbox org:
the daemon shows rows held back as its state (and on /health) while it goes on writing the
records; what the store counts as held is what the org holds, through `regenerate arr`'s deletions;
and the sandbox org fails rows past its own capacity, as a full org would.

The worked example: 26 ARR rows, written to both big objects (52 records).
"""
from __future__ import annotations

import datetime as dt
import json

from sync_support import close, connect

from connector import capacity
from connector.daemon import Daemon
from connector.jobs import regenerate_arr
from connector.metrics import Metrics
from connector.sandbox.faults import Fault
from connector.sandbox.org import Org, OrgConfig
from connector.store.repository import get_meta

BIG = ("ArrByPeriod__b", "ArrByPeriodByCustomer__b")


def one_pass(c, metrics=None) -> Daemon:
    daemon = Daemon(c.service, c.clock, interval=dt.timedelta(hours=1), writer=c.runtime.writer, metrics=metrics)
    result = daemon.run(once=True, install_signals=False)
    assert result.error is None, result.error
    return daemon


def held(c) -> dict[str, int]:
    with c.app.store.connect() as conn:
        return capacity.held(conn)


def daemon_state(c) -> dict:
    with c.app.store.connect() as conn:
        return json.loads(get_meta(conn, "daemon_state"))


def test_the_daemon_shows_rows_held_back_and_goes_on_with_the_rest(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch, salesforce={"big_object_capacity": 40})
    try:
        metrics = Metrics()
        daemon = one_pass(c, metrics)
        assert daemon.held_back is not None and (daemon.held_back.held, daemon.held_back.pending) == (0, 52)
        state = daemon_state(c)
        assert state["state"] == "degraded"
        assert state["reason"].startswith("ARR rows held back: writing them would put 52 records")
        assert metrics.trouble == state["reason"]  # /health says degraded, with the same reason
        assert [c.org.records(big) for big in BIG] == [[], []]
        assert len(c.org.records("Subscription__c")) == 2  # the records went on
        assert held(c) == {}

        c.runtime.writer.big_object_capacity = 52
        daemon = one_pass(c, metrics)
        assert daemon.held_back is None
        assert daemon_state(c)["state"] == "ok" and metrics.trouble is None
        assert held(c) == {big: 26 for big in BIG}
        assert [len(c.org.records(big)) for big in BIG] == [26, 26]
    finally:
        close(c)


def test_held_rows_follow_the_org_through_regenerate(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch)
    try:
        one_pass(c)
        assert held(c) == {big: 26 for big in BIG}
        # the admin moves the org to 4-4-5 periods: every month after January changes
        c.later()
        start = dt.date(2023, 1, 1)
        for period in sorted(c.org.records("Period"), key=lambda p: p["StartDate"]):
            weeks = (4, 4, 5)[(dt.date.fromisoformat(period["StartDate"]).month - 1) % 3]
            end = start + dt.timedelta(weeks=weeks) - dt.timedelta(days=1)
            c.org.update("Period", period["Id"], {"StartDate": start.isoformat(), "EndDate": end.isoformat()},
                         seed=True)
            start = end + dt.timedelta(days=1)
        c.later()
        one_pass(c)
        c.app.refresh_calendar()
        rows = regenerate_arr(c.app.store, c.app.runner.ctx)
        # the old calendar's rows are deleted, then the org turns down the new rows' jobs
        refused = c.org.faults.add(Fault.error(400, "INVALIDJOB", "try later", path="/jobs/ingest", times=None))
        one_pass(c)
        assert refused.fired > 0
        left = {big: len(c.org.records(big)) for big in BIG}
        assert 0 < left["ArrByPeriod__b"] < 26
        assert held(c) == left
        c.org.faults.clear()
        c.runtime.writer.big_object_capacity = 2 * rows  # exactly room for the new calendar's rows
        daemon = one_pass(c)
        assert daemon.held_back is None
        assert {big: len(c.org.records(big)) for big in BIG} == {big: rows for big in BIG}
        assert held(c) == {big: rows for big in BIG}
    finally:
        close(c)


def test_the_sandbox_org_fails_new_rows_past_its_capacity():
    org = Org(OrgConfig(big_object_capacity=2))
    row = {"StartDate__c": "2023-01-01T00:00:00.000+0000", "EndDate__c": "2023-01-31T00:00:00.000+0000",
           "OrderProduct__c": "802000000000001AAA", "Order__c": "801000000000001AAA"}
    assert org.insert_big("ArrByPeriod__b", row)
    assert org.insert_big("ArrByPeriod__b", row | {"StartDate__c": "2023-02-01T00:00:00.000+0000"})
    assert not org.insert_big("ArrByPeriod__b", row)  # the same index replaces its row: no more room needed
    try:
        org.insert_big("ArrByPeriod__b", row | {"StartDate__c": "2023-03-01T00:00:00.000+0000"})
    except Exception as exc:  # noqa: BLE001 - checked just below
        assert getattr(exc, "error_code", None) == "STORAGE_LIMIT_EXCEEDED"
    else:
        raise AssertionError("a third row was taken by an org that holds two")
    assert len(org.records("ArrByPeriod__b")) == 2


def test_rows_given_up_no_longer_show_as_held_back(tmp_path, monkeypatch):
    from sqlalchemy import select

    from connector.store import schema as t
    from connector.writers.outbox import ignore

    c = connect(tmp_path, monkeypatch, salesforce={"big_object_capacity": 10})
    try:
        one_pass(c)
        assert daemon_state(c)["state"] == "degraded"
        with c.app.store.connect() as conn:
            assert capacity.last_exceeded(conn)
            ids = conn.execute(select(t.outbox.c.id).where(t.outbox.c.kind == "big_object")).scalars().all()
        for entry in ids:  # the operator gives up on the ARR rows (`revsync outbox ignore ID`)
            assert ignore(c.app.store, c.clock, entry) == 1
        daemon = one_pass(c)
        assert daemon.held_back is None and daemon_state(c)["state"] == "ok"
        with c.app.store.connect() as conn:
            assert not capacity.last_exceeded(conn)
            assert capacity.status(conn, 10)["last_check"]["state"] == "ok"
        assert [c.org.records(big) for big in BIG] == [[], []]
    finally:
        close(c)
