"""A corpus of bad HTTP requests to the Outbound Message endpoint (issue 8), on a real cheroot.

Every case gets its documented status and a body saying what is wrong; nothing is stored (the
store's content is compared table by table), the daemon is not woken, and the JSON log holds no
traceback (nor does stderr).
"""
from __future__ import annotations

import collections
import io
import json
import logging
import socket
import time

import pytest

from connector.logs import JsonFormatter
from server_support import (  # noqa: F401  (fixtures)
    RECORDED, RECORDED_ORG, Calls, chunked_request, clock, dump, metrics, order_message, post_request,
    raw_request, serve, store, template,
)

LIMIT = 64 * 1024
PAD = b"<!-- padding -->"

EXTERNAL_ENTITY = (b'<?xml version="1.0"?>\n<!DOCTYPE notifications [<!ENTITY org SYSTEM "file:///etc/hostname">]>\n'
                   + RECORDED.split(b"\n", 1)[1].replace(RECORDED_ORG.encode(), b"&org;"))
BILLION_LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
                  b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>\n'
                  + RECORDED.split(b"\n", 1)[1].replace(b"<sf:Name>244 Months</sf:Name>", b"<sf:Name>&lol2;</sf:Name>"))


def padded(size: int) -> bytes:
    """The recorded message grown to `size` bytes with an XML comment (well-formed, only too big)."""
    head, _, tail = RECORDED.partition(b"<soapenv:Envelope")
    filler = b"<!--" + b"x" * (size - len(RECORDED) - 7) + b"-->"
    return head + filler + b"<soapenv:Envelope" + tail


def bad_chunk() -> bytes:
    return (b"POST /outbound HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")


def no_length() -> bytes:
    return (b"POST /outbound HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
            b"Connection: close\r\n\r\n")


CASES = {
    # name: (request, status, phrase in the body)
    "forged-org-id": (post_request(RECORDED.replace(RECORDED_ORG.encode(), b"00DA0000000muCUMAY")), 500,
                      b"OrganizationId 00DA0000000muCUMAY is not a configured org"),
    "malformed-org-id": (post_request(RECORDED.replace(RECORDED_ORG.encode(), b"x' OR 1=1")), 500,
                         b"malformed OrganizationId"),
    "oversize-with-length": (post_request(padded(LIMIT + 1)), 413, f"body larger than {LIMIT} bytes".encode()),
    "far-oversize-with-length": (post_request(padded(LIMIT * 4)), 413, b"exceeds the maximum allowed bytes"),
    "oversize-chunked": (chunked_request(padded(LIMIT + 5000)), 413, f"body larger than {LIMIT} bytes".encode()),
    "far-oversize-chunked": (chunked_request(padded(LIMIT * 16), chunk=65536), 413,
                             f"body larger than {LIMIT} bytes".encode()),
    "malformed-chunked": (bad_chunk(), 400, b"malformed chunked body"),
    "no-length": (no_length(), 411, b"Content-Length is required"),
    "too-many-notifications": (post_request(order_message(101)), 500,
                               b"101 notifications in one message; Salesforce sends at most 100"),
    "bad-xml": (post_request(b"<soapenv:Envelope xmlns:soapenv='urn:x'><unclosed>"), 400, b"not well-formed XML"),
    "not-soap": (post_request(b"<notifications/>"), 400, b"not a SOAP 1.1 envelope"),
    "xxe": (post_request(EXTERNAL_ENTITY), 400, b"forbidden XML construct"),
    "billion-laughs": (post_request(BILLION_LAUGHS), 400, b"forbidden XML construct"),
    "wrong-content-type": (post_request(RECORDED, content_type="application/json"), 415,
                           b"content type 'application/json' is not text/xml"),
    "wrong-path": (post_request(RECORDED, path="/outbound/x"), 404, b"not found"),
    "wrong-method": (post_request(RECORDED, method="PUT"), 405, b"only POST is accepted"),
    "get-outbound": (b"GET /outbound HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 405,
                     b"only POST is accepted"),
    "post-to-health": (post_request(RECORDED, path="/health"), 405, b"use GET"),
    "object-not-received": (post_request(RECORDED.replace(b"sf:DiscountRule__c", b"sf:Account")), 500,
                            b"object(s) Account are not received here"),
}


@pytest.fixture
def json_log():
    """The JSON log of the daemon (connector.logs), captured."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


def assert_clean_log(text: str, stderr: str) -> list[dict]:
    entries = [json.loads(line) for line in text.splitlines()]
    assert all("Traceback" not in json.dumps(entry) and "error" not in entry for entry in entries), entries
    assert "Traceback" not in stderr
    return entries


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_bad_request_gets_its_status_and_changes_nothing(name, store, clock, metrics, json_log, capfd):
    request, status, phrase = CASES[name]
    calls = Calls()
    before = dump(store)
    with serve(store, clock, metrics, max_body_bytes=LIMIT, on_notified=calls) as running:
        reply = raw_request(running.port, request)
    assert reply.status == status, (reply.status, reply.body[:200])
    assert phrase in reply.body, reply.body[:300]
    assert b"Ack" not in reply.body
    assert dump(store) == before
    assert calls.calls == []
    assert_clean_log(json_log.getvalue(), capfd.readouterr().err)


def test_a_slow_loris_gets_408_at_the_deadline_and_changes_nothing(store, clock, metrics, json_log, capfd):
    before = dump(store)
    with serve(store, clock, metrics, request_timeout_seconds=1.0) as running:
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
            started = time.monotonic()
            answer = b""
            try:
                for byte in post_request(RECORDED)[:60]:  # headers, a byte every 0.1 s
                    sock.sendall(bytes([byte]))
                    time.sleep(0.1)
            except OSError:
                pass  # the server answered and closed
            try:
                while chunk := sock.recv(4096):
                    answer += chunk
            except ConnectionResetError:
                pass  # what the server had sent is read; the reset answers our late bytes
            took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout"), answer[:100]
    assert took < 3
    assert dump(store) == before
    assert_clean_log(json_log.getvalue(), capfd.readouterr().err)


def test_a_good_message_after_the_corpus_is_still_acked(store, clock, metrics, json_log, capfd):
    """The corpus leaves the server serving: every bad request in a row, then a valid one."""
    calls = Calls()
    with serve(store, clock, metrics, max_body_bytes=LIMIT, on_notified=calls) as running:
        for request, status, _ in CASES.values():
            assert raw_request(running.port, request).status == status
        good = raw_request(running.port, post_request(RECORDED))
    assert good.status == 200 and b"<Ack>true</Ack>" in good.body
    assert calls.calls == [("DiscountRule__c", ["a025700000OPgOjAAL"])]
    # /metrics counts the receiver's answers by status (not the dispatcher's 404/405 for other
    # paths, nor cheroot's own 413 for a length far over the limit)
    elsewhere = {"wrong-path", "post-to-health", "far-oversize-with-length"}
    expected = collections.Counter(str(status) for name, (_, status, _) in CASES.items() if name not in elsewhere)
    expected["200"] += 1
    counted = {status: metrics.registry.get_sample_value("revsync_outbound_requests_total", {"status": status})
               for status in expected}
    assert counted == dict(expected)
    entries = assert_clean_log(json_log.getvalue(), capfd.readouterr().err)
    assert any("outbound message refused" in e["message"] for e in entries)
