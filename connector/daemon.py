"""`revsync sync`: the loop poll → ingest → activate and jobs → write-back, until told to stop.

**One pass runs to quiescence.** A cycle polls, activates, runs jobs and writes back; when the
write-back has itself activated orders in Salesforce (orders the connector creates from won
quotes), the same pass reads them back, activates them in the engine and writes their results,
for at most `MAX_ROUNDS` rounds.

**No trigger is lost.** A notification (Outbound Message) sets the wake flag; the flag is cleared
when a cycle *starts*, so one that arrives while a cycle runs starts another right after it.
Triggered passes that take nothing in (notifications naming records that do not exist or have not
changed: forged, or replayed) are rate-limited ([server] max_triggered_cycles_per_minute): a flood
coalesces into a few passes, each taking in everything stored so far, while genuine changes,
however many, are synced at once.

**Outages are survived.** A transient failure (503, connection refused or reset, timeouts, DNS,
lock errors past the client's retries) ends the cycle, not the daemon: it waits, capped
exponential backoff with jitter, shows `degraded` with the reason on /health and in `revsync
status`, and tries again; every step commits with its cursor or outbox state, so it catches up
with nothing lost or duplicated. The org's API limit (REQUEST_LIMIT_EXCEEDED) or this connector's
share of it pauses the daemon until calls free up. Errors no wait can fix (credentials refused,
a missing field or permission) stop it with exit code 5. ARR rows the org's big objects cannot
hold (connector.capacity) are held back, not sent: the daemon goes on with everything else and
shows `degraded` with what to do until they fit; `sync --once` then exits 5.

**One writer.** The writer lease is renewed by a thread of its own, and every request to
Salesforce is fenced by it (connector.lease): a daemon paused past its lease writes nothing.

The first SIGTERM/SIGINT finishes the batch in hand and stops (warm shutdown); a second stops at
once (cold).
"""
from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from connector.clock import Clock
from connector.errors import AuthError, TransientError
from connector.lease import DEFAULT_TTL, LeaseHeld, LeaseKeeper, LeaseLost, WriterLease
from connector.salesforce.errors import (
    ApiBudgetExhausted,
    ApiLimitReached,
    BulkJobFailed,
    SalesforceRequestFailed,
    UnexpectedResponse,
)
from connector.sources.cdc import polls_done, polls_requested, request_polls
from connector.sources.outbound import mark_processed, pending_notifications
from connector.store.db import store_unavailable
from connector.store.repository import set_meta
from connector.sync import CycleReport, SyncService

log = logging.getLogger("revsync.daemon")

#: Rounds of one pass: poll and write, then read back what the write activated, and so on.
MAX_ROUNDS = 5
#: Notifications taken in per round (the rest wait for the next cycle, which starts at once).
NOTIFICATIONS_PER_ROUND = 500
#: First wait after a failed cycle; it doubles per failure up to the configured cap.
FIRST_BACKOFF_SECONDS = 5.0

__all__ = ["Daemon", "DaemonResult", "Stopper", "WriterLease", "MAX_ROUNDS"]


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
    #: the error that ended a `--once` run (None when it ran to the end)
    error: BaseException | None = None
    #: rounds of the last pass that hit MAX_ROUNDS with orders still to read back
    unfinished_rounds: bool = False


#: failures a later try can get past: the pass is tried again after a backoff
PASSING = (TransientError, UnexpectedResponse, BulkJobFailed)
#: how long a daemon starting waits for a store that is unavailable before it gives up
START_WAIT_SECONDS = 120.0


def needs_a_person(exc: BaseException) -> bool:
    """True for Salesforce's refusals that no wait can fix (credentials refused, a revoked token,
    a missing permission or field): the daemon stops and says what to do."""
    if isinstance(exc, (ApiLimitReached, *PASSING)):
        return False
    return isinstance(exc, (SalesforceRequestFailed, AuthError))


class Daemon:
    """Runs sync passes on an interval, at once on a notification, through outages."""

    def __init__(self, service: SyncService, clock: Clock, *, interval: dt.timedelta,
                 writer: Writer | None = None, metrics: Any = None,
                 after_cycle: Callable[[], None] | None = None,
                 lease_ttl: dt.timedelta = DEFAULT_TTL,
                 max_backoff: dt.timedelta = dt.timedelta(minutes=5),
                 max_triggered_per_minute: int = 6,
                 after_pass: Callable[[], None] | None = None,
                 stream: Any = None, stream_poll_interval: dt.timedelta = dt.timedelta(hours=1)):
        self.service = service
        self.clock = clock
        self.interval = interval
        self.writer = writer
        self.metrics = metrics
        self.after_cycle = after_cycle
        self.after_pass = after_pass
        self.lease_ttl = lease_ttl
        self.max_backoff = max_backoff
        self.max_triggered_per_minute = max(1, max_triggered_per_minute)
        self.stopper = Stopper()
        self.wake = threading.Event()
        #: set with `wake` by a source that cannot be forged (Change Data Capture, which Salesforce
        #: authenticates): such a pass is never held back by the rate limit
        self._trusted_wake = threading.Event()
        #: start times of recent triggered passes that took nothing in (the rate limit counts these)
        self._triggered: collections.deque[float] = collections.deque()
        self._trigger_at: float | None = None
        self.taken_from_notifications = 0
        self._failures = 0
        self._last_good: dt.datetime | None = None
        self._unfinished = False
        self.lease: WriterLease | None = None
        #: what the last pass did, and the records written to Salesforce by object since the start
        #: (for `revsync sync --once`'s summary)
        self.last_report: CycleReport | None = None
        self.written: dict[str, int] = {}
        #: the capacity check of the last pass when it held ARR rows back (connector.capacity)
        self.held_back: Any = None
        #: Change Data Capture (connector.sources.cdc.ChangeStream): while it is healthy, polling
        #: runs every `stream_poll_interval` only, and for the objects a gap or overflow names
        self.stream = stream
        self.stream_poll_interval = stream_poll_interval
        self._last_full_poll: float | None = None
        #: poll requests a failed pass could not store again (the store was unavailable): kept here
        self._polls_in_hand: set[str] = set()
        #: the objects the last pass polled (None: all)
        self.polled: list[str] | None = None

    @property
    def store(self):
        return self.service.ingestor.store

    def changes_stored(self) -> None:
        """Called by the change event stream after it stored a batch: sync now, never rate-limited
        (Salesforce's own authenticated events cannot be forged or replayed at will)."""
        self._trusted_wake.set()
        self.wake.set()

    def notified(self, sobject: str, record_ids: list[str]) -> None:
        """Called by the Outbound Message receiver after it stored notifications: sync now."""
        self.wake.set()

    # -- one pass ----------------------------------------------------------------------------------

    def take_notifications(self) -> int:
        """Read the records named by stored Outbound Messages at once and take them in; returns how
        many notifications were processed (`self.taken_from_notifications`: records that changed)."""
        self.taken_from_notifications = 0
        with self.store.connect() as conn:
            pending = pending_notifications(conn, NOTIFICATIONS_PER_ROUND)
        if not pending:
            return 0
        by_object: dict[str, list] = {}
        for n in pending:
            by_object.setdefault(n.object, []).append(n)
        for sobject, notes in by_object.items():
            taken = self.service.take_by_ids(sobject, [n.record_id for n in notes])
            self.taken_from_notifications += taken.taken
            with self.store.begin() as conn:
                mark_processed(conn, [n.id for n in notes], self.clock.now())
        if len(pending) == NOTIFICATIONS_PER_ROUND:
            self.wake.set()  # more are stored: the next cycle starts at once
        return len(pending)

    def cycle(self) -> CycleReport:
        """One pass to quiescence: notifications, polling, activation and jobs, write-back, then
        the orders that write-back activated in Salesforce, read back and written in turn."""
        self.take_notifications()
        # background jobs that failed are retried with backoff (SPEC section 3)
        self.service.ingestor.runner.retry_failed(due_only=True)
        objects, requested = self._objects_to_poll()
        try:
            report = self.service.cycle(should_stop=lambda: self.stopper.stopping, objects=objects)
        except BaseException:
            if requested:
                try:
                    with self.store.begin() as conn:
                        request_polls(conn, sorted(requested))  # not met: asked again
                except Exception:  # noqa: BLE001 - the pass's own error is the one to report
                    self._polls_in_hand |= requested  # the store is down too: the next pass asks
            raise
        if objects is None:
            self._last_full_poll = time.monotonic()
        self.polled = objects
        self._unfinished = False
        self.held_back = None
        for round_no in range(1, MAX_ROUNDS + 1):
            if self.writer is None or self.stopper.stopping:
                break
            flushed = self.writer.flush()
            self.held_back = getattr(self.writer, "held_back", None)
            for sobject, count in (getattr(flushed, "sent", None) or {}).items():
                self.written[sobject] = self.written.get(sobject, 0) + count
                if self.metrics is not None:
                    self.metrics.add_written(sobject, count)
            activated = list(getattr(flushed, "activated_orders", ()) or ())
            if not activated:
                break
            if round_no == MAX_ROUNDS:
                self._unfinished = True
                log.warning("pass stopped after %d rounds with orders still to read back; the next cycle "
                            "goes on", MAX_ROUNDS, extra={"orders": len(activated)})
                self.wake.set()
                break
            more = self.service.read_back_orders(activated)
            report.taken += more.taken
            report.activated += more.activated
            report.jobs += more.jobs
        self._record_usage()
        if self.metrics is not None:
            for taken in report.taken:
                self.metrics.add_ingested(taken.object, taken.taken)
            self.metrics.cycle_succeeded(self.clock.now())
        self.last_report = report
        if self.after_cycle is not None:
            self.after_cycle()
        log.info("cycle done", extra={
            "records": sum(t.taken for t in report.taken), "quarantined": report.quarantined,
            "activated": len(report.activated), "failed_jobs": sum(not j.ok for j in report.jobs)})
        return report

    def _objects_to_poll(self) -> tuple[list[str] | None, set[str]]:
        """What this pass polls: every object (None) without a healthy change event stream or when the
        slow poll is due; else only the objects a gap, overflow or lost replay id asked for. Returns
        them with the requests taken (cleared now, stored again if the pass fails)."""
        if self.stream is None:
            return None, set()
        with self.store.begin() as conn:
            requested = polls_requested(conn)
            if requested:
                polls_done(conn, sorted(requested))
        requested |= self._polls_in_hand
        self._polls_in_hand = set()
        due = self._last_full_poll is None or \
            time.monotonic() - self._last_full_poll >= self.stream_poll_interval.total_seconds()
        if due or not self.stream.healthy():
            return None, requested
        return sorted(requested), requested

    def _record_usage(self) -> None:
        usage = self.service.client.api_usage
        if usage is None:
            return
        with self.store.begin() as conn:  # for `revsync status`, which reads the store only
            set_meta(conn, "api_usage", f"{usage.used}/{usage.limit} at {self.clock.now().isoformat()}")
        if self.metrics is not None:
            self.metrics.set_api_usage(usage.used, usage.limit)

    # -- the loop ----------------------------------------------------------------------------------

    def run(self, *, once: bool = False, install_signals: bool = True) -> DaemonResult:
        """Loop until stopped (or one pass with `once`); returns what is left to write.

        Raises FatalError for what needs a person (and LeaseHeld when another daemon writes).
        With `once`, a failure that a wait could fix ends the run too, in `result.error`.
        """
        if install_signals:
            self.stopper.install()
        result = DaemonResult()
        self.lease = WriterLease(self.store, self.clock, ttl=self.lease_ttl)
        self._hold_at_start()  # one writer per org: a second daemon on this store stops here
        self.service.client.fence_with(self.lease.check)
        keeper = LeaseKeeper(self.lease)
        keeper.start()
        streaming = self.stream is not None and not once
        if streaming:
            self.stream.on_taken = self.changes_stored  # a batch of change events taken in: sync now
            self.stream.start()  # one reader per org: only while holding the lease
        try:
            while not self.stopper.stopping:
                self.wake.clear()  # cleared before the pass: a trigger during it starts another
                self._trusted_wake.clear()
                wait = self._one_pass(result, once=once)
                if once or self.stopper.stopping:
                    break
                if wait is not None:
                    self._sleep(wait)  # backing off or paused: notifications keep being stored
                    continue
                self._wait_for_next()
        finally:
            if streaming:
                self.stream.stop()
            keeper.stop()
            if self.lease.held:
                self._release_lease()
        result.unfinished_rounds = self._unfinished
        result.left = self.writer.left() if self.writer is not None else {}
        return result

    def _hold_at_start(self) -> None:
        """Take the lease; a store unavailable for a while (another process holding its write lock,
        a database server restarting) is waited for, up to START_WAIT_SECONDS, or until a stop."""
        deadline = time.monotonic() + START_WAIT_SECONDS
        while True:
            try:
                self.lease.hold()
                return
            except LeaseHeld:
                raise
            except Exception as exc:  # noqa: BLE001 - sorted just below
                reason = store_unavailable(exc)
                if reason is None or time.monotonic() > deadline or self.stopper.stopping:
                    raise
                log.warning("waiting for the store to take the writer lease", extra={"reason": reason})
                self._sleep(1.0)

    def _release_lease(self) -> None:
        try:
            self.lease.release()
        except Exception as exc:  # noqa: BLE001 - sorted just below
            reason = store_unavailable(exc)
            if reason is None:
                raise
            # harmless: a lease whose holder is gone (this process, about to end) or whose time ran
            # out is taken by the next daemon at once
            log.warning("could not give the writer lease up; it lapses by itself", extra={"reason": reason})

    def _one_pass(self, result: DaemonResult, *, once: bool) -> float | None:
        """Run one pass; the seconds to wait before the next when it failed, else None."""
        try:
            if not self.lease.held:
                self.lease.hold()  # lost earlier and free again: start afresh from the store
            self.cycle()
            if self.after_pass is not None:
                self.after_pass()
        except LeaseLost as exc:
            log.error("the writer lease lapsed; dropping what this pass had in hand", extra={"reason": str(exc)})
            self.lease.hold()  # raises LeaseHeld while the daemon that took over is alive
            return 0.0
        except (ApiBudgetExhausted, ApiLimitReached) as exc:
            if once:
                result.error = exc
                return None
            until = exc.retry_after
            self._trouble(f"paused until {until.isoformat()}: {str(exc).splitlines()[0]}", paused_until=until)
            log.warning("paused: the API budget is spent", extra={"until": until.isoformat(),
                                                                  "reason": str(exc).splitlines()[0]})
            return max((until - self.clock.now()).total_seconds(), 1.0)
        except LeaseHeld:
            raise
        except Exception as exc:  # noqa: BLE001 - sorted just below
            store_trouble = None if isinstance(exc, PASSING) else store_unavailable(exc)
            if not isinstance(exc, PASSING) and store_trouble is None:
                raise
            if store_trouble is not None:
                # the store's transaction was rolled back whole: what the pass committed stays, the
                # rest is done again by the next pass, as after a Salesforce outage
                reason = f"the store is unavailable: {store_trouble}"
                if once:
                    result.error = TransientError(f"{reason}; what this pass had committed stays",
                                                  hint="run `revsync sync --once` again once the store is back")
                    return None
            else:
                reason = f"Salesforce unreachable or failing: {str(exc).splitlines()[0]}"
                if once:
                    result.error = exc
                    return None
            self._failures += 1
            wait = self._backoff()
            self._trouble(reason, retry_in=wait)
            log.warning("sync pass failed; trying again after a backoff",
                        extra={"reason": reason, "attempt": self._failures, "retry_in_seconds": round(wait, 1)})
            return wait
        result.cycles += 1
        if self._trigger_at is not None and self.taken_from_notifications == 0:
            self._triggered.append(self._trigger_at)  # woken for nothing: counts against the limit
        self._trigger_at = None
        self._failures = 0
        self._last_good = self.clock.now()
        # rows held back for want of big-object capacity: the pass went well, the org needs a person
        stream_problem = getattr(self.stream, "problem", None) if self.stream is not None and not once else None
        self._trouble(self.held_back.message() if self.held_back is not None else stream_problem)
        return None

    def _backoff(self) -> float:
        """Capped exponential backoff with jitter: 5 s, 10 s, 20 s … up to the cap, each × 0.5–1."""
        cap = self.max_backoff.total_seconds()
        base = min(cap, FIRST_BACKOFF_SECONDS * 2 ** min(self._failures - 1, 30))
        return base * random.uniform(0.5, 1.0)

    def _trouble(self, reason: str | None, *, retry_in: float | None = None,
                 paused_until: dt.datetime | None = None) -> None:
        """Show the daemon's state on /health and in `revsync status` (stored for the latter)."""
        if self.metrics is not None:
            self.metrics.set_trouble(reason)
        now = self.clock.now()
        state = {"state": "ok" if reason is None else ("paused" if paused_until else "degraded"),
                 "reason": reason, "since": now.isoformat(),
                 "last_good_cycle_at": self._last_good.isoformat() if self._last_good else None,
                 "next_attempt_at": (paused_until.isoformat() if paused_until else
                                     (now + dt.timedelta(seconds=retry_in)).isoformat() if retry_in else None)}
        try:
            with self.store.begin() as conn:
                set_meta(conn, "daemon_state", json.dumps(state))
        except Exception as exc:  # noqa: BLE001 - a busy store must not end the daemon
            log.warning("could not record the daemon's state (%s)", type(exc).__name__)

    def _sleep(self, seconds: float) -> None:
        """Wait, waking only for a stop."""
        self.stopper.event.wait(seconds)

    def _wait_for_next(self) -> None:
        """Wait out the interval, waking early for a notification (rate-limited) or a stop."""
        deadline = time.monotonic() + self.interval.total_seconds()
        while not self.stopper.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._trusted_wake.is_set():
                return  # change events: no rate limit, they are Salesforce's own
            if self.wake.is_set():
                hold = self._trigger_hold()
                if hold <= 0:
                    self._trigger_at = time.monotonic()
                    return
                self._trusted_wake.wait(min(hold, left, 0.5))  # held back, but change events go at once
                continue
            self.wake.wait(min(left, 0.5))

    def _trigger_hold(self) -> float:
        """Seconds a triggered pass must wait while the last minute's triggered passes that took
        nothing in reach the per-minute limit (0: go now)."""
        now = time.monotonic()
        while self._triggered and now - self._triggered[0] >= 60:
            self._triggered.popleft()
        if len(self._triggered) < self.max_triggered_per_minute:
            return 0.0
        return 60 - (now - self._triggered[0])

