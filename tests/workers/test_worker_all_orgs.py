"""One pool of workers for many orgs: `revsync worker --all-orgs` takes a claim of each org in turn,
and each org's figures end as a single process would have made them, nothing of one in the other."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from store_support import drop_org_schemas, postgres_schema  # noqa: E402

REVSYNC = str(Path(sys.executable).with_name("revsync"))
WORKED = Path(__file__).resolve().parents[2] / "connector" / "demo" / "worked_example.json"

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([REVSYNC, *args], capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "COLUMNS": "200"})


def report(cwd: Path, *org: str) -> list:
    done = run(cwd, *org, "report", "arr-by-period", "-f", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_one_worker_pool_serves_every_org(tmp_path):
    worked = json.loads(WORKED.read_text())
    other = json.loads(WORKED.read_text())
    other["orders"] = other["orders"][:2]  # a different book: no upsell
    (tmp_path / "east.json").write_text(json.dumps(worked))
    (tmp_path / "west.json").write_text(json.dumps(other))
    east, west = f"east_{uuid.uuid4().hex[:6]}", f"west_{uuid.uuid4().hex[:6]}"
    with postgres_schema() as url:
        try:
            (tmp_path / "config.toml").write_text(
                f'[store]\nurl = "{url}"\n[workers]\nenabled = true\npoll_seconds = 0.2\n'
                f"[orgs.{east}]\n[orgs.{west}]\n")
            for org, doc in ((east, "east.json"), (west, "west.json")):
                done = run(tmp_path, "--org", org, "import", doc)
                assert done.returncode == 0, done.stderr
                assert "left to `revsync worker`" in done.stdout
            assert report(tmp_path, "--org", east) == []  # the jobs wait for the workers

            alone = run(tmp_path, "worker", "--until-idle")  # several orgs, none named: say which
            assert alone.returncode == 2 and "--org" in alone.stderr
            done = run(tmp_path, "worker", "--all-orgs", "--until-idle", "--log-format", "text")
            assert done.returncode == 0, done.stderr

            # each org as a single process on its own store would have it
            for name, doc in ((east, "east.json"), (west, "west.json")):
                single = tmp_path / f"single-{name}"
                single.mkdir()
                (single / "config.toml").write_text(f'[store]\nurl = "sqlite:///{single}/s.db"\n')
                assert run(single, "import", str(tmp_path / doc)).returncode == 0
                assert report(tmp_path, "--org", name) == report(single)
            assert report(tmp_path, "--org", east) != report(tmp_path, "--org", west)
        finally:
            drop_org_schemas(url, (east, west))
