"""`revsync report arr --chart` on the worked example: figures match `report arr -f json`, fits 80 columns."""
from __future__ import annotations

import re
from decimal import Decimal

from cli_support import revsync


def test_chart_shows_the_json_figures_within_80_columns(worked_store):
    wd = worked_store["wd"]
    rows = revsync(wd, "report", "arr", "--by", "quarter", "-f", "json").json()
    result = revsync(wd, "report", "arr", "--by", "quarter", "--chart", env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "\x1b[" not in result.stdout
    trend = {line.split(" │")[0]: line.rsplit(" ", 1)[1] for line in lines[1:1 + len(rows)]}
    assert trend == {f"{r['period_label']} {r['period_start']}": f"{Decimal(r['closing_arr']):,}" for r in rows}
    fall = result.stdout.split("\n\n")[1].splitlines()[1:]
    assert fall[0].startswith(f"Opening {rows[0]['period_label']} {rows[0]['period_start']}")
    assert fall[-1].startswith(f"Closing {rows[-1]['period_label']} {rows[-1]['period_end']}")
    assert fall[-1].endswith(f" {Decimal(rows[-1]['closing_arr']):,}")
    ups = sum(Decimal(v) * 12 for r in rows for v in r["changes"].values() if Decimal(v) > 0)
    shown = sum(Decimal(line.rsplit(" ", 1)[1].replace(",", "")) for line in fall if "↑" in line)
    assert ups > 0 and shown == ups


def test_chart_respects_a_filter_and_the_terminal_width(worked_store):
    wd = worked_store["wd"]
    result = revsync(wd, "report", "arr", "--by", "month", "--customer", "B", "--chart", env={"COLUMNS": "120"})
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) == 120  # the bars use the room there is
    assert "2023-02-01 │" in result.stdout and "24,000.00" in result.stdout  # B: 2,000 CMRR from February


def test_colour_on_a_terminal_unless_no_color(worked_store):
    wd = worked_store["wd"]
    # FORCE_COLOR makes rich treat the pipe as a colour terminal; NO_COLOR wins over it
    coloured = revsync(wd, "report", "arr", "--chart", env={"FORCE_COLOR": "1", "COLUMNS": "80"})
    plain = revsync(wd, "report", "arr", "--chart", env={"FORCE_COLOR": "1", "NO_COLOR": "1", "COLUMNS": "80"})
    assert coloured.code == plain.code == 0
    assert "\x1b[32m" in coloured.stdout and "\x1b[" not in plain.stdout
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured.stdout) == plain.stdout
