"""Big-object capacity: what the org holds, what is about to be written, and the months ahead.

A Salesforce org holds a fixed number of big-object records, all big objects together: "up to 1
million records" in Enterprise, Performance, Unlimited and Developer Editions, more with an add-on
licence (Big Objects Implementation Guide, "Big Objects Best Practices":
https://developer.salesforce.com/docs/atlas.en-us.bigobjects.meta/bigobjects/big_object_considerations.htm).
revsync writes one row per recurring order line and fiscal period into each of two big objects
(ArrByPeriod__b, ArrByPeriodByCustomer__b), so 100,000 subscriptions of 24 months fill a default
org four times over.

Salesforce does not report big-object usage through the API: the REST `limits` resource lists API
calls, Bulk API batches and jobs, streaming events, e-mails and data and file storage in MB, and
nothing for big objects (REST API Developer Guide, "Limits":
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_limits.htm; the
`GET /limits` body recorded from a Developer Edition org in shared/salesforce-samples/limits.json
has no big-object entry either). Big objects take no `COUNT()` outside Async SOQL. So the capacity
is configured (`[salesforce] big_object_capacity`, default 1,000,000), and what the org holds is
counted here: the rows revsync has written and not deleted, per line and big object
(`big_object_rows`, kept by the writer in the transaction that records each write). Rows other
applications keep in the org's big objects are not seen: lower the capacity by them.

Before a flush inserts big-object rows, the writer checks held + about to be written ≤ capacity;
when it is not, nothing is sent (the outbox entries stay NEW), the check is recorded for
`revsync status`, the daemon shows it as its state and `sync --once` exits 5.
"""
from __future__ import annotations

import collections
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from sqlalchemy import Connection, delete, func, insert, select, update

from connector.engine.dates import ONE_DAY, add_months
from connector.engine.evergreen import horizon
from connector.engine.fiscal import FiscalCalendar
from connector.engine.settings import EngineSettings
from connector.errors import ConfigError, Problem
from connector.store import schema as t
from connector.store.repository import get_meta, set_meta

#: a default org's big-object records, all big objects together (see the module's docstring)
DEFAULT_CAPACITY = 1_000_000
#: the big objects revsync writes ARR rows to (connector.writers.outbox.BIG_OBJECTS)
BIG_OBJECTS = ("ArrByPeriod__b", "ArrByPeriodByCustomer__b")
#: meta key: the writer's last capacity check (JSON), for `revsync status`
META_KEY = "big_object_capacity"
FORECAST_KEYS = ("month", "big_object", "period_rows", "new_rows", "total_rows", "org_rows", "capacity",
                 "headroom")
_CHUNK = 500


def configured_capacity(salesforce: Mapping[str, Any] | None, source: str = "the configuration") -> int:
    """`[salesforce] big_object_capacity` (DEFAULT_CAPACITY when absent), for the commands that do
    not log in (forecast, status); `revsync sync` has it validated with the rest of the table."""
    value = (salesforce or {}).get("big_object_capacity", DEFAULT_CAPACITY)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(source, [Problem("[salesforce].big_object_capacity",
                                           f"must be a whole number of records, 0 or more, not {value!r}")],
                          hint="set it to the big-object records your org can hold (1000000 by default)")
    return value


@dataclass(frozen=True)
class CapacityCheck:
    """The org's big-object rows before a write: held, about to be written, and the capacity."""

    #: rows revsync has written to the org's big objects and not deleted (all big objects)
    held: int
    #: rows the due outbox entries would add (a line's rows less those it already has there)
    pending: int
    capacity: int

    @property
    def total(self) -> int:
        return self.held + self.pending

    @property
    def exceeded(self) -> bool:
        return self.total > self.capacity

    def message(self) -> str:
        """What is wrong and what to do, in one paragraph (status line, daemon state, stderr)."""
        if not self.exceeded:
            return (f"big objects: {self.total:,} of {self.capacity:,} records after this write "
                    f"({self.held:,} held, {self.pending:,} to write)")
        return (f"ARR rows held back: writing them would put {self.total:,} records in the org's big objects "
                f"({self.held:,} written by revsync + {self.pending:,} to write), over its capacity of "
                f"{self.capacity:,} ([salesforce] big_object_capacity). Nothing was sent; the rows wait in "
                "the outbox. Raise the org's big-object capacity with Salesforce (an add-on licence) and set "
                "big_object_capacity to it, or keep fewer periods (a shorter [engine] evergreen_horizon_months "
                "for evergreen lines); then run `revsync sync` again. `revsync forecast` shows the rows per "
                "month ahead.")

    def as_dict(self, at: dt.datetime) -> dict[str, Any]:
        return {"state": "exceeded" if self.exceeded else "ok", "held": self.held, "pending": self.pending,
                "capacity": self.capacity, "checked_at": at.isoformat(), "message": self.message()}


# -- what revsync has written (kept by the writer) ----------------------------------------------

def held(conn: Connection) -> dict[str, int]:
    """Rows revsync has written and not deleted, by big object."""
    return {o: int(n) for o, n in conn.execute(
        select(t.big_object_rows.c.object, func.sum(t.big_object_rows.c.rows)).group_by(t.big_object_rows.c.object))}


def held_by_line(conn: Connection, pairs: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """Rows written per (big object, line) for these pairs (absent: none)."""
    pks = sorted({pk for _, pk in pairs})
    out: dict[tuple[str, int], int] = {}
    b = t.big_object_rows.c
    for i in range(0, len(pks), _CHUNK):
        out.update(((r.object, r.line_pk), r.rows) for r in conn.execute(
            select(b.object, b.line_pk, b.rows).where(b.line_pk.in_(pks[i:i + _CHUNK]))))
    return out


def rows_of_lines(conn: Connection, pks: Iterable[int]) -> dict[int, int]:
    """ARR rows per line in the store: what each big object holds of the line once it is written."""
    keys = sorted(set(pks))
    out: dict[int, int] = {}
    for i in range(0, len(keys), _CHUNK):
        out.update((pk, n) for pk, n in conn.execute(
            select(t.arr_rows.c.line_pk, func.count()).where(t.arr_rows.c.line_pk.in_(keys[i:i + _CHUNK]))
            .group_by(t.arr_rows.c.line_pk)))
    return out


def wrote(conn: Connection, sobject: str, line_pk: int, rows: int) -> None:
    """A line's rows reached a big object: it now holds `rows` of them (an insert replaces the
    rows with the same index, one per line and period, so the last write's count is what is held)."""
    b = t.big_object_rows.c
    conn.execute(delete(t.big_object_rows).where(b.object == sobject, b.line_pk == line_pk))
    conn.execute(insert(t.big_object_rows).values(object=sobject, line_pk=line_pk, rows=rows))


def deleted(conn: Connection, sobject: str, line_pk: int, rows: int) -> None:
    """Rows of a line deleted from a big object (an old fiscal calendar's, `regenerate arr`)."""
    b = t.big_object_rows.c
    conn.execute(update(t.big_object_rows).where(b.object == sobject, b.line_pk == line_pk)
                 .values(rows=func.max(b.rows - rows, 0) if conn.dialect.name == "sqlite"
                         else func.greatest(b.rows - rows, 0)))


def check(conn: Connection, due: Iterable[tuple[str, int]], capacity: int) -> CapacityCheck:
    """Held + what the due (big object, line) pairs would add, against the capacity."""
    pairs = set(due)
    rows = rows_of_lines(conn, (pk for _, pk in pairs))
    already = held_by_line(conn, pairs)
    pending = sum(max(rows.get(pk, 0) - already.get((o, pk), 0), 0) for o, pk in pairs)
    return CapacityCheck(sum(held(conn).values()), pending, capacity)


def record(conn: Connection, result: CapacityCheck, at: dt.datetime) -> None:
    """Keep the writer's last check for `revsync status` (which reads the store only)."""
    set_meta(conn, META_KEY, json.dumps(result.as_dict(at)))


def last_exceeded(conn: Connection) -> bool:
    """True when the writer's last check held rows back."""
    last = get_meta(conn, META_KEY)
    return bool(last) and json.loads(last).get("state") == "exceeded"


def status(conn: Connection, capacity: int) -> dict[str, Any]:
    """`revsync status`'s `big_objects`: rows held per big object, the configured capacity, and the
    writer's last check (`state` exceeded while rows are held back)."""
    by_object = held(conn)
    last = get_meta(conn, META_KEY)
    return {"held": {o: by_object.get(o, 0) for o in BIG_OBJECTS}, "held_total": sum(by_object.values()),
            "capacity": capacity, "last_check": json.loads(last) if last else None}


def status_line(info: dict[str, Any]) -> str:
    """One line for `revsync status`: rows held of the capacity, and what to do when rows are held back."""
    line = f"big objects: {info['held_total']:,} of {info['capacity']:,} records held (revsync's rows)"
    last = info.get("last_check")
    if last and last.get("state") == "exceeded":
        line += f"; at {last['checked_at']}: {last['message']}"
    return line


# -- the months ahead ---------------------------------------------------------------------------

def _month(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _evergreen_last_periods(conn: Connection) -> collections.Counter:
    """Evergreen lines the daily extension moves on, counted by the start of their last ARR row."""
    l, i, r = t.order_lines.c, t.items.c, t.arr_rows.c
    query = (select(l.pk, func.max(r.period_start))
             .select_from(t.order_lines.join(t.items, i.id == l.item).join(t.arr_rows, r.line_pk == l.pk))
             .where(l.evergreen.is_(True), i.evergreen.is_(True), i.status == "active", l.end == i.end)
             .group_by(l.pk))
    return collections.Counter(last for _, last in conn.execute(query))


def forecast(conn: Connection, calendar: FiscalCalendar, settings: EngineSettings, today: dt.date,
             months: int, capacity: int) -> list[dict[str, Any]]:
    """Rows per big object for each month from the one holding `today`, for the current subscriptions.

    Per (month, big object): `period_rows`, its rows for the fiscal periods starting that month;
    `new_rows`, the rows written to it during the month (the first month: every row not yet in
    Salesforce, then the evergreen extension); `total_rows`, what it holds at the month's end once
    all is written. Per month: `org_rows` (both big objects), `capacity`, `headroom` (negative:
    over). Evergreen lines still running are extended daily to `evergreen_horizon_months` past the
    day, one row per fiscal period entering the horizon (within the fiscal calendar); ended and
    cancelled lines keep their rows; new orders are not foreseen.
    """
    first = _month(today)
    starts = [add_months(first, k) for k in range(months)]
    index = {m: k for k, m in enumerate(starts)}
    # rows in the store (what the big objects hold once every write is done), by period start month
    per_month = collections.Counter()
    total_now = 0
    for start, n in conn.execute(select(t.arr_rows.c.period_start, func.count()).group_by(t.arr_rows.c.period_start)):
        total_now += n
        if _month(start) in index:
            per_month[index[_month(start)]] += n
    # the evergreen extension: period p joins a line in the first month whose last day's horizon
    # reaches into it (the extension makes rows up to the period holding the horizon); periods past
    # the fiscal calendar's last one are never made
    added = collections.Counter()
    reach = [horizon(add_months(m, 1) - ONE_DAY, settings) for m in starts]
    for last_start, lines in _evergreen_last_periods(conn).items():
        period = calendar.next_period(calendar.period_of(last_start))
        while period is not None and period.start <= reach[-1]:
            month = next(k for k, r in enumerate(reach) if r >= period.start)
            added[month] += lines
            if _month(period.start) in index:
                per_month[index[_month(period.start)]] += lines
            period = calendar.next_period(period)
    written = held(conn)
    out = []
    totals = {o: written.get(o, 0) + max(total_now - written.get(o, 0), 0) for o in BIG_OBJECTS}
    for k, m in enumerate(starts):
        rows = []
        for o in BIG_OBJECTS:
            new = added[k] + (max(total_now - written.get(o, 0), 0) if k == 0 else 0)
            totals[o] += added[k]
            rows.append({"month": m.strftime("%Y-%m"), "big_object": o, "period_rows": per_month[k],
                         "new_rows": new, "total_rows": totals[o]})
        org = sum(totals.values())
        out.extend(r | {"org_rows": org, "capacity": capacity, "headroom": capacity - org} for r in rows)
    return out


def first_over(rows: list[dict[str, Any]]) -> str | None:
    """The first month whose org rows exceed the capacity, or None."""
    return next((r["month"] for r in rows if r["headroom"] < 0), None)
