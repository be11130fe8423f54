"""SOAP deleteByExample() on the sandbox org: big-object rows deleted by their full index, strictly,
through the raw endpoint and through the connector's Salesforce client."""
from __future__ import annotations

import datetime as dt

import pytest

from connector.clock import FrozenClock
from connector.salesforce.client import SalesforceClient
from connector.salesforce.errors import RequestRejected
from connector.salesforce.retry import RetryPolicy
from connector.salesforce.settings import load_settings
from connector.salesforce.soap import delete_by_example_envelope, parse_delete_by_example
from connector.sandbox.faults import Fault
from connector.sandbox.transport import DEFAULT_BASE_URL, sandbox_session
from sandbox_support import BASE

SOAP = BASE + "/services/Soap/u/60.0"
HEADERS = {"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": '""'}


@pytest.fixture
def rows(org, catalog):
    """Three ARR rows of two order products in ArrByPeriod__b (index: StartDate__c, OrderProduct__c)."""
    order = org.create("Order", {"AccountId": catalog["account"], "Pricebook2Id": catalog["pb"],
                                 "EffectiveDate": "2023-01-01", "Status": "Draft"})
    items = [org.create("OrderItem", {"OrderId": order, "PricebookEntryId": catalog["pbe"], "Quantity": 1,
                                      "UnitPrice": 100}) for _ in range(2)]
    for item, start in ((items[0], "2023-01-01"), (items[0], "2023-02-01"), (items[1], "2023-01-01")):
        org.insert_big("ArrByPeriod__b", {"StartDate__c": f"{start}T00:00:00.000+0000", "OrderProduct__c": item,
                                          "EndDate__c": f"{start}T00:00:00.000+0000", "OpeningARR__c": 0})
    return items


def post(org, body: bytes):
    return sandbox_session(org).post(SOAP, data=body, headers=HEADERS)


def test_rows_are_deleted_by_their_full_index_and_again_without_harm(org, rows):
    token = org.issue_token()
    template = {"StartDate__c": dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc), "OrderProduct__c": rows[0]}
    r = post(org, delete_by_example_envelope(token, "ArrByPeriod__b", [template]))
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/xml")
    assert [(x.success, x.row_count) for x in parse_delete_by_example(r.content)] == [(True, 1)]
    left = sorted((x["OrderProduct__c"], x["StartDate__c"][:10]) for x in org.records("ArrByPeriod__b"))
    assert left == sorted([(rows[0], "2023-02-01"), (rows[1], "2023-01-01")])
    # "Repeating a successful deleteByExample() operation results in success"
    again = parse_delete_by_example(post(org, delete_by_example_envelope(token, "ArrByPeriod__b", [template])).content)
    assert [(x.success, x.row_count) for x in again] == [(True, 0)]


@pytest.mark.parametrize("template, field", [
    ({"StartDate__c": "2023-01-01T00:00:00.000Z"}, "OrderProduct__c"),                      # part of the index
    ({"StartDate__c": "2023-01-01T00:00:00.000Z", "OrderProduct__c": None}, "OrderProduct__c"),   # nil
    ({"StartDate__c": "2023-01-01T00:00:00.000Z", "OrderProduct__c": "{item}", "EndDate__c": "x"}, "EndDate__c"),
], ids=["partial-index", "nil-index-field", "non-index-field"])
def test_a_template_without_exactly_the_index_fails_alone(org, rows, template, field):
    token = org.issue_token()
    bad = {k: (v.format(item=rows[1]) if isinstance(v, str) else v) for k, v in template.items()}
    good = {"StartDate__c": "2023-02-01T00:00:00.000Z", "OrderProduct__c": rows[0]}
    results = parse_delete_by_example(post(org, delete_by_example_envelope(token, "ArrByPeriod__b", [bad, good])).content)
    assert [r.success for r in results] == [False, True]
    assert results[0].errors[0].error_code == "INVALID_FIELD" and field in results[0].errors[0].fields
    assert len(org.records("ArrByPeriod__b")) == 2  # only the good template deleted a row


def test_faults_for_a_bad_session_and_a_non_big_object(org, rows):
    r = post(org, delete_by_example_envelope("not-a-session", "ArrByPeriod__b", [{}]))
    assert r.status_code == 500 and b"<faultcode>sf:INVALID_SESSION_ID</faultcode>" in r.content
    r = post(org, delete_by_example_envelope(org.issue_token(), "Account", [{"Name": "x"}]))
    assert r.status_code == 500 and b"sf:INVALID_TYPE" in r.content


def client_for(org) -> SalesforceClient:
    settings = load_settings({"auth": "client_credentials", "login_url": DEFAULT_BASE_URL,
                              "consumer_key": "revsync-test-client"}, source="test.toml",
                             environ={"REVSYNC_SF_CONSUMER_SECRET": "revsync-test-secret"})
    return SalesforceClient(settings, session=sandbox_session(org), clock=FrozenClock(dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc)),
                            retry=RetryPolicy(sleep=lambda s: None))


def test_the_client_deletes_in_calls_of_200_and_renews_an_expired_session(org, rows):
    client = client_for(org)
    client.limits()  # logged in
    org.faults.add(Fault.session_expired(path="/Soap/"))
    org.faults.add(Fault.server_unavailable(path="/Soap/", skip=1))
    templates = [{"StartDate__c": dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc), "OrderProduct__c": item}
                 for item in rows] + [{"StartDate__c": dt.datetime(2024, m, 1, tzinfo=dt.timezone.utc),
                                       "OrderProduct__c": rows[0]} for m in range(1, 13)] * 20
    results = client.delete_by_example("ArrByPeriod__b", templates)
    assert len(results) == 242 and all(r.success for r in results)
    assert sum(r.row_count for r in results) == 2
    assert [x["StartDate__c"][:10] for x in org.records("ArrByPeriod__b")] == ["2023-02-01"]
    soap_calls = [e for e in org.request_log if "/Soap/" in e.path]
    assert [e.status for e in soap_calls] == [500, 503, 200, 200]  # expired, unavailable, then 2 calls


def test_the_client_reports_a_call_the_org_refuses(org, rows):
    client = client_for(org)
    with pytest.raises(RequestRejected, match="INVALID_TYPE"):
        client.delete_by_example("Account", [{"Name": "x"}])
