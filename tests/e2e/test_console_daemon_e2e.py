"""`revsync sync` with a [server] table serves the read-only console at /console/ while it runs."""
from __future__ import annotations

import json
import re
import signal
import socket
from html import unescape

import pytest
import requests

from e2e_support import kill, site, wait_for, worked_seed

TOKEN = "console-token-for-the-e2e-test-0123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def column(html: str, table_id: str, name: str) -> list[str]:
    table = re.search(rf'<table id="{table_id}">.*?</table>', html, re.S)
    assert table, html[-2000:]
    return [unescape(v) for v in re.findall(rf'data-col="{re.escape(name)}">(.*?)</td>', table.group(0))]


@pytest.mark.slow
def test_the_daemon_serves_the_console(tmp_path, monkeypatch):
    monkeypatch.setenv("REVSYNC_CONSOLE_TOKEN", TOKEN)  # set: required even on loopback
    port = free_port()
    with site(tmp_path, worked_seed(), sync="interval_seconds = 1",
              extra=f'\n[server]\nhost = "127.0.0.1"\nport = {port}\n') as s:
        daemon = s.start("sync")
        try:
            url = f"http://127.0.0.1:{port}"
            auth = {"Authorization": f"Bearer {TOKEN}"}

            def up() -> bool:
                try:
                    return requests.get(f"{url}/health", timeout=2).status_code == 200
                except requests.ConnectionError:
                    return False

            wait_for(up, 60, "the daemon's /health", step=0.2)
            wait_for(lambda: set(s.outbox_states()) == {"SUCCESS"}, 60, "the write-back", step=0.2)
            assert requests.get(f"{url}/console/health", timeout=5).status_code == 401
            health = requests.get(f"{url}/console/health", headers=auth, timeout=5)
            assert health.status_code == 200
            assert 'id="daemon-state">Sync daemon<div class="v ok">ok</div>' in health.text
            assert re.search(r'id="api-usage">\d+/\d+ at ', health.text)
            assert {"Order", "OrderItem"} <= set(column(health.text, "cursors", "object"))
            # the fiscal calendar comes from the Period records the daemon took in
            report = s.revsync("report", "arr", "--by", "quarter", "-f", "json")
            assert report.code == 0, report
            rows = json.loads(report.stdout)
            arr = requests.get(f"{url}/console/arr?by=quarter", headers=auth, timeout=5)
            assert arr.status_code == 200
            assert column(arr.text, "arr", "closing_arr") == [r["closing_arr"] for r in rows]
            assert "36000.00" in [r["closing_arr"] for r in rows]
            out, err = kill(daemon, signal.SIGTERM)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.communicate()
        assert daemon.returncode == 0, err
