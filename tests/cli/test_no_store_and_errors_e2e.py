"""Read-only commands with no store say so and create nothing; `sync` without a [salesforce] table
says what to add and where the example is; errors are red on a terminal, plain elsewhere and with
NO_COLOR (issue 10)."""
from __future__ import annotations

from cli_support import Call, revsync, run_all

READ_ONLY = [("report", "arr"), ("report", "arr-by-period"), ("report", "accounts"), ("status",),
             ("status", "-f", "json"), ("quarantine",), ("outbox",), ("outbox", "--failed"), ("jobs",),
             ("jobs", "--failed")]


def test_read_only_commands_create_no_store(tmp_path):
    bare = tmp_path / "bare"  # no config: the default store is ./revsync.db
    configured = tmp_path / "configured"
    for wd in (bare, configured):
        wd.mkdir()
    (configured / "config.toml").write_text(f'[store]\nurl = "sqlite:///{configured / "data" / "x.db"}"\n')
    (configured / "data").mkdir()
    results = run_all([Call(wd, args) for wd in (bare, configured) for args in READ_ONLY])
    for result in results:
        assert result.code == 2, (result.args, result.stdout, result.stderr)
        assert result.stdout == ""
        assert "no store yet at" in result.errors and "run `revsync import FILE` or `revsync sync --once` first" \
            in result.errors, result.stderr
    assert sorted(p.name for p in bare.iterdir()) == []
    assert sorted(p.name for p in (configured / "data").iterdir()) == []
    assert str(configured / "data" / "x.db") in results[-1].errors


def test_sync_without_salesforce_table_says_what_to_add(tmp_path):
    for args in (("sync", "--once"), ("backfill", "--since", "2023-01-01")):
        result = revsync(tmp_path, *args)
        assert result.code == 2, result.stderr
        assert "no --config, no REVSYNC_CONFIG, no ./config.toml" in result.errors
        assert "the configuration has no [salesforce] table" in result.errors
        assert "add a [salesforce] table" in result.errors and "config.example.toml" in result.errors
        assert "revsync sandbox serve" in result.errors
        assert "{" not in result.stderr  # no JSON log lines (no migration lines) before the message
    assert list(tmp_path.iterdir()) == [], "nothing is created before the configuration is checked"


def test_errors_red_on_a_terminal_plain_otherwise(tmp_path):
    plain, coloured, no_color = run_all([Call(tmp_path, ("status",)),
                                         Call(tmp_path, ("status",), {"FORCE_COLOR": "1", "TERM": "xterm"}),
                                         Call(tmp_path, ("status",), {"FORCE_COLOR": "1", "TERM": "xterm",
                                                                      "NO_COLOR": "1"})])
    assert plain.stderr.startswith("error: no store yet")
    assert "\x1b[" not in plain.stderr
    assert coloured.stderr.startswith("\x1b[31merror:\x1b[0m no store yet"), repr(coloured.stderr[:40])
    assert "\x1b[" not in no_color.stderr and no_color.stderr.startswith("error: no store yet")


def test_sandbox_serve_errors_are_coloured_like_the_others(tmp_path):
    args = ("sandbox", "serve", "--seed", str(tmp_path / "none.json"), "--port", "0", "--ca-out", str(tmp_path / "ca.pem"))
    plain, coloured, no_color = run_all([Call(tmp_path, args),
                                         Call(tmp_path, args, {"FORCE_COLOR": "1", "TERM": "xterm"}),
                                         Call(tmp_path, args, {"FORCE_COLOR": "1", "TERM": "xterm", "NO_COLOR": "1"})])
    for result in (plain, coloured, no_color):
        assert result.code == 2, result.stderr
        assert "none.json: no such file" in result.stderr and "→ give the path of a JSON seed file" in result.stderr
    assert plain.stderr.startswith("error: revsync sandbox serve: --seed ") and "\x1b[" not in plain.stderr
    assert coloured.stderr.startswith("\x1b[31merror:\x1b[0m revsync sandbox serve: --seed "), repr(coloured.stderr[:40])
    assert no_color.stderr == plain.stderr
    assert not (tmp_path / "ca.pem").exists()
