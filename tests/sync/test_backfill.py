"""`Backfill.run` in process against the sandbox org: Bulk API 2.0 above the threshold, resumable, bounded,
and never moving the daemon's cursors."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from connector.backfill import Backfill
from connector.clock import FrozenClock
from connector.sandbox.org import Org, OrgConfig
from connector.store import schema as t
from sync_support import SEEDED_AT, SPEC_QUARTERS, UTC, close, connect, counts, cursors, engine_orders, quarters

OBJECTS = ["Period", "Product2", "Account", "Opportunity", "Quote", "QuoteLineItem", "Order", "OrderItem"]
SINCE = dt.datetime(2000, 1, 1, tzinfo=UTC)


def quick_org() -> Org:
    # a Bulk query job completes at its first status poll, so the client never sleeps between polls
    return Org(OrgConfig(bulk_polls_to_complete=1), clock=FrozenClock(SEEDED_AT))


@pytest.fixture
def connected(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch, salesforce={"bulk_threshold": 2}, org=quick_org())
    yield c
    close(c)


def backfill(c, **kw) -> Backfill:
    rt = c.runtime
    return Backfill(c.app.store, rt.client, rt.service.mappings, rt.ingestor, c.app.clock, **kw)


def progress(c) -> dict[str, tuple]:
    with c.app.store.connect() as conn:
        return {r.object: (r.bulk_job_id, r.locator, r.records, r.state)
                for r in conn.execute(select(t.backfill_progress).order_by(t.backfill_progress.c.backfill_id))}


def query_jobs(c) -> list[str]:
    return [j for j, job in c.org.bulk_jobs.items() if getattr(job, "kind", "") == "query"]


def test_backfill_reads_with_bulk_above_the_threshold_and_leaves_the_cursors_alone(connected):
    c = connected
    until = c.clock.now()
    report = backfill(c).run(SINCE, until, OBJECTS)
    assert not report.resumed
    assert report.records == {"Period": 24, "Product2": 2, "Account": 2, "Opportunity": 3, "Quote": 3,
                              "QuoteLineItem": 3, "Order": 3, "OrderItem": 3}
    assert report.activated == [c.refs["o1"], c.refs["o2"], c.refs["o3"]]
    assert quarters(c) == SPEC_QUARTERS
    state = progress(c)
    # two records are not above the threshold of 2: read by REST; the others by a Bulk job whose id is kept
    assert state["Product2"] == (None, None, 2, "done") and state["Account"] == (None, None, 2, "done")
    bulk = {o: s for o, s in state.items() if o not in ("Product2", "Account")}
    assert all(s[0] is not None and s[3] == "done" for s in bulk.values()), bulk
    assert sorted(s[0] for s in bulk.values()) == sorted(query_jobs(c))
    assert cursors(c) == {}


def test_pages_are_taken_with_the_next_locator(connected):
    c = connected
    seen = []
    original = c.runtime.client.bulk_query

    def small_pages(query, **kw):
        return original(query, **kw | {"max_records": 10})

    c.runtime.client.bulk_query = small_pages
    backfill(c).run(SINCE, c.clock.now(), ["Period"],
                    progress=lambda o, done, total: seen.append((done, progress(c)["Period"][1:])))
    # after each page of 10: the records so far and the locator of the next page, in one transaction
    assert seen[1:] == [(10, ("10", 10, "running")), (20, ("20", 20, "running")), (24, (None, 24, "done"))]


def test_a_run_with_the_same_window_resumes_the_unfinished_one(connected, monkeypatch):
    c = connected
    until = c.clock.now()
    original = c.runtime.ingestor.take_records

    def crash_on_orders(conn, sobject, records, result, now):
        if sobject == "Order":
            raise KeyboardInterrupt("killed")  # after the job id was saved, before its page was taken
        return original(conn, sobject, records, result, now)

    monkeypatch.setattr(c.runtime.ingestor, "take_records", crash_on_orders)
    with pytest.raises(KeyboardInterrupt):
        backfill(c).run(SINCE, until, OBJECTS)
    state = progress(c)
    assert state["Order"][0] is not None and state["Order"][2:] == (0, "running")
    assert state["OrderItem"][3] == "pending" and engine_orders(c) == []
    jobs_before = query_jobs(c)
    calls_before = c.calls

    monkeypatch.setattr(c.runtime.ingestor, "take_records", original)
    report = backfill(c).run(SINCE, until, OBJECTS)
    assert report.resumed
    # done objects are not read again; the Order job is read where it stopped; only OrderItem gets a new job
    assert len(query_jobs(c)) == len(jobs_before) + 1
    assert report.records["Order"] == 3 and report.records["Period"] == 24
    # the Order job's status and results, OrderItem's COUNT, job, status, results, then the items to activate
    assert c.calls - calls_before == 2 + 4 + 1
    assert engine_orders(c) == [c.refs["o1"], c.refs["o2"], c.refs["o3"]]
    assert quarters(c) == SPEC_QUARTERS

    before = counts(c)
    again = backfill(c).run(SINCE, until, OBJECTS)  # a finished window is a new run: all skipped by dedupe
    assert not again.resumed and again.activated == [] and counts(c) == before


def test_until_bounds_the_window(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch, salesforce={"bulk_threshold": 2}, org=quick_org())
    try:
        c.org_clock.advance(dt.timedelta(days=1))
        late = c.org.create("Account", {"Name": "Customer C"})
        c.clock.advance(dt.timedelta(days=2))
        report = backfill(c).run(SINCE, SEEDED_AT + dt.timedelta(hours=1), ["Account"])
        assert report.records == {"Account": 2}
        with c.app.store.connect() as conn:
            taken = set(conn.execute(select(t.sf_records.c.id).where(t.sf_records.c.object == "Account")).scalars())
        assert late not in taken and taken == {c.refs["a"], c.refs["b"]}
        later = backfill(c).run(SEEDED_AT + dt.timedelta(hours=1), c.clock.now(), ["Account"])
        assert later.records == {"Account": 1}
        assert cursors(c) == {}
    finally:
        close(c)


def test_the_daemon_after_a_backfill_takes_nothing_twice(connected):
    c = connected
    backfill(c).run(SINCE, c.clock.now(), OBJECTS)
    before = counts(c)
    c.later()
    report = c.service.cycle()
    assert sum(r.taken for r in report.taken) == 0 and report.activated == []
    assert counts(c) == before


def test_a_crash_while_the_background_jobs_run_is_finished_by_the_next_run(connected, monkeypatch):
    c = connected
    until = c.clock.now()
    runner = c.runtime.ingestor.runner
    original = runner.run_pending

    def crash(*a, **kw):
        raise KeyboardInterrupt("killed")  # orders activated and committed, their jobs not run

    monkeypatch.setattr(runner, "run_pending", crash)
    with pytest.raises(KeyboardInterrupt):
        backfill(c).run(SINCE, until, OBJECTS)
    assert len(engine_orders(c)) == 3
    monkeypatch.setattr(runner, "run_pending", original)
    report = backfill(c).run(SINCE, until, OBJECTS)
    assert report.resumed and report.activated == []
    with c.app.store.connect() as conn:
        assert set(conn.execute(select(t.jobs.c.status)).scalars()) == {"succeeded"}
    assert quarters(c) == SPEC_QUARTERS


def test_a_run_without_an_end_resumes_the_unfinished_one_with_its_end(connected, monkeypatch):
    """`revsync backfill --since D` run again after a crash resumes, although "now" has moved."""
    c = connected
    first_now = c.clock.now()
    original = c.runtime.ingestor.take_records

    def crash_on_orders(conn, sobject, records, result, now):
        if sobject == "Order":
            raise KeyboardInterrupt("killed")
        return original(conn, sobject, records, result, now)

    monkeypatch.setattr(c.runtime.ingestor, "take_records", crash_on_orders)
    with pytest.raises(KeyboardInterrupt):
        backfill(c).run(SINCE, None, OBJECTS)
    monkeypatch.setattr(c.runtime.ingestor, "take_records", original)
    c.later(10)
    c.org.create("Account", {"Name": "Customer C"})  # after the first run's end: not in its window
    report = backfill(c).run(SINCE, None, OBJECTS)
    assert report.resumed and report.records["Account"] == 2
    with c.app.store.connect() as conn:
        ends = [r.until.replace(tzinfo=UTC) for r in conn.execute(select(t.backfills))]
    assert ends == [first_now]
    assert quarters(c) == SPEC_QUARTERS
    other = backfill(c).run(SINCE, None, ["Account"])  # other objects: a run of its own, ending now
    assert not other.resumed and other.records == {"Account": 3}


def test_a_run_ending_now_reads_what_changed_earlier_in_the_same_second(tmp_path, monkeypatch):
    """SOQL compares whole seconds: an end of "now" is rounded up, never down past a fresh change."""
    c = connect(tmp_path, monkeypatch, salesforce={"bulk_threshold": 2}, org=quick_org())
    try:
        c.org_clock.advance(dt.timedelta(milliseconds=500))
        fresh = c.org.create("Account", {"Name": "Customer C"})  # stamped 09:00:00.500
        c.clock.advance(SEEDED_AT + dt.timedelta(milliseconds=700) - c.clock.now())  # starts at 09:00:00.700
        report = backfill(c).run(SINCE, None, ["Account"])
        assert report.records == {"Account": 3}
        with c.app.store.connect() as conn:
            taken = set(conn.execute(select(t.sf_records.c.id).where(t.sf_records.c.object == "Account")).scalars())
            ends = [r.until.replace(tzinfo=UTC) for r in conn.execute(select(t.backfills))]
        assert fresh in taken
        assert ends == [SEEDED_AT + dt.timedelta(seconds=1)]  # the end stored is the end queried
    finally:
        close(c)
