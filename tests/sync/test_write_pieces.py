"""Orders from won quotes, Outbound Messages triggering a sync, one writer per org, mappings at start-up."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap

import pytest

from connector.daemon import Daemon, WriterLease
from connector.errors import FatalError
from connector.sources.outbound import Notified, store_notifications

from sync_support import close, connect, engine_orders, mirror, worked_seed


def quote_only_seed() -> dict:
    """Two won opportunities with primary quotes and their lines, and no orders: an org without automation."""
    seed = worked_seed()
    for key in ("Order", "OrderItem"):
        seed.pop(key)
    seed["Opportunity"], seed["Quote"] = seed["Opportunity"][:2], seed["Quote"][:2]
    seed["QuoteLineItem"] = seed["QuoteLineItem"][:2]
    return seed


def test_a_won_opportunity_without_an_order_gets_one_from_its_primary_quote(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch, quote_only_seed(), sync={"create_orders_from_won_quotes": True})
    try:
        for _ in range(3):  # read → write the orders → read them back and activate them
            c.service.cycle()
            c.runtime.writer.flush()
            c.later()
        orders = c.org.records("Order")
        assert sorted(o["OpportunityId"] for o in orders) == sorted([c.refs["opp1"], c.refs["opp2"]])
        assert all(o["Status"] == "Activated" for o in orders)
        assert {o["QuoteId"] for o in orders} == {c.refs["q1"], c.refs["q2"]}
        items = c.org.records("OrderItem")
        assert sorted((i["QuoteLineItemId"], i["Quantity"]) for i in items) == sorted(
            [(c.refs["ql1"], 10), (c.refs["ql2"], 1)])
        # ingested like any Salesforce-origin order: activated in the engine under their Salesforce Ids
        assert sorted(engine_orders(c)) == sorted(o["Id"] for o in orders)
        # a further cycle creates nothing more
        c.service.cycle()
        c.runtime.writer.flush()
        assert len(c.org.records("Order")) == 2
    finally:
        close(c)


def test_without_the_setting_no_order_is_created(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch, quote_only_seed())
    try:
        c.service.cycle()
        c.runtime.writer.flush()
        assert c.org.records("Order") == []
    finally:
        close(c)


def test_an_outbound_message_gets_its_record_taken_in_at_once(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch)
    try:
        daemon = Daemon(c.service, c.clock, interval=dt.timedelta(hours=1), writer=c.runtime.writer)
        daemon.run(once=True, install_signals=False)
        c.later()
        c.org.update("Opportunity", c.refs["opp2"], {"Name": "Customer B plan (renewal talks)"})
        with c.app.store.begin() as conn:  # what the /outbound endpoint stores before it acks
            store_notifications(conn, [Notified("04l000000000001AAA", "Opportunity", c.refs["opp2"])],
                                c.clock.now())
        calls = c.calls
        assert daemon.take_notifications() == 1
        assert c.calls == calls + 1  # one query by Id, not a polling cycle
        record, deleted = mirror(c, "Opportunity", c.refs["opp2"])
        assert record["Name"] == "Customer B plan (renewal talks)" and not deleted
        assert daemon.take_notifications() == 0  # processed once
    finally:
        close(c)


def test_one_writer_per_org(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch)
    try:
        first = WriterLease(c.app.store, c.clock, dt.timedelta(minutes=5))
        first.hold()
        other = WriterLease(c.app.store, c.clock, dt.timedelta(minutes=5))
        other.me = "elsewhere.example:4242"  # a second daemon on another machine
        with pytest.raises(FatalError, match="another sync daemon"):
            other.hold()
        first.hold()  # renewing one's own lease is fine
        c.clock.advance(dt.timedelta(minutes=6))
        other.hold()  # an expired lease (a daemon killed with -9) is taken over
        first.release()  # releasing a lease one no longer holds changes nothing
        with pytest.raises(FatalError):
            first.hold()
    finally:
        close(c)


def test_a_dead_local_holder_does_not_block_a_restart(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch)
    try:
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dead = WriterLease(c.app.store, c.clock, dt.timedelta(minutes=5))
        dead.me = f"{dead.me.rpartition(':')[0]}:{gone}"
        dead.hold()
        WriterLease(c.app.store, c.clock, dt.timedelta(minutes=5)).hold()
    finally:
        close(c)


def test_a_bad_mapping_stops_the_daemon_at_start_up(tmp_path):
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    (mappings / "Order.toml").write_text('object = "Order"\ndirection = "read"\nrecord = "OrderInput"\n'
                                         '[fields]\nid = { source = "Id", type = "dat" }\n')
    (tmp_path / "config.toml").write_text(textwrap.dedent(f"""
        [store]
        url = "sqlite:///{tmp_path / 'store.db'}"
        [sync]
        mappings_dir = "mappings"
        [salesforce]
        auth = "client_credentials"
        login_url = "https://127.0.0.1:9"
        consumer_key = "revsync-test-client"
        """))
    env = os.environ | {"REVSYNC_SF_CONSUMER_SECRET": "revsync-test-secret"}
    out = subprocess.run([sys.executable, "-m", "connector.cli", "--config", str(tmp_path / "config.toml"),
                          "sync", "--once"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "Order.toml" in out.stderr and "fields.id" in out.stderr
    assert "could not connect" not in out.stderr  # stopped before talking to any org
