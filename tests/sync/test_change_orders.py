"""A change order from Salesforce names the subscription it changes by the Salesforce Id of the Subscription__c
record the connector wrote (the value an admin copies into the order product), and it resolves to the engine's
subscription (issue 7)."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from connector.store import schema as t
from sync_support import SPEC_QUARTERS, arr_rows, close, connect, engine_orders, held, quarters, worked_seed


def without_upsell() -> dict:
    """The worked example before O-3: two new orders, activated in Salesforce."""
    seed = worked_seed()
    seed["Order"] = [o for o in seed["Order"] if o["@ref"] != "o3"]
    seed["OrderItem"] = [i for i in seed["OrderItem"] if i["@ref"] != "op003"]
    return seed


def upsell(c, subscription: str) -> tuple[str, str]:
    """O-3 entered by an admin: a Draft order, its change line naming `subscription`, then activated."""
    order = c.org.create("Order", {"AccountId": c.refs["a"], "OpportunityId": c.refs["opp3"], "QuoteId": c.refs["q3"],
                                   "OwnerId": c.refs["chloe"], "Pricebook2Id": c.refs["std"],
                                   "EffectiveDate": "2023-02-01", "Status": "Draft"})
    item = c.org.create("OrderItem", {"OrderId": order, "Product2Id": c.refs["seat"],
                                      "PricebookEntryId": c.refs["seat-std"], "QuoteLineItemId": c.refs["ql3"],
                                      "Quantity": 16, "UnitPrice": 100, "ServiceDate": "2023-04-01",
                                      "LineAction__c": "Update Original Product", "Subscription__c": subscription})
    c.org.update("Order", order, {"Status": "Activated"})
    return order, item


def item_row(c, item_id: str):
    with c.app.store.connect() as conn:
        return conn.execute(select(t.items).where(t.items.c.id == item_id)).one()


def test_a_change_line_naming_the_written_subscription_changes_the_engine_subscription(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch, without_upsell())
    try:
        c.service.cycle()
        c.runtime.writer.flush()
        subs = {r["ExternalId__c"]: r for r in c.org.records("Subscription__c")}
        # the engine id of a Salesforce-origin subscription is the order product that created it
        assert set(subs) == {c.refs["op001"], c.refs["op002"]}
        written = subs[c.refs["op001"]]["Id"]
        assert written.startswith("a0") and written != c.refs["op001"]

        c.later(5)
        order, item = upsell(c, written)
        c.later()
        report = c.service.cycle()
        c.runtime.writer.flush()

        assert report.activated == [order] and held(c) == [] and report.quarantined == 0
        assert engine_orders(c) == [c.refs["o1"], c.refs["o2"], order]
        # the change went to the subscription the line named, not to a new one
        sub = item_row(c, c.refs["op001"])
        assert (sub.quantity, sub.version, sub.last_line) == (Decimal(16), 2, item)
        with c.app.store.connect() as conn:
            assert conn.execute(select(t.items.c.id)).scalars().all().__len__() == 2
            line = conn.execute(select(t.order_lines).where(t.order_lines.c.id == item)).one()
        assert (line.item, line.action, line.change_category) == (c.refs["op001"], "update", "Upsell/Expansion")
        # ARR rows: SPEC section 7's table, the change line's rows under S-001 with +600 CMRR
        assert quarters(c) == SPEC_QUARTERS
        rows = sorted((r for r in arr_rows(c) if r["order_product"] == item), key=lambda r: r["period_start"])
        assert {(r["subscription"], r["change_category"]) for r in rows} == {(c.refs["op001"], "Upsell/Expansion")}
        # April 2023 to January 2024: +600 CMRR from the first month, gone after the last (SPEC section 7)
        assert [(r["period_start"].isoformat()[:7], r["opening_cmrr"], r["closing_cmrr"]) for r in rows] == (
            [("2023-04", Decimal(0), Decimal(600))] + [(f"2023-{m:02d}", Decimal(600), Decimal(600)) for m in range(5, 13)]
            + [("2024-01", Decimal(600), Decimal(0))])
        # and the written Subscription__c (the same record, not a new one) now says 16
        after = {r["ExternalId__c"]: r for r in c.org.records("Subscription__c")}
        assert set(after) == set(subs) and after[c.refs["op001"]]["Id"] == written
        assert after[c.refs["op001"]]["Quantity__c"] == 16
    finally:
        close(c)


def test_a_change_line_naming_the_subscription_by_its_15_character_id_resolves_too(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch, without_upsell())
    try:
        c.service.cycle()
        c.runtime.writer.flush()
        written = next(r["Id"] for r in c.org.records("Subscription__c") if r["ExternalId__c"] == c.refs["op001"])
        c.later(5)
        order, _ = upsell(c, written[:15])
        c.later()
        assert c.service.cycle().activated == [order] and held(c) == []
        assert item_row(c, c.refs["op001"]).quantity == Decimal(16)
    finally:
        close(c)


def test_a_change_line_naming_an_unknown_salesforce_id_is_still_held_with_the_id(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch, without_upsell())
    try:
        c.service.cycle()
        c.runtime.writer.flush()
        c.later(5)
        order, _ = upsell(c, "a01000000000999AAA")  # no record the connector wrote has this Id
        c.later()
        c.service.cycle()
        [row] = held(c)
        assert (row["object"], row["record_id"]) == ("Order", order)
        assert "a01000000000999AAA" in row["reason"]
        assert item_row(c, c.refs["op001"]).quantity == Decimal(10)
    finally:
        close(c)


def test_an_order_held_for_an_id_whose_write_answer_was_lost_is_taken_once_the_id_is_learnt(tmp_path, monkeypatch):
    from connector.errors import TransientError
    from connector.salesforce.retry import RetryPolicy
    from connector.sandbox.faults import Fault

    c = connect(tmp_path, monkeypatch, without_upsell())
    c.runtime.client._retry = RetryPolicy(max_attempts=1, sleep=lambda s: None)
    try:
        c.service.cycle()
        # the subscriptions are written, but the answer is lost: the connector does not know their Ids
        lost = c.org.faults.add(Fault.lose_answer(method="PATCH", path=r"/composite/sobjects/Subscription__c/"))
        try:
            c.runtime.writer.flush()
        except TransientError:
            pass
        assert lost.fired == 1
        written = next(r["Id"] for r in c.org.records("Subscription__c") if r["ExternalId__c"] == c.refs["op001"])
        c.later(5)
        order, _ = upsell(c, written)  # an admin copies the Id from Salesforce meanwhile
        c.later()
        c.service.cycle()
        assert [r["record_id"] for r in held(c)] == [order]  # no record the connector knows has that Id
        c.later()
        c.runtime.writer.flush()  # sent again: the Ids are learnt
        report = c.service.cycle()  # the order did not change in Salesforce, and is taken all the same
        assert report.activated == [order] and held(c) == []
        assert item_row(c, c.refs["op001"]).quantity == Decimal(16)
        c.later()
        assert c.service.cycle().activated == []  # once
    finally:
        close(c)


def test_a_cancel_line_naming_the_written_asset_cancels_the_engine_asset(tmp_path, monkeypatch):
    seed = without_upsell()
    next(p for p in seed["Product2"] if p["@ref"] == "plan")["ProvisioningType__c"] = "Asset"
    c = connect(tmp_path, monkeypatch, seed)
    try:
        c.service.cycle()
        c.runtime.writer.flush()
        [asset] = c.org.records("Asset")
        assert asset["ExternalId__c"] == c.refs["op002"] and asset["Status"] == "Installed"
        c.later(5)
        order = c.org.create("Order", {"AccountId": c.refs["b"], "OwnerId": c.refs["chloe"],
                                       "Pricebook2Id": c.refs["std"], "EffectiveDate": "2023-03-01", "Status": "Draft"})
        item = c.org.create("OrderItem", {"OrderId": order, "Product2Id": c.refs["plan"],
                                          "PricebookEntryId": c.refs["plan-std"], "Quantity": 1, "UnitPrice": 2000,
                                          "ServiceDate": "2023-03-01", "LineAction__c": "Remove Original Product",
                                          "Subscription__c": asset["Id"]})
        c.org.update("Order", order, {"Status": "Activated"})
        c.later()
        c.service.cycle()
        c.runtime.writer.flush()
        assert held(c) == [] and engine_orders(c)[-1] == order
        row = item_row(c, c.refs["op002"])
        assert (row.status, row.last_line) == ("cancelled", item)
        with c.app.store.connect() as conn:
            line = conn.execute(select(t.order_lines).where(t.order_lines.c.id == item)).one()
        assert (line.item, line.change_category) == (c.refs["op002"], "Cancel/Churn")
        assert [a["Status"] for a in c.org.records("Asset")] == ["Obsolete"]  # the same record, now cancelled
    finally:
        close(c)
