"""The daemon with a change event stream: polling slows to the safety net while the stream is
healthy, polls what a gap or overflow names, and polls everything again when the stream fails."""
from __future__ import annotations

import datetime as dt

from sync_support import close, connect

from connector.daemon import Daemon
from connector.sources.cdc import polls_requested, request_polls


class Stream:
    """Stands in for connector.sources.cdc.ChangeStream: only its health matters here."""

    def __init__(self) -> None:
        self.ok = True
        self.problem: str | None = None

    def healthy(self) -> bool:
        return self.ok


def test_polling_runs_only_as_the_safety_net_while_the_stream_is_healthy(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch)
    try:
        stream = Stream()
        daemon = Daemon(c.service, c.clock, interval=dt.timedelta(seconds=60), writer=c.runtime.writer,
                        stream=stream, stream_poll_interval=dt.timedelta(hours=1))
        objects = len(c.service.objects)

        daemon.cycle()  # the first pass polls every object (and activates, writes): the stream starts at the tip
        assert daemon.polled is None

        calls = c.calls
        daemon.cycle()  # healthy stream, slow poll not due: no query at all
        assert daemon.polled == [] and c.calls == calls

        with c.app.store.begin() as conn:
            request_polls(conn, ["Opportunity"])  # an overflow event named it
        calls = c.calls
        daemon.cycle()
        assert daemon.polled == ["Opportunity"] and c.calls - calls == 1
        with c.app.store.connect() as conn:
            assert polls_requested(conn) == set()

        stream.ok = False  # the stream failed: every pass polls, as without it
        calls = c.calls
        daemon.cycle()
        assert daemon.polled is None and c.calls - calls == objects

        stream.ok = True
        daemon._last_full_poll -= 3600  # an hour later: the safety-net poll is due
        calls = c.calls
        daemon.cycle()
        assert daemon.polled is None and c.calls - calls == objects
    finally:
        close(c)


def test_a_pass_that_fails_keeps_the_poll_requests_it_took(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch)
    try:
        daemon = Daemon(c.service, c.clock, interval=dt.timedelta(seconds=60), writer=c.runtime.writer,
                        stream=Stream())
        daemon.cycle()
        with c.app.store.begin() as conn:
            request_polls(conn, ["Order"])

        def broken(**_kw):
            raise ConnectionError("Salesforce unreachable")

        c.service.cycle = broken
        try:
            daemon.cycle()
        except ConnectionError:
            pass
        with c.app.store.connect() as conn:
            assert polls_requested(conn) == {"Order"}
    finally:
        close(c)


def test_poll_requests_a_failed_pass_cannot_store_again_are_polled_by_the_next(tmp_path, monkeypatch):
    import sqlite3

    from connector.store import db

    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 100)
    c = connect(tmp_path, monkeypatch)
    try:
        daemon = Daemon(c.service, c.clock, interval=dt.timedelta(seconds=60), writer=c.runtime.writer,
                        stream=Stream(), stream_poll_interval=dt.timedelta(hours=1))
        daemon.cycle()
        with c.app.store.begin() as conn:
            request_polls(conn, ["Order"])
        cycle, holder = c.service.cycle, []

        def broken(**_kw):  # Salesforce fails, and another process holds the store's write lock
            conn = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            holder.append(conn)
            raise ConnectionError("Salesforce unreachable")

        c.service.cycle = broken
        try:
            daemon.cycle()
        except ConnectionError:
            pass
        holder.pop().close()
        with c.app.store.connect() as conn:
            assert polls_requested(conn) == set()  # taken by the failed pass, not stored again
        c.service.cycle = cycle
        calls = c.calls
        daemon.cycle()
        assert daemon.polled == ["Order"] and c.calls - calls == 1  # kept in hand and polled
        daemon.cycle()
        assert daemon.polled == []  # once
    finally:
        close(c)


def test_change_events_are_never_held_back_by_the_notification_rate_limit(tmp_path, monkeypatch):
    import threading
    import time

    c = connect(tmp_path, monkeypatch)
    try:
        daemon = Daemon(c.service, c.clock, interval=dt.timedelta(seconds=120), writer=c.runtime.writer,
                        stream=Stream(), max_triggered_per_minute=2)
        now = time.monotonic()
        daemon._triggered.extend([now, now])  # two passes woken for nothing this minute: the limit
        daemon.notified("Opportunity", ["006000000000001AAA"])  # a notification: held for about a minute
        waiter = threading.Thread(target=daemon._wait_for_next)
        waiter.start()
        waiter.join(1.0)
        assert waiter.is_alive()  # held back by the rate limit
        started = time.monotonic()
        daemon.changes_stored()  # a batch of change events stored: the pass starts now
        waiter.join(5)
        assert not waiter.is_alive() and time.monotonic() - started < 2
    finally:
        close(c)
