"""Helpers for the tests of the daemon's HTTP server: raw HTTP over a socket, messages, store dumps."""
from __future__ import annotations

import http.client
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select

from connector.store import schema as t

RECORDED = (Path(__file__).parent / "sources" / "outbound-message-notification.xml").read_bytes()
RECORDED_ORG = "00DD0000000muCUMAY"


def order_message(count: int, *, start: int = 1, org: str = RECORDED_ORG) -> bytes:
    """The recorded envelope with `count` Order notifications (ids numbered from `start`).

    Same layout as the recording; only xsi:type, the ids and the notification count change.
    """
    head, _, rest = RECORDED.decode().partition("   <Notification>")
    _, _, tail = rest.partition("   </Notification>\n")
    notifications = "".join(
        "   <Notification>\n"
        f"    <Id>04l{n:015d}</Id>\n"
        '    <sObject xsi:type="sf:Order" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">\n'
        f"     <sf:Id>801{n:015d}</sf:Id>\n"
        "    </sObject>\n"
        "   </Notification>\n"
        for n in range(start, start + count))
    return (head + notifications + tail).replace(RECORDED_ORG, org).encode()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_request(port: int, request: bytes, *, tls: ssl.SSLContext | None = None, timeout: float = 10) -> Reply:
    """Send bytes as they are to 127.0.0.1:port and read the HTTP answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as plain:
        sock = tls.wrap_socket(plain, server_hostname="127.0.0.1") if tls is not None else plain
        # Sent from another thread: a server that answers before reading everything (413) must not
        # leave this one blocked in sendall.
        sender = threading.Thread(target=_send_quietly, args=(sock, request), daemon=True)
        sender.start()
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        reply = Reply(answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read())
        sender.join(timeout)
        return reply


def _send_quietly(sock, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass  # the server closed after answering


def post_request(body: bytes, *, path: str = "/outbound", content_type: str = "text/xml; charset=utf-8",
                 method: str = "POST", extra: str = "") -> bytes:
    """A complete HTTP/1.1 request with a Content-Length."""
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n").encode() + body


def chunked_request(body: bytes, chunk: int = 4096) -> bytes:
    """A POST to /outbound with a chunked body."""
    head = (b"POST /outbound HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + chunk]), body[i:i + chunk])
                      for i in range(0, len(body), chunk))
    return head + chunks + b"0\r\n\r\n"


def dump(store: Engine) -> dict[str, list[tuple]]:
    """Every row of every table of the store, for comparing its content before and after."""
    with store.connect() as conn:
        return {table.name: sorted((tuple(map(repr, row)) for row in conn.execute(select(table))))
                for table in t.metadata.sorted_tables}


# --- fixtures (imported by the test modules that use them) ------------------------------------------

import datetime as dt  # noqa: E402
import shutil  # noqa: E402

import pytest  # noqa: E402

from connector.clock import FrozenClock  # noqa: E402
from connector.metrics import Metrics  # noqa: E402
from connector.server import Server, ServerSettings  # noqa: E402
from connector.store.db import open_store  # noqa: E402

NOW = dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.timezone.utc)
INTERVAL = dt.timedelta(minutes=5)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A migrated store file, copied for each test instead of migrating again."""
    path = tmp_path_factory.mktemp("template") / "store.db"
    open_store(f"sqlite:///{path}").dispose()
    return path


@pytest.fixture
def store(template, tmp_path):
    shutil.copy(template, tmp_path / "store.db")
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def settings(**kwargs) -> ServerSettings:
    kwargs.setdefault("port", 0)  # a free loopback port
    kwargs.setdefault("org_ids", [RECORDED_ORG])
    kwargs.setdefault("objects", ["Opportunity", "Order", "DiscountRule__c"])
    return ServerSettings(**kwargs)


def serve(store, clock, metrics, **kwargs) -> Server:
    """A Server (not started) on a free loopback port; `on_notified` may be passed."""
    on_notified = kwargs.pop("on_notified", None)
    return Server(settings(**kwargs), store=store, clock=clock, metrics=metrics, cycle_interval=INTERVAL,
                  on_notified=on_notified)


class Calls:
    """Records on_notified calls (a real implementation of the callback, not a mock)."""

    def __init__(self):
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, sobject: str, record_ids: list[str]) -> None:
        self.calls.append((sobject, record_ids))
