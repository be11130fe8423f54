"""Rows the second core's process worked out reach the store (`connector.store.staging`): on SQLite
from the staging file by one `INSERT … SELECT`, on PostgreSQL as COPY text written as it is; either
way exactly as the driver would have stored the same rows, and only where the jobs would have
inserted them."""
from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from connector import job_rows, jobs
from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.importer import ImportDoc, import_document
from connector.store import repository as repo, staging
from connector.store.db import attached, open_store
from connector.store.encode import IsoDays, Units
from connector.store.staging import CopyText, Staged, copy_text

CLOCK = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
CALENDAR = StandardFiscalCalendar(1)
_spec = importlib.util.spec_from_file_location(
    "engine_bench", Path(__file__).resolve().parents[2] / "bench" / "engine_bench.py")
engine_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(engine_bench)


def _imported(path: Path):
    """A store with a small generated document imported, every job done by this process."""
    engine = open_store(f"sqlite:///{path}")
    runner = jobs.JobRunner(engine, jobs.JobContext(CALENDAR, EngineSettings()), CLOCK)
    runner.second_core = False
    result = import_document(engine, ImportDoc.model_validate(engine_bench.generate(60, 5)), "doc", CALENDAR,
                             EngineSettings(), CLOCK, runner)
    assert result.activated and not result.failed_jobs
    return engine


def _staged(tmp_path: Path, batch: int, kind: str, rows: list[tuple]) -> tuple[Path, Staged]:
    folder = tmp_path / "staging"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / staging.FILE
    if not path.exists():
        staging.create(folder)
    writer = staging.Writer(str(path))
    try:
        put = writer.put(batch, kind, rows)
    finally:
        writer.close()
    assert isinstance(put, Staged) and len(put) == len(rows)
    return path, put


def _stored(engine, table: str) -> list[tuple]:
    """Every row, with the storage class SQLite keeps each value in."""
    with engine.connect() as conn:
        columns = [r[1] for r in conn.exec_driver_sql(f"PRAGMA table_info({table})")]
        values = ", ".join(f"{c}, typeof({c})" for c in columns)
        return sorted(tuple(r) for r in conn.exec_driver_sql(f"SELECT {values} FROM {table}"))


def test_staged_rows_are_stored_as_the_driver_stores_the_same_rows(tmp_path):
    rows = [(7, "2026-01-01", "2026-03-31", 1_000_000, 1_250_000, 12_000_000, 15_000_000),
            (7, "2026-04-01", "2026-06-30", 1_250_000, 0, 15_000_000, 0),
            (8, "2026-01-01", "2026-03-31", -5, 123_456_789_012, 0, -60)]
    path, put = _staged(tmp_path, 1, "arr_by_period", rows)
    by_driver = open_store(f"sqlite:///{tmp_path / 'driver.db'}")
    with by_driver.begin() as conn:
        assert repo.insert_stored_arr_rows(conn, list(rows)) == 3
    by_staging = open_store(f"sqlite:///{tmp_path / 'staging.db'}")
    with attached(by_staging, path, staging.SCHEMA), by_staging.begin() as conn:
        assert repo.insert_stored_arr_rows(conn, put) == 3
    assert _stored(by_staging, "arr_rows") == _stored(by_driver, "arr_rows")
    assert _stored(by_staging, "arr_rows")[0][:4] == (7, "integer", "2026-01-01", "text")
    by_driver.dispose()
    by_staging.dispose()


def test_staged_line_metrics_replace_the_lines_own(tmp_path):
    engine = _imported(tmp_path / "store.db")
    before = _stored(engine, "line_metrics")
    changed = [(pk, mrr + 10_000, tcv + 120_000) for pk, _, mrr, _, tcv, _ in before[:5]]
    path, put = _staged(tmp_path, 1, "subscription_metrics", changed)
    with attached(engine, path, staging.SCHEMA), engine.begin() as conn:
        repo.replace_stored_line_metrics(conn, put)
    after = {r[0]: (r[2], r[4]) for r in _stored(engine, "line_metrics")}
    assert len(after) == len(before)  # replaced, none added twice
    assert {pk: after[pk] for pk, _, _ in changed} == {pk: (mrr, tcv) for pk, mrr, tcv in changed}
    assert all(after[r[0]] == (r[2], r[4]) for r in before[5:])
    engine.dispose()


def test_staged_arr_rows_leave_the_lines_that_have_rows_as_they_are(tmp_path):
    """A re-run of the ARR job for lines of which some already have rows: the others get theirs
    from the staging file, and no row is written twice."""
    engine = _imported(tmp_path / "store.db")
    with engine.connect() as conn:
        every = [tuple(r) for r in conn.exec_driver_sql(f"SELECT {', '.join(repo.ARR_ROW_COLUMNS)} FROM arr_rows")]
        pks = sorted({r[0] for r in every})
        orders = repo.load_orders(conn, [r[0] for r in conn.exec_driver_sql("SELECT id FROM orders")])
    dropped = set(pks[::2])
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM arr_rows WHERE line_pk IN ({', '.join(map(str, dropped))})")
    expected = _stored(engine, "arr_rows")
    path, put = _staged(tmp_path, 1, "arr_by_period", every)
    with attached(engine, path, staging.SCHEMA), engine.begin() as conn:
        jobs.arr_by_period(conn, orders, jobs.JobContext(CALENDAR, EngineSettings()), put)
    restored = _stored(engine, "arr_rows")
    assert len(restored) == len(every) > len(expected)
    assert set(expected) < set(restored)
    engine.dispose()


def test_staged_spans_leave_the_lines_that_have_rows_as_they_are(tmp_path):
    """The same re-run with the ARR rows staged as spans (`job_rows.arr_spans`): the spans are
    expanded, those lines' rows left out, and no row is written twice."""
    engine = _imported(tmp_path / "store.db")
    with engine.connect() as conn:
        every = _stored(engine, "arr_rows")
        orders = repo.load_orders(conn, [r[0] for r in conn.exec_driver_sql("SELECT id FROM orders")])
    lines = [(pk, line, o.currency) for o in orders.values() for pk, line in o.lines]
    pks = sorted({r[0] for r in every})
    dropped = set(pks[::2])
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM arr_rows WHERE line_pk IN ({', '.join(map(str, dropped))})")
    kept = _stored(engine, "arr_rows")
    folder = tmp_path / "staging"
    folder.mkdir()
    path = staging.create(folder)
    writer = staging.Writer(str(path))
    periods = job_rows.PeriodTable(CALENDAR, IsoDays())
    spans, others, count = job_rows.arr_spans(lines, periods, Units(), periods.day)
    put = writer.put_spans(1, "arr_by_period", spans, others, periods.taken(), count)
    writer.close()
    assert put.spans is not None and count == len(every)
    with attached(engine, path, staging.SCHEMA), engine.begin() as conn:
        jobs.arr_by_period(conn, orders, jobs.JobContext(CALENDAR, EngineSettings()), put)
    assert _stored(engine, "arr_rows") == every and len(kept) < len(every)
    engine.dispose()


def test_rows_that_cannot_be_staged_go_back_as_rows(tmp_path):
    class FullDisk(staging.Writer):
        def put(self, batch, kind, rows):
            raise sqlite3.OperationalError("database or disk is full")

    folder = tmp_path / "staging"
    folder.mkdir()
    writer = FullDisk(str(staging.create(folder)))
    rows = {"arr_by_period": [(1, "2026-01-01", "2026-03-31", 1, 2, 3, 4)], "order_metrics": []}
    assert job_rows.converted(rows, functools.partial(writer.put, 1)) == rows
    writer.close()


def test_the_tables_of_batches_the_store_has_used_are_dropped(tmp_path):
    folder = tmp_path / "staging"
    folder.mkdir()
    path = staging.create(folder)
    writer = staging.Writer(str(path))
    for batch in (1, 2, 3):
        writer.put(batch, "order_metrics", [(batch, "order_metrics")])
        writer.put_spans(batch, "arr_by_period", [(batch, 1, 1, 0, 0, 0, 0)], [(batch, 2)],
                         [(batch, "2026-01-01", "2026-01-31")], 2)
    assert writer.put(4, "order_metrics", []) == []  # no rows: no table
    writer.drop_upto(2)
    writer.close()
    with sqlite3.connect(path) as conn:
        tables = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
        periods = conn.execute(f"SELECT ord FROM {staging.PERIODS} ORDER BY ord").fetchall()
    # the periods stay for later batches' spans
    assert tables == ["b3_arr_by_period_rows", "b3_arr_by_period_spans", "b3_order_metrics", staging.PERIODS]
    assert periods == [(1,), (2,), (3,)]


@pytest.mark.parametrize("failing", [False, True])
def test_connections_are_detached_when_they_go_back_to_the_pool(tmp_path, failing):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    path, put = _staged(tmp_path, 1, "arr_by_period", [(1, "2026-01-01", "2026-03-31", 1, 2, 3, 4)])
    with attached(engine, path, staging.SCHEMA):
        with engine.connect() as conn:
            assert staging.SCHEMA in [r[1] for r in conn.exec_driver_sql("PRAGMA database_list")]
        if failing:  # a transaction that failed midway is rolled back by the pool, then detached
            with pytest.raises(ZeroDivisionError), engine.begin() as conn:
                repo.insert_stored_arr_rows(conn, put)
                raise ZeroDivisionError
    with engine.connect() as conn:
        assert staging.SCHEMA not in [r[1] for r in conn.exec_driver_sql("PRAGMA database_list")]
        assert conn.exec_driver_sql("SELECT count(*) FROM arr_rows").scalar() == 0
    engine.dispose()


def test_copy_text_escapes_what_delimits_fields_and_rows():
    rows = [(1, dt.date(2026, 1, 31), 12_345, "tcv", None, True),
            (22, dt.date(2025, 12, 1), -7, "a\tb\nc\\d\re", "x", False)]
    text = copy_text(rows)
    assert len(text) == 2
    assert text.data == (b"1\t2026-01-31\t12345\ttcv\t\\N\tt\n"
                         b"22\t2025-12-01\t-7\ta\\tb\\nc\\\\d\\re\tx\tf\n")
    assert text.keys() == [1, 22]
    assert text.without({1}) == CopyText(text.data.split(b"\n", 1)[1], 1)
    assert len(copy_text([])) == 0 and copy_text([]).data == b""


_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**63, max_value=2**63 - 1),
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2999, 12, 31)),
    st.text(alphabet=st.sampled_from("ab\t\n\r\\N é"), max_size=6),
    st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-10**9, max_value=10**9))


@given(st.integers(min_value=1, max_value=6).flatmap(
    lambda width: st.lists(st.one_of(
        st.tuples(*[_VALUES] * width),  # any mix in a column
        st.tuples(*[st.sampled_from([dt.date(2026, 1, 1), dt.date(2026, 3, 31)])] * width),  # all dates
        st.tuples(*[st.integers(min_value=-10**12, max_value=10**12)] * width)), max_size=8)))  # all integers
@settings(max_examples=300, deadline=None)
def test_copy_text_made_a_column_at_a_time_is_the_text_made_value_by_value(rows):
    by_value = "".join("\t".join(map(staging._text, row)) + "\n" for row in rows).encode()
    assert copy_text(rows) == CopyText(by_value, len(rows))


def test_rows_of_different_lengths_are_refused_not_cut_short():
    with pytest.raises(ValueError, match="different lengths"):
        copy_text([(1, 2), (3, 4, 5)])


@pytest.mark.postgres
def test_copy_text_is_stored_on_postgresql_as_copy_stores_the_rows(tmp_path):
    """The same rows by the store's own COPY and as the child's COPY text: the same table."""
    from store_support import postgres_schema

    with postgres_schema() as url:
        engine = open_store(url)
        rows = [(7, dt.date(2026, 1, 1), dt.date(2026, 3, 31), 1_000_000, 1_250_000, 12_000_000, 15_000_000),
                (8, dt.date(2026, 1, 1), dt.date(2026, 3, 31), -5, 123_456_789_012, 0, -60)]
        metrics = [(7, "tcv", 1, 1_000, dt.date(2026, 1, 1), dt.date(2026, 3, 31), "Regular", "tab\there\\")]
        with engine.begin() as conn:
            repo.insert_stored_arr_rows(conn, copy_text(rows))
            repo.replace_stored_order_metrics(conn, [7], copy_text(metrics))
        with engine.connect() as conn:
            stored = [tuple(r) for r in conn.exec_driver_sql(
                f"SELECT {', '.join(repo.ARR_ROW_COLUMNS)} FROM arr_rows ORDER BY line_pk")]
            stored_metrics = [tuple(r) for r in conn.exec_driver_sql(
                'SELECT line_pk, metric, seq, amount, start, "end", type, generated_reason FROM order_metrics')]
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM arr_rows")
            conn.exec_driver_sql("DELETE FROM order_metrics")
            repo.insert_stored_arr_rows(conn, rows)
            repo.replace_stored_order_metrics(conn, [7], metrics)
        with engine.connect() as conn:
            by_copy = [tuple(r) for r in conn.exec_driver_sql(
                f"SELECT {', '.join(repo.ARR_ROW_COLUMNS)} FROM arr_rows ORDER BY line_pk")]
            by_copy_metrics = [tuple(r) for r in conn.exec_driver_sql(
                'SELECT line_pk, metric, seq, amount, start, "end", type, generated_reason FROM order_metrics')]
        engine.dispose()
    assert stored == by_copy == rows
    assert stored_metrics == by_copy_metrics == metrics


def test_a_connection_checked_in_after_the_staging_file_is_gone_is_attached_to_the_next_one(tmp_path):
    """A connection checked out while one staging file is attached and checked in after (a thread
    of the daemon's server, say) stays attached to it; the next staging file replaces it at the
    connection's next checkout, instead of failing it."""
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    first, _ = _staged(tmp_path / "one", 1, "arr_by_period", [(1, "2026-01-01", "2026-03-31", 1, 2, 3, 4)])
    with attached(engine, first, staging.SCHEMA):
        held = engine.connect()
    held.close()  # back in the pool, after the first file's time
    second, put = _staged(tmp_path / "two", 2, "arr_by_period", [(2, "2026-01-01", "2026-03-31", 5, 6, 7, 8)])
    with attached(engine, second, staging.SCHEMA), engine.begin() as conn:
        assert repo.insert_stored_arr_rows(conn, put) == 1
        files = {r[1]: r[2] for r in conn.exec_driver_sql("PRAGMA database_list")}
    assert Path(files[staging.SCHEMA]) == second
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.exec_driver_sql("SELECT line_pk, opening_cmrr FROM arr_rows")] == [(2, 5)]
    engine.dispose()
