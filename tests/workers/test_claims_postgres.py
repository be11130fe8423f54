"""Claims of `connector.workers` on PostgreSQL, in one process: disjoint while live, taken over once
expired, and the fence refusing the commits of a worker whose claim was taken over (a worker
paused, not killed: it wakes up and must write nothing for accounts it no longer holds)."""
from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from sqlalchemy import select

from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.importer import ImportDoc, import_document
from connector.jobs import FenceLost, JobContext, JobRunner
from connector.store import schema as t
from connector.store.db import open_store
from connector.workers import Worker, require_postgresql
from workers_support import document, postgres_schema

pytestmark = pytest.mark.postgres


@pytest.fixture
def store():
    with postgres_schema() as url:
        engine = open_store(url)
        calendar, settings = StandardFiscalCalendar(1), EngineSettings()
        clock = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
        runner = JobRunner(engine, JobContext(calendar, settings), clock, deferred=True)
        import_document(engine, ImportDoc.model_validate(json.loads(json.dumps(document(120)))), "test",
                        calendar, settings, clock, runner)
        try:
            yield engine, JobRunner(engine, JobContext(calendar, settings), clock)
        finally:
            engine.dispose()


def _statuses(engine, accounts):
    with engine.connect() as conn:
        return sorted(conn.execute(select(t.jobs.c.status, t.jobs.c.attempts)
                                   .join(t.orders, t.orders.c.id == t.jobs.c.order_id)
                                   .where(t.orders.c.account.in_(accounts))).all())


def test_a_deferred_runner_leaves_the_jobs(store):
    engine, _ = store
    with engine.connect() as conn:
        assert set(conn.execute(select(t.jobs.c.status)).scalars()) == {"pending"}


def test_live_claims_are_disjoint_and_an_expired_one_is_taken_over_and_fenced(store):
    engine, runner = store
    a = Worker(engine, runner, claim_seconds=1, accounts_per_claim=3, name="a")
    b = Worker(engine, runner, claim_seconds=60, accounts_per_claim=3, name="b")
    claim_a = a.claim()
    claim_b = b.claim()
    assert claim_a and claim_b and not set(claim_a.accounts) & set(claim_b.accounts)
    b.release(claim_b)
    time.sleep(1.3)  # a is paused past its claim
    taken = b.claim()
    assert taken is not None and set(claim_a.accounts) <= set(taken.accounts), "the expired claim is taken over"
    with pytest.raises(FenceLost):
        a.process(claim_a)  # a wakes up: its first commit is refused, and rolled back
    assert {s for s, _ in _statuses(engine, claim_a.accounts)} == {"pending"}
    b.process(taken)
    b.release(taken)
    assert set(_statuses(engine, taken.accounts)) == {("succeeded", 1)}
    a.release(claim_a)  # a's release of accounts it lost leaves b's rows alone
    with engine.connect() as conn:
        holders = set(conn.execute(select(t.work_claims.c.claimed_by)
                                   .where(t.work_claims.c.account.in_(claim_a.accounts))).scalars())
    assert holders == {None}


def test_a_live_claim_is_renewed_by_its_commits(store):
    engine, runner = store
    a = Worker(engine, runner, claim_seconds=1, accounts_per_claim=2, name="a")
    b = Worker(engine, runner, claim_seconds=60, accounts_per_claim=100_000, name="b")
    claim = a.claim()
    time.sleep(0.6)
    with engine.begin() as conn:
        claim.fence(conn)  # what every job commit of `a` does
    time.sleep(0.6)  # past the first expiry, within the renewed one
    others = b.claim()
    assert others is not None and not set(others.accounts) & set(claim.accounts)


def test_workers_refuse_sqlite(tmp_path):
    from connector.errors import ConfigError

    with pytest.raises(ConfigError, match="needs a PostgreSQL store"):
        require_postgresql(f"sqlite:///{tmp_path / 'x.db'}")
