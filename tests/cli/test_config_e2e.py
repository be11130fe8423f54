"""Where the configuration comes from, and every configuration problem reported at once."""
from __future__ import annotations

import pytest

from cli_support import Call, run_all, workdir

pytestmark = pytest.mark.slow

BAD = """
[store]
urll = "sqlite:///x.db"

[fiscal]
start_month = 13

[engine]
default_bill_cycle_day = 0
order_metrics = ["mrr", "arr"]

[jobs]
max_attempts = "many"

[reports]
format = "xml"

[bogus]
answer = 42
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("config")
    # a store with one account in it, configured by a file that is not ./config.toml
    good = workdir(root, "good", config='[reports]\nformat = "json"\n')
    (good / "settings.toml").write_text((good / "config.toml").read_text())
    (good / "config.toml").unlink()
    (good / "orders.json").write_text('{"accounts": [{"id": "ENV", "name": "From the env config"}]}')
    bad = workdir(root, "bad", config=None)
    (bad / "config.toml").write_text(BAD)
    empty = workdir(root, "empty", config=None)
    good_cfg, bad_cfg = str(good / "settings.toml"), str(bad / "config.toml")
    results = run_all([
        Call(bad, ("report", "accounts")),                                     # ./config.toml is read
        Call(empty, ("import", str(good / "orders.json")), env={"REVSYNC_CONFIG": good_cfg}),
        Call(empty, ("--config", bad_cfg, "report", "accounts"), env={"REVSYNC_CONFIG": good_cfg}),
    ])
    # once the import into the env-configured store is done
    results += run_all([
        Call(empty, ("report", "accounts"), env={"REVSYNC_CONFIG": good_cfg}),  # format from that file too
        Call(bad, ("--config", good_cfg, "report", "accounts", "-f", "json")),  # --config beats ./config.toml
        Call(empty, ("report", "accounts", "-f", "json")),                     # built-in defaults
    ])
    return {"root": root, "empty": empty, "bad_cfg": bad_cfg,
            **dict(zip(["bad", "env_import", "flag_over_env", "env_report", "flag_over_cwd", "defaults"], results))}


def test_every_problem_is_reported_at_once_with_key_and_file(runs):
    out = runs["bad"]
    assert out.code == 2
    problems = [line.strip() for line in out.stderr.splitlines() if line.strip().startswith("- ")]
    keys = ["store.urll", "fiscal.start_month", "engine.default_bill_cycle_day", "engine.order_metrics",
            "jobs.max_attempts", "reports.format", "bogus"]
    for key in keys:
        assert any(f"{runs['bad_cfg']}: {key}" in p for p in problems), (key, out.stderr)
    assert any("store.urll" in p and "unknown key" in p for p in problems)
    assert any("bogus" in p and "unknown key" in p for p in problems)


def test_revsync_config_is_honoured(runs):
    assert runs["env_import"].code == 0, runs["env_import"].stderr
    out = runs["env_report"]
    assert out.code == 0, out.stderr
    assert out.json() == [{"account": "ENV", "name": "From the env config", "tcv": "0.00", "customer_since": None,
                           "arr": "0.00", "currency": None}]  # no orders: no currency yet (issue 9)


def test_the_config_option_beats_the_environment_and_the_working_directory(runs):
    assert runs["flag_over_env"].code == 2 and runs["bad_cfg"] in runs["flag_over_env"].stderr
    assert [a["account"] for a in runs["flag_over_cwd"].json()] == ["ENV"]


def test_without_any_configuration_a_store_in_the_working_directory(runs):
    # the built-in store is ./revsync.db; a read-only command names it and does not create it
    defaults = runs["defaults"]
    assert defaults.code == 2 and defaults.stdout == ""
    assert f"no store yet at {runs['empty'] / 'revsync.db'} (built-in defaults)" in defaults.errors
    assert not (runs["empty"] / "revsync.db").exists()
