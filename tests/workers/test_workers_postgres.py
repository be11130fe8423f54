"""`revsync worker` processes on one PostgreSQL store (issue: past one machine).

The same generated orders are imported into separate schemas with the jobs left to workers; one
worker, four workers, and four workers one of which is killed with SIGKILL while it holds accounts
must leave exactly the same rows in every table (jobs, metrics, drawdowns, ARR rows, the outbox),
and those of the single-process mode; no job runs twice (each succeeded on its first attempt).
"""
from __future__ import annotations

import os
import signal
import time

import pytest
from sqlalchemy import create_engine, select, union

from connector.store import schema as t
from workers_support import (activate_through_ingest, content, document, import_file, job_counts,
                             postgres_schema, start_worker, write_config)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LINES = 1_500


@pytest.fixture(scope="module")
def doc():
    return document(LINES)


def _finish(workers, timeout: float = 50) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for w in workers:
        try:
            codes.append(w.wait(timeout=max(deadline - time.monotonic(), 0.1)))
        except Exception:
            for other in workers:
                other.kill()
            raise
    return codes


def _prepare(tmp_path, url, doc, source: str, claim_seconds: float = 3.0):
    """The orders activated by `revsync import` with their jobs pending, or ("queue") left by the
    daemon's ingest path in the activation queue: the workers activate them, then run the jobs."""
    config = write_config(tmp_path, url, workers=True, claim_seconds=claim_seconds)
    if source == "import":
        import_file(tmp_path, config, doc)
        assert set(job_counts(url)) == {"pending"}, "with [workers] enabled, the import leaves the jobs pending"
    else:
        activate_through_ingest(url, doc, workers=True)
        assert job_counts(url) == {}, "with [workers] enabled, the daemon leaves the activations to the workers"
    return config


def _workers_run(tmp_path, url, doc, count: int, source: str = "import") -> dict:
    config = _prepare(tmp_path, url, doc, source)
    workers = [start_worker(config, tmp_path / f"worker{i}.log") for i in range(count)]
    codes = _finish(workers)
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(count)]
    assert codes == [0] * count, logs
    return content(url)


def _assert_each_job_ran_once(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            jobs = conn.execute(select(t.jobs.c.status, t.jobs.c.attempts)).all()
    finally:
        engine.dispose()
    assert jobs and {(status, attempts) for status, attempts in jobs} == {("succeeded", 1)}


SOURCES = ["import", "queue"]


@pytest.mark.parametrize("source", SOURCES)
def test_four_workers_leave_the_rows_of_one(tmp_path, doc, source):
    (tmp_path / "one").mkdir()
    (tmp_path / "four").mkdir()
    (tmp_path / "single").mkdir()
    with postgres_schema() as one, postgres_schema() as four, postgres_schema() as single:
        by_one = _workers_run(tmp_path / "one", one, doc, 1, source)
        by_four = _workers_run(tmp_path / "four", four, doc, 4, source)
        _assert_each_job_ran_once(four)
        # the single-process mode: `revsync import`, or the daemon's activation, runs the jobs itself
        if source == "import":
            import_file(tmp_path / "single", write_config(tmp_path / "single", single, workers=False), doc)
        else:
            activate_through_ingest(single, doc, workers=False)
        by_import = content(single)
    assert by_one["arr_rows"] and by_one["credit_drawdowns"] and by_one["outbox"]
    assert len(by_one["orders"]) == len(doc["orders"]) and not by_one["activation_queue"]
    assert not by_one["quarantine"]
    assert by_four.keys() == by_one.keys()
    for table in by_one:
        assert by_four[table] == by_one[table], f"{table}: 4 workers differ from 1"
    # the import runs jobs 500 orders at a time across accounts, so it may queue a record's figures
    # before the account's later orders change them, then again: what is sent (the latest payload of
    # each record) is the same, and every other row
    for table in by_one:
        if table not in ("outbox", "outbox, latest per record"):
            assert by_import[table] == by_one[table], f"{table}: workers differ from the single-process mode"


def _accounts_with_work():
    """Accounts with an order left to activate or a job left to run."""
    return union(select(t.orders.c.account).join(t.jobs, t.jobs.c.order_id == t.orders.c.id)
                 .where(t.jobs.c.status == t.JobStatus.PENDING),
                 select(t.activation_queue.c.account))


@pytest.mark.parametrize("source", SOURCES)
def test_a_worker_killed_mid_job_loses_nothing_and_nothing_runs_twice(tmp_path, doc, source):
    (tmp_path / "one").mkdir()
    (tmp_path / "killed").mkdir()
    with postgres_schema() as one, postgres_schema() as killed:
        by_one = _workers_run(tmp_path / "one", one, doc, 1, source)
        config = _prepare(tmp_path / "killed", killed, doc, source, claim_seconds=3)
        logs = [tmp_path / "killed" / f"worker{i}.log" for i in range(4)]
        workers = [start_worker(config, log) for log in logs]
        victim = workers[0]
        engine = create_engine(killed)
        try:
            holder = None
            deadline = time.monotonic() + 30
            while holder is None and time.monotonic() < deadline:
                # stopped while looked at: a claim seen held is still held when it is killed (a
                # worker that finished its accounts between a look and the kill would hold none),
                # and on an account with work left (one whose jobs are all done needs no takeover)
                os.kill(victim.pid, signal.SIGSTOP)
                with engine.connect() as conn:
                    done = conn.execute(select(t.jobs.c.id).where(t.jobs.c.status == "succeeded").limit(1)).first()
                    holder = conn.execute(select(t.work_claims.c.account).where(
                        t.work_claims.c.claimed_by.like(f"%:{victim.pid}"),
                        t.work_claims.c.account.in_(_accounts_with_work()))).first() if done else None
                if holder is None:
                    os.kill(victim.pid, signal.SIGCONT)
                    time.sleep(0.02)
            assert holder is not None, "the first worker never held a claim while jobs were done"
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
            assert victim.returncode == -signal.SIGKILL
            with engine.connect() as conn:
                left = conn.execute(select(t.work_claims.c.account).where(
                    t.work_claims.c.claimed_by.like(f"%:{victim.pid}"))).scalars().all()
            assert left, "the killed worker held accounts when it died"
        finally:
            engine.dispose()
        codes = _finish(workers[1:])
        texts = [log.read_text() for log in logs[1:]]
        assert codes == [0, 0, 0], texts
        assert any("taking over account" in text for text in texts), "no worker took over the killed one's claim"
        _assert_each_job_ran_once(killed)
        after = content(killed)
    for table in by_one:
        assert after[table] == by_one[table], f"{table}: the run with a killed worker differs from 1 worker"
