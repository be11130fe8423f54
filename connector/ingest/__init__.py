"""Taking Salesforce changes in (SPEC section 2): mirror, map, and activate Salesforce-origin orders.

A batch of changed records is taken in one transaction with the cursor that follows it, so a
crash either keeps both or neither. Records already taken in (same Id, same or older
SystemModstamp) are skipped. A record that cannot be mapped goes to the quarantine with the
reason and does not block the others; changing it in Salesforce brings it back in.

Orders are activated in the engine once Salesforce shows them Activated: the engine never
blocks or reverses the Salesforce activation, it follows it.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterable, Protocol, Sequence

from pydantic import ValidationError
from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from connector.clock import Clock
from connector.engine import checks
from connector.engine.activation import OrderRejected, activate
from connector.engine.fiscal import FiscalCalendar
from connector.engine.model import Account, PricePeriod, Product, Provisioning
from connector.engine.settings import EngineSettings
from connector.errors import FiscalCalendarError, Problem, SkippableError
from connector.jobs import JobOutcome, JobRunner
from connector import orders
from connector.orders import LineDoc
from connector.sources.poll import ChangeBatch, Checkpoint, FirstRead, is_deleted, modstamp
from connector.store import repository as repo
from connector.store import schema as t
from connector.salesforce.ids import salesforce_id_18 as salesforce_id_18  # its home before reports needed it
from connector.store.schema import DRAFT
from connector.writers.outbox import enqueue, enqueue_activation
from connector.ingest.calendar import StoreCalendar, salesforce_calendar
from connector.ingest.records import (_json_default, _mirror, _mirror_stamps, load_cursor, mirrored, quarantine,
                                      release, remember_owner_name, save_cursor)
from connector.ingest.salesforce_orders import (CURRENCY_HINT, _held_uses, _revive, checked_order, line_values,
                                                model_problems, order_input, order_values, resolve_items)

__all__ = [
    "CURRENCY_HINT", "FIRST_READ", "PARENT_FIELD", "Ingestor", "Mappings", "StoreCalendar", "TakeResult",
    "checked_order", "line_values", "load_cursor", "mirrored", "model_problems", "order_input", "order_values",
    "quarantine", "release", "remember_owner_name", "resolve_items", "salesforce_calendar", "salesforce_id_18",
    "save_cursor",
]

log = logging.getLogger(__name__)

#: Where the checkpoint of an unfinished first read is kept (meta key prefix; the object follows).
FIRST_READ = "first_read:"
#: Objects whose records are mirrored under their parent, to assemble orders from later.
PARENT_FIELD = {"OrderItem": "order", "QuoteLineItem": "quote", "Quote": "opportunity", "Order": "account"}


class Mappings(Protocol):
    """What ingest needs from the field mappings (connector.mapping)."""

    def fields(self, sobject: str) -> list[str]: ...

    def read(self, sobject: str, record: dict[str, Any]) -> dict[str, Any] | None: ...


@dataclass
class TakeResult:
    """What taking one batch did."""

    object: str
    taken: int = 0
    skipped: int = 0
    deleted: int = 0
    echoes: int = 0
    quarantined: list[tuple[str, str]] = field(default_factory=list)


class Ingestor:
    """Takes change batches into the store and activates Salesforce-origin orders in the engine."""

    def __init__(self, store: Engine, mappings: Mappings, settings: EngineSettings, clock: Clock,
                 runner: JobRunner, calendar: Callable[[], FiscalCalendar], *,
                 sync_drafts: bool = False):
        self.store = store
        self.mappings = mappings
        self.settings = settings
        self.clock = clock
        self.runner = runner
        self.calendar = calendar
        self.sync_drafts = sync_drafts
        #: the integration user's Id: records it last modified that the connector wrote are echoes
        self.own_user_id: str | None = None

    # -- taking batches ------------------------------------------------------------------------

    def take(self, batch: ChangeBatch, *, cursor_object: str | None = None) -> TakeResult:
        """Mirror and map one batch; save the cursor with it (unless `cursor_object` is None and no cursor)."""
        result = TakeResult(batch.object)
        if batch.first_read is not None:
            return self._take_first_read(batch.first_read, batch.object, cursor_object, result)
        now = self.clock.now()
        with self.store.begin() as conn:
            self.take_records(conn, batch.object, batch.records, result, now)
            if cursor_object is not None and batch.next_cursor is not None:
                save_cursor(conn, cursor_object, batch.next_cursor, now)
        return result

    def _take_first_read(self, first_read: FirstRead, sobject: str, cursor_object: str | None,
                         result: TakeResult) -> TakeResult:
        """Take a first read page by page, each in one transaction with the checkpoint to resume after it.

        The bulk job is saved as soon as it exists; each page is saved with the locator of the next;
        the last page with the cursor, the checkpoint then gone. A crash resumes at the first page
        not taken (SPEC section 2; issue 7), a job Salesforce no longer has starts over.
        """
        key = f"{FIRST_READ}{cursor_object}" if cursor_object is not None else None
        saved = None
        if key is not None:
            with self.store.connect() as conn:
                text = repo.get_meta(conn, key)
            saved = Checkpoint.loads(text) if text else None

        def on_job(checkpoint: Checkpoint) -> None:
            if key is not None:
                with self.store.begin() as conn:
                    repo.set_meta(conn, key, checkpoint.dumps())

        for page in first_read.pages(saved, on_job):
            now = self.clock.now()
            with self.store.begin() as conn:
                self.take_records(conn, sobject, page.records, result, now)
                if key is None or cursor_object is None:
                    continue
                if page.checkpoint is not None:
                    repo.set_meta(conn, key, page.checkpoint.dumps())
                else:
                    conn.execute(delete(t.meta).where(t.meta.c.key == key))
                    save_cursor(conn, cursor_object, page.cursor, now)
        return result

    def take_records(self, conn: Connection, sobject: str, records: Iterable[dict[str, Any]],
                     result: TakeResult, now: dt.datetime) -> None:
        """Mirror and map records inside the caller's transaction."""
        records = list(records)
        known = _mirror_stamps(conn, sobject, [str(r["Id"]) for r in records])
        ours = repo.written_by_us(conn, sobject, [str(r["Id"]) for r in records]) if self.own_user_id else set()
        for record in records:
            record_id = str(record["Id"])
            stamp = modstamp(record)
            seen = known.get(record_id)
            if seen is not None and stamp <= seen:
                result.skipped += 1  # already taken in: the window overlap or a re-run
                if sobject == "Order" and not is_deleted(record):
                    self._owner_name_of(conn, record, now)  # a backfill fills names of orders taken before
                continue
            known[record_id] = stamp
            if record_id in ours and record.get("LastModifiedById") == self.own_user_id:
                # The connector's own write coming back: remember its timestamp, take nothing in.
                _mirror(conn, sobject, record_id, stamp, is_deleted(record), None, record)
                result.echoes += 1
                continue
            deleted = is_deleted(record)
            try:
                values = None if deleted else self.mappings.read(sobject, record)
            except SkippableError as exc:
                _mirror(conn, sobject, record_id, stamp, deleted, self._parent_of(sobject, record), record)
                quarantine(conn, sobject, record_id, stamp, str(exc), now)
                result.quarantined.append((record_id, str(exc)))
                continue
            parent = None if values is None else values.get(PARENT_FIELD.get(sobject, ""), None)
            _mirror(conn, sobject, record_id, stamp, deleted, parent, record)
            release(conn, sobject, record_id, now)
            result.deleted += deleted
            result.taken += 1
            if values is None or deleted:
                continue
            handler = getattr(self, f"_take_{sobject.lower()}", None)
            if handler is not None:
                problem = handler(conn, values)
                if problem:
                    quarantine(conn, sobject, record_id, stamp, problem, now)
                    result.quarantined.append((record_id, problem))

    def _owner_name_of(self, conn: Connection, record: dict[str, Any], now: dt.datetime) -> None:
        """Keep the owner's name of an order already taken in (its mapping may give it)."""
        try:
            values = self.mappings.read("Order", record)
        except SkippableError:
            return
        if values:
            remember_owner_name(conn, values.get("owner"), values.get("owner_name"), now)

    def _parent_of(self, sobject: str, record: dict[str, Any]) -> str | None:
        """The parent Id of a record that does not map, read from its mapping's parent field alone.

        Kept so that a draft order with an item that does not map is held, not synced without it.
        """
        target = PARENT_FIELD.get(sobject)
        reading = getattr(self.mappings, "reading", None)
        if target is None or reading is None:
            return None
        spec = reading(sobject).fields.get(target)
        value = record.get(spec.source) if spec is not None and spec.source else None
        return str(value) if value else None

    def _reason(self, sobject: str, problems: Sequence[Problem]) -> str:
        """Problems of a record as a quarantine reason, each engine field followed by its Salesforce field."""
        reading = getattr(self.mappings, "reading", None)
        spec = reading(sobject).fields if reading is not None else {}
        out = []
        for problem in problems:
            where = problem.where
            for name in re.findall(r"field (\w+)", where):
                source = spec[name].source if name in spec else None
                if source:
                    where = where.replace(f"field {name}", f"field {name} ({sobject}.{source})", 1)
            out.append(f"{where}: {problem.message}")
        return "; ".join(out)

    def _take_account(self, conn: Connection, values: dict[str, Any]) -> str | None:
        account = Account(values["id"], values.get("name") or values["id"], values.get("bill_cycle_day"))
        problems = checks.account_problems(account)
        if problems:
            return self._reason("Account", problems)  # held: the engine keeps the last good version
        repo.upsert_accounts(conn, [account])
        return None

    def _take_product2(self, conn: Connection, values: dict[str, Any]) -> str | None:
        try:
            product = Product(values["id"], values.get("name") or values["id"],
                              Provisioning(values["provisioning"]), Decimal(values.get("list_price") or 0),
                              PricePeriod(values["price_period"]))
        except (KeyError, ValueError, ArithmeticError) as exc:
            return f"product cannot be used by the engine: {exc}"
        problems = checks.product_problems(product)
        if problems:
            return self._reason("Product2", problems)
        repo.upsert_products(conn, [product])
        return None

    def _take_order(self, conn: Connection, values: dict[str, Any]) -> str | None:
        """An order's own values are checked when it is taken in; its lines when it is activated."""
        remember_owner_name(conn, values.get("owner"), values.get("owner_name"), self.clock.now())
        try:
            _, problems = checked_order(values, [])
        except SkippableError as exc:
            return str(exc)
        return self._reason("Order", problems) or None

    def _take_orderitem(self, conn: Connection, values: dict[str, Any]) -> str | None:
        """An order item's own values, through the order model's line (its order is checked whole when activated)."""
        given = line_values(values)
        try:
            line = orders.line_input(LineDoc.model_validate(given))
        except ValidationError as exc:
            return self._reason("OrderItem", model_problems(given, exc)) or None
        # the place is the record itself: drop the `line <id>` its order's reason would start with
        problems = [Problem(p.where.removeprefix(f"line {line.id}").lstrip(", ") or "record", p.message)
                    for p in checks.line_problems(line)]
        return self._reason("OrderItem", problems) or None

    def _take_period(self, conn: Connection, values: dict[str, Any]) -> str | None:
        if str(values.get("type", "Month")) != "Month":
            return None  # only monthly periods make the fiscal calendar (SPEC section 8)
        problems = []
        for name in ("start", "end"):
            try:
                checks.check_day(values.get(name), name)
            except ValueError as exc:
                problems.append(Problem(f"field {name}", str(exc)))
        try:
            checks.check_period(values.get("start"), values.get("end"))
        except ValueError as exc:
            problems.append(Problem("field end", str(exc)))
        if problems:
            return self._reason("Period", problems)  # a calendar with a reversed month would misplace rows
        before = conn.execute(select(t.fiscal_periods.c.start, t.fiscal_periods.c.end)
                              .where(t.fiscal_periods.c.id == values["id"])).first()
        if before is not None and (before.start, before.end) != (values["start"], values["end"]):
            # A new period only extends the calendar; a moved one changes rows already written.
            log.warning("fiscal period %s moved from %s..%s to %s..%s in Salesforce; run `revsync regenerate "
                        "arr` to rebuild the ARR rows on the new calendar", values["id"], before.start,
                        before.end, values["start"], values["end"])
        conn.execute(delete(t.meta).where(t.meta.c.key == "periods_taken_at"))
        conn.execute(insert(t.meta).values(key="periods_taken_at", value=self.clock.now().isoformat()))
        conn.execute(delete(t.fiscal_periods).where(t.fiscal_periods.c.id == values["id"]))
        conn.execute(insert(t.fiscal_periods).values(
            id=values["id"], start=values["start"], end=values["end"],
            fiscal_year=values.get("fiscal_year"), quarter=values.get("quarter"), label=values.get("label")))
        return None

    # -- orders from won opportunities (orgs without automation of their own) ------------------

    def orders_from_won_quotes(self, now: dt.datetime) -> int:
        """Queue an order for each Closed Won opportunity whose primary quote has no order yet.

        SPEC section 2: where the org has no automation, the connector creates the order and its
        items from the quote's lines and activates it in Salesforce at once; the next poll reads
        it back and it is ingested like any other Salesforce-origin order. The writes go through
        the outbox (external ids `quote:<quote id>` and the quote line ids), so a retry or a
        second look never creates a second order.
        """
        with self.store.begin() as conn:
            orders = [json.loads(d) for d in conn.execute(select(t.sf_records.c.data).where(
                t.sf_records.c.object == "Order", t.sf_records.c.is_deleted.is_(False))).scalars()]
            with_order = {str(o.get("OpportunityId")) for o in orders if o.get("OpportunityId")}
            queued = set(conn.execute(select(t.outbox.c.external_id).where(
                t.outbox.c.object == "Order", t.outbox.c.kind == "order")).scalars())
            entries = []
            for raw in mirrored(conn, "Opportunity"):
                try:
                    opp = self.mappings.read("Opportunity", raw)
                except SkippableError:
                    continue  # quarantined when it was taken in; it blocks only itself
                if not opp or not opp.get("is_won") or not opp.get("synced_quote") or opp["id"] in with_order:
                    continue
                key = f"quote:{opp['synced_quote']}"
                if key in queued:
                    continue
                try:
                    lines = [v for v in (self.mappings.read("QuoteLineItem", r)
                                         for r in mirrored(conn, "QuoteLineItem", parent=opp["synced_quote"])) if v]
                except SkippableError:
                    continue  # a quote line that cannot be mapped holds back this opportunity only
                if not lines:
                    continue  # the quote's lines have not been read yet: next cycle
                start = min(l["start"] for l in lines if l.get("start")) if any(l.get("start") for l in lines) \
                    else opp.get("close_date")
                entries.append(("Order", key, "order", key, {
                    "id": key, "account": opp["account"], "owner": opp.get("owner"), "start": start,
                    "status": "draft", "opportunity": opp["id"], "quote": opp["synced_quote"]}))
                entries += [("OrderItem", l["id"], "order", key, {
                    "id": l["id"], "order": key, "quote_line": l["id"], "product": l["product"],
                    "quantity": l.get("quantity"),
                    "unit_price": l.get("unit_price"), "start": l.get("start"), "end": l.get("end"),
                    "item": l.get("subscription"), "action": l.get("action") or "new",
                    "billing_frequency": l.get("billing_frequency") or "month",
                    "evergreen": bool(l.get("evergreen"))}) for l in lines]
                entries.append(("Order", key, "activate", key, {"id": key}))
            enqueue(conn, entries, now)
        return sum(1 for e in entries if e[2] == "activate")

    # -- draft orders of primary quotes (SPEC section 2, `sync_draft_orders_with_primary_quotes`) -----

    def take_drafts(self) -> list[str]:
        """Sync Draft orders that are the primary orders of their quotes into the engine, as drafts.

        A draft is the mapped order with its mapped items, checked the way the engine takes an
        order but not activated; it is synced again each time the order or one of its items is
        saved in Salesforce, and dropped once the order is no longer a primary Draft (activated
        orders go through `ready_orders`). One that does not map is quarantined with the reason.
        Without the setting, Draft orders are only mirrored. Returns the orders synced.
        """
        if not self.sync_drafts:
            return []
        now = self.clock.now()
        synced = []
        with self.store.begin() as conn:
            primary = set()
            for raw in mirrored(conn, "Opportunity"):
                try:
                    opp = self.mappings.read("Opportunity", raw)
                except SkippableError:
                    continue
                if opp and opp.get("synced_quote"):
                    primary.add(opp["synced_quote"])
            kept = {r.id: r.system_modstamp for r in conn.execute(
                select(t.sf_records.c.id, t.sf_records.c.system_modstamp).where(t.sf_records.c.object == DRAFT))}
            held = {r.record_id: r.system_modstamp for r in conn.execute(
                select(t.quarantine.c.record_id, t.quarantine.c.system_modstamp)
                .where(t.quarantine.c.object == "Order", t.quarantine.c.released_at.is_(None)))}
            live = set()
            for raw in mirrored(conn, "Order"):
                try:
                    data = self.mappings.read("Order", raw)
                except SkippableError:
                    continue  # quarantined when it was taken in
                if not data or str(data.get("status", "")).lower() != "draft" or data.get("quote") not in primary:
                    continue
                live.add(data["id"])
                items = mirrored(conn, "OrderItem", parent=data["id"])
                # an item saved without touching its order is a save of the draft too
                stamp = max([modstamp(raw), *(modstamp(i) for i in items)])
                if kept.get(data["id"]) == stamp or held.get(data["id"]) == stamp:
                    continue
                try:
                    lines = [v for v in (self.mappings.read("OrderItem", i) for i in items) if v is not None]
                    lines = resolve_items(lines, self._written_items(conn, lines))
                    order_input(data, lines)
                except SkippableError as exc:
                    quarantine(conn, "Order", data["id"], stamp, str(exc), now)
                    continue
                _mirror(conn, DRAFT, data["id"], stamp, False, data.get("quote"), {"order": data, "lines": lines})
                release(conn, "Order", data["id"], now)
                synced.append(data["id"])
            gone = set(kept) - live
            if gone:
                conn.execute(delete(t.sf_records).where(t.sf_records.c.object == DRAFT,
                                                        t.sf_records.c.id.in_(sorted(gone))))
        return synced

    # -- activating orders ---------------------------------------------------------------------

    def _item_objects(self) -> list[str]:
        """The Salesforce objects the connector writes engine items to (by the write mappings of `Item`)."""
        try:
            return sorted({m.object for m in self.mappings  # type: ignore[attr-defined]
                           if m.direction == "write" and m.record == "Item"})
        except TypeError:  # mappings that are not a MappingSet: nothing written to resolve
            return []

    def _written_items(self, conn: Connection, items: Sequence[dict[str, Any]]) -> dict[str, str]:
        """Engine item ids by the Salesforce Id of the record the connector wrote for them, for these lines.

        An admin fills a change line's subscription with the Salesforce Id of the Subscription__c
        (or Asset, Entitlement) record the connector wrote: its engine id is in `sf_ids`.
        """
        named = {str(i["subscription"]) for i in items if i.get("subscription")}
        wanted = {salesforce_id_18(v): v for v in named if salesforce_id_18(v)}
        objects = self._item_objects()
        if not wanted or not objects:
            return {}
        ids = sorted(wanted)
        out: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            for row in conn.execute(select(t.sf_ids.c.sf_id, t.sf_ids.c.external_id).where(
                    t.sf_ids.c.object.in_(objects), t.sf_ids.c.sf_id.in_(ids[i:i + 500]))):
                out[wanted[row.sf_id]] = row.external_id
        return out

    def ready_orders(self, conn: Connection) -> list[dict[str, Any]]:
        """Mirrored Salesforce orders that are Activated there and not yet in the engine."""
        rows = conn.execute(select(t.sf_records.c.id, t.sf_records.c.data, t.sf_records.c.system_modstamp)
                            .where(t.sf_records.c.object == "Order", t.sf_records.c.is_deleted.is_(False))).all()
        taken = set(conn.execute(select(t.orders.c.id)).scalars())
        # Orders left to the workers, as they were when left (a later change is taken again)
        staged = dict(conn.execute(select(t.activation_queue.c.order_id, t.activation_queue.c.system_modstamp)).all())
        taken |= {r.id for r in rows if r.id in staged and staged[r.id] >= r.system_modstamp}
        # Orders the connector wrote (engine-origin) come back through polling: never take them
        # for Salesforce-origin orders (echo suppression).
        taken |= set(conn.execute(select(t.sf_ids.c.sf_id).join(t.orders, t.orders.c.id == t.sf_ids.c.external_id)
                                  .where(t.sf_ids.c.object == "Order")).scalars())
        quarantined = {r.record_id: (r.system_modstamp, r.last_seen) for r in conn.execute(
            select(t.quarantine.c.record_id, t.quarantine.c.system_modstamp, t.quarantine.c.last_seen)
            .where(t.quarantine.c.object == "Order", t.quarantine.c.released_at.is_(None)))}
        # An order is often held for a record it uses (its product, its account): when such a
        # record is released, held orders are tried again even though they did not change.
        # Other events that can unblock a held order: another order activated (the subscription
        # it changes now exists), fiscal periods taken in (its dates are now covered), or the
        # write-back learning the Salesforce Id of a record it wrote (a line names it: the order
        # was entered while the answer of that write was lost).
        events = [conn.execute(select(func.max(t.quarantine.c.released_at))
                               .where(t.quarantine.c.object != "Order")).scalar(),
                  conn.execute(select(func.max(t.orders.c.activated_at))).scalar()]
        for key in ("periods_taken_at", repo.SF_IDS_LEARNT_AT):
            at = conn.execute(select(t.meta.c.value).where(t.meta.c.key == key)).scalar()
            if at:
                events.append(dt.datetime.fromisoformat(at))
        events = [e for e in events if e is not None]
        released = max(events) if events else None
        out = []
        for row in rows:
            if row.id in taken:
                continue
            if row.id in quarantined:
                stamp, held_at = quarantined[row.id]
                if (stamp >= row.system_modstamp
                        and (released is None or released <= held_at)):
                    continue  # waits for the record, or one it uses, to change in Salesforce
            raw = json.loads(row.data)
            try:
                data = self.mappings.read("Order", raw)
            except SkippableError:
                continue  # quarantined when it was taken in
            if data is None or str(data.get("status", "")).lower() != "activated":
                continue
            out.append(data | {"_modstamp": row.system_modstamp,
                               "_activated": str(raw.get("ActivatedDate") or "")})
        # Salesforce's activation order is the engine's: categories and changes depend on it.
        out.sort(key=lambda o: (o["_activated"], o["id"]))
        return out

    def activate_orders(self, orders: Sequence[dict[str, Any]],
                        items_of: Callable[[list[str]], dict[str, list[dict[str, Any]] | SkippableError]]
                        ) -> list[JobOutcome]:
        """Activate Salesforce-activated orders in the engine, quarantining those that cannot be.

        `items_of(order_ids)` returns each order's mapped items (read fresh from Salesforce by the
        caller, so an order is never activated with items that had not yet been polled), or the
        error of an item that cannot be mapped.
        """
        if self.runner.deferred:
            return self.stage_activations(orders, items_of)
        if not orders:
            return self.runner.run_pending()  # jobs a crash left behind
        items = items_of([o["id"] for o in orders])
        now = self.clock.now()
        calendar = self.calendar()
        with self.store.begin() as conn:
            accounts = repo.load_accounts(conn)
            products = repo.load_products(conn)
            ledger = repo.load_ledger(conn)
            activations, hashes = [], {}
            written = self._written_items(conn, [i for found in items.values() if not isinstance(found, SkippableError)
                                                 for i in found])
            for data in orders:
                try:
                    found = items.get(data["id"], [])
                    if isinstance(found, SkippableError):
                        raise found  # an item that cannot be mapped holds its order
                    order = order_input(data, resolve_items(found, written))
                    activation = activate(order, ledger, products, accounts, calendar, self.settings)
                except (OrderRejected, SkippableError, FiscalCalendarError) as exc:
                    reason = str(exc) + _held_uses(conn, data, found)
                    quarantine(conn, "Order", data["id"], data["_modstamp"], reason, now)
                    continue
                ledger.apply(activation)
                activations.append(activation)
                release(conn, "Order", order.id, now)
                hashes[order.id] = f"salesforce:{data['_modstamp'].isoformat()}"
            stored = repo.save_activations(conn, activations, origin="salesforce", hashes=hashes,
                                           customer_names={a.id: a.name for a in accounts.values()}, now=now)
            if self.runner.ctx.write_back:
                enqueue_activation(conn, activations, "salesforce", now)
        # Every pending job, not only the new orders': a crash between committing activations and
        # running their jobs leaves jobs that no later activation would pick up.
        return self.runner.run_pending(known=stored)


    # -- activation by workers (`[workers] enabled`, PostgreSQL: connector.workers) ------------------

    def stage_activations(self, orders: Sequence[dict[str, Any]],
                          items_of: Callable[[list[str]], dict[str, list[dict[str, Any]] | SkippableError]]
                          ) -> list[JobOutcome]:
        """Leave these orders (in activation order), with their items read fresh by the caller, to the
        workers: each keeps the activation sequence number given here, whoever activates it."""
        if not orders:
            return []
        items = items_of([o["id"] for o in orders])
        now = self.clock.now()
        with self.store.begin() as conn:
            queued = dict(conn.execute(select(t.activation_queue.c.order_id, t.activation_queue.c.seq).where(
                t.activation_queue.c.order_id.in_([o["id"] for o in orders]))).all())
            seq = repo.next_order_seq(conn)
            for data in orders:
                found = items.get(data["id"], [])
                values = dict(system_modstamp=data["_modstamp"], account=str(data["account"]),
                              data=json.dumps(data, default=_json_default), staged_at=now,
                              items=None if isinstance(found, SkippableError) else json.dumps(found, default=_json_default),
                              error=str(found) if isinstance(found, SkippableError) else None)
                if data["id"] in queued:  # changed in Salesforce since it was left: its newer values, same place
                    conn.execute(update(t.activation_queue).where(t.activation_queue.c.order_id == data["id"])
                                 .values(**values))
                else:
                    conn.execute(insert(t.activation_queue).values(order_id=data["id"], seq=seq, **values))
                    seq += 1
        log.info("%d order(s) left to the workers to activate", len(orders))
        return []

    def activate_staged(self, accounts: Sequence[str], fence: Callable[[Connection], None] | None = None) -> int:
        """Activate the queued orders of these accounts, in the daemon's order, in one transaction that
        ends with `fence` (a worker's claim); returns how many were taken off the queue.

        The same steps as `activate_orders`, against a ledger of these accounts' items only: a
        claim holds whole accounts, and an order changes only its own account's subscriptions.
        """
        with self.store.begin() as conn:
            rows = conn.execute(select(t.activation_queue).where(t.activation_queue.c.account.in_(list(accounts)))
                                .order_by(t.activation_queue.c.seq)).all()
            if not rows:
                return 0
            now = self.clock.now()
            calendar = self.calendar()
            all_accounts = repo.load_accounts(conn)
            products = repo.load_products(conn)
            ledger = repo.load_ledger(conn, accounts)
            staged = [(r, _revive(json.loads(r.data)),
                       SkippableError(r.error) if r.items is None else [_revive(i) for i in json.loads(r.items)])
                      for r in rows]
            written = self._written_items(conn, [i for _, _, found in staged if isinstance(found, list) for i in found])
            activations, hashes, seqs = [], {}, {}
            for row, data, found in staged:
                try:
                    if isinstance(found, SkippableError):
                        raise found
                    order = order_input(data, resolve_items(found, written))
                    activation = activate(order, ledger, products, all_accounts, calendar, self.settings)
                except (OrderRejected, SkippableError, FiscalCalendarError) as exc:
                    quarantine(conn, "Order", data["id"], row.system_modstamp, str(exc) + _held_uses(conn, data, found),
                               now)
                    continue
                ledger.apply(activation)
                activations.append(activation)
                hashes[order.id] = f"salesforce:{row.system_modstamp.isoformat()}"
                seqs[order.id] = row.seq
            # released from the quarantine in one statement (`release`, for every order at once)
            conn.execute(update(t.quarantine).where(t.quarantine.c.object == "Order",
                                                    t.quarantine.c.record_id.in_(list(seqs)),
                                                    t.quarantine.c.released_at.is_(None)).values(released_at=now))
            repo.save_activations(conn, activations, origin="salesforce", hashes=hashes,
                                  customer_names={a.id: a.name for a in all_accounts.values()}, now=now, seqs=seqs)
            if self.runner.ctx.write_back:
                enqueue_activation(conn, activations, "salesforce", now)
            conn.execute(delete(t.activation_queue).where(t.activation_queue.c.order_id.in_([r.order_id for r in rows])))
            if fence is not None:
                fence(conn)
        return len(rows)
