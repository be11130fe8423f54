"""An evergreen order product from Salesforce (issue 9): `Evergreen__c` ticked and no EndDate makes an evergreen
engine line; no EndDate without the box is held in the quarantine, never taken as evergreen."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from connector.store import schema as t
from sync_support import close, connect, engine_orders, held


def admin_order(c, *, evergreen: bool) -> tuple[str, str]:
    order = c.org.create("Order", {"AccountId": c.refs["a"], "OwnerId": c.refs["chloe"], "Pricebook2Id": c.refs["std"],
                                   "EffectiveDate": "2023-05-01", "Status": "Draft"})
    item = c.org.create("OrderItem", {"OrderId": order, "Product2Id": c.refs["seat"],
                                      "PricebookEntryId": c.refs["seat-std"], "Quantity": 5, "UnitPrice": 100,
                                      "ServiceDate": "2023-05-01", "Evergreen__c": evergreen})
    c.org.update("Order", order, {"Status": "Activated"})
    return order, item


def test_evergreen_order_item(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch, engine={"evergreen_horizon_months": 3})
    try:
        c.service.cycle()
        c.later(5)
        order, item = admin_order(c, evergreen=True)
        c.later()
        report = c.service.cycle()
        assert order in report.activated and held(c) == []
        with c.app.store.connect() as conn:
            line = conn.execute(select(t.order_lines).where(t.order_lines.c.id == item)).one()
            sub = conn.execute(select(t.items).where(t.items.c.id == item)).one()
            rows = conn.execute(select(t.arr_rows.c.period_start, t.arr_rows.c.closing_cmrr)
                                .where(t.arr_rows.c.line_pk == line.pk).order_by(t.arr_rows.c.period_start)).all()
        # 5 × 100 from 2023-05-01; first horizon 2023-05-01 + 3 months = 2023-08-01: rows May..Aug, running on
        assert (line.evergreen, sub.evergreen, line.end, sub.end) == (True, True, dt.date(2023, 8, 1), dt.date(2023, 8, 1))
        assert [(r.period_start.isoformat()[:7], str(r.closing_cmrr)) for r in rows] == \
            [("2023-05", "500.0000"), ("2023-06", "500.0000"), ("2023-07", "500.0000"), ("2023-08", "500.0000")]

        c.later(5)
        order2, item2 = admin_order(c, evergreen=False)
        c.later()
        report = c.service.cycle()
        assert order2 not in engine_orders(c)
        reasons = {h["record_id"]: h["reason"] for h in held(c)}
        assert '"evergreen": true' in reasons[order2] and "field end" in reasons[order2]
    finally:
        close(c)
