"""One order model for both origins (connector.orders): an import file's order and a Salesforce order with the same
values make the same engine order, with the same defaults; a Salesforce order whose mapping gives no currency is
held, never given one."""
from __future__ import annotations

import json
import shutil

import pytest

from connector import importer, ingest, orders
from connector.errors import SkippableError, ValidationFailed
from connector.mapping import load_mappings
from sync_support import REPO, close, connect, engine_orders, held, quarantine_command

ORDER_ID, ACCOUNT, OWNER, PRODUCT = "801000000000001AAA", "001000000000001AAA", "005000000000001AAA", "01t000000000001AAA"


def salesforce_order(**fields) -> dict:
    """An Order record as Salesforce's REST API gives it (with the fields the shipped mappings read)."""
    return {"Id": ORDER_ID, "OrderNumber": "00000100", "AccountId": ACCOUNT, "OwnerId": OWNER,
            "Owner": {"Name": "Chloe"}, "OpportunityId": None, "QuoteId": None, "Status": "Activated",
            "EffectiveDate": "2023-03-01", "ActivatedDate": "2023-03-02T09:00:00.000+0000"} | fields


def salesforce_item(number: int, **fields) -> dict:
    return {"Id": f"80200000000000{number}AAA", "OrderId": ORDER_ID, "OrderItemNumber": f"000000010{number}",
            "QuoteLineItemId": None, "Product2Id": PRODUCT, "Product2": {"Name": "Seat"}, "Quantity": 2.0,
            "UnitPrice": 100.5, "ServiceDate": "2023-03-01", "EndDate": "2023-12-31", "Evergreen__c": False,
            "Subscription__c": None, "LineAction__c": None, "BillingFrequency__c": None} | fields


def import_line(number: int, **fields) -> dict:
    """The same line as an import file gives it (README's import format); blank Salesforce fields left out."""
    return {"id": f"80200000000000{number}AAA", "action": "new", "product": PRODUCT, "quantity": 2,
            "unit_price": "100.5", "start": "2023-03-01", "end": "2023-12-31"} | fields


CASES = {
    # every field the shipped mappings read, Salesforce's blanks where the file leaves a field out
    "lines of every kind": (
        salesforce_order(),
        [salesforce_item(1),
         salesforce_item(2, LineAction__c="Update Original Product", Subscription__c="SUB-7", Quantity=5,
                         UnitPrice=90, ServiceDate="2023-06-01", BillingFrequency__c="Quarter"),
         salesforce_item(3, EndDate=None, Evergreen__c=True, LineAction__c="Add New Product")],
        {"id": ORDER_ID, "account": ACCOUNT, "owner": OWNER, "booked_on": "2023-03-02", "currency": "USD",
         "lines": [import_line(1),
                   import_line(2, action="update", subscription="SUB-7", quantity=5, unit_price=90,
                               start="2023-06-01", billing_frequency="quarter"),
                   {k: v for k, v in import_line(3, evergreen=True).items() if k != "end"}]}),
    # the defaults: no owner, a draft's start for its booking date, a line with only what it needs
    "defaults": (
        salesforce_order(OwnerId=None, Owner=None, Status="Draft", ActivatedDate=None),
        [salesforce_item(1, Quantity=None, UnitPrice=None)],
        {"id": ORDER_ID, "account": ACCOUNT, "booked_on": "2023-03-01", "currency": "USD",
         "lines": [{k: v for k, v in import_line(1).items() if k not in ("quantity", "unit_price")}]}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_same_order_through_both_origins_makes_the_same_engine_order(case):
    records, items, document = CASES[case]
    mappings = load_mappings(REPO / "mappings")
    from_salesforce = ingest.order_input(mappings.read("Order", records),
                                         [mappings.read("OrderItem", i) for i in items])
    [doc] = importer.parse(json.dumps({"orders": [document]}), "orders.json").orders
    from_file = orders.order_input(doc)
    assert from_salesforce == from_file
    # not equal by being empty: the values made it through
    assert (from_file.owner, from_file.currency, len(from_file.lines)) == \
        ((OWNER if case != "defaults" else ""), "USD", len(items))


def test_a_value_is_refused_in_the_same_words_from_either_origin():
    mappings = load_mappings(REPO / "mappings")
    bad = {"EndDate": "2023-02-01"}  # before its start
    with pytest.raises(SkippableError) as held_order:
        ingest.order_input(mappings.read("Order", salesforce_order()),
                           [mappings.read("OrderItem", salesforce_item(1, **bad))])
    with pytest.raises(ValidationFailed) as refused_file:
        importer.parse(json.dumps({"orders": [{"id": ORDER_ID, "account": ACCOUNT, "booked_on": "2023-03-02",
                                               "currency": "USD", "lines": [import_line(1, end="2023-02-01")]}]}),
                       "orders.json")
    message = "line 802000000000001AAA, field end: end 2023-02-01 is before start 2023-03-01"
    assert message in str(held_order.value)
    assert f"order {ORDER_ID}, {message}" in str(refused_file.value)


def without_currency(tmp_path) -> str:
    """The shipped mappings with the order's currency left out of mappings/Order.toml."""
    mappings = tmp_path / "mappings"
    shutil.copytree(REPO / "mappings", mappings)
    order = mappings / "Order.toml"
    text = order.read_text()
    assert 'currency = { constant = "USD" }' in text
    order.write_text(text.replace('currency = { constant = "USD" }', ""))
    return str(mappings)


def test_a_salesforce_order_whose_mapping_gives_no_currency_is_held_saying_what_to_map(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch, sync={"mappings_dir": without_currency(tmp_path)})
    try:
        c.service.cycle()
        assert engine_orders(c) == []  # none became a USD order
        listed = {(r["object"], r["record_id"]): r["reason"] for r in quarantine_command(c)}
        order_ids = [c.refs[o] for o in ("o1", "o2", "o3")]
        assert set(listed) == {("Order", o) for o in order_ids}
        for order_id in order_ids:
            reason = listed[("Order", order_id)]
            assert reason.startswith(f"order {order_id}: no currency:")  # what is wrong, and where
            # what to do
            assert "mappings/Order.toml" in reason
            assert '`currency = "CurrencyIsoCode"`' in reason and '`currency = { constant = "USD" }`' in reason
        assert len(held(c)) == 3
    finally:
        close(c)


@pytest.mark.parametrize("field, value, words", [
    ("id", "L" * 64, None),
    ("id", "L" * 65, "field id: the id is 65 characters long; at most 64"),
    ("id", "L\x00", "field id: the id contains a NUL character"),
    ("product", "P" * 200, "field product: the id is 200 characters long; at most 64"),
    ("end", "2999-12-31", None),
    ("end", "3000-01-01", "field end: the date 3000-01-01 is outside the dates the engine accepts"),
    ("start", "1899-12-31", "field start: the date 1899-12-31 is outside the dates the engine accepts"),
])
def test_ids_and_days_are_checked_in_the_same_words_on_their_quick_path(field, value, words):
    """An id or a day that passes is let through in one call; one that does not gets its check's own words."""
    order = {"id": "O-1", "account": "A-1", "owner": "x" * 1000, "booked_on": "2023-03-01", "currency": "USD",
             "lines": [import_line(1, **{field: value})]}
    if words is None:
        line = orders.OrderDoc.model_validate(order).lines[0]
        assert str(getattr(line, field)) == value
        return
    with pytest.raises(ValidationFailed) as caught:
        importer.parse(json.dumps({"orders": [order]}), "file.json")
    assert any(words in str(p) for p in caught.value.problems), caught.value.problems


def test_texts_and_shared_days_keep_their_checks():
    base = {"id": "O-1", "account": "A-1", "booked_on": "2023-03-01", "currency": "USD", "lines": [import_line(1)]}
    with pytest.raises(ValidationFailed) as caught:
        importer.parse(json.dumps({"orders": [base | {"owner": "x" * 1001}]}), "file.json")
    assert any("the text is 1001 characters long; at most 1000" in str(p) for p in caught.value.problems)
    with pytest.raises(ValidationFailed) as caught:
        importer.parse(json.dumps({"orders": [base | {"owner": "a\x00b"}]}), "file.json")
    assert any("NUL character" in str(p) for p in caught.value.problems)
    one, two = (orders.OrderDoc.model_validate(base) for _ in range(2))
    assert one.booked_on is two.booked_on  # one object per day a file names
