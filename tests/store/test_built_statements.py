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


def _import_three_orders(engine) -> None:
    """The three orders of store_support, one batch each, their jobs run."""
    calendar, settings = StandardFiscalCalendar(1), EngineSettings()
    runner = JobRunner(engine, JobContext(calendar, settings), CLOCK)
    import_document(engine, parse(json.dumps(three_orders()), "doc"), "doc", calendar, settings, CLOCK,
                    runner, batch_size=1)


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_statements_with_an_in_list_are_built_once_and_bind_their_values(tmp_path, store):
    with store_url(store, tmp_path) as url:
        engine = open_store(url)
        try:
            _import_three_orders(engine)
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


def test_consecutive_keys_are_named_as_a_range_and_others_one_by_one():
    assert repo._key_range([5, 3, 4]) == (3, 5)
    assert repo._key_range([7]) == (7, 7)
    for keys in ([], [3, 5], [3, 3, 4], [3, 4, 4, 5], ["3", "4"], [True, 2], [1.0, 2.0]):
        assert repo._key_range(keys) is None, keys


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_jobs_and_line_rows_named_by_a_range_or_a_list_are_exactly_those(tmp_path, store):
    """Jobs marked done and line rows deleted or looked for by a range of keys (a batch's, written
    together) or by a list (any others): the keys named, never a neighbour."""
    with store_url(store, tmp_path) as url:
        engine = open_store(url)
        try:
            _import_three_orders(engine)
            with engine.connect() as conn:
                attempts = dict(conn.execute(select(t.jobs.c.id, t.jobs.c.attempts)).all())
                pks = sorted(conn.execute(select(t.line_metrics.c.line_pk)).scalars())
            ids = sorted(attempts)
            assert len(ids) >= 6 and len(pks) == 3 and pks == list(range(pks[0], pks[0] + 3))
            later = dt.datetime(2024, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)
            ranged, listed = ids[1:3], [ids[4], ids[-1]]
            with engine.begin() as conn:
                repo.record_jobs_done(conn, ranged, later)
                repo.record_jobs_done(conn, listed, later)
                assert repo._lines_having(conn, t.line_metrics, pks[:2]) == set(pks[:2])
                assert repo._lines_having(conn, t.line_metrics, [pks[0], pks[2]]) == {pks[0], pks[2]}
                repo._delete_lines(conn, t.line_metrics, pks[1:])  # a range
            with engine.connect() as conn:
                after = dict(conn.execute(select(t.jobs.c.id, t.jobs.c.attempts)).all())
                left = sorted(conn.execute(select(t.line_metrics.c.line_pk)).scalars())
                assert repo._lines_having(conn, t.line_metrics, pks) == {pks[0]}
            assert {i for i in ids if after[i] != attempts[i]} == set(ranged + listed)
            assert all(after[i] == attempts[i] + 1 for i in ranged + listed)
            assert left == [pks[0]]
            with engine.begin() as conn:
                repo._delete_lines(conn, t.line_metrics, [pks[0] - 1, pks[0] + 5])  # a list, naming none
            with engine.connect() as conn:
                assert list(conn.execute(select(t.line_metrics.c.line_pk)).scalars()) == [pks[0]]
        finally:
            engine.dispose()
