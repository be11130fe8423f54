"""Seeding, org automation on seeded data, simple-salesforce compatibility and the HTTPS server."""
from __future__ import annotations

import json

import pytest
import requests
from simple_salesforce import Salesforce

from connector.sandbox.seed import SeedError, load_seed
from connector.sandbox.server import serve
from sandbox_support import BASE

SEED = {
    "User": [{"@ref": "chloe", "Username": "chloe@example.test", "FirstName": "Chloe", "LastName": "Ng",
              "Email": "chloe@example.test", "Alias": "cng"}],
    "Account": [{"@ref": "acme", "Name": "Acme", "OwnerId": "@chloe", "BillCycleDay__c": 1}],
    "Product2": [{"@ref": "seat", "Name": "Seat", "IsActive": True, "ProvisioningType__c": "Subscription",
                  "PricePeriod__c": "Month"}],
    "Pricebook2": [{"@ref": "std", "Name": "Standard Price Book", "IsActive": True, "IsStandard": True}],
    "PricebookEntry": [{"@ref": "seat-std", "Pricebook2Id": "@std", "Product2Id": "@seat", "UnitPrice": 100,
                        "IsActive": True}],
    "Opportunity": [{"@ref": "opp", "Name": "Acme new", "AccountId": "@acme", "StageName": "Negotiation/Review",
                     "CloseDate": "2023-01-01", "SyncedQuoteId": "@q1", "OwnerId": "@chloe"}],
    "Quote": [{"@ref": "q1", "Name": "Q1", "OpportunityId": "@opp", "Pricebook2Id": "@std"}],
    "QuoteLineItem": [{"QuoteId": "@q1", "PricebookEntryId": "@seat-std", "Quantity": 10, "UnitPrice": 100,
                       "ServiceDate": "2023-01-15", "EndDate__c": "2024-01-14", "BillingFrequency__c": "Month"}],
    "Period": [{"Type": "Month", "StartDate": "2023-01-01", "EndDate": "2023-01-31", "Number": 1,
                "FullyQualifiedLabel": "January FY 2023"}],
}


def test_seed_resolves_refs_including_forward_ones(org, tmp_path):
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(SEED))
    refs = load_seed(org, path)
    assert set(refs) == {"chloe", "acme", "seat", "std", "seat-std", "opp", "q1"}
    quote = org.get("Quote", refs["q1"])
    assert quote["IsSyncing"] is True and quote["AccountId"] == refs["acme"]
    (line,) = org.records("QuoteLineItem")
    assert line["Product2Id"] == refs["seat"] and line["TotalPrice"] == 1000 and line["LineNumber"] == "00001"
    assert org.get("Account", refs["acme"])["OwnerId"] == refs["chloe"]
    assert org.api_usage == 0


@pytest.mark.parametrize("seed, message", [
    ({"Account": [{"Name": "x", "ParentId": "@nobody"}]}, "no record has @ref 'nobody'"),
    ({"Account": [{"Nope__c": 1}]}, "No such column"),
    ({"Account": [{"@ref": "a", "Name": "x"}, {"@ref": "a", "Name": "y"}]}, "duplicate @ref"),
], ids=["unknown-ref", "unknown-field", "duplicate-ref"])
def test_seed_errors_name_the_problem(org, seed, message):
    with pytest.raises(SeedError, match=message):
        load_seed(org, seed)


def test_order_lifecycle_rules(org, catalog):
    order = org.create("Order", {"AccountId": catalog["account"], "EffectiveDate": "2023-01-15", "Status": "Draft",
                                 "Pricebook2Id": catalog["pb"], "ExternalId__c": "O-1"})
    from connector.sandbox.errors import ApiError

    with pytest.raises(ApiError, match="no products"):
        org.update("Order", order, {"Status": "Activated"})
    item = org.create("OrderItem", {"OrderId": order, "PricebookEntryId": catalog["pbe"], "Quantity": 10,
                                    "UnitPrice": 100, "ServiceDate": "2023-01-15", "EndDate": "2024-01-14"})
    org.update("Order", order, {"Status": "Activated"})
    rec = org.get("Order", order)
    assert rec["ActivatedDate"] == "2023-01-01T00:00:00.000+0000" and rec["TotalAmount"] == 1000
    assert rec["OrderNumber"] == "00000100"
    with pytest.raises(ApiError, match="activated order"):
        org.update("OrderItem", item, {"Quantity": 12})
    with pytest.raises(ApiError, match="Activated status"):
        org.create("Order", {"AccountId": catalog["account"], "EffectiveDate": "2023-01-15", "Status": "Activated"})
    other_pb = org.create("Pricebook2", {"Name": "Other"})
    draft = org.create("Order", {"AccountId": catalog["account"], "EffectiveDate": "2023-01-15", "Status": "Draft",
                                 "Pricebook2Id": other_pb})
    with pytest.raises(ApiError, match="different pricebook"):
        org.create("OrderItem", {"OrderId": draft, "PricebookEntryId": catalog["pbe"], "Quantity": 1, "UnitPrice": 1})


def test_simple_salesforce_talks_to_the_in_process_org(org, sf):
    client = Salesforce(instance_url=BASE, session_id=org.issue_token(), session=sf, version="60.0")
    created = client.Account.create({"Name": "Via simple-salesforce"})
    assert created["success"]
    assert client.query_all("SELECT Name FROM Account")["records"][0]["Name"] == "Via simple-salesforce"
    assert client.api_usage["api-usage"].used == org.api_usage == 2  # parsed from Sforce-Limit-Info
    assert client.Subscription__c.upsert("ExternalId__c/S-9", {"Quantity__c": 1}) == 201
    assert client.Account.describe()["name"] == "Account"


def test_https_server_on_loopback(org, tmp_path):
    ca = tmp_path / "ca.pem"
    with serve(org, "127.0.0.1", 0, ca) as server:
        assert server.url.startswith("https://localhost:") and org.config.instance_url == server.url
        token = requests.post(server.url + "/services/oauth2/token", verify=str(ca), timeout=10,
                              data={"grant_type": "client_credentials", "client_id": "revsync-test-client",
                                    "client_secret": "revsync-test-secret"}).json()
        assert token["instance_url"] == server.url
        headers = {"Authorization": "Bearer " + token["access_token"]}
        r = requests.post(server.url + "/services/data/v60.0/sobjects/Account/", json={"Name": "Über"},
                          headers=headers, verify=str(ca), timeout=10)
        assert r.status_code == 201
        q = requests.get(server.url + "/services/data/v60.0/query", params={"q": "SELECT Name FROM Account"},
                         headers=headers, verify=str(ca), timeout=10)
        assert q.json()["records"][0]["Name"] == "Über" and q.headers["Sforce-Limit-Info"] == "api-usage=2/15000"
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(server.url + "/services/data", timeout=10)  # not trusted without the test CA
