"""Owners of Salesforce-origin orders, as an admin looks them up: reports show the owner's name beside
its User Id, `--owner` takes either; errors of `revsync sync` are coloured like the others (issue 10).
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest
from e2e_support import site, worked_seed


def _json(result) -> list:
    assert result.code == 0, result
    return json.loads(result.stdout)


@pytest.mark.slow
def test_owner_names_and_ids_from_salesforce(tmp_path):
    with site(tmp_path, worked_seed()) as s:
        assert s.revsync("sync", "--once").code == 0
        chloe = s.refs["chloe"]
        rows = _json(s.revsync("report", "arr-by-period", "-f", "json"))
        assert rows and {(r["owner"], r["owner_id"]) for r in rows} == {("Chloe Ng", chloe)}

        # the same quarters whichever way the owner is given: a word of the name, the whole name in
        # any case, the 18- or the 15-character User Id
        quarters = [_json(s.revsync("report", "arr", "--owner", given, "-f", "json"))
                    for given in ("Chloe", "chloe ng", chloe, chloe[:15])]
        assert quarters[0] and all(q == quarters[0] for q in quarters)
        assert quarters[0] == _json(s.revsync("report", "arr", "-f", "json"))  # she owns every order

        for width in ("80", "120"):
            proc = subprocess.run([sys.executable, "-m", "connector.cli", "report", "arr-by-period", "--owner",
                                   "Chloe"], cwd=s.root, env=s.env() | {"COLUMNS": width}, capture_output=True,
                                  text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr
            assert "Chloe Ng" in proc.stdout and chloe in proc.stdout

        unknown = s.revsync("report", "arr", "--owner", "Chleo")
        assert unknown.code == 2
        assert "--owner Chleo: no order owner 'Chleo' in the store (did you mean 'Chloe Ng'?)" in unknown.stderr

        # a store from before names were read: the Id is shown until a backfill reads the orders again
        with sqlite3.connect(s.db) as conn:
            conn.execute("DELETE FROM owner_names")
        assert {r["owner"] for r in _json(s.revsync("report", "arr-by-period", "-f", "json"))} == {chloe}
        assert s.revsync("report", "arr", "--owner", "Chloe").code == 2
        assert s.revsync("backfill", "--since", "2000-01-01", "--objects", "Order").code == 0
        assert {r["owner"] for r in _json(s.revsync("report", "arr-by-period", "-f", "json"))} == {"Chloe Ng"}


@pytest.mark.slow
def test_sync_errors_are_red_on_a_terminal_and_plain_with_no_color(tmp_path):
    with site(tmp_path, worked_seed()) as s:
        env = s.env() | {"REVSYNC_SF_CONSUMER_SECRET": "not-the-secret", "FORCE_COLOR": "1", "TERM": "xterm"}
        outs = [subprocess.run([sys.executable, "-m", "connector.cli", "sync", "--once", "--log-format", "text"],
                               cwd=s.root, env=env | extra, capture_output=True, text=True, timeout=120)
                for extra in ({}, {"NO_COLOR": "1"})]
        coloured, plain = outs
        assert coloured.returncode == plain.returncode == 5, coloured.stderr
        assert "\x1b[31merror:\x1b[0m " in coloured.stderr, repr(coloured.stderr[-300:])
        assert "\x1b[" not in plain.stderr and "error: " in plain.stderr
        assert "not-the-secret" not in coloured.stderr + plain.stderr
