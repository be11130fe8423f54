"""The Outbound Message receiver: store before ack, duplicates once, refusals without ack."""
from __future__ import annotations

import datetime as dt
import io
import logging
import shutil
import time
from pathlib import Path

import defusedxml.ElementTree as SafeET
import pytest
from sqlalchemy import create_engine, event, func, insert, select

from connector.clock import FrozenClock
from connector.sources.outbound import (
    ACK, OUTBOUND_NS, SOAP_ENV, OutboundReceiver, id_suffix, mark_processed, org_key,
    parse_message, pending_notifications,
)
from connector.store import schema as t
from connector.store.db import open_store

HERE = Path(__file__).parent
#: A real Outbound Message, recorded from an org (see README.md here for its provenance).
RECORDED = (HERE / "outbound-message-notification.xml").read_bytes()
RECORDED_ORG = "00DD0000000muCUMAY"
NOW = dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.timezone.utc)


def order_message(*pairs: tuple[str, str], org: str = RECORDED_ORG) -> bytes:
    """The recorded envelope turned into an Order message: same layout, other ids and xsi:type."""
    head, _, rest = RECORDED.decode().partition("   <Notification>")
    _, _, tail = rest.partition("   </Notification>\n")
    notifications = "".join(
        "   <Notification>\n"
        f"    <Id>{notification_id}</Id>\n"
        '    <sObject xsi:type="sf:Order" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">\n'
        f"     <sf:Id>{record_id}</sf:Id>\n"
        "     <sf:Status>Activated</sf:Status>\n"
        "    </sObject>\n"
        "   </Notification>\n"
        for notification_id, record_id in pairs)
    return (head + notifications + tail).replace(RECORDED_ORG, org).encode()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A migrated store file, copied for each test instead of migrating again."""
    path = tmp_path_factory.mktemp("template") / "store.db"
    engine = open_store(f"sqlite:///{path}")
    engine.dispose()
    return path


@pytest.fixture
def store(template, tmp_path):
    path = tmp_path / "store.db"
    shutil.copy(template, path)
    engine = open_store(f"sqlite:///{path}")
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


class Calls:
    """Records on_notified calls (a real implementation of the callback, not a mock)."""

    def __init__(self, raises: BaseException | None = None):
        self.calls: list[tuple[str, list[str]]] = []
        self.raises = raises

    def __call__(self, sobject: str, record_ids: list[str]) -> None:
        self.calls.append((sobject, record_ids))
        if self.raises is not None:
            raise self.raises


def receiver(store, clock, **kwargs) -> OutboundReceiver:
    kwargs.setdefault("org_ids", [RECORDED_ORG])
    kwargs.setdefault("objects", ["Opportunity", "Order", "DiscountRule__c"])
    return OutboundReceiver(store, clock, **kwargs)


def post(app, body: bytes, *, method: str = "POST", content_type: str = "text/xml; charset=utf-8",
         length: str | None = None, chunked: bool = False) -> tuple[str, dict, bytes]:
    """Call the WSGI application the way a server would; return status, headers and body."""
    environ = {"REQUEST_METHOD": method, "PATH_INFO": "/outbound", "CONTENT_TYPE": content_type,
               "wsgi.input": io.BytesIO(body), "REMOTE_ADDR": "127.0.0.1"}
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    else:
        environ["CONTENT_LENGTH"] = str(len(body)) if length is None else length
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    out = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], out


def stored(store) -> list[tuple]:
    n = t.notifications.c
    with store.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(n.notification_id, n.object, n.record_id, n.received_at, n.processed_at).order_by(n.id))]


def assert_refused_soap(status: str, headers: dict, body: bytes, code: str = "Client") -> str:
    assert status.startswith("500 ")
    assert headers["Content-Type"].startswith("text/xml")
    root = SafeET.fromstring(body)
    faultcode = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault/faultcode")
    assert faultcode is not None and faultcode.text == f"soapenv:{code}"
    assert b"Ack" not in body
    return root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault/faultstring").text


# --- accepted --------------------------------------------------------------------------------------

def test_the_recorded_notification_is_stored_then_acked(store, clock):
    status, headers, body = post(receiver(store, clock), RECORDED)

    assert status == "200 OK"
    assert headers["Content-Type"] == "text/xml; charset=utf-8"
    assert body == ACK == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
        b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack>'
        b"</notificationsResponse></soapenv:Body></soapenv:Envelope>")
    ack = SafeET.fromstring(body).find(f"{{{SOAP_ENV}}}Body/{{{OUTBOUND_NS}}}notificationsResponse/"
                                       f"{{{OUTBOUND_NS}}}Ack")
    assert ack is not None and ack.text == "true"
    assert stored(store) == [("04l570000176YSmAAM", "DiscountRule__c", "a025700000OPgOjAAL",
                              NOW, None)]


def test_a_resend_is_stored_once_and_acked_again(store, clock):
    app = receiver(store, clock)
    assert post(app, RECORDED)[2] == ACK
    clock.advance(dt.timedelta(minutes=5))
    status, _, body = post(app, RECORDED)

    assert (status, body) == ("200 OK", ACK)
    rows = stored(store)
    assert len(rows) == 1 and rows[0][3] == NOW  # the first receipt stays


def test_an_order_message_with_several_notifications_triggers_one_sync_per_object(store, clock):
    calls = Calls()
    body = order_message(("04l000000000001AAA", "8015g00000AAAAAAAA"),
                         ("04l000000000002AAA", "8015g00000BBBBBBBB"),
                         ("04l000000000003AAA", "8015g00000AAAAAAAA"))
    status, _, out = post(receiver(store, clock, objects=["Opportunity", "Order"], on_notified=calls), body)

    assert (status, out) == ("200 OK", ACK)
    assert [row[:3] for row in stored(store)] == [
        ("04l000000000001AAA", "Order", "8015g00000AAAAAAAA"),
        ("04l000000000002AAA", "Order", "8015g00000BBBBBBBB"),
        ("04l000000000003AAA", "Order", "8015g00000AAAAAAAA")]
    assert calls.calls == [("Order", ["8015g00000AAAAAAAA", "8015g00000BBBBBBBB"])]


def test_a_15_character_org_id_in_the_configuration_matches_the_18_character_one_sent(store, clock):
    status, _, body = post(receiver(store, clock, org_ids=["00DD0000000muCU"]), RECORDED)
    assert (status, body) == ("200 OK", ACK)


# --- refused: no ack, nothing stored ---------------------------------------------------------------

@pytest.mark.parametrize("org", [
    "00DA0000000muCUMAY",   # another org
    "00DD0000000MUCUMAY",   # differs only in case: 15-character Ids are case-sensitive
    "00DD0000000muCUAAA",   # right org, checksum forged
    "not-an-org-id",
], ids=["foreign", "case-differs", "bad-checksum", "malformed"])
def test_a_message_from_another_org_gets_a_fault_and_no_ack(store, clock, org):
    calls = Calls()
    status, headers, body = post(receiver(store, clock, on_notified=calls),
                                 RECORDED.replace(RECORDED_ORG.encode(), org.encode()))
    reason = assert_refused_soap(status, headers, body)
    assert "OrganizationId" in reason
    assert stored(store) == [] and calls.calls == []


def test_an_object_not_received_here_gets_a_fault(store, clock):
    status, headers, body = post(receiver(store, clock, objects=["Opportunity", "Order"]), RECORDED)
    assert "DiscountRule__c" in assert_refused_soap(status, headers, body)
    assert stored(store) == []


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
""" + RECORDED.split(b"\n", 1)[1].replace(b"<sf:Name>244 Months</sf:Name>", b"<sf:Name>&lol9;</sf:Name>")

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE notifications [<!ENTITY org SYSTEM "file:///etc/hostname">]>
""" + RECORDED.split(b"\n", 1)[1].replace(RECORDED_ORG.encode(), b"&org;")

DTD_ONLY = b'<?xml version="1.0"?>\n<!DOCTYPE soapenv:Envelope SYSTEM "http://127.0.0.1:9/evil.dtd">\n' \
    + RECORDED.split(b"\n", 1)[1]


@pytest.mark.parametrize("body, expected", [
    (b"<soapenv:Envelope xmlns:soapenv='urn:x'><unclosed>", "not well-formed"),
    (b"", "not well-formed"),
    (b"<notifications xmlns='http://soap.sforce.com/2005/09/outbound'/>", "not a SOAP 1.1 envelope"),
    (BILLION_LAUGHS, "forbidden XML construct"),
    (EXTERNAL_ENTITY, "forbidden XML construct"),
    (DTD_ONLY, "forbidden XML construct"),
], ids=["malformed", "empty", "not-soap", "billion-laughs", "external-entity", "external-dtd"])
def test_non_soap_bodies_are_refused_with_400_before_any_expansion(store, clock, body, expected):
    started = time.perf_counter()
    status, headers, out = post(receiver(store, clock), body)
    assert time.perf_counter() - started < 0.5  # nothing was expanded
    assert status == "400 Bad Request" and headers["Content-Type"].startswith("text/plain")
    assert expected in out.decode() and b"Ack" not in out and b"lol" not in out
    assert stored(store) == []


@pytest.mark.parametrize("edits, expected", [
    ([(b"<notifications xmlns=", b"<other xmlns="), (b"</notifications>", b"</other>")],
     "no Outbound Messaging notifications call"),
    ([(b"<ActionId>04k57000000TOUIAA4</ActionId>", b"")], "ActionId is missing"),
    ([(b"<sf:Id>a025700000OPgOjAAL</sf:Id>", b"")], "sObject Id is missing"),
    ([(b"<sf:Id>a025700000OPgOjAAL</sf:Id>", b"<sf:Id>a02'--</sf:Id>")], "malformed Id"),
    ([(b' xsi:type="sf:DiscountRule__c"', b"")], "no xsi:type"),
    ([(b"<Id>04l570000176YSmAAM</Id>", b"")], "Notification 1: Id is missing"),
], ids=["other-call", "no-action", "no-record-id", "bad-record-id", "no-type", "no-notification-id"])
def test_a_soap_message_that_is_not_a_valid_notification_gets_a_fault(store, clock, edits, expected):
    body = RECORDED
    for old, new in edits:
        assert old in body
        body = body.replace(old, new)
    status, headers, out = post(receiver(store, clock), body)
    assert expected in assert_refused_soap(status, headers, out)
    assert stored(store) == []


def test_a_message_without_notifications_gets_a_fault(store, clock):
    status, headers, out = post(receiver(store, clock), order_message())
    assert "no Notification" in assert_refused_soap(status, headers, out)


@pytest.mark.parametrize("kwargs, status", [
    ({"method": "GET"}, "405 Method Not Allowed"),
    ({"method": "PUT"}, "405 Method Not Allowed"),
    ({"content_type": "application/json"}, "415 Unsupported Media Type"),
    ({"content_type": "application/soap+xml"}, "415 Unsupported Media Type"),
    ({"content_type": ""}, "415 Unsupported Media Type"),
    ({"length": "nine"}, "400 Bad Request"),
    ({"length": "-1"}, "400 Bad Request"),
    ({"length": ""}, "411 Length Required"),
], ids=["get", "put", "json", "soap12", "no-type", "bad-length", "negative-length", "no-length"])
def test_wrong_requests_are_refused(store, clock, kwargs, status):
    got, headers, body = post(receiver(store, clock), RECORDED, **kwargs)
    assert got == status and b"Ack" not in body
    if status.startswith("405"):
        assert headers["Allow"] == "POST"
    assert stored(store) == []


def test_a_body_over_the_limit_is_refused_unread(store, clock):
    app = receiver(store, clock, max_body_bytes=len(RECORDED) - 1)
    assert post(app, RECORDED)[0] == "413 Content Too Large"
    assert post(app, RECORDED, chunked=True)[0] == "413 Content Too Large"
    assert stored(store) == []
    roomy = receiver(store, clock, max_body_bytes=len(RECORDED))
    assert post(roomy, RECORDED, chunked=True)[2] == ACK


def test_a_concurrent_delivery_of_the_same_notification_is_stored_once(store, clock, caplog):
    """The other delivery commits between our read of known ids and our insert."""
    raced = []

    def other_delivery_commits_first(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO notifications") and not raced:
            raced.append(statement)
            with store.begin() as other:
                other.execute(insert(t.notifications).values(
                    notification_id="04l570000176YSmAAM", object="DiscountRule__c",
                    record_id="a025700000OPgOjAAL", received_at=NOW))

    caplog.set_level(logging.INFO, logger="connector.sources.outbound")
    event.listen(store, "before_cursor_execute", other_delivery_commits_first)
    try:
        status, _, body = post(receiver(store, clock), RECORDED)
    finally:
        event.remove(store, "before_cursor_execute", other_delivery_commits_first)
    assert raced and (status, body) == ("200 OK", ACK)
    assert len(stored(store)) == 1
    assert "1 notification(s), 0 new" in caplog.text  # the retry found the other delivery's row


def test_an_unreachable_store_gets_a_server_fault_so_salesforce_resends(clock, tmp_path):
    broken = create_engine(f"sqlite:///{tmp_path / 'missing' / 'store.db'}")
    try:
        status, headers, body = post(receiver(broken, clock), RECORDED)
    finally:
        broken.dispose()
    assert "will be retried" in assert_refused_soap(status, headers, body, code="Server")


# --- a crash between storing and answering ---------------------------------------------------------

class ProcessDied(BaseException):
    """Stands for the process dying after the commit and before the answer (kill -9, OOM)."""


def test_a_crash_after_the_commit_never_loses_the_notification(store, clock):
    crashing = receiver(store, clock, on_notified=Calls(raises=ProcessDied()))
    with pytest.raises(ProcessDied):
        post(crashing, RECORDED)  # no answer: Salesforce will resend
    assert [row[0] for row in stored(store)] == ["04l570000176YSmAAM"]

    calls = Calls()
    assert post(receiver(store, clock, on_notified=calls), RECORDED)[2] == ACK  # the resend
    assert len(stored(store)) == 1
    # A resend wakes nothing (issue 8: duplicates must not start cycles); the notification is still
    # pending, and the restarted daemon's first cycle reads the pending ones.
    assert calls.calls == []
    with store.connect() as conn:
        assert [n.notification_id for n in pending_notifications(conn, 10)] == ["04l570000176YSmAAM"]


def test_a_failing_sync_trigger_still_acks_since_the_row_is_committed(store, clock, caplog):
    status, _, body = post(receiver(store, clock, on_notified=Calls(raises=RuntimeError("busy"))), RECORDED)
    assert (status, body) == ("200 OK", ACK)
    assert len(stored(store)) == 1
    assert "the daemon's poll will catch up" in caplog.text


# --- the daemon's side -----------------------------------------------------------------------------

def test_pending_notifications_are_read_in_order_and_marked_processed(store, clock):
    app = receiver(store, clock)
    post(app, order_message(("04l000000000001AAA", "8015g00000AAAAAAAA"),
                            ("04l000000000002AAA", "8015g00000BBBBBBBB")))
    clock.advance(dt.timedelta(seconds=1))
    post(app, RECORDED)

    with store.begin() as conn:
        first = pending_notifications(conn, limit=2)
        assert [(n.notification_id, n.object, n.record_id, n.received_at) for n in first] == [
            ("04l000000000001AAA", "Order", "8015g00000AAAAAAAA", NOW),
            ("04l000000000002AAA", "Order", "8015g00000BBBBBBBB", NOW)]
        done_at = NOW + dt.timedelta(minutes=1)
        assert mark_processed(conn, [n.id for n in first], done_at) == 2
        assert mark_processed(conn, [n.id for n in first], done_at) == 0
        assert mark_processed(conn, [], done_at) == 0
        rest = pending_notifications(conn, limit=10)
    assert [n.notification_id for n in rest] == ["04l570000176YSmAAM"]
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.notifications)
                            .where(t.notifications.c.processed_at.is_not(None))).scalar_one() == 2


# --- ids -------------------------------------------------------------------------------------------

def test_org_ids_compare_on_their_case_sensitive_first_15_characters():
    assert id_suffix("00DD0000000muCU") == "MAY"
    assert org_key("00DD0000000muCUMAY") == org_key("00DD0000000muCUmay") == "00DD0000000muCU"
    assert org_key(" 00DD0000000muCU ") == "00DD0000000muCU"
    for bad in ["00DD0000000muCUAAA", "00DD0000000muC", "00DD0000000muCU!AY", ""]:
        with pytest.raises(ValueError):
            org_key(bad)


def test_parse_message_reads_the_recorded_envelope():
    message = parse_message(RECORDED)
    assert (message.organization_id, message.action_id) == (RECORDED_ORG, "04k57000000TOUIAA4")
    assert [(n.notification_id, n.object, n.record_id) for n in message.notifications] == [
        ("04l570000176YSmAAM", "DiscountRule__c", "a025700000OPgOjAAL")]


def test_a_receiver_needs_an_org_id(store, clock):
    with pytest.raises(ValueError, match="org id"):
        OutboundReceiver(store, clock, org_ids=[])
