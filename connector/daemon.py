"""`revsync sync`: the loop poll → ingest → activate and jobs → write-back, until told to stop.

The first SIGTERM/SIGINT finishes the batch in hand and stops (warm shutdown); a second stops at
once (cold). Every step commits what it has done with the cursor or outbox state that goes with
it, so a `kill -9` at any point loses nothing and duplicates nothing after a restart.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from connector.clock import Clock
from connector.errors import FatalError
from connector.ingest import TakeResult
from connector.sources.outbound import mark_processed, pending_notifications
from connector.sources.poll import change_query
from connector.store import schema as t
from connector.store.repository import get_meta, set_meta
from connector.sync import SyncService

log = logging.getLogger("revsync.daemon")


class Writer(Protocol):
    """What the daemon needs from the write-back (connector.writers)."""

    def flush(self) -> Any: ...

    def left(self) -> dict[str, int]: ...


class Stopper:
    """Signal handling: the first signal asks for a warm stop, the second stops at once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signals = 0

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, _frame) -> None:
        self.signals += 1
        if self.signals == 1:
            log.info("stopping after the batch in hand (send the signal again to stop at once)",
                     extra={"signal": signal.Signals(signum).name})
            self.event.set()
        else:
            log.warning("stopping at once", extra={"signal": signal.Signals(signum).name})
            raise SystemExit(130)

    @property
    def stopping(self) -> bool:
        return self.event.is_set()


@dataclass
class DaemonResult:
    """How the daemon's run ended."""

    cycles: int = 0
    left: dict[str, int] = field(default_factory=dict)


class Daemon:
    """Runs sync cycles on an interval, serving notifications in between."""

    def __init__(self, service: SyncService, clock: Clock, *, interval: dt.timedelta,
                 writer: Writer | None = None, metrics: Any = None,
                 after_cycle: Callable[[], None] | None = None):
        self.service = service
        self.clock = clock
        self.interval = interval
        self.writer = writer
        self.metrics = metrics
        self.after_cycle = after_cycle
        self.stopper = Stopper()
        self.wake = threading.Event()

    def notified(self, sobject: str, record_ids: list[str]) -> None:
        """Called by the Outbound Message receiver after it stored notifications: sync now."""
        self.wake.set()

    def take_notifications(self) -> int:
        """Read the records named by stored Outbound Messages at once and take them in."""
        store = self.service.ingestor.store
        with store.connect() as conn:
            pending = pending_notifications(conn, 500)
        if not pending:
            return 0
        by_object: dict[str, list] = {}
        for n in pending:
            by_object.setdefault(n.object, []).append(n)
        for sobject, notes in by_object.items():
            ids = sorted({n.record_id for n in notes})
            query = change_query(sobject, self.service.mappings.fields(sobject), None).where("Id", "IN", ids)
            records = list(self.service.client.query_all(query))
            result = TakeResult(sobject)
            with store.begin() as conn:
                self.service.ingestor.take_records(conn, sobject, records, result, self.clock.now())
                mark_processed(conn, [n.id for n in notes], self.clock.now())
        return len(pending)

    def cycle(self) -> None:
        """One full cycle: notifications, polling, activation and jobs, write-back."""
        self.take_notifications()
        # background jobs that failed are retried with backoff (SPEC section 3)
        self.service.ingestor.runner.retry_failed(due_only=True)
        report = self.service.cycle(should_stop=lambda: self.stopper.stopping)
        if self.writer is not None and not self.stopper.stopping:
            self.writer.flush()
        usage = self.service.client.api_usage
        if usage is not None:  # for `revsync status`, which reads the store only
            with self.service.ingestor.store.begin() as conn:
                set_meta(conn, "api_usage", f"{usage.used}/{usage.limit} at {self.clock.now().isoformat()}")
        if self.metrics is not None:
            for taken in report.taken:
                self.metrics.add_ingested(taken.object, taken.taken)
            usage = self.service.client.api_usage
            if usage is not None:
                self.metrics.set_api_usage(usage.used, usage.limit)
            self.metrics.cycle_succeeded(self.clock.now())
        if self.after_cycle is not None:
            self.after_cycle()
        log.info("cycle done", extra={
            "records": sum(t.taken for t in report.taken), "quarantined": report.quarantined,
            "activated": len(report.activated), "failed_jobs": sum(not j.ok for j in report.jobs)})

    def run(self, *, once: bool = False, install_signals: bool = True) -> DaemonResult:
        """Loop until stopped (or one cycle with `once`); returns what is left to write."""
        if install_signals:
            self.stopper.install()
        result = DaemonResult()
        lease = WriterLease(self.service.ingestor.store, self.clock, ttl=max(self.interval * 3, MIN_LEASE))
        while True:
            lease.hold()  # one writer per org: a second daemon on this store stops here
            self.cycle()
            result.cycles += 1
            if once or self.stopper.stopping:
                break
            self.wake.clear()
            # wait out the interval, waking early for a notification or a stop
            deadline = self.interval.total_seconds()
            while deadline > 0 and not self.stopper.stopping and not self.wake.is_set():
                step = min(deadline, 0.5)
                self.stopper.event.wait(step)
                deadline -= step
            if self.stopper.stopping:
                break
        lease.release()
        result.left = self.writer.left() if self.writer is not None else {}
        return result


MIN_LEASE = dt.timedelta(minutes=5)


class WriterLease:
    """One sync daemon (one writer) per store and org: a lease in the store, renewed every cycle.

    A daemon killed with -9 leaves its lease behind; it expires after `ttl` (three intervals, at
    least five minutes), so a restart on the same machine takes it over as soon as the holder is
    gone: the holder is identified by host and process id and a dead local holder is not waited for.
    """

    KEY = "writer_lease"

    def __init__(self, store, clock: Clock, ttl: dt.timedelta):
        self.store = store
        self.clock = clock
        self.ttl = ttl
        self.me = f"{socket.gethostname()}:{os.getpid()}"

    def hold(self) -> None:
        """Take or renew the lease, or raise FatalError naming the daemon that holds it.

        A compare-and-set on the stored value: two daemons starting together cannot both win,
        because only one UPDATE finds the value it read.
        """
        for _ in range(3):
            now = self.clock.now()
            with self.store.begin() as conn:
                raw = get_meta(conn, self.KEY)
                held = json.loads(raw) if raw else {}
                if held.get("holder") and held["holder"] != self.me and self._alive(held, now):
                    until = dt.datetime.fromisoformat(held["until"])
                    raise FatalError(f"another sync daemon ({held['holder']}) is writing to this org through "
                                     f"this store until {until.isoformat()}",
                                     hint="run one `revsync sync` per org; stop the other one first")
                mine = json.dumps({"holder": self.me, "until": (now + self.ttl).isoformat()})
                if raw is None:
                    try:
                        with conn.begin_nested():
                            conn.execute(insert(t.meta).values(key=self.KEY, value=mine))
                        return
                    except IntegrityError:
                        continue  # another daemon inserted first: look again
                taken = conn.execute(update(t.meta).where(t.meta.c.key == self.KEY, t.meta.c.value == raw)
                                     .values(value=mine)).rowcount
                if taken == 1:
                    return
        raise FatalError("could not take the sync daemon's lease: another daemon keeps changing it",
                         hint="run one `revsync sync` per org")

    @staticmethod
    def _alive(held: dict, now: dt.datetime) -> bool:
        if dt.datetime.fromisoformat(held["until"]) <= now:
            return False  # expired: its holder stopped renewing it
        host, _, pid = held["holder"].rpartition(":")
        return host != socket.gethostname() or _pid_alive(int(pid))

    def release(self) -> None:
        """Give the lease up (on a clean stop)."""
        with self.store.begin() as conn:
            raw = get_meta(conn, self.KEY)
            if raw and json.loads(raw)["holder"] == self.me:
                set_meta(conn, self.KEY, json.dumps({"holder": "", "until": self.clock.now().isoformat()}))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
