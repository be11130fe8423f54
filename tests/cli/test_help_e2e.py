"""`--version`/`-V`, `-h` on every command, flags shown as flags and options with readable
placeholders, and help texts that say what a user can check (issue 10)."""
from __future__ import annotations

import re

from cli_support import Call, revsync, run_all

COMMANDS = [(), ("import",), ("jobs",), ("jobs", "retry"), ("regenerate",), ("regenerate", "arr"),
            ("report",), ("report", "arr-by-period"), ("report", "arr"), ("report", "subscriptions"),
            ("report", "accounts"), ("report", "order-metrics"), ("report", "drafts"), ("quarantine",),
            ("status",), ("outbox",), ("outbox", "retry"), ("outbox", "ignore"), ("mappings",),
            ("mappings", "validate"), ("sandbox",), ("sandbox", "serve"), ("sync",), ("backfill",), ("demo",)]


def _help(tmp_path, *commands, width=100):
    return run_all([Call(tmp_path, (*c, "-h"), {"COLUMNS": str(width)}) for c in commands])


def test_version(tmp_path):
    from importlib.metadata import version

    for flag in ("--version", "-V"):
        result = revsync(tmp_path, flag)
        assert result.code == 0, result.stderr
        assert result.stdout.strip() == f"revsync {version('revsync')}"
    assert not list(tmp_path.iterdir()), "--version created a file"


def test_h_on_every_command_same_as_help(tmp_path):
    short = _help(tmp_path, *COMMANDS)
    long = run_all([Call(tmp_path, (*c, "--help"), {"COLUMNS": "100"}) for c in COMMANDS])
    for s, l in zip(short, long):
        assert s.code == 0, (s.args, s.stderr)
        assert s.stdout == l.stdout and f"Usage: revsync {' '.join(s.args[:-1])}".rstrip() in s.stdout
        assert re.search(r"--help +-h ", s.stdout)
        # flags take no value, lists and dates have readable placeholders
        assert "<bool>" not in s.stdout and "list[" not in s.stdout and "%Y" not in s.stdout, s.stdout


def test_option_help_texts(tmp_path):
    sync, arr, accounts, demo, backfill = _help(tmp_path, ("sync",), ("report", "arr"), ("report", "accounts"),
                                                ("demo",), ("backfill",), width=200)
    assert re.search(r"--once +one full cycle, then exit", sync.stdout)
    assert re.search(r"--from +YYYY-MM-DD +first day", arr.stdout)
    assert re.search(r"--to +YYYY-MM-DD +last day \(inclusive\)", arr.stdout)
    as_of = next(line for line in accounts.stdout.splitlines() if "--as-of" in line)
    assert "ARR" in as_of and "MRR" not in as_of and "status" not in as_of
    assert "SPEC" not in demo.stdout and "section 7" not in demo.stdout
    assert "three orders" in demo.stdout and "Chloe's quarters of 2023" in demo.stdout
    assert re.search(r"--objects +OBJECT +an object to read", backfill.stdout)


def test_configuration_names_in_brackets_are_shown(tmp_path):
    """`[orgs.NAME]`, `[salesforce]`, `[engine]`: the help's markup must not take them for its own
    tags and drop them (it showed "names several ()")."""
    main, forecast, jobs, report, backfill, worker = _help(
        tmp_path, (), ("forecast",), ("jobs",), ("report",), ("backfill",), ("worker",), width=250)
    assert "the configuration names several ([orgs.NAME])" in main.stdout
    assert "([salesforce] big_object_capacity)" in forecast.stdout
    assert "`[engine] evergreen_horizon_months`" in jobs.stdout
    assert "([engine] sync_draft_orders_with_primary_quotes)" in report.stdout
    assert "Read history [since, until)" in backfill.stdout
    assert "every org of the configuration ([orgs.NAME])" in worker.stdout
    for result in (main, forecast, jobs, report, backfill, worker):
        assert "\\[" not in result.stdout
