"""The sandbox org's event bus: Change Data Capture (CDC) events for the Pub/Sub API server.

Every committed create, update (including the org's own automation touching records), soft
delete (including master-detail cascades) of an object in ``OrgConfig.cdc_entities`` becomes a
change event here, with a fresh replay id. The org buffers the events of a write (and of a whole
``org.transaction()``) and publishes them when it commits; a rolled-back transaction publishes
nothing. The Pub/Sub server (``connector.sandbox.pubsub``) reads this log.

Shapes follow the Change Data Capture Developer Guide ("Change Event Message Structure",
"ChangeEventHeader Fields"): the payload is an Avro record ``<Entity>ChangeEvent`` (namespace
``com.sforce.eventbus``) with a ``ChangeEventHeader`` and the object's fields as nullable unions;
a CREATE carries the fields set, an UPDATE the changed ones (``LastModifiedDate`` included), a
DELETE none. The event leaves out ``Id`` (it is in ``recordIds``), ``IsDeleted`` and
``SystemModstamp``, as Salesforce's do. Dates are Avro ``int``/``date``, date-times
``long``/``timestamp-millis`` (Pub/Sub API: "Date fields are in Epoch time").

One difference from a real org: ``changedFields``/``nulledFields``/``diffFields`` hold field
names; Salesforce's Pub/Sub API sends ``changedFields`` and ``nulledFields`` as bitmaps of
schema field positions (hex strings such as ``0x650004E0``; Pub/Sub API guide, "Event
Deserialization Considerations").

Replay ids are 8-byte big-endian counters, one sequence for the org (every channel's events
share it). Events older than ``OrgConfig.event_retention`` (72 hours) are dropped; a replay id
is valid while its event is kept (or it is 0 and nothing was ever dropped).

Faults for tests (on the bus):

    org.events.reset_stream_after(3)        # the stream that delivers the 3rd next event is aborted (UNAVAILABLE)
    org.events.expire_replay_ids()          # drop the whole log, as if 72 hours passed
    org.events.inject_overflow("Account")   # a GAP_OVERFLOW event for the entity
    org.events.inject_gap("Account", [id])  # a GAP_UPDATE event (record ids, no fields)
    org.events.delivered("/data/AccountChangeEvent")   # events delivered on a channel so far
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import threading
import uuid
from dataclasses import dataclass, field

from connector.clock import Clock

from .schema import FieldDef, ObjectDef, Schema

#: objects of the sandbox that support Change Data Capture (Period does not)
CDC_ENTITIES = ("Account", "Opportunity", "Quote", "QuoteLineItem", "Order", "OrderItem", "Product2")
#: the channel of every selected object's change events
ALL_CHANGES = "/data/ChangeEvents"
#: the change types of the ChangeEventHeader's ``changeType`` enum, in Salesforce's order
CHANGE_TYPES = ["CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE",
                "GAP_OVERFLOW"]
#: record fields a change event does not carry
NOT_IN_EVENTS = frozenset({"Id", "IsDeleted", "SystemModstamp", "LastViewedDate", "LastReferencedDate"})
#: what a change made through the sandbox's APIs reports as its origin
CHANGE_ORIGIN = "com/salesforce/api/rest/60.0"
REPLAY_BYTES = 8


def channel_of(entity: str) -> str:
    """The CDC channel of an object: ``/data/AccountChangeEvent``, ``/data/Thing__ChangeEvent`` for ``Thing__c``."""
    base = entity[:-3] + "__" if entity.endswith("__c") else entity
    return f"/data/{base}ChangeEvent"


def encode_replay(n: int) -> bytes:
    return n.to_bytes(REPLAY_BYTES, "big")


def decode_replay(raw: bytes) -> int | None:
    """The counter in a replay id, or None when it is not one of ours."""
    if len(raw) != REPLAY_BYTES:
        return None
    return int.from_bytes(raw, "big")


@dataclass
class ChangeEvent:
    """One change event as the org records it (the payload is built when first delivered)."""

    entity: str
    change_type: str
    record_ids: list[str]
    #: the record's field values the event carries (already without NOT_IN_EVENTS)
    fields: dict = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    nulled: list[str] = field(default_factory=list)
    commit_user: str = ""
    change_origin: str = CHANGE_ORIGIN
    # set when published
    replay: int = 0
    transaction_key: str = ""
    sequence: int = 0
    commit_number: int = 0
    commit_at: dt.datetime | None = None
    event_id: str = ""
    _payload: bytes | None = None


def _avro_type(f: FieldDef):
    t = f.type
    if t in ("double", "currency", "percent"):
        return "double"
    if t == "int":
        return "int"
    if t == "boolean":
        return "boolean"
    if t == "date":
        return {"type": "int", "logicalType": "date"}
    if t == "datetime":
        return {"type": "long", "logicalType": "timestamp-millis"}
    return "string"


def _header_schema() -> dict:
    strings = {"type": "array", "items": "string"}
    return {
        "type": "record", "name": "ChangeEventHeader", "namespace": "com.sforce.eventbus",
        "fields": [
            {"name": "entityName", "type": "string"},
            {"name": "recordIds", "type": strings},
            {"name": "changeType", "type": {"type": "enum", "name": "ChangeType", "namespace": "com.sforce.eventbus",
                                            "symbols": CHANGE_TYPES}},
            {"name": "changeOrigin", "type": "string"},
            {"name": "transactionKey", "type": "string"},
            {"name": "sequenceNumber", "type": "int"},
            {"name": "commitTimestamp", "type": "long"},
            {"name": "commitNumber", "type": "long"},
            {"name": "commitUser", "type": "string"},
            {"name": "nulledFields", "type": strings},
            {"name": "diffFields", "type": strings},
            {"name": "changedFields", "type": strings},
        ],
    }


class EntitySchema:
    """The Avro schema of one object's change events, its id and its parsed form."""

    def __init__(self, obj: ObjectDef):
        import fastavro

        self.entity = obj.name
        self.fields = [f for f in obj.fields.values() if f.name not in NOT_IN_EVENTS]
        self.types = {f.name: f.type for f in self.fields}
        name = channel_of(obj.name).removeprefix("/data/")
        raw = {
            "type": "record", "name": name, "namespace": "com.sforce.eventbus",
            "fields": [{"name": "ChangeEventHeader", "type": _header_schema()}]
            + [{"name": f.name, "type": ["null", _avro_type(f)], "default": None} for f in self.fields],
        }
        self.json = json.dumps(raw, separators=(",", ":"))
        # ids look like Salesforce's (22 URL-safe base64 characters), derived from the schema text
        self.schema_id = base64.urlsafe_b64encode(hashlib.sha256(self.json.encode()).digest()[:16]).decode().rstrip("=")
        self.parsed = fastavro.parse_schema(raw)

    def encode(self, event: ChangeEvent) -> bytes:
        import fastavro

        header = {
            "entityName": event.entity, "recordIds": list(event.record_ids), "changeType": event.change_type,
            "changeOrigin": event.change_origin, "transactionKey": event.transaction_key,
            "sequenceNumber": event.sequence,
            "commitTimestamp": int(event.commit_at.timestamp() * 1000) if event.commit_at else 0,
            "commitNumber": event.commit_number, "commitUser": event.commit_user,
            "nulledFields": list(event.nulled), "diffFields": [], "changedFields": list(event.changed),
        }
        record: dict = {"ChangeEventHeader": header}
        for name, value in event.fields.items():
            if name in self.types:
                record[name] = _avro_value(self.types[name], value)
        out = io.BytesIO()
        fastavro.schemaless_writer(out, self.parsed, record)
        return out.getvalue()


def _avro_value(ftype: str, value):
    if value is None:
        return None
    if ftype == "date":
        return dt.date.fromisoformat(str(value)[:10])
    if ftype == "datetime":
        # the org stores date-times as soql.format_datetime writes them: 2026-12-01T09:00:00.000+0000
        text = str(value).replace("Z", "+00:00")
        if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
            text = text[:-2] + ":" + text[-2:]
        return dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc)
    if ftype in ("double", "currency", "percent"):
        return float(value)
    if ftype == "int":
        return int(value)
    if ftype == "boolean":
        return bool(value)
    return str(value)


class EventBus:
    """The org's change event log, its channels' schemas, and the stream faults; thread-safe.

    Subscribers wait on :attr:`changed` (a condition notified on every publish); the Pub/Sub
    server also notifies it when a client asks for more events.
    """

    def __init__(self, schema: Schema, clock: Clock, *, entities: tuple[str, ...] | list[str] = CDC_ENTITIES,
                 retention: dt.timedelta = dt.timedelta(hours=72)):
        self.clock = clock
        self.retention = retention
        self.changed = threading.Condition(threading.RLock())
        self.entities = tuple(e for e in (schema.get(n) for n in entities) if e is not None and not e.is_big)
        self.entity_names = frozenset(o.name for o in self.entities)
        self._schemas = {o.name: EntitySchema(o) for o in self.entities}
        self._by_id = {s.schema_id: s for s in self._schemas.values()}
        self.channels: dict[str, frozenset[str]] = {channel_of(o.name): frozenset({o.name}) for o in self.entities}
        self.channels[ALL_CHANGES] = self.entity_names
        self._log: list[ChangeEvent] = []
        self._next = 1
        #: the highest replay id dropped so far (0: nothing dropped)
        self.dropped_through = 0
        self._commits = 0
        self._delivered: dict[str, int] = {}
        #: events left until the delivering stream is reset (None: no reset planned)
        self._reset_in: int | None = None

    # --- publishing ----------------------------------------------------------------------------
    def publishes(self, entity: str) -> bool:
        return entity in self.entity_names

    def publish(self, events: list[ChangeEvent]) -> None:
        """Publish the events of one committed transaction (one transaction key, one commit number)."""
        if not events:
            return
        with self.changed:
            self._commits += 1
            key = uuid.uuid4().hex
            now = self.clock.now().astimezone(dt.timezone.utc)
            now = now.replace(microsecond=now.microsecond // 1000 * 1000)
            for seq, ev in enumerate(events, start=1):
                ev.replay = self._next
                self._next += 1
                ev.transaction_key = key
                ev.sequence = seq
                ev.commit_number = self._commits
                ev.commit_at = now
                ev.event_id = str(uuid.uuid4())
                self._log.append(ev)
            self._prune()
            self.changed.notify_all()

    def _prune(self) -> None:
        cutoff = self.clock.now() - self.retention
        n = 0
        while n < len(self._log) and self._log[n].commit_at is not None and self._log[n].commit_at < cutoff:
            n += 1
        if n:
            self.dropped_through = self._log[n - 1].replay
            del self._log[:n]

    # --- reading -------------------------------------------------------------------------------
    @property
    def tip(self) -> int:
        """The replay id of the newest event published (0: none yet)."""
        with self.changed:
            return self._next - 1

    @property
    def earliest(self) -> int:
        """The position before the oldest kept event (EARLIEST starts after it)."""
        with self.changed:
            self._prune()
            return self.dropped_through if not self._log else self._log[0].replay - 1

    def valid(self, replay: int) -> bool:
        """True when a CUSTOM subscription can resume strictly after ``replay``: its event is still kept
        (or it is 0 and the log never dropped anything)."""
        with self.changed:
            self._prune()
            if replay == 0:
                return self.dropped_through == 0
            return self.dropped_through < replay <= self.tip

    def events(self) -> list[ChangeEvent]:
        """The kept events, oldest first (for tests)."""
        with self.changed:
            self._prune()
            return list(self._log)

    def read(self, entities: frozenset[str], after: int, limit: int) -> tuple[list[ChangeEvent], int]:
        """Up to ``limit`` events of ``entities`` after replay id ``after``, and the new position (the
        replay id of the last event passed, matching or not)."""
        with self.changed:
            self._prune()
            out: list[ChangeEvent] = []
            if not self._log or limit <= 0:
                return out, after
            first = self._log[0].replay
            i = max(after + 1 - first, 0)
            pos = after
            while i < len(self._log) and len(out) < limit:
                ev = self._log[i]
                pos = ev.replay
                if ev.entity in entities:
                    out.append(ev)
                i += 1
            return out, pos

    def schema(self, schema_id: str) -> EntitySchema | None:
        return self._by_id.get(schema_id)

    def schema_of(self, entity: str) -> EntitySchema:
        return self._schemas[entity]

    def payload(self, ev: ChangeEvent) -> bytes:
        if ev._payload is None:
            ev._payload = self._schemas[ev.entity].encode(ev)
        return ev._payload

    # --- delivery accounting and faults --------------------------------------------------------
    def count_delivered(self, channel: str, n: int) -> bool:
        """Count ``n`` events delivered on ``channel``; True when the stream must now be reset."""
        with self.changed:
            self._delivered[channel] = self._delivered.get(channel, 0) + n
            if self._reset_in is None:
                return False
            self._reset_in -= n
            if self._reset_in <= 0:
                self._reset_in = None
                return True
            return False

    def allowance(self, limit: int) -> int:
        """How many events the next response may hold, so a planned reset happens at the right event."""
        with self.changed:
            return limit if self._reset_in is None else min(limit, self._reset_in)

    def delivered(self, channel: str | None = None) -> int:
        """Events delivered so far on ``channel`` (all channels when None)."""
        with self.changed:
            if channel is None:
                return sum(self._delivered.values())
            return self._delivered.get(channel, 0)

    def reset_stream_after(self, n: int) -> None:
        """Abort the Subscribe stream (gRPC UNAVAILABLE) that delivers the ``n``-th next event (n >= 1),
        right after delivering it."""
        if n < 1:
            raise ValueError("reset_stream_after needs n >= 1")
        with self.changed:
            self._reset_in = n
            self.changed.notify_all()

    def expire_replay_ids(self) -> None:
        """Drop every event published so far, as if the 72-hour retention had passed: every replay id
        a client holds is now invalid (CUSTOM fails with ...replayid.corrupted)."""
        with self.changed:
            self.dropped_through = self._next - 1
            self._log.clear()

    def inject_overflow(self, entity: str) -> None:
        """Publish a GAP_OVERFLOW event for ``entity`` (no record ids): too many changes to send one by one."""
        self._check_entity(entity)
        self.publish([ChangeEvent(entity, "GAP_OVERFLOW", [], change_origin="")])

    def inject_gap(self, entity: str, record_ids: list[str], change_type: str = "GAP_UPDATE") -> None:
        """Publish a gap event (header and record ids only, no field values) for these records."""
        if change_type not in CHANGE_TYPES or not change_type.startswith("GAP_"):
            raise ValueError(f"not a gap change type: {change_type}")
        self._check_entity(entity)
        self.publish([ChangeEvent(entity, change_type, list(record_ids), change_origin="")])

    def _check_entity(self, entity: str) -> None:
        if entity not in self.entity_names:
            raise ValueError(f"{entity} does not publish change events (OrgConfig.cdc_entities)")
