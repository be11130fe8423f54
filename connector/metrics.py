"""Prometheus metrics of the sync daemon, on a registry of their own.

The figures are those of `revsync status` (connector.reports.status): the store-derived ones are
refreshed from the store on each scrape, the others are set by the daemon as it works. A dedicated
CollectorRegistry keeps them apart from anything else in the process (and lets tests build as
many as they like without "Duplicated timeseries" errors from the global registry).
"""
from __future__ import annotations

import datetime as dt
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import Engine, func, select

from connector.clock import Clock
from connector.reports import status
from connector.store import schema as t

#: Outbox states (connector.store.schema.outbox); each is exported, at 0 when empty.
OUTBOX_STATES = tuple(state.value for state in t.OutboxState)


class Metrics:
    """The daemon's gauges and counters, and the refresh of those that come from the store."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.cursor_lag = Gauge("revsync_cursor_lag_seconds",
                                "Seconds between now and the saved sync cursor of an object",
                                ["object"], registry=r)
        self.api_calls_used = Gauge("revsync_api_calls_used",
                                    "Salesforce API calls used in the rolling 24 h, as last reported",
                                    registry=r)
        self.api_daily_limit = Gauge("revsync_api_calls_daily_limit",
                                     "The org's daily Salesforce API call allowance, as last reported",
                                     registry=r)
        self.outbox_depth = Gauge("revsync_outbox_depth", "Outbox entries by state", ["state"], registry=r)
        self.failed_jobs = Gauge("revsync_failed_jobs", "Background jobs in the failed state", registry=r)
        self.quarantined = Gauge("revsync_quarantined_records", "Records held in quarantine (not released)",
                                 registry=r)
        self.pending_notifications = Gauge("revsync_notifications_pending",
                                           "Outbound Message notifications stored and not yet processed",
                                           registry=r)
        self.store_up = Gauge("revsync_store_up", "1 when the last refresh from the store succeeded",
                              registry=r)
        self.last_cycle = Gauge("revsync_last_successful_cycle_timestamp_seconds",
                                "Unix time at which the last sync cycle finished without error", registry=r)
        self.records_ingested = Counter("revsync_records_ingested",
                                        "Salesforce records taken in, by object", ["object"], registry=r)
        self.records_written = Counter("revsync_records_written",
                                       "Records written to Salesforce, by object", ["object"], registry=r)
        self.outbound_answers = Counter("revsync_outbound_requests",
                                        "Requests to /outbound answered by the receiver, by HTTP status "
                                        "(200 = acked; many others point at a misconfiguration or an attack)",
                                        ["status"], registry=r)
        self.connections_dropped = Counter("revsync_http_connections_dropped",
                                           "Connections the HTTP server dropped, by reason: source (not in "
                                           "allowed_sources), tls (handshake failed, e.g. no accepted client "
                                           "certificate), deadline (request not read in time)",
                                           ["reason"], registry=r)
        self.notifications_purged = Counter("revsync_notifications_purged",
                                            "Processed Outbound Message notifications deleted after the retention",
                                            registry=r)
        for reason in ("source", "tls", "deadline"):
            self.connections_dropped.labels(reason=reason)
        self._lock = threading.Lock()
        self._last_cycle_at: dt.datetime | None = None
        #: why the daemon is not syncing right now (an outage, a paused API budget), or None
        self._trouble: str | None = None
        self._lagging: set[str] = set()

    @property
    def last_cycle_at(self) -> dt.datetime | None:
        """When the last successful cycle finished (None before the first)."""
        return self._last_cycle_at

    def cycle_succeeded(self, at: dt.datetime) -> None:
        """Record that a sync cycle finished without error at `at` (an aware UTC datetime)."""
        with self._lock:
            self._last_cycle_at = at
        self.last_cycle.set(at.timestamp())

    @property
    def trouble(self) -> str | None:
        """Why the daemon cannot sync right now (None while it can)."""
        return self._trouble

    def set_trouble(self, reason: str | None) -> None:
        """Record why the daemon cannot sync (an outage, the API budget), or None once it can again."""
        with self._lock:
            self._trouble = reason

    def set_api_usage(self, used: int, limit: int) -> None:
        """Record the API usage Salesforce last reported (`Sforce-Limit-Info: api-usage=used/limit`)."""
        self.api_calls_used.set(used)
        self.api_daily_limit.set(limit)

    def set_cursor_lag(self, sobject: str, seconds: float) -> None:
        """Set the cursor lag of one object."""
        self.cursor_lag.labels(object=sobject).set(seconds)

    def add_ingested(self, sobject: str, count: int = 1) -> None:
        """Count records of `sobject` taken in from Salesforce."""
        if count:
            self.records_ingested.labels(object=sobject).inc(count)

    def add_written(self, sobject: str, count: int = 1) -> None:
        """Count records of `sobject` written to Salesforce."""
        if count:
            self.records_written.labels(object=sobject).inc(count)

    def count_outbound_answer(self, status: str) -> None:
        """Count one answer of the Outbound Message receiver (`status` as "200 OK" or "403")."""
        self.outbound_answers.labels(status=status[:3]).inc()

    def count_dropped_connection(self, reason: str) -> None:
        """Count a connection dropped by the HTTP server: "source", "tls" or "deadline"."""
        self.connections_dropped.labels(reason=reason).inc()

    def add_purged(self, count: int) -> None:
        """Count purged notifications."""
        if count:
            self.notifications_purged.inc(count)

    def collect_from_store(self, engine: Engine, clock: Clock) -> None:
        """Refresh cursor lag, outbox depth, failed jobs, quarantine and pending notifications.

        Raises what the store raises (after setting `revsync_store_up` to 0), so the caller can
        report the store as unreachable.
        """
        try:
            with engine.connect() as conn:
                figures = status(conn, clock.now())
                pending = conn.execute(select(func.count()).select_from(t.notifications)
                                       .where(t.notifications.c.processed_at.is_(None))).scalar_one()
        except Exception:
            self.store_up.set(0)
            raise
        with self._lock:
            seen = set()
            for cursor in figures["cursors"]:
                self.set_cursor_lag(cursor["object"], cursor["lag_seconds"])
                seen.add(cursor["object"])
            # An object whose cursor is gone (removed from [sync] objects) stops being exported
            # rather than freezing at its last lag.
            for gone in self._lagging - seen:
                self.cursor_lag.remove(gone)
            self._lagging = seen
            depth = {state: 0 for state in OUTBOX_STATES}
            depth.update(figures["outbox"])
            for state, count in depth.items():
                self.outbox_depth.labels(state=state).set(count)
            self.failed_jobs.set(figures["failed_jobs"] or 0)
            self.quarantined.set(figures["quarantined"] or 0)
            self.pending_notifications.set(pending or 0)
            self.store_up.set(1)
