"""Issue 12, store side: migration 0006 fills `big_object_rows` (what the capacity check counts as
held in the org) from the outbox of a store made before it: a line's rows are held in a big object
once its entry for that big object succeeded."""
from __future__ import annotations

import datetime as dt
import json

from alembic import command
from sqlalchemy import select, text, update

from connector import capacity
from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.importer import import_document, parse
from connector.jobs import JobContext, JobRunner
from connector.store import schema as t
from connector.store.db import _alembic_config, open_store

CLOCK = FrozenClock(dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc))


def _line(lid, start, end):
    return {"id": f"O-{lid}", "account": "M", "owner": "Ann", "booked_on": "2023-01-01", "currency": "USD",
            "lines": [{"id": lid, "action": "new", "product": "SEAT", "subscription": lid, "quantity": 1,
                       "unit_price": "100", "start": start, "end": end}]}


def test_migration_0006_counts_the_rows_already_written(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(url)
    doc = {"accounts": [{"id": "M", "name": "Multi"}],
           "products": [{"id": "SEAT", "name": "Seat", "provisioning": "subscription", "list_price": "100",
                         "price_period": "month"}],
           # 3, 12 and 1 monthly rows
           "orders": [_line("L-1", "2023-01-01", "2023-03-31"), _line("L-2", "2023-01-01", "2023-12-31"),
                      _line("L-3", "2023-02-01", "2023-02-28")]}
    calendar, settings = StandardFiscalCalendar(1), EngineSettings()
    runner = JobRunner(engine, JobContext(calendar, settings, write_back=True, clock=CLOCK), CLOCK)
    import_document(engine, parse(json.dumps(doc), "doc"), "doc", calendar, settings, CLOCK, runner)
    with engine.begin() as conn:
        pk = dict(conn.execute(select(t.order_lines.c.id, t.order_lines.c.pk)).all())
        # L-1 reached both big objects, L-2 one of them; L-3 nothing yet
        for sobject, line in (("ArrByPeriod__b", "L-1"), ("ArrByPeriodByCustomer__b", "L-1"),
                              ("ArrByPeriod__b", "L-2")):
            conn.execute(update(t.outbox).where(t.outbox.c.object == sobject, t.outbox.c.external_id == line)
                         .values(state="SUCCESS"))
    engine.dispose()
    command.downgrade(_alembic_config(url), "0005")  # a store as revsync left it before the capacity check
    check = open_store(url, migrate=False)
    with check.connect() as conn:
        assert "big_object_rows" not in {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master"))}
    check.dispose()
    engine = open_store(url)  # 0006 fills the table from the outbox
    try:
        with engine.connect() as conn:
            rows = {(r.object, r.line_pk): r.rows for r in conn.execute(select(t.big_object_rows))}
            assert rows == {("ArrByPeriod__b", pk["L-1"]): 3, ("ArrByPeriodByCustomer__b", pk["L-1"]): 3,
                            ("ArrByPeriod__b", pk["L-2"]): 12}
            due = [(o, int(json.loads(p)["line_pk"])) for o, p in conn.execute(
                select(t.outbox.c.object, t.outbox.c.payload).where(t.outbox.c.kind == "big_object",
                                                                    t.outbox.c.state == "NEW"))]
            # held 18; to write: L-2 into the second big object (12), L-3 into both (2)
            result = capacity.check(conn, due, 31)
            assert (result.held, result.pending, result.exceeded) == (18, 14, True)
            assert not capacity.check(conn, due, 32).exceeded
    finally:
        engine.dispose()


def test_held_rows_bookkeeping_on_postgresql_and_sqlite(tmp_path):
    """wrote/deleted (a GREATEST on PostgreSQL, a two-argument MAX on SQLite) on both stores."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from store_support import postgres_schema

    def run(url: str) -> None:
        engine = open_store(url)
        try:
            with engine.begin() as conn:
                capacity.wrote(conn, "ArrByPeriod__b", 1, 12)
                capacity.wrote(conn, "ArrByPeriod__b", 1, 14)  # evergreen extended: the last write counts
                capacity.wrote(conn, "ArrByPeriodByCustomer__b", 1, 12)
                capacity.deleted(conn, "ArrByPeriodByCustomer__b", 1, 5)
                capacity.deleted(conn, "ArrByPeriodByCustomer__b", 1, 50)  # deleted again: never below 0
                capacity.deleted(conn, "ArrByPeriod__b", 2, 3)  # nothing written for it: nothing changes
                assert capacity.held(conn) == {"ArrByPeriod__b": 14, "ArrByPeriodByCustomer__b": 0}
        finally:
            engine.dispose()

    run(f"sqlite:///{tmp_path / 'store.db'}")
    with postgres_schema() as url:
        run(url)
