"""sObject Collections: create/update/upsert/delete/get, allOrNone rollback, big objects, record faults."""
from __future__ import annotations

from connector.sandbox.faults import Fault
from sandbox_support import API, sample

COLL = API + "/composite/sobjects"


def test_upsert_collection_created_flags_match_recorded_shape(sf, org):
    org.create("Subscription__c", {"ExternalId__c": "S-1"})
    recs = [{"attributes": {"type": "Subscription__c"}, "ExternalId__c": f"S-{i}", "Quantity__c": i} for i in (1, 2)]
    r = sf.patch(COLL + "/Subscription__c/ExternalId__c", json={"allOrNone": False, "records": recs})
    assert r.status_code == 200
    recorded = sample("collections-upsert-created-mixed.json")
    assert [list(x) for x in r.json()] == [list(recorded[0])] * 2  # id, success, errors, created
    assert [x["created"] for x in r.json()] == [False, True]
    assert sorted(x["Quantity__c"] for x in org.records("Subscription__c")) == [1, 2]


def test_create_update_get_delete_collections(sf, org):
    created = sf.post(COLL, json={"records": [{"attributes": {"type": "Account"}, "Name": "A"},
                                              {"attributes": {"type": "Account"}, "Name": "B"}]}).json()
    ids = [c["id"] for c in created]
    assert all(c["success"] and c["errors"] == [] for c in created)
    upd = sf.patch(COLL, json={"records": [{"attributes": {"type": "Account"}, "id": ids[0], "Name": "A2"}]}).json()
    assert upd == [{"id": ids[0], "success": True, "errors": []}]
    got = sf.get(COLL + "/Account", params={"ids": ",".join(ids + ["001000000000009AAA"]), "fields": "Name"}).json()
    assert [g and g["Name"] for g in got] == ["A2", "B", None]
    deleted = sf.delete(COLL, params={"ids": ids[1]}).json()
    assert deleted == [{"id": ids[1], "success": True, "errors": []}]
    assert [a["Name"] for a in org.records("Account")] == ["A2"]


def test_all_or_none_rolls_back_everything(sf, org):
    before = org.records("Account")
    body = {"allOrNone": True, "records": [
        {"attributes": {"type": "Account"}, "Name": "ok"},
        {"attributes": {"type": "Account"}},  # Name missing
        {"attributes": {"type": "Account"}, "Name": "also ok"},
    ]}
    r = sf.post(COLL, json=body).json()
    assert r[1] == {"success": False, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING",
                                                  "message": "Required fields are missing: [Name]", "fields": ["Name"]}]}
    for i in (0, 2):
        assert r[i]["success"] is False and "id" not in r[i]
        assert r[i]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert org.records("Account") == before


def test_all_or_none_rollback_restores_updates_and_rollups(sf, org, catalog):
    order = org.create("Order", {"AccountId": catalog["account"], "EffectiveDate": "2023-01-01", "Status": "Draft",
                                 "Pricebook2Id": catalog["pb"]})
    body = {"allOrNone": True, "records": [
        {"attributes": {"type": "OrderItem"}, "OrderId": order, "PricebookEntryId": catalog["pbe"], "Quantity": 2,
         "UnitPrice": 100},
        {"attributes": {"type": "OrderItem"}, "OrderId": order, "PricebookEntryId": catalog["pbe"], "Quantity": 1},
    ]}
    sf.post(COLL, json=body)
    assert org.records("OrderItem") == [] and org.get("Order", order)["TotalAmount"] is None


def test_partial_success_without_all_or_none(sf, org):
    r = sf.post(COLL, json={"records": [{"attributes": {"type": "Account"}, "Name": "a"},
                                        {"attributes": {"type": "Account"}, "Name": 1.5, "Bogus": 1}]}).json()
    assert r[0]["success"] and not r[1]["success"] and r[1]["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert len(org.records("Account")) == 1


def test_more_than_200_records_is_refused(sf):
    r = sf.post(COLL, json={"records": [{"attributes": {"type": "Account"}, "Name": "x"}] * 201})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_partial_failure_and_lock_row_faults(sf, org):
    org.faults.add(Fault.lock_rows([1], path=r"/composite/sobjects$"))
    recs = [{"attributes": {"type": "Account"}, "Name": f"a{i}"} for i in range(3)]
    r = sf.post(COLL, json={"records": recs}).json()
    assert [x["success"] for x in r] == [True, False, True]
    assert r[1]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    again = sf.post(COLL, json={"records": recs[:1]}).json()  # the rule fired once
    assert again[0]["success"]


def test_big_object_inserts_upsert_on_index(sf, org):
    row = {"attributes": {"type": "ArrByPeriodByCustomer__b"}, "Customer__c": "001000000000001AAA",
           "Subscription__c": "a01000000000001AAA", "StartDate__c": "2023-01-01T00:00:00.000+0000",
           "OrderProduct__c": "802000000000001AAA", "ClosingCMRR__c": 1000, "ChangeCategory__c": "New Business"}
    first = sf.post(COLL, json={"records": [row]}).json()
    assert first == [{"id": "000000000000000AAA", "success": True, "errors": []}]
    sf.post(COLL, json={"records": [dict(row, ClosingCMRR__c=1600, StartDate__c="2023-01-01T00:00:00Z")]})
    rows = org.records("ArrByPeriodByCustomer__b")
    assert len(rows) == 1 and rows[0]["ClosingCMRR__c"] == 1600
    other = dict(row, StartDate__c="2023-02-01T00:00:00Z")
    sf.post(COLL, json={"records": [other]})
    q = sf.get(API + "/query", params={"q": "SELECT StartDate__c, ClosingCMRR__c FROM ArrByPeriodByCustomer__b "
                                            "WHERE Customer__c = '001000000000001AAA' ORDER BY StartDate__c"}).json()
    assert [r["StartDate__c"] for r in q["records"]] == ["2023-01-01T00:00:00.000+0000", "2023-02-01T00:00:00.000+0000"]
    assert q["records"][0]["attributes"] == {"type": "ArrByPeriodByCustomer__b"}
    missing_index = dict(row)
    del missing_index["OrderProduct__c"]
    bad = sf.post(COLL, json={"records": [missing_index]}).json()
    assert bad[0]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
