"""Bill-to and sold-to accounts an order names are recorded once per (account, role, related
account), whichever batch names them again, on both stores."""
from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.importer import import_document, parse
from connector.jobs import JobContext, JobRunner
from connector.store import schema as t
from connector.store.db import open_store

sys.path.insert(0, str(Path(__file__).parent))
from store_support import store_url  # noqa: E402

CLOCK = FrozenClock(dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc))


def _doc(orders: list[tuple[str, str | None, str | None]]) -> dict:
    """Orders of account M: (order id, bill-to, sold-to)."""
    return {"accounts": [{"id": a, "name": f"Account {a}"} for a in ("M", "B", "S", "B2")],
            "products": [{"id": "SEAT", "name": "Seat", "provisioning": "subscription", "list_price": "100",
                          "price_period": "month"}],
            "orders": [{"id": order, "account": "M", "owner": "Ann", "booked_on": "2023-01-01", "currency": "USD",
                        **({"bill_to": bill_to} if bill_to else {}), **({"sold_to": sold_to} if sold_to else {}),
                        "lines": [{"id": f"L-{order}", "action": "new", "product": "SEAT",
                                   "subscription": f"S-{order}", "quantity": 1, "unit_price": "100",
                                   "start": "2023-01-01", "end": "2023-12-31"}]}
                       for order, bill_to, sold_to in orders]}


def _import(engine, doc: dict, batch_size: int) -> None:
    calendar, settings = StandardFiscalCalendar(1), EngineSettings()
    runner = JobRunner(engine, JobContext(calendar, settings), CLOCK)
    import_document(engine, parse(json.dumps(doc), "doc"), "doc", calendar, settings, CLOCK, runner,
                    batch_size=batch_size)


def _links(engine) -> list[tuple]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(t.account_links)))


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_each_link_is_recorded_once_with_the_order_that_first_named_it_in_its_batch(tmp_path, store):
    def check(url: str) -> None:
        engine = open_store(url)
        try:
            # one batch: O-1 and O-2 name the same bill-to; O-2, the batch's last, is recorded
            _import(engine, _doc([("O-1", "B", None), ("O-2", "B", "S")]), batch_size=10)
            assert _links(engine) == [("M", "bill_to", "B", "O-2"), ("M", "sold_to", "S", "O-2")]
            # batches of one order: a link already stored is kept as it is, a new one is added
            _import(engine, _doc([("O-3", "B", "S"), ("O-4", "B2", None), ("O-5", "B2", "S")]), batch_size=1)
            assert _links(engine) == [("M", "bill_to", "B", "O-2"), ("M", "bill_to", "B2", "O-4"),
                                      ("M", "sold_to", "S", "O-2")]
        finally:
            engine.dispose()

    with store_url(store, tmp_path) as url:
        check(url)
