"""The change event stream against the sandbox org's Pub/Sub API over real TLS, in one process:
flow control in small batches, a token that expires mid-stream (renewed, resumed from the stored
replay id), and a stop that leaves nothing half-taken."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from connector.clock import SystemClock
from connector.sandbox.org import Org, OrgConfig
from connector.sandbox.server import serve
from connector.sources.cdc import ChangeStream, StreamCredentials, load_replay
from connector.store import schema as t
from connector.store.db import open_store


def wait(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def served(tmp_path):
    org = Org(OrgConfig())
    server = serve(org, "127.0.0.1", 0, tmp_path / "ca.pem", pubsub_port=0, pubsub_keepalive=0.2)
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield org, server, store
    store.dispose()
    server.stop()


def notified(store, record_ids) -> int:
    with store.connect() as conn:
        return conn.execute(select(func.count()).select_from(t.notifications)
                            .where(t.notifications.c.record_id.in_(list(record_ids)))).scalar()


def test_small_batches_an_expired_token_and_a_resume_lose_nothing(served):
    org, server, store = served
    issued: list[str] = []

    def credentials() -> StreamCredentials:
        issued.append(org.issue_token())
        return StreamCredentials(issued[-1], server.url, org.config.org_id)

    woken: list[float] = []
    stream = ChangeStream(store, SystemClock(), target=server.pubsub_target, channels=["/data/AccountChangeEvent"],
                          objects=["Account"], credentials=credentials, refresh=credentials, own_user_id=None,
                          on_taken=lambda: woken.append(time.monotonic()), batch=2,
                          root_certificates=server.ca_path.read_bytes())
    stream.start()
    try:
        assert wait(stream.healthy), stream.problem  # the first keep-alive: set up, the gap poll asked for
        accounts = [org.create("Account", {"Name": f"Account {n}"}) for n in range(5)]
        assert wait(lambda: notified(store, accounts) == 5)  # 5 events in batches of 2: asked for again each time
        assert org.events.delivered("/data/AccountChangeEvent") == 5

        org.expire_sessions()  # the session times out: the stream ends UNAUTHENTICATED
        later = org.create("Account", {"Name": "After the session"})
        assert wait(lambda: notified(store, [later]) == 1)
        assert len(issued) >= 2  # logged in again
        assert notified(store, accounts) == 5  # resumed after the stored replay id: nothing taken twice
        assert woken
    finally:
        stream.stop()
    with store.connect() as conn:
        tip = load_replay(conn, "/data/AccountChangeEvent")
    assert tip is not None and int.from_bytes(tip, "big") == org.events.tip
