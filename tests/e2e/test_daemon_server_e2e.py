"""`revsync sync` with a [server] table serves /health and /metrics while it runs."""
from __future__ import annotations

import signal
import socket

import pytest
import requests

from e2e_support import kill, site, wait_for, worked_seed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_daemon_serves_health_and_metrics(tmp_path):
    port = free_port()
    with site(tmp_path, worked_seed(), sync="interval_seconds = 1",
              extra=f'\n[server]\nhost = "127.0.0.1"\nport = {port}\n') as s:
        daemon = s.start("sync")
        try:
            url = f"http://127.0.0.1:{port}"

            def healthy() -> bool:
                try:
                    return requests.get(f"{url}/health", timeout=2).status_code == 200
                except requests.ConnectionError:
                    return False

            wait_for(healthy, 60, "the daemon's /health", step=0.2)
            wait_for(lambda: set(s.outbox_states()) == {"SUCCESS"}, 60, "the write-back", step=0.2)

            def metric(name: str) -> float | None:
                for line in requests.get(f"{url}/metrics", timeout=2).text.splitlines():
                    if line.startswith(name + " ") or line.startswith(name + "{"):
                        return float(line.rsplit(" ", 1)[1])
                return None

            wait_for(lambda: (metric("revsync_last_successful_cycle_timestamp_seconds") or 0) > 0, 30,
                     "a successful cycle in /metrics", step=0.2)
            assert metric("revsync_api_calls_used") > 0
            assert metric("revsync_failed_jobs") == 0
            assert requests.get(f"{url}/health", timeout=2).json()["status"] == "ok"
            out, err = kill(daemon, signal.SIGTERM)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.communicate()
        assert daemon.returncode == 0, err
