"""Change Data Capture, the store side: what one batch of change events stores, in one transaction,
and how a change event is decoded (Avro, the header Salesforce documents)."""
from __future__ import annotations

import datetime as dt
import io

import fastavro
import pytest
from sqlalchemy import insert, select

from connector.sources.cdc import (
    REPLAY_KEY,
    ChangeEvent,
    Schemas,
    channels,
    decode,
    load_replay,
    polls_done,
    polls_requested,
    take_batch,
)
from connector.store import schema as t
from connector.store.db import open_store
from connector.store.repository import get_meta

UTC = dt.timezone.utc
AT = dt.datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
OWN = "005000000000001AAA"
REP = "005000000000002AAA"
OBJECTS = ["Period", "Account", "Opportunity", "Order", "OrderItem"]
OPP_SCHEMA = {
    "type": "record", "name": "OpportunityChangeEvent", "namespace": "com.sforce.eventbus",
    "fields": [
        {"name": "ChangeEventHeader", "type": {
            "type": "record", "name": "ChangeEventHeader", "fields": [
                {"name": "entityName", "type": "string"},
                {"name": "recordIds", "type": {"type": "array", "items": "string"}},
                {"name": "changeType", "type": {"type": "enum", "name": "ChangeType", "symbols": [
                    "CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE", "GAP_DELETE",
                    "GAP_UNDELETE", "GAP_OVERFLOW"]}},
                {"name": "changeOrigin", "type": "string"},
                {"name": "transactionKey", "type": "string"},
                {"name": "sequenceNumber", "type": "int"},
                {"name": "commitTimestamp", "type": "long"},
                {"name": "commitNumber", "type": "long"},
                {"name": "commitUser", "type": "string"},
                {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
                {"name": "diffFields", "type": {"type": "array", "items": "string"}},
                {"name": "changedFields", "type": {"type": "array", "items": "string"}}]}},
        {"name": "StageName", "type": ["null", "string"], "default": None},
    ]}


@pytest.fixture()
def store(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield engine
    engine.dispose()


def event(entity: str, ids: tuple[str, ...], change: str = "UPDATE", user: str = REP, n: int = 1) -> ChangeEvent:
    return ChangeEvent(entity, ids, change, user, AT, n.to_bytes(8, "big"), f"e{n}")


def pending(store) -> list[tuple[str, str, str]]:
    n = t.notifications.c
    with store.connect() as conn:
        return [tuple(r) for r in conn.execute(select(n.notification_id, n.object, n.record_id)
                                               .where(n.processed_at.is_(None)).order_by(n.id))]


def test_a_batch_stores_one_notification_per_record_and_its_replay_id_together(store):
    events = [event("Opportunity", ("006000000000001AAA",), n=1),
              event("Order", ("801000000000001AAA", "801000000000002AAA"), "CREATE", n=2)]
    with store.begin() as conn:
        taken = take_batch(conn, "/data/ChangeEvents", events, events[-1].replay_id, OWN, AT, OBJECTS)
    assert taken.notified == 3 and not taken.polls
    assert [(o, r) for _n, o, r in pending(store)] == [
        ("Opportunity", "006000000000001AAA"), ("Order", "801000000000001AAA"), ("Order", "801000000000002AAA")]
    with store.connect() as conn:
        assert load_replay(conn, "/data/ChangeEvents") == (2).to_bytes(8, "big")
    # the same batch delivered again (a resubscription from an older replay id) stores nothing new
    with store.begin() as conn:
        again = take_batch(conn, "/data/ChangeEvents", events, events[-1].replay_id, OWN, AT, OBJECTS)
    assert again.notified == 0 and len(pending(store)) == 3


def test_a_failed_transaction_stores_neither_the_notifications_nor_the_replay_id(store):
    with pytest.raises(RuntimeError):
        with store.begin() as conn:
            take_batch(conn, "/data/OpportunityChangeEvent", [event("Opportunity", ("006000000000001AAA",))],
                       (1).to_bytes(8, "big"), OWN, AT, OBJECTS)
            raise RuntimeError("killed before the commit")
    assert pending(store) == []
    with store.connect() as conn:
        assert load_replay(conn, "/data/OpportunityChangeEvent") is None


def test_the_connectors_own_writes_coming_back_are_not_read_again(store):
    with store.begin() as conn:
        conn.execute(insert(t.sf_ids), [{"object": "Order", "external_id": "O-1", "sf_id": "801000000000001AAA"}])
        taken = take_batch(conn, "c", [
            event("Order", ("801000000000001AAA",), user=OWN, n=1),   # ours, by us: an echo
            event("Order", ("801000000000001AAA",), user=REP, n=2),   # ours, changed by a person: read
            event("Order", ("801000000000009AAA",), user=OWN, n=3),   # not ours (org automation as us): read
        ], (3).to_bytes(8, "big"), OWN, AT, OBJECTS)
    assert taken.echoes == 1
    assert [r for _n, _o, r in pending(store)] == ["801000000000001AAA", "801000000000009AAA"]


def test_overflow_and_gap_events_without_ids_ask_for_a_poll_of_their_object(store):
    with store.begin() as conn:
        taken = take_batch(conn, "c", [
            event("Opportunity", (), "GAP_OVERFLOW", n=1),
            event("Order", ("801*",), "GAP_UPDATE", n=2),                  # a field type conversion: no record
            event("OrderItem", ("802000000000001AAA",), "GAP_UPDATE", n=3),  # a gap naming its record: read it
            event("Contact", ("003000000000001AAA",), "UPDATE", n=4),      # not an object revsync reads
        ], (4).to_bytes(8, "big"), OWN, AT, OBJECTS)
    assert taken.polls == {"Opportunity", "Order"}
    assert [(o, r) for _n, o, r in pending(store)] == [("OrderItem", "802000000000001AAA")]
    with store.begin() as conn:
        assert polls_requested(conn) == {"Opportunity", "Order"}
        polls_done(conn, ["Order"])
        assert polls_requested(conn) == {"Opportunity"}


def test_a_keep_alive_moves_the_replay_id_without_storing_anything(store):
    with store.begin() as conn:
        take_batch(conn, "c", [], b"\x00\x09", OWN, AT, OBJECTS)
        assert get_meta(conn, REPLAY_KEY + "c") == "0009"
    assert pending(store) == []


def test_a_change_event_is_decoded_from_avro_with_the_schema_fetched_once():
    payload = io.BytesIO()
    fastavro.schemaless_writer(payload, fastavro.parse_schema(OPP_SCHEMA), {
        "ChangeEventHeader": {
            "entityName": "Opportunity", "recordIds": ["006000000000001AAA"], "changeType": "UPDATE",
            "changeOrigin": "com/salesforce/api/rest/62.0", "transactionKey": "t1", "sequenceNumber": 1,
            "commitTimestamp": 1764579600123, "commitNumber": 42, "commitUser": REP,
            "nulledFields": [], "diffFields": [], "changedFields": ["StageName", "LastModifiedDate"]},
        "StageName": "Closed Won"})
    fetched = []

    def fetch(schema_id):
        fetched.append(schema_id)
        import json
        return json.dumps(OPP_SCHEMA)

    schemas = Schemas(fetch)
    got = [decode(payload.getvalue(), schemas.get("s1"), b"\x01", "e1") for _ in range(2)]
    assert fetched == ["s1"]
    assert got[0] == ChangeEvent("Opportunity", ("006000000000001AAA",), "UPDATE", REP,
                                 dt.datetime(2025, 12, 1, 9, 0, 0, 123000, tzinfo=UTC), b"\x01", "e1")


def test_channels_cover_the_objects_with_change_events_or_one_custom_channel():
    assert channels(["Period", "Opportunity", "Order"]) == ["/data/OpportunityChangeEvent", "/data/OrderChangeEvent"]
    assert channels(["Period", "Opportunity"], "/data/Revsync__chn") == ["/data/Revsync__chn"]


def test_status_shows_where_each_channel_resumes_and_the_polls_waiting(store):
    from connector.sources.cdc import stream_status

    with store.begin() as conn:
        assert stream_status(conn) == {"channels": [], "polls_requested": []}
        take_batch(conn, "/data/OrderChangeEvent", [event("Order", ("801000000000001AAA",), n=7),
                                                    event("Order", (), "GAP_OVERFLOW", n=8)],
                   (8).to_bytes(8, "big"), OWN, AT, OBJECTS)
        take_batch(conn, "/data/OpportunityChangeEvent", [], b"\x05", OWN, AT, OBJECTS)
        assert stream_status(conn) == {
            "channels": [{"channel": "/data/OpportunityChangeEvent", "replay_id": "05", "last_event_at": None},
                         {"channel": "/data/OrderChangeEvent", "replay_id": "0000000000000008",
                          "last_event_at": AT.isoformat()}],
            "polls_requested": ["Order"]}
