"""REST resources of the sandbox org, checked against the recorded Salesforce shapes."""
from __future__ import annotations

import datetime as dt
import re

from connector.sandbox.ids import is_valid

from sandbox_support import API, BASE, sample

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")


def test_create_get_update_delete_and_headers(sf, org, clock):
    r = sf.post(API + "/sobjects/Account/", json={"Name": "Acme", "BillCycleDay__c": 15})
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"id", "success", "errors"} and body["success"] and is_valid(body["id"])
    assert r.headers["Sforce-Limit-Info"] == "api-usage=1/15000"
    rec = sf.get(f"{API}/sobjects/Account/{body['id']}").json()
    assert rec["attributes"] == {"type": "Account", "url": f"/services/data/v60.0/sobjects/Account/{body['id']}"}
    assert rec["BillCycleDay__c"] == 15 and rec["IsDeleted"] is False
    assert TS.match(rec["CreatedDate"]) and rec["CreatedDate"] == "2023-01-01T00:00:00.000+0000"
    clock.advance(dt.timedelta(seconds=5))
    assert sf.patch(f"{API}/sobjects/Account/{body['id']}", json={"Name": "Acme 2"}).status_code == 204
    rec = sf.get(f"{API}/sobjects/Account/{body['id']}", params={"fields": "Name,SystemModstamp"}).json()
    assert rec == {"attributes": rec["attributes"], "Name": "Acme 2", "SystemModstamp": "2023-01-01T00:00:05.000+0000"}
    assert sf.delete(f"{API}/sobjects/Account/{body['id']}").status_code == 204
    missing = sf.get(f"{API}/sobjects/Account/{body['id']}")
    assert missing.status_code == 404 and missing.json()[0]["errorCode"] == "NOT_FOUND"
    assert [e.status for e in org.request_log][-1] == 404
    assert org.api_usage == 6


def test_timestamps_never_go_backwards(org, clock):
    a = org.create("Account", {"Name": "A"})
    clock.advance(dt.timedelta(hours=-1))  # a clock step back (NTP) must not reorder writes
    b = org.create("Account", {"Name": "B"})
    assert org.get("Account", b)["SystemModstamp"] >= org.get("Account", a)["SystemModstamp"]


def test_error_array_shape_matches_recorded_error(sf):
    r = sf.get(API + "/query", params={"q": "SELECT Xyzzy FROM Xyzzy"})
    assert r.status_code == 400
    recorded = sample("error-query-invalid-type-400.json")
    assert list(r.json()[0]) == list(recorded[0])  # message first, then errorCode
    assert r.json() == recorded


def test_write_validation_errors(sf, catalog):
    cases = [
        ({"Nope__c": 1}, "INVALID_FIELD"),
        ({"Name": "x", "IsDeleted": True}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
        ({"BillingCountry": "x"}, "REQUIRED_FIELD_MISSING"),
        ({"Name": "x", "ParentId": "nope"}, "MALFORMED_ID"),
        ({"Name": "x", "ParentId": "0017e00001WZ30qAAD"[:15]}, "INVALID_CROSS_REFERENCE_KEY"),
        ({"Name": "x", "ParentId": catalog["product"]}, "FIELD_INTEGRITY_EXCEPTION"),
        ({"Name": "x" * 256}, "STRING_TOO_LONG"),
        ({"Name": "x", "CustomerSince__c": "2023-13-01"}, "JSON_PARSER_ERROR"),
    ]
    for body, code in cases:
        r = sf.post(API + "/sobjects/Account", json=body)
        assert r.status_code == 400, body
        assert r.json()[0]["errorCode"] == code, (body, r.json())
    r = sf.post(API + "/sobjects/Product2", json={"Name": "x", "PricePeriod__c": "Fortnight"})
    assert r.json()[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


def test_upsert_by_external_id_201_then_200_then_204_on_old_versions(sf, org):
    url = API + "/sobjects/Subscription__c/ExternalId__c/S-001"
    r = sf.patch(url, json={"Quantity__c": 10, "UnitPrice__c": 100, "Status__c": "Active"})
    assert r.status_code == 201 and r.json()["created"] is True
    r2 = sf.patch(url, json={"Quantity__c": 16})
    assert r2.status_code == 200 and r2.json() == {"id": r.json()["id"], "success": True, "errors": [], "created": False}
    r3 = sf.patch(BASE + "/services/data/v45.0/sobjects/Subscription__c/ExternalId__c/S-001", json={"Quantity__c": 17})
    assert r3.status_code == 204 and r3.content == b""
    rows = org.records("Subscription__c")
    assert len(rows) == 1 and rows[0]["Quantity__c"] == 17 and rows[0]["Name"] == "SUB-0000001"
    got = sf.get(API + "/sobjects/Subscription__c/ExternalId__c/s-001").json()  # external ids are case-insensitive
    assert got["Id"] == r.json()["id"]
    dup = sf.post(API + "/sobjects/Subscription__c", json={"ExternalId__c": "S-001"})
    assert dup.json()[0]["errorCode"] == "DUPLICATE_VALUE"
    bad = sf.patch(API + "/sobjects/Subscription__c/Status__c/x", json={})
    assert bad.status_code == 404


def test_query_paging_with_next_records_url(sf, org):
    org.config.query_batch_size = 3
    for i in range(8):
        org.create("Account", {"Name": f"A{i}"})
    r = sf.get(API + "/query/", params={"q": "SELECT Name FROM Account ORDER BY Name"}).json()
    assert r["totalSize"] == 8 and r["done"] is False and len(r["records"]) == 3
    assert re.match(r"^/services/data/v60.0/query/01g\w{15}-3$", r["nextRecordsUrl"])
    names = [x["Name"] for x in r["records"]]
    while not r["done"]:
        r = sf.get(BASE + r["nextRecordsUrl"]).json()
        names += [x["Name"] for x in r["records"]]
    assert names == [f"A{i}" for i in range(8)] and "nextRecordsUrl" not in r
    big = sf.get(API + "/query", params={"q": "SELECT Name FROM Account"},
                 headers={"Sforce-Query-Options": "batchSize=200"}).json()
    assert big["done"] and len(big["records"]) == 8


def test_query_all_shows_soft_deleted_rows(sf, org):
    keep = org.create("Account", {"Name": "keep"})
    gone = org.create("Account", {"Name": "gone"})
    org.delete("Account", gone)
    q = "SELECT Id, IsDeleted FROM Account ORDER BY Name"
    assert [r["Id"] for r in sf.get(API + "/query", params={"q": q}).json()["records"]] == [keep]
    all_rows = sf.get(API + "/queryAll", params={"q": q + " NULLS FIRST"}).json()["records"]
    assert [(r["Id"], r["IsDeleted"]) for r in all_rows] == [(gone, True), (keep, False)]
    again = sf.delete(f"{API}/sobjects/Account/{gone}")
    assert again.status_code == 404 and again.json()[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_count_and_aggregate_shapes(sf, org):
    for i in range(3):
        org.create("Account", {"Name": f"A{i}"})
    count = sf.get(API + "/query", params={"q": "SELECT COUNT() FROM Account"}).json()
    assert count == {"totalSize": 3, "done": True, "records": []}
    agg = sf.get(API + "/query", params={"q": "select count(Id) from Account"}).json()
    recorded = sample("query-aggregate-count.json")
    assert agg.keys() == recorded.keys() and agg["records"][0].keys() == recorded["records"][0].keys()
    assert agg["records"][0] == {"attributes": {"type": "AggregateResult"}, "expr0": 3}


def test_parent_relationship_fields_nest_and_null(sf, org, catalog):
    opp = org.create("Opportunity", {"Name": "o", "StageName": "Prospecting", "CloseDate": "2023-01-31",
                                     "AccountId": catalog["account"]})
    org.create("Opportunity", {"Name": "p", "StageName": "Closed Won", "CloseDate": "2023-01-31"})
    rows = sf.get(API + "/query", params={"q": "SELECT Name, IsWon, Account.Name FROM Opportunity ORDER BY Name"}).json()
    first, second = rows["records"]
    assert first["Account"]["Name"] == "Acme" and first["Account"]["attributes"]["type"] == "Account"
    assert second["Account"] is None and second["IsWon"] is True
    assert first["attributes"]["url"].endswith(opp)


def test_describe_matches_recorded_key_sets(sf):
    recorded = sample("describe-Opportunity.json")
    d = sf.get(API + "/sobjects/Opportunity/describe").json()
    assert set(d) == set(recorded)
    assert all(set(f) == set(recorded["fields"][0]) for f in d["fields"])
    assert set(d["childRelationships"][0]) == set(recorded["childRelationships"][0])
    sub = sf.get(API + "/sobjects/Subscription__c/describe/").json()
    fields = {f["name"]: f for f in sub["fields"]}
    assert sub["custom"] and sub["keyPrefix"] == "a01"
    assert fields["ExternalId__c"]["externalId"] and fields["ExternalId__c"]["unique"]
    assert fields["Account__c"]["relationshipName"] == "Account__r" and fields["Account__c"]["referenceTo"] == ["Account"]
    assert fields["Quantity__c"]["precision"] == 15 and fields["Quantity__c"]["scale"] == 3
    acct = sf.get(API + "/sobjects/Account/describe").json()
    assert "Subscriptions__r" in {c["relationshipName"] for c in acct["childRelationships"]}
    li = {f["name"]: f for f in sf.get(API + "/sobjects/OrderItem/describe").json()["fields"]}
    assert [p["value"] for p in li["LineAction__c"]["picklistValues"]][0] == "Add New Product"


def test_global_describe_and_limits_shapes(sf, org):
    recorded = sample("describe-global-trimmed.json")
    g = sf.get(API + "/sobjects").json()
    assert set(g) == set(recorded) and g["maxBatchSize"] == 200
    assert all(set(o) == set(recorded["sobjects"][0]) for o in g["sobjects"])
    names = {o["name"] for o in g["sobjects"]}
    assert {"Order", "OrderItem", "Subscription__c", "ArrByPeriod__b", "ArrByPeriodByCustomer__b", "Period"} <= names
    limits = sf.get(API + "/limits").json()
    assert set(limits) == set(sample("limits.json"))
    assert limits["DailyApiRequests"] == {"Max": 15000, "Remaining": 15000 - org.api_usage}


def test_unauthenticated_requests_get_invalid_session(org):
    from connector.sandbox.transport import sandbox_session

    r = sandbox_session(org).get(API + "/limits")
    assert r.status_code == 401 and r.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    assert org.api_usage == 0  # refused sessions do not count toward the daily limit
