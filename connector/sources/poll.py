"""Polling change source: `SystemModstamp >= cursor − lookback`, through queryAll so deletes show.

The window is closed at its start (`>=`): records that share the cursor's timestamp are read again
rather than lost (dlt's strict `>` loses them), and the caller drops what it has already taken in
by (Id, SystemModstamp). The cursor saved after a tick never passes the tick's start, so a record
committed during the tick with an earlier timestamp is read by the next one (singer's signpost).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from dateutil.parser import isoparse

from connector.clock import Clock
from connector.salesforce.client import SalesforceClient
from connector.salesforce.soql import Query, select

#: Fields every polled object is read with, whatever the mapping asks for (LastModifiedById tells
#: the connector's own writes from others', for echo suppression).
SYSTEM_FIELDS = ("Id", "SystemModstamp", "IsDeleted", "LastModifiedById")
#: System fields some objects lack: Period rows are maintained by Salesforce's fiscal year settings,
#: have no IsDeleted and no LastModifiedById (Object Reference, "Period").
WITHOUT = {"Period": frozenset({"IsDeleted", "LastModifiedById"})}
DEFAULT_LOOKBACK = dt.timedelta(minutes=5)


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


@dataclass
class ChangeBatch:
    """The records one tick read for one object, and the cursor to save once they are taken in."""

    object: str
    records: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: dt.datetime | None = None


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


class PollingSource:
    """Reads what changed in Salesforce since a cursor, one object at a time."""

    def __init__(self, client: SalesforceClient, clock: Clock, *, lookback: dt.timedelta = DEFAULT_LOOKBACK):
        self.client = client
        self.clock = clock
        self.lookback = lookback

    def poll(self, sobject: str, fields: Sequence[str], cursor: dt.datetime | None,
             where: tuple[str, str, Any] | None = None) -> ChangeBatch:
        """Every record of `sobject` changed at or after `cursor − lookback` (all of them without a cursor)."""
        tick_start = self.clock.now()
        since = None if cursor is None else cursor - self.lookback
        query = change_query(sobject, fields, since, where=where)
        # A first read may be large (Bulk API 2.0 above the threshold, after a COUNT); a tick after
        # that reads a few changes, in one queryAll call rather than a COUNT and a query.
        records = list(self.client.read(query, include_deleted=True) if cursor is None
                       else self.client.query_all(query))
        # The next window starts at the newest change seen, but never after this tick began.
        newest = max((modstamp(r) for r in records), default=None)
        next_cursor = tick_start if newest is None else min(newest, tick_start)
        if cursor is not None:
            next_cursor = max(next_cursor, cursor)
        return ChangeBatch(sobject, records, next_cursor)

    def window(self, sobject: str, fields: Sequence[str], since: dt.datetime, until: dt.datetime,
               where: tuple[str, str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Records changed in [since, until), for bounded runs that leave the daemon's cursors alone."""
        return self.client.read(change_query(sobject, fields, since, until, where), include_deleted=True)
