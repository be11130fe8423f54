"""REST calls: paging, re-authentication, the retry policy, the limit and the budget, collections."""
from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest
import requests
import responses
from responses import matchers
from sf_support import ACCESS_TOKEN, API, CONSUMER_SECRET, NOW, TOKEN_URL, sample, token_body
from simple_salesforce.exceptions import SalesforceBulkV2LoadError, SalesforceMalformedRequest

from connector.errors import FatalError, SkippableError, TransientError
from connector.salesforce.client import SalesforceClient
from connector.salesforce.errors import (
    ApiBudgetExhausted,
    ApiLimitReached,
    AuthenticationFailed,
    BulkJobFailed,
    ConnectionFailed,
    NotFound,
    RecordRejected,
    RequestRejected,
    RowLocked,
    ServerUnavailable,
    translate,
)

QUERY = f"{API}/query/"
LIMIT = {"Sforce-Limit-Info": "api-usage=18/15000"}


def bearer(call) -> str:
    return call.request.headers["Authorization"]


def test_query_follows_next_records_url_and_keeps_money_exact(client, rsps):
    # Pagination is not in the recorded samples; the shape follows the REST API guide ("Execute a
    # SOQL Query": done=false + nextRecordsUrl "/services/data/vXX.X/query/01g…-2000").
    first = {"totalSize": 3, "done": False, "nextRecordsUrl": "/services/data/v62.0/query/01gD0000002HU6KIAW-2000",
             "records": [{"attributes": {"type": "Opportunity"}, "Id": "006000000000001AAA", "Amount": 1000.10}]}
    rsps.add(responses.GET, QUERY, body=json.dumps(first), headers=LIMIT,
             match=[matchers.query_param_matcher({"q": "SELECT Id, Amount FROM Opportunity"})])
    second = {"totalSize": 3, "done": True, "records": [
        {"attributes": {"type": "Opportunity"}, "Id": "006000000000002AAA", "Amount": 0.1},
        {"attributes": {"type": "Opportunity"}, "Id": "006000000000003AAA", "Amount": None}]}
    rsps.add(responses.GET, f"{API}/query/01gD0000002HU6KIAW-2000", body=json.dumps(second), headers=LIMIT)
    records = list(client.query("SELECT Id, Amount FROM Opportunity"))
    assert [r["Amount"] for r in records] == [Decimal("1000.10"), Decimal("0.1"), None]
    assert bearer(rsps.calls[0]) == f"Bearer {ACCESS_TOKEN}"
    assert client.calls_made == 2 and client.api_usage.used == 18 and client.api_usage.limit == 15000
    assert client.api_usage.observed_at == NOW


def test_query_recorded_parent_child_sample(client, rsps):
    rsps.add(responses.GET, QUERY, json=sample("query-parent-child-subquery.json"))
    records = list(client.query("SELECT FirstName, (SELECT Name FROM Opportunities) FROM Contact"))
    assert len(records) == 17
    assert records[12]["Opportunities"]["records"][0]["Name"] == "Illusional Opportunity"


def test_query_all_uses_query_all_and_count(client, rsps):
    rsps.add(responses.GET, f"{API}/queryAll/", json=sample("query-aggregate-count.json"))
    assert list(client.query_all("SELECT count(Id) FROM Account"))[0]["expr0"] == 10


def test_invalid_session_reauthenticates_once_and_repeats(cc_settings, clock, retry, rsps):
    rsps.add(responses.POST, TOKEN_URL, json=token_body("OLD"))
    rsps.add(responses.POST, TOKEN_URL, json=token_body("NEW"))
    rsps.add(responses.GET, QUERY, status=401, json=sample("error-invalid-session-401.json"))
    rsps.add(responses.GET, QUERY, json={"totalSize": 0, "done": True, "records": []})
    client = SalesforceClient(cc_settings, session=requests.Session(), clock=clock, retry=retry)
    assert list(client.query("SELECT Id FROM Account")) == []
    data_calls = [c for c in rsps.calls if c.request.url.startswith(API)]
    assert [bearer(c) for c in data_calls] == ["Bearer OLD", "Bearer NEW"]


def test_a_fresh_token_refused_too_is_fatal(cc_settings, clock, retry, rsps, caplog):
    caplog.set_level(logging.DEBUG)
    rsps.add(responses.POST, TOKEN_URL, json=token_body("T"))
    rsps.add(responses.GET, QUERY, status=401, json=sample("error-invalid-session-401.json"))
    client = SalesforceClient(cc_settings, session=requests.Session(), clock=clock, retry=retry)
    with pytest.raises(AuthenticationFailed) as info:
        list(client.query("SELECT Id FROM Account"))
    assert len([c for c in rsps.calls if c.request.url.startswith(API)]) == 2
    assert CONSUMER_SECRET not in caplog.text and CONSUMER_SECRET not in str(info.value)


@pytest.mark.parametrize(("status", "body", "error"), [
    (503, "<html>Service Unavailable</html>", ServerUnavailable),
    (500, [{"message": "Server is busy", "errorCode": "SERVER_UNAVAILABLE"}], ServerUnavailable),
    (400, [{"message": "unable to obtain exclusive access to this record", "errorCode": "UNABLE_TO_LOCK_ROW"}],
     RowLocked),
    (None, requests.ConnectionError("reset"), ConnectionFailed),
    (None, requests.ReadTimeout("slow"), ConnectionFailed),
], ids=["503", "server-unavailable-code", "unable-to-lock-row", "connection-error", "read-timeout"])
def test_transient_failures_are_retried_without_sleeping(client, rsps, sleeps, status, body, error):
    if status is None:
        rsps.add(responses.GET, QUERY, body=body)
    elif isinstance(body, str):
        rsps.add(responses.GET, QUERY, status=status, body=body)
    else:
        rsps.add(responses.GET, QUERY, status=status, json=body)
    rsps.add(responses.GET, QUERY, json={"totalSize": 0, "done": True, "records": []})
    assert list(client.query("SELECT Id FROM Account")) == []
    assert len(rsps.calls) == 2 and len(sleeps) == 1 and 0 < sleeps[0] <= 1.5


def test_retries_are_bounded_and_back_off(client, rsps, sleeps, retry):
    rsps.add(responses.GET, QUERY, status=503, body="busy")
    with pytest.raises(ServerUnavailable) as info:
        list(client.query("SELECT Id FROM Account"))
    assert isinstance(info.value, TransientError)
    assert len(rsps.calls) == retry.max_attempts
    assert len(sleeps) == retry.max_attempts - 1
    assert sleeps[-1] > sleeps[0]


def test_400_is_not_retried_and_keeps_error_code_and_cause(client, rsps, sleeps):
    rsps.add(responses.GET, QUERY, status=400, json=sample("error-query-invalid-type-400.json"))
    with pytest.raises(RequestRejected) as info:
        list(client.query("SELECT Xyzzy FROM Xyzzy"))
    assert info.value.error_code == "INVALID_TYPE" and info.value.status == 400
    assert "sObject type 'Xyzzy' is not supported" in str(info.value)
    assert isinstance(info.value.__cause__, SalesforceMalformedRequest)
    assert isinstance(info.value, FatalError)
    assert len(rsps.calls) == 1 and sleeps == []


def test_404_is_not_retried(client, rsps, sleeps):
    rsps.add(responses.GET, f"{API}/sobjects/Account/001000000000001AAA", status=404,
             json=[{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
    with pytest.raises(NotFound):
        client.get("Account", "001000000000001AAA")
    assert len(rsps.calls) == 1 and sleeps == []


def test_request_limit_exceeded_stops_cleanly(client, rsps, sleeps):
    rsps.add(responses.GET, QUERY, status=403, json=sample("error-request-limit-exceeded-403.json"))
    with pytest.raises(ApiLimitReached) as info:
        list(client.query("SELECT Id FROM Account"))
    assert isinstance(info.value, FatalError)
    assert info.value.error_code == "REQUEST_LIMIT_EXCEEDED"
    assert info.value.retry_after == NOW.replace(hour=13)
    assert "rolling 24-hour window" in str(info.value) and "2024-05-01 13:00 UTC" in str(info.value)
    assert len(rsps.calls) == 1 and sleeps == []


def test_budget_stops_before_the_org_limit(client, rsps):
    rsps.add(responses.GET, f"{API}/limits/", json=sample("limits.json"),
             headers={"Sforce-Limit-Info": "api-usage=12000/15000"})
    limits = client.limits()
    assert limits["DailyApiRequests"] == {"Max": 15000, "Remaining": 14953}
    with pytest.raises(ApiBudgetExhausted) as info:
        client.describe("Opportunity")
    message = str(info.value)
    assert "12000" in message and "15000" in message and "80%" in message
    assert "rolling 24-hour window" in message
    assert info.value.retry_after > NOW
    assert len(rsps.calls) == 1 and client.calls_made == 1  # nothing more was sent


def test_budget_below_share_lets_calls_through(client, rsps):
    rsps.add(responses.GET, f"{API}/sobjects/", json={"sobjects": []},
             headers={"Sforce-Limit-Info": "api-usage=11999/15000"})
    client.describe_global()
    client.describe_global()
    assert client.calls_made == 2


def test_create_is_not_repeated_after_a_read_timeout(client, rsps, sleeps):
    rsps.add(responses.POST, f"{API}/sobjects/Account/", body=requests.ReadTimeout("slow"))
    with pytest.raises(ConnectionFailed):
        client.create("Account", {"Name": "Acme"})
    assert len(rsps.calls) == 1 and sleeps == []


def test_single_record_write_rejected_is_skippable(client, rsps):
    rsps.add(responses.PATCH, f"{API}/sobjects/Order/ExternalId__c/E%2F1", status=400,
             json=[{"message": "Amount must be positive", "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                    "fields": ["Amount__c"]}])
    with pytest.raises(RecordRejected) as info:
        client.upsert("Order", "ExternalId__c", "E/1", {"Amount__c": Decimal("-1")})
    assert isinstance(info.value, SkippableError)
    assert info.value.fields == ("Amount__c",)


def test_upsert_sends_exact_decimals_and_reads_created(client, rsps):
    rsps.add(responses.PATCH, f"{API}/sobjects/Subscription__c/ExternalId__c/S-001", status=201,
             json={"id": "a0B000000000001AAA", "success": True, "errors": [], "created": True})
    result = client.upsert("Subscription__c", "ExternalId__c", "S-001", {"MRR__c": Decimal("1000.10")})
    assert result.success and result.created and result.id == "a0B000000000001AAA"
    assert rsps.calls[0].request.body == b'{"MRR__c": 1000.10}'


def test_collections_split_at_200_with_per_record_errors(client, rsps):
    url = f"{API}/composite/sobjects/Contact/Email"
    records = [{"Email": f"p{i}@example.com", "LastName": f"P{i}"} for i in range(450)]

    def answer(request):
        sent = json.loads(request.body)["records"]
        assert all(r["attributes"] == {"type": "Contact"} for r in sent)
        body = [{"id": f"003{i:015d}", "success": True, "errors": [], "created": True} for i in range(len(sent))]
        if sent[0]["Email"] == "p200@example.com":
            # per-record failure shape from the REST API guide (no real recording exists)
            body[5] = {"success": False, "errors": [{"statusCode": "DUPLICATES_DETECTED",
                                                     "message": "Use one of these records?", "fields": []}]}
            body[6] = {"success": False, "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW",
                                                     "message": "unable to obtain exclusive access", "fields": []}]}
        return 200, {}, json.dumps(body)

    rsps.add_callback(responses.PATCH, url, callback=answer)
    results = client.upsert_collection("Contact", "Email", records)
    assert [len(json.loads(c.request.body)["records"]) for c in rsps.calls] == [200, 200, 50]
    assert len(results) == 450
    assert [r.external_id for r in results] == [r["Email"] for r in records]
    bad = [r for r in results if not r.success]
    assert [(r.external_id, r.errors[0].error_code) for r in bad] == [
        ("p205@example.com", "DUPLICATES_DETECTED"), ("p206@example.com", "UNABLE_TO_LOCK_ROW")]
    assert bad[1].transient and not bad[0].transient


def test_collections_recorded_sample(client, rsps):
    rsps.add(responses.PATCH, f"{API}/composite/sobjects/Contact/Email",
             json=sample("collections-upsert-created-mixed.json"))
    results = client.upsert_collection("Contact", "Email", [{"Email": f"{i}@x.org"} for i in range(4)],
                                       all_or_none=False)
    assert [r.created for r in results] == [False, False, False, True]
    assert json.loads(rsps.calls[0].request.body)["allOrNone"] is False


def test_bulk_library_errors_are_translated_too():
    cause = SalesforceBulkV2LoadError("Failed to upload job data")
    error = translate(cause, what="bulk ingest", now=NOW)
    assert isinstance(error, BulkJobFailed) and isinstance(error, FatalError)


def test_tls_verification_cannot_be_switched_off(session_settings):
    session = requests.Session()
    session.verify = False
    with pytest.raises(FatalError, match="TLS verification"):
        SalesforceClient(session_settings, session=session)


def test_names_are_validated_before_any_call(client, rsps):
    with pytest.raises(ValueError):
        client.describe("Account/../../limits")
    with pytest.raises(ValueError):
        client.get("Account", "001' OR 1=1")
    assert len(rsps.calls) == 0


def test_token_never_in_logs(client, rsps, caplog):
    caplog.set_level(logging.DEBUG)
    rsps.add(responses.GET, QUERY, status=503, body="busy")
    rsps.add(responses.GET, QUERY, json={"totalSize": 0, "done": True, "records": []})
    list(client.query("SELECT Id FROM Account"))
    assert "retrying" in caplog.text and ACCESS_TOKEN not in caplog.text
    assert ACCESS_TOKEN not in repr(client._token)


def test_read_uses_rest_at_or_below_the_bulk_threshold(client, rsps):
    from connector.salesforce.soql import select
    q = select("Id").from_("Account")
    rsps.add(responses.GET, QUERY, json={"totalSize": 10000, "done": True, "records": []},
             match=[matchers.query_param_matcher({"q": "SELECT COUNT() FROM Account"})])
    rsps.add(responses.GET, QUERY, json={"totalSize": 1, "done": True, "records": [{"Id": "001000000000001AAA"}]},
             match=[matchers.query_param_matcher({"q": "SELECT Id FROM Account"})])
    assert [r["Id"] for r in client.read(q)] == ["001000000000001AAA"]


def test_read_switches_to_bulk_above_the_threshold(client, rsps):
    from connector.salesforce.soql import select
    q = select("Id").from_("Account")
    rsps.add(responses.GET, QUERY, json={"totalSize": 10001, "done": True, "records": []})
    rsps.add(responses.POST, f"{API}/jobs/query", json={"id": "750000000000001AAA", "state": "UploadComplete"})
    client.read(q)
    assert json.loads(rsps.calls[-1].request.body) == {"operation": "query", "query": "SELECT Id FROM Account"}
