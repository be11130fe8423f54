"""`[engine] sync_draft_orders_with_primary_quotes` (SPEC section 2): a Draft order that is the primary
order of its quote is synced into the engine as a draft, each time it is saved, and never activated."""
from __future__ import annotations

from connector import reports
from sync_support import close, connect, engine_orders, held, mirror, org_with_picklist_value, worked_seed


def seed_with_drafts() -> dict:
    """The worked example plus an open opportunity with two quotes, each with a Draft order."""
    seed = worked_seed()
    seed["Opportunity"].append({"@ref": "opp4", "Name": "Customer B seats", "AccountId": "@b", "OwnerId": "@chloe",
                                "StageName": "Negotiation/Review", "CloseDate": "2023-06-01",
                                "Pricebook2Id": "@std", "SyncedQuoteId": "@q4"})
    for quote in ("q4", "q5"):
        seed["Quote"].append({"@ref": quote, "Name": quote.upper(), "OpportunityId": "@opp4", "Pricebook2Id": "@std",
                              "Status": "Draft"})
        seed["Order"].append({"@ref": f"o{quote[1]}", "AccountId": "@b", "OpportunityId": "@opp4",
                              "QuoteId": f"@{quote}", "OwnerId": "@chloe", "Pricebook2Id": "@std",
                              "EffectiveDate": "2023-06-01", "Status": "Draft"})
        seed["OrderItem"].append({"@ref": f"op{quote[1]}", "OrderId": f"@o{quote[1]}", "Product2Id": "@seat",
                                  "PricebookEntryId": "@seat-std", "Quantity": 5, "UnitPrice": 100,
                                  "ServiceDate": "2023-06-01", "EndDate": "2024-05-31"})
    return seed


def drafts(c) -> list[dict]:
    with c.app.store.connect() as conn:
        return reports.drafts(conn)


def test_a_primary_draft_is_synced_each_time_it_is_saved_and_never_activated(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch, seed_with_drafts(), engine={"sync_draft_orders_with_primary_quotes": True})
    try:
        first = c.service.cycle()
        assert first.drafts == [c.refs["o4"]]  # o5's quote is not the opportunity's synced quote
        assert [(d["order"], d["account"], d["quote"], d["start"], d["lines"], str(d["quantity"]))
                for d in drafts(c)] == [(c.refs["o4"], c.refs["b"], c.refs["q4"], "2023-06-01", 1, "5")]
        assert engine_orders(c) == [c.refs["o1"], c.refs["o2"], c.refs["o3"]]

        c.later()
        assert c.service.cycle().drafts == []  # not saved since: nothing to sync

        c.later()
        c.org.update("OrderItem", c.refs["op4"], {"Quantity": 8})
        c.later()
        assert c.service.cycle().drafts == [c.refs["o4"]]
        assert [str(d["quantity"]) for d in drafts(c)] == ["8"]

        c.later()
        c.org.update("Order", c.refs["o4"], {"Status": "Activated"})
        c.later()
        activated = c.service.cycle()
        assert activated.activated == [c.refs["o4"]] and activated.drafts == []
        assert drafts(c) == [] and held(c) == []
    finally:
        close(c)


def test_a_primary_draft_that_does_not_map_is_held(tmp_path, monkeypatch):
    seed = seed_with_drafts()
    next(i for i in seed["OrderItem"] if i["@ref"] == "op4")["BillingFrequency__c"] = "Week"
    org = org_with_picklist_value("OrderItem", "BillingFrequency__c", "Week")
    c = connect(tmp_path, monkeypatch, seed, engine={"sync_draft_orders_with_primary_quotes": True}, org=org)
    try:
        assert c.service.cycle().drafts == []
        reasons = {(r["object"], r["record_id"]): r["reason"] for r in held(c)}
        assert set(reasons) == {("Order", c.refs["o4"]), ("OrderItem", c.refs["op4"])}
        assert "Week" in reasons[("Order", c.refs["o4"])]
        c.later()
        assert c.service.cycle().drafts == [] and len(held(c)) == 2  # held until it is saved again
        c.later()
        c.org.update("OrderItem", c.refs["op4"], {"BillingFrequency__c": "Month"})
        c.later()
        assert c.service.cycle().drafts == [c.refs["o4"]] and held(c) == []
        assert engine_orders(c) == [c.refs["o1"], c.refs["o2"], c.refs["o3"]]
    finally:
        close(c)


def test_without_the_setting_drafts_are_only_mirrored(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch, seed_with_drafts())
    try:
        report = c.service.cycle()
        assert report.drafts == [] and drafts(c) == []
        assert mirror(c, "Order", c.refs["o4"])[0]["Status"] == "Draft"
        assert engine_orders(c) == [c.refs["o1"], c.refs["o2"], c.refs["o3"]]
    finally:
        close(c)
