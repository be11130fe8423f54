"""Writes are safe to repeat: a write that reached Salesforce but whose answer was lost is sent
again and ends exactly as if the answer had come back, for every object the connector writes and
both order origins (orders the connector creates from won quotes, engine-origin orders imported).

Two ways an answer is lost: the client times out and repeats the call itself ("retried"), or the
process dies with the call in flight and the next flush finds the entries PENDING ("crashed").
"""
from __future__ import annotations

import json
from typing import Any

import pytest

from connector.errors import TransientError
from connector.importer import import_document, parse
from connector.salesforce.retry import RetryPolicy
from connector.sandbox.faults import Fault

from sync_support import close, connect, worked_seed

#: where the answer is lost: (HTTP method, path pattern, matching calls to let through first)
POINTS = {
    "Order": ("PATCH", r"/composite/sobjects/Order/", 0),
    "OrderItem": ("PATCH", r"/composite/sobjects/OrderItem/", 0),
    "activation": ("PATCH", r"/composite/sobjects/Order/", 1),
    "Subscription__c": ("PATCH", r"/composite/sobjects/Subscription__c/", 0),
    "Asset": ("PATCH", r"/composite/sobjects/Asset/", 0),
    "Entitlement": ("PATCH", r"/composite/sobjects/Entitlement/", 0),
    "Account": ("PATCH", r"/composite/sobjects/Account/", 0),
    "ArrByPeriod__b": ("PATCH", r"/jobs/ingest/\w+$", 0),           # the close of the first job
    "ArrByPeriodByCustomer__b": ("PATCH", r"/jobs/ingest/\w+$", 1),  # the close of the second
}
ORIGINS = ("won_quote", "engine")


def seed(origin: str) -> dict[str, Any]:
    """The worked example's catalogue with an asset and an entitlement product.

    won_quote: two Closed Won opportunities whose primary quotes hold a subscription, an asset
    and an entitlement line, and no orders (an org without automation). engine: no opportunity
    at all; the order comes from `revsync import`.
    """
    s = worked_seed()
    for key in ("Order", "OrderItem"):
        s.pop(key)
    s["Product2"] += [
        {"@ref": "kit", "Name": "Gateway kit", "ProductCode": "KIT", "IsActive": True,
         "ProvisioningType__c": "Asset", "PricePeriod__c": "One-Time"},
        {"@ref": "care", "Name": "Premium care", "ProductCode": "CARE", "IsActive": True,
         "ProvisioningType__c": "Entitlement", "PricePeriod__c": "One-Time"}]
    s["PricebookEntry"] += [
        {"@ref": "kit-std", "Pricebook2Id": "@std", "Product2Id": "@kit", "UnitPrice": 50, "IsActive": True},
        {"@ref": "care-std", "Pricebook2Id": "@std", "Product2Id": "@care", "UnitPrice": 30, "IsActive": True}]
    if origin == "engine":
        for key in ("Opportunity", "Quote", "QuoteLineItem"):
            s.pop(key)
        return s
    s["Opportunity"], s["Quote"], s["QuoteLineItem"] = s["Opportunity"][:2], s["Quote"][:2], s["QuoteLineItem"][:2]
    s["QuoteLineItem"] += [
        {"@ref": f"ql-{p}", "QuoteId": "@q1", "Product2Id": f"@{p}", "PricebookEntryId": f"@{p}-std",
         "Quantity": 2, "UnitPrice": price, "ServiceDate": "2023-01-15", "EndDate__c": "2024-01-14",
         "LineAction__c": "Add New Product"} for p, price in (("kit", 50), ("care", 30))]
    return s


def engine_order(refs: dict[str, str]) -> str:
    """One engine-origin order with a subscription, an asset and an entitlement line."""
    lines = [{"id": f"ENG-1-{n}", "action": "new", "product": refs[p], "quantity": q, "unit_price": price,
              "start": "2023-06-01", "end": "2024-05-31"}
             for n, (p, q, price) in enumerate((("seat", 5, "100"), ("kit", 2, "50"), ("care", 1, "30")), 1)]
    return json.dumps({"orders": [{"id": "ENG-1", "account": refs["b"], "owner": "Chloe", "booked_on": "2023-05-15",
                                   "currency": "USD", "lines": lines}]})


def org_state(org, refs: dict[str, str]) -> dict[str, Any]:
    """Everything the connector writes, with generated Ids replaced by what they stand for."""
    names = {rec_id: f"@{ref}" for ref, rec_id in refs.items()}
    for obj in ("Order", "OrderItem", "Subscription__c", "Asset", "Entitlement"):
        for r in org.records(obj):
            names.setdefault(r["Id"], f"{obj}:{names.get(r.get('ExternalId__c'), r.get('ExternalId__c'))}")
    keep = {"Order": ("ExternalId__c", "Status", "AccountId", "OpportunityId", "QuoteId", "EffectiveDate"),
            "OrderItem": ("ExternalId__c", "OrderId", "Product2Id", "PricebookEntryId", "QuoteLineItemId",
                          "Quantity", "UnitPrice", "ServiceDate", "EndDate")}

    def plain(r: dict, fields=None) -> dict:
        return {k: names.get(v, v) if isinstance(v, str) else v for k, v in sorted(r.items())
                if (fields is None or k in fields) and k not in (
                    "Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "CreatedById", "LastModifiedById",
                    "OrderNumber", "OrderItemNumber", "ActivatedDate", "ActivatedById", "OwnerId")}

    state = {obj: sorted((plain(r, keep.get(obj)) for r in org.records(obj)), key=lambda r: json.dumps(r, default=str))
             for obj in ("Order", "OrderItem", "Subscription__c", "Asset", "Entitlement",
                         "ArrByPeriod__b", "ArrByPeriodByCustomer__b")}
    state["Account"] = sorted((names[r["Id"]], r.get("TCV__c"), r.get("ARR__c"), r.get("CustomerSince__c"))
                              for r in org.records("Account"))
    return state


def run(tmp_path, monkeypatch, origin: str, fault: tuple[str, str, int] | None = None,
        mode: str = "retried") -> tuple[dict[str, Any], Any]:
    """Sync to the end (bounded), with the answer of one call lost; the org's final state and the faults."""
    c = connect(tmp_path, monkeypatch, seed(origin), sync={"create_orders_from_won_quotes": origin == "won_quote"})
    # no real waits between the client's attempts; "crashed": the first failure ends the flush
    c.runtime.client._retry = RetryPolicy(max_attempts=1 if mode == "crashed" else 5, sleep=lambda s: None)
    rule = None
    try:
        c.service.cycle()  # the calendar and the org's records
        c.app.refresh_calendar()
        if origin == "engine":
            doc = parse(engine_order(c.refs), "eng.json")
            import_document(c.app.store, doc, "eng.json", c.app.calendar, c.app.settings, c.app.clock, c.app.runner)
        if fault is not None:
            method, path, skip = fault
            rule = c.org.faults.add(Fault.lose_answer(method=method, path=path, skip=skip))
        crashes = 0
        for _ in range(8):
            try:
                c.runtime.writer.flush()
            except TransientError:
                crashes += 1  # the process died with the call in flight: its entries stay PENDING
                continue
            c.later()
            report = c.service.cycle()
            if not c.runtime.writer.left() and not report.activated and not report.orders_queued:
                break
        assert c.runtime.writer.left() == {}, "entries left unwritten"
        if mode == "crashed" and rule is not None and not fault[1].startswith(r"/jobs"):
            assert crashes == 1
        if fault is not None and fault[1] == POINTS["OrderItem"][1]:
            item_writes = sum(1 for e in c.org.request_log if e.method == "PATCH" and fault[1] in e.path)
            # crashed: the lost call, then one update once a lookup by external id found the items;
            # retried: the lost call, the client's repeat (refused: create-only fields), the update
            assert item_writes == (2 if mode == "crashed" else 3)
        return org_state(c.org, c.refs), rule
    finally:
        close(c)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """Each origin synced without faults."""
    import _pytest.monkeypatch

    out = {}
    for origin in ORIGINS:
        mp = _pytest.monkeypatch.MonkeyPatch()
        try:
            out[origin], _ = run(tmp_path_factory.mktemp(f"clean-{origin}"), mp, origin)
        finally:
            mp.undo()
    return out


def test_clean_runs_write_every_object(clean):
    for origin, state in clean.items():
        assert [o["Status"] for o in state["Order"]] == ["Activated"] * (2 if origin == "won_quote" else 1), origin
        for obj in ("Subscription__c", "Asset", "Entitlement", "ArrByPeriod__b", "ArrByPeriodByCustomer__b"):
            assert state[obj], (origin, obj)
        assert len(state["OrderItem"]) == (4 if origin == "won_quote" else 3)


@pytest.mark.parametrize("mode", ["retried", "crashed"])
@pytest.mark.parametrize("origin", ORIGINS)
@pytest.mark.parametrize("point", sorted(POINTS), ids=sorted(POINTS))
def test_a_lost_answer_ends_as_if_it_had_come_back(tmp_path, monkeypatch, clean, point, origin, mode):
    state, rule = run(tmp_path, monkeypatch, origin, POINTS[point], mode)
    assert rule.fired == 1  # the write landed and its answer was lost
    assert state == clean[origin]
