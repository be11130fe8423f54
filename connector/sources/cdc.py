"""Change Data Capture through Salesforce's Pub/Sub API: hear about changes the moment they commit.

One subscription (a gRPC `Subscribe` stream) per channel: `/data/<Object>ChangeEvent` for each
object of `[sync] objects` that has change events, or one custom channel (`[sync] cdc_channel`).
Each batch of events is taken in with **one store transaction** that holds what the events caused
and the replay id they end at:

- a change to records (CREATE, UPDATE, DELETE, UNDELETE, and the gap events GAP_CREATE … that name
  record ids) stores one pending notification per record, exactly as an Outbound Message does: the
  daemon then reads those records fresh from Salesforce (batched, 200 Ids a query) and takes them in,
  rather than trusting a partial event payload;
- an overflow event (GAP_OVERFLOW, no record ids) or a gap event without ids asks for a poll of its
  object, from that object's polling cursor;
- an event whose every record the connector itself wrote, committed by the integration user, is
  the connector's own write coming back (echo suppression, as for polling): nothing is stored but
  the replay id.

So a restart resumes exactly after the last batch taken in: killed before the commit, the batch is
delivered again; after it, the notifications are in the store and the daemon processes them. A
replay id Salesforce no longer keeps (older than the 72-hour retention, error code
`…replayid.corrupted`) falls back to a poll of every subscribed object from its cursor, then the
stream starts again at the tip.

A stream started at the tip (the first start, or after a lost replay id) misses what committed
before Salesforce set it up: its first answer (an event, or the keep-alive Salesforce sends within
270 s) asks, in the same transaction, for a poll of its objects, which reads everything up to then
from their cursors; until that answer the stream is not healthy and polling keeps its interval.

Flow control: each stream asks for `batch` events, and for as many more as it has taken in once a
batch is committed. A stream that fails (reset, Salesforce unavailable, an expired token) is
opened again after a backoff (1 s doubling to 60 s, with jitter), from the stored replay id; a
refused token is renewed first. Polling stays the safety net: while every stream is healthy (it
answered within `HEALTHY_SILENCE`, Salesforce sends a keep-alive at least every 270 seconds) the
daemon polls only every `[sync] cdc_poll_interval_seconds`.

Facts: https://developer.salesforce.com/docs/platform/pub-sub-api/guide/ (Subscribe, flow control,
"Handle Errors", "Event Message Durability": 72 hours), Change Data Capture Developer Guide
(ChangeEventHeader fields, gap and overflow events, supported objects).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import os
import queue
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from sqlalchemy import Connection, Engine

from connector.clock import Clock
from connector.sources.outbound import Notified, store_new_notifications
from connector.store.repository import get_meta, set_meta, written_by_us

log = logging.getLogger("revsync.cdc")

#: objects revsync reads that publish change events (Object Reference, "StandardObjectNameChangeEvent");
#: Period has none: it is only polled
CDC_OBJECTS = ("Product2", "Account", "Opportunity", "Quote", "QuoteLineItem", "Order", "OrderItem")
#: the error code (trailing metadata `error-code`) of a replay id Salesforce no longer keeps
REPLAY_ID_CORRUPTED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
#: change types whose events name records to read
RECORD_CHANGES = frozenset({"CREATE", "UPDATE", "DELETE", "UNDELETE",
                            "GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE"})
#: a stream silent longer than this is not healthy (Salesforce sends a keep-alive within 270 s)
HEALTHY_SILENCE = dt.timedelta(seconds=300)
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0
#: store keys
REPLAY_KEY = "cdc_replay:"
POLL_KEY = "cdc_poll_requests"
LAST_EVENT_KEY = "cdc_last_event:"


def channel_of(sobject: str) -> str:
    """The standard change event channel of an object."""
    return f"/data/{sobject}ChangeEvent"


def channels(objects: Sequence[str], custom: str | None = None) -> list[str]:
    """The channels to subscribe to for these objects: one custom channel, or one per object."""
    if custom:
        return [custom]
    return [channel_of(o) for o in objects if o in CDC_OBJECTS]


# --- events ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChangeEvent:
    """The header of one change event: what changed, how, by whom and when."""

    entity: str
    record_ids: tuple[str, ...]
    change_type: str
    commit_user: str
    committed_at: dt.datetime | None
    replay_id: bytes
    #: the event's own id (ProducerEvent.id): with the record id, the stored notification's key
    event_id: str = ""


class Schemas:
    """Avro schemas by id, fetched with GetSchema once and kept (a schema id names one schema for ever)."""

    def __init__(self, fetch: Callable[[str], str]):
        self._fetch = fetch
        self._parsed: dict[str, Any] = {}

    def get(self, schema_id: str) -> Any:
        if schema_id not in self._parsed:
            import fastavro

            self._parsed[schema_id] = fastavro.parse_schema(json.loads(self._fetch(schema_id)))
        return self._parsed[schema_id]


def decode(payload: bytes, schema: Any, replay_id: bytes, event_id: str = "") -> ChangeEvent:
    """The header of an Avro-encoded change event (the record's fields are not trusted: they are read)."""
    import fastavro

    body = fastavro.schemaless_reader(io.BytesIO(payload), schema)
    header = body.get("ChangeEventHeader") if isinstance(body, dict) else None
    if not isinstance(header, dict):
        raise ValueError("the event has no ChangeEventHeader: it is not a change event")
    stamp = header.get("commitTimestamp")
    return ChangeEvent(
        entity=str(header.get("entityName") or ""),
        record_ids=tuple(str(i) for i in header.get("recordIds") or ()),
        change_type=str(header.get("changeType") or ""),
        commit_user=str(header.get("commitUser") or ""),
        committed_at=dt.datetime.fromtimestamp(stamp / 1000, dt.timezone.utc) if isinstance(stamp, int) else None,
        replay_id=replay_id, event_id=event_id)


# --- the store side: one transaction per batch ------------------------------------------------------

@dataclass
class Taken:
    """What one batch of events stored."""

    notified: int = 0
    echoes: int = 0
    polls: set[str] = field(default_factory=set)


def load_replay(conn: Connection, channel: str) -> bytes | None:
    """The replay id the channel's last committed batch ended at."""
    value = get_meta(conn, REPLAY_KEY + channel)
    return bytes.fromhex(value) if value else None


def request_polls(conn: Connection, objects: Sequence[str]) -> None:
    """Ask the daemon to poll these objects in its next pass (kept until it has)."""
    wanted = set(json.loads(get_meta(conn, POLL_KEY) or "[]")) | set(objects)
    set_meta(conn, POLL_KEY, json.dumps(sorted(wanted)))


def polls_requested(conn: Connection) -> set[str]:
    """Objects a gap, overflow or lost replay asked to poll."""
    return set(json.loads(get_meta(conn, POLL_KEY) or "[]"))


def polls_done(conn: Connection, objects: Sequence[str]) -> None:
    """The daemon polled these objects: their requests are met."""
    left = polls_requested(conn) - set(objects)
    set_meta(conn, POLL_KEY, json.dumps(sorted(left)))


def take_batch(conn: Connection, channel: str, events: Sequence[ChangeEvent], end: bytes | None,
               own_user_id: str | None, at: dt.datetime, objects: Sequence[str]) -> Taken:
    """Store what a batch of events caused and the replay id it ends at (`end`), in the caller's
    transaction. Events of objects not in `objects` change nothing but the replay id."""
    taken = Taken()
    notified: list[Notified] = []
    for event in events:
        if event.entity not in objects:
            continue
        ids = [i for i in event.record_ids if "*" not in i]  # "001*": a field type conversion, no record
        if event.change_type not in RECORD_CHANGES or not ids or len(ids) != len(event.record_ids):
            taken.polls.add(event.entity)  # overflow, or a gap without ids: poll the object
            continue
        if own_user_id and event.commit_user == own_user_id \
                and len(written_by_us(conn, event.entity, ids)) == len(set(ids)):
            taken.echoes += 1
            continue
        for record_id in ids:
            key = hashlib.sha256(event.replay_id + b"/" + record_id.encode()).hexdigest()[:48]
            notified.append(Notified(f"cdc:{key}", event.entity, record_id))
    if notified:
        taken.notified = len(store_new_notifications(conn, notified, at))
    if taken.polls:
        request_polls(conn, sorted(taken.polls))
    if end is not None:
        set_meta(conn, REPLAY_KEY + channel, end.hex())
    if events:
        set_meta(conn, LAST_EVENT_KEY + channel, at.isoformat())
    return taken


def stream_status(conn: Connection) -> dict[str, Any]:
    """For `revsync status`: per channel the replay id the last batch ended at and when the last
    event was taken in; and the objects waiting for a poll a gap, overflow or lost replay asked for."""
    from sqlalchemy import select

    from connector.store import schema as t

    rows = conn.execute(select(t.meta.c.key, t.meta.c.value).where(
        t.meta.c.key.like("cdc_%"))).all()
    values = {key: value for key, value in rows}
    names = sorted({k.removeprefix(REPLAY_KEY) for k in values if k.startswith(REPLAY_KEY)}
                   | {k.removeprefix(LAST_EVENT_KEY) for k in values if k.startswith(LAST_EVENT_KEY)})
    return {"channels": [{"channel": name, "replay_id": values.get(REPLAY_KEY + name) or None,
                          "last_event_at": values.get(LAST_EVENT_KEY + name)} for name in names],
            "polls_requested": sorted(json.loads(values.get(POLL_KEY) or "[]"))}


# --- the streams --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StreamCredentials:
    """What a Pub/Sub API call carries in its metadata. The token is a secret: never logged."""

    access_token: str = field(repr=False)
    instance_url: str
    org_id: str

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("accesstoken", self.access_token), ("instanceurl", self.instance_url),
                ("tenantid", self.org_id))


def trusted_roots() -> bytes | None:
    """The CA certificates the gRPC channel trusts: the bundle `requests` is told to use
    (REQUESTS_CA_BUNDLE, then SSL_CERT_FILE), else gRPC's own roots (None)."""
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        path = os.environ.get(name)
        if path and os.path.isfile(path):
            with open(path, "rb") as fh:
                return fh.read()
    return None


def error_code(exc: Any) -> str:
    """The Pub/Sub API's own error code of a failed call (trailing metadata `error-code`), or ""."""
    try:
        trailers = exc.trailing_metadata() or ()
    except Exception:  # noqa: BLE001 - not every RpcError carries trailers
        return ""
    for key, value in trailers:
        if key == "error-code":
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""


class ChangeStream:
    """The Change Data Capture subscriptions of one org, each on a thread of its own.

    `credentials()` gives the current token (logging in if needed) and `refresh()` a new one after a
    refusal; `on_taken()` is called after each committed batch that stored notifications or asked for
    polls (the daemon wakes). Start it only while holding the writer lease: one reader per org.
    """

    def __init__(self, store: Engine, clock: Clock, *, target: str, channels: Sequence[str],
                 objects: Sequence[str], credentials: Callable[[], StreamCredentials],
                 refresh: Callable[[], StreamCredentials], own_user_id: str | None,
                 on_taken: Callable[[], None] = lambda: None, batch: int = 100,
                 root_certificates: bytes | None = None, first_replay: str = "LATEST"):
        self.store = store
        self.clock = clock
        self.target = target
        self.channels = list(channels)
        self.objects = list(objects)
        self._credentials = credentials
        self._refresh = refresh
        self.own_user_id = own_user_id
        self.on_taken = on_taken
        self.batch = max(1, batch)
        self.root_certificates = root_certificates
        self.first_replay = first_replay
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._calls: dict[str, Any] = {}
        self._lock = threading.Lock()
        #: per channel: when it last answered (None: not connected)
        self._heard: dict[str, dt.datetime | None] = {c: None for c in self.channels}
        self.problem: str | None = None
        #: events taken in since the start, for status and tests
        self.events = 0
        self.reconnects = 0
        self._channel: Any = None

    # -- life ------------------------------------------------------------------------------------------

    def start(self) -> None:
        import grpc

        self._channel = grpc.secure_channel(
            self.target, grpc.ssl_channel_credentials(root_certificates=self.root_certificates),
            options=[("grpc.keepalive_time_ms", 60_000), ("grpc.max_receive_message_length", 32 * 1024 * 1024)])
        for name in self.channels:
            thread = threading.Thread(target=self._run, args=(name,), name=f"cdc {name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for call in self._calls.values():
                call.cancel()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._channel is not None:
            self._channel.close()

    def healthy(self) -> bool:
        """Every channel connected and heard from within HEALTHY_SILENCE."""
        now = self.clock.now()
        return all(heard is not None and now - heard <= HEALTHY_SILENCE for heard in self._heard.values())

    # -- one channel -----------------------------------------------------------------------------------

    def _run(self, name: str) -> None:
        wait = FIRST_RETRY_SECONDS
        while not self._stop.is_set():
            try:
                self._subscribe(name)
                wait = FIRST_RETRY_SECONDS
            except Exception as exc:  # noqa: BLE001 - sorted below; the stream is opened again
                if self._stop.is_set():
                    return
                self._heard[name] = None
                wait = self._after_failure(name, exc, wait)
                self.reconnects += 1
                self._stop.wait(wait * random.uniform(0.5, 1.0))
                wait = min(MAX_RETRY_SECONDS, wait * 2)

    def _after_failure(self, name: str, exc: Exception, wait: float) -> float:
        """Deal with a failed stream; returns the wait before opening it again."""
        import grpc

        code = exc.code() if isinstance(exc, grpc.RpcError) and hasattr(exc, "code") else None
        custom = error_code(exc)
        if custom == REPLAY_ID_CORRUPTED or (code == grpc.StatusCode.INVALID_ARGUMENT and "replay" in custom):
            log.warning("the stored replay id is no longer kept by Salesforce; polling the channel's objects "
                        "from their cursors, then listening from the tip", extra={"channel": name})
            with self.store.begin() as conn:
                set_meta(conn, REPLAY_KEY + name, "")
                request_polls(conn, self._objects_of(name))
            self.on_taken()
            return 0.0
        if code == grpc.StatusCode.UNAUTHENTICATED:
            log.info("the Pub/Sub API refused the token; logging in again", extra={"channel": name})
            try:
                self._refresh()
            except Exception as refused:  # noqa: BLE001 - the daemon's own calls report it
                self.problem = f"cannot log in for change events: {str(refused).splitlines()[0]}"
            return wait
        reason = f"{code.name if code else type(exc).__name__}: {_details(exc)}"
        self.problem = f"change event stream {name} failed ({reason}); polling meanwhile"
        log.warning("change event stream failed; opening it again after a backoff",
                    extra={"channel": name, "reason": reason, "retry_in_seconds": round(wait, 1)})
        return wait

    def _objects_of(self, name: str) -> list[str]:
        for o in CDC_OBJECTS:
            if name == channel_of(o):
                return [o]
        return [o for o in self.objects if o in CDC_OBJECTS]

    def _subscribe(self, name: str) -> None:
        from connector.salesforce.pubsub import api

        pb, services = api()
        stub = services.PubSubStub(self._channel)
        creds = self._credentials()
        with self.store.connect() as conn:
            replay = load_replay(conn, name)
        if replay:
            first = pb.FetchRequest(topic_name=name, replay_preset=pb.CUSTOM, replay_id=replay,
                                    num_requested=self.batch)
        else:
            preset = pb.EARLIEST if self.first_replay == "EARLIEST" else pb.LATEST
            first = pb.FetchRequest(topic_name=name, replay_preset=preset, num_requested=self.batch)
        asks: queue.Queue = queue.Queue()
        asks.put(first)
        schemas = Schemas(lambda schema_id: stub.GetSchema(pb.SchemaRequest(schema_id=schema_id),
                                                           metadata=creds.metadata()).schema_json)
        call = stub.Subscribe(_requests(asks, self._stop), metadata=creds.metadata())
        with self._lock:
            self._calls[name] = call
        # A stream started at the tip misses what committed before Salesforce set it up: its first
        # answer proves it is set up, and asks (in the same transaction) for a poll of its objects,
        # which reads everything up to then from their cursors. Until then it is not healthy, and
        # the daemon polls on its interval.
        gap_unread = replay is None
        try:
            for response in call:
                events = [decode(e.event.payload, schemas.get(e.event.schema_id), e.replay_id, e.event.id)
                          for e in response.events]
                end = events[-1].replay_id if events else (
                    response.latest_replay_id if response.pending_num_requested > 0 else None)
                with self.store.begin() as conn:
                    taken = take_batch(conn, name, events, end or None, self.own_user_id, self.clock.now(),
                                       self.objects)
                    if gap_unread:
                        request_polls(conn, self._objects_of(name))
                        taken.polls.update(self._objects_of(name))
                        gap_unread = False
                self._heard[name] = self.clock.now()
                self.problem = None
                self.events += len(events)
                if taken.notified or taken.polls:
                    self.on_taken()
                if events:
                    asks.put(pb.FetchRequest(num_requested=len(events)))
                if self._stop.is_set():
                    return
        finally:
            with self._lock:
                self._calls.pop(name, None)
            asks.put(None)
            call.cancel()


def _requests(asks: queue.Queue, stop: threading.Event) -> Iterator[Any]:
    """The client side of the Subscribe stream: the first request, then one per batch taken in."""
    while not stop.is_set():
        try:
            item = asks.get(timeout=0.5)
        except queue.Empty:
            continue
        if item is None:
            return
        yield item


def _details(exc: Exception) -> str:
    details = getattr(exc, "details", None)
    text = details() if callable(details) else str(exc)
    return (text or "").splitlines()[0] if text else ""

