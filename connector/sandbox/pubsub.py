"""The sandbox org's Pub/Sub API: gRPC over TLS on loopback, serving its Change Data Capture events.

Implements ``eventbus.v1.PubSub`` (connector/salesforce/pubsub/pubsub_api.proto) the way the
Pub/Sub API developer guide describes it:

- every call is authenticated by its metadata: ``accesstoken`` (a token the org issued),
  ``instanceurl`` and ``tenantid`` (the org id); otherwise UNAUTHENTICATED, with the custom error
  code in the trailing metadata key ``error-code`` ("Handle Errors"). A stream whose token stops
  being valid (``org.expire_sessions()``, ``Fault.session_expired``) ends UNAUTHENTICATED at its
  next response (events or keep-alive);
- ``Subscribe`` is a bidirectional stream: the client's FetchRequests add ``num_requested``
  (at most 100 each) to what the server may send; each FetchResponse says what is still
  ``pending_num_requested``. Only the first request's ``replay_preset`` counts: LATEST starts after
  the newest event, EARLIEST at the oldest kept, CUSTOM strictly after ``replay_id`` (an id not in
  the log or past the retention: INVALID_ARGUMENT, ``sfdc.platform.eventbus.grpc.subscription.
  fetch.replayid.corrupted``). With nothing to send for ``keepalive`` seconds the server sends an
  empty FetchResponse whose ``latest_replay_id`` is the stream's position (where to resume);
- ``GetTopic`` (``can_subscribe``, ``schema_id``; the multi-object ``/data/ChangeEvents`` has no
  single schema, so its ``schema_id`` is empty: decode each event by its own ``schema_id``) and
  ``GetSchema`` (the Avro schema JSON of an id).

The TLS certificate is issued by the test CA of the HTTPS server (``server.serve``), so a client
that trusts ``REQUESTS_CA_BUNDLE`` trusts both. Faults live on ``org.events`` (``events.py``).
"""
from __future__ import annotations

import errno
import threading
import time
import uuid
from concurrent import futures

import grpc

from connector.salesforce.pubsub import api

from .events import ALL_CHANGES, decode_replay, encode_replay
from .org import Org

#: custom error codes in the ``error-code`` trailer
AUTH_ERROR = "sfdc.platform.eventbus.grpc.service.auth.error"
REPLAY_CORRUPTED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
TOPIC_NOT_FOUND = "sfdc.platform.eventbus.grpc.service.topic.notfound"
SCHEMA_NOT_FOUND = "sfdc.platform.eventbus.grpc.schema.notfound"
STREAM_RESET = "sfdc.platform.eventbus.grpc.service.unavailable"
#: the most events one FetchRequest may ask for (more counts as this many), and one FetchResponse holds
MAX_REQUESTED = 100


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, error_code: str, message: str):
    rpc_id = str(uuid.uuid4())
    context.set_trailing_metadata((("error-code", error_code), ("rpc-id", rpc_id)))
    context.abort(code, f"{message} rpcId: {rpc_id}")


class _Stream:
    """One Subscribe call's flow-control state, fed by the thread that reads the client's requests."""

    def __init__(self) -> None:
        self.requested = 0
        self.closed = False


def make_servicer(org: Org, keepalive: float):
    """The PubSub servicer for ``org`` (a class instance of the generated base)."""
    pb2, pb2_grpc = api()
    bus = org.events

    class PubSubServicer(pb2_grpc.PubSubServicer):
        def _auth(self, context) -> str:
            """Check the call's metadata; returns its token."""
            meta = {k.lower(): v for k, v in context.invocation_metadata()}
            token, tenant, instance = meta.get("accesstoken"), meta.get("tenantid"), meta.get("instanceurl")
            org_id = org.config.org_id
            if not token or not org.check_token(token):
                _abort(context, grpc.StatusCode.UNAUTHENTICATED, AUTH_ERROR, "Invalid or expired access token.")
            if tenant not in (org_id, org_id[:15]):
                _abort(context, grpc.StatusCode.UNAUTHENTICATED, AUTH_ERROR, "The tenantid is not this org's id.")
            if not instance:
                _abort(context, grpc.StatusCode.UNAUTHENTICATED, AUTH_ERROR, "The instanceurl header is missing.")
            return token

        def GetTopic(self, request, context):
            self._auth(context)
            entities = bus.channels.get(request.topic_name)
            if entities is None:
                _abort(context, grpc.StatusCode.NOT_FOUND, TOPIC_NOT_FOUND, f"Topic not found: {request.topic_name}")
            schema_id = "" if request.topic_name == ALL_CHANGES else bus.schema_of(next(iter(entities))).schema_id
            return pb2.TopicInfo(topic_name=request.topic_name, tenant_guid=org.config.org_id, can_publish=False,
                                 can_subscribe=True, schema_id=schema_id, rpc_id=str(uuid.uuid4()))

        def GetSchema(self, request, context):
            self._auth(context)
            schema = bus.schema(request.schema_id)
            if schema is None:
                _abort(context, grpc.StatusCode.NOT_FOUND, SCHEMA_NOT_FOUND, f"Schema not found: {request.schema_id}")
            return pb2.SchemaInfo(schema_json=schema.json, schema_id=schema.schema_id, rpc_id=str(uuid.uuid4()))

        def Subscribe(self, request_iterator, context):
            token = self._auth(context)
            try:
                first = next(request_iterator)
            except StopIteration:
                return
            topic = first.topic_name
            entities = bus.channels.get(topic)
            if entities is None:
                _abort(context, grpc.StatusCode.NOT_FOUND, TOPIC_NOT_FOUND, f"Topic not found: {topic}")
            if first.replay_preset == pb2.ReplayPreset.CUSTOM:
                pos = decode_replay(first.replay_id)
                if pos is None or not bus.valid(pos):
                    _abort(context, grpc.StatusCode.INVALID_ARGUMENT, REPLAY_CORRUPTED,
                           "The Replay ID validation failed: it is invalid or older than the retention window.")
            elif first.replay_preset == pb2.ReplayPreset.EARLIEST:
                pos = bus.earliest
            else:
                pos = bus.tip
            state = _Stream()

            def ask(req) -> None:
                if req.num_requested > 0:
                    with bus.changed:
                        state.requested += min(req.num_requested, MAX_REQUESTED)
                        bus.changed.notify_all()

            def read_requests() -> None:
                # A client that stops sending keeps its stream (it may ask for more later); the
                # stream ends when the call does (the callback below).
                try:
                    for req in request_iterator:
                        ask(req)
                except Exception:  # noqa: BLE001 - the call ended under the iterator
                    _close(bus, state)

            ask(first)
            reader = threading.Thread(target=read_requests, name="pubsub-requests", daemon=True)
            reader.start()
            context.add_callback(lambda: _close(bus, state))
            last_sent = time.monotonic()
            while True:
                with bus.changed:
                    while True:
                        if state.closed or not context.is_active():
                            return
                        events, pos = bus.read(entities, pos, bus.allowance(min(state.requested, MAX_REQUESTED)))
                        if events:
                            break
                        left = last_sent + keepalive - time.monotonic()
                        if left <= 0:
                            break  # a keep-alive is due
                        bus.changed.wait(timeout=left)
                    state.requested -= len(events)
                    pending = state.requested
                last_sent = time.monotonic()
                if not org.check_token(token):  # the session ended (expired, revoked) under the stream
                    _abort(context, grpc.StatusCode.UNAUTHENTICATED, AUTH_ERROR,
                           "The session of this subscription has expired or was revoked.")
                if not events:
                    yield pb2.FetchResponse(latest_replay_id=encode_replay(pos), rpc_id=str(uuid.uuid4()),
                                            pending_num_requested=pending)
                    continue
                reset = bus.count_delivered(topic, len(events))
                yield pb2.FetchResponse(
                    events=[pb2.ConsumerEvent(event=pb2.ProducerEvent(id=ev.event_id,
                                                                      schema_id=bus.schema_of(ev.entity).schema_id,
                                                                      payload=bus.payload(ev)),
                                              replay_id=encode_replay(ev.replay)) for ev in events],
                    latest_replay_id=encode_replay(pos), rpc_id=str(uuid.uuid4()), pending_num_requested=pending)
                if reset:
                    _abort(context, grpc.StatusCode.UNAVAILABLE, STREAM_RESET,
                           "The stream was reset (sandbox fault). Resubscribe from the last replay id.")

    return PubSubServicer()


def _close(bus, state: _Stream) -> None:
    with bus.changed:
        state.closed = True
        bus.changed.notify_all()


class PubSubBindError(OSError):
    """The Pub/Sub API's port could not be bound (taken, or not an address of this machine)."""


class PubSubServer:
    """A running Pub/Sub gRPC server for one org; :meth:`stop` ends it."""

    def __init__(self, server: grpc.Server, target: str):
        self._server = server
        self.target = target

    def stop(self, grace: float | None = 0.5) -> None:
        self._server.stop(grace).wait(timeout=5)


def serve_pubsub(org: Org, key_pem: bytes, cert_chain_pem: bytes, host: str = "127.0.0.1", port: int = 0, *,
                 keepalive: float | None = None, threads: int = 32) -> PubSubServer:
    """Serve ``org``'s Pub/Sub API over TLS (this key and certificate chain) on ``host:port`` (0: a free
    port); returns the running server (``target`` = ``localhost:PORT``).

    Each open Subscribe stream holds one of the ``threads`` for its life (gRPC's synchronous server),
    so there are enough for a stream per CDC channel, reconnects and the unary calls besides."""
    _, pb2_grpc = api()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sandbox-pubsub"))
    pb2_grpc.add_PubSubServicer_to_server(
        make_servicer(org, org.config.pubsub_keepalive if keepalive is None else keepalive), server)
    creds = grpc.ssl_server_credentials([(key_pem, cert_chain_pem)])
    try:
        bound = server.add_secure_port(f"{host}:{port}", creds)
    except RuntimeError:  # grpc reports a failed bind so ("Failed to bind to address ...")
        bound = 0
    if bound == 0:
        server.stop(None)
        raise PubSubBindError(errno.EADDRINUSE, f"cannot serve the Pub/Sub API on {host}:{port}")
    server.start()
    name = "localhost" if host in ("127.0.0.1", "localhost") else host
    return PubSubServer(server, f"{name}:{bound}")
