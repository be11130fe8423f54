"""A first read above the bulk threshold that fails half-way resumes at the first page not taken (issue 7): the
records already taken are not fetched again, and the store ends as after a read that never failed."""
from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.app import App
from connector.clock import FrozenClock
from connector.errors import FatalError
from connector.ingest import FIRST_READ
from connector.runtime import build
from connector.sandbox.faults import Fault
from connector.sandbox.org import Org, OrgConfig
from connector.sandbox.transport import sandbox_session
from connector.sources.poll import Checkpoint
from connector.store import schema as t
from sync_support import SEEDED_AT, Connected, close, connect, cursors
from test_backfill_crash import ORDERS, big_seed, snapshot

OBJECTS = ["Period", "Product2", "Account", "Order", "OrderItem"]
PAGE = 50
RESULTS = re.compile(r"/jobs/query/([^/]+)/results$")


def quick_org() -> Org:
    # a Bulk query job completes at its first status poll: the client never sleeps between polls
    return Org(OrgConfig(bulk_polls_to_complete=1), clock=FrozenClock(SEEDED_AT))


def connected(root: Path, monkeypatch, org: Org | None = None) -> Connected:
    root.mkdir()
    c = connect(root, monkeypatch, big_seed(), org=org or quick_org(), salesforce={"bulk_threshold": 30},
                sync={"objects": OBJECTS})
    c.service.source.bulk_page_records = PAGE
    return c


def restarted(c: Connected) -> Connected:
    """The connector built again on the same store and org, as a new process would be."""
    c.app.store.dispose()
    app = App(c.app.config, clock=c.clock)
    runtime = build(app, session=sandbox_session(c.org))
    runtime.service.source.bulk_page_records = PAGE
    return Connected(c.org, c.refs, app, runtime, c.org_clock, c.clock, c.tmp)


def checkpoint(c: Connected, sobject: str) -> Checkpoint | None:
    with c.app.store.connect() as conn:
        text = conn.execute(select(t.meta.c.value).where(t.meta.c.key == FIRST_READ + sobject)).scalar()
    return None if text is None else Checkpoint.loads(text)


def mirrored(c: Connected, sobject: str) -> int:
    with c.app.store.connect() as conn:
        return len(conn.execute(select(t.sf_records.c.id).where(t.sf_records.c.object == sobject)).all())


def result_pages(c: Connected, since: int = 0) -> list[str]:
    """The job ids of the bulk result pages fetched from the org, in order."""
    return [m.group(1) for e in c.org.request_log[since:] if e.method == "GET" and (m := RESULTS.search(e.path))]


def fail_the_third_order_page(c: Connected) -> Fault:
    # result pages before the Order read: Period (36 records: 1 page of 50), Account (240: 5 pages);
    # Product2 (2 records) is read by REST. The third page of Order is refused, for good.
    return c.org.faults.add(Fault.error(400, "API_ERROR", "sandbox fault: results refused", method="GET",
                                        path=r"/jobs/query/[^/]+/results", skip=1 + 5 + 2, times=1))


@pytest.fixture
def uninterrupted(tmp_path, monkeypatch):
    c = connected(tmp_path / "whole", monkeypatch)
    c.service.cycle()
    close(c)
    return c


def test_a_first_read_that_failed_half_way_resumes_at_the_next_page(tmp_path, monkeypatch, uninterrupted):
    c = connected(tmp_path / "failed", monkeypatch)
    fault = fail_the_third_order_page(c)
    with pytest.raises(FatalError, match="results refused"):
        c.service.cycle()
    assert fault.fired == 1
    # two pages of Order were taken, each with the locator of the next page; no cursor yet
    saved = checkpoint(c, "Order")
    assert saved is not None and (saved.taken, saved.locator) == (2 * PAGE, str(2 * PAGE))
    assert mirrored(c, "Order") == 2 * PAGE
    assert set(cursors(c)) == {"Period", "Product2", "Account"}
    jobs_before = set(result_pages(c))

    c = restarted(c)
    before = len(c.org.request_log)
    report = c.service.cycle()
    order = next(r for r in report.taken if r.object == "Order")
    # only the remainder was fetched: the three pages left of the same job, each record once
    fetched = result_pages(c, before)
    assert fetched.count(saved.job_id) == 3 and saved.job_id in jobs_before
    assert (order.taken, order.skipped) == (ORDERS - 2 * PAGE, 0)
    assert checkpoint(c, "Order") is None and set(cursors(c)) == set(OBJECTS)
    assert cursors(c) == cursors(uninterrupted)
    close(c)
    # the end state is that of a read that never failed
    assert snapshot(tmp_path / "failed" / "store.db") == snapshot(tmp_path / "whole" / "store.db")


def test_a_first_read_whose_bulk_job_is_gone_starts_over_and_says_so(tmp_path, monkeypatch, caplog, uninterrupted):
    c = connected(tmp_path / "failed", monkeypatch)
    fail_the_third_order_page(c)
    with pytest.raises(FatalError):
        c.service.cycle()
    saved = checkpoint(c, "Order")
    del c.org.bulk_jobs[saved.job_id]  # Salesforce deletes query jobs after seven days

    c = restarted(c)
    before = len(c.org.request_log)
    with caplog.at_level(logging.WARNING, logger="connector.sources.poll"):
        report = c.service.cycle()
    assert f"cannot resume Salesforce bulk query job {saved.job_id}" in caplog.text
    assert "reading Order again from the start" in caplog.text
    order = next(r for r in report.taken if r.object == "Order")
    # read again from the start by a new job: the records taken before are skipped, not taken twice
    fetched = result_pages(c, before)
    assert saved.job_id not in fetched and len([j for j in fetched if fetched.count(j) == ORDERS // PAGE + 1]) >= 1
    assert (order.taken, order.skipped) == (ORDERS - 2 * PAGE, 2 * PAGE)
    assert checkpoint(c, "Order") is None
    close(c)
    assert snapshot(tmp_path / "failed" / "store.db") == snapshot(tmp_path / "whole" / "store.db")


def test_a_first_read_below_the_threshold_is_one_rest_read_with_no_checkpoint(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch)  # the worked example: a few records per object
    try:
        c.service.cycle()
        assert result_pages(c) == []
        with c.app.store.connect() as conn:
            keys = conn.execute(select(t.meta.c.key).where(t.meta.c.key.like(FIRST_READ + "%"))).scalars().all()
        assert keys == [] and len(cursors(c)) == 8
        assert all(stamp <= c.clock.now() for stamp in cursors(c).values())
        assert min(cursors(c).values()) >= c.clock.now() - dt.timedelta(days=1)
    finally:
        close(c)
