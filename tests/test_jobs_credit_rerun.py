"""Re-running a credit review that drew nothing (empty balance) does not draw a later grant."""
import datetime as dt
import json
from decimal import Decimal

from sqlalchemy import select

from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.importer import import_document, parse
from connector.jobs import JobContext, JobRunner, credit_review
from connector.store import repository as repo
from connector.store import schema as t
from connector.store.db import open_store

DOC = {
    "accounts": [{"id": "A", "name": "Customer A"}],
    "products": [{"id": "P", "name": "Seat", "provisioning": "subscription", "list_price": "10",
                  "price_period": "month"}],
    "credits": [{"account": "A", "currency": "USD", "amount": "100"}],
    "orders": [
        {"id": "O-1", "account": "A", "booked_on": "2023-01-01", "currency": "USD",
         "lines": [{"id": "L1", "action": "new", "product": "P", "quantity": 100, "start": "2023-01-01",
                    "term_months": 12, "credit_eligible": True}]},
        {"id": "O-2", "account": "A", "booked_on": "2023-01-01", "currency": "USD",
         "lines": [{"id": "L2", "action": "new", "product": "P", "quantity": 1, "start": "2023-01-01",
                    "term_months": 12, "credit_eligible": True}]},
    ],
}


def test_a_review_that_drew_nothing_is_not_redone_after_a_new_grant(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    calendar, settings = StandardFiscalCalendar(1), EngineSettings()
    clock = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    runner = JobRunner(store, JobContext(calendar, settings), clock)
    import_document(store, parse(json.dumps(DOC), "first"), "first", calendar, settings, clock, runner)
    top_up = {"credits": [{"id": "top-up", "account": "A", "currency": "USD", "amount": "100"}]}
    import_document(store, parse(json.dumps(top_up), "second"), "second", calendar, settings, clock, runner)

    with store.begin() as conn:  # run O-2's (succeeded) review again
        credit_review(conn, repo.load_orders(conn, ["O-2"]), runner.ctx)

    with store.connect() as conn:
        drawn = conn.execute(select(t.credit_drawdowns.c.order_id, t.credit_drawdowns.c.amount)).all()
    store.dispose()
    assert drawn == [("O-1", Decimal(100))]
