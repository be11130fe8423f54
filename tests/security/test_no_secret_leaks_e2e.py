"""Issue 8, done when: no secret appears in any output, log line, store row, /metrics sample or process
title. The org's token endpoint echoes the request it received (the consumer secret, form-encoded) in
its errors, as a misconfigured proxy does; the real commands run against it over HTTPS."""
from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import pytest
import requests
from security_support import LOGIN_COMMANDS, SecretSite, leaks

from connector.sandbox.faults import Fault
from e2e_support import kill, wait_for, worked_seed

MASK = "********"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_no_leak(site: SecretSite, *texts: str) -> None:
    for where, text in (("output", "\n".join(texts)), ("store", site.store_dump())):
        found = leaks(text, site.secrets())
        assert found == [], f"{where} shows {found}:\n{text}"


@pytest.mark.parametrize("status", [400, 503], ids=["refused", "unavailable"])
@pytest.mark.parametrize("command", list(LOGIN_COMMANDS))
def test_an_echoing_token_endpoint_never_shows_the_secret(tmp_path, command, status):
    site = SecretSite(tmp_path, worked_seed())
    try:
        echo = site.org.faults.add(Fault.token_echo(status=status))
        result = site.revsync(*LOGIN_COMMANDS[command])
    finally:
        site.stop()
    assert echo.fired >= 1 and result.code != 0, result
    # the echo reached the user, masked: "client_secret=********"
    assert f"client_secret={MASK}" in result.stderr, result
    assert "Traceback" not in result.stderr
    assert_no_leak(site, result.stdout, result.stderr)


def test_a_login_failing_during_write_back_leaves_no_secret_in_the_store(tmp_path):
    site = SecretSite(tmp_path, worked_seed())
    try:
        # the session expires at the first bulk ingest (ARR rows); every later login is echoed back
        site.org.faults.add(Fault.session_expired(method="POST", path=r"/jobs/ingest$"))
        echo = site.org.faults.add(Fault.token_echo(status=503, skip=1))
        result = site.revsync("sync", "--once", timeout=180)
    finally:
        site.stop()
    assert echo.fired >= 3, result
    stored = [m for (m,) in site.store_rows("SELECT last_message FROM outbox WHERE last_message IS NOT NULL")]
    # the failed login was stored with the write it stopped (else this test would prove nothing), masked
    assert any(f"client_secret={MASK}" in m for m in stored), stored
    assert_no_leak(site, result.stdout, result.stderr)


@pytest.mark.slow
def test_the_daemon_shows_no_secret_in_metrics_logs_store_or_process_title(tmp_path):
    port = free_port()
    site = SecretSite(tmp_path, worked_seed(), sync="interval_seconds = 1",
                      extra=f'\n[server]\nhost = "127.0.0.1"\nport = {port}\n')
    url = f"http://127.0.0.1:{port}"
    daemon = site.start("sync")
    seen: list[str] = []
    try:
        def serving() -> bool:
            try:
                return "revsync_last_successful_cycle_timestamp_seconds" in requests.get(f"{url}/metrics",
                                                                                        timeout=2).text
            except requests.ConnectionError:
                return False

        wait_for(serving, 60, "the daemon's /metrics", step=0.2)
        wait_for(lambda: set(site.outbox_states()) == {"SUCCESS"}, 60, "the write-back", step=0.2)
        proc = Path(f"/proc/{daemon.pid}")
        title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode() + " " + (proc / "comm").read_text()
        seen += [title, requests.get(f"{url}/metrics", timeout=2).text, requests.get(f"{url}/health", timeout=2).text]
        assert "revsync_api_calls_used" in seen[1]

        # now the session expires and every new login is answered with an echo of the request
        echo = site.org.faults.add(Fault.token_echo(status=400))
        site.org.faults.add(Fault.session_expired())
        wait_for(lambda: daemon.poll() is not None or echo.fired > 0, 60, "a login after the expiry", step=0.2)
        try:
            seen.append(requests.get(f"{url}/metrics", timeout=2).text)
        except requests.ConnectionError:
            pass  # the daemon already stopped on the refused login
        if daemon.poll() is None:
            out, err = kill(daemon, signal.SIGTERM)
        else:
            out, err = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
        site.stop()
    assert echo.fired >= 1
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines, err
    assert f"client_secret={MASK}" in err, err
    assert_no_leak(site, out, err, *seen)
