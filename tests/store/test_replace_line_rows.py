"""Order and subscription metrics are replaced line by line on both stores: lines that had rows
lose them, lines that had none (found by index probes on PostgreSQL) are written, others are left."""
from __future__ import annotations

import datetime as dt
import json
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.model import OrderMetric
from connector.engine.settings import EngineSettings
from connector.importer import import_document, parse
from connector.jobs import JobContext, JobRunner
from connector.store import repository as repo
from connector.store import schema as t
from connector.store.db import open_store

sys.path.insert(0, str(Path(__file__).parent))
from store_support import store_url  # noqa: E402

CLOCK = FrozenClock(dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc))
DOC = {"accounts": [{"id": "M", "name": "Multi"}],
       "products": [{"id": "SEAT", "name": "Seat", "provisioning": "subscription", "list_price": "100",
                     "price_period": "month"}],
       "orders": [{"id": f"O-{n}", "account": "M", "owner": "Ann", "booked_on": "2023-01-01", "currency": "USD",
                   "lines": [{"id": f"L-{n}", "action": "new", "product": "SEAT", "subscription": f"L-{n}",
                              "quantity": 1, "unit_price": "100", "start": "2023-01-01", "end": "2023-06-30"}]}
                  for n in (1, 2, 3)]}


def _check(url: str) -> None:
    engine = open_store(url)
    try:
        calendar, settings = StandardFiscalCalendar(1), EngineSettings()
        runner = JobRunner(engine, JobContext(calendar, settings), CLOCK)
        import_document(engine, parse(json.dumps(DOC), "doc"), "doc", calendar, settings, CLOCK, runner)
        with engine.begin() as conn:
            pk = dict(conn.execute(select(t.order_lines.c.id, t.order_lines.c.pk)).all())
            before = {r.line_pk for r in conn.execute(select(t.order_metrics.c.line_pk))}
            assert before == set(pk.values())
            assert repo.lines_with_arr_rows(conn, [pk["L-1"], pk["L-3"], 10_000]) == {pk["L-1"], pk["L-3"]}
            # keys close together (one range of the index on PostgreSQL): a line between them that
            # was not asked about is not in the answer, a key past the last line has no rows
            assert repo.lines_with_arr_rows(conn, [pk["L-1"], pk["L-3"]]) == {pk["L-1"], pk["L-3"]}
            assert repo.lines_with_arr_rows(conn, [pk["L-2"], pk["L-3"], pk["L-3"] + 1]) == {pk["L-2"], pk["L-3"]}
            assert repo.lines_with_arr_rows(conn, []) == set()
            day = dt.date(2023, 1, 1)
            # L-1 gets one new metric, L-2 none (its rows go), 10,000 is a line with no rows at all
            repo.replace_order_metrics(conn, [pk["L-1"], pk["L-2"], 10_000],
                                       [(pk["L-1"], OrderMetric("L-1", "TCV", Decimal("7.5"), day, day, "Test"))])
            repo.replace_line_metrics(conn, [(pk["L-2"], Decimal("1"), Decimal("2"))])
        with engine.connect() as conn:
            metrics = sorted((r.line_pk, r.metric, r.amount) for r in conn.execute(select(t.order_metrics)))
            lines = {r.line_pk: (r.mrr, r.tcv) for r in conn.execute(select(t.line_metrics))}
        assert [m for m in metrics if m[0] == pk["L-1"]] == [(pk["L-1"], "TCV", Decimal("7.5"))]
        assert not [m for m in metrics if m[0] == pk["L-2"]]
        assert len([m for m in metrics if m[0] == pk["L-3"]]) > 1  # untouched
        assert lines[pk["L-2"]] == (Decimal("1"), Decimal("2")) and len(lines) == 3
    finally:
        engine.dispose()


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_metrics_replaced_line_by_line(tmp_path, store):
    with store_url(store, tmp_path) as url:
        _check(url)
