"""Migration 0011: on PostgreSQL the rows an activation writes in bulk, and the line and item
metrics its jobs derive from them, carry no per-row foreign-key check (it was a third of a large
import's time there); the accounts and products a batch names are checked once per batch instead,
on both stores, before anything is written."""
from __future__ import annotations

import datetime as dt
import importlib
import json
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select

from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.importer import import_document, parse
from connector.jobs import JobContext, JobRunner
from connector.store import repository as repo, schema as t
from connector.store.db import StoreError, _alembic_config, open_store
from connector.store.schema import metadata

sys.path.insert(0, str(Path(__file__).parent))
from store_support import postgres_schema, store_url, three_orders  # noqa: E402

MIGRATION = importlib.import_module("connector.store.migrations.versions.0011_activation_rows_checked_per_batch")
CLOCK = FrozenClock(dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc))
#: the tables whose keys 0011 concerns, and every row they hold after the document below
TABLES = (t.orders, t.order_lines, t.line_segments, t.items, t.item_versions, t.jobs, t.line_metrics, t.item_metrics)



def _import(engine, doc: dict | None = None) -> None:
    calendar, settings = StandardFiscalCalendar(1), EngineSettings()
    runner = JobRunner(engine, JobContext(calendar, settings), CLOCK)
    import_document(engine, parse(json.dumps(doc or three_orders()), "doc"), "doc", calendar, settings, CLOCK, runner)


def _content(engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {tbl.name: sorted(tuple(map(str, r)) for r in conn.execute(select(tbl))) for tbl in TABLES}


def _keys(engine) -> set[tuple[str, str, str]]:
    """(table, column, referred table) of every foreign key of the tables 0011 concerns."""
    with engine.connect() as conn:
        found = inspect(conn)
        return {(tbl.name, column, key["referred_table"])
                for tbl in TABLES for key in found.get_foreign_keys(tbl.name) for column in key["constrained_columns"]}


DECLARED = {(tbl.name, column.parent.name, column.column.table.name) for tbl in TABLES for column in tbl.foreign_keys}
DROPPED = {(table, column, referred) for table, column, referred, _ in MIGRATION.DROPPED}


def test_the_keys_postgresql_stores_lack_are_the_declared_keys_of_the_activation_tables():
    assert DROPPED == DECLARED  # every key of those tables, and nothing else


def test_a_postgresql_store_lacks_those_keys_and_differs_from_schema_py_in_nothing_else():
    with postgres_schema() as url:
        engine = open_store(url)
        try:
            assert _keys(engine) == set()
            with engine.connect() as conn:
                diff = compare_metadata(MigrationContext.configure(conn), metadata)
            missing = {(d[1].table.name, d[1].column_keys[0], d[1].referred_table.name) for d in diff if d[0] == "add_fk"}
            assert missing == DROPPED
            assert [d for d in diff if d[0] != "add_fk"] == []
        finally:
            engine.dispose()


def test_a_sqlite_store_keeps_every_key(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        assert _keys(engine) == DECLARED
    finally:
        engine.dispose()


def test_downgrade_puts_the_keys_back_and_upgrade_takes_them_off_again_keeping_every_row():
    with postgres_schema() as url:
        engine = open_store(url)
        _import(engine)
        rows = _content(engine)
        assert len(rows["orders"]) == 3 and len(rows["jobs"]) == 3 * len(repo.JOB_KINDS)
        engine.dispose()

        command.downgrade(_alembic_config(url), "0010")
        before = open_store(url, migrate=False)
        try:
            assert _keys(before) == DECLARED  # the stored rows satisfy them: the keys were validated
            assert _content(before) == rows
        finally:
            before.dispose()

        engine = open_store(url)  # 0011 again
        try:
            assert _keys(engine) == set()
            assert _content(engine) == rows
            _import(engine)  # the same file again: skipped, nothing written twice
            assert _content(engine) == rows
        finally:
            engine.dispose()


def _naming(monkeypatch, kind: str) -> None:
    """Make the writing of activations name an account or a product the store does not hold, as a
    defect would (the import stores the catalogue first)."""
    real = repo.save_stored_activations
    position = repo._ITEM_PRODUCT if kind == "product" else repo._ITEM_ACCOUNT

    def naming(conn, activations, **kwargs):
        first = activations[0]
        item = first.items[0]
        changed = first._replace(items=[(*item[:position], "GONE", *item[position + 1:]), *first.items[1:]])
        return real(conn, [changed, *activations[1:]], **kwargs)

    monkeypatch.setattr(repo, "save_stored_activations", naming)


@pytest.mark.parametrize("kind", ["product", "account"])
@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_batch_naming_what_the_store_lacks_is_refused_before_any_row(monkeypatch, tmp_path, store, kind):
    def check(url: str) -> None:
        engine = open_store(url)
        try:
            _naming(monkeypatch, kind)
            with pytest.raises(StoreError) as raised:
                _import(engine)
            assert f"{kind} 'GONE'" in str(raised.value) and "O-1" in str(raised.value)
            assert "nothing of them was written" in str(raised.value)
            with engine.connect() as conn:
                assert [conn.execute(select(func.count()).select_from(tbl)).scalar() for tbl in TABLES] == [0] * len(TABLES)
            monkeypatch.undo()
            _import(engine)  # what the defect stopped goes in whole once it is gone
            assert len(_content(engine)["orders"]) == 3
        finally:
            engine.dispose()

    with store_url(store, tmp_path) as url:
        check(url)
