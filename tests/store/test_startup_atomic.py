"""A first start killed at any point leaves a store the next start opens; concurrent first starts all succeed.

The kill is a real SIGKILL of a process that is creating the store: it kills itself just before
its n-th SQL statement, for 20 random n over the whole first start (BEGIN, every CREATE, the
revision stamp), on SQLite and on PostgreSQL.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from connector.store.db import MIGRATIONS, open_store
from store_support import postgres_schema, schema_differences

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "cli"))
from cli_support import Call, run_all, worked_example, write_doc  # noqa: E402

# Opens the store at argv[1]; SIGKILLs itself just before SQL statement (or COMMIT) number argv[2].
# Prints how many statements a complete first start ran when it is not killed.
CHILD = """
import os, signal, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine
stop, seen = int(sys.argv[2]), [0]

def _step():
    seen[0] += 1
    if seen[0] == stop:
        os.kill(os.getpid(), signal.SIGKILL)

event.listen(Engine, "before_cursor_execute", lambda *args: _step())
commits = []
event.listen(Engine, "commit", lambda conn: (_step(), commits.append(seen[0])))  # just before COMMIT

from connector.store.db import open_store
open_store(sys.argv[1]).dispose()
print(*commits, seen[0])
"""


def _first_start(url: str, stop: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", CHILD, url, str(stop)], env=env, capture_output=True,
                          text=True, timeout=120)


def _assert_complete_and_working(url: str) -> None:
    engine = open_store(url)
    try:
        head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head
            assert schema_differences(conn) == []
        with engine.begin() as conn:  # it works: a write and a read
            conn.execute(text("INSERT INTO meta (key, value) VALUES ('probe', 'x')"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT value FROM meta WHERE key = 'probe'")).scalar() == "x"
    finally:
        engine.dispose()


def _kill_at_random_points(make_url, points: int = 20) -> list[int]:
    """Kill a first start at `points` random statements; each time the next start must open the store."""
    with make_url() as url:
        full = _first_start(url, 10**9)
        assert full.returncode == 0, full.stderr
        *commits, total = map(int, full.stdout.split())
    assert total > 40, total  # BEGIN, every CREATE TABLE and INDEX, the revision stamp, COMMIT
    rng = random.Random(7)
    # random points, and always the moment just before each COMMIT (the migration's among them)
    stops = sorted(set(rng.sample(range(1, total + 1), points)) | set(commits))
    for stop in stops:
        with make_url() as url:
            killed = _first_start(url, stop)
            assert killed.returncode == -signal.SIGKILL, (stop, killed.returncode, killed.stderr)
            _assert_complete_and_working(url)
    return stops


def test_a_first_sqlite_start_killed_at_20_random_points_leaves_a_store_the_next_start_opens(tmp_path):
    from contextlib import contextmanager

    count = iter(range(1000))

    @contextmanager
    def fresh():
        yield f"sqlite:///{tmp_path / f'store-{next(count)}.db'}"

    stops = _kill_at_random_points(fresh)
    assert len(stops) >= 20


@pytest.mark.postgres
def test_a_first_postgres_start_killed_at_20_random_points_leaves_a_store_the_next_start_opens():
    stops = _kill_at_random_points(postgres_schema)
    assert len(stops) >= 20


def test_a_store_half_built_by_an_older_revsync_is_built_again(tmp_path):
    """What the old autocommitting migration left after a kill: some tables, no revision, no rows."""
    import sqlite3

    path = tmp_path / "store.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE accounts (id VARCHAR(64) PRIMARY KEY, name TEXT NOT NULL)")
    conn.execute("CREATE TABLE meta (key VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    conn.commit()
    conn.close()
    _assert_complete_and_working(f"sqlite:///{path}")


def _concurrent_first_starts(tmp_path: Path, url: str, n: int) -> None:
    (tmp_path / "config.toml").write_text(f'[store]\nurl = "{url}"\n')
    # `jobs retry` opens (and creates) the store; `status` only reads one that exists
    results = run_all([Call(tmp_path, ["jobs", "retry"]) for _ in range(n)], timeout=180)
    for r in results:
        assert r.code == 0 and "Traceback" not in r.stderr, f"exit {r.code}\n{r.stderr}"
    status = run_all([Call(tmp_path, ["status", "--format", "json"])])[0]
    assert status.json()["store_integrity"] == ("ok" if url.startswith("sqlite") else
                                                "not checked (PostgreSQL checks its own pages)")
    # and the store they raced to build is complete and works
    doc = write_doc(tmp_path / "doc.json", worked_example())
    imported = run_all([Call(tmp_path, ["import", str(doc)])])[0]
    assert imported.code == 0, imported.stderr
    _assert_complete_and_working(url)


def test_a_store_file_another_start_fills_between_our_read_and_its_size_is_not_called_foreign(
        tmp_path, monkeypatch):
    """The race behind a rare failure of the 12 concurrent starts: our start reads the empty file's
    header (nothing), then another start writes the file's first page before we take its size."""
    import sqlite3

    from sqlalchemy import create_engine

    from connector.store import db

    built = tmp_path / "built.db"
    conn = sqlite3.connect(built)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    target = tmp_path / "store.db"
    target.touch()
    real_open = Path.open

    class ReadThenFilled:
        def __init__(self, f):
            self._f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

        def fileno(self):
            return self._f.fileno()

        def read(self, n):
            data = self._f.read(n)
            with real_open(target, "r+b") as other:  # the other start, writing in place
                other.write(built.read_bytes())
            return data

    def opening(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return ReadThenFilled(f) if path == target and mode == "rb" else f

    monkeypatch.setattr(Path, "open", opening)
    engine = create_engine(f"sqlite:///{target}")
    try:
        db.check_sqlite_file(engine)  # an empty file when read: a new store, not someone else's
    finally:
        engine.dispose()
    monkeypatch.undo()
    assert target.read_bytes().startswith(db.SQLITE_HEADER)  # the other start did write it


def test_12_concurrent_first_starts_on_sqlite_all_succeed(tmp_path):
    _concurrent_first_starts(tmp_path, f"sqlite:///{tmp_path / 'store.db'}", 12)


@pytest.mark.postgres
def test_12_concurrent_first_starts_on_postgres_all_succeed(tmp_path):
    with postgres_schema() as url:
        _concurrent_first_starts(tmp_path, url, 12)


def _concurrent_daemons(tmp_path: Path, url: str | None, n: int) -> None:
    """`n` first starts of `revsync sync --once` at the same instant on a fresh store.

    Each either runs (the winner, or one that came after the winner released the lease) or stops
    with the lease's clear message; none dies in the migration, none prints a traceback.
    """
    sys.path.insert(0, str(REPO / "tests" / "e2e"))
    from e2e_support import site, worked_seed

    with site(tmp_path / "org", worked_seed()) as s:
        if url is not None:
            config = s.root / "config.toml"
            config.write_text(config.read_text().replace(f"sqlite:///{s.db}", url))
        procs = [s.start("sync", "--once") for _ in range(n)]
        outcomes = []
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            outcomes.append((proc.returncode, out + err))
        print("exit codes:", sorted(code for code, _ in outcomes),
              "lease messages:", sum("another sync daemon" in err for _, err in outcomes))
        for code, err in outcomes:
            assert "Traceback" not in err, err
            assert code == 0 or "another sync daemon" in err, f"exit {code}\n{err}"
        assert any(code == 0 for code, _ in outcomes)
        # the store is whole, and one more run finds it in step
        again = s.revsync("sync", "--once")
        assert again.code == 0, again
        _assert_complete_and_working(url or f"sqlite:///{s.db}")


@pytest.mark.slow
def test_8_concurrent_first_daemons_on_sqlite_give_one_writer_and_clear_messages(tmp_path):
    _concurrent_daemons(tmp_path, None, 8)


@pytest.mark.slow
@pytest.mark.postgres
def test_8_concurrent_first_daemons_on_postgres_give_one_writer_and_clear_messages(tmp_path):
    with postgres_schema() as url:
        _concurrent_daemons(tmp_path, url, 8)


def _held_exclusively(path: Path):
    """A connection holding the store's file so that no other can even read it (a WAL being reset or
    recovered by another revsync looks the same to a reader: SQLITE_BUSY)."""
    import sqlite3

    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO alembic_version SELECT version_num FROM alembic_version WHERE 0")
    return holder


def test_an_open_that_meets_a_lock_waits_for_it_and_then_opens(tmp_path, monkeypatch, caplog):
    import logging
    import threading

    from connector.store import db

    url = f"sqlite:///{tmp_path / 'store.db'}"
    open_store(url).dispose()
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 50)  # SQLite gives up on each read at once
    holder = _held_exclusively(tmp_path / "store.db")
    threading.Timer(1.0, holder.close).start()  # the other revsync finishes a second later
    with caplog.at_level(logging.INFO, logger="connector.store.db"):
        engine = open_store(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == db.HEAD
    finally:
        engine.dispose()
    assert any("waiting for another revsync that holds the store's lock" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_an_open_whose_lock_never_goes_says_so_and_not_to_check_the_url(tmp_path, monkeypatch):
    from connector.errors import TransientError
    from connector.store import db

    url = f"sqlite:///{tmp_path / 'store.db'}"
    open_store(url).dispose()
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr(db, "MIGRATION_WAIT_SECONDS", 0.5)
    holder = _held_exclusively(tmp_path / "store.db")
    try:
        with pytest.raises(TransientError) as raised:
            open_store(url)
    finally:
        holder.close()
    assert "stayed locked for 0 s while this revsync waited to open it" in str(raised.value)
    assert "another revsync is using it" in raised.value.hint
    assert "[store] url" not in raised.value.hint
    open_store(url).dispose()  # nothing was changed: it opens once the lock is gone
