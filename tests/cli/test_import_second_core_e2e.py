"""`revsync import` of a large file works the jobs' rows out on a second core, and leaves the
store as one process working alone does (issue 11)."""
from __future__ import annotations

import datetime as dt
import importlib.util
import math
import re
import sqlite3
from pathlib import Path

from cli_support import REPO, revsync, workdir, write_doc

from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.importer import import_document, parse
from connector.jobs import AHEAD_MIN_ORDERS, JobContext, JobRunner
from connector.store.db import open_store

_spec = importlib.util.spec_from_file_location("engine_bench", REPO / "bench" / "engine_bench.py")
engine_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(engine_bench)

#: the tables the jobs write, compared whole (the others hold the command's own timestamps)
DERIVED = ("arr_rows", "order_metrics", "line_metrics", "item_metrics", "account_metrics")


def _rows(path: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as conn:
        return {table: sorted(conn.execute(f"SELECT * FROM {table}")) for table in DERIVED}


def test_a_large_import_uses_the_second_core_and_ends_as_one_core_does(tmp_path):
    doc = engine_bench.generate(10_600, 3)
    orders = len(doc["orders"])
    assert orders >= AHEAD_MIN_ORDERS
    wd = workdir(tmp_path, "wd")
    result = revsync(wd, "-v", "import", str(write_doc(wd / "orders.json", doc)))
    assert result.code == 0, result.stderr
    assert f"{orders} order(s) activated" in result.stdout
    batches = math.ceil(orders / 500)
    assert re.search(rf"the rows of {batches} batch\(es\) of jobs were worked out on a second core", result.stderr), \
        result.stderr
    with sqlite3.connect(wd / "revsync-test.db") as conn:
        statuses = dict(conn.execute("SELECT status, count(*) FROM jobs GROUP BY status"))
    assert statuses == {"succeeded": 4 * orders}

    # the same file imported by one process working alone, with the command's calendar and batches
    alone = tmp_path / "alone.db"
    engine = open_store(f"sqlite:///{alone}")
    calendar, settings = StandardFiscalCalendar(1), EngineSettings()
    clock = FrozenClock(dt.datetime.now(dt.timezone.utc))
    runner = JobRunner(engine, JobContext(calendar, settings), clock)
    runner.second_core = False
    import_document(engine, parse((wd / "orders.json").read_text(), "orders.json"), "orders.json", calendar,
                    settings, clock, runner)
    engine.dispose()
    expected = _rows(alone)
    assert len(expected["arr_rows"]) > 100_000
    assert _rows(wd / "revsync-test.db") == expected
