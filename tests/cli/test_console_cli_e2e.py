"""`revsync console`: refuses to serve off loopback without a token; says where it listens."""
from __future__ import annotations

import subprocess
import sys

import requests

from cli_support import _env, revsync


def test_off_loopback_without_a_token_nothing_starts(worked_store):
    out = revsync(worked_store["wd"], "console", "--host", "0.0.0.0", "--port", "0")
    assert out.code == 2, out.stderr
    assert "--host 0.0.0.0: is not a loopback address and REVSYNC_CONSOLE_TOKEN is not set" in out.errors
    assert "set REVSYNC_CONSOLE_TOKEN" in out.errors and "Traceback" not in out.stderr
    short = revsync(worked_store["wd"], "console", "--port", "0", env={"REVSYNC_CONSOLE_TOKEN": "abc"})
    assert short.code == 2 and "shorter than 16 characters" in short.errors


def test_off_loopback_with_a_token_it_serves_behind_it(worked_store):
    token = "a-long-enough-console-token"
    proc = subprocess.Popen([sys.executable, "-m", "connector.cli", "console", "--host", "0.0.0.0", "--port", "0"],
                            cwd=worked_store["wd"], env=_env({"REVSYNC_CONSOLE_TOKEN": token, "PYTHONUNBUFFERED": "1"}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "revsync console at http://0.0.0.0:" in line and "?token=<REVSYNC_CONSOLE_TOKEN>" in line, line
        port = line.split("http://0.0.0.0:", 1)[1].split("/", 1)[0]
        url = f"http://127.0.0.1:{port}/console/arr"
        assert requests.get(url, timeout=5).status_code == 401
        session = requests.Session()
        page = session.get(f"{url}?token={token}", timeout=5)  # follows the redirect with the cookie
        assert page.status_code == 200 and page.url == url and "36000.00" in page.text
        assert session.get(f"http://127.0.0.1:{port}/console/jobs", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0
