"""Migration 0010 takes the foreign key to order_lines off `arr_rows` and `order_metrics` (on
PostgreSQL its per-row check was most of the time of writing ARR rows) and keeps every row, the
primary keys and, on SQLite, the clustering on the key; its downgrade puts the keys back."""
from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.importer import import_document, parse
from connector.jobs import JobContext, JobRunner
from connector.store import schema as t
from connector.store.db import _alembic_config, open_store

sys.path.insert(0, str(Path(__file__).parent))
from store_support import postgres_schema, three_orders  # noqa: E402

CLOCK = FrozenClock(dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc))
TABLES = (t.arr_rows, t.order_metrics)



def _content(engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {tbl.name: sorted(tuple(r) for r in conn.execute(select(tbl))) for tbl in TABLES}


def _keys(engine) -> dict[str, list[str]]:
    with engine.connect() as conn:
        found = inspect(conn)
        return {tbl.name: [k["referred_table"] for k in found.get_foreign_keys(tbl.name)] for tbl in TABLES}


def _check(url: str) -> None:
    engine = open_store(url)
    calendar, settings = StandardFiscalCalendar(1), EngineSettings()
    runner = JobRunner(engine, JobContext(calendar, settings), CLOCK)
    import_document(engine, parse(json.dumps(three_orders()), "doc"), "doc", calendar, settings, CLOCK, runner)
    rows = _content(engine)
    assert len(rows["arr_rows"]) == 3 + 6 + 9 and rows["order_metrics"]  # monthly rows of the three lines
    assert _keys(engine) == {"arr_rows": [], "order_metrics": []}
    engine.dispose()

    command.downgrade(_alembic_config(url), "0009")
    before = open_store(url, migrate=False)
    try:
        assert _keys(before) == {"arr_rows": ["order_lines"], "order_metrics": ["order_lines"]}
        assert _content(before) == rows
    finally:
        before.dispose()

    engine = open_store(url)  # 0010 again
    try:
        assert _keys(engine) == {"arr_rows": [], "order_metrics": []}
        assert _content(engine) == rows
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                ddl = dict(conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")).all())
            assert all("WITHOUT ROWID" in ddl[tbl.name] for tbl in TABLES)
        with pytest.raises(IntegrityError), engine.begin() as conn:  # a row is still never written twice
            conn.execute(text("INSERT INTO arr_rows SELECT * FROM arr_rows LIMIT 1"))
        assert _content(engine) == rows
    finally:
        engine.dispose()


def test_migration_0010_on_sqlite(tmp_path):
    _check(f"sqlite:///{tmp_path / 'store.db'}")


def test_migration_0010_on_postgresql():
    with postgres_schema() as url:
        _check(url)
