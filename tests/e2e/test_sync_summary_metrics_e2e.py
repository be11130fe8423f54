"""From the user's side (issue 10): `revsync sandbox serve` prints the [salesforce] table and the
environment a configuration needs; pasted as printed, they let `revsync sync` run against it. The
daemon's /metrics exports every metric the README lists, records written counted; `sync --once
--summary` says what the pass did (figures checked against the store); `status -f json|csv` types
its figures."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from e2e_support import REPO, kill, wait_for

SEED = REPO / "connector" / "demo" / "sandbox_seed.json"
#: entries written: entries for the same record (or big-object order line) are superseded by the
#: newest one, sent once
WRITTEN = "SELECT count(*) FROM (SELECT DISTINCT object, external_id FROM outbox WHERE state = 'SUCCESS')"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REVSYNC_CONFIG", "COLUMNS", "REQUESTS_CA_BUNDLE",
                                                            "REVSYNC_SF_CONSUMER_SECRET")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def _revsync(wd: Path, env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "connector.cli", *args], cwd=wd, env=_env(env),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """`revsync sandbox serve` as a user runs it; what it printed: the table and the environment."""
    root = tmp_path_factory.mktemp("served")
    proc = subprocess.Popen([sys.executable, "-m", "connector.cli", "sandbox", "serve", "--seed", str(SEED),
                             "--port", "0", "--ca-out", "ca.pem"], cwd=root, env=_env({}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("export REQUESTS_CA_BUNDLE="):
                break
        printed = "\n".join(lines)
        table = printed[printed.index("[salesforce]"):].split("\n\n")[0]
        env = dict(re.findall(r"^export (\w+)=(.*)$", printed, re.M))
        yield {"printed": printed, "table": table, "env": env, "root": root}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def _workdir(sandbox, name: str, extra: str = "") -> Path:
    wd = sandbox["root"] / name
    wd.mkdir()
    (wd / "config.toml").write_text(f'[store]\nurl = "sqlite:///{wd / "revsync.db"}"\n\n[fiscal]\nsource = '
                                    f'"salesforce"\n\n{sandbox["table"]}\n\n[sync]\ninterval_seconds = 1\n{extra}')
    return wd


def _rows(wd: Path, sql: str) -> list[tuple]:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{wd / 'revsync.db'}")
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def test_serve_prints_a_ready_salesforce_table(sandbox):
    assert re.fullmatch(r'\[salesforce\]\nauth = "client_credentials"\nlogin_url = "https://localhost:\d+"\n'
                        r'consumer_key = "revsync-test-client"', sandbox["table"]), sandbox["printed"]
    # the sandbox's public fake secret is printed to set; the CA file as an absolute path
    assert sandbox["env"] == {"REVSYNC_SF_CONSUMER_SECRET": "revsync-test-secret",
                              "REQUESTS_CA_BUNDLE": str((sandbox["root"] / "ca.pem").resolve())}


def test_a_given_secret_is_never_printed(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "connector.cli", "sandbox", "serve", "--port", "0",
                             "--ca-out", "ca.pem", "--client-secret", "s3cr3t-of-mine"], cwd=tmp_path,
                            env=_env({}), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = []
    for line in proc.stdout:
        out.append(line)
        if line.startswith("export REQUESTS_CA_BUNDLE="):
            break
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=30)
    text = "".join(out) + rest + err
    assert "s3cr3t-of-mine" not in text
    assert "export REVSYNC_SF_CONSUMER_SECRET=<the --client-secret you gave>" in text


README_METRICS = sorted(set(re.findall(r"`(revsync_[a-z_]+)(?:\{[a-z]+\})?`",
                                       (REPO / "README.md").read_text())))


@pytest.mark.slow
def test_daemon_metrics_every_readme_metric_and_records_written(sandbox):
    assert len(README_METRICS) >= 14, README_METRICS
    port = free_port()
    wd = _workdir(sandbox, "daemon", f'\n[server]\nhost = "127.0.0.1"\nport = {port}\n')
    daemon = subprocess.Popen([sys.executable, "-m", "connector.cli", "sync"], cwd=wd, env=_env(sandbox["env"]),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def scrape() -> str:
            try:
                return requests.get(url, timeout=2).text
            except requests.ConnectionError:
                return ""

        def value(text: str, name: str) -> float:
            return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if re.match(rf"{name}(\{{| )", line))

        def done() -> bool:
            text = scrape()
            if value(text, "revsync_last_successful_cycle_timestamp_seconds") <= 0:
                return False
            states = dict(_rows(wd, "SELECT state, count(*) FROM outbox GROUP BY state"))
            return bool(states) and set(states) == {"SUCCESS"}

        wait_for(done, 90, "a pass written back, seen in /metrics", step=0.3)
        text = scrape()
        families = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
        missing = [m for m in README_METRICS if m not in families]
        assert not missing, f"the README lists metrics /metrics does not export: {missing}\n{text}"
        sent = _rows(wd, WRITTEN)[0][0]
        assert value(text, "revsync_records_written_total") == sent > 0
        assert value(text, "revsync_records_ingested_total") > 0
        assert value(text, "revsync_api_calls_used") > 0 and value(text, "revsync_store_up") == 1
        _, err = kill(daemon, signal.SIGTERM)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    assert daemon.returncode == 0, err


@pytest.mark.slow
def test_once_summary_logs_and_status_formats(sandbox):
    wd = _workdir(sandbox, "once")
    run = _revsync(wd, sandbox["env"], "sync", "--once", "--summary", "--log-format", "text")
    assert run.returncode == 0, run.stderr
    # no JSON log lines, no database-migration lines
    assert "{" not in run.stderr and "alembic" not in run.stderr and "Running upgrade" not in run.stderr
    summary = run.stdout
    read = int(re.search(r"read (\d+) record\(s\) from Salesforce", summary).group(1))
    activated = int(re.search(r"activated (\d+) order\(s\)", summary).group(1))
    written = int(re.search(r"written (\d+) outbox entries to Salesforce", summary).group(1))
    calls = int(re.search(r"API calls: (\d+) this run", summary).group(1))
    assert "left to write: nothing" in summary
    assert activated == _rows(wd, "SELECT count(*) FROM orders")[0][0] > 0
    assert read >= activated
    assert written == _rows(wd, WRITTEN)[0][0] > 0
    assert calls > 0
    # the default for a pipe: JSON logs (the daemon's), no summary, and still no Alembic lines
    again = _revsync(wd, sandbox["env"], "sync", "--once")
    assert again.returncode == 0 and again.stdout == ""
    logs = [json.loads(line) for line in again.stderr.splitlines()]
    assert logs and not any(entry["logger"].startswith("alembic") for entry in logs)

    as_json, as_csv, as_table = (_revsync(wd, {}, "status", *f) for f in (("-f", "json"), ("-f", "csv"), ()))
    info = json.loads(as_json.stdout)
    detail = info["api_usage_detail"]
    assert isinstance(detail["used"], int) and isinstance(detail["limit"], int) and detail["used"] > 0
    assert info["api_usage"] == f"{detail['used']}/{detail['limit']} at {detail['observed_at']}"
    assert isinstance(info["outbox"]["SUCCESS"], int) and isinstance(info["failed_jobs"], int)
    figures = {row["figure"]: row["value"] for row in csv.DictReader(io.StringIO(as_csv.stdout))}
    assert figures["api_usage.used"] == str(detail["used"]) and figures["outbox.SUCCESS"] == \
        str(info["outbox"]["SUCCESS"]) and figures["store_integrity"] == "ok"
    assert "┃" not in as_csv.stdout
    assert f"outbox: SUCCESS {info['outbox']['SUCCESS']};" in as_table.stdout and "{" not in as_table.stdout
    assert f"API usage: {detail['used']} of {detail['limit']} calls" in as_table.stdout


def _on_a_terminal(wd: Path, env: dict[str, str], *args: str, timeout: float = 120) -> tuple[int, str, str]:
    """Run `revsync` with stdout and stderr each on a pseudo-terminal, as in a person's shell:
    (exit code, stdout, stderr), line ends as the terminal sent them."""
    import select
    import time

    masters, slaves = zip(*(os.openpty() for _ in range(2)))
    proc = subprocess.Popen([sys.executable, "-m", "connector.cli", *args], cwd=wd, env=_env(env),
                            stdin=subprocess.DEVNULL, stdout=slaves[0], stderr=slaves[1])
    for fd in slaves:
        os.close(fd)
    got = {fd: b"" for fd in masters}
    open_fds, deadline = set(masters), time.monotonic() + timeout
    try:
        while open_fds and time.monotonic() < deadline:
            for fd in select.select(list(open_fds), [], [], 1)[0]:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child closed its side
                    chunk = b""
                if chunk:
                    got[fd] += chunk
                else:
                    open_fds.discard(fd)
        code = proc.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for fd in masters:
            os.close(fd)
    out, err = (re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", got[fd].decode()).replace("\r\n", "\n") for fd in masters)
    return code, out, err


@pytest.mark.slow
def test_once_on_a_terminal_prints_its_summary_and_json_logs_when_asked(sandbox):
    wd = _workdir(sandbox, "tty")
    code, out, err = _on_a_terminal(wd, sandbox["env"], "sync", "--once")
    assert code == 0, err
    # on a terminal, nothing asked: the short summary, no JSON log lines
    assert out.startswith("sync --once: read "), out
    assert re.search(r"activated (\d+) order\(s\)", out) and "API calls: " in out
    assert int(re.search(r"activated (\d+) order\(s\)", out).group(1)) == _rows(wd, "SELECT count(*) FROM orders")[0][0] > 0
    assert not any(line.lstrip().startswith("{") for line in (out + err).splitlines()), out + err
    # asked for JSON logs on a terminal: one JSON object a line on stderr, the summary still on stdout
    code, out, err = _on_a_terminal(wd, sandbox["env"], "sync", "--once", "--log-format", "json")
    assert code == 0, err
    logs = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert logs and all("logger" in entry for entry in logs)
    assert out.startswith("sync --once: read ")
    # and asked for no summary: nothing on stdout
    code, out, _ = _on_a_terminal(wd, sandbox["env"], "sync", "--once", "--no-summary")
    assert code == 0 and out == ""
    # the calendar came from the org: its months carry the org's own Period labels
    months = json.loads(_revsync(wd, {}, "report", "arr", "--by", "month", "-f", "json").stdout)
    assert [(m["period_start"], m["period_label"]) for m in months[:2]] == [
        ("2023-01-01", "January FY2023"), ("2023-02-01", "February FY2023")]
