"""An import interrupted half-way is completed by importing the same file again: nothing lost, nothing twice."""
import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.importer import import_document, parse
from connector.jobs import JobContext, JobRunner
from connector.store import repository as repo
from connector.store import schema as t
from connector.store.db import open_store


def document(orders: int) -> dict:
    return {
        "accounts": [{"id": f"A{i}", "name": f"Customer {i}"} for i in range(orders)],
        "products": [{"id": "SEAT", "name": "Seat", "provisioning": "subscription", "list_price": "100",
                      "price_period": "month"}],
        "orders": [{"id": f"O{i}", "account": f"A{i}", "booked_on": "2023-01-01", "currency": "USD",
                    "lines": [{"id": f"L{i}", "action": "new", "product": "SEAT", "quantity": 1 + i % 7,
                               "start": "2023-01-15", "term_months": 12}]} for i in range(orders)],
    }


def counts(store) -> dict[str, int]:
    with store.connect() as conn:
        return {table.name: conn.execute(select(func.count()).select_from(table)).scalar()
                for table in (t.orders, t.order_lines, t.items, t.item_versions, t.arr_rows, t.jobs,
                              t.order_metrics, t.line_metrics)}


def test_an_interrupted_import_is_finished_by_importing_again(tmp_path, monkeypatch):
    calendar, settings = StandardFiscalCalendar(1), EngineSettings()
    clock = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    text = json.dumps(document(25))

    clean = open_store(f"sqlite:///{tmp_path / 'clean.db'}")
    import_document(clean, parse(text, "f"), "f", calendar, settings, clock,
                    JobRunner(clean, JobContext(calendar, settings), clock), batch_size=10)

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    runner = JobRunner(store, JobContext(calendar, settings), clock)
    real = repo.save_activations
    calls = {"n": 0}

    def dies_on_the_second_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("the machine went down")
        return real(*args, **kwargs)

    monkeypatch.setattr(repo, "save_activations", dies_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        import_document(store, parse(text, "f"), "f", calendar, settings, clock, runner, batch_size=10)
    half = counts(store)
    assert half["orders"] == 10 and half["arr_rows"] == 0  # the first batch is whole; no jobs ran

    monkeypatch.setattr(repo, "save_activations", real)
    result = import_document(store, parse(text, "f"), "f", calendar, settings, clock, runner, batch_size=10)
    assert len(result.activated) == 15 and len(result.already_imported) == 10
    assert not result.failed_jobs
    assert counts(store) == counts(clean)
    clean.dispose()
    store.dispose()
