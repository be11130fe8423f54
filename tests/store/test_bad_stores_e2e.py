"""Corrupt or foreign stores: every command ends in exit 2 with a message naming the file and what to do.

No traceback, and the store's content is unchanged (compared by its bytes, or by its SQL dump when
SQLite can still read it: never by size).
"""
from __future__ import annotations

import hashlib
import resource
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import event, text

from connector.store.db import StoreError, open_store
from store_support import postgres_schema, sqlite_content

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "cli"))
from cli_support import Call, _env, revsync, run_all, workdir, worked_example, write_doc  # noqa: E402

DB = "revsync-test.db"
COMMANDS = [("status",), ("status", "--format", "json"), ("report", "accounts"), ("report", "arr-by-period"),
            ("import", "doc.json"), ("jobs",)]


@pytest.fixture(scope="module")
def good_store(tmp_path_factory) -> Path:
    """A working directory whose store holds the worked example, checkpointed into one file."""
    wd = workdir(tmp_path_factory.mktemp("good"), "good")
    write_doc(wd / "doc.json", worked_example())
    result = revsync(wd, "import", "doc.json")
    assert result.code == 0, result.stderr
    conn = sqlite3.connect(wd / DB)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return wd


def _copy(good: Path, tmp_path: Path) -> Path:
    wd = workdir(tmp_path, "bad")
    shutil.copy(good / DB, wd / DB)
    shutil.copy(good / "doc.json", wd / "doc.json")
    return wd


def _files(wd: Path) -> dict[str, str]:
    """The store's files by content (sha256), its WAL included when it holds anything.

    The shared-memory index (-shm) is a cache SQLite rebuilds, and an empty WAL holds no content.
    """
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(wd.glob(DB + "*"))
            if not p.name.endswith("-shm") and not (p.name.endswith("-wal") and p.stat().st_size == 0)}


def _assert_refused(wd: Path, *expected: str) -> None:
    before = _files(wd)
    for args in COMMANDS:
        r = run_all([Call(wd, args)])[0]
        assert r.code == 2, f"revsync {' '.join(args)} exited {r.code}\n{r.stdout}\n{r.stderr}"
        assert "Traceback" not in r.stderr + r.stdout, r.stderr
        assert str(wd / DB) in r.errors, r.errors  # names the file
        for words in expected:
            assert words in r.errors, f"{words!r} not in: {r.errors}"
        assert "→" in r.errors  # and says what to do
        assert _files(wd) == before, f"revsync {' '.join(args)} changed the store"  # byte for byte


def test_a_file_of_random_bytes(good_store, tmp_path):
    wd = _copy(good_store, tmp_path)
    (wd / DB).write_bytes(bytes(range(256)) * 64)
    _assert_refused(wd, "is not a SQLite database", "check [store] url", "restore")


def test_a_text_file(good_store, tmp_path):
    wd = _copy(good_store, tmp_path)
    (wd / DB).write_text("name,amount\nA,100\n")
    _assert_refused(wd, "is not a SQLite database")


def test_a_truncated_store(good_store, tmp_path):
    wd = _copy(good_store, tmp_path)
    data = (wd / DB).read_bytes()
    (wd / DB).write_bytes(data[: len(data) // 2])
    _assert_refused(wd, "is cut short", "from your last backup", ".recover")


def test_a_store_cut_inside_its_header(good_store, tmp_path):
    wd = _copy(good_store, tmp_path)
    (wd / DB).write_bytes((good_store / DB).read_bytes()[:60])
    _assert_refused(wd, "is cut short")


def _page_of(path: Path, table: str) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    finally:
        conn.close()
    return root, page_size


@pytest.mark.parametrize("table", ["arr_rows", "items", "accounts"])
def test_one_damaged_page(good_store, tmp_path, table):
    """One page of a table overwritten: `status` and every report say so, none exits 0."""
    wd = _copy(good_store, tmp_path)
    root, page_size = _page_of(wd / DB, table)
    with (wd / DB).open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xa5" * page_size)
    _assert_refused(wd, "is damaged", "from your last backup", f"sqlite3 {wd / DB} .recover")


def test_a_schema_newer_than_this_revsync(good_store, tmp_path):
    wd = _copy(good_store, tmp_path)
    conn = sqlite3.connect(wd / DB)
    conn.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    conn.commit()
    conn.close()
    before = sqlite_content(wd / DB)
    _assert_refused(wd, "was written by a newer revsync", "'0099_from_the_future'", "upgrade revsync")
    assert sqlite_content(wd / DB) == before


def test_a_database_of_another_program(good_store, tmp_path):
    wd = _copy(good_store, tmp_path)
    (wd / DB).unlink()
    conn = sqlite3.connect(wd / DB)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('someone else''s data')")
    conn.commit()
    conn.close()
    before = sqlite_content(wd / DB)
    _assert_refused(wd, "is not a revsync store", "customers", "check [store] url")
    assert sqlite_content(wd / DB) == before


def test_a_folder_where_the_store_should_be(tmp_path):
    wd = workdir(tmp_path, "folder")
    (wd / DB).mkdir()
    r = revsync(wd, "status")
    assert r.code == 2 and "Traceback" not in r.stderr and "is a folder" in r.errors, r.stderr


@pytest.mark.postgres
def test_a_postgres_schema_newer_than_this_revsync(tmp_path):
    with postgres_schema() as url:
        open_store(url).dispose()
        engine = open_store(url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
        engine.dispose()
        wd = workdir(tmp_path, "pg", config=None)
        (wd / "config.toml").write_text(f'[store]\nurl = "{url}"\n')
        r = revsync(wd, "status")
        assert r.code == 2 and "Traceback" not in r.stderr, r.stderr
        assert "was written by a newer revsync" in r.errors and "upgrade revsync" in r.errors
        assert "revsync_test_" in r.errors  # names the store (its URL, without password)


# -- disk full ------------------------------------------------------------------------------------------
def _big_doc(n: int) -> dict:
    doc = worked_example()
    doc["orders"] = [{"id": f"BIG-{i}", "account": "A", "owner": "Chloe", "booked_on": "2023-01-01",
                      "currency": "USD",
                      "lines": [{"id": f"BIG-L{i}", "action": "new", "product": "SEAT", "subscription": f"BIG-S{i}",
                                 "quantity": 1, "unit_price": "100", "start": "2023-01-15", "end": "2025-01-14"}]}
                     for i in range(n)]
    return doc


def _import_content(good: Path, tmp_path: Path, name: str) -> list[str]:
    """The store after an uninterrupted import of big.json: what an interrupted one must end in."""
    wd = _copy(good, tmp_path / name)
    write_doc(wd / "big.json", _big_doc(BIG))
    assert revsync(wd, "import", "big.json").code == 0
    return _comparable(wd / DB)


def _comparable(path: Path) -> list[str]:
    """The SQL dump with wall-clock times (when each run activated or ran a job) masked."""
    import re

    stamp = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(\+00:00)?")
    return [stamp.sub("<time>", line) for line in sqlite_content(path)]


BIG = 300


@pytest.mark.parametrize("room", [4096, 200_000])
def test_disk_full_during_an_import_is_a_clear_error_and_a_consistent_store(good_store, tmp_path, room):
    """The store's files may not grow past their size plus `room` (RLIMIT_FSIZE: writes fail as on a
    full disk). The write in progress is rolled back; the import, run again with room, ends exactly
    as an uninterrupted one."""
    wd = _copy(good_store, tmp_path / "full")
    write_doc(wd / "big.json", _big_doc(BIG))
    before = sqlite_content(wd / DB)
    limit = max(p.stat().st_size for p in wd.glob(DB + "*")) + room

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run([sys.executable, "-m", "connector.cli", "import", "big.json"], cwd=wd, env=_env(None),
                          capture_output=True, text=True, timeout=300, preexec_fn=cap)
    errors = " ".join(proc.stderr.split())
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr and str(wd / DB) in errors, proc.stderr
    assert "the write in progress was rolled back" in errors and "run the command again" in errors, errors
    if room == 4096:
        assert sqlite_content(wd / DB) == before  # the first write already failed: nothing changed
    assert revsync(wd, "status").code == 0  # consistent (status runs SQLite's integrity check)
    again = revsync(wd, "import", "big.json")  # with room again, the import goes on from where it stopped
    assert again.code == 0, again.stderr
    assert _comparable(wd / DB) == _import_content(good_store, tmp_path, "clean")


def test_sqlite_full_is_a_clear_error_and_rolls_the_write_back(tmp_path):
    """SQLite's own "database or disk is full" (its page limit reached), in process."""
    import datetime as dt
    import json

    from connector.clock import FrozenClock
    from connector.engine.fiscal import StandardFiscalCalendar
    from connector.engine.settings import EngineSettings
    from connector.importer import import_document, parse
    from connector.jobs import JobContext, JobRunner

    path = tmp_path / "store.db"
    open_store(f"sqlite:///{path}").dispose()
    before = sqlite_content(path)
    conn = sqlite3.connect(path)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    engine = open_store(f"sqlite:///{path}")
    engine.dispose()  # new connections get the limit: the file may not grow at all
    event.listen(engine, "connect", lambda dbapi, _r: dbapi.execute(f"PRAGMA max_page_count={pages}"))
    clock = FrozenClock(dt.datetime(2024, 2, 1, tzinfo=dt.timezone.utc))
    calendar, settings = StandardFiscalCalendar(1), EngineSettings()
    runner = JobRunner(engine, JobContext(calendar, settings), clock)
    doc = _big_doc(200)
    doc["accounts"] = [{"id": f"ACC-{i}", "name": "x" * 200} for i in range(200)] + doc["accounts"]
    with pytest.raises(StoreError) as caught:
        import_document(engine, parse(json.dumps(doc), "doc"), "doc", calendar, settings, clock, runner)
    engine.dispose()
    message = str(caught.value)
    assert "is full" in message and str(path) in message and "free space" in message, message
    assert sqlite_content(path) == before  # the first write failed whole


def test_a_damaged_page_met_by_a_query_is_a_store_error_not_a_traceback(good_store, tmp_path):
    """On a store too big for the check at every open, the damage is reported where a query meets it."""
    wd = _copy(good_store, tmp_path)
    root, page_size = _page_of(wd / DB, "arr_rows")
    with (wd / DB).open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xa5" * page_size)
    engine = open_store(f"sqlite:///{wd / DB}", migrate=False, full_check=False)
    try:
        with pytest.raises(StoreError, match="is damaged"):
            with engine.connect() as conn:
                conn.execute(text("SELECT * FROM arr_rows")).all()
    finally:
        engine.dispose()
