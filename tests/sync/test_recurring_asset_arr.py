"""ARR rows of a recurring asset or entitlement (monthly support, a leased device) reach both big
objects: their Subscription__c holds the Id of the Asset or Entitlement record the connector wrote
for the item, the one record the ARR belongs to. Before, the write-back looked for a Subscription__c
record that never exists and waited for it forever (`sync --once` exit 4 at every run)."""
from __future__ import annotations

import json

from sync_support import close, connect, worked_seed

from connector.importer import import_document, parse


def seed() -> dict:
    s = worked_seed()
    for key in ("Order", "OrderItem", "Opportunity", "Quote", "QuoteLineItem"):
        s.pop(key)
    for ref, kind in (("care", "Entitlement"), ("lease", "Asset")):
        s["Product2"].append({"@ref": ref, "Name": f"{ref} plan", "ProductCode": ref.upper(), "IsActive": True,
                              "ProvisioningType__c": kind, "PricePeriod__c": "Month"})
        s["PricebookEntry"].append({"@ref": f"{ref}-std", "Pricebook2Id": "@std", "Product2Id": f"@{ref}",
                                    "UnitPrice": 30, "IsActive": True})
    return s


def test_arr_rows_of_recurring_assets_and_entitlements_name_their_records(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch, seed())
    try:
        c.service.cycle()
        c.app.refresh_calendar()
        lines = [{"id": f"ENG-1-{n}", "action": "new", "product": c.refs[p], "quantity": 1, "unit_price": "30",
                  "start": "2023-06-01", "end": "2024-05-31"} for n, p in ((1, "care"), (2, "lease"), (3, "seat"))]
        doc = {"orders": [{"id": "ENG-1", "account": c.refs["b"], "owner": "Chloe", "booked_on": "2023-05-15",
                           "currency": "USD", "lines": lines}]}
        import_document(c.app.store, parse(json.dumps(doc), "eng.json"), "eng.json", c.app.calendar,
                        c.app.settings, c.app.clock, c.app.runner)
        c.runtime.writer.flush()
        assert c.runtime.writer.left() == {}  # nothing waits
        record = {"ENG-1-1": next(r["Id"] for r in c.org.records("Entitlement")),
                  "ENG-1-2": next(r["Id"] for r in c.org.records("Asset")),
                  "ENG-1-3": next(r["Id"] for r in c.org.records("Subscription__c"))}
        assert len(set(record.values())) == 3
        items = {r["Id"]: r["ExternalId__c"] for r in c.org.records("OrderItem")}
        for big in ("ArrByPeriod__b", "ArrByPeriodByCustomer__b"):
            rows = c.org.records(big)
            # 12 months of June 2023 to May 2024 for each line
            assert len(rows) == 36, big
            assert {(items[r["OrderProduct__c"]], r["Subscription__c"]) for r in rows} == set(record.items()), big
    finally:
        close(c)
