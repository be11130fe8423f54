"""The daemon's HTTP server on a real cheroot: /outbound, /health, /metrics, TLS, settings."""
from __future__ import annotations

import datetime as dt
import socket

import pydantic
import pytest
import requests
import trustme
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, insert, select

from connector.errors import FatalError
from connector.metrics import Metrics
from connector.server import Server, ServerSettings
from connector.sources.outbound import ACK
from connector.store import schema as t

from server_support import (  # noqa: E402, F401  (fixtures shared with the other server tests)
    INTERVAL, NOW, RECORDED, RECORDED_ORG, clock, metrics, settings, store, template,
)

TIMEOUT = 5


@pytest.fixture
def server(store, clock, metrics):
    with Server(settings(), store=store, clock=clock, metrics=metrics, cycle_interval=INTERVAL) as running:
        yield running


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a Prometheus text exposition, by (name, sorted labels)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


# --- /outbound -------------------------------------------------------------------------------------

def test_the_recorded_notification_is_acked_over_http(server, store):
    reply = requests.post(f"{server.url}/outbound", data=RECORDED, timeout=TIMEOUT,
                          headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'})
    assert reply.status_code == 200 and reply.content == ACK
    assert reply.headers["Content-Type"] == "text/xml; charset=utf-8"
    with store.connect() as conn:
        assert conn.execute(select(t.notifications.c.notification_id)).scalars().all() == ["04l570000176YSmAAM"]


def test_cheroot_refuses_a_body_over_the_limit_before_the_application(store, clock, metrics):
    small = settings(max_body_bytes=1024)
    with Server(small, store=store, clock=clock, metrics=metrics, cycle_interval=INTERVAL) as running:
        reply = requests.post(f"{running.url}/outbound", data=RECORDED + b" " * 2048, timeout=TIMEOUT,
                              headers={"Content-Type": "text/xml"})
    assert reply.status_code == 413 and b"Ack" not in reply.content


def test_without_org_ids_no_message_is_received(store, clock, metrics):
    with Server(settings(org_ids=[]), store=store, clock=clock, metrics=metrics,
                cycle_interval=INTERVAL) as running:
        reply = requests.post(f"{running.url}/outbound", data=RECORDED, timeout=TIMEOUT,
                              headers={"Content-Type": "text/xml"})
    assert reply.status_code == 404 and "org_ids" in reply.text


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/", 404), ("GET", "/outbound/x", 404), ("POST", "/health", 405), ("DELETE", "/metrics", 405),
    ("GET", "/outbound", 405),
], ids=["root", "sub-path", "post-health", "delete-metrics", "get-outbound"])
def test_other_paths_and_methods_are_refused(server, method, path, status):
    assert requests.request(method, f"{server.url}{path}", timeout=TIMEOUT).status_code == status


# --- /health ---------------------------------------------------------------------------------------

def test_health_is_ok_while_cycles_are_recent(server, clock, metrics):
    reply = requests.get(f"{server.url}/health", timeout=TIMEOUT)  # fresh start: within the grace
    assert reply.status_code == 200 and reply.json()["status"] == "ok"

    metrics.cycle_succeeded(NOW + dt.timedelta(minutes=10))
    clock.advance(dt.timedelta(minutes=24))
    reply = requests.get(f"{server.url}/health", timeout=TIMEOUT)
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok", "reasons": [], "checked_at": "2024-03-01T09:54:00+00:00",
                            "last_cycle_at": "2024-03-01T09:40:00+00:00", "cycle_interval_seconds": 300.0}
    assert reply.headers["Content-Type"] == "application/json"


def test_health_degrades_once_the_last_cycle_is_older_than_three_intervals(server, clock, metrics):
    metrics.cycle_succeeded(NOW)
    clock.advance(3 * INTERVAL + dt.timedelta(seconds=1))
    reply = requests.get(f"{server.url}/health", timeout=TIMEOUT)
    assert reply.status_code == 503
    body = reply.json()
    assert body["status"] == "degraded"
    assert body["reasons"] == ["last successful sync cycle 901.0 s ago, more than 3 × the 300.0 s interval"]


def test_health_degrades_when_no_cycle_ever_succeeded(server, clock):
    clock.advance(3 * INTERVAL + dt.timedelta(seconds=1))
    reply = requests.get(f"{server.url}/health", timeout=TIMEOUT)
    assert reply.status_code == 503
    assert reply.json()["reasons"] == ["no sync cycle has succeeded since the start 901.0 s ago"]


def test_health_degrades_and_metrics_still_answer_when_the_store_is_unreachable(tmp_path, clock, metrics):
    broken = create_engine(f"sqlite:///{tmp_path / 'missing' / 'store.db'}")
    metrics.cycle_succeeded(NOW)
    metrics.set_api_usage(10, 100)
    try:
        with Server(settings(), store=broken, clock=clock, metrics=metrics, cycle_interval=INTERVAL) as running:
            health = requests.get(f"{running.url}/health", timeout=TIMEOUT)
            scraped = requests.get(f"{running.url}/metrics", timeout=TIMEOUT)
    finally:
        broken.dispose()
    assert health.status_code == 503
    assert health.json()["reasons"] == ["store unreachable: OperationalError"]
    assert scraped.status_code == 200
    values = samples(scraped.text)
    assert values[("revsync_store_up", ())] == 0
    assert values[("revsync_api_calls_used", ())] == 10


# --- /metrics --------------------------------------------------------------------------------------

def fill_store(store) -> None:
    """Rows behind every store-derived figure: cursors, outbox, jobs, quarantine, notifications."""
    with store.begin() as conn:
        conn.execute(insert(t.sync_cursors), [
            {"object": "Order", "cursor": NOW - dt.timedelta(seconds=90), "updated_at": NOW},
            {"object": "Opportunity", "cursor": NOW - dt.timedelta(hours=1), "updated_at": NOW}])
        conn.execute(insert(t.outbox), [
            {"object": "Subscription__c", "external_id": f"S-{i}", "kind": "record", "payload": "{}",
             "state": state, "created_at": NOW, "updated_at": NOW}
            for i, state in enumerate(["NEW", "NEW", "NEW", "PENDING", "FAILED", "SUCCESS"])])
        conn.execute(insert(t.accounts).values(id="A", name="Customer A"))
        conn.execute(insert(t.orders), [
            {"id": f"O-{i}", "seq": i, "account": "A", "owner": "Chloe", "booked_on": NOW.date(),
             "currency": "USD", "bill_cycle_day": 1, "origin": "engine", "status": "activated",
             "content_hash": "x", "activated_at": NOW} for i in (1, 2)])
        conn.execute(insert(t.jobs), [
            {"order_id": order, "kind": kind, "status": status, "created_at": NOW, "updated_at": NOW}
            for order, kind, status in [("O-1", "metrics", "failed"), ("O-1", "arr", "failed"),
                                        ("O-2", "metrics", "succeeded"), ("O-2", "arr", "pending")]])
        conn.execute(insert(t.quarantine), [
            {"object": "OrderItem", "record_id": rid, "system_modstamp": NOW, "reason": "bad", "first_seen": NOW,
             "last_seen": NOW, "released_at": released}
            for rid, released in [("802000000000001", None), ("802000000000002", None), ("802000000000003", NOW)]])
        conn.execute(insert(t.notifications), [
            {"notification_id": f"04l00000000000{i}", "object": "Order", "record_id": "801000000000001",
             "received_at": NOW, "processed_at": processed}
            for i, processed in [(1, None), (2, NOW)]])


def test_metrics_reflect_the_store_and_what_the_daemon_set(server, store, metrics):
    fill_store(store)
    metrics.cycle_succeeded(NOW)
    metrics.set_api_usage(1234, 15000)
    metrics.add_ingested("Order", 7)
    metrics.add_ingested("Order")
    metrics.add_written("Subscription__c", 3)
    metrics.add_written("Subscription__c", 0)

    reply = requests.get(f"{server.url}/metrics", timeout=TIMEOUT)
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/plain; version=")
    values = samples(reply.text)
    assert values[("revsync_cursor_lag_seconds", (("object", "Order"),))] == 90
    assert values[("revsync_cursor_lag_seconds", (("object", "Opportunity"),))] == 3600
    assert {state: values[("revsync_outbox_depth", (("state", state),))]
            for state in ("NEW", "PENDING", "SUCCESS", "FAILED", "IGNORED")} == {
        "NEW": 3, "PENDING": 1, "SUCCESS": 1, "FAILED": 1, "IGNORED": 0}
    assert values[("revsync_failed_jobs", ())] == 2
    assert values[("revsync_quarantined_records", ())] == 2
    assert values[("revsync_notifications_pending", ())] == 1
    assert values[("revsync_store_up", ())] == 1
    assert values[("revsync_last_successful_cycle_timestamp_seconds", ())] == NOW.timestamp()
    assert values[("revsync_api_calls_used", ())] == 1234
    assert values[("revsync_api_calls_daily_limit", ())] == 15000
    assert values[("revsync_records_ingested_total", (("object", "Order"),))] == 8
    assert values[("revsync_records_written_total", (("object", "Subscription__c"),))] == 3


def test_a_cursor_that_is_gone_stops_being_exported(store, clock):
    fill_store(store)
    metrics = Metrics()
    metrics.collect_from_store(store, clock)
    with store.begin() as conn:
        conn.execute(t.sync_cursors.delete().where(t.sync_cursors.c.object == "Opportunity"))
    clock.advance(dt.timedelta(seconds=10))
    metrics.collect_from_store(store, clock)
    lags = {k: v for k, v in samples(generate_latest(metrics.registry).decode()).items()
            if k[0] == "revsync_cursor_lag_seconds"}
    assert lags == {("revsync_cursor_lag_seconds", (("object", "Order"),)): 100}


def test_each_metrics_object_has_its_own_registry():
    first, second = Metrics(), Metrics()
    first.add_ingested("Order", 2)
    assert first.registry is not second.registry
    assert second.registry.get_sample_value("revsync_records_ingested_total", {"object": "Order"}) is None
    assert first.registry.get_sample_value("revsync_records_ingested_total", {"object": "Order"}) == 2


# --- TLS, lifecycle, settings ----------------------------------------------------------------------

def test_tls_with_a_certificate_and_key(tmp_path, store, clock, metrics):
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    metrics.cycle_succeeded(NOW)
    with Server(settings(tls_cert=cert, tls_key=key), store=store, clock=clock, metrics=metrics,
                cycle_interval=INTERVAL) as running:
        assert running.url.startswith("https://127.0.0.1:")
        health = requests.get(f"{running.url}/health", timeout=TIMEOUT, verify=str(ca_file))
        ack = requests.post(f"{running.url}/outbound", data=RECORDED, timeout=TIMEOUT, verify=str(ca_file),
                            headers={"Content-Type": "text/xml"})
    assert health.status_code == 200 and ack.content == ACK


def test_a_missing_certificate_is_a_fatal_error_naming_the_keys(tmp_path, store, clock, metrics):
    bad = settings(tls_cert=tmp_path / "nope.pem", tls_key=tmp_path / "nope.key")
    server = Server(bad, store=store, clock=clock, metrics=metrics, cycle_interval=INTERVAL)
    with pytest.raises(FatalError, match=r"\[server\] tls_cert"):
        server.start()


def test_a_busy_port_is_a_fatal_error_and_stop_frees_the_port(server, store, clock, metrics):
    taken = settings(port=server.port)
    with pytest.raises(FatalError, match="cannot listen"):
        Server(taken, store=store, clock=clock, metrics=metrics, cycle_interval=INTERVAL).start()
    port = server.port
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_server_settings_defaults_and_validation():
    defaults = ServerSettings()
    assert (defaults.host, defaults.port, defaults.org_ids, defaults.objects) == (
        "127.0.0.1", 8787, [], ["Opportunity", "Order"])
    assert defaults.tls_cert is None and defaults.max_body_bytes == 4 * 1024 * 1024
    for bad in [{"org_ids": ["00DD0000000muCUAAA"]}, {"tls_cert": "cert.pem"}, {"port": 70000},
                {"max_body_bytes": 0}, {"hots": "0.0.0.0"}]:
        with pytest.raises(pydantic.ValidationError):
            ServerSettings(**bad)
