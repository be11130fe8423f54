"""A worker meets the PostgreSQL server restarting mid-work (its connections dropped, new ones refused
for a while): it backs off, goes on once the server is back, and every job runs once."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.importer import ImportDoc, import_document
from connector.jobs import JobContext, JobRunner
from connector.store import schema as t
from connector.store.db import open_store
from connector.workers import Worker, WorkerReport
from workers_support import document, postgres_schema_of_own_role

pytestmark = pytest.mark.postgres


def test_a_worker_waits_out_a_server_restart_and_runs_every_job_once():
    with postgres_schema_of_own_role() as store:
        engine = open_store(store.url)
        try:
            calendar, settings = StandardFiscalCalendar(1), EngineSettings()
            clock = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
            import_document(engine, ImportDoc.model_validate(json.loads(json.dumps(document(120)))), "test",
                            calendar, settings, clock, JobRunner(engine, JobContext(calendar, settings), clock,
                                                                 deferred=True))
            waits: list[float] = []

            def sleep(seconds: float) -> None:
                waits.append(seconds)
                if len(waits) == 3:
                    store.up()  # the server is back

            worker = Worker(engine, JobRunner(engine, JobContext(calendar, settings), clock), accounts_per_claim=5,
                            poll_seconds=2.0, name="w", sleep=sleep)
            process, claims = worker.process, []

            def process_then_restart(claim):
                claims.append(claim)
                outcomes = process(claim)
                if len(claims) == 2:
                    store.down()  # after the second claim's jobs: the next commit meets the restart
                return outcomes

            worker.process = process_then_restart
            report: WorkerReport = worker.run(until_idle=True)
            assert waits == [2.0, 4.0, 8.0]  # backing off while the server refused connections
            assert report.store_outages == 3 and report.failed == 0
            with engine.connect() as conn:
                jobs = conn.execute(select(t.jobs.c.status, t.jobs.c.attempts)).all()
                assert {(status, attempts) for status, attempts in jobs} == {("succeeded", 1)}  # every job, once
                # every claim released, the one in hand when the server went away too
                assert conn.execute(select(t.work_claims).where(t.work_claims.c.token.is_not(None))).all() == []
        finally:
            engine.dispose()
