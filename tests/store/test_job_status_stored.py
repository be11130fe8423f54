"""Job statuses are a StrEnum in the code and the same lower-case text in the store, on both dialects
and through both write paths (INSERT, and COPY on PostgreSQL)."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import create_engine, insert, select, text

from connector.store.repository import _bulk, _stored
from connector.store.schema import JobStatus, OutboxState, metadata

from store_support import postgres_schema

TABLES = [metadata.tables["accounts"], metadata.tables["orders"], metadata.tables["jobs"]]


def test_members_keep_the_stored_values():
    assert [s.value for s in JobStatus] == ["pending", "succeeded", "failed"]
    assert [s.value for s in OutboxState] == ["NEW", "PENDING", "SUCCESS", "FAILED", "IGNORED"]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
        metadata.create_all(engine, tables=TABLES)
        yield engine
        engine.dispose()
    else:
        with postgres_schema() as url:
            engine = create_engine(url)
            metadata.create_all(engine, tables=TABLES)
            yield engine
            engine.dispose()


def test_statuses_are_stored_as_their_text(engine):
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    with engine.begin() as conn:
        conn.execute(insert(metadata.tables["accounts"]), {"id": "A", "name": "A", "tcv": 0})
        conn.execute(insert(metadata.tables["orders"]), {
            "id": "O", "seq": 1, "account": "A", "owner": "", "booked_on": now.date(), "currency": "USD",
            "bill_cycle_day": 1, "origin": "file", "status": "activated", "content_hash": "h", "activated_at": now})
        jobs = metadata.tables["jobs"]
        conn.execute(insert(jobs), [{"order_id": "O", "kind": f"k{n}", "status": s, "attempts": 0,
                                     "created_at": now, "updated_at": now} for n, s in enumerate(JobStatus)])
        stamp = _stored(conn, jobs.c.created_at, now)  # as save_activations writes its jobs
        _bulk(conn, jobs, ("order_id", "kind", "status", "attempts", "created_at", "updated_at"),
              [("O", "bulk", JobStatus.PENDING, 0, stamp, stamp)])
        raw = conn.execute(text("SELECT kind, status FROM jobs ORDER BY kind")).all()
        typed = set(conn.execute(select(jobs.c.status).where(jobs.c.status == JobStatus.FAILED)).scalars())
    assert [tuple(r) for r in raw] == [("bulk", "pending"), ("k0", "pending"), ("k1", "succeeded"),
                                       ("k2", "failed")]
    assert typed == {"failed"}
