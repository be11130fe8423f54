"""Hardening of the Outbound Message endpoint (issue 8), on a real cheroot over loopback:
mutual TLS, source allow-list, notification limit, triggers, read deadlines, bursts, purging."""
from __future__ import annotations

import datetime as dt
import io
import socket
import threading
import time

import pydantic
import pytest
import requests
import trustme
from sqlalchemy import func, insert, select

from connector.errors import FatalError
from connector.server import ServerSettings
from connector.sources.outbound import ACK, OutboundReceiver, purge_processed, source_allowed
from connector.store import schema as t
from server_support import (  # noqa: F401  (fixtures)
    NOW, RECORDED, RECORDED_ORG, Calls, clock, dump, metrics, order_message, post_request, raw_request, serve, store,
    template,
)

TIMEOUT = 5
XML = {"Content-Type": "text/xml; charset=utf-8"}


def dropped(metrics, reason: str) -> float:
    return metrics.registry.get_sample_value("revsync_http_connections_dropped_total", {"reason": reason})


def count_notifications(store) -> int:
    with store.connect() as conn:
        return conn.execute(select(func.count()).select_from(t.notifications)).scalar_one()


# --- mutual TLS ------------------------------------------------------------------------------------

@pytest.fixture
def pki(tmp_path):
    """A server certificate, the CA that 'Salesforce' client certificates come from, and another CA."""
    server_ca, client_ca, other_ca = trustme.CA(), trustme.CA(), trustme.CA()
    files = {}

    def write(name, blob):
        files[name] = tmp_path / f"{name}.pem"
        blob.write_to_path(str(files[name]))

    issued = server_ca.issue_cert("127.0.0.1")
    write("server_cert", issued.cert_chain_pems[0])
    write("server_key", issued.private_key_pem)
    write("server_ca", server_ca.cert_pem)
    write("client_ca", client_ca.cert_pem)
    write("salesforce", client_ca.issue_cert("client.salesforce.test", common_name="client.salesforce.test")
          .private_key_and_cert_chain_pem)
    write("monitor", client_ca.issue_cert("monitor.example.test", common_name="monitor.example.test")
          .private_key_and_cert_chain_pem)
    write("stranger", other_ca.issue_cert("client.salesforce.test", common_name="client.salesforce.test")
          .private_key_and_cert_chain_pem)
    # Salesforce's downloadable API client certificate is a leaf: it alone is the trust anchor.
    leaf = client_ca.issue_cert("leaf.salesforce.test", common_name="leaf.salesforce.test")
    write("leaf", leaf.private_key_and_cert_chain_pem)
    write("leaf_cert", leaf.cert_chain_pems[0])
    return files


def mtls_settings(pki, **kwargs):
    return dict(tls_cert=pki["server_cert"], tls_key=pki["server_key"], client_ca_file=pki["client_ca"], **kwargs)


def test_without_an_accepted_client_certificate_the_tls_handshake_fails(pki, store, clock, metrics):
    calls = Calls()
    with serve(store, clock, metrics, on_notified=calls, **mtls_settings(pki)) as running:
        url, ca = f"{running.url}/outbound", str(pki["server_ca"])
        for cert in (None, str(pki["stranger"])):
            with pytest.raises(requests.exceptions.ConnectionError):
                requests.post(url, data=RECORDED, headers=XML, verify=ca, cert=cert, timeout=TIMEOUT)
        accepted = requests.post(url, data=RECORDED, headers=XML, verify=ca, cert=str(pki["salesforce"]),
                                 timeout=TIMEOUT)
        health = requests.get(f"{running.url}/health", verify=ca, cert=str(pki["monitor"]), timeout=TIMEOUT)
    assert accepted.status_code == 200 and accepted.content == ACK
    assert health.status_code == 200
    assert count_notifications(store) == 1 and len(calls.calls) == 1
    assert dropped(metrics, "tls") == 2


def test_the_client_certificate_cn_is_checked_for_outbound_messages(pki, store, clock, metrics):
    with serve(store, clock, metrics, **mtls_settings(pki, client_cert_cn="client.salesforce.test")) as running:
        url, ca = f"{running.url}/outbound", str(pki["server_ca"])
        other = requests.post(url, data=RECORDED, headers=XML, verify=ca, cert=str(pki["monitor"]), timeout=TIMEOUT)
        assert count_notifications(store) == 0
        right = requests.post(url, data=RECORDED, headers=XML, verify=ca, cert=str(pki["salesforce"]),
                              timeout=TIMEOUT)
        health = requests.get(f"{running.url}/health", verify=ca, cert=str(pki["monitor"]), timeout=TIMEOUT)
    assert other.status_code == 403 and "client_cert_cn" in other.text and "monitor.example.test" in other.text
    assert right.content == ACK and health.status_code == 200
    assert count_notifications(store) == 1


def test_a_downloaded_leaf_certificate_alone_can_be_the_client_ca_file(pki, store, clock, metrics):
    leaf_only = dict(tls_cert=pki["server_cert"], tls_key=pki["server_key"], client_ca_file=pki["leaf_cert"])
    with serve(store, clock, metrics, **leaf_only) as running:
        url, ca = f"{running.url}/outbound", str(pki["server_ca"])
        accepted = requests.post(url, data=RECORDED, headers=XML, verify=ca, cert=str(pki["leaf"]), timeout=TIMEOUT)
        with pytest.raises(requests.exceptions.ConnectionError):  # same CA, other certificate
            requests.post(url, data=RECORDED, headers=XML, verify=ca, cert=str(pki["salesforce"]), timeout=TIMEOUT)
    assert accepted.content == ACK


def test_a_tls_client_that_never_handshakes_does_not_stall_the_others(pki, store, clock, metrics):
    """cheroot would handshake in its accepting thread: one silent client stalled every other."""
    with serve(store, clock, metrics, request_timeout_seconds=1.5, **mtls_settings(pki)) as running:
        silent = [socket.create_connection(("127.0.0.1", running.port)) for _ in range(3)]
        try:
            started = time.monotonic()
            reply = requests.post(f"{running.url}/outbound", data=RECORDED, headers=XML, verify=str(pki["server_ca"]),
                                  cert=str(pki["salesforce"]), timeout=TIMEOUT)
            took = time.monotonic() - started
            silent[0].settimeout(5)
            assert silent[0].recv(1) == b""  # closed by the server after the deadline
        finally:
            for sock in silent:
                sock.close()
    assert reply.content == ACK and took < 1


def test_plain_http_on_the_https_port_is_told_to_use_https(pki, store, clock, metrics):
    with serve(store, clock, metrics, tls_cert=pki["server_cert"], tls_key=pki["server_key"]) as running:
        reply = raw_request(running.port, post_request(RECORDED))
    assert reply.status == 400 and b"use an https:// URL" in reply.body
    assert count_notifications(store) == 0


def test_client_certificate_settings_are_checked(tmp_path, store, clock, metrics, pki):
    with pytest.raises(pydantic.ValidationError, match="client_ca_file needs HTTPS"):
        ServerSettings(client_ca_file=pki["client_ca"])
    with pytest.raises(pydantic.ValidationError, match="client_cert_cn needs client_ca_file"):
        ServerSettings(tls_cert=pki["server_cert"], tls_key=pki["server_key"], client_cert_cn="x")
    missing = serve(store, clock, metrics, **dict(mtls_settings(pki), client_ca_file=tmp_path / "nope.pem"))
    with pytest.raises(FatalError, match=r"client CA file .*nope\.pem"):
        missing.start()


# --- source allow-list -----------------------------------------------------------------------------

def connect_from(source: str, port: int) -> socket.socket:
    """A TCP connection to the server from another loopback address (all of 127/8 is local)."""
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))


def answer_to(sock: socket.socket, request: bytes) -> bytes:
    """What the server sends back before closing (b"" when it closes without answering)."""
    try:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
        return received
    except OSError:
        return b""


def test_a_source_outside_the_allow_list_is_closed_unanswered_whatever_its_headers(store, clock, metrics):
    calls = Calls()
    forwarded = post_request(RECORDED, extra="X-Forwarded-For: 127.0.0.1\r\nX-Real-IP: 127.0.0.1\r\n")
    with serve(store, clock, metrics, allowed_sources=["127.0.0.1/32", "2001:db8::/32"],
               on_notified=calls) as running:
        with connect_from("127.0.0.2", running.port) as outsider:
            refused = answer_to(outsider, forwarded)
        with connect_from("127.0.0.2", running.port) as outsider:
            health = answer_to(outsider, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with connect_from("127.0.0.1", running.port) as insider:
            accepted = answer_to(insider, post_request(RECORDED))
    assert refused == b"" and health == b""
    assert dropped(metrics, "source") == 2
    assert accepted.startswith(b"HTTP/1.1 200 OK") and accepted.endswith(ACK)
    assert count_notifications(store) == 1 and len(calls.calls) == 1


def test_refused_sources_hold_no_worker_thread(store, clock, metrics):
    """Silent connections from outside the allow-list cannot starve the pool (here of 2 threads)."""
    with serve(store, clock, metrics, threads=2, allowed_sources=["127.0.0.1/32"]) as running:
        silent = [connect_from("127.0.0.2", running.port) for _ in range(6)]
        try:
            time.sleep(0.3)
            started = time.monotonic()
            with connect_from("127.0.0.1", running.port) as insider:
                accepted = answer_to(insider, post_request(RECORDED))
            took = time.monotonic() - started
        finally:
            for sock in silent:
                sock.close()
    assert accepted.endswith(ACK) and took < 1, took


def test_the_receiver_checks_the_allow_list_too():
    """The WSGI application alone (without the server's check) refuses with 403."""
    app = OutboundReceiver(None, None, org_ids=[RECORDED_ORG],
                           allowed_sources=ServerSettings(allowed_sources=["10.0.0.0/8"]).source_networks)
    seen = {}
    body = b"".join(app({"REQUEST_METHOD": "POST", "REMOTE_ADDR": "127.0.0.1", "CONTENT_TYPE": "text/xml",
                         "CONTENT_LENGTH": str(len(RECORDED)), "wsgi.input": io.BytesIO(RECORDED),
                         "HTTP_X_FORWARDED_FOR": "10.0.0.1"},
                        lambda status, headers: seen.update(status=status)))
    assert seen["status"] == "403 Forbidden"
    assert body == b"source address 127.0.0.1 is not in [server] allowed_sources\n"


def test_source_allowed_matches_ipv4_ipv6_and_mapped_addresses():
    nets = ServerSettings(allowed_sources=["13.108.0.0/14", "2001:db8::/32"]).source_networks
    assert source_allowed("13.110.1.2", nets) and source_allowed("::ffff:13.108.0.1", nets)
    assert source_allowed("2001:db8::1", nets)
    assert not source_allowed("13.112.0.1", nets) and not source_allowed("", nets)
    assert not source_allowed("not-an-ip", nets)
    for bad in ["13.108.0.1/14", "13.108.0.0/33", "salesforce.com"]:
        with pytest.raises(pydantic.ValidationError, match="not a CIDR network"):
            ServerSettings(allowed_sources=[bad])


# --- notification limit and triggers ---------------------------------------------------------------

def test_a_message_over_100_notifications_is_refused_and_nothing_stored(store, clock, metrics):
    calls = Calls()
    with serve(store, clock, metrics, on_notified=calls) as running:
        over = requests.post(f"{running.url}/outbound", data=order_message(101), headers=XML, timeout=TIMEOUT)
        assert count_notifications(store) == 0
        full = requests.post(f"{running.url}/outbound", data=order_message(100, start=500), headers=XML,
                             timeout=TIMEOUT)
    assert over.status_code == 500 and b"<faultcode>soapenv:Client</faultcode>" in over.content
    assert b"101 notifications in one message; Salesforce sends at most 100" in over.content
    assert full.content == ACK and count_notifications(store) == 100
    assert [(sobject, len(ids)) for sobject, ids in calls.calls] == [("Order", 100)]


def test_only_new_notifications_wake_the_daemon(store, clock, metrics):
    calls = Calls()
    with serve(store, clock, metrics, on_notified=calls) as running:
        url = f"{running.url}/outbound"
        assert requests.post(url, data=order_message(2), headers=XML, timeout=TIMEOUT).content == ACK
        assert requests.post(url, data=order_message(2), headers=XML, timeout=TIMEOUT).content == ACK  # resend
        forged = requests.post(url, data=order_message(1, start=10, org="00DA0000000muCUMAY"), headers=XML,
                               timeout=TIMEOUT)
        assert forged.status_code == 500
        overlapping = requests.post(url, data=order_message(2, start=2), headers=XML, timeout=TIMEOUT)
    assert overlapping.content == ACK
    assert calls.calls == [("Order", ["801000000000000001", "801000000000000002"]),
                           ("Order", ["801000000000000003"])]


def test_the_triggered_cycle_limit_is_a_server_setting_for_the_daemon():
    assert ServerSettings().max_triggered_cycles_per_minute == 6
    assert ServerSettings(max_triggered_cycles_per_minute=2).max_triggered_cycles_per_minute == 2
    with pytest.raises(pydantic.ValidationError):
        ServerSettings(max_triggered_cycles_per_minute=0)


# --- read deadlines, pool and backlog --------------------------------------------------------------

def slow_loris(port: int, stop: threading.Event) -> None:
    """Send a request one byte a second, as the attacker of issue 8 did."""
    request = post_request(RECORDED)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            for byte in request:
                if stop.wait(1):
                    return
                sock.sendall(bytes([byte]))
    except OSError:
        return  # dropped by the server


def test_slow_senders_do_not_delay_a_post_or_health(store, clock, metrics):
    stop = threading.Event()
    with serve(store, clock, metrics) as running:  # the default pool
        lorises = [threading.Thread(target=slow_loris, args=(running.port, stop)) for _ in range(8)]
        for loris in lorises:
            loris.start()
        try:
            time.sleep(2.5)  # every slow sender has a connection and is sending
            started = time.monotonic()
            post = requests.post(f"{running.url}/outbound", data=RECORDED, headers=XML, timeout=TIMEOUT)
            post_took = time.monotonic() - started
            started = time.monotonic()
            health = requests.get(f"{running.url}/health", timeout=TIMEOUT)
            health_took = time.monotonic() - started
        finally:
            stop.set()
            for loris in lorises:
                loris.join(10)
    assert post.content == ACK and health.status_code == 200
    assert post_took < 1 and health_took < 1, (post_took, health_took)


def test_a_slow_request_is_dropped_at_its_deadline_with_408(store, clock, metrics):
    with serve(store, clock, metrics, request_timeout_seconds=1.5) as running:
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
            started = time.monotonic()
            request = post_request(RECORDED)
            sock.sendall(request[:40])
            answer = b""
            try:
                for byte in request[40:]:  # a byte every 0.2 s: each read is quick, the whole is not
                    sock.sendall(bytes([byte]))
                    time.sleep(0.2)
                    if time.monotonic() - started > 8:
                        break
            except OSError:
                pass
            try:
                while chunk := sock.recv(4096):
                    answer += chunk
            except OSError:
                pass
            took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    assert 1.4 < took < 3.5
    assert dropped(metrics, "deadline") == 1
    assert count_notifications(store) == 0


def test_more_slow_senders_than_threads_delay_others_by_one_deadline_at_most(store, clock, metrics):
    stop = threading.Event()
    with serve(store, clock, metrics, threads=4, request_timeout_seconds=1.5) as running:
        lorises = [threading.Thread(target=slow_loris, args=(running.port, stop)) for _ in range(6)]
        for loris in lorises:
            loris.start()
        try:
            time.sleep(0.5)
            started = time.monotonic()
            post = requests.post(f"{running.url}/outbound", data=RECORDED, headers=XML, timeout=10)
            took = time.monotonic() - started
        finally:
            stop.set()
            for loris in lorises:
                loris.join(10)
    assert post.content == ACK and took < 3.5, took  # on today's main: 37 s


def test_200_concurrent_posts_are_all_accepted(store, clock, metrics):
    """Issue 8: the backlog of 5 refused 31-66 of 200 concurrent valid posts."""
    results: list[object] = [None] * 200
    go = threading.Event()
    with serve(store, clock, metrics) as running:
        def one(i: int) -> None:
            go.wait()
            try:
                results[i] = raw_request(running.port, post_request(order_message(1, start=i + 1)), timeout=30).body
            except OSError as exc:
                results[i] = exc

        senders = [threading.Thread(target=one, args=(i,)) for i in range(200)]
        for sender in senders:
            sender.start()
        started = time.monotonic()
        go.set()
        for sender in senders:
            sender.join(60)
        took = time.monotonic() - started
    failures = [r for r in results if r != ACK]
    assert failures == [], f"{len(failures)} of 200 not acked, e.g. {failures[:3]}"
    assert count_notifications(store) == 200
    print(f"200 concurrent posts acked in {took:.2f} s")


# --- purging ---------------------------------------------------------------------------------------

def add_notifications(store, rows) -> None:
    with store.begin() as conn:
        conn.execute(insert(t.notifications), [
            {"notification_id": nid, "object": "Order", "record_id": "801000000000000001",
             "received_at": NOW - dt.timedelta(days=40), "processed_at": processed} for nid, processed in rows])


def test_processed_notifications_older_than_the_retention_are_purged(store, clock, metrics):
    add_notifications(store, [("04l000000000000001", NOW - dt.timedelta(days=8)),
                              ("04l000000000000002", NOW - dt.timedelta(days=6)),
                              ("04l000000000000003", None)])  # pending: never purged
    running = serve(store, clock, metrics)
    running.start()  # the server purges at its start, then every hour
    try:
        deadline = time.monotonic() + 5
        while count_notifications(store) == 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        with store.connect() as conn:
            left = conn.execute(select(t.notifications.c.notification_id).order_by(t.notifications.c.id)).scalars().all()
        assert left == ["04l000000000000002", "04l000000000000003"]
        clock.advance(dt.timedelta(days=2))
        assert running.purge() == 1
        assert metrics.registry.get_sample_value("revsync_notifications_purged_total") == 2
    finally:
        running.stop()
    with store.connect() as conn:
        assert conn.execute(select(t.notifications.c.notification_id)).scalars().all() == ["04l000000000000003"]


def test_purge_processed_keeps_pending_and_recent_rows(store):
    add_notifications(store, [("04l000000000000001", NOW - dt.timedelta(days=1)),
                              ("04l000000000000002", None)])
    before = dump(store)
    with store.begin() as conn:
        assert purge_processed(conn, NOW - dt.timedelta(days=1)) == 0  # strictly older only
    assert dump(store) == before
    with store.begin() as conn:
        assert purge_processed(conn, NOW) == 1
    assert count_notifications(store) == 1


def test_retention_is_a_setting_of_at_least_a_day():
    assert ServerSettings().notification_retention == dt.timedelta(days=7)
    assert ServerSettings(notification_retention_days=30).notification_retention == dt.timedelta(days=30)
    with pytest.raises(pydantic.ValidationError):
        ServerSettings(notification_retention_days=0)
