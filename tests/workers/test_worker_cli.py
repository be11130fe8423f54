"""`revsync worker` on the command line: its help, and SQLite refused (exit 2, nothing created)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REVSYNC = str(Path(sys.executable).with_name("revsync"))


def _run(tmp_path, *args, config: str | None = None):
    command = [REVSYNC]
    if config is not None:
        path = tmp_path / "config.toml"
        path.write_text(config)
        command += ["--config", str(path)]
    return subprocess.run(command + list(args), capture_output=True, text=True, cwd=tmp_path, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "COLUMNS": "200"})


def test_help_describes_the_worker(tmp_path):
    done = _run(tmp_path, "worker", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for words in ("PostgreSQL store", "FOR UPDATE SKIP LOCKED", "activation order", "claim expires",
                  "--until-idle", "exits 2"):
        assert words in text, words


def test_on_sqlite_it_exits_2_and_creates_no_store(tmp_path):
    done = _run(tmp_path, "worker", "--until-idle")
    assert done.returncode == 2, done.stderr
    assert "`revsync worker` needs a PostgreSQL store; this one is sqlite" in done.stderr
    assert "single-process mode" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_workers_enabled_on_sqlite_is_a_configuration_error(tmp_path):
    done = _run(tmp_path, "status", config=f'[store]\nurl = "sqlite:///{tmp_path}/s.db"\n\n'
                                            "[workers]\nenabled = true\n")
    assert done.returncode == 2, done.stderr
    assert "workers.enabled" in done.stderr and "PostgreSQL" in done.stderr
    assert not (tmp_path / "s.db").exists()
