"""Bulk API 2.0 ingest and query jobs: lifecycle, job info shapes, result CSVs, paging, faults."""
from __future__ import annotations

import csv
import io

from connector.sandbox.faults import Fault
from sandbox_support import API, sample

JOBS = API + "/jobs"


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def _run_ingest(sf, body: dict, data: str) -> str:
    job = sf.post(JOBS + "/ingest", json=body).json()
    assert job["state"] == "Open" and job["contentUrl"].endswith(f"/jobs/ingest/{job['id']}/batches")
    put = sf.put(f"{JOBS}/ingest/{job['id']}/batches", data=data.encode(), headers={"Content-Type": "text/csv"})
    assert put.status_code == 201
    closed = sf.patch(f"{JOBS}/ingest/{job['id']}", json={"state": "UploadComplete"}).json()
    assert set(closed) == set(sample("bulk2-ingest-close-job-response.json")) | ({"externalIdFieldName"} & set(closed))
    assert closed["state"] == "UploadComplete"
    return job["id"]


def test_ingest_lifecycle_and_results(sf, org):
    job_id = _run_ingest(sf, {"object": "Account", "operation": "insert", "lineEnding": "LF"},
                         "Name,BillCycleDay__c\nAcme,15\n,3\n\"Quote, Inc\",#N/A\n")
    states = [sf.get(f"{JOBS}/ingest/{job_id}").json()["state"] for _ in range(3)]
    assert states == ["InProgress", "JobComplete", "JobComplete"]
    info = sf.get(f"{JOBS}/ingest/{job_id}").json()
    assert set(info) == set(sample("bulk2-ingest-job-info-jobcomplete.json"))
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (3, 1)
    ok = _rows(sf.get(f"{JOBS}/ingest/{job_id}/successfulResults").text)
    assert ok[0] == ["sf__Id", "sf__Created", "Name", "BillCycleDay__c"]
    assert [r[1:] for r in ok[1:]] == [["true", "Acme", "15"], ["true", "Quote, Inc", "#N/A"]]
    failed = _rows(sf.get(f"{JOBS}/ingest/{job_id}/failedResults").text)
    assert failed[0][:2] == ["sf__Id", "sf__Error"] and failed[1][1].startswith("REQUIRED_FIELD_MISSING:")
    assert _rows(sf.get(f"{JOBS}/ingest/{job_id}/unprocessedrecords").text) == [["Name", "BillCycleDay__c"]]
    accounts = {a["Name"]: a for a in org.records("Account")}
    assert accounts["Acme"]["BillCycleDay__c"] == 15 and accounts["Quote, Inc"]["BillCycleDay__c"] is None


def test_ingest_upsert_update_delete_and_partial_fault(sf, org):
    org.faults.add(Fault.partial_failure([1], error_code="UNABLE_TO_LOCK_ROW", path=r"/jobs/ingest/\w+$", method="PATCH"))
    job_id = _run_ingest(sf, {"object": "Order", "operation": "upsert", "externalIdFieldName": "ExternalId__c"},
                         "ExternalId__c,AccountId,EffectiveDate,Status\n"
                         f"O-1,{org.create('Account', {'Name': 'A'})},2023-01-01,Draft\nO-2,,2023-01-01,Draft\n")
    sf.get(f"{JOBS}/ingest/{job_id}")
    assert sf.get(f"{JOBS}/ingest/{job_id}").json()["numberRecordsFailed"] == 1
    failed = _rows(sf.get(f"{JOBS}/ingest/{job_id}/failedResults").text)
    assert failed[1][1].startswith("UNABLE_TO_LOCK_ROW:")
    (order,) = org.records("Order")
    job2 = _run_ingest(sf, {"object": "Order", "operation": "update"}, f"Id,Name\n{order['Id']},Renamed\n")
    for _ in range(2):
        sf.get(f"{JOBS}/ingest/{job2}")
    assert org.records("Order")[0]["Name"] == "Renamed"
    job3 = _run_ingest(sf, {"object": "Order", "operation": "delete"}, f"Id\n{order['Id']}\n")
    for _ in range(2):
        sf.get(f"{JOBS}/ingest/{job3}")
    assert org.records("Order") == []


def test_ingest_unknown_column_fails_the_job(sf):
    job_id = _run_ingest(sf, {"object": "Account", "operation": "insert"}, "Name,Account.ExternalId__c\nA,x\n")
    sf.get(f"{JOBS}/ingest/{job_id}")
    info = sf.get(f"{JOBS}/ingest/{job_id}").json()
    assert info["state"] == "Failed" and "Account.ExternalId__c" in info["errorMessage"]
    assert _rows(sf.get(f"{JOBS}/ingest/{job_id}/unprocessedrecords").text)[1] == ["A", "x"]


def test_big_object_bulk_insert_upserts_on_index(sf, org):
    data = ("StartDate__c,OrderProduct__c,ClosingCMRR__c\n"
            "2023-01-01T00:00:00.000Z,802000000000001AAA,1000\n2023-01-01T00:00:00.000Z,802000000000001AAA,1600\n")
    job_id = _run_ingest(sf, {"object": "ArrByPeriod__b", "operation": "insert"}, data)
    sf.get(f"{JOBS}/ingest/{job_id}")
    sf.get(f"{JOBS}/ingest/{job_id}")
    rows = org.records("ArrByPeriod__b")
    assert len(rows) == 1 and rows[0]["ClosingCMRR__c"] == 1600
    bad = sf.post(JOBS + "/ingest", json={"object": "ArrByPeriod__b", "operation": "upsert", "externalIdFieldName": "x"})
    assert bad.status_code == 400


def test_query_job_lifecycle_and_locator_paging(sf, org):
    for i in range(5):
        org.create("Account", {"Name": f"A{i}"})
    gone = org.create("Account", {"Name": "gone"})
    org.delete("Account", gone)
    job = sf.post(JOBS + "/query", json={"operation": "queryAll", "query": "SELECT Id, Name, Owner.Name, IsDeleted FROM Account ORDER BY Name"}).json()
    assert set(job) == set(sample("bulk2-query-job-create-response.json")) and job["state"] == "UploadComplete"
    early = sf.get(f"{JOBS}/query/{job['id']}/results")
    assert early.status_code == 400
    assert [sf.get(f"{JOBS}/query/{job['id']}").json()["state"] for _ in range(2)] == ["InProgress", "JobComplete"]
    rows, locator, pages = [], None, 0
    while True:
        params = {"maxRecords": 4} | ({"locator": locator} if locator else {})
        r = sf.get(f"{JOBS}/query/{job['id']}/results", params=params)
        page = _rows(r.text)
        assert page[0] == ["Id", "Name", "Owner.Name", "IsDeleted"]
        assert int(r.headers["Sforce-NumberOfRecords"]) == len(page) - 1
        rows += page[1:]
        pages += 1
        locator = r.headers["Sforce-Locator"]
        if locator == "null":
            break
    assert pages == 2 and [r[1] for r in rows] == ["A0", "A1", "A2", "A3", "A4", "gone"]
    assert rows[-1][2:] == ["Integration User", "true"]
    bad = sf.post(JOBS + "/query", json={"operation": "query", "query": "SELECT COUNT() FROM Account"})
    assert bad.status_code == 400
