"""One writer per org: a lease in the store, renewed beside the work, and a fence before every call.

The sync daemon takes the lease before its first cycle. A keeper thread renews it every quarter
of its time to live, however long a cycle takes. Every request to Salesforce first asks the
fence (`WriterLease.check`): the lease must still be ours *without a gap*. Locally that is a
monotonic deadline (a process stopped with SIGSTOP, or frozen by its host, sees its deadline pass
while it was away); past it, the fence renews by compare-and-set on the exact value this daemon
last wrote. The value changes whenever another daemon takes the lease, and a taken-over lease is
never given back to the daemon that lost it, so a write prepared before the pause is never sent
after another daemon has written: the daemon drops what it had in hand and starts a fresh cycle
from the store (or stops, when the other daemon is still alive).

What the fence cannot close is the instant between its check and the bytes leaving the socket;
the check is made by the transport right before the send, so that window is microseconds wide.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Callable

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from connector.clock import Clock
from connector.errors import FatalError
from connector.store import schema as t
from connector.store.repository import get_meta

log = logging.getLogger("revsync.lease")

#: The lease outlives its last renewal by this long by default ([sync] lease_seconds).
DEFAULT_TTL = dt.timedelta(minutes=5)


class LeaseHeld(FatalError):
    """Another daemon holds the org's writer lease: this one must not write."""


class LeaseLost(FatalError):
    """This daemon's lease lapsed or was taken over: what it had in hand must not be written."""


class WriterLease:
    """One sync daemon (one writer) per store and org.

    A daemon killed with -9 leaves its lease behind; it expires after `ttl`, and a restart on the
    same machine takes it over at once when its holder (host and process id) is gone.
    """

    KEY = "writer_lease"

    def __init__(self, store, clock: Clock, ttl: dt.timedelta, *,
                 monotonic: Callable[[], float] = time.monotonic):
        self.store = store
        self.clock = clock
        self.ttl = ttl
        self.me = f"{socket.gethostname()}:{os.getpid()}"
        self._monotonic = monotonic
        self._lock = threading.Lock()
        #: the exact stored value this daemon wrote last (None: not held)
        self._mine: str | None = None
        #: monotonic time past which the lease is not trusted without a renewal
        self._valid_until = 0.0
        self._lost = False

    # -- taking and renewing ---------------------------------------------------------------------

    def hold(self) -> None:
        """Take the lease, or renew it while it is ours; raise LeaseHeld naming the live holder.

        A compare-and-set on the stored value: two daemons starting together cannot both win,
        because only one UPDATE finds the value it read.
        """
        with self._lock:
            for _ in range(3):
                started = self._monotonic()
                now = self.clock.now()
                with self.store.begin() as conn:
                    raw = get_meta(conn, self.KEY)
                    held = json.loads(raw) if raw else {}
                    if raw != self._mine and held.get("holder") and self._alive(held, now):
                        until = dt.datetime.fromisoformat(held["until"])
                        raise LeaseHeld(
                            f"another sync daemon ({held['holder']}) is writing to this org through this store "
                            f"until {until.isoformat()}",
                            hint="run one `revsync sync` per org; stop the other one first")
                    # a fresh token on every write: a value is never seen twice, so a daemon whose
                    # lease was taken over cannot find "its" value again
                    mine = json.dumps({"holder": self.me, "until": (now + self.ttl).isoformat(),
                                       "token": uuid.uuid4().hex})
                    if raw is None:
                        try:
                            with conn.begin_nested():
                                conn.execute(insert(t.meta).values(key=self.KEY, value=mine))
                        except IntegrityError:
                            continue  # another daemon inserted first: look again
                    elif conn.execute(update(t.meta).where(t.meta.c.key == self.KEY, t.meta.c.value == raw)
                                      .values(value=mine)).rowcount != 1:
                        continue
                self._mine, self._lost = mine, False
                self._valid_until = started + self.ttl.total_seconds() * 0.75
                return
        raise LeaseHeld("could not take the sync daemon's lease: another daemon keeps changing it",
                        hint="run one `revsync sync` per org")

    def renew(self) -> None:
        """Extend the lease only if the stored value is still the one this daemon wrote.

        Raises LeaseLost (and remembers it) when another daemon has taken it meanwhile.
        """
        with self._lock:
            if self._mine is None or self._lost:
                raise LeaseLost("this daemon no longer holds the writer lease")
            started = self._monotonic()
            now = self.clock.now()
            mine = json.dumps({"holder": self.me, "until": (now + self.ttl).isoformat(),
                               "token": uuid.uuid4().hex})
            with self.store.begin() as conn:
                done = conn.execute(update(t.meta).where(t.meta.c.key == self.KEY, t.meta.c.value == self._mine)
                                    .values(value=mine)).rowcount == 1
            if not done:
                self._lost = True
                raise LeaseLost("another sync daemon took over the writer lease while this one was not "
                                "renewing it (paused, frozen or cut off from the store)",
                                hint="run one `revsync sync` per org")
            self._mine = mine
            self._valid_until = started + self.ttl.total_seconds() * 0.75

    def check(self) -> None:
        """The fence, asked before every request to Salesforce: raise LeaseLost unless still ours."""
        if self._lost:
            raise LeaseLost("this daemon lost the writer lease; nothing more is sent")
        if self._monotonic() < self._valid_until:
            return
        self.renew()  # past the local deadline: only an unbroken lease may go on

    @property
    def held(self) -> bool:
        return self._mine is not None and not self._lost

    @staticmethod
    def _alive(held: dict, now: dt.datetime) -> bool:
        if dt.datetime.fromisoformat(held["until"]) <= now:
            return False  # expired: its holder stopped renewing it
        host, _, pid = held["holder"].rpartition(":")
        return host != socket.gethostname() or _pid_alive(int(pid))

    def release(self) -> None:
        """Give the lease up (on a clean stop); a lease taken over by another daemon is left alone."""
        with self._lock:
            if self._mine is None:
                return
            with self.store.begin() as conn:
                conn.execute(update(t.meta).where(t.meta.c.key == self.KEY, t.meta.c.value == self._mine)
                             .values(value=json.dumps({"holder": "", "until": self.clock.now().isoformat()})))
            self._mine = None


class LeaseKeeper:
    """Renews a lease on a thread of its own every quarter of its time to live."""

    def __init__(self, lease: WriterLease, *, every: float | None = None):
        self.lease = lease
        self.every = every if every is not None else max(lease.ttl.total_seconds() / 4, 0.05)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="revsync-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.lease.renew()
            except LeaseLost:
                log.error("the writer lease was taken over by another daemon; this one writes nothing more")
                return
            except Exception as exc:  # noqa: BLE001 - the store may be briefly busy; the fence still holds
                log.warning("could not renew the writer lease (%s); trying again", type(exc).__name__)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
