"""Building the long-running pieces (sync service, daemon, backfill) from the app's configuration."""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from connector.app import App
from connector.backfill import Backfill
from connector.daemon import Daemon
from connector.ingest import Ingestor
from connector.salesforce.client import SalesforceClient
from connector.sources.poll import PollingSource
from connector.sync import SyncService

log = logging.getLogger(__name__)

EXIT_LEFT = 4  # `sync --once` ended with changes not yet written back


@dataclass
class Runtime:
    """The connected pieces, for one org."""

    app: App
    client: SalesforceClient
    ingestor: Ingestor
    service: SyncService
    writer: Any = None


def build(app: App, *, session=None) -> Runtime:
    """Wire client, mappings, ingest and the sync service; mapping problems stop here, before any work."""
    mappings = app.mappings  # validated at start-up: a bad mapping never stops the daemon half-way
    client = app.salesforce_client(session=session)
    ingestor = Ingestor(app.store, mappings, app.settings, app.clock, app.runner, lambda: app.calendar,
                        sync_drafts=app.config.engine.sync_draft_orders_with_primary_quotes)
    source = PollingSource(client, app.clock, lookback=dt.timedelta(seconds=app.config.sync.lookback_seconds))
    service = SyncService(client, mappings, ingestor, source, app.config.sync.objects,
                          create_orders_from_won_quotes=app.config.sync.create_orders_from_won_quotes)
    from connector.writers.outbox import OutboxWriter

    ingestor.own_user_id = client.user_id
    return Runtime(app, client, ingestor, service, OutboxWriter(app.store, client, mappings, app.clock))


def run_daemon(app: App, *, once: bool, session=None) -> int:
    """`revsync sync`: returns the exit code."""
    from connector import logs

    logs.setup(json_lines=True, verbose=False)
    runtime = build(app, session=session)
    server = None
    metrics = None
    if app.config.server is not None:
        from connector.metrics import Metrics
        from connector.server import Server

        metrics = Metrics()
    daemon = Daemon(runtime.service, app.clock, interval=dt.timedelta(seconds=app.config.sync.interval_seconds),
                    writer=runtime.writer, metrics=metrics, after_cycle=app.refresh_calendar)
    if app.config.server is not None:
        server = Server(app.config.server, store=app.store, clock=app.clock, metrics=metrics,
                        cycle_interval=daemon.interval, on_notified=daemon.notified)
        server.start()
    try:
        result = daemon.run(once=once)
    finally:
        if server is not None:
            server.stop()
    left = {k: v for k, v in result.left.items() if v}
    if once and left:
        log.error("changes not yet written back to Salesforce", extra={"left": left})
        return EXIT_LEFT
    return 0


def run_backfill(app: App, since: dt.datetime, until: dt.datetime | None, objects: list[str] | None, *,
                 console: Console, session=None) -> int:
    """`revsync backfill`: returns the exit code."""
    runtime = build(app, session=session)
    since = since.replace(tzinfo=dt.timezone.utc) if since.tzinfo is None else since
    # Without an end, Backfill reads up to now, or resumes the unfinished run with the same start.
    until = until.replace(tzinfo=dt.timezone.utc) if until and until.tzinfo is None else until
    chosen = objects or list(app.config.sync.objects)
    backfill = Backfill(app.store, runtime.client, runtime.service.mappings, runtime.ingestor, app.clock)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=False, disable=not console.is_terminal) as progress:
        tasks: dict[str, Any] = {}

        def step(sobject: str, done: int, total: int | None) -> None:
            if sobject not in tasks:
                tasks[sobject] = progress.add_task(sobject, total=total)
            progress.update(tasks[sobject], completed=done, **({"total": total} if total is not None else {}))

        report = backfill.run(since, until, chosen, progress=step)
    app.refresh_calendar()
    console.print(f"backfill {report.backfill_id}{' (resumed)' if report.resumed else ''}: "
                  + ", ".join(f"{k} {v}" for k, v in report.records.items())
                  + f"; {len(report.activated)} order(s) activated, {report.quarantined} record(s) quarantined.")
    failed = [j for j in report.jobs if not j.ok]
    if failed:
        console.print(f"{len(failed)} background job(s) failed; see `revsync jobs --failed`.")
        return 3
    return 0
