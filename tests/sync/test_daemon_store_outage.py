"""The store unavailable in the middle of a pass is waited out like a Salesforce outage.

A SQLite store locked by another process past the busy timeout, a PostgreSQL server that drops
the daemon's connections and refuses new ones for a while: the pass ends, the daemon backs off and
says why, and once the store is back it catches up, with every subscription written once.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
import sys
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from sync_support import close, connect

from connector.daemon import Daemon
from connector.errors import TransientError
from connector.metrics import Metrics
from connector.sandbox.faults import Fault
from connector.store import db

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from store_support import postgres_schema_of_own_role  # noqa: E402

SUBSCRIPTION_WRITE = "/composite/sobjects/Subscription__c"


def run_through(c, make_unavailable, make_available) -> tuple[list[float], list[str | None]]:
    """Run the daemon with the store made unavailable at its first subscription write; the store
    comes back at its second backoff. Returns the backoffs and what the daemon said at each."""
    metrics = Metrics()
    daemon = Daemon(c.service, c.clock, interval=dt.timedelta(hours=1), writer=c.runtime.writer,
                    metrics=metrics, max_backoff=dt.timedelta(seconds=40))
    c.org.faults.add(Fault.call(make_unavailable, method="PATCH", path=SUBSCRIPTION_WRITE))
    waits: list[float] = []
    said: list[str | None] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        said.append(metrics.trouble)
        if len(waits) == 2:
            make_available()
        c.clock.advance(dt.timedelta(seconds=seconds))

    daemon._sleep = sleep
    orig_wait = daemon._wait_for_next
    daemon._wait_for_next = lambda: daemon.stopper.event.set() or orig_wait()
    daemon.run(install_signals=False)
    assert metrics.trouble is None  # ok again once the store was back
    return waits, said


def write_lock(path: Path) -> sqlite3.Connection:
    """A connection holding the store's write lock (readers go on; writers wait, then are refused)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DELETE FROM alembic_version WHERE 0")
    return conn


def assert_caught_up_once(c) -> None:
    subscriptions = c.org.records("Subscription__c")
    assert len(subscriptions) == 2, subscriptions  # written, and not twice: the resend is an upsert
    assert c.runtime.writer.left() == {}


@pytest.fixture
def locking(tmp_path, monkeypatch):
    """A connector on a SQLite store whose statements give up after 0.1 s, with `lock()` (another
    process, a long import say, takes the store's write lock and keeps it) and `release()`."""
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 100)
    c = connect(tmp_path, monkeypatch)
    holder: list[sqlite3.Connection] = []
    c.lock = lambda: holder.append(write_lock(tmp_path / "store.db"))
    c.release = lambda: holder.pop().close()
    try:
        yield c
    finally:
        for conn in holder:
            conn.close()
        close(c)


def test_a_sqlite_store_locked_past_the_busy_timeout_is_waited_out(locking):
    c = locking
    waits, said = run_through(c, c.lock, c.release)
    assert len(waits) == 2, (waits, said)
    for wait, base in zip(waits, [5, 10]):
        assert base * 0.5 <= wait <= base
    assert all(s and s.startswith("the store is unavailable: another process held the store's lock too long")
               for s in said), said
    assert_caught_up_once(c)


def test_sync_once_with_the_store_locked_ends_in_a_clear_transient_error(locking):
    c = locking
    daemon = Daemon(c.service, c.clock, interval=dt.timedelta(hours=1), writer=c.runtime.writer)
    c.org.faults.add(Fault.call(c.lock, method="PATCH", path=SUBSCRIPTION_WRITE))
    result = daemon.run(once=True, install_signals=False)
    assert isinstance(result.error, TransientError), result.error
    assert str(result.error).startswith("the store is unavailable: another process held the store's lock")
    assert "run `revsync sync --once` again" in result.error.hint
    c.release()
    # the lease could not be given up either (the store was locked): it lapses by itself; a
    # next `revsync sync --once` takes it at once, as its holder's process has ended
    c.clock.advance(dt.timedelta(minutes=6))
    again = Daemon(c.service, c.clock, interval=dt.timedelta(hours=1), writer=c.runtime.writer)
    assert again.run(once=True, install_signals=False).error is None
    assert_caught_up_once(c)


def test_an_error_of_the_store_that_no_wait_fixes_still_stops_the_daemon(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch)

    def drop_a_table() -> None:  # not a lock, not a lost connection: a bug or a damaged store
        with sqlite3.connect(tmp_path / "store.db") as conn:
            conn.execute("DROP TABLE outbox")

    try:
        daemon = Daemon(c.service, c.clock, interval=dt.timedelta(hours=1), writer=c.runtime.writer)
        c.org.faults.add(Fault.call(drop_a_table, method="PATCH", path=SUBSCRIPTION_WRITE))
        with pytest.raises(OperationalError, match="no such table"):
            daemon.run(install_signals=False)
    finally:
        close(c)


@pytest.mark.postgres
def test_a_postgresql_server_that_drops_and_refuses_connections_is_waited_out(tmp_path, monkeypatch):
    with postgres_schema_of_own_role() as store:
        c = connect(tmp_path, monkeypatch, store_url=store.url)
        try:
            waits, said = run_through(c, store.down, store.up)
            assert len(waits) == 2
            assert all(s and s.startswith("the store is unavailable: ") for s in said), said
            assert any("too many connections" in s for s in said if s), said
            assert_caught_up_once(c)
        finally:
            close(c)


def test_a_daemon_starting_while_another_process_holds_the_store_waits_for_it(locking):
    import threading

    c = locking
    c.lock()  # a long import, say, is writing when the daemon starts
    threading.Timer(1.5, c.release).start()
    daemon = Daemon(c.service, c.clock, interval=dt.timedelta(hours=1), writer=c.runtime.writer)
    result = daemon.run(once=True, install_signals=False)
    assert result.error is None, result.error
    assert_caught_up_once(c)
