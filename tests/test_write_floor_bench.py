"""bench/write_floor.py copies every row an import wrote, batch by batch, into a fresh store."""
from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sqlite3
from pathlib import Path

from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.importer import import_document, parse
from connector.jobs import JobContext, JobRunner
from connector.store.db import open_store

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_row_is_copied_in_batches(tmp_path):
    engine_bench, write_floor = _load("engine_bench"), _load("write_floor")
    store = tmp_path / "imported.db"
    engine = open_store(f"sqlite:///{store}")
    calendar, settings = StandardFiscalCalendar(1), EngineSettings()
    clock = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    runner = JobRunner(engine, JobContext(calendar, settings), clock)
    import_document(engine, parse(json.dumps(engine_bench.generate(300, 5)), "doc"), "doc", calendar, settings,
                    clock, runner)
    engine.dispose()
    with sqlite3.connect(store) as conn:
        expected = {table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
                    for table in (*(t for t, _, _ in write_floor.TABLES), *write_floor.AFTER)}
    assert expected["orders"] > 40 and expected["arr_rows"] > 1000  # batches of 7 orders: several of them

    wall, cpu, per, counts = write_floor.measure(store, tmp_path, size=7)

    assert counts == expected
    assert set(per) == {t for t, _, _ in write_floor.TABLES} | {"commit"}
    assert wall > 0 and cpu > 0
    assert not list(tmp_path.glob("write-floor*"))  # its files removed
