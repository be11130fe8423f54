"""The sandbox org's state: records, DML with Salesforce's validation and automation, queries,
sessions, the API-usage counter and the request log. One re-entrant lock guards all of it.

This is the object tests and the demo hold; the WSGI app (``app.py``) only translates HTTP to
these methods. Errors are raised as :class:`~connector.sandbox.errors.ApiError` with the codes
Salesforce uses (REST API Developer Guide, "Status Codes and Error Responses"; SOAP API
"StatusCode" enumeration).

Org automation emulated, because the connector depends on it:

- ``Opportunity.IsClosed``/``IsWon`` follow ``StageName`` (Closed Won / Closed Lost);
- ``Quote.AccountId`` comes from its opportunity; ``Quote.IsSyncing`` is true for the quote named by
  ``Opportunity.SyncedQuoteId`` (which must be a quote of that opportunity);
- quote lines and order products take ``Product2Id``/``ListPrice`` from their price book entry, which
  must belong to the parent's price book; ``TotalPrice`` = quantity x unit price, rolled up to
  ``Order.TotalAmount`` (touching the order, as roll-ups do);
- an order is created Draft; it can be activated only when it has products; activation stamps
  ``ActivatedDate``/``ActivatedById``; products cannot be added to, changed on or removed from an
  activated order; deleting an order or quote deletes its lines (master-detail cascade);
- auto-numbers (``OrderNumber``, ``QuoteNumber``, ``LineNumber``, ``OrderItemNumber``, custom
  auto-number names) and ``Entitlement.Status`` from its dates.
"""
from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import secrets
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from connector.clock import Clock, SystemClock

from . import ids, soql
from .errors import ApiError, not_found
from .events import CDC_ENTITIES, NOT_IN_EVENTS, ChangeEvent, EventBus
from .faults import FaultPlan
from .schema import FieldDef, ObjectDef, Schema, load_schema

#: id Salesforce reports for a big object row written through the API (no record Id exists)
BIG_OBJECT_ROW_ID = "000000000000000AAA"
DEFAULT_API_VERSION = "60.0"


@dataclass
class OrgConfig:
    """How the sandbox org is set up: identity, credentials it accepts, limits and paging."""

    instance_url: str = "https://sandbox.revsync.test"
    org_id: str = "00D8d0000000SBXEA2"  # 18 characters, with the case checksum Salesforce computes
    #: connected apps the token endpoint accepts: client id -> client secret
    clients: dict[str, str] = field(default_factory=lambda: {"revsync-test-client": "revsync-test-secret"})
    #: the integration user: username -> password (password grant) and JWT ``sub``
    username: str = "integration@revsync.test"
    password: str = "revsync-test-password"
    #: PEM public key or X.509 certificate; when set, JWT bearer assertions must be signed by its key
    jwt_public_key: str | None = None
    #: accepted JWT ``aud`` values (Salesforce: login/test.salesforce.com or the My Domain URL)
    jwt_audiences: tuple[str, ...] = ("https://login.salesforce.com", "https://test.salesforce.com")
    daily_api_limit: int = 15000
    query_batch_size: int = 2000
    #: polls of a closed Bulk API 2.0 job before it is JobComplete (UploadComplete -> InProgress -> JobComplete)
    bulk_polls_to_complete: int = 2
    multi_currency: bool = False
    default_currency: str = "USD"
    require_auth: bool = True
    metadata_dir: Path | str | None = None
    #: big-object records the org holds, all big objects together (None: no limit). A real org
    #: holds 1,000,000 by default and does not report its usage in ``GET /limits`` (see
    #: connector.capacity), so neither does the sandbox: an insert of a new row past it fails
    #: that row, STORAGE_LIMIT_EXCEEDED (the code Salesforce gives for a full storage; the
    #: documentation does not say which one a full big-object allocation gives)
    big_object_capacity: int | None = None
    #: objects whose changes publish Change Data Capture events (``org.events``; Pub/Sub API)
    cdc_entities: tuple[str, ...] = CDC_ENTITIES
    #: how long change events are kept for replay (Salesforce: 72 hours)
    event_retention: dt.timedelta = dt.timedelta(hours=72)
    #: seconds of silence after which the Pub/Sub server sends a keep-alive (Salesforce: within 270 s)
    pubsub_keepalive: float = 270.0


@dataclass
class LogEntry:
    """One request the org served."""

    method: str
    path: str
    status: int
    at: dt.datetime
    #: the client's User-Agent (revsync sends its process id there)
    agent: str = ""


@dataclass
class QueryPage:
    """One page of a REST query result."""

    total_size: int
    done: bool
    records: list[dict]
    next_locator: str | None


class Org:
    """An in-memory Salesforce org: the state behind the sandbox's REST and Bulk APIs."""

    def __init__(self, config: OrgConfig | None = None, *, clock: Clock | None = None, schema: Schema | None = None):
        self.config = config or OrgConfig()
        self.clock = clock or SystemClock()
        self.schema = schema or load_schema(self.config.metadata_dir, multi_currency=self.config.multi_currency)
        self.lock = threading.RLock()
        self.faults = FaultPlan()
        self.ids = ids.IdFactory()
        self._records: dict[str, dict[str, dict]] = {o.name: {} for o in self.schema.objects.values() if not o.is_big}
        self._big: dict[str, dict[tuple, dict]] = {o.name: {} for o in self.schema.objects.values() if o.is_big}
        self._autonumbers: dict[str, itertools.count] = {}
        self._last_stamp: dt.datetime | None = None
        self._tokens: dict[str, dict] = {}
        self._cursors: dict[str, list[dict]] = {}
        self.api_usage = 0
        self.request_log: list[LogEntry] = []
        self.bulk_jobs: dict[str, object] = {}
        self._journal: list[tuple] | None = None
        #: Change Data Capture: the log the Pub/Sub server serves, and the events of the write or
        #: transaction in progress (published when it commits)
        self.events = EventBus(self.schema, self.clock, entities=self.config.cdc_entities,
                               retention=self.config.event_retention)
        self._pending_events: list[ChangeEvent] = []
        self._write_depth = 0
        # The integration user creates itself: its CreatedById is its own Id, like an org's first admin.
        self.user_id = self.ids.new("005")
        self.add_user(self.config.username, "Integration", "User", user_id=self.user_id)

    # --- time ----------------------------------------------------------------------------------
    def stamp(self) -> str:
        """The timestamp for a write now: from the injected clock, never earlier than the last one."""
        with self.lock:
            now = self.clock.now().astimezone(dt.timezone.utc)
            now = now.replace(microsecond=now.microsecond // 1000 * 1000)
            if self._last_stamp is not None and now < self._last_stamp:
                now = self._last_stamp
            self._last_stamp = now
            return soql.format_datetime(now)

    # --- sessions and limits ---------------------------------------------------------------------
    def issue_token(self, client_id: str | None = None) -> str:
        """A new access token for the integration user (what the OAuth endpoint hands out)."""
        with self.lock:
            token = f"{self.config.org_id[:15]}!{secrets.token_urlsafe(48)}"
            self._tokens[token] = {"client_id": client_id, "user_id": self.user_id}
            return token

    def check_token(self, token: str | None) -> bool:
        """True for a token this org issued and has not expired."""
        with self.lock:
            return token is not None and token in self._tokens

    def expire_sessions(self) -> None:
        """Invalidate every issued token (a session timeout or an admin revoking sessions)."""
        with self.lock:
            self._tokens.clear()

    def count_api_call(self) -> None:
        """Count one API request against the daily limit, refusing it once the limit is reached."""
        with self.lock:
            if self.api_usage >= self.config.daily_api_limit:
                raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            self.api_usage += 1

    def limit_info(self) -> str:
        """The ``Sforce-Limit-Info`` header value, e.g. ``api-usage=12/15000``."""
        return f"api-usage={self.api_usage}/{self.config.daily_api_limit}"

    def limits(self) -> dict:
        """The ``GET /limits`` body, shaped like samples/limits.json, with live API usage."""
        raw = json.loads(resources.files(__package__).joinpath("limits.json").read_text("utf-8"))
        raw["DailyApiRequests"] = {"Max": self.config.daily_api_limit,
                                   "Remaining": max(self.config.daily_api_limit - self.api_usage, 0)}
        jobs = sum(1 for j in self.bulk_jobs.values() if getattr(j, "kind", "") == "query")
        raw["DailyBulkV2QueryJobs"]["Remaining"] = raw["DailyBulkV2QueryJobs"]["Max"] - jobs
        return raw

    def log(self, method: str, path: str, status: int, agent: str = "") -> None:
        """Record one served request."""
        with self.lock:
            self.request_log.append(LogEntry(method, path, status, self.clock.now(), agent))

    # --- reading -------------------------------------------------------------------------------
    def object(self, name: str) -> ObjectDef:
        """The schema of object ``name``; ``NOT_FOUND`` like ``/sobjects/{bad}``."""
        obj = self.schema.get(name)
        if obj is None:
            raise not_found()
        return obj

    def _find(self, obj: ObjectDef, rec_id: str, *, deleted: bool = False) -> dict | None:
        if not ids.is_valid(rec_id):
            return None
        rec = self._records[obj.name].get(ids.canonical(rec_id))
        if rec is None or (rec.get("IsDeleted") and not deleted):
            return None
        return rec

    def resolve(self, obj_name: str, rec_id: str) -> dict | None:
        """The live record of type ``obj_name`` with this Id, or None (for SOQL parent paths)."""
        obj = self.schema.get(obj_name)
        if obj is None or obj.is_big:
            return None
        return self._find(obj, rec_id)

    def attributes(self, obj_name: str, record: dict, version: str = DEFAULT_API_VERSION) -> dict:
        """A record's ``attributes`` map: ``type`` and ``url`` (big objects: ``type`` only)."""
        if obj_name.endswith("__b"):
            return {"type": obj_name}
        return {"type": obj_name, "url": f"/services/data/v{version}/sobjects/{obj_name}/{record['Id']}"}

    def get(self, obj_name: str, rec_id: str, fields: list[str] | None = None, version: str = DEFAULT_API_VERSION) -> dict:
        """``GET /sobjects/{type}/{id}``: the record with ``attributes``, all fields or the named ones."""
        with self.lock:
            obj = self.object(obj_name)
            rec = self._find(obj, rec_id)
            if rec is None:
                raise not_found()
            names = [f.name for f in obj.fields.values()]
            if fields:
                names = []
                for n in fields:
                    f = obj.field(n)
                    if f is None:
                        raise ApiError(400, "INVALID_FIELD", f"No such column '{n}' on entity '{obj.name}'. If you are "
                                       "attempting to use a custom field, be sure to append the '__c' after the custom "
                                       "field name. Please reference your WSDL or the describe call for the appropriate names.")
                    names.append(f.name)
            out = {"attributes": self.attributes(obj.name, rec, version)}
            out.update({n: rec.get(n) for n in names})
            return out

    def get_by_external_id(self, obj_name: str, field_name: str, value: str, version: str = DEFAULT_API_VERSION) -> dict:
        """``GET /sobjects/{type}/{extIdField}/{value}``."""
        with self.lock:
            obj = self.object(obj_name)
            f = self._external_field(obj, field_name)
            matches = self._match_external(obj, f, value)
            if not matches:
                raise not_found()
            return self.get(obj.name, matches[0]["Id"], version=version)

    def records(self, obj_name: str, *, include_deleted: bool = False) -> list[dict]:
        """Copies of the stored records of a type (for tests and the demo; not an API call)."""
        with self.lock:
            obj = self.object(obj_name)
            if obj.is_big:
                return [dict(r) for r in self._big[obj.name].values()]
            return [dict(r) for r in self._records[obj.name].values() if include_deleted or not r.get("IsDeleted")]

    # --- queries -------------------------------------------------------------------------------
    def query(self, text: str, *, include_deleted: bool = False, batch_size: int | None = None,
              version: str = DEFAULT_API_VERSION) -> QueryPage:
        """Run SOQL (``query``; ``queryAll`` with ``include_deleted``) and return the first page."""
        with self.lock:
            q = soql.parse(text, self.schema)
            rows = self.run_query(q, include_deleted=include_deleted)
            if q.count == "count()":
                return QueryPage(len(rows), True, [], None)
            if q.count == "count(field)":
                n = sum(1 for r in rows if soql.path_value(q.obj, r, q.count_path, self.resolve, self.schema) is not None)
                return QueryPage(1, True, [{"attributes": {"type": "AggregateResult"}, "expr0": n}], None)
            rendered = [soql.render(q, r, self.resolve, self.schema,
                                    lambda name, rec: self.attributes(name, rec, version)) for r in rows]
            return self._page(rendered, batch_size or self.config.query_batch_size)

    def run_query(self, q: soql.Query, *, include_deleted: bool = False) -> list[dict]:
        """The stored records a parsed query selects, sorted, offset and limited (not rendered)."""
        with self.lock:
            if q.obj.is_big:
                pool = list(self._big[q.obj.name].values())
            else:
                pool = [r for r in self._records[q.obj.name].values() if include_deleted or not r.get("IsDeleted")]
            rows = [r for r in pool if soql.matches(q, r, self.resolve, self.schema)]
            rows = soql.sort_records(q, rows, self.resolve, self.schema)
            rows = rows[q.offset:]
            if q.limit is not None:
                rows = rows[:q.limit]
            return rows

    def _page(self, rendered: list[dict], batch: int) -> QueryPage:
        first, rest = rendered[:batch], rendered[batch:]
        locator = None
        if rest:
            locator = self.ids.new("01g")
            self._cursors[locator] = rendered
            locator = f"{locator}-{batch}"
        return QueryPage(len(rendered), not rest, first, locator)

    def query_more(self, locator: str, *, batch_size: int | None = None) -> QueryPage:
        """The page of a query cursor at ``{cursorId}-{position}`` (``GET /query/{locator}``)."""
        with self.lock:
            cursor_id, _, pos = locator.partition("-")
            rows = self._cursors.get(cursor_id)
            if rows is None or not pos.isdigit():
                raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            start = int(pos)
            batch = batch_size or self.config.query_batch_size
            page = rows[start:start + batch]
            done = start + batch >= len(rows)
            nxt = None if done else f"{cursor_id}-{start + batch}"
            if done:
                del self._cursors[cursor_id]
            return QueryPage(len(rows), done, page, nxt)

    # --- transactions --------------------------------------------------------------------------
    @contextmanager
    def transaction(self):
        """All writes inside commit together or, if the block raises, are undone (allOrNone)."""
        with self.lock:
            outer = self._journal
            self._journal = []
            mark = len(self._pending_events)
            try:
                yield
            except BaseException:
                del self._pending_events[mark:]
                for kind, key, sub, before in reversed(self._journal):
                    store = self._records[key] if kind == "rec" else self._big[key]
                    if before is None:
                        store.pop(sub, None)
                    else:
                        store[sub] = before
                self._journal = outer
                raise
            else:
                if outer is not None:
                    outer.extend(self._journal)
                self._journal = outer
                self._publish_if_committed()

    @contextmanager
    def _writing(self):
        """Around one DML call: its change events publish when it ends, unless a transaction is open.
        (A failed call outside a transaction publishes what it did write: nothing undoes it.)"""
        self._write_depth += 1
        try:
            yield
        finally:
            self._write_depth -= 1
            self._publish_if_committed()

    def _publish_if_committed(self) -> None:
        if self._write_depth == 0 and self._journal is None and self._pending_events:
            events, self._pending_events = self._pending_events, []
            self.events.publish(events)

    def _changed(self, obj_name: str, change_type: str, new: dict, old: dict | None) -> None:
        """Record the change event of one record write (published when the write commits)."""
        if not self.events.publishes(obj_name):
            return
        fields: dict = {}
        changed: list[str] = []
        nulled: list[str] = []
        if change_type in ("CREATE", "UNDELETE"):  # an undeleted record comes back whole, as created
            fields = {k: v for k, v in new.items() if v is not None and k not in NOT_IN_EVENTS}
        elif change_type == "UPDATE" and old is not None:
            changed = [k for k, v in new.items() if k not in NOT_IN_EVENTS and v != old.get(k)]
            fields = {k: new[k] for k in changed if new[k] is not None}
            nulled = [k for k in changed if new[k] is None]
        # the sandbox has one user acting through its APIs: the integration user
        self._pending_events.append(ChangeEvent(obj_name, change_type, [new["Id"]], fields, changed, nulled,
                                                commit_user=self.user_id))

    def _remember(self, kind: str, key: str, sub, before: dict | None) -> None:
        if self._journal is not None:
            self._journal.append((kind, key, sub, copy.deepcopy(before)))

    # --- writes --------------------------------------------------------------------------------
    def create(self, obj_name: str, values: dict, *, seed: bool = False) -> str:
        """Insert a record; returns its 18-character Id. ``seed`` bypasses field-level write checks."""
        with self.lock, self._writing():
            obj = self.object(obj_name)
            if obj.is_big:
                self.insert_big(obj.name, values)
                return BIG_OBJECT_ROW_ID
            if not (obj.createable or seed):
                raise ApiError(400, "INVALID_TYPE_FOR_OPERATION", f"entity type cannot be inserted: {obj.name}")
            clean = self._coerce(obj, values, creating=True, seed=seed)
            if "Id" in clean and not seed:
                raise ApiError(400, "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
            rec_id = clean.pop("Id", None) or self.ids.new(obj.key_prefix)
            rec = {f.name: None for f in obj.fields.values()}
            for f in obj.fields.values():
                if f.type == "boolean":
                    rec[f.name] = False
                if f.default_value is not None:
                    rec[f.name] = f.default_value
                if f.auto_number:
                    rec[f.name] = self._next_autonumber(obj, f)
            if obj.field("CurrencyIsoCode"):
                rec["CurrencyIsoCode"] = self.config.default_currency
            if obj.field("OwnerId"):
                rec["OwnerId"] = self.user_id
            now = self.stamp()
            rec.update({"Id": rec_id, "CreatedDate": now, "LastModifiedDate": now, "SystemModstamp": now,
                        "CreatedById": self.user_id, "LastModifiedById": self.user_id})
            if "IsDeleted" in rec:
                rec["IsDeleted"] = False
            rec.update(clean)
            missing = [f.name for f in obj.fields.values()
                       if f.required and f.createable and rec.get(f.name) in (None, "")]
            if missing and not seed:
                raise ApiError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                               missing)
            self._check_unique(obj, rec)
            self._automation(obj, rec, None, seed=seed)
            self._remember("rec", obj.name, rec_id, None)
            self._records[obj.name][rec_id] = rec
            self._changed(obj.name, "CREATE", rec, None)
            self._after_write(obj, rec, None)
            return rec_id

    def update(self, obj_name: str, rec_id: str, values: dict, *, seed: bool = False) -> None:
        """Update fields of an existing record (``PATCH /sobjects/{type}/{id}``); ``seed`` bypasses write checks."""
        with self.lock, self._writing():
            obj = self.object(obj_name)
            if obj.is_big or not (obj.updateable or seed):
                raise ApiError(400, "INVALID_TYPE_FOR_OPERATION", f"entity type cannot be updated: {obj.name}")
            rec = self._find(obj, rec_id)
            if rec is None:
                if ids.is_valid(rec_id) and ids.canonical(rec_id) in self._records[obj.name]:
                    raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
                raise not_found()
            values = dict(values)
            given_id = values.pop("Id", None) or values.pop("id", None)
            if given_id and (not ids.is_valid(given_id) or ids.canonical(given_id) != rec["Id"]):
                raise ApiError(400, "INVALID_ID_FIELD", "The Id field should not be specified in the sobject data.")
            clean = self._coerce(obj, values, creating=False, seed=seed)
            old = dict(rec)
            new = dict(rec)
            new.update(clean)
            blanked = [f.name for f in obj.fields.values() if f.required and f.name in clean and new.get(f.name) in (None, "")]
            if blanked:
                raise ApiError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(blanked)}]", blanked)
            self._check_unique(obj, new)
            self._automation(obj, new, old, seed=seed)
            now = self.stamp()
            new.update({"LastModifiedDate": now, "SystemModstamp": now, "LastModifiedById": self.user_id})
            self._remember("rec", obj.name, rec["Id"], old)
            self._records[obj.name][rec["Id"]] = new
            self._changed(obj.name, "UPDATE", new, old)
            self._after_write(obj, new, old)

    def upsert(self, obj_name: str, field_name: str, value, values: dict) -> tuple[str, bool]:
        """Upsert on an external-id field; returns ``(id, created)``. 300 ``MULTIPLE_CHOICES`` if ambiguous."""
        with self.lock:
            obj = self.object(obj_name)
            f = self._external_field(obj, field_name)
            values = dict(values)
            body_value = next((v for k, v in values.items() if k.lower() == f.name.lower()), None)
            if body_value is not None and value is not None and str(body_value) != str(value):
                raise ApiError(400, "INVALID_FIELD",
                               f"The value of field '{f.name}' in the body does not match the URL ({value!r})", [f.name])
            value = value if value is not None else body_value
            if value in (None, ""):
                raise ApiError(400, "MISSING_ARGUMENT", f"{f.name} not specified")
            matches = [] if f.type == "id" else self._match_external(obj, f, value)
            if f.type == "id":
                existing = self._find(obj, str(value))
                matches = [existing] if existing else []
            if len(matches) > 1:
                raise ApiError(300, "MULTIPLE_CHOICES", f"Multiple records found with {f.name} = {value}")
            values = {k: v for k, v in values.items() if k.lower() != f.name.lower()}
            if matches:
                self.update(obj.name, matches[0]["Id"], values)
                return matches[0]["Id"], False
            if f.type == "id":
                raise not_found()
            values[f.name] = value
            return self.create(obj.name, values), True

    def delete(self, obj_name: str, rec_id: str) -> None:
        """Soft-delete a record (it stays visible to ``queryAll`` with ``IsDeleted = true``)."""
        with self.lock, self._writing():
            obj = self.object(obj_name)
            if obj.is_big or not obj.deletable:
                raise ApiError(400, "INVALID_TYPE_FOR_OPERATION", f"entity type cannot be deleted: {obj.name}")
            rec = self._find(obj, rec_id, deleted=True)
            if rec is None:
                raise not_found()
            if rec["IsDeleted"]:
                raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
            if obj.name == "OrderItem":
                self._check_order_open(rec["OrderId"])
            # Master-detail children go with their parent (Object Reference: OrderItem, QuoteLineItem, Quote).
            for child, parent_field in (("OrderItem", "OrderId"), ("QuoteLineItem", "QuoteId"), ("Quote", "OpportunityId")):
                if parent_field.removesuffix("Id") == obj.name:
                    for c in list(self._records[child].values()):
                        if c.get(parent_field) == rec["Id"] and not c["IsDeleted"]:
                            self._soft_delete(self.schema.get(child), c)
            self._soft_delete(obj, rec)
            self._after_write(obj, self._records[obj.name][rec["Id"]], rec)

    def undelete(self, obj_name: str, rec_id: str) -> None:
        """Restore a deleted record from the Recycle Bin (SOAP ``undelete()``; a user in the UI), with
        the master-detail children deleted with it; publishes UNDELETE change events."""
        with self.lock, self._writing():
            obj = self.object(obj_name)
            rec = self._find(obj, rec_id, deleted=True)
            if rec is None:
                raise not_found()
            if not rec["IsDeleted"]:
                raise ApiError(400, "UNDELETE_FAILED", "Entity is not in the recycle bin")
            for child, parent_field in (("OrderItem", "OrderId"), ("QuoteLineItem", "QuoteId"), ("Quote", "OpportunityId")):
                if parent_field.removesuffix("Id") == obj.name:
                    for c in list(self._records[child].values()):
                        if c.get(parent_field) == rec["Id"] and c["IsDeleted"]:
                            self._restore(self.schema.get(child), c)
            self._restore(obj, rec)
            self._after_write(obj, self._records[obj.name][rec["Id"]], rec)

    def _restore(self, obj: ObjectDef, rec: dict) -> None:
        self._soft_delete(obj, rec, deleted=False)

    def _soft_delete(self, obj: ObjectDef, rec: dict, *, deleted: bool = True) -> None:
        """Move a record to the Recycle Bin (or, `deleted=False`, back out of it)."""
        old = dict(rec)
        new = dict(rec)
        now = self.stamp()
        new.update({"IsDeleted": deleted, "LastModifiedDate": now, "SystemModstamp": now,
                    "LastModifiedById": self.user_id})
        self._remember("rec", obj.name, rec["Id"], old)
        self._records[obj.name][rec["Id"]] = new
        self._changed(obj.name, "DELETE" if deleted else "UNDELETE", new, old)

    def insert_big(self, obj_name: str, values: dict) -> bool:
        """Write a big object row; a row with the same index values is replaced. Returns True if new."""
        with self.lock:
            obj = self.object(obj_name)
            clean = self._coerce(obj, values, creating=True)
            row = {f.name: None for f in obj.fields.values()}
            row.update(clean)
            missing = [f.name for f in obj.fields.values() if f.required and row.get(f.name) in (None, "")]
            if missing:
                raise ApiError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing)
            key = tuple(row[n] for n in obj.index)
            store = self._big[obj.name]
            existed = key in store
            limit = self.config.big_object_capacity
            if not existed and limit is not None and sum(map(len, self._big.values())) >= limit:
                raise ApiError(400, "STORAGE_LIMIT_EXCEEDED",
                               f"storage limit exceeded: the org holds {limit} big object records")
            self._remember("big", obj.name, key, store.get(key))
            store[key] = row
            return not existed

    def delete_big_by_example(self, obj_name: str, values: dict) -> int:
        """Delete the big object rows whose index equals ``values`` (every index field, no other); rows deleted.

        SOAP ``deleteByExample()``: "All fields in the index must be specified. You can't include a
        partially specified index or non-indexed field"; deleting rows already gone succeeds with 0.
        """
        with self.lock:
            obj = self.object(obj_name)
            given = {k.lower(): (k, v) for k, v in values.items()}
            index = {n.lower(): n for n in obj.index}
            extra = [k for low, (k, _) in given.items() if low not in index]
            missing = [n for low, n in index.items() if low not in given or given[low][1] in (None, "")]
            if extra or missing:
                problem = "; ".join(p for p in (f"not index fields: {', '.join(extra)}" if extra else "",
                                                f"index fields missing: {', '.join(missing)}" if missing else "") if p)
                raise ApiError(400, "INVALID_FIELD", f"deleteByExample needs every field of the {obj.name} index "
                               f"({', '.join(obj.index)}) and no other: {problem}", extra + missing)
            key = tuple(self._index_value(obj, obj.field(n), given[n.lower()][1]) for n in obj.index)
            store = self._big[obj.name]
            if key not in store:
                return 0
            self._remember("big", obj.name, key, store[key])
            del store[key]
            return 1

    def _index_value(self, obj: ObjectDef, f: FieldDef, value: str):
        # the stored form of a template value: canonical Ids, date-times as the org writes them
        if f.type in ("id", "reference"):
            if not ids.is_valid(value):
                raise ApiError(400, "MALFORMED_ID", f"{f.label}: id value of incorrect type: {value}", [f.name])
            return ids.canonical(value)
        if f.type == "datetime":
            return soql.format_datetime(parse_datetime(value, lambda: ApiError(
                400, "INVALID_FIELD", f"{f.name}: not a date-time: {value}", [f.name])))
        return self._value(obj, f, value)

    # --- validation ----------------------------------------------------------------------------
    def _external_field(self, obj: ObjectDef, name: str) -> FieldDef:
        f = obj.field(name)
        if f is None or not (f.external_id or f.type == "id"):
            raise ApiError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {name}")
        return f

    def _match_external(self, obj: ObjectDef, f: FieldDef, value) -> list[dict]:
        want = str(value).casefold()
        return [r for r in self._records[obj.name].values()
                if not r["IsDeleted"] and r.get(f.name) is not None and str(r[f.name]).casefold() == want]

    def _coerce(self, obj: ObjectDef, values: dict, *, creating: bool, seed: bool = False) -> dict:
        if not isinstance(values, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from a non-object value")
        out = {}
        refused = []
        for key, value in values.items():
            if key == "attributes":
                continue
            f = obj.field(key)
            if f is None:
                raise ApiError(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", [key])
            allowed = f.createable if creating else f.updateable
            if not allowed and not seed and not (f.name == "Id" and creating):
                refused.append(f.name)
                continue
            out[f.name] = self._value(obj, f, value)
        if refused:
            # One error naming every field, in Salesforce's words whichever the operation: a
            # create-only field sent on update (OrderItem.OrderId, PricebookEntryId; Object
            # Reference, OrderItem: "It can't be changed in an update") is refused with the same
            # code as a read-only one (https://developer.salesforce.com/docs/atlas.en-us.196.0.
            # object_reference.meta/object_reference/sforce_api_objects_orderitem.htm).
            raise ApiError(400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                           f"Unable to create/update fields: {', '.join(refused)}. Please check the security "
                           "settings of this field and verify that it is read/write for your profile or "
                           "permission set.", refused)
        return out

    def _value(self, obj: ObjectDef, f: FieldDef, value):
        if value is None:
            return None

        def bad():
            return ApiError(400, "JSON_PARSER_ERROR",
                            f"Cannot deserialize instance of {f.type} from {type(value).__name__} value {value!r} "
                            f"or request may be missing a required field", [f.name])

        t = f.type
        if t in ("string", "textarea", "picklist", "email", "phone", "url"):
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise bad()
            value = str(value)
            if f.length and len(value) > f.length:
                raise ApiError(400, "STRING_TOO_LONG", f"{f.label}: data value too large: {value[:40]} (max length={f.length})",
                               [f.name])
            if t == "picklist" and f.restricted_picklist and value not in f.picklist_values:
                raise ApiError(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                               f"{f.label}: bad value for restricted picklist field: {value}", [f.name])
            return value
        if t in ("double", "currency", "percent", "int"):
            if isinstance(value, bool):
                raise bad()
            if isinstance(value, str):
                try:
                    value = float(value) if any(c in value for c in ".eE") else int(value)
                except ValueError:
                    raise bad() from None
            if not isinstance(value, (int, float)):
                raise bad()
            # Keep the JSON number as it came (int or float); clients convert to Decimal themselves.
            return value
        if t == "boolean":
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if not isinstance(value, bool):
                raise bad()
            return value
        if t == "date":
            if not isinstance(value, str) or len(value) != 10:
                raise bad()
            try:
                return dt.date.fromisoformat(value).isoformat()
            except ValueError:
                raise bad() from None
        if t == "datetime":
            return soql.format_datetime(parse_datetime(value, bad))
        if t in ("id", "reference"):
            if not ids.is_valid(value):
                raise ApiError(400, "MALFORMED_ID", f"{f.label}: id value of incorrect type: {value}", [f.name])
            value = ids.canonical(value)
            targets = [self.schema.get(n) for n in f.reference_to]
            known = [o for o in targets if o is not None]
            if t == "reference" and known:
                target = next((o for o in known if o.key_prefix == value[:3]), None)
                if target is None:
                    raise ApiError(400, "FIELD_INTEGRITY_EXCEPTION",
                                   f"{f.label}: id value of incorrect type: {value}", [f.name])
                if self._find(target, value) is None:
                    raise ApiError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [f.name])
            return value
        raise bad()

    def _check_unique(self, obj: ObjectDef, rec: dict) -> None:
        for f in obj.fields.values():
            if not f.unique or rec.get(f.name) in (None, ""):
                continue
            want = str(rec[f.name]).casefold()
            for other in self._records[obj.name].values():
                if other["Id"] != rec["Id"] and not other["IsDeleted"] and str(other.get(f.name)).casefold() == want:
                    raise ApiError(400, "DUPLICATE_VALUE",
                                   f"duplicate value found: {f.name} duplicates value on record with id: {other['Id']}",
                                   [f.name])

    def _next_autonumber(self, obj: ObjectDef, f: FieldDef) -> str:
        key = f"{obj.name}.{f.name}"
        counter = self._autonumbers.setdefault(key, itertools.count(100 if obj.name == "Order" else 1))
        n = next(counter)
        if obj.custom:
            return f"SUB-{n:07d}" if obj.name == "Subscription__c" else f"{obj.name[:3].upper()}-{n:07d}"
        width = {"OrderNumber": 8, "QuoteNumber": 8, "LineNumber": 5, "OrderItemNumber": 10}.get(f.name, 8)
        return f"{n:0{width}d}"

    # --- automation ----------------------------------------------------------------------------
    def _automation(self, obj: ObjectDef, rec: dict, old: dict | None, *, seed: bool = False) -> None:
        name = obj.name
        if name == "Opportunity":
            stage = rec.get("StageName") or ""
            rec["IsClosed"] = stage in ("Closed Won", "Closed Lost")
            rec["IsWon"] = stage == "Closed Won"
            if rec.get("SyncedQuoteId"):
                quote = self._records["Quote"].get(rec["SyncedQuoteId"])
                if quote is None or quote["OpportunityId"] != rec["Id"]:
                    raise ApiError(400, "FIELD_INTEGRITY_EXCEPTION",
                                   "SyncedQuoteId: the synced quote must belong to this opportunity", ["SyncedQuoteId"])
        elif name == "Quote":
            opp = self._records["Opportunity"].get(rec.get("OpportunityId") or "")
            rec["AccountId"] = opp.get("AccountId") if opp else None
            rec["IsSyncing"] = bool(opp and opp.get("SyncedQuoteId") == rec["Id"])
        elif name in ("QuoteLineItem", "OrderItem"):
            parent_field, parent_type = ("QuoteId", "Quote") if name == "QuoteLineItem" else ("OrderId", "Order")
            parent = self._records[parent_type].get(rec.get(parent_field) or "")
            pbe = self._records["PricebookEntry"].get(rec.get("PricebookEntryId") or "")
            if pbe is not None:
                if parent is not None and not seed and parent.get("Pricebook2Id") != pbe["Pricebook2Id"]:
                    label = "Order" if name == "OrderItem" else "Quote"
                    raise ApiError(400, "FIELD_INTEGRITY_EXCEPTION",
                                   f"field integrity exception: PricebookEntryId (pricebook entry is in a different "
                                   f"pricebook than the one assigned to the {label}, or {label} has no pricebook assigned)",
                                   ["PricebookEntryId"])
                if rec.get("Product2Id") not in (None, pbe["Product2Id"]):
                    raise ApiError(400, "FIELD_INTEGRITY_EXCEPTION",
                                   "field integrity exception: Product2Id does not match the price book entry's product",
                                   ["Product2Id"])
                rec["Product2Id"] = pbe["Product2Id"]
                rec["ListPrice"] = pbe["UnitPrice"]
            if rec.get("Quantity") is not None and rec.get("UnitPrice") is not None:
                rec["TotalPrice"] = round(rec["Quantity"] * rec["UnitPrice"], 2)
            if name == "OrderItem" and not seed:
                self._check_order_open(rec.get("OrderId"))
        elif name == "Order":
            status = rec.get("Status")
            if old is None and status == "Activated" and not seed:
                # Orders are created as Draft and activated by an update once they have products.
                raise ApiError(400, "FIELD_INTEGRITY_EXCEPTION",
                               "You can't create an order with an Activated status. Create it as Draft, add products, "
                               "then activate it.", ["Status"])
            was = old.get("Status") if old else None
            if status == "Activated" and was != "Activated":
                items = [i for i in self._records["OrderItem"].values() if i["OrderId"] == rec["Id"] and not i["IsDeleted"]]
                if not items and not seed:
                    raise ApiError(400, "FIELD_INTEGRITY_EXCEPTION",
                                   "You can't activate an order that has no products.", ["Status"])
                rec["ActivatedDate"] = rec.get("ActivatedDate") if seed and rec.get("ActivatedDate") else self.stamp()
                rec["ActivatedById"] = self.user_id
            if status == "Draft" and was == "Activated":
                rec["ActivatedDate"] = None
                rec["ActivatedById"] = None
            rec["StatusCode"] = status
        elif name == "User":
            rec["Name"] = " ".join(p for p in (rec.get("FirstName"), rec.get("LastName")) if p)
        elif name == "PricebookEntry":
            product = self._records["Product2"].get(rec.get("Product2Id") or "")
            rec["Name"] = product["Name"] if product else None
            rec["ProductCode"] = product.get("ProductCode") if product else None
        elif name == "Entitlement":
            today = self.clock.now().date().isoformat()
            start, end = rec.get("StartDate"), rec.get("EndDate")
            if start and start > today:
                rec["Status"] = "Inactive"
            elif end and end < today:
                rec["Status"] = "Expired"
            else:
                rec["Status"] = "Active"

    def _check_order_open(self, order_id: str | None) -> None:
        order = self._records["Order"].get(order_id or "")
        if order is not None and order.get("Status") == "Activated":
            raise ApiError(400, "FIELD_INTEGRITY_EXCEPTION",
                           "You can't add, edit, or delete products on an activated order.", ["OrderId"])

    def _after_write(self, obj: ObjectDef, rec: dict, old: dict | None) -> None:
        if obj.name == "Opportunity":
            # Syncing a quote flips IsSyncing on the opportunity's quotes (and stamps them).
            for quote in list(self._records["Quote"].values()):
                if quote["OpportunityId"] != rec["Id"]:
                    continue
                syncing = rec.get("SyncedQuoteId") == quote["Id"] and not rec["IsDeleted"]
                if quote["IsSyncing"] != syncing:
                    self._touch("Quote", quote, {"IsSyncing": syncing})
        elif obj.name == "OrderItem":
            order = self._records["Order"].get(rec["OrderId"])
            if order is not None:
                total = sum(i.get("TotalPrice") or 0 for i in self._records["OrderItem"].values()
                            if i["OrderId"] == order["Id"] and not i["IsDeleted"])
                if order.get("TotalAmount") != total:
                    self._touch("Order", order, {"TotalAmount": total})

    def _touch(self, obj_name: str, rec: dict, changes: dict) -> None:
        old = dict(rec)
        new = dict(rec)
        new.update(changes)
        now = self.stamp()
        new.update({"LastModifiedDate": now, "SystemModstamp": now})
        self._remember("rec", obj_name, rec["Id"], old)
        self._records[obj_name][rec["Id"]] = new
        self._changed(obj_name, "UPDATE", new, old)

    def add_user(self, username: str, first: str, last: str, *, user_id: str | None = None) -> str:
        """Add an active user (an owner for records); returns its Id."""
        with self.lock:
            values = {"Username": username, "FirstName": first, "LastName": last,
                      "Email": username if "@" in username else f"{username}@example.invalid",
                      "Alias": (first[:1] + last[:4]).lower() or "user", "IsActive": True}
            if user_id:
                values["Id"] = user_id
            return self.create("User", values, seed=True)


def parse_datetime(value, bad=None) -> dt.datetime:
    """Parse the datetime forms Salesforce accepts (``...Z``, ``...+0000``, ``...+00:00``, with or without ms)."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
            text = text[:-2] + ":" + text[-2:]
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            parsed = None
        if parsed is not None and "T" in text:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.timezone.utc)
            return parsed.astimezone(dt.timezone.utc)
    if bad is not None:
        raise bad()
    raise ValueError(f"not a Salesforce datetime: {value!r}")

