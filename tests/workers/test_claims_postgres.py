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


class _Mappings:
    """Mapped Salesforce orders: the mirror's JSON is already the mapped values here."""

    def read(self, sobject, record):
        return {**record, "booked_on": dt.date.fromisoformat(record["booked_on"])}


def _mirror_order(engine, order_id: str, account: str, stamp: dt.datetime) -> None:
    from sqlalchemy import delete, insert

    with engine.begin() as conn:
        conn.execute(delete(t.sf_records).where(t.sf_records.c.id == order_id))
        conn.execute(insert(t.sf_records).values(
            object="Order", id=order_id, system_modstamp=stamp, is_deleted=False, parent_id=account,
            data=json.dumps({"id": order_id, "account": account, "owner": "U1", "booked_on": "2024-01-01",
                             "currency": "USD", "status": "Activated", "ActivatedDate": "2024-01-01T00:00:00Z"})))


def test_the_daemon_leaves_activations_to_the_workers_once_each(store):
    from connector.ingest import Ingestor
    from connector.store import repository as repo

    engine, runner = store
    deferred = JobRunner(engine, runner.ctx, runner.clock, deferred=True)
    ingestor = Ingestor(engine, _Mappings(), EngineSettings(), runner.clock, deferred, lambda: runner.ctx.calendar)
    stamp = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    with engine.connect() as conn:
        account = conn.execute(select(t.accounts.c.id).order_by(t.accounts.c.id)).scalars().first()
        before = repo.next_order_seq(conn)
    item = [{"id": "SF-L1", "action": "new", "product": "P1", "quantity": "2", "start": dt.date(2024, 1, 1),
             "term_months": 12}]
    for order_id in ("SF-O1", "SF-O2"):
        _mirror_order(engine, order_id, account, stamp)
    with engine.connect() as conn:
        ready = ingestor.ready_orders(conn)
    assert [o["id"] for o in ready] == ["SF-O1", "SF-O2"]
    asked = []

    def items_of(ids):
        asked.extend(ids)
        return {i: [{**item[0], "id": f"{i}-L1"}] for i in ids}

    assert ingestor.activate_orders(ready, items_of) == []  # staged, not activated: no jobs ran
    with engine.connect() as conn:
        queued = dict(conn.execute(select(t.activation_queue.c.order_id, t.activation_queue.c.seq)).all())
        assert queued == {"SF-O1": before, "SF-O2": before + 1}
        assert repo.next_order_seq(conn) == before + 2, "an import after them must not take their numbers"
        assert ingestor.ready_orders(conn) == [], "the next cycle does not queue them again"
        assert conn.execute(select(t.orders.c.id).where(t.orders.c.id.like("SF-%"))).all() == []
    # changed in Salesforce while it waits: queued again with its new values, in the same place
    _mirror_order(engine, "SF-O2", account, stamp + dt.timedelta(minutes=1))
    with engine.connect() as conn:
        again = ingestor.ready_orders(conn)
    assert [o["id"] for o in again] == ["SF-O2"]
    ingestor.activate_orders(again, items_of)
    with engine.connect() as conn:
        row = conn.execute(select(t.activation_queue).where(t.activation_queue.c.order_id == "SF-O2")).one()
    assert row.seq == before + 1 and row.system_modstamp == stamp + dt.timedelta(minutes=1)
    # a worker activates them in that order, with those numbers, and runs their jobs
    worker = Worker(engine, runner, accounts_per_claim=100_000, name="w",
                    activate=Ingestor(engine, None, EngineSettings(), runner.clock, runner,
                                      lambda: runner.ctx.calendar).activate_staged)
    worker.run(until_idle=True)
    with engine.connect() as conn:
        seqs = dict(conn.execute(select(t.orders.c.id, t.orders.c.seq).where(t.orders.c.id.like("SF-%"))).all())
        assert conn.execute(select(t.activation_queue.c.order_id)).all() == []
    assert seqs == {"SF-O1": before, "SF-O2": before + 1}
    assert set(_statuses(engine, [account])) == {("succeeded", 1)}
