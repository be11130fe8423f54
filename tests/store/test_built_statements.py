"""Statements with an IN list are built once per store dialect and run with their values bound at
each execution (`repository._built`), and they read and write what the statements built at each
call did, on both stores."""
from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.importer import import_document, parse
from connector.jobs import JobContext, JobRunner
from connector.store import repository as repo, schema as t
from connector.store.db import open_store

sys.path.insert(0, str(Path(__file__).parent))
from store_support import store_url, three_orders  # noqa: E402

CLOCK = FrozenClock(dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc))


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_statements_with_an_in_list_are_built_once_and_bind_their_values(tmp_path, store):
    with store_url(store, tmp_path) as url:
        engine = open_store(url)
        try:
            calendar, settings = StandardFiscalCalendar(1), EngineSettings()
            runner = JobRunner(engine, JobContext(calendar, settings), CLOCK)
            import_document(engine, parse(json.dumps(three_orders()), "doc"), "doc", calendar, settings, CLOCK,
                            runner, batch_size=1)
            key = (engine.dialect.name, "existing order_lines.id")
            with engine.connect() as conn:
                assert repo.line_ids_taken(conn, ["L-1", "L-3", "L-9"]) == {"L-1", "L-3"}
                built = repo._BUILT[key]
                # another call, other values: the same statement object, the values bound anew
                assert repo.line_ids_taken(conn, ["L-2", "nope"]) == {"L-2"}
                assert repo._BUILT[key] is built
                assert repo.line_ids_taken(conn, []) == set()
                pks = dict(conn.execute(select(t.order_lines.c.id, t.order_lines.c.pk)).all())
                # every line has its ARR rows, metrics and item metrics: the jobs ran through these statements
                assert repo.lines_with_arr_rows(conn, [pks["L-1"], pks["L-2"], 10_000]) == {pks["L-1"], pks["L-2"]}
                assert sorted(conn.execute(select(t.item_metrics.c.item)).scalars()) == ["L-1", "L-2", "L-3"]
                assert repo.order_hashes(conn, ["O-2", "O-4"]).keys() == {"O-2"}
                jobs = dict(conn.execute(select(t.jobs.c.id, t.jobs.c.attempts)).all())
            later = dt.datetime(2024, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)
            some = sorted(jobs)[:2]
            with engine.begin() as conn:
                repo.record_jobs_done(conn, some, later)  # `now` bound at execution as well
            with engine.connect() as conn:
                done = {r.id: r for r in conn.execute(select(t.jobs))}
            assert {i: (done[i].updated_at, done[i].attempts) for i in some} == {i: (later, jobs[i] + 1) for i in some}
            assert all(done[i].updated_at != later and done[i].attempts == jobs[i] for i in jobs if i not in some)
            assert all(done[i].status == t.JobStatus.SUCCEEDED for i in jobs)
        finally:
            engine.dispose()


def test_an_in_list_bound_at_execution_holds_ids_or_keys_only(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with engine.connect() as conn:
            with pytest.raises(TypeError, match="ids or keys"):
                repo._in_values(conn, ["L-1", 2.5])
            assert repo._in_values(conn, ["L-1", 2], now=1) == {"in_values": '["L-1", 2]', "now": 1}
    finally:
        engine.dispose()
