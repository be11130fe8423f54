"""Polling change source: `SystemModstamp >= cursor − lookback`, through queryAll so deletes show.

The window is closed at its start (`>=`): records that share the cursor's timestamp are read again
rather than lost (dlt's strict `>` loses them), and the caller drops what it has already taken in
by (Id, SystemModstamp). The cursor saved after a tick never passes the tick's start, so a record
committed during the tick with an earlier timestamp is read by the next one (singer's signpost).

The first read of an object (no cursor yet) may be large: above the client's `bulk_threshold` it is
a Bulk API 2.0 query job read page by page (`FirstRead`), and the caller takes each page in with a
`Checkpoint` (the job id and the locator of the next page) in the same transaction, so a crash
resumes at the first page not taken instead of reading the object again. A locator stays valid as
long as its job exists ("Get Results for a Query Job", Bulk API 2.0 Developer Guide); Salesforce
deletes jobs older than seven days ("Job and Batch Lifespan"), and a job that is gone, failed or
aborted is started over, which the log says.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from dateutil.parser import isoparse

from connector.clock import Clock
from connector.salesforce.client import SalesforceClient
from connector.salesforce.errors import BulkJobFailed, NotFound
from connector.salesforce.soql import Query, select

log = logging.getLogger(__name__)

#: Fields every polled object is read with, whatever the mapping asks for (LastModifiedById tells
#: the connector's own writes from others', for echo suppression).
SYSTEM_FIELDS = ("Id", "SystemModstamp", "IsDeleted", "LastModifiedById")
#: System fields some objects lack: Period rows are maintained by Salesforce's fiscal year settings,
#: have no IsDeleted and no LastModifiedById (Object Reference, "Period").
WITHOUT = {"Period": frozenset({"IsDeleted", "LastModifiedById"})}
DEFAULT_LOOKBACK = dt.timedelta(minutes=5)
#: Records per Bulk API 2.0 result page of a first read (`maxRecords`): the unit a crash loses at
#: most. Without it Salesforce picks the page size itself, possibly the whole result.
BULK_PAGE_RECORDS = 50_000


def modstamp(record: dict[str, Any]) -> dt.datetime:
    """A record's SystemModstamp as an aware UTC datetime (REST and Bulk shapes alike)."""
    value = record["SystemModstamp"]
    if isinstance(value, dt.datetime):
        stamp = value
    else:
        stamp = isoparse(str(value))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.astimezone(dt.timezone.utc)


def is_deleted(record: dict[str, Any]) -> bool:
    """IsDeleted as a bool: JSON true, or the Bulk CSV string 'true'."""
    value = record.get("IsDeleted")
    return value is True or (isinstance(value, str) and value.lower() == "true")


@dataclass(frozen=True)
class Checkpoint:
    """How far the first read of an object has been taken in: where a restart resumes it."""

    #: the Bulk API 2.0 query job being read, and its SOQL (a job of another query is not resumed)
    job_id: str
    soql: str
    #: the locator of the next page to take (None: the first page)
    locator: str | None
    #: when the read began: the cursor saved at its end never passes it
    started: dt.datetime
    #: the newest SystemModstamp taken in so far
    newest: dt.datetime | None = None
    #: records taken in so far
    taken: int = 0

    def dumps(self) -> str:
        return json.dumps({"job_id": self.job_id, "soql": self.soql, "locator": self.locator,
                           "started": self.started.isoformat(),
                           "newest": self.newest.isoformat() if self.newest else None, "taken": self.taken})

    @classmethod
    def loads(cls, text: str) -> Checkpoint:
        raw = json.loads(text)
        return cls(raw["job_id"], raw["soql"], raw["locator"], dt.datetime.fromisoformat(raw["started"]),
                   dt.datetime.fromisoformat(raw["newest"]) if raw.get("newest") else None, int(raw["taken"]))


@dataclass(frozen=True)
class Page:
    """Records of a first read and what to save with them."""

    records: list[dict[str, Any]]
    #: where to resume after this page; None once the read is complete
    checkpoint: Checkpoint | None
    #: when the read began, and the newest SystemModstamp read so far (this page included)
    started: dt.datetime
    newest: dt.datetime | None

    @property
    def cursor(self) -> dt.datetime:
        """The cursor to save after the last page: the newest change seen, never after the read began."""
        return self.started if self.newest is None else min(self.newest, self.started)


class FirstRead:
    """The first read of one object: REST below the bulk threshold, else a resumable Bulk API 2.0 job."""

    def __init__(self, client: SalesforceClient, sobject: str, query: Query, clock: Clock, page_records: int):
        self.client = client
        self.sobject = sobject
        self.query = query
        self.clock = clock
        self.page_records = page_records

    def pages(self, saved: Checkpoint | None,
              on_job: Callable[[Checkpoint], None] = lambda c: None) -> Iterator[Page]:
        """The pages still to take, resuming from `saved`; `on_job` is told of a new job before any page is read."""
        if saved is not None and saved.soql != str(self.query):
            log.warning("the first read of %s was interrupted with other fields (the mapping changed); reading it "
                        "again from the start", self.sobject)
        elif saved is not None:
            resumed = self._bulk(saved)
            try:
                first = next(resumed)
            except (NotFound, BulkJobFailed, StopIteration) as exc:
                # deleted (older than seven days), failed or aborted: its results are gone
                log.warning("the first read of %s cannot resume Salesforce bulk query job %s (%s); reading %s "
                            "again from the start (the %d records already taken in are skipped when they come "
                            "again)", self.sobject, saved.job_id, _first_line(exc) if str(exc) else "no page left",
                            self.sobject, saved.taken)
            else:
                log.info("resuming the first read of %s: bulk query job %s, %d records already taken in",
                         self.sobject, saved.job_id, saved.taken)
                yield first
                yield from resumed
                return
        started = self.clock.now()
        total = self.client.count(self.query, include_deleted=True)
        if total <= self.client.settings.bulk_threshold:
            records = list(self.client.query_all(self.query))
            yield Page(records, None, started, max((modstamp(r) for r in records), default=None))
            return
        job = self.client.bulk_query(self.query, include_deleted=True, max_records=self.page_records)
        checkpoint = Checkpoint(job.job_id, str(self.query), None, started)
        on_job(checkpoint)
        yield from self._bulk(checkpoint)

    def _bulk(self, checkpoint: Checkpoint) -> Iterator[Page]:
        job = self.client.resume_bulk_query(checkpoint.job_id, checkpoint.locator, max_records=self.page_records)
        newest, taken = checkpoint.newest, checkpoint.taken
        for page in job.pages():
            newest = max([*(modstamp(r) for r in page.records), *([newest] if newest else [])], default=None)
            taken += len(page.records)
            after = None if page.next_locator is None else Checkpoint(
                checkpoint.job_id, checkpoint.soql, page.next_locator, checkpoint.started, newest, taken)
            yield Page(page.records, after, checkpoint.started, newest)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


@dataclass
class ChangeBatch:
    """The records one tick read for one object, and the cursor to save once they are taken in.

    A first read carries `first_read` instead of records: the caller takes its pages one by one,
    each with its checkpoint, and saves the last page's `cursor` with the last page.
    """

    object: str
    records: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: dt.datetime | None = None
    first_read: FirstRead | None = None


def change_query(sobject: str, fields: Sequence[str], since: dt.datetime | None,
                 until: dt.datetime | None = None, where: tuple[str, str, Any] | None = None) -> Query:
    """The SOQL of one window, with every value quoted by the SOQL builder."""
    system = [f for f in SYSTEM_FIELDS if f not in WITHOUT.get(sobject, ())]
    wanted = list(dict.fromkeys([*system, *fields]))
    query = select(*wanted).from_(sobject)
    if where is not None:
        query = query.where(*where)
    if since is not None:
        query = query.where("SystemModstamp", ">=", since)
    if until is not None:
        query = query.where("SystemModstamp", "<", until)
    return query.order_by("SystemModstamp", "Id")


def next_cursor(records: Sequence[dict[str, Any]], tick_start: dt.datetime, cursor: dt.datetime) -> dt.datetime:
    """The next window starts at the newest change seen, but never after the tick began, nor before `cursor`."""
    newest = max((modstamp(r) for r in records), default=None)
    return max(tick_start if newest is None else min(newest, tick_start), cursor)


class PollingSource:
    """Reads what changed in Salesforce since a cursor, one object at a time."""

    def __init__(self, client: SalesforceClient, clock: Clock, *, lookback: dt.timedelta = DEFAULT_LOOKBACK,
                 bulk_page_records: int = BULK_PAGE_RECORDS):
        self.client = client
        self.clock = clock
        self.lookback = lookback
        self.bulk_page_records = bulk_page_records

    def poll(self, sobject: str, fields: Sequence[str], cursor: dt.datetime | None,
             where: tuple[str, str, Any] | None = None) -> ChangeBatch:
        """Every record of `sobject` changed at or after `cursor − lookback` (all of them without a cursor).

        Without a cursor nothing is read yet: the batch carries a `FirstRead` whose pages the caller
        takes one by one, resuming a read a crash interrupted.
        """
        if cursor is None:
            # A first read may be large (Bulk API 2.0 above the threshold, after a COUNT).
            query = change_query(sobject, fields, None, where=where)
            return ChangeBatch(sobject, first_read=FirstRead(self.client, sobject, query, self.clock,
                                                             self.bulk_page_records))
        tick_start = self.clock.now()
        # A tick after the first reads a few changes, in one queryAll call rather than a COUNT and a query.
        records = list(self.client.query_all(change_query(sobject, fields, cursor - self.lookback, where=where)))
        return ChangeBatch(sobject, records, next_cursor(records, tick_start, cursor))

    def window(self, sobject: str, fields: Sequence[str], since: dt.datetime, until: dt.datetime,
               where: tuple[str, str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Records changed in [since, until), for bounded runs that leave the daemon's cursors alone."""
        return self.client.read(change_query(sobject, fields, since, until, where), include_deleted=True)
