"""Lists of stored rows (jobs, outbox, quarantine) show timestamps as they always did on SQLite: the UTC
wall time without an offset, although the store now reads them back aware (UtcDateTime)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import insert

from connector import reports
from connector.render import to_csv, to_json
from connector.store import schema as t
from connector.store.db import open_store

AT = dt.datetime(2026, 7, 1, 9, 30, 15, tzinfo=dt.timezone.utc)


def test_listed_timestamps_keep_their_text(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(insert(t.accounts), {"id": "A", "name": "A", "tcv": 0})
            conn.execute(insert(t.orders), {
                "id": "O", "seq": 1, "account": "A", "owner": "", "booked_on": AT.date(), "currency": "USD",
                "bill_cycle_day": 1, "origin": "file", "status": "activated", "content_hash": "h",
                "activated_at": AT})
            conn.execute(insert(t.jobs), {"order_id": "O", "kind": "arr_by_period", "status": t.JobStatus.FAILED,
                                          "attempts": 1, "created_at": AT, "updated_at": AT})
            conn.execute(insert(t.outbox), {"object": "Account", "external_id": "A", "kind": "record",
                                            "payload": "{}", "state": t.OutboxState.FAILED, "attempts": 1,
                                            "created_at": AT, "updated_at": AT})
            conn.execute(insert(t.quarantine), {"object": "Order", "record_id": "801", "system_modstamp": AT,
                                                "reason": "bad", "first_seen": AT, "last_seen": AT})
            listed = {"jobs": reports.jobs(conn), "outbox": reports.outbox(conn),
                      "quarantine": reports.quarantined(conn)}
    finally:
        engine.dispose()
    for name, rows in listed.items():
        assert len(rows) == 1, name
        for text in (to_json(rows), to_csv(rows)):
            assert "2026-07-01T09:30:15" in text and "+00:00" not in text, (name, text)
