"""Records that cannot be mapped or activated are held with the reason, never block the others, and are
released when fixed in Salesforce."""
from __future__ import annotations

from sync_support import (SPEC_QUARTERS, close, connect, engine_orders, held, org_with_picklist_value,
                          quarantine_command, quarters, worked_seed)



def reactivate(c, order: str, item: str, values: dict) -> None:
    """Fix an item of an activated order the Salesforce way: back to Draft, edit, activate again."""
    c.org.update("Order", c.refs[order], {"Status": "Draft"})
    c.org.update("OrderItem", c.refs[item], values)
    c.org.update("Order", c.refs[order], {"Status": "Activated"})


def test_product_with_an_unmapped_picklist_value_is_held_then_released(tmp_path, monkeypatch):
    seed = worked_seed()
    plan = next(p for p in seed["Product2"] if p["@ref"] == "plan")
    plan["ProvisioningType__c"] = "Bundle"
    c = connect(tmp_path, monkeypatch, seed, org=org_with_picklist_value("Product2", "ProvisioningType__c", "Bundle"))
    try:
        first = c.service.cycle()
        product = next(r for r in first.taken if r.object == "Product2")
        assert [i for i, _ in product.quarantined] == [c.refs["plan"]]
        assert "ProvisioningType__c" in product.quarantined[0][1] and "Bundle" in product.quarantined[0][1]
        # O-2 sells the held product: it waits; O-1 and its upsell O-3 go through.
        assert engine_orders(c) == [c.refs["o1"], c.refs["o3"]]
        listed = quarantine_command(c)
        assert {(r["object"], r["record_id"]) for r in listed} == {("Product2", c.refs["plan"]),
                                                                  ("Order", c.refs["o2"])}
        reasons = {r["object"]: r["reason"] for r in listed}
        assert "Bundle" in reasons["Product2"] and "is not in the value map" in reasons["Product2"]
        assert c.refs["plan"] in reasons["Order"]

        c.later()
        again = c.service.cycle()  # nothing changed: still held, nothing retried in vain
        assert again.activated == [] and len(held(c)) == 2

        c.later(5)
        c.org.update("Product2", c.refs["plan"], {"ProvisioningType__c": "Subscription"})
        c.later()
        fixed = c.service.cycle()
        assert fixed.activated == [c.refs["o2"]]
        assert held(c) == [] and quarantine_command(c) == []
        assert quarters(c) == SPEC_QUARTERS
    finally:
        close(c)


def test_order_changing_a_subscription_that_does_not_exist_is_held_then_released(tmp_path, monkeypatch):
    seed = worked_seed()
    upsell = next(i for i in seed["OrderItem"] if i["@ref"] == "op003")
    upsell["Subscription__c"] = "SUB-404"
    c = connect(tmp_path, monkeypatch, seed)
    try:
        first = c.service.cycle()
        assert first.activated == [c.refs["o1"], c.refs["o2"], c.refs["o3"]]  # tried in Salesforce's order
        assert engine_orders(c) == [c.refs["o1"], c.refs["o2"]]
        [row] = held(c)
        assert (row["object"], row["record_id"]) == ("Order", c.refs["o3"])
        assert "SUB-404" in row["reason"]
        assert [q[1:] for q in quarters(c)] == [("0.00", "3000.00"), ("3000.00", "1000.00"),
                                                ("1000.00", "1000.00"), ("1000.00", "1000.00")]

        c.later(5)
        reactivate(c, "o3", "op003", {"Subscription__c": c.refs["op001"]})
        c.later()
        fixed = c.service.cycle()
        assert fixed.activated == [c.refs["o3"]] and held(c) == []
        assert quarters(c) == SPEC_QUARTERS
    finally:
        close(c)


def test_order_item_with_an_unmapped_picklist_value_does_not_block_other_orders(tmp_path, monkeypatch):
    seed = worked_seed()
    item = next(i for i in seed["OrderItem"] if i["@ref"] == "op002")
    item["BillingFrequency__c"] = "Week"
    c = connect(tmp_path, monkeypatch, seed, org=org_with_picklist_value("OrderItem", "BillingFrequency__c", "Week"))
    try:
        first = c.service.cycle()
        items = next(r for r in first.taken if r.object == "OrderItem")
        assert [i for i, _ in items.quarantined] == [c.refs["op002"]]
        assert engine_orders(c) == [c.refs["o1"], c.refs["o3"]]
        reasons = {(r["object"], r["record_id"]): r["reason"] for r in held(c)}
        assert set(reasons) == {("OrderItem", c.refs["op002"]), ("Order", c.refs["o2"])}
        assert "Week" in reasons[("OrderItem", c.refs["op002"])]
        assert "Week" in reasons[("Order", c.refs["o2"])]

        c.later(5)
        reactivate(c, "o2", "op002", {"BillingFrequency__c": "Month"})
        c.later()
        fixed = c.service.cycle()
        assert fixed.activated == [c.refs["o2"]] and held(c) == []
        assert quarters(c) == SPEC_QUARTERS
    finally:
        close(c)
