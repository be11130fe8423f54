"""Create-only fields refused on update like Salesforce does, and answers lost after the write landed."""
from __future__ import annotations

import pytest
import requests

from connector.sandbox.faults import Fault
from connector.sandbox.server import serve
from sandbox_support import API

ITEMS = API + "/composite/sobjects/OrderItem/ExternalId__c"


def order_with_item(sf, catalog) -> tuple[str, dict]:
    order = sf.post(API + "/sobjects/Order", json={"AccountId": catalog["account"], "Pricebook2Id": catalog["pb"],
                                                    "EffectiveDate": "2023-01-01", "Status": "Draft"}).json()["id"]
    item = {"attributes": {"type": "OrderItem"}, "ExternalId__c": "L-1", "OrderId": order,
            "PricebookEntryId": catalog["pbe"], "Quantity": 2, "UnitPrice": 100}
    return order, item


def test_create_only_fields_are_refused_on_update_with_every_field_named(sf, org, catalog):
    order, item = order_with_item(sf, catalog)
    first = sf.patch(ITEMS, json={"records": [item]}).json()
    assert first[0]["success"] and first[0]["created"]
    again = sf.patch(ITEMS, json={"records": [item | {"Quantity": 3}]}).json()
    assert again[0]["success"] is False
    error = again[0]["errors"][0]
    assert error["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert sorted(error["fields"]) == ["OrderId", "PricebookEntryId"]
    assert error["message"].startswith("Unable to create/update fields: OrderId, PricebookEntryId.")
    assert [i["Quantity"] for i in org.records("OrderItem")] == [2]  # nothing changed
    # without its create-only fields the same record updates
    update = {k: v for k, v in item.items() if k not in ("OrderId", "PricebookEntryId")} | {"Quantity": 3}
    assert sf.patch(ITEMS, json={"records": [update]}).json()[0]["success"]
    assert [i["Quantity"] for i in org.records("OrderItem")] == [3]


def test_a_lost_answer_in_process_raises_the_client_timeout_after_the_write(sf, org, catalog):
    _, item = order_with_item(sf, catalog)
    rule = org.faults.add(Fault.lose_answer(method="PATCH", path="/composite/sobjects/OrderItem/"))
    with pytest.raises(requests.ReadTimeout):
        sf.patch(ITEMS, json={"records": [item]})
    assert rule.fired == 1
    assert [i["ExternalId__c"] for i in org.records("OrderItem")] == ["L-1"]  # the write landed
    assert sf.patch(ITEMS, json={"records": [item]}).json()[0]["errors"][0]["statusCode"] == \
        "INVALID_FIELD_FOR_INSERT_UPDATE"  # the fault fired once; a repeat meets the record


def test_a_lost_answer_over_https_outlasts_the_client_timeout(tmp_path, org, catalog):
    token = org.issue_token()
    with serve(org, "127.0.0.1", 0, tmp_path / "ca.pem") as server:
        session = requests.Session()
        session.verify = str(server.ca_path)
        session.headers["Authorization"] = f"Bearer {token}"
        url = server.url + ITEMS.split("sandbox.revsync.test", 1)[1]
        order = org.create("Order", {"AccountId": catalog["account"], "Pricebook2Id": catalog["pb"],
                                     "EffectiveDate": "2023-01-01", "Status": "Draft"})
        item = {"attributes": {"type": "OrderItem"}, "ExternalId__c": "L-1", "OrderId": order,
                "PricebookEntryId": catalog["pbe"], "Quantity": 2, "UnitPrice": 100}
        org.faults.add(Fault.lose_answer(method="PATCH", path="/composite/sobjects/OrderItem/", delay=1.0))
        with pytest.raises(requests.ReadTimeout):
            session.patch(url, json={"records": [item]}, timeout=0.3, verify=str(server.ca_path))
        session.close()
    assert [i["ExternalId__c"] for i in org.records("OrderItem")] == ["L-1"]
