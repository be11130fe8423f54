"""`revsync report arr-movements --chart` (issue 10): the movement waterfall in the terminal, at 80
and 120 columns, every amount shown equal to `report arr-movements -f json`."""
from __future__ import annotations

from decimal import Decimal

import pytest

from cli_support import revsync

STEPS = {"New": "new_arr", "Expansion": "expansion_arr", "Contraction": "contraction_arr", "Churn": "churn_arr",
         "Reactivation": "reactivation_arr", "Renewal boundary": "renewal_boundary_arr"}


def _figure(line: str) -> Decimal:
    return Decimal(line.rsplit(" ", 1)[1].replace(",", ""))


@pytest.mark.parametrize("columns", [80, 120])
def test_waterfall_shows_the_json_figures_and_fits(worked_store, columns):
    wd = worked_store["wd"]
    args = ("report", "arr-movements", "--by", "quarter", "--from", "2023-01-01", "--to", "2023-12-31")
    rows = revsync(wd, *args, "-f", "json").json()
    result = revsync(wd, *args, "--chart", env={"COLUMNS": str(columns), "NO_COLOR": "1"})
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= columns for line in lines), max(lines, key=len)
    assert max(len(line) for line in lines) == columns  # the bars take the room there is
    assert "\x1b[" not in result.stdout
    trend_part, fall_part = result.stdout.split("\n\n")
    trend = {line.split(" │")[0]: _figure(line) for line in trend_part.splitlines()[1:]}
    assert trend == {f"{r['period_label']} {r['period_start']}": Decimal(r["closing_arr"]) for r in rows}
    fall = fall_part.splitlines()[1:]
    assert fall[0].startswith(f"Opening {rows[0]['period_label']} {rows[0]['period_start']} ")
    assert _figure(fall[0]) == Decimal(rows[0]["opening_arr"])
    assert fall[-1].startswith(f"Closing {rows[-1]['period_label']} {rows[-1]['period_end']} ")
    assert _figure(fall[-1]) == Decimal(rows[-1]["closing_arr"])
    shown = {line.split(" │")[0].strip(): _figure(line) for line in fall[1:-1]}
    assert shown == {name: sum(Decimal(r[key]) for r in rows) for name, key in STEPS.items()}
    assert shown["New"] == Decimal("36000.00") and shown["Churn"] == Decimal("-24000.00")  # not all zero


def test_chart_of_one_customer_and_not_per_customer(worked_store):
    wd = worked_store["wd"]
    one = revsync(wd, "report", "arr-movements", "--by", "month", "--customer", "B", "--chart",
                  env={"COLUMNS": "80"})
    assert one.code == 0, one.stderr
    assert "FY2023 P02 2023-02-01 │" in one.stdout and "+24,000.00" in one.stdout
    refused = revsync(wd, "report", "arr-movements", "--per-customer", "--chart")
    assert refused.code == 2 and "--per-customer" in refused.errors and refused.stdout == ""
