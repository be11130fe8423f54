"""The outbox: every write to Salesforce, recorded with the engine change that causes it.

Entries are written in the same transaction as that change (activation, a background job), so
nothing is lost between the two. One writer per org sends them:

- records (Subscription__c, Asset, Entitlement, Account metric fields) by sObject Collections
  upsert on their external id, at most 200 a call, the latest payload per record only;
- engine-origin orders as Draft orders with their items, then, once the engine has activated the
  order and its jobs have succeeded, the status Activated (SPEC section 2);
- ARR-by-period rows into both big objects through Bulk API 2.0 ingest jobs; a job with failures
  is sent again whole (big-object inserts are idempotent on the index). After `regenerate arr`,
  the rows of the old fiscal calendar are deleted first, by SOAP deleteByExample. Before any row
  is inserted, the org's big-object capacity is checked (connector.capacity): rows that would not
  fit are all held back, nothing sent, their entries left NEW, and the flush says so.

An entry is PENDING while its call is in flight: after a crash (or a lost answer) it is sent
again. A record that may already exist is looked up by its external id first and, when it does,
sent without its create-only fields (Salesforce refuses them on update); big-object rows are
re-inserted on the same index, or deleted again (deleting an absent row succeeds). Per-record
failures keep Salesforce's message in FAILED entries for `revsync outbox`; lock errors stay NEW
for the next flush.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, NamedTuple, Sequence

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, update

from connector import capacity as cap
from connector.clock import Clock
from connector.engine.model import ActivatedLine, Activation
from connector.errors import SkippableError, TransientError
from connector.mapping.apply import UnresolvedReference
from connector.projections import account_values, arr_rows_of_line, arr_rows_of_lines, item_values
from connector.salesforce.errors import BulkJobFailed, RequestRejected
from connector.salesforce.records import CsvRows
from connector.salesforce.soql import select as soql
from connector.store import schema as t
from connector.store.repository import SF_IDS_LEARNT_AT, set_meta
from connector.store.schema import JobStatus, OutboxState

log = logging.getLogger(__name__)

RECORD_OBJECTS = {"subscription": "Subscription__c", "asset": "Asset", "entitlement": "Entitlement"}
BIG_OBJECTS = ("ArrByPeriod__b", "ArrByPeriodByCustomer__b")
#: outbox kind of the rows of an old fiscal calendar to delete from a big object (`regenerate arr`)
BIG_DELETE = "big_delete"
#: objects whose records the connector creates: their engine ids are never Salesforce Ids (a
#: Salesforce-origin subscription's engine id is its order item's Id, not a Subscription__c Id)
OWN_OBJECTS = frozenset(RECORD_OBJECTS.values())
#: a big-object job that keeps failing is given up after this many sends (then FAILED, listed)
MAX_BIG_OBJECT_ATTEMPTS = 5

#: entry states still to be sent; every other state is final for the writer
DUE = (OutboxState.NEW, OutboxState.PENDING)
COLLECTION_SIZE = 200
#: external ids per `IN (...)` lookup: keeps the SOQL far below its length limit
LOOKUP_SIZE = 200
#: rows per Bulk API 2.0 ingest job (well under its 100 MB upload limit)
BULK_ROWS = 100_000
#: Salesforce Id key prefixes of the objects whose engine ids may already be Salesforce Ids
_SF_ID_LENGTHS = (15, 18)


def _unknown_outcome(entries: Sequence[Any]) -> bool:
    """True when an earlier send of this record may have reached Salesforce without its answer coming back."""
    return any(e.state == OutboxState.PENDING or e.attempts > 0 for e in entries)


_REFUSED = re.compile(r"Unable to create/update fields: ([^.]*)\.")


def _refused(error: Any) -> set[str]:
    """The fields an INVALID_FIELD_FOR_INSERT_UPDATE error names (its `fields`, else its message)."""
    if error.fields:
        return set(error.fields)
    found = _REFUSED.search(error.message or "")
    return {f.strip() for f in found.group(1).split(",")} if found else {"?"}


@dataclass
class _Pending:
    """One record about to be upserted: its outbox entries, engine values and payload."""

    entries: list
    values: dict[str, Any]
    payload: dict[str, Any]
    #: sent with its create-only fields (the record is not known to exist)
    creating: bool


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(f"cannot put {type(value).__name__} in an outbox payload")


def enqueue(conn: Connection, entries: Iterable[tuple[str, str, str, str | None, dict[str, Any]]],
            now: dt.datetime) -> int:
    """Add outbox entries (object, external id, kind, order id, engine values) in the caller's transaction."""
    rows = [dict(object=o, external_id=x, kind=k, order_id=order, payload=json.dumps(p, default=_default),
                 state=OutboxState.NEW, attempts=0, created_at=now, updated_at=now) for o, x, k, order, p in entries]
    if rows:
        conn.execute(insert(t.outbox), rows)
    return len(rows)


class ActivatedOrder(NamedTuple):
    """What the outbox queues of an order's immediate step."""

    id: str
    account: str
    owner: str | None
    #: the subscriptions, assets and entitlements it changed
    items: Sequence[str]
    lines: Sequence[ActivatedLine]


def enqueue_activation(conn: Connection, activations: Sequence[Activation], origin: str, now: dt.datetime) -> None:
    """Outbox entries of the immediate step: provisioned items, account metrics, engine-origin orders.

    The metrics job sends the items again with their MRR, ARR and TCV; the writer sends only the
    latest payload of a record, so that costs no extra call when both are waiting.
    """
    enqueue_activated(conn, [ActivatedOrder(a.order.id, a.order.account, a.order.owner, [i.id for i in a.items],
                                            a.lines) for a in activations], origin, now)


def enqueue_activated(conn: Connection, orders: Sequence[ActivatedOrder], origin: str, now: dt.datetime) -> None:
    """`enqueue_activation` of orders as the store wrote them (an import's writing pass has no
    `Activation`: `repository.save_stored_activations`)."""
    as_of = now.date()
    items = sorted({i for o in orders for i in o.items})
    accounts = sorted({o.account for o in orders})
    entries = [(RECORD_OBJECTS[v["kind"]], v["id"], "record", None, v) for v in item_values(conn, items, as_of)]
    entries += [("Account", v["id"], "record", None, v) for v in account_values(conn, accounts, as_of)]
    if origin == "engine":
        # SPEC section 2: written as a Draft order with its items; Activated only once the
        # engine has finished (the writer checks the order's jobs before it sends that).
        for o in orders:
            entries.append(("Order", o.id, "order", o.id, {"id": o.id, "account": o.account, "owner": o.owner,
                                                           "start": min(l.start for l in o.lines),
                                                           "status": "draft"}))
            entries += [("OrderItem", l.id, "order", o.id, {
                "id": l.id, "order": o.id, "product": l.product, "quantity": l.quantity,
                "unit_price": l.unit_price, "start": l.start, "end": None if l.evergreen else l.end,
                "item": l.item, "action": l.action.value, "billing_frequency": l.billing_frequency.value,
                "evergreen": l.evergreen}) for l in o.lines]
            entries.append(("Order", o.id, "activate", o.id, {"id": o.id}))
    enqueue(conn, entries, now)


def looks_like_sf_id(value: str | None) -> bool:
    """True for a 15- or 18-character Salesforce Id (letters and digits only)."""
    return bool(value) and len(value) in _SF_ID_LENGTHS and value.isalnum()


@dataclass
class FlushReport:
    """What one flush sent."""

    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    #: Salesforce Ids of orders this flush set to Activated (read back in the same pass)
    activated_orders: list[str] = field(default_factory=list)
    #: the big-object capacity check of this flush (None when no rows were due); when it is
    #: `exceeded`, no row was sent
    capacity: cap.CapacityCheck | None = None

    def add(self, bucket: dict[str, int], sobject: str, n: int = 1) -> None:
        bucket[sobject] = bucket.get(sobject, 0) + n


class OutboxWriter:
    """Sends outbox entries to Salesforce in batches; one writer per org."""

    def __init__(self, store: Engine, client: Any, mappings: Any, clock: Clock, *,
                 big_object_capacity: int = cap.DEFAULT_CAPACITY):
        self.store = store
        self.client = client
        self.mappings = mappings
        self.clock = clock
        self.big_object_capacity = big_object_capacity
        #: the last flush's capacity check when it held rows back (None otherwise)
        self.held_back: cap.CapacityCheck | None = None
        self._pricebook: str | None = None
        self._ids: dict[tuple[str, str], str] | None = None

    # -- helpers -------------------------------------------------------------------------------

    def resolve(self, sobject: str, engine_id: str) -> str | None:
        """The Salesforce Id of a record: written by the connector (sf_ids), or already an Id."""
        if self._ids is None:  # read once per flush; every write of this flush adds to it
            with self.store.connect() as conn:
                self._ids = {(r.object, r.external_id): r.sf_id for r in conn.execute(select(t.sf_ids))}
        found = self._ids.get((sobject, engine_id))
        if found:
            return found
        if sobject in OWN_OBJECTS:
            # An engine item is written as the object of its kind, so a reference to a subscription
            # (an ARR row's Subscription__c) names the Asset or Entitlement record of a recurring
            # asset or entitlement item: the one record its ARR belongs to (item ids are unique
            # across kinds). Reading a change line's subscription accepts all three the same way.
            for other in sorted(OWN_OBJECTS - {sobject}):
                found = self._ids.get((other, engine_id))
                if found:
                    return found
            return None  # records the connector creates have no Id until it has written them
        return engine_id if looks_like_sf_id(engine_id) else None

    def _claim(self, ids: Sequence[int]) -> set[int]:
        """Mark the entries about to be sent PENDING; returns those still due, which this writer now holds.

        An entry another writer finished meanwhile (a daemon paused past its lease, then resumed,
        while its successor wrote) is left as it is: its state never goes back, so a superseded
        payload can never become due again.
        """
        batch = uuid.uuid4().hex[:16]
        with self.store.begin() as conn:
            ids = list(ids)
            conn.execute(update(t.outbox).where(t.outbox.c.id.in_(ids), t.outbox.c.state.in_(DUE)).values(
                state=OutboxState.PENDING, batch=batch, attempts=t.outbox.c.attempts + 1,
                updated_at=self.clock.now()))
            return set(conn.execute(select(t.outbox.c.id).where(t.outbox.c.id.in_(ids),
                                                                t.outbox.c.batch == batch)).scalars())

    def _finish(self, conn: Connection, ids: Sequence[int], state: str, message: str | None = None,
                sf_id: str | None = None) -> None:
        """Record the outcome of entries still due; one already finished (by another writer) is left alone."""
        conn.execute(update(t.outbox).where(t.outbox.c.id.in_(list(ids)), t.outbox.c.state.in_(DUE)).values(
            state=state, last_message=message, sf_id=sf_id, updated_at=self.clock.now()))

    def _finish_now(self, ids: Sequence[int], state: str, message: str | None = None) -> None:
        """`_finish` in a transaction of its own: entries settled before anything is sent for them."""
        with self.store.begin() as conn:
            self._finish(conn, ids, state, message)

    def _remember(self, conn: Connection, sobject: str, external_id: str, sf_id: str) -> bool:
        """Keep a record's Salesforce Id; True when it was not known (the caller then calls `_learned`)."""
        if self._ids is not None and self._ids.get((sobject, external_id)) == sf_id:
            return False
        conn.execute(delete(t.sf_ids).where(t.sf_ids.c.object == sobject, t.sf_ids.c.external_id == external_id))
        conn.execute(insert(t.sf_ids).values(object=sobject, external_id=external_id, sf_id=sf_id))
        if self._ids is not None:
            self._ids[(sobject, external_id)] = sf_id
        return True

    def _learned(self, conn: Connection) -> None:
        """Salesforce Ids were learnt in this transaction: orders held because a line named one of
        them (a change order entered while the answer of the write was lost) are tried again."""
        set_meta(conn, SF_IDS_LEARNT_AT, self.clock.now().isoformat())

    def _due(self, kinds: Sequence[str]) -> list:
        with self.store.connect() as conn:
            return conn.execute(select(t.outbox).where(t.outbox.c.state.in_(DUE),
                                                       t.outbox.c.kind.in_(list(kinds)))
                                .order_by(t.outbox.c.id)).all()

    # -- flushing ------------------------------------------------------------------------------

    def flush(self) -> FlushReport:
        """Send everything due, records first (big-object rows and order items refer to them)."""
        report = FlushReport()
        self._ids = None
        self._records(report, kinds=("record",))
        self._orders(report)
        self._activations(report)
        self._big_objects(report)
        self.held_back = report.capacity if report.capacity is not None and report.capacity.exceeded else None
        return report

    def left(self) -> dict[str, int]:
        """Entries not yet written, by state (what `sync --once` reports when it cannot finish)."""
        with self.store.connect() as conn:
            return {state: n for state, n in conn.execute(
                select(t.outbox.c.state, func.count())
                .where(t.outbox.c.state.in_((OutboxState.NEW, OutboxState.PENDING, OutboxState.FAILED)))
                .group_by(t.outbox.c.state))}

    def _records(self, report: FlushReport, kinds: Sequence[str], objects: Sequence[str] | None = None) -> None:
        due = [e for e in self._due(kinds) if objects is None or e.object in objects]
        by_object: dict[str, dict[str, list]] = {}
        for entry in due:
            by_object.setdefault(entry.object, {}).setdefault(entry.external_id, []).append(entry)
        for sobject, records in by_object.items():
            mapping = self.mappings.writing(sobject)
            # A record whose earlier send may have landed (its answer was lost: a kill, a timeout)
            # may exist already; Salesforce refuses its create-only fields on update
            # (INVALID_FIELD_FOR_INSERT_UPDATE), so ask first, one query for all of them.
            existing: set[str] = set()
            if any(s.create_only for s in mapping.fields.values()):
                existing = self._existing(sobject, mapping.external_id,
                                          [x for x, entries in records.items() if _unknown_outcome(entries)], report)
            items = []
            for external_id, entries in records.items():
                latest = entries[-1]  # the newest payload wins; earlier ones are superseded by it
                values = self._values(sobject, json.loads(latest.payload))
                creating = external_id.casefold() not in existing
                try:
                    payload = self.mappings.write(sobject, values, resolve=self.resolve, creating=creating)
                except SkippableError as exc:
                    waiting = isinstance(exc, UnresolvedReference)
                    self._finish_now([e.id for e in entries], OutboxState.NEW if waiting else OutboxState.FAILED, str(exc))
                    report.add(report.waiting if waiting else report.failed, sobject, len(entries))
                    continue
                items.append(_Pending(entries, values, payload, creating))
            again = self._upsert(sobject, mapping, items, report)
            if again:
                # The record was there after all (an earlier send landed, e.g. one the client
                # repeated after a read timeout): send it once more as an update.
                items = [_Pending(i.entries, i.values, self.mappings.write(
                    sobject, i.values, resolve=self.resolve, creating=False), False) for i in again]
                self._upsert(sobject, mapping, items, report)

    def _existing(self, sobject: str, ext_field: str, external_ids: list[str], report: FlushReport) -> set[str]:
        """Which of these records exist in Salesforce (casefolded external ids; their Ids are remembered)."""
        found: dict[str, str] = {}
        for i in range(0, len(external_ids), LOOKUP_SIZE):
            chunk = external_ids[i:i + LOOKUP_SIZE]
            query = soql("Id", ext_field).from_(sobject).where(ext_field, "IN", chunk)
            found.update({str(r[ext_field]): str(r["Id"]) for r in self.client.query(query)})
            report.calls += 1
        if found:
            with self.store.begin() as conn:
                if any([self._remember(conn, sobject, external_id, sf_id) for external_id, sf_id in found.items()]):
                    self._learned(conn)
        return {x.casefold() for x in found}

    def _upsert(self, sobject: str, mapping: Any, items: list[_Pending], report: FlushReport) -> list[_Pending]:
        """Upsert by external id, 200 a call; returns the creates refused because the record exists."""
        create_only = {t for t, s in mapping.fields.items() if s.create_only}
        again = []
        for i in range(0, len(items), COLLECTION_SIZE):
            claimed = self._claim([e.id for item in items[i:i + COLLECTION_SIZE] for e in item.entries])
            # a record whose newest payload is no longer due was written by another writer since this
            # flush read it: sending what this writer holds would put an older value over a newer one
            chunk = [_Pending([e for e in item.entries if e.id in claimed], item.values, item.payload, item.creating)
                     for item in items[i:i + COLLECTION_SIZE] if item.entries[-1].id in claimed]
            if not chunk:
                continue
            results = self.client.upsert_collection(sobject, mapping.external_id, [item.payload for item in chunk])
            report.calls += 1
            with self.store.begin() as conn:
                learnt = False
                for item, result in zip(chunk, results):
                    ids = [e.id for e in item.entries]
                    if result.success:
                        self._finish(conn, ids, OutboxState.SUCCESS, None, result.id)
                        if result.id:
                            learnt |= self._remember(conn, sobject, item.entries[-1].external_id, result.id)
                        report.add(report.sent, sobject)
                    elif item.creating and create_only and result.errors and all(
                            e.error_code == "INVALID_FIELD_FOR_INSERT_UPDATE" and _refused(e) <= create_only
                            for e in result.errors):
                        again.append(item)  # stays PENDING until it is sent again below
                    else:
                        message = "; ".join(f"{e.error_code}: {e.message}" for e in result.errors)
                        self._finish(conn, ids, OutboxState.NEW if result.transient else OutboxState.FAILED, message)
                        report.add(report.waiting if result.transient else report.failed, sobject)
                if learnt:
                    self._learned(conn)
        return again

    def _values(self, sobject: str, values: dict[str, Any]) -> dict[str, Any]:
        # An owner given as a name (engine-origin orders) is not a Salesforce user: leave it out
        # rather than send a reference that cannot resolve.
        if "owner" in values and not looks_like_sf_id(values.get("owner")):
            values = {k: v for k, v in values.items() if k != "owner"}
        if sobject == "Order" and "pricebook" not in values:
            values = values | {"pricebook": self._standard_pricebook()}
        return values

    def _standard_pricebook(self) -> str | None:
        if self._pricebook is None:
            records = list(self.client.query(soql("Id").from_("Pricebook2").where("IsStandard", "=", True).limit(1)))
            self._pricebook = str(records[0]["Id"]) if records else ""
        return self._pricebook or None

    def _orders(self, report: FlushReport) -> None:
        """Engine-origin orders: the Order (Draft) first, then its items with their price book entries."""
        self._records(report, kinds=("order",), objects=("Order",))
        due = [e for e in self._due(("order",)) if e.object == "OrderItem"]
        if not due:
            return
        products = sorted({json.loads(e.payload)["product"] for e in due})
        entries = self._pricebook_entries(products)
        with self.store.begin() as conn:
            for e in due:
                values = json.loads(e.payload)
                if values.get("pricebook_entry") is None and values["product"] in entries:
                    values["pricebook_entry"] = entries[values["product"]]
                    conn.execute(update(t.outbox).where(t.outbox.c.id == e.id).values(
                        payload=json.dumps(values, default=_default)))
        self._records(report, kinds=("order",), objects=("OrderItem",))

    def _pricebook_entries(self, products: Sequence[str]) -> dict[str, str]:
        pricebook = self._standard_pricebook()
        sf_products = {p: self.resolve("Product2", p) for p in products}
        ids = sorted({v for v in sf_products.values() if v})
        if not pricebook or not ids:
            return {}
        found = {str(r["Product2Id"]): str(r["Id"]) for r in self.client.query(
            soql("Id", "Product2Id").from_("PricebookEntry").where("Pricebook2Id", "=", pricebook)
            .where("Product2Id", "IN", ids))}
        return {p: found[sf] for p, sf in sf_products.items() if sf in found}

    def _activations(self, report: FlushReport) -> None:
        """Set engine-origin orders Activated, only once the engine has finished with them."""
        due = self._due(("activate",))
        ready = []
        with self.store.connect() as conn:
            for e in due:
                jobs_left = conn.execute(select(func.count()).select_from(t.jobs).where(
                    t.jobs.c.order_id == e.order_id, t.jobs.c.status != JobStatus.SUCCEEDED)).scalar()
                parts_left = conn.execute(select(func.count()).select_from(t.outbox).where(
                    t.outbox.c.order_id == e.order_id, t.outbox.c.kind == "order",
                    t.outbox.c.state != OutboxState.SUCCESS)).scalar()
                if jobs_left == 0 and parts_left == 0:
                    ready.append(e)
                else:
                    report.add(report.waiting, "Order")
        if not ready:
            return
        mapping = self.mappings.writing("Order")
        for i in range(0, len(ready), COLLECTION_SIZE):
            chunk = ready[i:i + COLLECTION_SIZE]
            self._claim([e.id for e in chunk])
            payloads = [{"attributes": {"type": "Order"}, mapping.external_id: e.external_id, "Status": "Activated"}
                        for e in chunk]
            results = self.client.upsert_collection("Order", mapping.external_id, payloads)
            report.calls += 1
            with self.store.begin() as conn:
                for e, result in zip(chunk, results):
                    if result.success:
                        self._finish(conn, [e.id], OutboxState.SUCCESS, None, result.id)
                        report.add(report.sent, "Order")
                        if result.id:
                            report.activated_orders.append(result.id)
                    else:
                        message = "; ".join(f"{x.error_code}: {x.message}" for x in result.errors)
                        self._finish(conn, [e.id], OutboxState.NEW if result.transient else OutboxState.FAILED, message)

    def _big_object_deletes(self, report: FlushReport, sobject: str) -> None:
        """Rows of an old fiscal calendar out of a big object (SOAP deleteByExample, by their full index).

        Rows the line still has are never deleted (the insert of the current rows replaces them),
        so an entry sent late, or again after a crash, cannot remove a current row; deleting rows
        that are already gone succeeds, so a resend is harmless.
        """
        due = [e for e in self._due((BIG_DELETE,)) if e.object == sobject]
        if not due:
            return
        index = self.mappings.writing(sobject).index
        templates: list[dict[str, Any]] = []
        owners: list[int] = []
        line_of = {n: int(json.loads(entry.payload)["line_pk"]) for n, entry in enumerate(due)}
        for n, entry in enumerate(due):
            payload = json.loads(entry.payload)
            current = {str(r["period_start"]) for r in self._arr_values(int(payload["line_pk"]))}
            for values in payload["rows"]:
                if str(values["period_start"]) in current:
                    continue
                try:
                    made = self.mappings.write(sobject, self._values(sobject, values), resolve=self.resolve)
                except SkippableError:
                    continue  # it names a record never written to Salesforce: so was the row itself
                templates.append({f: made[f] for f in index})
                owners.append(n)
        self._claim([e.id for e in due])
        failed: dict[int, str] = {}
        try:
            results = self.client.delete_by_example(sobject, templates) if templates else []
            report.calls += -(-len(templates) // COLLECTION_SIZE)
            for n, result in zip(owners, results):
                if not result.success:
                    failed[n] = "; ".join(f"{e.error_code}: {e.message}" for e in result.errors)
        except (TransientError, RequestRejected) as exc:
            failed = {n: str(exc) for n in range(len(due))}
        with self.store.begin() as conn:
            for n, entry in enumerate(due):
                if n not in failed:
                    self._finish(conn, [entry.id], OutboxState.SUCCESS)
                    cap.deleted(conn, sobject, line_of[n], owners.count(n))
                    report.add(report.sent, sobject)
                    continue
                given_up = entry.attempts + 1 >= MAX_BIG_OBJECT_ATTEMPTS
                self._finish(conn, [entry.id], OutboxState.FAILED if given_up else OutboxState.NEW, failed[n])
                report.add(report.failed if given_up else report.waiting, sobject)

    def _capacity(self, report: FlushReport, due: list[tuple[str, int]]) -> bool:
        """Check that the rows of the due (big object, line) pairs fit in the org's big objects;
        False (and recorded) when they do not."""
        if not due:
            # rows held back and since given up (`revsync outbox ignore`): status no longer says so
            with self.store.begin() as conn:
                if cap.last_exceeded(conn):
                    cap.record(conn, cap.check(conn, [], self.big_object_capacity), self.clock.now())
            return True
        with self.store.begin() as conn:
            report.capacity = cap.check(conn, due, self.big_object_capacity)
            cap.record(conn, report.capacity, self.clock.now())
        if not report.capacity.exceeded:
            return True
        log.error("ARR rows held back: the org's big objects cannot hold them",
                  extra={"held": report.capacity.held, "pending": report.capacity.pending,
                         "capacity": report.capacity.capacity})
        for sobject, _ in due:
            report.add(report.waiting, sobject)
        return False

    def _big_objects(self, report: FlushReport) -> None:
        """ARR rows of the lines due, into each big object by Bulk API 2.0; a failed job is resent whole.

        Rows of an old calendar are deleted first (`regenerate arr`); then, unless the rows due
        would not fit in the org's big objects (then none is sent), the rows are inserted.
        """
        for sobject in BIG_OBJECTS:
            self._big_object_deletes(report, sobject)
        all_due = self._due(("big_object",))
        line_of = {e.id: int(json.loads(e.payload)["line_pk"]) for e in all_due}
        if not self._capacity(report, [(e.object, line_of[e.id]) for e in all_due]):
            return
        for sobject in BIG_OBJECTS:
            due = [e for e in all_due if e.object == sobject]
            # whole lines per job, up to BULK_ROWS rows: one job's rows are held at a time, the
            # lines' ARR rows read LOOKUP_SIZE lines a query
            # each row held as its CSV line, made as the row is (a job's records would be ten times the size)
            rows = CsvRows()
            row_entries: list[tuple[Any, int]] = []
            for first in range(0, len(due), LOOKUP_SIZE):
                chunk = due[first:first + LOOKUP_SIZE]
                with self.store.connect() as conn:
                    arr = arr_rows_of_lines(conn, [line_of[e.id] for e in chunk])
                for entry in chunk:
                    try:
                        made = [self.mappings.write(sobject, self._values(sobject, values), resolve=self.resolve)
                                for values in arr.pop(line_of[entry.id], [])]
                    except SkippableError as exc:
                        waiting = isinstance(exc, UnresolvedReference)
                        self._finish_now([entry.id], OutboxState.NEW if waiting else OutboxState.FAILED, str(exc))
                        report.add(report.waiting if waiting else report.failed, sobject)
                        continue
                    if not made:
                        # a line with no ARR rows has none to send: done, no job (a job of such
                        # lines alone would be an empty upload, refused after they were claimed)
                        self._finish_now([entry.id], OutboxState.SUCCESS, "no ARR rows to send")
                        continue
                    if row_entries and len(rows) + len(made) > BULK_ROWS:
                        self._bulk_job(report, sobject, rows, row_entries, line_of)
                        rows, row_entries = CsvRows(), []
                    try:
                        rows.extend(made)
                    except (ValueError, TypeError) as exc:
                        # a row Salesforce could not be sent (the mapping's value for it): this
                        # line's entry fails, listed by `revsync outbox --failed`; the other lines go
                        self._finish_now([entry.id], OutboxState.FAILED,
                                         f"an ARR row of this line cannot be sent to {sobject}: {exc}")
                        report.add(report.failed, sobject)
                        continue
                    row_entries.append((entry, len(made)))
            if row_entries:
                self._bulk_job(report, sobject, rows, row_entries, line_of)

    def _bulk_job(self, report: FlushReport, sobject: str, rows: CsvRows,
                  row_entries: list[tuple[Any, int]], line_of: dict[int, int]) -> None:
        """Insert these lines' rows into a big object in one Bulk API 2.0 job, and record the outcome."""
        entries = [e for e, _ in row_entries]
        self._claim([e.id for e in entries])
        try:
            result = self.client.bulk_ingest(sobject, "insert", rows, fetch_successful=False)
            report.calls += 1
            ok = result.records_failed == 0 and not result.unprocessed
            message = None if ok else (f"{result.records_failed} of {len(rows)} rows failed "
                                       f"(e.g. {result.failed[0].error if result.failed else 'unprocessed'}); "
                                       "the job is sent again whole")
        except (TransientError, BulkJobFailed, RequestRejected) as exc:
            # a job whose answers were lost (its close repeated on a closed job, a job
            # aborted with nothing written): the lines are sent again in a new job
            ok, message = False, str(exc)
        # a job failing again and again (a permanent row error) stops being resent: FAILED,
        # listed by `revsync outbox --failed`, sent again after `revsync outbox retry`
        given_up = not ok and max(e.attempts for e in entries) + 1 >= MAX_BIG_OBJECT_ATTEMPTS
        with self.store.begin() as conn:
            self._finish(conn, [e.id for e in entries],
                         OutboxState.SUCCESS if ok else OutboxState.FAILED if given_up else OutboxState.NEW,
                         message)
            if ok:  # what the org now holds of these lines (connector.capacity)
                for e, n in row_entries:
                    cap.wrote(conn, sobject, line_of[e.id], n)
        report.add(report.sent if ok else report.failed if given_up else report.waiting, sobject, len(entries))

    def _arr_values(self, line_pk: int) -> list[dict[str, Any]]:
        with self.store.connect() as conn:
            return arr_rows_of_line(conn, line_pk)


def retry(store: Engine, clock: Clock, entry_id: int | None = None) -> int:
    """Put FAILED entries (one, or all) back to NEW so the writer sends them again."""
    cond = t.outbox.c.state == OutboxState.FAILED
    if entry_id is not None:
        cond = and_(cond, t.outbox.c.id == entry_id)
    with store.begin() as conn:
        return conn.execute(update(t.outbox).where(cond).values(state=OutboxState.NEW, updated_at=clock.now())).rowcount


def ignore(store: Engine, clock: Clock, entry_id: int) -> int:
    """Give up on one entry: it is never sent (it stays listed as IGNORED)."""
    with store.begin() as conn:
        unsent = (OutboxState.NEW, OutboxState.FAILED, OutboxState.PENDING)
        return conn.execute(update(t.outbox).where(t.outbox.c.id == entry_id, t.outbox.c.state.in_(unsent))
                            .values(state=OutboxState.IGNORED, updated_at=clock.now())).rowcount
