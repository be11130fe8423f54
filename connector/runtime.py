"""Building the long-running pieces (sync service, daemon, backfill) from the app's configuration."""
from __future__ import annotations

import datetime as dt
import logging
import sys
from dataclasses import dataclass
from typing import Any, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from connector.app import App
from connector.backfill import Backfill
from connector.daemon import Daemon
from connector.errors import FatalError, ValidationFailed
from connector.ingest import Ingestor
from connector.jobs import evergreen_daily
from connector.render import print_error
from connector.salesforce.client import SalesforceClient
from connector.sources.cdc import ChangeStream, StreamCredentials, channels, trusted_roots
from connector.sources.poll import PollingSource
from connector.sync import SyncService

log = logging.getLogger(__name__)

EXIT_JOBS_FAILED = 3  # orders activated, but background jobs failed: their results are absent
EXIT_LEFT = 4  # `sync --once` ended with changes not yet written back
EXIT_NEEDS_ACTION = 5  # Salesforce refused what no wait fixes (credentials, permission, a field), or
#                        ARR rows are held back: the org's big objects cannot hold them (connector.capacity)
EXIT_HELD = 6  # `sync --once`: records are held in the quarantine


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
    writer = OutboxWriter(app.store, client, mappings, app.clock,
                          big_object_capacity=app.salesforce_settings().big_object_capacity)
    return Runtime(app, client, ingestor, service, writer)


def change_stream(app: App, runtime: Runtime) -> ChangeStream | None:
    """The Change Data Capture subscriptions `[sync] source` asks for (None without "cdc")."""
    sync = app.config.sync
    if "cdc" not in sync.source:
        return None
    client = runtime.client

    def credentials(renew: bool = False) -> StreamCredentials:
        return StreamCredentials(*client.stream_credentials(renew=renew))

    credentials()  # no identity URL, no org id: stop at start-up, with what to do
    return ChangeStream(app.store, app.clock, target=app.salesforce_settings().pubsub_url,
                        channels=channels(sync.objects, sync.cdc_channel or None), objects=sync.objects,
                        credentials=credentials, refresh=lambda: credentials(renew=True),
                        own_user_id=runtime.ingestor.own_user_id, batch=sync.cdc_batch_size,
                        root_certificates=trusted_roots())


def run_daemon(app: App, *, once: bool, session=None, summary: bool = False, log_format: str = "json") -> int:
    """`revsync sync`: returns the exit code (README, "Exit codes").

    `summary`: with `once`, print what the pass did (read, activated, written, left, API calls) on stdout.
    `log_format`: "json" (one object a line, INFO and up) or "text" (warnings and errors, plain).
    """
    from connector import logs
    from connector.daemon import needs_a_person
    from connector.lease import LeaseHeld

    from connector.store.db import check_integrity

    logs.setup(json_lines=log_format == "json", verbose=False)
    check_integrity(app.store)  # a damaged store stops the daemon before it reads or writes anything
    server = None
    try:
        runtime = build(app, session=session)  # logs in: refused credentials stop here
        metrics = None
        if app.config.server is not None:
            from connector.metrics import Metrics
            from connector.server import Server

            metrics = Metrics()
        sync = app.config.sync
        daemon = Daemon(runtime.service, app.clock, interval=dt.timedelta(seconds=sync.interval_seconds),
                        writer=runtime.writer, metrics=metrics, after_cycle=app.refresh_calendar,
                        after_pass=evergreen_daily(app),
                        lease_ttl=dt.timedelta(seconds=sync.lease_seconds),
                        max_backoff=dt.timedelta(seconds=sync.max_backoff_seconds),
                        max_triggered_per_minute=getattr(app.config.server, "max_triggered_cycles_per_minute", 6),
                        stream=None if once else change_stream(app, runtime),
                        stream_poll_interval=dt.timedelta(seconds=sync.cdc_poll_interval_seconds))
        if app.config.server is not None:
            server = Server(app.config.server, store=app.store, clock=app.clock, metrics=metrics,
                            cycle_interval=daemon.interval, on_notified=daemon.notified, calendar=app.calendar)
            server.start()
        result = daemon.run(once=once)
    except LeaseHeld:
        raise
    except FatalError as exc:
        if not needs_a_person(exc) or isinstance(exc, ValidationFailed):
            raise
        log.error("stopped: Salesforce refused something no wait can fix", extra={"reason": str(exc)})
        print_error(str(exc))
        return EXIT_NEEDS_ACTION
    finally:
        if server is not None:
            server.stop()
    if once and summary:
        print(_summary(daemon, runtime, result), flush=True)
    if result.error is not None:
        raise result.error
    if once and daemon.held_back is not None:
        log.error("stopped: ARR rows held back, the org's big objects cannot hold them",
                  extra={"reason": daemon.held_back.message()})
        print(f"not done: {daemon.held_back.message()}", file=sys.stderr)
        return EXIT_NEEDS_ACTION
    return _once_outcome(app, result) if once else 0


def _summary(daemon: Daemon, runtime: Runtime, result) -> str:
    """`sync --once` in a few words: read, activated, jobs, written, left, API calls."""
    def counts(by_object: dict[str, int], what: str) -> str:
        detail = ", ".join(f"{k} {v}" for k, v in sorted(by_object.items()) if v)
        return f"{sum(by_object.values())} {what}" + (f" ({detail})" if detail else "")

    report = daemon.last_report
    read: dict[str, int] = {}
    for taken in (report.taken if report else []):
        read[taken.object] = read.get(taken.object, 0) + taken.taken
    jobs = report.jobs if report else []
    left = {k: v for k, v in result.left.items() if v}
    usage = runtime.client.api_usage
    lines = [f"read {counts(read, 'record(s) from Salesforce')}",
             (f"left {len(report.activated) if report else 0} order(s) to the workers to activate; background "
              "jobs: left to the workers ([workers] enabled)" if runtime.app.runner.deferred else
              f"activated {len(report.activated) if report else 0} order(s); "
              f"background jobs: {sum(j.ok for j in jobs)} done, {sum(not j.ok for j in jobs)} failed"),
             # the writer counts outbox entries: one record each, but one order line's rows for the
             # ARR big objects (ArrByPeriod__b, ArrByPeriodByCustomer__b)
             f"written {counts(daemon.written, 'outbox entries to Salesforce')}",
             "left to write: " + (counts(left, "outbox entries") if left else "nothing"),
             f"API calls: {runtime.client.calls_made} this run"
             + (f"; the org reports {usage.used} of {usage.limit} used in 24 h" if usage else "")]
    if result.error is not None:
        lines.append(f"stopped early: {str(result.error).splitlines()[0]}")
    return "sync --once: " + "\n  ".join(lines)


def _once_outcome(app: App, result) -> int:
    """`sync --once` exits 0 only when every record read and every consequence of it is in Salesforce."""
    from sqlalchemy import func, select

    from connector.store import schema as t

    left = {k: v for k, v in result.left.items() if v}
    with app.store.connect() as conn:
        failed_jobs = conn.execute(select(func.count()).select_from(t.jobs)
                                   .where(t.jobs.c.status == t.JobStatus.FAILED)).scalar()
        held = conn.execute(select(func.count()).select_from(t.quarantine)
                            .where(t.quarantine.c.released_at.is_(None))).scalar()
    if left or result.unfinished_rounds:
        log.error("changes not yet written back to Salesforce", extra={"left": left})
        print_error(f"outbox entries not yet written to Salesforce {left}; run `revsync sync --once` again, "
                    "and see `revsync outbox --failed` for the failed ones", label="not done:")
        return EXIT_LEFT
    if failed_jobs:
        print_error(f"{failed_jobs} background job(s) failed, their results are not in Salesforce; "
                    "see `revsync jobs --failed`, then `revsync jobs retry`", label="not done:")
        return EXIT_JOBS_FAILED
    if held:
        print_error(f"{held} Salesforce record(s) are held in the quarantine; see `revsync quarantine` "
                    "for the reasons, fix them in Salesforce, and sync again", label="not done:")
        return EXIT_HELD
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


def run_worker(app: App | Sequence[App], *, until_idle: bool, log_format: str = "json") -> int:
    """`revsync worker`: take engine work from the PostgreSQL store until stopped (or idle).

    Given several apps (`--all-orgs`: one per org of the configuration), it takes one claim of each
    org in turn, so one pool of workers serves every org fairly.
    Returns EXIT_JOBS_FAILED when jobs it ran failed (they are retried with backoff), else 0.
    The first SIGTERM/SIGINT stops it after the accounts in hand; the second at once (the claim
    then expires and another worker takes the accounts over: nothing is lost).
    """
    from connector import logs
    from connector.daemon import Stopper
    from connector.workers import WorkerReport, require_postgresql

    apps = [app] if isinstance(app, App) else list(app)
    for one in apps:
        require_postgresql(one.config.store_url())  # before the store is opened (a SQLite file would be made)
    logs.setup(json_lines=log_format == "json", verbose=False)
    stopper = Stopper()
    stopper.install()
    workers = [_worker(one, stopper) for one in apps]
    report = WorkerReport()
    for worker in workers:
        log.info("worker %s started", worker.name, extra={"org": worker.org})
    if len(workers) == 1:
        report = workers[0].run(until_idle=until_idle, stopping=lambda: stopper.stopping)
    else:
        while not stopper.stopping:
            try:
                took = [w.run_once(report) for w in workers if not stopper.stopping]
                if any(took):
                    continue
                if until_idle and not any(w.work_left() for w in workers):
                    break
            except Exception as exc:  # noqa: BLE001 - a store unavailable for a while is waited out
                if not workers[0].wait_out(exc, report):
                    raise
                continue
            stopper.event.wait(min(w.poll_seconds for w in workers))
    log.info("worker stopped", extra={
        "orgs": [w.org for w in workers], "claims": report.claims, "accounts": report.accounts,
        "jobs": report.jobs, "failed": report.failed, "claims_lost": report.lost,
        "store_outages": report.store_outages})
    return EXIT_JOBS_FAILED if report.failed else 0


def _worker(app: App, stopper: Any) -> Any:
    """A worker on one org's part of the store."""
    from connector.workers import Worker

    settings = app.config.workers
    # activation of the orders the daemon leaves in the queue; the write mappings say which
    # Salesforce records are the engine's items (an order may name one by its Salesforce Id)
    activator = Ingestor(app.store, app.mappings if app.config.salesforce is not None else None, app.settings,
                         app.clock, app.runner, lambda: app.calendar)
    worker = Worker(app.store, app.runner, claim_seconds=settings.claim_seconds,
                    accounts_per_claim=settings.accounts_per_claim, poll_seconds=settings.poll_seconds,
                    sleep=lambda seconds: stopper.event.wait(seconds) and None, activate=activator.activate_staged)
    worker.before_claim = app.refresh_calendar
    worker.org = app.config.org
    return worker
