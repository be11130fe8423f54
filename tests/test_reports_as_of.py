"""The subscriptions report gives the quantity in service on --as-of, not only the latest one."""
import datetime as dt
import json
from importlib.resources import files

import pytest

from connector import reports
from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.importer import import_document, parse
from connector.jobs import JobContext, JobRunner
from connector.store.db import open_store


@pytest.fixture
def worked(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    calendar, settings = StandardFiscalCalendar(1), EngineSettings()
    clock = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    doc = json.loads(files("connector.demo").joinpath("worked_example.json").read_text())
    import_document(store, parse(json.dumps(doc), "worked example"), "worked example", calendar, settings, clock,
                    JobRunner(store, JobContext(calendar, settings), clock))
    yield store
    store.dispose()


@pytest.mark.parametrize("day,quantity,mrr,status", [
    ("2023-01-01", "16", "0.00", "pending"),     # before service: the latest quantity, no MRR yet
    ("2023-03-31", "10", "1000.00", "active"),   # before the upsell of 2023-04-01
    ("2023-04-01", "16", "1600.00", "active"),   # the upsell's first day
    ("2024-01-15", "16", "0.00", "expired"),     # the day after the end
], ids=["pending", "before-upsell", "upsell-day", "expired"])
def test_s001_on_a_day(worked, day, quantity, mrr, status):
    with worked.connect() as conn:
        rows = {r["subscription"]: r for r in reports.subscriptions(conn, dt.date.fromisoformat(day))}
    s001 = rows["S-001"]
    assert (str(s001["quantity"]), str(s001["mrr"]), s001["status"]) == (quantity, mrr, status)
