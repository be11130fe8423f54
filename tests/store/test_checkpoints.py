"""While an import's writing connection commits batch after batch, SQLite's write-ahead log is copied
into the store's file by a thread beside it (`db.checkpoints_behind`), not by its commits; the
connection makes its own checkpoints again afterwards, however the block ends."""
from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from connector import importer
from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.importer import import_file, scan_file
from connector.jobs import JobContext, JobRunner
from connector.store import db
from connector.store.db import open_store

_spec = importlib.util.spec_from_file_location(
    "engine_bench", Path(__file__).resolve().parents[2] / "bench" / "engine_bench.py")
engine_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(engine_bench)

CLOCK = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
BLOB = 1024 * 1024  # 256 pages: far below the thousand a commit would checkpoint itself at


def _autocheckpoint(conn) -> int:
    return conn.connection.driver_connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0]


def _file_holds(path: Path, size: int, seconds: float = 10.0) -> bool:
    """Whether the store's file (not its log) reaches `size` bytes within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.stat().st_size >= size:
            return True
        time.sleep(0.02)
    return path.stat().st_size >= size


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "revsync-checkpoints"]


@pytest.fixture
def store(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE blobs (b BLOB)")
    yield engine, tmp_path / "store.db"
    engine.dispose()


def test_the_thread_copies_each_commit_into_the_file_and_the_writer_does_not(store):
    engine, path = store
    before = path.stat().st_size
    with engine.connect() as conn:
        pages = _autocheckpoint(conn)
        assert pages > 0  # SQLite's own default, a thousand pages
        with db.checkpoints_behind(engine, conn) as committed:
            assert _autocheckpoint(conn) == 0
            for _ in range(3):
                with conn.begin():
                    conn.execute(text("INSERT INTO blobs VALUES (zeroblob(:n))"), {"n": BLOB})
                committed()
                size = path.stat().st_size
                assert _file_holds(path, size + BLOB // 2), "the log was not copied into the store's file"
            assert _file_holds(path, before + 3 * BLOB)
        assert _autocheckpoint(conn) == pages
    assert not _checkpoint_threads()


def test_without_it_the_same_commits_stay_in_the_log(store):
    """The control: the file grows above only because the thread copies the log."""
    engine, path = store
    before = path.stat().st_size
    with engine.connect() as conn:
        for _ in range(3):
            with conn.begin():
                conn.execute(text("INSERT INTO blobs VALUES (zeroblob(:n))"), {"n": BLOB})
    assert not _file_holds(path, before + BLOB // 2, seconds=0.5)
    assert path.with_name("store.db-wal").stat().st_size >= 3 * BLOB


def test_the_writer_checkpoints_itself_again_however_the_block_ends(store):
    engine, path = store
    with engine.connect() as conn:
        pages = _autocheckpoint(conn)
        with pytest.raises(RuntimeError, match="a batch failed"):
            with db.checkpoints_behind(engine, conn) as committed:
                with conn.begin():
                    conn.execute(text("INSERT INTO blobs VALUES (zeroblob(10))"))
                committed()
                raise RuntimeError("a batch failed")
        assert _autocheckpoint(conn) == pages
    assert not _checkpoint_threads()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM blobs")).scalar() == 1


def test_a_store_without_a_file_is_left_as_it_is():
    engine = create_engine("sqlite://")
    with engine.connect() as conn:
        pages = _autocheckpoint(conn)
        with db.checkpoints_behind(engine, conn) as committed:
            committed()
            assert _autocheckpoint(conn) == pages
            assert not _checkpoint_threads()


def test_the_streamed_import_writes_with_checkpoints_beside(tmp_path, monkeypatch, caplog):
    """`revsync import`'s writing pass: every batch's commit is followed by a checkpoint beside it,
    and the store's pooled connections checkpoint themselves afterwards."""
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        path = tmp_path / "doc.json"
        path.write_text(json.dumps(engine_bench.generate(120, 7)))
        calendar = StandardFiscalCalendar(1)
        runner = JobRunner(engine, JobContext(calendar, EngineSettings(), clock=CLOCK), CLOCK, batch_size=20)
        runner.second_core = False
        told = []
        original = db._Checkpoints.committed
        monkeypatch.setattr(db._Checkpoints, "committed", lambda self: (told.append(1), original(self)))
        monkeypatch.setattr(importer, "import_document", lambda *a, **k: pytest.fail("not streamed"))
        streamed = scan_file(path)
        assert streamed is not None
        with caplog.at_level(logging.DEBUG, logger="connector.store.db"):
            result = import_file(engine, streamed, calendar, EngineSettings(), CLOCK, runner, batch_size=20)
        batches = -(-len(result.activated) // 20)
        assert batches > 1 and len(told) == batches
        assert any(m.startswith("checkpoints beside the writer: ") for m in caplog.messages)
        assert not _checkpoint_threads()
        with engine.connect() as conn:
            assert _autocheckpoint(conn) == 1000
    finally:
        engine.dispose()


def test_when_a_checkpoint_beside_fails_the_writer_checkpoints_itself_again(store):
    engine, path = store

    class Refusing:
        """A connection whose checkpoint fails (a disk error, say)."""

        def execute(self, sql):
            if "wal_checkpoint" in sql:
                raise sqlite3.OperationalError("disk I/O error")

        def close(self):
            pass

    with engine.connect() as conn:
        pages = _autocheckpoint(conn)
        real = db.sqlite3.connect
        try:
            db.sqlite3.connect = lambda *a, **k: Refusing()
            with db.checkpoints_behind(engine, conn) as committed:
                db.sqlite3.connect = real
                assert _autocheckpoint(conn) == 0
                committed()  # the thread's checkpoint fails, and it stops
                for _ in range(100):
                    if not _checkpoint_threads():
                        break
                    time.sleep(0.02)
                assert not _checkpoint_threads()
                committed()
                assert _autocheckpoint(conn) == pages
        finally:
            db.sqlite3.connect = real
        assert _autocheckpoint(conn) == pages


def test_no_connection_beside_leaves_the_writer_as_it_is(store, monkeypatch):
    engine, _ = store

    def refuse(*_a, **_k):
        raise sqlite3.OperationalError("unable to open database file")

    with engine.connect() as conn:
        pages = _autocheckpoint(conn)
        monkeypatch.setattr(db.sqlite3, "connect", refuse)
        with db.checkpoints_behind(engine, conn) as committed:
            committed()
            assert _autocheckpoint(conn) == pages
            assert not _checkpoint_threads()


def test_a_thread_that_cannot_start_leaves_the_writer_checkpointing_and_nothing_open(store, monkeypatch):
    engine, _ = store
    opened = []
    real = db.sqlite3.connect

    def connect(*a, **k):
        opened.append(real(*a, **k))
        return opened[-1]

    def refuse(_self):
        raise RuntimeError("can't start new thread")

    with engine.connect() as conn:
        pages = _autocheckpoint(conn)
        monkeypatch.setattr(db.sqlite3, "connect", connect)
        monkeypatch.setattr(db._Checkpoints, "start", refuse)
        with pytest.raises(RuntimeError, match="can't start new thread"):
            with db.checkpoints_behind(engine, conn):
                pytest.fail("the block ran without its thread")
        monkeypatch.undo()
        assert _autocheckpoint(conn) == pages
    (beside,) = opened
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        beside.execute("SELECT 1")
