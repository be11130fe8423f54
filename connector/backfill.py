"""`revsync backfill`: a bounded read of history that resumes after a crash.

It reads every record changed in [since, until) of the chosen objects, takes them in like the
daemon does, then activates the Salesforce-activated orders it found. It never moves the daemon's
cursors. Above the client's bulk threshold an object is read with a Bulk API 2.0 query job whose
id is saved before the first page is read; each page is taken in the same transaction as the
locator of the next one, so a crash resumes at the first page not taken, without repeating work.
A run with the same window and objects as an unfinished one resumes it; so does a run without an
end whose start and objects are those of an unfinished one.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Callable, Sequence

from sqlalchemy import Engine, insert, select, update

from connector.clock import Clock
from connector.ingest import Ingestor, Mappings, TakeResult
from connector.jobs import JobOutcome
from connector.salesforce.client import SalesforceClient
from connector.sources.poll import change_query
from connector.store import schema as t
from connector.sync import FILTERS, order_items

log = logging.getLogger(__name__)


@dataclass
class BackfillReport:
    """What a backfill did."""

    backfill_id: int
    resumed: bool
    records: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    activated: list[str] = field(default_factory=list)
    jobs: list[JobOutcome] = field(default_factory=list)


Progress = Callable[[str, int, int | None], None]  # (object, records so far, total or None)


def whole_second_after(moment: dt.datetime) -> dt.datetime:
    """`moment` rounded up to a whole second: the end of a window that ends "now".

    SOQL dateTime literals are whole seconds (YYYY-MM-DDThh:mm:ssZ), so an end of 12:00:00.700 would be
    sent as 12:00:00 and miss what changed in the 700 ms before the backfill began. Rounded up, the
    stored end is exactly the one queried, and everything changed before the command started is in it.
    """
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + dt.timedelta(seconds=1)


class Backfill:
    """Runs (or resumes) a bounded backfill."""

    def __init__(self, store: Engine, client: SalesforceClient, mappings: Mappings, ingestor: Ingestor,
                 clock: Clock):
        self.store = store
        self.client = client
        self.mappings = mappings
        self.ingestor = ingestor
        self.clock = clock

    def _start(self, since: dt.datetime, until: dt.datetime | None,
               objects: Sequence[str]) -> tuple[int, bool, dt.datetime]:
        key = json.dumps(list(objects))
        with self.store.begin() as conn:
            unfinished = select(t.backfills.c.id, t.backfills.c.until).where(
                t.backfills.c.since == since, t.backfills.c.objects == key, t.backfills.c.state == "running")
            if until is not None:
                unfinished = unfinished.where(t.backfills.c.until == until)
            found = conn.execute(unfinished.order_by(t.backfills.c.id.desc())).first()
            if found is not None:
                return found.id, True, found.until
            until = until if until is not None else whole_second_after(self.clock.now())
            backfill_id = conn.execute(insert(t.backfills).values(
                since=since, until=until, objects=key, state="running",
                created_at=self.clock.now())).inserted_primary_key[0]
            conn.execute(insert(t.backfill_progress), [dict(backfill_id=backfill_id, object=o, records=0,
                                                            state="pending") for o in objects])
            return backfill_id, False, until

    def run(self, since: dt.datetime, until: dt.datetime | None, objects: Sequence[str],
            progress: Progress | None = None) -> BackfillReport:
        """Read [since, until) of each object, then activate the orders found; resumable.

        Without `until`, an unfinished run with the same start and objects is resumed with the end
        it was given (its "now"); otherwise the window ends now.
        """
        backfill_id, resumed, until = self._start(since, until, objects)
        report = BackfillReport(backfill_id, resumed)
        for sobject in objects:
            report.records[sobject] = self._object(backfill_id, sobject, since, until, report, progress)
        with self.store.connect() as conn:
            ready = self.ingestor.ready_orders(conn)
        report.jobs = self.ingestor.activate_orders(ready, lambda ids: order_items(self.client, self.mappings, ids))
        report.activated = [o["id"] for o in ready]
        with self.store.begin() as conn:
            conn.execute(update(t.backfills).where(t.backfills.c.id == backfill_id)
                         .values(state="done", finished_at=self.clock.now()))
        return report

    def _object(self, backfill_id: int, sobject: str, since: dt.datetime, until: dt.datetime,
                report: BackfillReport, progress: Progress | None) -> int:
        where = (t.backfill_progress.c.backfill_id == backfill_id) & (t.backfill_progress.c.object == sobject)
        with self.store.connect() as conn:
            state = conn.execute(select(t.backfill_progress).where(where)).one()
        if state.state == "done":
            return state.records
        query = change_query(sobject, self.mappings.fields(sobject), since, until, FILTERS.get(sobject))
        done = state.records
        if state.bulk_job_id is None:
            total = self.client.count(query, include_deleted=True)
            if progress:
                progress(sobject, done, total)
            if total <= self.client.settings.bulk_threshold:
                return self._rest(sobject, query, where, report, progress, total)
            job = self.client.bulk_query(query, include_deleted=True)
            with self.store.begin() as conn:  # saved before any page is read
                conn.execute(update(t.backfill_progress).where(where).values(bulk_job_id=job.job_id,
                                                                             state="running"))
        else:
            total = None
            job = self.client.resume_bulk_query(state.bulk_job_id, state.locator)
            log.info("resuming backfill of %s from bulk job %s (%d records taken)", sobject,
                     state.bulk_job_id, done)
        for page in job.pages():
            result = TakeResult(sobject)
            with self.store.begin() as conn:
                self.ingestor.take_records(conn, sobject, page.records, result, self.clock.now())
                done += len(page.records)
                conn.execute(update(t.backfill_progress).where(where).values(
                    locator=page.next_locator, records=done,
                    state="running" if page.next_locator else "done"))
            report.quarantined += len(result.quarantined)
            if progress:
                progress(sobject, done, total)
        return done

    def _rest(self, sobject: str, query, where, report: BackfillReport, progress: Progress | None,
              total: int) -> int:
        # Small enough for one transaction: a crash re-reads this object, and the records
        # already taken in are skipped by (Id, SystemModstamp).
        result = TakeResult(sobject)
        records = list(self.client.query_all(query))
        with self.store.begin() as conn:
            self.ingestor.take_records(conn, sobject, records, result, self.clock.now())
            conn.execute(update(t.backfill_progress).where(where).values(records=len(records), state="done"))
        report.quarantined += len(result.quarantined)
        if progress:
            progress(sobject, len(records), total)
        return len(records)
