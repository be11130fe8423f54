"""One sync cycle: poll → ingest → activate and background jobs (→ write-back, when configured)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from sqlalchemy import select as select_

from connector.errors import SkippableError
from connector.ingest import Ingestor, Mappings, TakeResult, load_cursor
from connector.jobs import JobOutcome
from connector.salesforce.client import SalesforceClient
from connector.salesforce.soql import select
from connector.sources.poll import PollingSource, change_query
from connector.store import schema as t

log = logging.getLogger(__name__)

#: Order ids per `OrderId IN (...)` query: keeps the SOQL well under its length limit.
IDS_PER_QUERY = 200
#: Extra conditions per object: only monthly periods make the fiscal calendar (SPEC section 8).
FILTERS: dict[str, tuple[str, str, Any]] = {"Period": ("Type", "=", "Month")}


def order_items(client: SalesforceClient, mappings: Mappings, order_ids: Sequence[str],
                order_field: str = "OrderId") -> dict[str, list[dict[str, Any]] | SkippableError]:
    """The mapped items of these orders, read fresh from Salesforce (one call per 200 orders).

    An order with an item that cannot be mapped gets the mapping error instead of its items: that
    order is held, the others go on.
    """
    out: dict[str, list[dict[str, Any]] | SkippableError] = {o: [] for o in order_ids}
    fields = mappings.fields("OrderItem")
    for i in range(0, len(order_ids), IDS_PER_QUERY):
        chunk = list(order_ids[i:i + IDS_PER_QUERY])
        query = select(*dict.fromkeys(["Id", order_field, *fields])).from_("OrderItem").where(order_field, "IN", chunk)
        for record in client.query(query):
            order = str(record[order_field])
            try:
                values = mappings.read("OrderItem", record)
            except SkippableError as exc:
                out[order] = exc
                continue
            found = out.setdefault(order, [])
            if values is not None and not isinstance(found, SkippableError):  # "Load Original Product" lines change nothing
                found.append(values)
    return out


@dataclass
class CycleReport:
    """What one cycle did."""

    taken: list[TakeResult] = field(default_factory=list)
    jobs: list[JobOutcome] = field(default_factory=list)
    activated: list[str] = field(default_factory=list)
    #: Draft orders of primary quotes synced into the engine as drafts
    drafts: list[str] = field(default_factory=list)
    #: orders queued for creation from won opportunities' primary quotes
    orders_queued: int = 0

    @property
    def quarantined(self) -> int:
        return sum(len(r.quarantined) for r in self.taken)


class SyncService:
    """Runs sync cycles over a polling source and an ingestor."""

    def __init__(self, client: SalesforceClient, mappings: Mappings, ingestor: Ingestor, source: PollingSource,
                 objects: Sequence[str], *, create_orders_from_won_quotes: bool = False):
        self.client = client
        self.mappings = mappings
        self.ingestor = ingestor
        self.source = source
        self.objects = list(objects)
        self.create_orders_from_won_quotes = create_orders_from_won_quotes

    def poll_object(self, sobject: str) -> TakeResult:
        """Read one object's changes since its cursor and take them in with the next cursor."""
        with self.ingestor.store.connect() as conn:
            cursor = load_cursor(conn, sobject)
        batch = self.source.poll(sobject, self.mappings.fields(sobject), cursor, where=FILTERS.get(sobject))
        return self.ingestor.take(batch, cursor_object=sobject)

    def take_by_ids(self, sobject: str, ids: Sequence[str]) -> TakeResult:
        """Read these records of one object now (one call per 200 Ids) and take them in.

        The cursor does not move: the next poll sees them again and skips them as already taken.
        """
        result = TakeResult(sobject)
        ids = sorted(set(ids))
        for i in range(0, len(ids), IDS_PER_QUERY):
            query = change_query(sobject, self.mappings.fields(sobject), None).where("Id", "IN", ids[i:i + IDS_PER_QUERY])
            records = list(self.client.query_all(query))
            with self.ingestor.store.begin() as conn:
                self.ingestor.take_records(conn, sobject, records, result, self.ingestor.clock.now())
        return result

    def read_back_orders(self, sf_ids: Sequence[str]) -> CycleReport:
        """Orders the connector has just activated in Salesforce (from won quotes): read them back,
        activate them in the engine and run their jobs, in the pass that created them.

        Engine-origin orders the connector activated are left out: they are the engine's already.
        """
        report = CycleReport()
        with self.ingestor.store.connect() as conn:
            engine_orders = set(conn.execute(
                select_(t.sf_ids.c.sf_id).join(t.orders, t.orders.c.id == t.sf_ids.c.external_id)
                .where(t.sf_ids.c.object == "Order", t.sf_ids.c.sf_id.in_(list(sf_ids)))).scalars())
        wanted = [i for i in sf_ids if i not in engine_orders]
        if not wanted:
            return report
        report.taken.append(self.take_by_ids("Order", wanted))
        report.activated, report.jobs = self.activate_ready()
        return report

    def activate_ready(self) -> tuple[list[str], list[JobOutcome]]:
        """Activate in the engine the orders Salesforce shows Activated that the engine lacks."""
        with self.ingestor.store.connect() as conn:
            ready = self.ingestor.ready_orders(conn)
        outcomes = self.ingestor.activate_orders(
            ready, lambda ids: order_items(self.client, self.mappings, ids))
        return [o["id"] for o in ready], outcomes

    def cycle(self, should_stop: Callable[[], bool] = lambda: False,
              objects: Sequence[str] | None = None) -> CycleReport:
        """One full cycle; `should_stop` is asked between objects (warm shutdown finishes the batch).

        `objects`: poll only these (in the configured order); None polls every configured object. The
        rest of the cycle (orders from won quotes, activation, drafts) runs either way.
        """
        report = CycleReport()
        wanted = self.objects if objects is None else [o for o in self.objects if o in set(objects)]
        for sobject in wanted:
            if should_stop():
                return report
            report.taken.append(self.poll_object(sobject))
            if sobject == "Period":
                refresh = getattr(self.ingestor.calendar(), "refresh", None)
                if refresh is not None:
                    refresh()  # new periods apply to this cycle's activations
        if self.create_orders_from_won_quotes:
            report.orders_queued = self.ingestor.orders_from_won_quotes(self.ingestor.clock.now())
        report.activated, report.jobs = self.activate_ready()
        report.drafts = self.ingestor.take_drafts()
        return report
