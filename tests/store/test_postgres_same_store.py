"""The same import on PostgreSQL leaves exactly the rows it leaves on SQLite, table by table.

PostgreSQL writes the bulk tables by COPY, takes line keys from the sequence beforehand and looks
ids up by arrays (issue 11); SQLite keeps executemany and IN lists. Whatever the path, the store's
content, keys included, is the same.
"""
from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path

import pytest
from sqlalchemy import select, text

from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.importer import import_document, parse
from connector.jobs import JobContext, JobRunner
from connector.store import repository
from connector.store.db import open_store
from connector.store.schema import metadata
from store_support import postgres_schema

CLOCK = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
BENCH = Path(__file__).resolve().parents[2] / "bench" / "engine_bench.py"


def _generate(lines: int, seed: int) -> dict:
    """Orders of the benchmark's mix (new lines, then updates, renewals and cancellations of them)."""
    spec = importlib.util.spec_from_file_location("engine_bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench.generate(lines, seed=seed)


def _import(url: str, docs: list[dict]) -> dict[str, list[tuple]]:
    engine = open_store(url)
    try:
        calendar, settings = StandardFiscalCalendar(1), EngineSettings()
        # small batches: items changed by a later batch, look-ups over several chunks
        runner = JobRunner(engine, JobContext(calendar, settings), CLOCK, batch_size=40)
        for n, doc in enumerate(docs):
            result = import_document(engine, parse(json.dumps(doc), f"doc{n}"), f"doc{n}", calendar, settings,
                                     CLOCK, runner, batch_size=30)
            assert not result.failed_jobs, result.failed_jobs[:3]
            assert result.activated
        return _content(engine)
    finally:
        engine.dispose()


def _value(v):
    if isinstance(v, dt.datetime):  # UtcDateTime: aware UTC from both stores
        assert v.tzinfo == dt.timezone.utc, v
    return v


def _content(engine) -> dict[str, list[tuple]]:
    out = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            order = list(table.primary_key.columns) or list(table.columns)
            out[table.name] = [tuple(_value(v) for v in row)
                               for row in conn.execute(select(table).order_by(*order))]
    return out


@pytest.fixture
def postgres_url():
    with postgres_schema() as url:
        yield url


@pytest.mark.postgres
def test_postgres_stores_exactly_the_sqlite_rows(postgres_url, tmp_path, monkeypatch):
    monkeypatch.setattr(repository, "LARGE_LOAD_LINES", 1)  # the statistics refresh runs too
    doc = _generate(600, seed=11)
    # two files, the second with new orders of accounts the first created
    half = len(doc["orders"]) // 2
    docs = [{**doc, "orders": doc["orders"][:half]}, {**doc, "orders": doc["orders"][half:]}]
    on_sqlite = _import(f"sqlite:///{tmp_path / 'store.db'}", docs)
    on_postgres = _import(postgres_url, docs)
    assert on_postgres.keys() == on_sqlite.keys()
    for name in on_sqlite:
        assert on_postgres[name] == on_sqlite[name], name
    # not empty-handed: the bulk tables hold rows of both files
    for name in ("order_lines", "line_segments", "items", "item_versions", "line_metrics", "order_metrics",
                 "arr_rows", "jobs", "account_metrics"):
        assert len(on_sqlite[name]) > 100 or name in ("items", "account_metrics"), (name, len(on_sqlite[name]))
    assert len(on_sqlite["order_lines"]) == 600


@pytest.mark.postgres
def test_statistics_are_fresh_after_a_large_import(postgres_url, monkeypatch):
    monkeypatch.setattr(repository, "LARGE_LOAD_LINES", 100)
    _import(postgres_url, [_generate(150, seed=3)])
    engine = open_store(postgres_url)
    try:
        with engine.connect() as conn:
            analyzed = dict(conn.execute(text(
                "SELECT relname, last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL "
                "FROM pg_stat_user_tables WHERE schemaname = current_schema()")).all())
    finally:
        engine.dispose()
    assert all(analyzed[name] for name in repository.LOADED_TABLES), analyzed
