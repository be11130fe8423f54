"""The sandbox org as a WSGI application: Salesforce's REST, Bulk API 2.0 and OAuth endpoints.

Resources under ``/services/data/vNN.0`` (any version): ``limits``, ``sobjects`` (global describe,
describe, create, get/update/delete by Id, get/upsert by external id), ``query``/``queryAll`` with
``nextRecordsUrl`` paging (``Sforce-Query-Options: batchSize=N`` honoured), ``composite/sobjects``
(GET/POST/PATCH/DELETE and the ``{type}/{externalIdField}`` upsert), ``jobs/ingest`` and
``jobs/query``. ``/services/oauth2/token`` issues sessions (see :mod:`connector.sandbox.auth`).

Every ``/services/data`` response carries ``Sforce-Limit-Info: api-usage=N/M``; each authenticated
request counts once toward the daily limit (REST API Developer Guide, "Limits" and "Response
Headers"). Errors use the top-level array ``[{"message", "errorCode"(, "fields")}]``.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote

from . import auth, ids, soap
from .bulk import Bulk
from .errors import ApiError, not_found
from .faults import ANSWER_KINDS, RECORD_KINDS, REQUEST_KINDS
from .org import Org

JSON = "application/json;charset=UTF-8"
MAX_COLLECTION = 200  # sObject Collections: "The list can contain up to 200 objects."
_STATUS_TEXT = {200: "OK", 201: "Created", 204: "No Content", 300: "Multiple Choices", 400: "Bad Request",
                401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
                409: "Conflict", 415: "Unsupported Media Type", 500: "Server Error", 503: "Service Unavailable"}
#: WSGI environ key: a list the in-process transport passes to hear of a lost answer
ANSWER_LOST = "revsync.sandbox.answer_lost"
_DATA = re.compile(r"^/services/data/v(\d+\.\d)(/.*)?$")


@dataclass
class Request:
    """The parts of an HTTP request the handlers use."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    version: str = ""
    rest: str = ""
    record_faults: list = field(default_factory=list)

    def param(self, name: str) -> str | None:
        """The first value of a query-string parameter."""
        values = self.query.get(name)
        return values[0] if values else None

    def json(self):
        """The body parsed as JSON, or 400 ``JSON_PARSER_ERROR``."""
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character in the JSON body: {exc}") from None


@dataclass
class Response:
    """Status, headers and body of a response."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: seconds the answer is held back after the request was carried out (a lost answer)
    lost: float | None = None


def json_response(status: int, payload, headers: dict | None = None) -> Response:
    """A JSON response with Salesforce's content type."""
    h = {"Content-Type": JSON}
    h.update(headers or {})
    return Response(status, json.dumps(payload).encode("utf-8"), h)


class SandboxApp:
    """WSGI callable serving one :class:`Org`."""

    def __init__(self, org: Org):
        self.org = org
        self.bulk = Bulk(org)

    # --- WSGI ----------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        path = environ.get("PATH_INFO", "")
        # WSGI servers decode PATH_INFO as latin-1; recover the UTF-8 path Salesforce clients send.
        path = path.encode("latin-1").decode("utf-8", "replace")
        req = Request(environ["REQUEST_METHOD"].upper(), path, parse_qs(environ.get("QUERY_STRING", "")), headers, body)
        resp = self.handle(req)
        if resp.lost is not None:
            lost = environ.get(ANSWER_LOST)
            if lost is not None:
                lost.append(resp.lost)  # the in-process transport raises the client's timeout itself
            else:
                time.sleep(resp.lost)  # over HTTPS: the client gives up waiting first
        start_response(f"{resp.status} {_STATUS_TEXT.get(resp.status, 'Status')}",
                       list(resp.headers.items()) + [("Content-Length", str(len(resp.body)))])
        return [resp.body]

    def handle(self, req: Request) -> Response:
        """Serve one request (auth, faults, limits, routing) and log it."""
        resp = self._handle(req)
        self.org.log(req.method, req.path, resp.status, req.headers.get("User-Agent", ""))
        return resp

    def _handle(self, req: Request) -> Response:
        org = self.org
        if req.path.rstrip("/") == "/services/oauth2/token":
            if req.method != "POST":
                return json_response(405, [{"errorCode": "METHOD_NOT_ALLOWED", "message": "HTTP Method not allowed"}])
            status, payload = auth.token_endpoint(org, req.body.decode("utf-8", "replace"), req.headers)
            return json_response(status, payload)
        if req.path.rstrip("/") == "/services/data":
            return json_response(200, [{"label": "Sandbox", "url": "/services/data/v60.0", "version": "60.0"}])
        if req.path.startswith("/services/Soap/u/"):
            return self._soap(req)
        m = _DATA.match(req.path)
        if not m:
            return json_response(404, not_found().rest_body())
        req.version = m.group(1)
        req.rest = (m.group(2) or "").rstrip("/")
        limit_header = lambda: {"Sforce-Limit-Info": org.limit_info()}  # noqa: E731
        try:
            if org.config.require_auth and not org.check_token(_bearer(req.headers)):
                raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
            for rule in org.faults.take(req.method, req.path, REQUEST_KINDS):
                if rule.kind == "slow":
                    time.sleep(rule.delay)
                elif rule.kind == "call":
                    rule.action()
                elif rule.kind == "session_expired":
                    org.expire_sessions()
                    raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
                else:
                    raise ApiError(rule.status, rule.error_code, rule.message)
            org.count_api_call()
            resp = self.route(req)
            if resp.status < 400:
                for rule in org.faults.take(req.method, req.path, ANSWER_KINDS):
                    resp.lost = rule.delay
        except ApiError as err:
            resp = json_response(err.status, err.rest_body(), err.headers)
        resp.headers.update(limit_header())
        return resp

    def _soap(self, req: Request) -> Response:
        """The partner SOAP endpoint: ``deleteByExample()`` (see :mod:`connector.sandbox.soap`)."""
        org = self.org
        if req.method != "POST":
            status, body = soap.fault("UNKNOWN_EXCEPTION", "SOAP requests are POSTed")
        elif org.config.require_auth and not org.check_token(soap.session_id(req.body)):
            status, body = soap.fault("INVALID_SESSION_ID",
                                      "Invalid Session ID found in SessionHeader: Illegal Session")
        else:
            try:
                for rule in org.faults.take(req.method, req.path, REQUEST_KINDS):
                    if rule.kind == "slow":
                        time.sleep(rule.delay)
                    elif rule.kind == "session_expired":
                        org.expire_sessions()
                        raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
                    else:
                        raise ApiError(rule.status, rule.error_code, rule.message)
                org.count_api_call()
                status, body = soap.handle(org, req.body)
            except ApiError as err:
                status, body = soap.fault(err.error_code, err.message)
                status = 503 if err.status == 503 else status  # an unavailable org answers 503 to every API
        resp = Response(status, body, {"Content-Type": soap.XML})
        if status == 200:
            for rule in org.faults.take(req.method, req.path, ANSWER_KINDS):
                resp.lost = rule.delay
        return resp

    # --- routing -------------------------------------------------------------------------------
    def route(self, req: Request) -> Response:
        """Dispatch on the path below ``/services/data/vNN.0``."""
        parts = [unquote(p) for p in req.rest.split("/") if p]
        m, n = req.method, len(parts)
        if n == 0:
            return json_response(200, {k: f"/services/data/v{req.version}/{k}" for k in
                                       ("sobjects", "query", "queryAll", "limits", "composite", "jobs")})
        head = parts[0]
        if head == "limits" and n == 1:
            return self._only(m, "GET") or json_response(200, self.org.limits())
        if head in ("query", "queryAll"):
            return self._only(m, "GET") or self.query(req, head == "queryAll", parts[1] if n == 2 else None)
        if head == "sobjects":
            return self.sobjects(req, parts[1:])
        if head == "composite" and n >= 2 and parts[1] == "sobjects":
            return self.collections(req, parts[2:])
        if head == "jobs" and n >= 2 and parts[1] in ("ingest", "query"):
            return self.jobs(req, parts[1], parts[2:])
        raise not_found()

    @staticmethod
    def _only(method: str, *allowed: str) -> Response | None:
        if method in allowed:
            return None
        raise ApiError(405, "METHOD_NOT_ALLOWED",
                       f"HTTP Method '{method}' not allowed. Allowed are {','.join(allowed)}")

    # --- query ---------------------------------------------------------------------------------
    def query(self, req: Request, include_deleted: bool, locator: str | None) -> Response:
        """``GET /query?q=`` / ``/queryAll?q=`` / ``/query/{locator}``."""
        batch = _batch_size(req.headers.get("Sforce-Query-Options"))
        if locator is not None:
            page = self.org.query_more(locator, batch_size=batch)
        else:
            q = req.param("q")
            if q is None:
                raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
            page = self.org.query(q, include_deleted=include_deleted, batch_size=batch, version=req.version)
        body = {"totalSize": page.total_size, "done": page.done}
        if page.next_locator:
            kind = "queryAll" if include_deleted else "query"
            body["nextRecordsUrl"] = f"/services/data/v{req.version}/{kind}/{page.next_locator}"
        body["records"] = page.records
        return json_response(200, body)

    # --- sobjects ------------------------------------------------------------------------------
    def sobjects(self, req: Request, parts: list[str]) -> Response:
        """``/sobjects`` and everything below it."""
        org, m, n, v = self.org, req.method, len(parts), req.version
        if n == 0:
            self._only(m, "GET")
            return json_response(200, {"encoding": "UTF-8", "maxBatchSize": MAX_COLLECTION,
                                       "sobjects": [o.global_entry(v) for o in org.schema.objects.values()]})
        obj = org.object(parts[0])
        if n == 1:
            self._only(m, "GET", "POST")
            if m == "GET":
                return json_response(200, {"objectDescribe": obj.global_entry(v), "recentItems": []})
            body = req.json()
            self._record_faults_single(req)
            rec_id = org.create(obj.name, body)
            return json_response(201, {"id": rec_id, "success": True, "errors": []},
                                 {"Location": f"/services/data/v{v}/sobjects/{obj.name}/{rec_id}"})
        if n == 2 and parts[1] == "describe":
            self._only(m, "GET")
            return json_response(200, obj.describe(v, org.schema))
        if n == 2:
            self._only(m, "GET", "PATCH", "DELETE")
            rec_id = parts[1]
            if m == "GET":
                fields = req.param("fields")
                return json_response(200, org.get(obj.name, rec_id, fields.split(",") if fields else None, v))
            self._record_faults_single(req)
            if m == "PATCH":
                org.update(obj.name, rec_id, req.json() or {})
            else:
                org.delete(obj.name, rec_id)
            return Response(204)
        if n == 3:
            self._only(m, "GET", "PATCH")
            field_name, value = parts[1], parts[2]
            if m == "GET":
                return json_response(200, org.get_by_external_id(obj.name, field_name, value, v))
            self._record_faults_single(req)
            rec_id, created = org.upsert(obj.name, field_name, value, req.json() or {})
            body = {"id": rec_id, "success": True, "errors": [], "created": created}
            if created:
                return json_response(201, body, {"Location": f"/services/data/v{v}/sobjects/{obj.name}/{rec_id}"})
            # API 46.0 and later answer an upsert that updated with 200 and a body; earlier versions with 204
            # (REST API Developer Guide, "Insert or Update (Upsert) a Record Using an External ID").
            return json_response(200, body) if float(v) >= 46.0 else Response(204)
        raise not_found()

    def _record_faults_single(self, req: Request) -> None:
        # A record-level fault on a single-record call fails that call as a whole, as DML on one row does.
        for rule in self.org.faults.take(req.method, req.path, RECORD_KINDS):
            if 0 in rule.records:
                raise ApiError(400, rule.error_code, rule.message, [])

    # --- sObject Collections -------------------------------------------------------------------
    def collections(self, req: Request, parts: list[str]) -> Response:
        """``/composite/sobjects`` (POST create, PATCH update, DELETE, GET by ids, PATCH upsert)."""
        org, m = self.org, req.method
        if len(parts) == 1:
            self._only(m, "GET", "POST")
            obj = org.object(parts[0])
            if m == "GET":
                return self._collection_get(req, obj.name, req.param("ids"), req.param("fields"))
            body = req.json() or {}
            return self._collection_get(req, obj.name, ",".join(body.get("ids", [])), ",".join(body.get("fields", [])))
        if len(parts) == 2:
            self._only(m, "PATCH")
            obj = org.object(parts[0])
            ext = org._external_field(obj, parts[1]).name
            body = req.json() or {}
            return self._collection_write(req, body.get("records"), body.get("allOrNone", False),
                                          lambda rec: self._upsert_one(obj.name, ext, rec))
        if parts:
            raise not_found()
        self._only(m, "POST", "PATCH", "DELETE")
        if m == "DELETE":
            ids_param = req.param("ids") or ""
            all_or_none = (req.param("allOrNone") or "false").lower() == "true"
            targets = [i for i in ids_param.split(",") if i]
            return self._collection_write(req, targets, all_or_none, self._delete_one, key=lambda i: i)
        body = req.json() or {}
        op = self._create_one if m == "POST" else self._update_one
        key = None if m == "POST" else (lambda rec: rec.get("id") or rec.get("Id"))
        return self._collection_write(req, body.get("records"), body.get("allOrNone", False), op, key=key)

    def _collection_get(self, req: Request, obj_name: str, ids_param: str | None, fields: str | None) -> Response:
        if not ids_param or not fields:
            raise ApiError(400, "MALFORMED_QUERY", "The ids and fields parameters are required")
        out = []
        for rec_id in ids_param.split(","):
            try:
                out.append(self.org.get(obj_name, rec_id, fields.split(","), req.version))
            except ApiError as err:
                if err.error_code != "NOT_FOUND":
                    raise
                out.append(None)
        return json_response(200, out)

    def _type_of(self, rec: dict) -> str:
        kind = (rec.get("attributes") or {}).get("type") if isinstance(rec, dict) else None
        if not kind:
            raise ApiError(400, "INVALID_TYPE", "Must send a concrete entity type.")
        return kind

    def _create_one(self, rec: dict) -> dict:
        rec_id = self.org.create(self._type_of(rec), rec)
        return {"id": rec_id, "success": True, "errors": []}

    def _update_one(self, rec: dict) -> dict:
        values = {k: v for k, v in rec.items() if k not in ("id", "Id")}
        rec_id = rec.get("id") or rec.get("Id")
        if not rec_id:
            raise ApiError(400, "MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
        self.org.update(self._type_of(rec), rec_id, values)
        return {"id": self.org.resolve(self._type_of(rec), rec_id)["Id"], "success": True, "errors": []}

    def _upsert_one(self, obj_name: str, ext: str, rec: dict) -> dict:
        if isinstance(rec, dict) and rec.get("attributes", {}).get("type", obj_name).lower() != obj_name.lower():
            raise ApiError(400, "INVALID_TYPE", "The attributes type does not match the URL's sObject type")
        rec_id, created = self.org.upsert(obj_name, ext, None, rec)
        return {"id": rec_id, "success": True, "errors": [], "created": created}

    def _delete_one(self, rec_id: str) -> dict:
        obj = self._type_for_id(rec_id)
        self.org.delete(obj, rec_id)
        return {"id": ids.canonical(rec_id), "success": True, "errors": []}

    def _type_for_id(self, rec_id: str) -> str:
        if not ids.is_valid(rec_id):
            raise ApiError(400, "MALFORMED_ID", f"malformed id {rec_id}")
        for obj in self.org.schema.objects.values():
            if obj.key_prefix and rec_id[:3] == obj.key_prefix:
                return obj.name
        raise ApiError(400, "MALFORMED_ID", f"malformed id {rec_id}")

    def _collection_write(self, req: Request, records, all_or_none: bool, op, key=None) -> Response:
        org = self.org
        if not isinstance(records, list):
            raise ApiError(400, "JSON_PARSER_ERROR", "records must be a list")
        if len(records) > MAX_COLLECTION:
            raise ApiError(400, "EXCEEDED_ID_LIMIT",
                           f"record limit reached. cannot submit more than {MAX_COLLECTION} records into this call")
        faulted: dict[int, ApiError] = {}
        for rule in org.faults.take(req.method, req.path, RECORD_KINDS):
            for pos in rule.records:
                faulted[pos] = ApiError(400, rule.error_code, rule.message, [])
        results: list[dict | None] = [None] * len(records)
        errors: dict[int, ApiError] = {}

        def run_one(i, rec):
            if i in faulted:
                raise faulted[i]
            return op(rec)

        with org.lock:
            if all_or_none:
                try:
                    with org.transaction():
                        for i, rec in enumerate(records):
                            try:
                                results[i] = run_one(i, rec)
                            except ApiError as err:
                                errors[i] = err
                        if errors:
                            raise _Rollback()
                except _Rollback:
                    for i in range(len(records)):
                        err = errors.get(i)
                        if err is None:
                            # "Record rolled back because not all records were valid and the request was using
                            # AllOrNone header" (sObject Collections, allOrNone).
                            err = ApiError(400, "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                           "Record rolled back because not all records were valid and the request "
                                           "was using AllOrNone header", [])
                        results[i] = _failure(err, key(records[i]) if key else None)
            else:
                for i, rec in enumerate(records):
                    try:
                        with org.transaction():
                            results[i] = run_one(i, rec)
                    except ApiError as err:
                        results[i] = _failure(err, key(rec) if key else None)
        return json_response(200, results)

    # --- Bulk API 2.0 --------------------------------------------------------------------------
    def jobs(self, req: Request, kind: str, parts: list[str]) -> Response:
        """``/jobs/ingest`` and ``/jobs/query``."""
        m, bulk = req.method, self.bulk
        if not parts:
            self._only(m, "GET", "POST")
            if m == "GET":
                return json_response(200, bulk.list_jobs(kind))
            body = req.json() or {}
            if kind == "ingest":
                return json_response(200, bulk.create_ingest(body, req.version).create_info())
            return json_response(200, bulk.create_query(body, req.version).info(full=False))
        job_id = parts[0]
        if len(parts) == 1:
            self._only(m, "GET", "PATCH", "DELETE")
            if m == "GET":
                return json_response(200, bulk.poll(job_id, kind))
            if m == "DELETE":
                bulk.delete(job_id, kind)
                return Response(204)
            state = (req.json() or {}).get("state")
            faults = self.org.faults.take(m, req.path, RECORD_KINDS) if kind == "ingest" else []
            return json_response(200, bulk.set_state(job_id, kind, state, faults))
        sub = parts[1]
        if kind == "ingest" and sub == "batches" and len(parts) == 2:
            self._only(m, "PUT")
            ctype = req.headers.get("Content-Type", "")
            if not ctype.startswith("text/csv"):
                raise ApiError(415, "UNSUPPORTEDCONTENTTYPE", f"Unsupported content type: {ctype or 'none'}")
            faults = self.org.faults.take(m, req.path, RECORD_KINDS)
            bulk.upload(job_id, req.body.decode("utf-8"), faults)
            return Response(201)
        if kind == "ingest" and sub in ("successfulResults", "failedResults", "unprocessedrecords") and len(parts) == 2:
            self._only(m, "GET")
            return Response(200, bulk.results(job_id, sub).encode("utf-8"), {"Content-Type": "text/csv"})
        if kind == "query" and sub == "results" and len(parts) == 2:
            self._only(m, "GET")
            max_records = req.param("maxRecords")
            if max_records is not None and (not max_records.isdigit() or int(max_records) < 1):
                raise ApiError(400, "INVALIDREQUEST", f"Invalid maxRecords: {max_records}")
            data, locator, count = bulk.query_results(job_id, req.param("locator"),
                                                      int(max_records) if max_records else None)
            return Response(200, data.encode("utf-8"), {"Content-Type": "text/csv", "Sforce-Locator": locator,
                                                        "Sforce-NumberOfRecords": str(count)})
        raise not_found()


class _Rollback(Exception):
    """Raised inside an allOrNone transaction to undo it."""


def _failure(err: ApiError, rec_id) -> dict:
    # Failed creates carry no "id"; failed updates and deletes name the record they were about.
    out: dict = {}
    if isinstance(rec_id, str) and rec_id:
        out["id"] = rec_id
    out.update({"success": False, "errors": [err.save_error()]})
    return out


def _bearer(headers: dict[str, str]) -> str | None:
    value = headers.get("Authorization", "")
    for scheme in ("Bearer ", "OAuth "):
        if value.startswith(scheme):
            return value[len(scheme):].strip()
    return None


def _batch_size(option: str | None) -> int | None:
    # Sforce-Query-Options: batchSize=N, 200..2000 (REST API Developer Guide, "Query Options Header").
    if not option:
        return None
    m = re.search(r"batchSize=(\d+)", option)
    if not m:
        return None
    return min(max(int(m.group(1)), 200), 2000)

