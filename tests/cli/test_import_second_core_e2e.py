"""`revsync import` of a large file validates half the accounts' orders and works the jobs' rows
out on a second core, and leaves the store as one process working alone does; so does `revsync
jobs retry` of the jobs of many orders (issue 11)."""
from __future__ import annotations

import datetime as dt
import importlib.util
import math
import re
import sqlite3
from pathlib import Path

import pytest
from cli_support import REPO, copy_store, revsync, workdir, write_doc

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


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """`revsync -v import` of a file of more orders than `AHEAD_MIN_ORDERS`: (its working
    directory, the command's result, its orders, the jobs' tables as one process alone leaves them)."""
    tmp_path = tmp_path_factory.mktemp("second-core-e2e")
    doc = engine_bench.generate(10_600, 3)
    orders = len(doc["orders"])
    assert orders >= AHEAD_MIN_ORDERS
    wd = workdir(tmp_path, "wd")
    result = revsync(wd, "-v", "import", str(write_doc(wd / "orders.json", doc)))

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
    return wd, result, orders, _rows(alone)


def _said_second_core(stderr: str, orders: int) -> bool:
    batches = math.ceil(orders / 500)
    return re.search(rf"the rows of {batches} batch\(es\) of jobs were worked out on a second core "
                     r"\(\d+\.\d\d s spent waiting for them\)", stderr) is not None


def test_a_large_import_uses_the_second_core_and_ends_as_one_core_does(imported):
    wd, result, orders, expected = imported
    assert result.code == 0, result.stderr
    assert f"{orders} order(s) activated" in result.stdout
    assert _said_second_core(result.stderr, orders), result.stderr
    halves = re.search(r"the orders were validated on two cores: (\d+) and (\d+) activated by each process",
                       result.stderr)
    assert halves is not None, result.stderr
    assert int(halves[1]) + int(halves[2]) == orders and min(int(halves[1]), int(halves[2])) > orders // 4
    with sqlite3.connect(wd / "revsync-test.db") as conn:
        statuses = dict(conn.execute("SELECT status, count(*) FROM jobs GROUP BY status"))
    assert statuses == {"succeeded": 4 * orders}
    assert len(expected["arr_rows"]) > 100_000
    assert _rows(wd / "revsync-test.db") == expected


def test_retrying_the_failed_jobs_of_many_orders_uses_the_second_core_too(imported, tmp_path):
    """Every job of the import failed and wrote nothing (as when the disk filled up): `revsync jobs
    retry` runs them all again, their rows worked out on the second core, and the store ends as one
    process working alone leaves it."""
    src, result, orders, expected = imported
    assert result.code == 0, result.stderr
    wd = workdir(tmp_path, "wd")
    copy_store(src, wd)
    with sqlite3.connect(wd / "revsync-test.db") as conn:
        conn.execute("UPDATE jobs SET status = 'failed', attempts = 1, last_error = 'OperationalError: disk full'")
        for table in ("arr_rows", "order_metrics", "line_metrics"):
            conn.execute(f"DELETE FROM {table}")
    retried = revsync(wd, "-v", "jobs", "retry")
    assert retried.code == 0, retried.stderr
    assert f"{4 * orders} failed job(s) retried: {4 * orders} succeeded, 0 failed." in retried.stdout
    assert _said_second_core(retried.stderr, orders), retried.stderr
    assert _rows(wd / "revsync-test.db") == expected
