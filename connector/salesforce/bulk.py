"""Bulk API 2.0 jobs: query jobs read page by page with `Sforce-Locator`, ingest jobs end to end.

A query job is created at once and its id is available before any record is read, so a caller
can persist (job id, locator) and resume after a crash; the locator of a page never changes while
the job exists (Bulk API 2.0 Developer Guide, "Get Results for a Query Job"). Polling backs off
from one second to thirty, through the client's injectable sleep.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connector.salesforce.errors import BulkJobFailed, BulkJobStillRunning, UnexpectedResponse
from connector.salesforce.records import CsvRows, IngestResult, IngestRow, dumps, from_csv, to_csv

if TYPE_CHECKING:
    from connector.salesforce.client import SalesforceClient

log = logging.getLogger(__name__)

POLL_FIRST_WAIT = 1.0
POLL_MAX_WAIT = 30.0
#: Bulk API 2.0 accepts at most 100 MB of CSV per job upload.
MAX_UPLOAD_BYTES = 100 * 1024 * 1024

_DONE = "JobComplete"
_FAILED = ("Failed", "Aborted")


@dataclass(frozen=True)
class BulkPage:
    """One page of bulk query results and the locators to re-read it or read the next one."""

    records: list[dict[str, str | None]]
    locator: str | None
    next_locator: str | None


def wait_for_job(client: SalesforceClient, job_id: str, *, kind: str) -> dict[str, Any]:
    """Poll a job until it completes; raise BulkJobFailed or BulkJobStillRunning otherwise."""
    path = f"jobs/{kind}/{job_id}"
    waited = 0.0
    wait = POLL_FIRST_WAIT
    limit = client.bulk_timeout.total_seconds()
    while True:
        info = client._call(f"bulk {kind} job status",
                            lambda sf: client._json("GET", path, what=f"bulk {kind} job status"))
        state = info.get("state")
        if state == _DONE:
            return info
        if state in _FAILED:
            raise BulkJobFailed(
                f"Salesforce bulk {kind} job {job_id} ended {state}: "
                f"{info.get('errorMessage') or 'no error message given'}",
                job_id=job_id, state=state,
                hint="Fix the cause named above and run again; a new job will be created.")
        if kind == "ingest" and state == "Open":
            return info  # never closed: the caller decides
        if waited >= limit:
            raise BulkJobStillRunning(
                f"Salesforce bulk {kind} job {job_id} is still {state} after {waited:.0f}s",
                job_id=job_id, hint="Run again later; the saved job id lets it resume.")
        client.sleep(wait)
        waited += wait
        wait = min(wait * 2, POLL_MAX_WAIT)


class BulkQuery(Iterator[dict[str, Any]]):
    """Records of a Bulk API 2.0 query job; `job_id` and `locator` say where to resume."""

    def __init__(self, client: SalesforceClient, job_id: str, *, locator: str | None,
                 max_records: int | None):
        self._client = client
        self.job_id = job_id
        #: locator of the page the last record came from (None: the first page); resuming from
        #: it re-reads that page, so records are delivered at least once
        self.locator = locator
        self._start = locator
        self._max_records = max_records
        self._records: Iterator[dict[str, Any]] | None = None

    def pages(self) -> Iterator[BulkPage]:
        """The result pages, waiting for the job to complete first."""
        wait_for_job(self._client, self.job_id, kind="query")
        locator = self._start
        while True:
            page = self._page(locator)
            self.locator = locator
            yield page
            if page.next_locator is None:
                return
            locator = page.next_locator

    def _page(self, locator: str | None) -> BulkPage:
        params: dict[str, Any] = {}
        if locator:
            params["locator"] = locator
        if self._max_records:
            params["maxRecords"] = self._max_records
        client = self._client
        what = "bulk query results"
        response = client._call(what, lambda sf: client._http(
            "GET", f"jobs/query/{self.job_id}/results", what=what, params=params, accept="text/csv"))
        # Sforce-Locator is the string "null" on the last page
        next_locator = response.headers.get("Sforce-Locator")
        if next_locator in (None, "", "null"):
            next_locator = None
        records = from_csv(response.content.decode("utf-8").replace("\x00", ""))
        expected = response.headers.get("Sforce-NumberOfRecords")
        if expected is not None and expected.isdigit() and int(expected) != len(records):
            raise UnexpectedResponse(f"Salesforce bulk query job {self.job_id}: page said "
                                     f"{expected} records but held {len(records)}")
        return BulkPage(records, locator, next_locator)

    def __iter__(self) -> BulkQuery:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._records is None:
            self._records = (record for page in self.pages() for record in page.records)
        return next(self._records)


class BulkIngest:
    """Runs one Bulk API 2.0 ingest job: create, upload CSV, close, poll, fetch results."""

    def __init__(self, client: SalesforceClient):
        self._client = client

    def run(self, sobject: str, operation: str, records: Iterable[Mapping[str, Any]] | CsvRows,
            ext_field: str | None, on_job: Callable[[str], None] | None,
            fetch_successful: bool = True) -> IngestResult:
        """Load `records` and return the per-record results."""
        if operation not in ("insert", "update", "upsert", "delete", "hardDelete"):
            raise ValueError(f"unknown bulk operation {operation!r}")
        if operation == "upsert" and not ext_field:
            raise ValueError("a bulk upsert needs ext_field")
        csv_data, count = to_csv(records)
        size = len(csv_data)
        if size > MAX_UPLOAD_BYTES:
            raise ValueError(f"{size} bytes of CSV exceed the 100 MB a Bulk API 2.0 job accepts; "
                             "split the records across several calls")
        body: dict[str, Any] = {"object": sobject, "operation": operation,
                                "contentType": "CSV", "lineEnding": "LF", "columnDelimiter": "COMMA"}
        if ext_field:
            body["externalIdFieldName"] = ext_field
        client = self._client
        job = client._call("bulk ingest job create", lambda sf: client._json(
            "POST", "jobs/ingest", what="bulk ingest job create", data=dumps(body)), idempotent=False)
        job_id = str(job["id"])
        log.info("Salesforce bulk %s job %s created for %d %s records", operation, job_id, count, sobject)
        if on_job is not None:
            on_job(job_id)
        client._call("bulk ingest upload", lambda sf: client._http(
            "PUT", f"jobs/ingest/{job_id}/batches", what="bulk ingest upload", data=csv_data,
            content_type="text/csv", ok=(201,)))
        client._call("bulk ingest close", lambda sf: client._json(
            "PATCH", f"jobs/ingest/{job_id}", what="bulk ingest close", data=dumps({"state": "UploadComplete"})))
        return self.finish(job_id, expected=count, fetch_successful=fetch_successful)

    def finish(self, job_id: str, *, expected: int | None = None, fetch_successful: bool = True) -> IngestResult:
        """Wait for the job and fetch its successful, failed and unprocessed records.

        Result files that cannot hold anything are not asked for (the API budget counts every
        call): failed records only when the job reports failures, unprocessed ones only when fewer
        records were processed than sent (or the count sent is unknown), successful ones only
        when the caller needs their Ids.
        """
        client = self._client
        info = wait_for_job(client, job_id, kind="ingest")
        if info.get("state") == "Open":
            # The upload was never closed (a crash between create and close): nothing was
            # processed, so abort the job and let the caller write the records again.
            client._call("bulk ingest abort", lambda sf: client._json(
                "PATCH", f"jobs/ingest/{job_id}", what="bulk ingest abort",
                data='{"state": "Aborted"}'))
            raise BulkJobFailed(f"Salesforce bulk ingest job {job_id} was never closed; it has been "
                                "aborted with nothing written.", job_id=job_id, state="Aborted",
                                hint="Run the write again; a new job will be created.")
        processed = int(info.get("numberRecordsProcessed") or 0)
        failures = int(info.get("numberRecordsFailed") or 0)
        successful = [IngestRow(data=_data(r), id=r.get("sf__Id"), created=_bool(r.get("sf__Created")))
                      for r in self._results(job_id, "successfulResults")] if fetch_successful else []
        failed = [IngestRow(data=_data(r), id=r.get("sf__Id"), error=r.get("sf__Error"))
                  for r in self._results(job_id, "failedResults")] if failures else []
        unprocessed = self._results(job_id, "unprocessedrecords") \
            if expected is None or processed < expected else []
        return IngestResult(job_id=job_id, state=str(info.get("state")),
                            records_processed=int(info.get("numberRecordsProcessed") or 0),
                            records_failed=int(info.get("numberRecordsFailed") or 0),
                            successful=successful, failed=failed, unprocessed=unprocessed)

    def _results(self, job_id: str, kind: str) -> list[dict[str, str | None]]:
        client = self._client
        what = f"bulk ingest {kind}"
        response = client._call(what, lambda sf: client._http(
            "GET", f"jobs/ingest/{job_id}/{kind}/", what=what, accept="text/csv"))
        return from_csv(response.content.decode("utf-8"))


def _data(row: Mapping[str, str | None]) -> dict[str, str | None]:
    return {k: v for k, v in row.items() if not k.startswith("sf__")}


def _bool(value: str | None) -> bool | None:
    return None if value is None else value.lower() == "true"

