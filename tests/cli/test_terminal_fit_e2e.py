"""Tables fit the terminal (issue 10): at 80 and 120 columns every line fits, and every value of the
report (each amount, each date, each id) is printed whole — as a table when one fits, else one
record per block. Run through the real `revsync` command with COLUMNS set, as a terminal sets it."""
from __future__ import annotations

import re

import pytest

from cli_support import Call, run_all

REPORTS = [("report", "arr", "--by", "quarter"), ("report", "arr", "--by", "month"),
           ("report", "arr-by-period"), ("report", "subscriptions", "--as-of", "2023-06-30"),
           ("report", "accounts", "--as-of", "2023-06-30"), ("report", "order-metrics")]


def _values(rows: list[dict]) -> set[str]:
    out = set()
    for row in rows:
        for value in row.values():
            for v in (value.values() if isinstance(value, dict) else [value]):
                if v not in (None, ""):
                    out.add(str(v))
    return out


@pytest.mark.parametrize("width", [80, 120])
def test_every_value_is_whole_and_every_line_fits(worked_store, width):
    wd = worked_store["wd"]
    calls = [Call(wd, args, {"COLUMNS": str(width)}) for args in REPORTS]
    calls += [Call(wd, (*args, "-f", "json")) for args in REPORTS]
    results = run_all(calls)
    shown, data = results[:len(REPORTS)], results[len(REPORTS):]
    for table, rows in zip(shown, data):
        assert table.code == 0, table.stderr
        assert "…" not in table.stdout, f"{table.args} cut a value at {width} columns:\n{table.stdout}"
        too_long = [line for line in table.stdout.splitlines() if len(line) > width]
        assert not too_long, f"{table.args}: lines wider than {width}:\n" + "\n".join(too_long)
        words = set(re.findall(r"[^\s│┃]+", table.stdout))
        missing = {v for v in _values(rows.json()) if not set(v.split()) <= words}
        assert not missing, f"{table.args} at {width} columns does not show {sorted(missing)[:10]}"


def test_a_table_when_it_fits_one_record_per_block_when_not(worked_store):
    wd = worked_store["wd"]
    narrow, wide, piped = run_all([Call(wd, ("report", "arr", "--by", "quarter"), {"COLUMNS": "80"}),
                                   Call(wd, ("report", "arr", "--by", "quarter"), {"COLUMNS": "120"}),
                                   Call(wd, ("report", "arr-by-period"))])
    # 8 columns of dates and amounts fit 120 columns as a table (headers broken over lines)...
    assert "┃" in wide.stdout and "record 1 of" not in wide.stdout
    assert re.search(r"│ 2023-04-01 │ 2023-06-30 │ FY2023 Q2 │ USD +│ +3000\.00 │ +1600\.00 │", wide.stdout)
    # ...and not 80: one block per quarter, each value beside its column's name
    assert "┃" not in narrow.stdout
    assert "── ARR by quarter: record 2 of 5 " in narrow.stdout
    assert re.search(r"^closing_arr +19200\.00$", narrow.stdout, re.M)
    # written to a pipe without COLUMNS, the widest report is a whole table, never cut
    assert piped.code == 0 and "…" not in piped.stdout and "┃ order" in piped.stdout
    assert len(piped.stdout.splitlines()[1]) > 250
