"""With `JobRunner.overlap` (on by default on PostgreSQL), each batch's transactions run on a thread of
their own while the next batch's rows are worked out: the store ends exactly as when one thread runs
everything, job outcomes in the same order, failing jobs included, and a lost fence stops the batches
after it. Run here on SQLite with the overlap turned on, so that both ways meet the same store."""
from __future__ import annotations

import datetime as dt
import importlib.util
import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import event, select

from connector import job_rows, jobs as jobs_module
from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.importer import import_document, parse
from connector.jobs import FenceLost, JobContext, JobRunner
from connector.store import schema as t
from connector.store.db import open_store

CLOCK = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
CALENDAR = StandardFiscalCalendar(2)
_spec = importlib.util.spec_from_file_location(
    "engine_bench", Path(__file__).resolve().parents[1] / "bench" / "engine_bench.py")
engine_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(engine_bench)


def _store_with_pending_jobs(path: Path):
    """A store whose orders are activated and whose jobs are all pending."""
    engine = open_store(f"sqlite:///{path}")
    doc = engine_bench.generate(150, 21)
    deferred = JobRunner(engine, JobContext(CALENDAR, EngineSettings()), CLOCK, deferred=True)
    import_document(engine, parse(json.dumps(doc), "doc"), "doc", CALENDAR, EngineSettings(), CLOCK, deferred)
    return engine


def _runner(engine, overlap: bool, fence=None) -> JobRunner:
    runner = JobRunner(engine, JobContext(CALENDAR, EngineSettings()), CLOCK, batch_size=6, fence=fence)
    runner.overlap = overlap
    return runner


def _tables(engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {table.name: sorted(tuple(r) for r in conn.execute(select(table)))
                for table in t.metadata.sorted_tables}


def _both(tmp_path, **runner):
    """Run every pending job of the same store twice: on one thread, and overlapped."""
    out = []
    for overlap in (False, True):
        engine = _store_with_pending_jobs(tmp_path / f"{overlap}.db")
        threads = set()
        real = JobRunner._run_orders

        def noting(self, *args, **kwargs):
            threads.add(threading.current_thread().name)
            return real(self, *args, **kwargs)

        with pytest.MonkeyPatch.context() as m:
            m.setattr(JobRunner, "_run_orders", noting)
            try:
                outcomes = _runner(engine, overlap, **runner).run_pending()
            except FenceLost:
                outcomes = None
        out.append((outcomes, _tables(engine), threads))
        engine.dispose()
    return out


def test_overlapped_batches_leave_the_store_as_one_thread_does(tmp_path):
    (one, one_tables, one_threads), (two, two_tables, two_threads) = _both(tmp_path)
    assert one_threads == {threading.current_thread().name}
    assert two_threads and all(name.startswith("revsync-jobs") for name in two_threads)
    assert len(one) > 4 * 6 * 3 and all(o.ok for o in one)
    assert two == one
    assert two_tables == one_tables
    assert len(one_tables["arr_rows"]) > 1000 and len(one_tables["order_metrics"]) > 500


def test_a_failing_job_fails_alone_and_the_same_way(tmp_path, monkeypatch):
    """The rows of a batch are worked out ahead; a line whose rows cannot be is left to its job,
    which fails in its batch's transaction, runs again alone and is recorded failed, as on one thread."""
    real = job_rows.metric_amounts  # what the order metrics job's rows are made of
    calls = []

    def refuses_one_line(line, currency, wanted, tcv=None):
        calls.append(threading.current_thread().name)
        if line.id == "L40":
            raise ValueError("the billing schedule of L40 cannot be worked out")
        return real(line, currency, wanted, tcv)

    monkeypatch.setattr(job_rows, "metric_amounts", refuses_one_line)
    (one, one_tables, _), (two, two_tables, _) = _both(tmp_path)
    failed = [o for o in one if not o.ok]
    assert [(o.kind, "L40" in o.error) for o in failed] == [("order_metrics", True)]
    assert two == one
    assert two_tables == one_tables
    assert any(name.startswith("revsync-jobs") for name in calls)  # worked out again by the job


def test_a_lost_fence_stops_the_batches_after_it(tmp_path):
    """The fence is lost in the second batch's transaction: nothing after it is recorded,
    whether the next batch was already handed to the thread or not."""
    def fence_lost_on_the_second_transaction():
        count = {"n": 0}

        def fence(conn):
            count["n"] += 1
            if count["n"] == 2:
                raise FenceLost("another worker holds the claim now")
        return fence

    out = []
    for overlap in (False, True):
        engine = _store_with_pending_jobs(tmp_path / f"{overlap}.db")
        with pytest.raises(FenceLost):
            _runner(engine, overlap, fence=fence_lost_on_the_second_transaction()).run_pending()
        out.append(_tables(engine))
        with engine.connect() as conn:
            statuses = conn.execute(select(t.jobs.c.status, t.jobs.c.kind)).all()
        engine.dispose()
        done = [kind for status, kind in statuses if status == t.JobStatus.SUCCEEDED]
        assert sorted(set(done)) == ["arr_by_period", "credit_review", "order_metrics", "subscription_metrics"]
        assert len(done) == 4 * 6  # the first batch's transaction: its six orders' four jobs
    assert out[1] == out[0]


def test_a_batch_is_one_transaction_and_a_failing_kind_falls_back_alone(tmp_path, monkeypatch):
    """Every kind of job of a batch shares one transaction: one commit per batch. When one job
    fails, the batch's transaction rolls back whole, each kind runs again in a transaction of its
    own, and only the failing job's kind falls back to job by job: every other job is done."""
    engine = _store_with_pending_jobs(tmp_path / "clean.db")
    commits = []

    def count(conn):
        commits.append(1)

    event.listen(engine, "commit", count)
    outcomes = _runner(engine, False).run_pending()
    event.remove(engine, "commit", count)
    batches = -(-len({o.order_id for o in outcomes}) // 6)
    assert all(o.ok for o in outcomes) and batches > 5
    assert len(commits) == batches  # not one per kind
    clean = _tables(engine)
    engine.dispose()

    real = jobs_module.JOBS["arr_by_period"]
    failing_order = sorted({o.order_id for o in outcomes})[7]

    def fails_for_one_order(conn, orders, ctx, *prepared):
        if failing_order in orders:
            raise RuntimeError(f"ARR rows of {failing_order} cannot be written")
        return real(conn, orders, ctx, *prepared)

    monkeypatch.setitem(jobs_module.JOBS, "arr_by_period", fails_for_one_order)
    engine = _store_with_pending_jobs(tmp_path / "failing.db")
    again = _runner(engine, False).run_pending()
    with engine.connect() as conn:
        line_pks = {pk for (pk,) in conn.execute(select(t.order_lines.c.pk)
                                                 .where(t.order_lines.c.order_id == failing_order))}
    failing = _tables(engine)
    engine.dispose()
    assert [(o.order_id, o.kind) for o in again if not o.ok] == [(failing_order, "arr_by_period")]
    assert [(o.order_id, o.kind) for o in again] == [(o.order_id, o.kind) for o in outcomes]
    assert line_pks and failing["arr_rows"] == [r for r in clean["arr_rows"] if r[0] not in line_pks]
    for table in ("order_metrics", "line_metrics", "credit_drawdowns"):
        assert failing[table] == clean[table], table
