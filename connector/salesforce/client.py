"""SalesforceClient: typed calls to one org, over an injected requests.Session.

Every call goes through `_call`, which (1) refuses to start when the API budget is spent,
(2) counts the call, (3) translates every library or network exception into our errors,
(4) re-authenticates once on 401 INVALID_SESSION_ID and repeats the call, and (5) retries
transient failures by the one RetryPolicy. A response hook on every request reads
`Sforce-Limit-Info`, so the budget sees calls made by simple-salesforce as well as our own.

REST calls use simple-salesforce (`query`, `query_more`, `restful`). Bulk API 2.0 calls use the
same session directly: simple-salesforce's bulk2 helpers poll with `time.sleep` inside, cannot be
resumed from a saved job id and locator, and take no timeout, so they do not fit a resumable,
testable client.
"""
from __future__ import annotations

import datetime as dt
import importlib.metadata
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any, Literal, TypeVar
from urllib.parse import quote as url_quote
from urllib.parse import urljoin, urlsplit

import requests
from simple_salesforce import Salesforce

from connector.clock import Clock, SystemClock
from connector.errors import FatalError
from connector.salesforce.auth import Authenticator, Token
from connector.salesforce.bulk import BulkIngest, BulkQuery
from connector.salesforce.budget import ApiBudget, ApiUsage
from connector.salesforce.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    InsecureUrl,
    SalesforceRequestFailed,
    SessionExpired,
    UnexpectedResponse,
    from_response,
    translate,
)
from connector.salesforce.records import (
    CsvRows,
    IngestResult,
    RecordResult,
    check_fields,
    dumps,
    loads,
    record_result,
)
from connector.salesforce.retry import RetryPolicy
from connector.salesforce.soap import DeleteResult, delete_by_example
from connector.salesforce.settings import SalesforceSettings
from connector.salesforce.soql import Query, identifier, sobject_name

log = logging.getLogger(__name__)

T = TypeVar("T")

#: sObject Collections take at most 200 records per request (REST API Developer Guide,
#: "Upsert Records Using sObject Collections").
COLLECTION_LIMIT = 200

IngestOperation = Literal["insert", "update", "upsert", "delete", "hardDelete"]

_RECORD_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")


class SalesforceClient:
    """Typed access to one Salesforce org: queries, describes, writes, Bulk API 2.0."""

    def __init__(self, settings: SalesforceSettings, *, session: requests.Session | None = None,
                 clock: Clock | None = None, retry: RetryPolicy | None = None,
                 authenticator: Authenticator | None = None,
                 bulk_timeout: dt.timedelta = dt.timedelta(hours=6)):
        self._settings = settings
        self._session = session if session is not None else requests.Session()
        # which connector process sent a request, for the org's API usage log and support cases
        self._session.headers["User-Agent"] = f"revsync/{_version()} (pid {os.getpid()})"
        # TLS verification is never off; a CA bundle path (or REQUESTS_CA_BUNDLE) is fine.
        if self._session.verify is False:
            raise FatalError("The requests.Session given to the Salesforce client has TLS verification "
                             "switched off; revsync never talks to Salesforce without it.",
                             hint="Leave session.verify alone, or point REQUESTS_CA_BUNDLE at your CA bundle.")
        self._clock = clock if clock is not None else SystemClock()
        self._retry = retry if retry is not None else RetryPolicy()
        self._auth = authenticator if authenticator is not None else Authenticator(
            settings, self._session, self._clock, self._retry)
        self.budget = ApiBudget(settings.api_budget_share, self._clock)
        self._bulk_timeout = bulk_timeout
        self._sf: Salesforce | None = None
        self._token: Token | None = None

    def fence_with(self, check: Callable[[], None]) -> None:
        """Ask `check` right before every request leaves for Salesforce (the writer lease's fence).

        It is put in front of the session's transport adapters, the last step before the socket,
        so nothing prepared earlier (by this client or simple-salesforce) is sent once `check`
        raises; its error reaches the caller as it is.
        """
        for prefix, adapter in list(self._session.adapters.items()):
            if not isinstance(adapter, _FencedAdapter):
                self._session.mount(prefix, _FencedAdapter(adapter, check))

    # -- status -----------------------------------------------------------------------------

    @property
    def api_usage(self) -> ApiUsage | None:
        """The org's API usage as last reported in `Sforce-Limit-Info` (for status and metrics)."""
        return self.budget.usage

    @property
    def calls_made(self) -> int:
        """API calls this client has sent (token requests not included)."""
        return self.budget.calls

    @property
    def user_id(self) -> str | None:
        """The Id of the user the connector acts as (logging in first if needed), when Salesforce says it."""
        self._connect()
        return self._token.user_id if self._token is not None else None

    def stream_credentials(self, *, renew: bool = False) -> tuple[str, str, str]:
        """(access token, instance URL, org Id) for the Pub/Sub API's call metadata, logging in (again,
        with `renew`) as needed. The token is a secret: it goes in call metadata only, never a log."""
        if renew:
            self._use(self._auth.refresh())
        else:
            self._connect()
        token = self._token
        if token is None or not token.org_id:
            raise SalesforceRequestFailed(
                "Salesforce's login answer did not name the org (no identity URL), which the Pub/Sub API needs "
                "to receive change events.",
                hint="Use [salesforce] auth = \"jwt\" or \"client_credentials\" with [sync] source including \"cdc\", "
                     "or leave \"cdc\" out of [sync] source.")
        return token.access_token.get_secret_value(), token.instance_url, token.org_id

    @property
    def settings(self) -> SalesforceSettings:
        """The settings this client was built from."""
        return self._settings

    # -- queries ----------------------------------------------------------------------------

    def query(self, soql: str | Query) -> Iterator[dict[str, Any]]:
        """Records of a SOQL query, following `nextRecordsUrl` page by page."""
        return self._query(str(soql), include_deleted=False)

    def query_all(self, soql: str | Query) -> Iterator[dict[str, Any]]:
        """Like `query`, but through queryAll: deleted and archived records included."""
        return self._query(str(soql), include_deleted=True)

    def count(self, query: Query, *, include_deleted: bool = False) -> int:
        """How many records `query` matches (SELECT COUNT(), one call)."""
        page = self._call("count", lambda sf: sf.query(query.count().build(),
                                                       include_deleted=include_deleted, **self._kw()))
        return int(page.get("totalSize", 0))

    def read(self, query: Query, *, include_deleted: bool = False) -> Iterator[dict[str, Any]]:
        """Records of `query` by REST, or by Bulk API 2.0 above `bulk_threshold` records.

        REST records are typed JSON (numbers as Decimal) with an `attributes` key; Bulk records are
        CSV strings (None for empty). Callers that read through here must accept both shapes.
        """
        if self.count(query, include_deleted=include_deleted) > self._settings.bulk_threshold:
            return iter(self.bulk_query(query, include_deleted=include_deleted))
        return self._query(query.build(), include_deleted=include_deleted)

    def _query(self, soql: str, *, include_deleted: bool) -> Iterator[dict[str, Any]]:
        what = "queryAll" if include_deleted else "query"
        page = self._call(what, lambda sf: sf.query(soql, include_deleted=include_deleted, **self._kw()))
        while True:
            yield from page.get("records", [])
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            page = self._call(what, lambda sf: sf.query_more(next_url, identifier_is_url=True, **self._kw()))

    def bulk_query(self, soql: str | Query, *, include_deleted: bool = False,
                   max_records: int | None = None) -> BulkQuery:
        """Start a Bulk API 2.0 query job now; iterate the result for records, read `.job_id` to persist."""
        body = {"operation": "queryAll" if include_deleted else "query", "query": str(soql)}
        job = self._call("bulk query job create", lambda sf: self._json(
            "POST", "jobs/query", data=dumps(body)), idempotent=False)
        job_id = str(job["id"])
        log.info("Salesforce bulk query job %s created", job_id)
        return BulkQuery(self, job_id, locator=None, max_records=max_records)

    def resume_bulk_query(self, job_id: str, locator: str | None = None, *,
                          max_records: int | None = None) -> BulkQuery:
        """Continue reading a bulk query job saved before a crash, from the page of `locator`."""
        return BulkQuery(self, _job_id(job_id), locator=locator, max_records=max_records)

    # -- metadata ---------------------------------------------------------------------------

    def describe(self, sobject: str) -> dict[str, Any]:
        """The describe of one sObject (fields, types, relationships)."""
        name = sobject_name(sobject)
        return self._rest("describe", "GET", f"sobjects/{name}/describe/")

    def describe_global(self) -> dict[str, Any]:
        """The global describe: every sObject the user can see."""
        return self._rest("describe global", "GET", "sobjects/")

    def limits(self) -> dict[str, Any]:
        """The org's limits (`/limits`), e.g. DailyApiRequests Max/Remaining."""
        return self._rest("limits", "GET", "limits/")

    # -- single records ---------------------------------------------------------------------

    def get(self, sobject: str, record_id: str) -> dict[str, Any]:
        """One record by Id."""
        path = f"sobjects/{sobject_name(sobject)}/{_record_id(record_id)}"
        return self._rest("get", "GET", path)

    def create(self, sobject: str, record: Mapping[str, Any]) -> str:
        """Create one record and return its Id (not retried after a send failure: not idempotent)."""
        check_fields(record)
        body = self._rest("create", "POST", f"sobjects/{sobject_name(sobject)}/", data=dumps(record),
                          record_level=True, idempotent=False)
        result = record_result(body or {})
        if not result.success or not result.id:
            raise UnexpectedResponse(f"Salesforce create {sobject} answered without an id: {body!r}")
        return result.id

    def update(self, sobject: str, record_id: str, record: Mapping[str, Any]) -> None:
        """Update fields of one record by Id."""
        check_fields(record)
        self._rest("update", "PATCH", f"sobjects/{sobject_name(sobject)}/{_record_id(record_id)}",
                   data=dumps(record), record_level=True)

    def upsert(self, sobject: str, ext_field: str, ext_value: str, record: Mapping[str, Any]) -> RecordResult:
        """Create or update one record by an external id (retried writes never duplicate)."""
        check_fields(record)
        if not isinstance(ext_value, str) or not ext_value:
            raise ValueError("an external id value must be a non-empty string")
        path = f"sobjects/{sobject_name(sobject)}/{identifier(ext_field)}/{url_quote(ext_value, safe='')}"
        body = self._rest("upsert", "PATCH", path, data=dumps(record), record_level=True)
        # API 46.0+ answers 200/201 with {id, success, created}; older versions 204 on update.
        if body is None:
            return RecordResult(success=True, created=False, external_id=ext_value)
        return record_result(body, external_id=ext_value)

    # -- collections ------------------------------------------------------------------------

    def upsert_collection(self, sobject: str, ext_field: str, records: Iterable[Mapping[str, Any]],
                          all_or_none: bool = False) -> list[RecordResult]:
        """Upsert by external id, 200 records a call; one result per record, in input order.

        `all_or_none` holds within each call of 200 only: an earlier chunk stays written when a
        later one rolls back.
        """
        name = sobject_name(sobject)
        field = identifier(ext_field)
        items = [dict(r) for r in records]
        for item in items:
            check_fields(item)
            if item.get(field) in (None, ""):
                raise ValueError(f"every record needs a value for the external id {field}")
        results: list[RecordResult] = []
        for start in range(0, len(items), COLLECTION_LIMIT):
            chunk = items[start:start + COLLECTION_LIMIT]
            payload = {"allOrNone": all_or_none,
                       "records": [{"attributes": {"type": name}, **{k: v for k, v in r.items() if k != "attributes"}}
                                   for r in chunk]}
            body = self._rest("collections upsert", "PATCH", f"composite/sobjects/{name}/{field}",
                              data=dumps(payload))
            if not isinstance(body, list) or len(body) != len(chunk):
                raise UnexpectedResponse(f"Salesforce collections upsert of {len(chunk)} {name} records "
                                         f"answered with {len(body) if isinstance(body, list) else 'no'} results")
            results += [record_result(b, external_id=r[field]) for b, r in zip(body, chunk)]
        return results

    # -- bulk ingest ------------------------------------------------------------------------

    def bulk_ingest(self, sobject: str, operation: IngestOperation, records: Iterable[Mapping[str, Any]] | CsvRows,
                    ext_field: str | None = None, *,
                    on_job: Callable[[str], None] | None = None,
                    fetch_successful: bool = True) -> IngestResult:
        """Load records by a Bulk API 2.0 ingest job and return per-record results.

        `on_job(job_id)` is called as soon as the job exists, so the caller can persist it and
        `resume_bulk_ingest` after a crash instead of loading the same data twice. Without
        `fetch_successful` the successful records (and their Ids) are not read back: one call less.
        """
        return BulkIngest(self).run(sobject_name(sobject), operation, records,
                                    identifier(ext_field) if ext_field else None, on_job, fetch_successful)

    def resume_bulk_ingest(self, job_id: str) -> IngestResult:
        """Wait for an ingest job created earlier and fetch its results."""
        return BulkIngest(self).finish(_job_id(job_id))

    # -- big objects (SOAP) ------------------------------------------------------------------

    def delete_by_example(self, sobject: str, templates: Iterable[Mapping[str, Any]]) -> list[DeleteResult]:
        """Delete big-object rows, each template giving every index field (SOAP deleteByExample)."""
        return delete_by_example(self, sobject_name(sobject), [dict(t) for t in templates])

    # -- plumbing shared with bulk.py and soap.py ------------------------------------------------------

    @property
    def bulk_timeout(self) -> dt.timedelta:
        """How long a bulk job may take before the client gives up waiting (the job goes on)."""
        return self._bulk_timeout

    @property
    def sleep(self) -> Callable[[float], None]:
        """The injectable sleep of the retry policy, also used to poll bulk jobs."""
        return self._retry.sleep

    def _kw(self) -> dict[str, Any]:
        return {"timeout": self._settings.timeout_seconds, "hooks": {"response": [self._on_response]}}

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        refuse_plain_redirect(response)
        self.budget.observe(response.headers.get("Sforce-Limit-Info"))

    def _connect(self) -> Salesforce:
        if self._sf is None:
            self._use(self._auth.token())
        assert self._sf is not None
        return self._sf

    def _use(self, token: Token) -> None:
        self._token = token
        self._sf = Salesforce(instance_url=token.instance_url, session_id=token.access_token.get_secret_value(),
                              session=self._session, version=self._settings.api_version,
                              parse_float=Decimal, object_pairs_hook=dict)

    def _call(self, what: str, fn: Callable[[Salesforce], T], *, record_level: bool = False,
              idempotent: bool = True) -> T:
        renewed = False

        def attempt() -> T:
            nonlocal renewed
            while True:
                self.budget.check()
                sf = self._connect()
                self.budget.count_call()
                try:
                    return fn(sf)
                except Exception as exc:  # noqa: BLE001 - every exception is translated here
                    error = translate(exc, what=what, now=self._clock.now(), record_level=record_level)
                    if isinstance(error, SessionExpired):
                        if renewed:
                            raise AuthenticationFailed(
                                f"Salesforce {what}: a freshly issued token was refused too "
                                "(INVALID_SESSION_ID).", status=error.status, error_code=error.error_code,
                                hint="Check the integration user's API access and session settings.") from exc
                        renewed = True
                        log.info("Salesforce session expired during %s; getting a new token", what)
                        self._use(self._auth.refresh())
                        continue
                    if (not idempotent and isinstance(error, ConnectionFailed)
                            and not isinstance(exc, requests.ConnectTimeout)):
                        # the request may have reached Salesforce: repeating it could do it twice
                        error.retry_safe = False
                    if error is exc:
                        raise
                    raise error from exc

        return self._retry.call(attempt, what=what)

    def _rest(self, what: str, method: str, path: str, *, data: str | None = None,
              record_level: bool = False, idempotent: bool = True) -> Any:
        kwargs: dict[str, Any] = self._kw()
        if data is not None:
            kwargs["data"] = data.encode("utf-8")
        return self._call(what, lambda sf: sf.restful(path, method=method, **kwargs),
                          record_level=record_level, idempotent=idempotent)

    def _http(self, method: str, path: str, *, what: str, data: bytes | str | None = None,
              params: Mapping[str, Any] | None = None, content_type: str = "application/json",
              accept: str = "application/json", ok: tuple[int, ...] = (200, 201, 202, 204)) -> requests.Response:
        """One request on the session itself, inside `_call` (used for Bulk API 2.0)."""
        assert self._token is not None
        url = f"{self._token.instance_url}/services/data/v{self._settings.api_version}/{path}"
        headers = {"Authorization": f"Bearer {self._token.access_token.get_secret_value()}",
                   "Content-Type": content_type, "Accept": accept}
        if isinstance(data, str):
            data = data.encode("utf-8")
        response = self._session.request(method, url, params=params, data=data, headers=headers,
                                         timeout=self._settings.timeout_seconds,
                                         hooks={"response": [self._on_response]})
        if response.status_code not in ok:
            raise from_response(response.status_code, response.content, what=what, now=self._clock.now())
        return response

    def _json(self, method: str, path: str, *, what: str | None = None, data: str | None = None) -> Any:
        response = self._http(method, path, what=what or f"{method} {path}", data=data)
        return loads(response.content) if response.content else None


class _FencedAdapter(requests.adapters.BaseAdapter):
    """A transport adapter that asks a fence before handing the request to the real adapter."""

    def __init__(self, inner: requests.adapters.BaseAdapter, check: Callable[[], None]):
        super().__init__()
        self._inner = inner
        self._check = check

    def send(self, request, *args: Any, **kwargs: Any):  # noqa: ANN001 - requests' own signature
        self._check()
        return self._inner.send(request, *args, **kwargs)

    def close(self) -> None:
        self._inner.close()


def refuse_plain_redirect(response: requests.Response) -> None:
    """A response hook: raise InsecureUrl before requests follows a redirect to anything but https://.

    API calls carry the access token (requests drops the Authorization header when the host changes,
    but not the body) so a redirect may only lead to https. The token request follows no redirect at
    all (connector.salesforce.auth).
    """
    if not response.is_redirect:
        return
    target = urljoin(response.url or "", response.headers.get("Location", ""))
    if urlsplit(target).scheme.lower() != "https":
        raise InsecureUrl(f"Salesforce answered HTTP {response.status_code} redirecting to {target}, which is "
                          "not https://; revsync never sends data or the access token over plain http, so the "
                          "redirect was not followed.",
                          status=response.status_code,
                          hint="Check the instance URL the login returned and any proxy between this machine "
                               "and Salesforce.")


def _version() -> str:
    try:
        return importlib.metadata.version("revsync")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


def _record_id(value: str) -> str:
    if not isinstance(value, str) or not _RECORD_ID.fullmatch(value):
        raise ValueError(f"not a Salesforce record Id: {value!r}")
    return value


def _job_id(value: str) -> str:
    return _record_id(value)
