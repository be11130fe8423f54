"""The sandbox org's Pub/Sub API over real gRPC + TLS: presets, flow control, keep-alives, auth,
replay-id expiry, stream faults, and Avro payloads decoded with the schema GetSchema gives."""
from __future__ import annotations

import datetime as dt
import io
import queue
import threading

import fastavro
import grpc
import pytest

from connector.clock import FrozenClock
from connector.salesforce.pubsub import api
from connector.sandbox.events import decode_replay, encode_replay
from connector.sandbox.org import Org, OrgConfig
from connector.sandbox.server import serve

pb2, pb2_grpc = api()
START = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)
KEEPALIVE = 0.5
WAIT = 5.0


@pytest.fixture
def clock():
    return FrozenClock(START)


@pytest.fixture
def org(clock):
    return Org(OrgConfig(), clock=clock)


@pytest.fixture
def server(org, tmp_path):
    srv = serve(org, ca_path=tmp_path / "ca.pem", pubsub_port=0, pubsub_keepalive=KEEPALIVE)
    yield srv
    srv.stop()


@pytest.fixture
def channel(server):
    creds = grpc.ssl_channel_credentials(root_certificates=server.ca_path.read_bytes())
    with grpc.secure_channel(server.pubsub_target, creds) as ch:
        yield ch


@pytest.fixture
def stub(channel):
    return pb2_grpc.PubSubStub(channel)


@pytest.fixture
def meta(org, server):
    return (("accesstoken", org.issue_token()), ("instanceurl", org.config.instance_url),
            ("tenantid", org.config.org_id))


class Subscription:
    """A Subscribe call driven by a test: ask(n) sends a FetchRequest; next() waits for a response."""

    def __init__(self, stub, meta, topic, preset=pb2.ReplayPreset.LATEST, replay_id=b"", first=0):
        self.requests: queue.Queue = queue.Queue()
        self.responses: queue.Queue = queue.Queue()
        self.requests.put(pb2.FetchRequest(topic_name=topic, replay_preset=preset, replay_id=replay_id,
                                           num_requested=first))
        self.call = stub.Subscribe(iter(self.requests.get, None), metadata=meta)
        self.error: grpc.RpcError | None = None
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self):
        try:
            for resp in self.call:
                self.responses.put(resp)
        except grpc.RpcError as exc:
            self.error = exc
        self.responses.put(None)

    def ask(self, n):
        self.requests.put(pb2.FetchRequest(num_requested=n))

    def next(self, timeout=WAIT):
        return self.responses.get(timeout=timeout)

    def events(self, n, timeout=WAIT):
        """The next n events (across responses, skipping keep-alives)."""
        out = []
        while len(out) < n:
            resp = self.next(timeout)
            assert resp is not None, f"stream ended after {len(out)} of {n} events: {self.error}"
            out.extend(resp.events)
        assert len(out) == n
        return out

    def ready(self):
        """Wait for the first keep-alive: the server has set the stream's start position."""
        resp = self.next()
        assert resp is not None and not resp.events
        return resp

    def close(self):
        self.call.cancel()
        self.requests.put(None)


@pytest.fixture
def subscribe(stub, meta):
    subs = []

    def make(topic, **kw):
        sub = Subscription(stub, meta, topic, **kw)
        subs.append(sub)
        return sub

    yield make
    for s in subs:
        s.close()


def decode(stub, meta, event):
    info = stub.GetSchema(pb2.SchemaRequest(schema_id=event.event.schema_id), metadata=meta)
    schema = fastavro.parse_schema(__import__("json").loads(info.schema_json))
    return fastavro.schemaless_reader(io.BytesIO(event.event.payload), schema)


def header(stub, meta, event):
    return decode(stub, meta, event)["ChangeEventHeader"]


def error_code(exc: grpc.RpcError) -> str | None:
    return dict(exc.trailing_metadata() or ()).get("error-code")


def test_latest_delivers_only_what_is_published_after_subscribing(org, stub, meta, subscribe):
    before = org.create("Account", {"Name": "Before"})
    sub = subscribe("/data/AccountChangeEvent", first=10)
    sub.ready()
    after = org.create("Account", {"Name": "After"})
    org.create("Opportunity", {"Name": "Other channel", "StageName": "Prospecting", "CloseDate": "2027-01-31"})
    (ev,) = sub.events(1)
    h = header(stub, meta, ev)
    assert h["recordIds"] == [after] and h["changeType"] == "CREATE" and h["entityName"] == "Account"
    assert before not in h["recordIds"]
    assert decode_replay(ev.replay_id) == org.events.tip - 1   # the opportunity came after it


def test_earliest_and_custom_presets(org, stub, meta, subscribe):
    ids = [org.create("Account", {"Name": f"A{i}"}) for i in range(3)]
    early = subscribe("/data/ChangeEvents", preset=pb2.ReplayPreset.EARLIEST, first=10)
    evs = early.events(3)
    assert [header(stub, meta, e)["recordIds"][0] for e in evs] == ids
    custom = subscribe("/data/AccountChangeEvent", preset=pb2.ReplayPreset.CUSTOM, replay_id=evs[0].replay_id,
                       first=10)
    got = custom.events(2)
    assert [g.replay_id for g in got] == [e.replay_id for e in evs[1:]]   # strictly after the replay id


def test_flow_control_sends_no_more_than_asked(org, subscribe):
    for i in range(5):
        org.create("Product2", {"Name": f"P{i}", "IsActive": True})
    sub = subscribe("/data/Product2ChangeEvent", preset=pb2.ReplayPreset.EARLIEST, first=2)
    resp = sub.next()
    assert len(resp.events) == 2 and resp.pending_num_requested == 0
    idle = sub.next()   # nothing more until asked: a keep-alive
    assert not idle.events and idle.pending_num_requested == 0
    assert idle.latest_replay_id == resp.events[-1].replay_id
    sub.ask(10)
    rest = sub.next()
    assert len(rest.events) == 3 and rest.pending_num_requested == 7
    assert org.events.delivered("/data/Product2ChangeEvent") == 5


def test_keepalive_carries_latest_replay_id(org, subscribe):
    org.create("Account", {"Name": "Tip"})
    sub = subscribe("/data/AccountChangeEvent", first=1)
    first = sub.next(timeout=KEEPALIVE * 6)
    assert not first.events and decode_replay(first.latest_replay_id) == org.events.tip
    assert first.pending_num_requested == 1
    second = sub.next(timeout=KEEPALIVE * 6)
    assert not second.events and second.latest_replay_id == first.latest_replay_id


def test_rolled_back_transaction_publishes_nothing_and_committed_one_publishes_on_commit(org, stub, meta, subscribe):
    sub = subscribe("/data/ChangeEvents", first=10)
    sub.ready()
    with pytest.raises(RuntimeError), org.transaction():
        org.create("Account", {"Name": "Ghost"})
        raise RuntimeError("roll back")
    with org.transaction():
        kept = org.create("Account", {"Name": "Kept"})
        opp = org.create("Opportunity", {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2027-01-31",
                                         "AccountId": kept})
        assert org.events.tip == 0   # nothing published before the commit
    evs = sub.events(2)
    hs = [header(stub, meta, e) for e in evs]
    assert [h["recordIds"] for h in hs] == [[kept], [opp]]
    assert hs[0]["transactionKey"] == hs[1]["transactionKey"] and [h["sequenceNumber"] for h in hs] == [1, 2]
    assert all(r.entity != "Account" or kept in r.record_ids for r in org.events.events())


def test_bad_token_wrong_tenant_and_unknown_topic(org, stub, meta):
    bad = (("accesstoken", "00Dbogus!token"),) + meta[1:]
    with pytest.raises(grpc.RpcError) as err:
        stub.GetTopic(pb2.TopicRequest(topic_name="/data/AccountChangeEvent"), metadata=bad)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_code(err.value) == "sfdc.platform.eventbus.grpc.service.auth.error"
    wrong_tenant = meta[:2] + (("tenantid", "00D000000000001AAA"),)
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Subscribe(iter([pb2.FetchRequest(topic_name="/data/AccountChangeEvent", num_requested=1)]),
                            metadata=wrong_tenant, timeout=WAIT))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        stub.GetTopic(pb2.TopicRequest(topic_name="/data/PeriodChangeEvent"), metadata=meta)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    topic = stub.GetTopic(pb2.TopicRequest(topic_name="/data/OpportunityChangeEvent"), metadata=meta)
    assert topic.can_subscribe and topic.schema_id
    info = stub.GetSchema(pb2.SchemaRequest(schema_id=topic.schema_id), metadata=meta)
    assert '"OpportunityChangeEvent"' in info.schema_json


def test_expired_replay_id_is_corrupted(org, clock, stub, meta, subscribe):
    org.create("Account", {"Name": "Old"})
    old = encode_replay(org.events.tip)

    def custom(replay_id):
        call = stub.Subscribe(iter([pb2.FetchRequest(topic_name="/data/AccountChangeEvent",
                                                     replay_preset=pb2.ReplayPreset.CUSTOM, replay_id=replay_id,
                                                     num_requested=1)]), metadata=meta, timeout=WAIT)
        with pytest.raises(grpc.RpcError) as err:
            list(call)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_code(err.value) == "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"

    custom(encode_replay(999))          # never issued
    custom(b"\x01")                     # not a replay id at all
    clock.advance(dt.timedelta(hours=72, seconds=1))   # past the retention
    org.create("Account", {"Name": "New"})
    custom(old)
    newer = encode_replay(org.events.tip)
    org.events.expire_replay_ids()      # the fault: every replay id held so far is gone
    custom(newer)
    assert org.events.events() == []


def test_stream_reset_fault_aborts_after_n_events(org, subscribe):
    for i in range(4):
        org.create("Account", {"Name": f"R{i}"})
    org.events.reset_stream_after(3)
    sub = subscribe("/data/AccountChangeEvent", preset=pb2.ReplayPreset.EARLIEST, first=2)
    assert len(sub.events(2)) == 2
    sub.ask(2)
    assert len(sub.events(1)) == 1     # the 3rd event is delivered, then the stream is reset
    assert sub.next() is None
    assert sub.error.code() == grpc.StatusCode.UNAVAILABLE
    assert org.events.delivered("/data/AccountChangeEvent") == 3


def test_overflow_and_gap_injection(org, stub, meta, subscribe):
    acct = org.create("Account", {"Name": "Gappy"})
    sub = subscribe("/data/AccountChangeEvent", first=10)
    sub.ready()
    org.events.inject_gap("Account", [acct])
    org.events.inject_overflow("Account")
    gap, overflow = (decode(stub, meta, e) for e in sub.events(2))
    assert gap["ChangeEventHeader"]["changeType"] == "GAP_UPDATE"
    assert gap["ChangeEventHeader"]["recordIds"] == [acct] and gap["Name"] is None
    assert overflow["ChangeEventHeader"]["changeType"] == "GAP_OVERFLOW"
    assert overflow["ChangeEventHeader"]["recordIds"] == [] and overflow["ChangeEventHeader"]["entityName"] == "Account"
    with pytest.raises(ValueError):
        org.events.inject_overflow("Period")


def test_avro_create_update_delete_and_automation(org, clock, stub, meta, subscribe, catalog):
    sub = subscribe("/data/ChangeEvents", first=20)
    sub.ready()
    opp = org.create("Opportunity", {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2027-01-31",
                                     "Amount": 1200.5, "Probability": 10, "AccountId": catalog["account"]})
    clock.advance(dt.timedelta(seconds=5))
    org.update("Opportunity", opp, {"StageName": "Closed Won", "Probability": None, "Amount": 99})
    org.delete("Opportunity", opp)
    created, updated, deleted = (decode(stub, meta, e) for e in sub.events(3))
    ch = created["ChangeEventHeader"]
    assert ch["changeType"] == "CREATE" and ch["recordIds"] == [opp] and ch["changedFields"] == []
    assert ch["commitUser"] == org.user_id and ch["commitTimestamp"] == int(START.timestamp() * 1000)
    assert created["Name"] == "Deal" and created["Amount"] == 1200.5 and created["CloseDate"] == dt.date(2027, 1, 31)
    assert created["AccountId"] == catalog["account"] and "Id" not in created and "IsDeleted" not in created
    uh = updated["ChangeEventHeader"]
    assert uh["changeType"] == "UPDATE"
    assert set(uh["changedFields"]) == {"StageName", "IsClosed", "IsWon", "Amount", "Probability",
                                     "LastModifiedDate"}
    assert uh["nulledFields"] == ["Probability"] and updated["Probability"] is None
    assert updated["StageName"] == "Closed Won" and updated["IsWon"] is True and updated["Name"] is None
    assert updated["LastModifiedDate"] == START + dt.timedelta(seconds=5)
    assert uh["commitNumber"] > ch["commitNumber"]
    dh = deleted["ChangeEventHeader"]
    assert dh["changeType"] == "DELETE" and dh["recordIds"] == [opp] and deleted["Name"] is None
    # automation: an order product's roll-up touches its order (an UPDATE of Order.TotalAmount)
    order = org.create("Order", {"AccountId": catalog["account"], "EffectiveDate": "2027-01-01",
                                 "Status": "Draft", "Pricebook2Id": catalog["pb"]})
    org.create("OrderItem", {"OrderId": order, "PricebookEntryId": catalog["pbe"], "Quantity": 2,
                             "UnitPrice": 100})
    kinds = [(h["entityName"], h["changeType"]) for h in (header(stub, meta, e) for e in sub.events(3))]
    assert kinds == [("Order", "CREATE"), ("OrderItem", "CREATE"), ("Order", "UPDATE")]
    # nulled fields
    org.update("Order", order, {"Description": "x"})
    org.update("Order", order, {"Description": None})
    nulled = decode(stub, meta, sub.events(2)[1])["ChangeEventHeader"]
    assert nulled["nulledFields"] == ["Description"]


def test_cli_serves_pubsub_and_prints_pubsub_url(tmp_path):
    """`revsync sandbox serve --pubsub-port 0` prints `pubsub_url` in the [salesforce] table, and a client
    trusting the printed CA file reaches it with a token from the HTTPS token endpoint."""
    import re
    import signal
    import subprocess
    import sys

    import requests

    proc = subprocess.Popen([sys.executable, "-m", "connector.cli", "sandbox", "serve", "--port", "0",
                             "--pubsub-port", "0", "--ca-out", "ca.pem"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("export REQUESTS_CA_BUNDLE="):
                break
        printed = "".join(lines)
        login = re.search(r'^login_url = "(.+)"$', printed, re.M).group(1)
        target = re.search(r'^pubsub_url = "(localhost:\d+)"$', printed, re.M).group(1)
        ca = tmp_path / "ca.pem"
        token = requests.post(f"{login}/services/oauth2/token", verify=str(ca), timeout=10,
                              data={"grant_type": "client_credentials", "client_id": "revsync-test-client",
                                    "client_secret": "revsync-test-secret"}).json()
        meta = (("accesstoken", token["access_token"]), ("instanceurl", token["instance_url"]),
                ("tenantid", OrgConfig().org_id))
        creds = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
        with grpc.secure_channel(target, creds) as ch:
            topic = pb2_grpc.PubSubStub(ch).GetTopic(pb2.TopicRequest(topic_name="/data/ChangeEvents"), metadata=meta,
                                                     timeout=WAIT)
        assert topic.can_subscribe and topic.topic_name == "/data/ChangeEvents"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_cascade_deletes_and_which_objects_publish(clock):
    org = Org(OrgConfig(cdc_entities=("Opportunity", "Quote", "QuoteLineItem")), clock=clock)
    acct = org.create("Account", {"Name": "Not published"})
    opp = org.create("Opportunity", {"Name": "D", "StageName": "Prospecting", "CloseDate": "2027-01-31",
                                     "AccountId": acct})
    quote = org.create("Quote", {"Name": "Q", "OpportunityId": opp})
    tip = org.events.tip
    org.delete("Opportunity", opp)   # master-detail: its quote goes with it
    kinds = [(e.entity, e.change_type, e.record_ids) for e in org.events.events() if e.replay > tip]
    assert kinds == [("Quote", "DELETE", [quote]), ("Opportunity", "DELETE", [opp])]
    assert {e.entity for e in org.events.events()} == {"Opportunity", "Quote"}
    assert "/data/AccountChangeEvent" not in org.events.channels


def test_undelete_restores_the_record_and_its_children_and_publishes_undelete(clock):
    org = Org(OrgConfig(cdc_entities=("Opportunity", "Quote")), clock=clock)
    opp = org.create("Opportunity", {"Name": "D", "StageName": "Prospecting", "CloseDate": "2027-01-31"})
    quote = org.create("Quote", {"Name": "Q", "OpportunityId": opp})
    org.delete("Opportunity", opp)
    tip = org.events.tip
    org.undelete("Opportunity", opp)
    kinds = [(e.entity, e.change_type, e.record_ids) for e in org.events.events() if e.replay > tip]
    assert kinds == [("Quote", "UNDELETE", [quote]), ("Opportunity", "UNDELETE", [opp])]
    undeleted = [e for e in org.events.events() if e.replay > tip][1]
    assert undeleted.fields["Name"] == "D"  # an undeleted record's event carries it whole
    assert not org.get("Opportunity", opp)["IsDeleted"] and not org.get("Quote", quote)["IsDeleted"]
    with pytest.raises(Exception, match="not in the recycle bin"):
        org.undelete("Opportunity", opp)


def test_a_stream_whose_session_expires_ends_unauthenticated(org, subscribe):
    sub = subscribe("/data/AccountChangeEvent", first=5)
    sub.ready()
    org.expire_sessions()
    org.create("Account", {"Name": "After the session"})
    assert sub.next() is None
    assert sub.error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_code(sub.error) == "sfdc.platform.eventbus.grpc.service.auth.error"
    assert org.events.delivered() == 0
