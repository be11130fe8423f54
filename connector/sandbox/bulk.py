"""Bulk API 2.0 ingest and query jobs over the sandbox org.

Lifecycle (Bulk API 2.0 Developer Guide, "Create a Job" ... "Get Job Info"):

- ingest: ``Open`` on create; CSV uploaded with ``PUT .../batches``; ``PATCH state=UploadComplete``
  closes it; each ``GET`` of the job then advances it ``UploadComplete -> InProgress -> JobComplete``
  (``OrgConfig.bulk_polls_to_complete`` polls), and the rows are written when it completes, each
  independently (no all-or-none). ``successfulResults`` has ``sf__Id``,``sf__Created``, then the
  uploaded columns; ``failedResults`` ``sf__Id``,``sf__Error``; ``unprocessedrecords`` the uploaded
  columns of rows never processed (an aborted or failed job).
- query: ``UploadComplete`` on create (samples/bulk2-query-job-create-response.json), then the same
  polling to ``JobComplete``; ``results`` pages by ``maxRecords`` with ``Sforce-Locator`` (``null``
  on the last page) and ``Sforce-NumberOfRecords`` headers.

In the CSV an empty value leaves a field unset and ``#N/A`` sets it to null, as in "Prepare CSV
Files". Relationship columns (``Account.ExternalId__c``) and ``hardDelete`` are not supported: the
job fails with ``InvalidBatch`` rather than doing something else.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from . import ids, soql
from .errors import ApiError
from .org import BIG_OBJECT_ROW_ID, Org

OPERATIONS = ("insert", "update", "upsert", "delete")
_DELIMITERS = {"COMMA": ",", "TAB": "\t", "SEMICOLON": ";", "PIPE": "|", "CARET": "^", "BACKQUOTE": "`"}


@dataclass
class IngestJob:
    """One Bulk API 2.0 ingest job and its results."""

    id: str
    object: str
    operation: str
    external_id_field: str | None
    api_version: str
    created_by: str
    created_date: str
    system_modstamp: str
    line_ending: str = "LF"
    column_delimiter: str = "COMMA"
    state: str = "Open"
    kind: str = "ingest"
    uploads: list[str] = field(default_factory=list)
    polls: int = 0
    header: list[str] = field(default_factory=list)
    successful: list[list[str]] = field(default_factory=list)
    failed: list[list[str]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    #: row position -> (errorCode, message) from fault rules
    faulted_rows: dict[int, tuple[str, str]] = field(default_factory=dict)
    error_message: str | None = None
    processed: int = 0

    def base_info(self) -> dict:
        """Keys every ingest job info carries (samples/bulk2-ingest-close-job-response.json)."""
        info = {
            "id": self.id, "operation": self.operation, "object": self.object, "createdById": self.created_by,
            "createdDate": self.created_date, "systemModstamp": self.system_modstamp, "state": self.state,
        }
        if self.external_id_field:
            info["externalIdFieldName"] = self.external_id_field
        info.update({"concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": float(self.api_version)})
        return info

    def create_info(self) -> dict:
        """The create-job response: base keys plus ``contentUrl``, ``lineEnding``, ``columnDelimiter``."""
        info = self.base_info()
        info.update({"contentUrl": f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches",
                     "lineEnding": self.line_ending, "columnDelimiter": self.column_delimiter})
        return info

    def full_info(self) -> dict:
        """``GET /jobs/ingest/{id}`` (samples/bulk2-ingest-job-info-jobcomplete.json)."""
        info = self.base_info()
        info.update({
            "jobType": "V2Ingest", "lineEnding": self.line_ending, "columnDelimiter": self.column_delimiter,
            "numberRecordsProcessed": self.processed, "numberRecordsFailed": len(self.failed), "retries": 0,
            "totalProcessingTime": 0, "apiActiveProcessingTime": 0, "apexProcessingTime": 0,
        })
        if self.error_message:
            info["errorMessage"] = self.error_message
        return info


@dataclass
class QueryJob:
    """One Bulk API 2.0 query job and its frozen result rows."""

    id: str
    operation: str
    query: str
    object: str
    api_version: str
    created_by: str
    created_date: str
    system_modstamp: str
    line_ending: str = "LF"
    column_delimiter: str = "COMMA"
    state: str = "UploadComplete"
    kind: str = "query"
    polls: int = 0
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)

    def info(self, full: bool) -> dict:
        """Create response (samples/bulk2-query-job-create-response.json) or full job info."""
        info = {
            "id": self.id, "operation": self.operation, "object": self.object, "createdById": self.created_by,
            "createdDate": self.created_date, "systemModstamp": self.system_modstamp, "state": self.state,
            "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": float(self.api_version),
        }
        if full:
            info.update({"jobType": "V2Query", "lineEnding": self.line_ending, "columnDelimiter": self.column_delimiter,
                         "numberRecordsProcessed": len(self.rows) if self.state == "JobComplete" else 0,
                         "retries": 0, "totalProcessingTime": 0})
        else:
            info.update({"lineEnding": self.line_ending, "columnDelimiter": self.column_delimiter})
        return info


class Bulk:
    """Bulk API 2.0 operations on an :class:`Org` (jobs live in ``org.bulk_jobs``)."""

    def __init__(self, org: Org):
        self.org = org

    # --- ingest --------------------------------------------------------------------------------
    def create_ingest(self, body: dict, version: str) -> IngestJob:
        """``POST /jobs/ingest``."""
        org = self.org
        with org.lock:
            obj = org.schema.get(str(body.get("object", "")))
            if obj is None:
                raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid object: {body.get('object')}")
            op = body.get("operation")
            if op not in OPERATIONS:
                raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {op}")
            if obj.is_big and op != "insert":
                raise ApiError(400, "INVALIDJOB", f"InvalidJob : big objects support only insert, not {op}")
            ext = body.get("externalIdFieldName")
            if op == "upsert":
                f = obj.field(ext or "")
                if f is None or not (f.external_id or f.type == "id"):
                    raise ApiError(400, "INVALIDJOB", f"InvalidJob : External ID field '{ext}' is not valid for {obj.name}")
                ext = f.name
            if body.get("contentType", "CSV") != "CSV":
                raise ApiError(400, "INVALIDJOB", "InvalidJob : contentType must be CSV")
            delimiter = body.get("columnDelimiter", "COMMA")
            line_ending = body.get("lineEnding", "LF")
            if delimiter not in _DELIMITERS or line_ending not in ("LF", "CRLF"):
                raise ApiError(400, "INVALIDJOB", "InvalidJob : invalid columnDelimiter or lineEnding")
            now = org.stamp()
            job = IngestJob(org.ids.new("750"), obj.name, op, ext if op == "upsert" else None, version, org.user_id,
                            now, now, line_ending, delimiter)
            org.bulk_jobs[job.id] = job
            return job

    def job(self, job_id: str, kind: str):
        """The job with this Id and kind, or 404 ``NOT_FOUND``."""
        job = self.org.bulk_jobs.get(job_id)
        if job is None or job.kind != kind:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    def upload(self, job_id: str, data: str, faults: list) -> None:
        """``PUT /jobs/ingest/{id}/batches``: append CSV data to an open job."""
        with self.org.lock:
            job = self.job(job_id, "ingest")
            if job.state != "Open":
                raise ApiError(409, "INVALIDJOBSTATE", f"Job state is {job.state}; data can only be uploaded to an Open job")
            job.uploads.append(data)
            self._note_faults(job, faults)

    def _note_faults(self, job: IngestJob, faults: list) -> None:
        for rule in faults:
            for pos in rule.records:
                job.faulted_rows[pos] = (rule.error_code, rule.message)

    def set_state(self, job_id: str, kind: str, state: str, faults: list) -> dict:
        """``PATCH /jobs/{kind}/{id}`` with ``UploadComplete`` (close) or ``Aborted``."""
        with self.org.lock:
            job = self.job(job_id, kind)
            if state == "Aborted":
                if job.state in ("JobComplete", "Failed", "Aborted"):
                    raise ApiError(409, "INVALIDJOBSTATE", f"Job is already {job.state}")
                if kind == "ingest":
                    header, rows = self._parse(job) if job.uploads else ([], [])
                    job.header = header
                    job.unprocessed = rows
            elif state == "UploadComplete" and kind == "ingest":
                if job.state != "Open":
                    raise ApiError(409, "INVALIDJOBSTATE", f"Job state is {job.state}; only an Open job can be closed")
                if not job.uploads:
                    raise ApiError(400, "INVALIDJOBSTATE", "No data was uploaded to the job")
                self._note_faults(job, faults)
            else:
                raise ApiError(400, "INVALIDJOBSTATE", f"Invalid state transition to {state}")
            job.state = state
            job.system_modstamp = self.org.stamp()
            return job.base_info() if kind == "ingest" else job.info(full=False)

    def poll(self, job_id: str, kind: str) -> dict:
        """``GET /jobs/{kind}/{id}``: job info; each poll moves a closed job on towards JobComplete."""
        org = self.org
        with org.lock:
            job = self.job(job_id, kind)
            if job.state in ("UploadComplete", "InProgress"):
                job.polls += 1
                if job.polls >= max(1, org.config.bulk_polls_to_complete):
                    if kind == "ingest":
                        self._process(job)
                    else:
                        self._run_query(job)
                else:
                    job.state = "InProgress"
                job.system_modstamp = org.stamp()
            return job.full_info() if kind == "ingest" else job.info(full=True)

    def delete(self, job_id: str, kind: str) -> None:
        """``DELETE /jobs/{kind}/{id}``."""
        with self.org.lock:
            job = self.job(job_id, kind)
            if job.state in ("Open", "UploadComplete", "InProgress"):
                raise ApiError(400, "INVALIDJOBSTATE", "Only a completed, failed or aborted job can be deleted")
            del self.org.bulk_jobs[job_id]

    def _parse(self, job: IngestJob) -> tuple[list[str], list[list[str]]]:
        text = "".join(job.uploads)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=_DELIMITERS[job.column_delimiter])
        rows = [r for r in reader if r]
        if not rows:
            return [], []
        return rows[0], rows[1:]

    def _process(self, job: IngestJob) -> None:
        org = self.org
        header, rows = self._parse(job)
        job.header = header
        obj = org.schema.get(job.object)
        for col in header:
            if obj.field(col) is None:
                job.state = "Failed"
                job.error_message = f"InvalidBatch : Field name not found : {col}"
                job.unprocessed = rows
                return
        canonical = [obj.field(c).name for c in header]
        for pos, row in enumerate(rows):
            job.processed += 1
            if len(row) != len(header):
                job.failed.append(["", "INVALID_ROW:row has a different number of columns than the header:--", *row])
                continue
            values = {}
            for name, raw in zip(canonical, row):
                if raw == "":
                    continue
                values[name] = None if raw == "#N/A" else raw
            try:
                if pos in job.faulted_rows:
                    code, message = job.faulted_rows[pos]
                    raise ApiError(400, code, message)
                with org.transaction():
                    rec_id, created = self._write(job, obj, values)
                job.successful.append([rec_id, "true" if created else "false", *row])
            except ApiError as err:
                rid = values.get("Id") or ""
                job.failed.append([rid, f"{err.error_code}:{err.message}:{','.join(err.fields or [])} --", *row])
        job.state = "JobComplete"

    def _write(self, job: IngestJob, obj, values: dict) -> tuple[str, bool]:
        org = self.org
        if job.operation == "insert":
            if obj.is_big:
                org.insert_big(obj.name, values)
                return BIG_OBJECT_ROW_ID, True
            return org.create(obj.name, values), True
        if job.operation == "upsert":
            return org.upsert(obj.name, job.external_id_field, None, values)
        rec_id = values.pop("Id", None)
        if not rec_id:
            raise ApiError(400, "MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
        if job.operation == "update":
            org.update(obj.name, rec_id, values)
        else:
            org.delete(obj.name, rec_id)
        return ids.canonical(rec_id), False

    def results(self, job_id: str, which: str) -> str:
        """CSV of ``successfulResults``, ``failedResults`` or ``unprocessedrecords``."""
        with self.org.lock:
            job = self.job(job_id, "ingest")
            if which != "unprocessedrecords" and job.state not in ("JobComplete", "Failed", "Aborted"):
                raise ApiError(400, "INVALIDJOBSTATE", f"Job state is {job.state}; results are available once it completes")
            if which == "successfulResults":
                return _csv(["sf__Id", "sf__Created", *job.header], job.successful, job)
            if which == "failedResults":
                return _csv(["sf__Id", "sf__Error", *job.header], job.failed, job)
            return _csv(job.header, job.unprocessed, job)

    def list_jobs(self, kind: str) -> dict:
        """``GET /jobs/{kind}``: every job of the kind, one page."""
        with self.org.lock:
            records = [(j.full_info() if kind == "ingest" else j.info(full=True))
                       for j in self.org.bulk_jobs.values() if j.kind == kind]
            return {"done": True, "records": records, "nextRecordsUrl": None}

    # --- query ---------------------------------------------------------------------------------
    def create_query(self, body: dict, version: str) -> QueryJob:
        """``POST /jobs/query``: the SOQL is checked now, run when the job completes."""
        org = self.org
        with org.lock:
            op = body.get("operation", "query")
            if op not in ("query", "queryAll"):
                raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {op}")
            q = soql.parse(body.get("query", ""), org.schema)
            if q.count or q.offset:
                # Bulk API 2.0 query does not support aggregate functions or OFFSET ("Bulk API 2.0 Query" limits).
                raise ApiError(400, "API_ERROR", "Bulk API 2.0 query does not support COUNT() or OFFSET")
            now = org.stamp()
            job = QueryJob(org.ids.new("750"), op, q.text, q.obj.name, version, org.user_id, now, now,
                           body.get("lineEnding", "LF"), body.get("columnDelimiter", "COMMA"))
            org.bulk_jobs[job.id] = job
            return job

    def _run_query(self, job: QueryJob) -> None:
        org = self.org
        q = soql.parse(job.query, org.schema)
        rows = org.run_query(q, include_deleted=job.operation == "queryAll")
        job.header = [".".join(p) for p in q.select]
        job.rows = [[_csv_value(soql.path_value(q.obj, r, p, org.resolve, org.schema)) for p in q.select] for r in rows]
        job.state = "JobComplete"

    def query_results(self, job_id: str, locator: str | None, max_records: int | None) -> tuple[str, str, int]:
        """One page of results: ``(csv, next locator or "null", number of records)``."""
        with self.org.lock:
            job = self.job(job_id, "query")
            if job.state != "JobComplete":
                raise ApiError(400, "INVALIDJOBSTATE", f"Job state is {job.state}; results are available once it is JobComplete")
            start = 0
            if locator not in (None, "", "null"):
                try:
                    start = int(locator)
                except ValueError:
                    raise ApiError(400, "INVALID_LOCATOR", f"Invalid locator: {locator}") from None
            size = max_records if max_records else len(job.rows) or 1
            page = job.rows[start:start + size]
            nxt = start + size
            next_locator = str(nxt) if nxt < len(job.rows) else "null"
            return _csv(job.header, page, job), next_locator, len(page)


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _csv(header: list[str], rows: list[list[str]], job) -> str:
    out = io.StringIO()
    terminator = "\r\n" if job.line_ending == "CRLF" else "\n"
    writer = csv.writer(out, delimiter=_DELIMITERS[job.column_delimiter], quoting=csv.QUOTE_ALL, lineterminator=terminator)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()
