"""Bad [server] hardening settings are configuration errors naming each key, before anything runs."""
from __future__ import annotations

import pytest

from cli_support import revsync, workdir

pytestmark = pytest.mark.slow

BAD_VALUES = """
[server]
org_ids = ["00DD0000000muCU"]
allowed_sources = ["salesforce.com", "10.0.0.1/8", "96.43.144.0/20"]
threads = 0
request_timeout_seconds = 0
max_notifications_per_message = 0
max_triggered_cycles_per_minute = 0
notification_retention_days = 0
"""

CN_WITHOUT_CA = """
[server]
client_cert_cn = "proxy.salesforce.com"
"""


def test_every_bad_server_value_is_named_at_once(tmp_path):
    wd = workdir(tmp_path, "bad", config=BAD_VALUES)
    out = revsync(wd, "report", "accounts")
    assert out.code == 2, out.stderr
    assert "Traceback" not in out.stderr
    problems = [line.strip() for line in out.stderr.splitlines() if line.strip().startswith("- ")]
    for key in ["allowed_sources", "threads", "request_timeout_seconds", "max_notifications_per_message",
                "max_triggered_cycles_per_minute", "notification_retention_days"]:
        assert any(f"server.{key}" in p for p in problems), (key, out.stderr)
    sources = next(p for p in problems if "server.allowed_sources" in p)
    assert "'salesforce.com'" in sources and "'10.0.0.1/8'" in sources and "96.43.144.0/20" not in sources
    assert not (wd / "revsync-test.db").exists()  # nothing was created


def test_a_certificate_cn_without_a_ca_file_is_refused(tmp_path):
    wd = workdir(tmp_path, "cn", config=CN_WITHOUT_CA)
    out = revsync(wd, "report", "accounts")
    assert out.code == 2
    assert "client_cert_cn needs client_ca_file" in out.errors and "Traceback" not in out.stderr
