"""A store with the worked example and some trouble in it (a failed write, a failed job, a quarantined
record), the trouble's texts full of HTML as Salesforce may send them."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlalchemy import create_engine, func, select

from connector.store import schema as t

REPO = Path(__file__).resolve().parents[2]
HOSTILE_NAME = 'Customer <b>A</b> & "Sons"'
SF_MESSAGE = "FIELD_CUSTOM_VALIDATION_EXCEPTION: ARR must be <= 1,000,000 <script>alert(1)</script> [ARR__c]"
JOB_ERROR = "<img src=x onerror=alert(2)> division by zero"
QUARANTINE_REASON = "Quantity: value '<i>ten</i>' is not a number"
AT = dt.datetime(2023, 6, 30, 12, 0, tzinfo=dt.timezone.utc)


def worked_example_doc() -> dict:
    """The worked example of connector/demo, with an account name a Salesforce user could type."""
    doc = json.loads((REPO / "connector" / "demo" / "worked_example.json").read_text())
    doc["accounts"][0]["name"] = HOSTILE_NAME
    return doc


def add_trouble(url: str) -> None:
    """What a running sync leaves behind: cursors, API usage, daemon state, and one of each failure."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(t.sync_cursors.insert(), [
            {"object": "Order", "cursor": AT - dt.timedelta(minutes=3), "updated_at": AT},
            {"object": "Account", "cursor": AT - dt.timedelta(seconds=40), "updated_at": AT}])
        conn.execute(t.meta.insert(), [
            {"key": "api_usage", "value": f"1234/15000 at {AT.isoformat()}"},
            {"key": "daemon_state", "value": json.dumps({
                "state": "degraded", "reason": "Salesforce <unreachable>", "next_attempt_at": AT.isoformat(),
                "last_good_cycle_at": (AT - dt.timedelta(minutes=5)).isoformat()})}])
        conn.execute(t.outbox.insert(), [
            {"object": "Account", "external_id": "A", "kind": "record", "order_id": None, "payload": "{}",
             "state": "FAILED", "attempts": 3, "last_message": SF_MESSAGE, "created_at": AT, "updated_at": AT},
            {"object": "Order", "external_id": "O-3", "kind": "activate", "order_id": "O-3", "payload": "{}",
             "state": "NEW", "attempts": 0, "last_message": None, "created_at": AT, "updated_at": AT}])
        first_job = conn.execute(select(func.min(t.jobs.c.id)).where(t.jobs.c.order_id == "O-2")).scalar()
        conn.execute(t.jobs.update().where(t.jobs.c.id == first_job)
                     .values(status="failed", attempts=5, last_error=JOB_ERROR, updated_at=AT))
        conn.execute(t.quarantine.insert(), [
            {"object": "OrderItem", "record_id": "802000000000001AAA", "system_modstamp": AT,
             "reason": QUARANTINE_REASON, "first_seen": AT, "last_seen": AT}])
    engine.dispose()
