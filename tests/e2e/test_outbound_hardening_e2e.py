"""`revsync sync` with a hardened [server]: forged, refused and repeated Outbound Messages cost no
Salesforce API call and leave no traceback in the daemon's JSON log; a genuine one is synced (issue 8)."""
from __future__ import annotations

import json
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
import requests

from connector.sources.outbound import id_suffix
from e2e_support import kill, site, wait_for, worked_seed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the HTTP helpers of the server tests
from server_support import (  # noqa: E402
    RECORDED, RECORDED_ORG, chunked_request, order_message, post_request, raw_request,
)

# the sandbox org's id (connector.sandbox.org.OrgConfig.org_id) in its 15-character form, as an
# admin may copy it from Setup; messages carry the 18-character form.
SANDBOX_ORG_15 = "00D8d0000000SBX"
SANDBOX_ORG = SANDBOX_ORG_15 + id_suffix(SANDBOX_ORG_15)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def from_address(source: str, port: int, request: bytes) -> bytes:
    """Send a request from another loopback address; what comes back (b"" when closed unanswered)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as sock:
            sock.sendall(request)
            received = b""
            while chunk := sock.recv(4096):
                received += chunk
            return received
    except OSError:
        return b""


def sandbox(body: bytes) -> bytes:
    return body.replace(RECORDED_ORG.encode(), SANDBOX_ORG.encode())


@pytest.mark.slow
def test_bad_outbound_messages_cost_no_api_call_and_a_genuine_one_is_synced(tmp_path):
    port = free_port()
    seed = worked_seed()
    server = (f'\n[server]\nhost = "127.0.0.1"\nport = {port}\norg_ids = ["{SANDBOX_ORG_15}"]\n'
              f'objects = ["Opportunity", "Order"]\nallowed_sources = ["127.0.0.1/32"]\n'
              f"max_body_bytes = 65536\nrequest_timeout_seconds = 2\n")
    with site(tmp_path, seed, sync="interval_seconds = 3600", extra=server) as s:
        order_id = s.refs[seed["Order"][0]["@ref"]]
        daemon = s.start("sync")
        try:
            url = f"http://127.0.0.1:{port}"

            def last_cycle_at() -> float:
                """When the daemon's last pass ended (0: none yet, or the server not up)."""
                try:
                    text = requests.get(f"{url}/metrics", timeout=2).text
                except requests.ConnectionError:
                    return 0.0
                return max((float(line.split()[-1]) for line in text.splitlines()
                            if line.startswith("revsync_last_successful_cycle_timestamp_seconds ")), default=0.0)

            wait_for(lambda: last_cycle_at() > 0, 90, "the daemon's first cycle", step=0.2)
            time.sleep(0.5)
            calls_before = s.org.api_usage

            # From an address outside allowed_sources, even with the right org id: closed unanswered.
            forged = [from_address("127.0.0.2", port, post_request(sandbox(order_message(1, start=n))))
                      for n in range(20)]
            assert forged == [b""] * 20
            # From an allowed address: every malformed or forged message is refused.
            refused = {
                "foreign org": (post_request(order_message(1)), 500),
                "101 notifications": (post_request(sandbox(order_message(101))), 500),
                "oversize chunked": (chunked_request(sandbox(order_message(600))), 413),
                "oversize with length": (post_request(sandbox(order_message(600))), 413),
                "not XML": (post_request(b"<soapenv:Envelope"), 400),
                "wrong content type": (post_request(sandbox(RECORDED), content_type="application/json"), 415),
            }
            for name, (request, status) in refused.items():
                assert raw_request(port, request).status == status, name
            # A slow sender is cut off at the deadline.
            with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
                slow.sendall(b"POST /outbound HTTP/1.1\r\n")
                started = time.monotonic()
                assert slow.recv(4096).startswith(b"HTTP/1.1 408 ")
                assert time.monotonic() - started < 4
            time.sleep(1.5)  # a cycle started by any of these would have called the org by now
            assert s.org.api_usage == calls_before
            assert s.store_rows("SELECT count(*) FROM notifications") == [(0,)]

            # A genuine message for a real Order is stored, acked and synced at once.
            genuine = sandbox(order_message(1)).replace(b"801000000000000001", order_id.encode())
            sent_at = time.time()
            assert raw_request(port, post_request(genuine)).body.endswith(b"</soapenv:Envelope>")
            wait_for(lambda: s.store_rows("SELECT count(*) FROM notifications WHERE processed_at IS NOT NULL")
                     == [(1,)], 60, "the notification processed", step=0.2)
            # the pass it woke goes on after the notification is marked (polling, write-back): count
            # the calls once that pass has ended
            wait_for(lambda: last_cycle_at() > sent_at, 60, "the woken pass to end", step=0.2)
            calls_after_genuine = s.org.api_usage
            assert calls_after_genuine > calls_before
            # Its resends are acked and start nothing.
            for _ in range(10):
                assert raw_request(port, post_request(genuine)).status == 200
            time.sleep(1.5)
            assert s.org.api_usage == calls_after_genuine
            out, err = kill(daemon, signal.SIGTERM)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.communicate()
    assert daemon.returncode == 0, err
    assert "Traceback" not in err
    entries = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is JSON
    assert not [e for e in entries if "error" in e]
    messages = " | ".join(e["message"] for e in entries)
    assert "not in [server] allowed_sources" in messages and "notifications in one message" in messages
