"""`revsync forecast` from the user's side (issue 12): rows per big object per month ahead for the
current subscriptions, evergreen lines extended to their horizon, against `[salesforce]
big_object_capacity`. The projection of an evergreen line is checked against what `revsync jobs
extend-evergreen` then really makes.

Worked example: 26 ARR rows, one row per big object each (52 records). Evergreen: horizon 3 months,
one line from 2023-01-15: rows January..April at import, one more a month as the horizon moves.
"""
from __future__ import annotations

import collections

import pytest

from cli_support import ACCOUNTS, PRODUCTS, revsync, workdir, write_doc

pytestmark = pytest.mark.slow
BIG = ("ArrByPeriod__b", "ArrByPeriodByCustomer__b")
EVERGREEN = {
    "accounts": ACCOUNTS, "products": PRODUCTS,
    "orders": [{"id": "O-1", "account": "A", "owner": "Chloe", "booked_on": "2023-01-01", "currency": "USD",
                "lines": [{"id": "OP-1", "action": "new", "product": "SEAT", "subscription": "S-1", "quantity": 10,
                           "start": "2023-01-15", "evergreen": True}]}],
}


def by_object(rows: list[dict], key: str) -> dict[str, list]:
    out: dict[str, list] = collections.defaultdict(list)
    for r in rows:
        out[r["big_object"]].append(r[key])
    return dict(out)


def test_the_worked_example_month_by_month(worked_store):
    wd = worked_store["wd"]
    rows = revsync(wd, "forecast", "--as-of", "2023-01-15", "--months", "12", "-f", "json").json()
    assert [r["month"] for r in rows[::2]] == [f"2023-{m:02d}" for m in range(1, 13)]
    assert [r["big_object"] for r in rows[:2]] == list(BIG)
    # nothing is in Salesforce yet (no org): the first month writes every row; fixed terms add none after
    assert by_object(rows, "new_rows") == {big: [26] + [0] * 11 for big in BIG}
    assert by_object(rows, "total_rows") == {big: [26] * 12 for big in BIG}
    assert {(r["org_rows"], r["capacity"], r["headroom"]) for r in rows} == {(52, 1_000_000, 999_948)}
    # a month's rows are the ARR-by-period rows of the periods starting in it
    report = revsync(wd, "report", "arr-by-period", "-f", "json").json()
    per_month = collections.Counter(r["period_start"][:7] for r in report)
    assert by_object(rows, "period_rows")["ArrByPeriod__b"] == [per_month[r["month"]] for r in rows[::2]]
    assert sum(by_object(rows, "period_rows")["ArrByPeriod__b"]) < 26  # 2024's rows are past the window

    table = revsync(wd, "forecast", "--as-of", "2023-01-15", "--months", "2")
    assert table.code == 0, table.stderr
    assert "capacity 1,000,000 big-object records: enough through 2023-02" in " ".join(table.stdout.split())
    csv = revsync(wd, "forecast", "--as-of", "2023-01-15", "--months", "1", "-f", "csv")
    assert csv.stdout.splitlines()[0] == "month,big_object,period_rows,new_rows,total_rows,org_rows,capacity,headroom"
    assert len(csv.stdout.splitlines()) == 3


def test_evergreen_lines_grow_to_their_horizon_and_the_month_capacity_runs_out_is_named(tmp_path):
    wd = workdir(tmp_path, "evergreen", "[engine]\nevergreen_horizon_months = 3\n\n"
                                        "[salesforce]\nauth = \"session\"\nbig_object_capacity = 15\n")
    write_doc(wd / "doc.json", EVERGREEN)
    assert revsync(wd, "import", "doc.json").code == 0
    rows = revsync(wd, "forecast", "--as-of", "2023-01-20", "--months", "6", "-f", "json").json()
    # January's last day reaches 2023-04-30 (rows through April, there already); each month-end after
    # it one more fiscal month: May, June, July ...
    assert by_object(rows, "total_rows") == {big: [4, 5, 6, 7, 8, 9] for big in BIG}
    assert by_object(rows, "new_rows") == {big: [4, 1, 1, 1, 1, 1] for big in BIG}
    assert [r["headroom"] for r in rows[::2]] == [7, 5, 3, 1, -1, -3]
    table = revsync(wd, "forecast", "--as-of", "2023-01-20", "--months", "6")
    assert "capacity 15 big-object records: exceeded in 2023-05" in " ".join(table.stdout.split())

    # what the daily extension really makes by June's last day is what was foreseen for June
    assert revsync(wd, "jobs", "extend-evergreen", "--as-of", "2023-06-30").code == 0
    assert len(revsync(wd, "report", "arr-by-period", "-f", "json").json()) == 9
    after = revsync(wd, "forecast", "--as-of", "2023-06-30", "--months", "2", "-f", "json").json()
    assert by_object(after, "total_rows") == {big: [9, 10] for big in BIG}

    # a cancelled subscription is no longer extended: its rows stay as they are
    write_doc(wd / "cancel.json", {"orders": [{
        "id": "O-2", "account": "A", "owner": "Chloe", "booked_on": "2023-07-01", "currency": "USD",
        "lines": [{"id": "OP-2", "action": "cancel", "product": "SEAT", "subscription": "S-1", "start": "2023-07-05"}]}]})
    assert revsync(wd, "import", "cancel.json").code == 0
    stopped = revsync(wd, "forecast", "--as-of", "2023-07-10", "--months", "3", "-f", "json").json()
    assert by_object(stopped, "new_rows")["ArrByPeriod__b"][1:] == [0, 0]


@pytest.mark.parametrize("value", ['"lots"', "-1", "1.5"])
def test_a_capacity_that_is_not_a_count_is_refused(tmp_path, value):
    wd = workdir(tmp_path, "bad", f"[salesforce]\nauth = \"session\"\nbig_object_capacity = {value}\n")
    write_doc(wd / "doc.json", EVERGREEN)
    assert revsync(wd, "import", "doc.json").code == 0
    result = revsync(wd, "forecast")
    assert result.code == 2, result.stderr
    assert "[salesforce].big_object_capacity" in result.errors and "whole number of records" in result.errors
