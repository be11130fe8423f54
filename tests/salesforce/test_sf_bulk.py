"""Bulk API 2.0: query jobs paged by Sforce-Locator and resumable; ingest jobs end to end."""
from __future__ import annotations

import json

import pytest
import requests
import responses
from sf_support import API, TOKEN_URL, sample_text, token_body

from connector.salesforce.client import SalesforceClient
from connector.salesforce.errors import BulkJobFailed

JOB = "7508d00000IhhkKAAR"  # from bulk2-query-job-create-response.json
INGEST = "7508d00000Ihhl5AAB"  # from the bulk2-ingest-*.json samples


def raw(name: str) -> dict:
    """A recorded body as plain JSON values, for responses to serialise again."""
    return json.loads(sample_text(name))


def job_info(state: str) -> dict:
    info = raw("bulk2-query-job-create-response.json")
    info["state"] = state
    return info


def add_pages(rsps):
    # Result CSVs and their headers were never recorded; shapes follow "Get Results for a Query Job".
    rsps.add(responses.GET, f"{API}/jobs/query/{JOB}/results",
             body='"Id","Name","Amount"\n"001A00000000001AAA","Acme, Inc.","10.50"\n"001A00000000002AAA","Beta",""\n',
             headers={"Sforce-Locator": "MjAwMDA", "Sforce-NumberOfRecords": "2",
                      "Content-Type": "text/csv"},
             match=[responses.matchers.query_param_matcher({})])
    rsps.add(responses.GET, f"{API}/jobs/query/{JOB}/results",
             body='"Id","Name","Amount"\n"001A00000000003AAA","Gamma ""G""","1"\n',
             headers={"Sforce-Locator": "null", "Sforce-NumberOfRecords": "1", "Content-Type": "text/csv"},
             match=[responses.matchers.query_param_matcher({"locator": "MjAwMDA"})])


def test_bulk_query_creates_polls_and_pages_by_locator(client, rsps, sleeps):
    rsps.add(responses.POST, f"{API}/jobs/query", json=raw("bulk2-query-job-create-response.json"))
    rsps.add(responses.GET, f"{API}/jobs/query/{JOB}", json=job_info("InProgress"))
    rsps.add(responses.GET, f"{API}/jobs/query/{JOB}", json=job_info("InProgress"))
    rsps.add(responses.GET, f"{API}/jobs/query/{JOB}", json=job_info("JobComplete"))
    add_pages(rsps)
    result = client.bulk_query("SELECT Id, Name, Amount FROM Account")
    assert result.job_id == JOB  # known before reading, so it can be persisted
    assert json.loads(rsps.calls[0].request.body) == {"operation": "query",
                                                      "query": "SELECT Id, Name, Amount FROM Account"}
    records = list(result)
    assert [r["Name"] for r in records] == ["Acme, Inc.", "Beta", 'Gamma "G"']
    assert records[1]["Amount"] is None and records[0]["Amount"] == "10.50"
    assert sleeps == [1.0, 2.0]
    assert result.locator == "MjAwMDA"


def test_include_deleted_uses_query_all(client, rsps):
    rsps.add(responses.POST, f"{API}/jobs/query", json=raw("bulk2-query-job-info-queryAll.json"))
    result = client.bulk_query("SELECT Id FROM ActiveFeatureLicenseMetric", include_deleted=True)
    assert json.loads(rsps.calls[0].request.body)["operation"] == "queryAll"
    assert result.job_id == "750Tn000004ZoR3IAK"


def test_resume_reads_from_the_saved_locator(client, rsps):
    rsps.add(responses.GET, f"{API}/jobs/query/{JOB}", json=job_info("JobComplete"))
    add_pages(rsps)
    records = list(client.resume_bulk_query(JOB, "MjAwMDA"))
    assert [r["Id"] for r in records] == ["001A00000000003AAA"]
    assert not any("results" in c.request.url and "locator" not in c.request.url for c in rsps.calls)


def test_bulk_calls_reauthenticate_on_401(cc_settings, clock, retry, rsps):
    rsps.add(responses.POST, TOKEN_URL, json=token_body("OLD"))
    rsps.add(responses.POST, TOKEN_URL, json=token_body("NEW"))
    rsps.add(responses.GET, f"{API}/jobs/query/{JOB}", status=401, json=raw("error-invalid-session-401.json"))
    rsps.add(responses.GET, f"{API}/jobs/query/{JOB}", json=job_info("JobComplete"))
    add_pages(rsps)
    client = SalesforceClient(cc_settings, session=requests.Session(), clock=clock, retry=retry)
    assert len(list(client.resume_bulk_query(JOB))) == 3
    auths = [c.request.headers["Authorization"] for c in rsps.calls if c.request.url.startswith(API)]
    assert auths[:2] == ["Bearer OLD", "Bearer NEW"] and set(auths[2:]) == {"Bearer NEW"}


def test_failed_job_is_reported_with_its_message(client, rsps):
    info = job_info("Failed")
    info["errorMessage"] = "INVALID_FIELD: No such column 'Xyz' on entity 'Account'"
    rsps.add(responses.GET, f"{API}/jobs/query/{JOB}", json=info)
    with pytest.raises(BulkJobFailed, match="No such column") as error:
        list(client.resume_bulk_query(JOB))
    assert error.value.job_id == JOB and error.value.state == "Failed"


def test_bulk_ingest_end_to_end(client, rsps):
    created = raw("bulk2-ingest-close-job-response.json")
    created["state"] = "Open"
    rsps.add(responses.POST, f"{API}/jobs/ingest", json=created)
    rsps.add(responses.PUT, f"{API}/jobs/ingest/{INGEST}/batches", status=201)
    rsps.add(responses.PATCH, f"{API}/jobs/ingest/{INGEST}", json=raw("bulk2-ingest-close-job-response.json"))
    info = raw("bulk2-ingest-job-info-jobcomplete.json")
    info |= {"numberRecordsProcessed": 2, "numberRecordsFailed": 1}  # processed counts the failed one too
    rsps.add(responses.GET, f"{API}/jobs/ingest/{INGEST}", json=info)
    # result CSV shapes follow "Get Job Successful/Failed/Unprocessed Record Results"
    rsps.add(responses.GET, f"{API}/jobs/ingest/{INGEST}/successfulResults/",
             body='"sf__Id","sf__Created",Name,NumberOfEmployees\n"0018d00000AbCdEAAV","true","Acme","#N/A"\n')
    rsps.add(responses.GET, f"{API}/jobs/ingest/{INGEST}/failedResults/",
             body='"sf__Id","sf__Error",Name,NumberOfEmployees\n"","REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --","","5"\n')
    rsps.add(responses.GET, f"{API}/jobs/ingest/{INGEST}/unprocessedrecords/", body="Name,NumberOfEmployees\n")
    seen = []
    result = client.bulk_ingest("Account", "insert", [{"Name": "Acme", "NumberOfEmployees": None},
                                                      {"Name": "", "NumberOfEmployees": 5}], on_job=seen.append)
    assert seen == [INGEST]
    create = json.loads(rsps.calls[0].request.body)
    assert create == {"object": "Account", "operation": "insert", "contentType": "CSV",
                      "lineEnding": "LF", "columnDelimiter": "COMMA"}
    assert rsps.calls[1].request.body == b"Name,NumberOfEmployees\nAcme,#N/A\n,5\n"
    assert rsps.calls[1].request.headers["Content-Type"] == "text/csv"
    assert json.loads(rsps.calls[2].request.body) == {"state": "UploadComplete"}
    assert result.job_id == INGEST and result.state == "JobComplete" and result.records_processed == 2
    assert result.successful[0].id == "0018d00000AbCdEAAV" and result.successful[0].created is True
    assert result.successful[0].data == {"Name": "Acme", "NumberOfEmployees": "#N/A"}
    assert result.failed[0].error.startswith("REQUIRED_FIELD_MISSING")
    assert result.failed[0].data["NumberOfEmployees"] == "5"
    assert result.unprocessed == []
    # every record was processed: the unprocessed-records file is not asked for (a call saved)
    assert not any(c.request.url.endswith("/unprocessedrecords/") for c in rsps.calls)


def test_bulk_ingest_asks_only_for_the_result_files_that_can_hold_something(client, rsps):
    rsps.add(responses.POST, f"{API}/jobs/ingest", json=raw("bulk2-ingest-close-job-response.json") | {"state": "Open"})
    rsps.add(responses.PUT, f"{API}/jobs/ingest/{INGEST}/batches", status=201)
    rsps.add(responses.PATCH, f"{API}/jobs/ingest/{INGEST}", json=raw("bulk2-ingest-close-job-response.json"))
    info = raw("bulk2-ingest-job-info-jobcomplete.json") | {"numberRecordsProcessed": 1, "numberRecordsFailed": 0}
    rsps.add(responses.GET, f"{API}/jobs/ingest/{INGEST}", json=info)
    rsps.add(responses.GET, f"{API}/jobs/ingest/{INGEST}/unprocessedrecords/", body="Name\nLate\n")
    result = client.bulk_ingest("Account", "insert", [{"Name": "Acme"}, {"Name": "Late"}], fetch_successful=False)
    asked = [c.request.url.rsplit("/", 2)[-2] for c in rsps.calls if c.request.method == "GET"]
    assert "successfulResults" not in asked and "failedResults" not in asked
    assert result.unprocessed == [{"Name": "Late"}]  # one of two was not processed: that file is read


def test_upsert_ingest_needs_an_external_id(client, rsps):
    with pytest.raises(ValueError, match="ext_field"):
        client.bulk_ingest("Account", "upsert", [{"Name": "x"}])
    assert len(rsps.calls) == 0


def test_resume_of_a_job_never_closed_aborts_it(client, rsps):
    info = raw("bulk2-ingest-close-job-response.json")
    info["state"] = "Open"
    rsps.add(responses.GET, f"{API}/jobs/ingest/{INGEST}", json=info)
    rsps.add(responses.PATCH, f"{API}/jobs/ingest/{INGEST}", json={**info, "state": "Aborted"})
    with pytest.raises(BulkJobFailed, match="never closed"):
        client.resume_bulk_ingest(INGEST)
    assert json.loads(rsps.calls[-1].request.body) == {"state": "Aborted"}


def test_bulk_ingest_uploads_utf8_csv_and_counts_its_bytes_against_the_limit(client, rsps, monkeypatch):
    """Names beyond ASCII go up as UTF-8, quoted where CSV needs it; the 100 MB limit counts bytes,
    not characters (a name of 8 characters is 16 bytes here)."""
    from connector.salesforce import bulk

    created = raw("bulk2-ingest-close-job-response.json")
    created["state"] = "Open"
    rsps.add(responses.POST, f"{API}/jobs/ingest", json=created)
    rsps.add(responses.PUT, f"{API}/jobs/ingest/{INGEST}/batches", status=201)
    rsps.add(responses.PATCH, f"{API}/jobs/ingest/{INGEST}", json=raw("bulk2-ingest-close-job-response.json"))
    info = raw("bulk2-ingest-job-info-jobcomplete.json") | {"numberRecordsProcessed": 2, "numberRecordsFailed": 0}
    rsps.add(responses.GET, f"{API}/jobs/ingest/{INGEST}", json=info)
    records = [{"Name": "Zoë, \"the\" café"}, {"Name": "日本語の会社名です"}]
    client.bulk_ingest("Account", "insert", records, fetch_successful=False)
    upload = rsps.calls[1].request.body
    assert upload == 'Name\n"Zoë, ""the"" café"\n日本語の会社名です\n'.encode("utf-8")
    monkeypatch.setattr(bulk, "MAX_UPLOAD_BYTES", len(upload) - 1)  # fewer bytes than the CSV, more characters
    assert len(upload.decode("utf-8")) < len(upload) - 1
    with pytest.raises(ValueError, match="exceed the 100 MB"):
        client.bulk_ingest("Account", "insert", records, fetch_successful=False)
    assert len(rsps.calls) == 4  # refused before any job was created
