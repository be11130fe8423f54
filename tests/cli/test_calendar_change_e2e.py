"""After the fiscal calendar changes and before `revsync regenerate arr`, the reports built from ARR
rows refuse (exit 1, saying to regenerate) instead of printing quarters that are not the calendar's;
reports that do not read ARR rows still answer (issue 9).
"""
from __future__ import annotations

import pytest

from cli_support import Call, copy_store, run_all, workdir

pytestmark = pytest.mark.slow

ARR_REPORTS = {
    "arr": ("report", "arr", "--by", "quarter", "-f", "json"),
    "arr_by_period": ("report", "arr-by-period", "-f", "json"),
    "movements": ("report", "arr-movements", "--by", "quarter", "-f", "json"),
}
OTHER_REPORTS = {
    "accounts": ("report", "accounts", "--as-of", "2023-06-30", "-f", "json"),
    "subscriptions": ("report", "subscriptions", "--as-of", "2023-06-30", "-f", "json"),
    "order_metrics": ("report", "order-metrics", "-f", "json"),
    "credits": ("report", "credits", "-f", "json"),
}


@pytest.fixture(scope="module")
def runs(worked_store, tmp_path_factory):
    # the worked example was imported on calendar months, fiscal year from January; now April
    wd = workdir(tmp_path_factory.mktemp("calendar-change"), "april", config="[fiscal]\nstart_month = 4\n")
    copy_store(worked_store["wd"], wd)
    names = [*ARR_REPORTS, *OTHER_REPORTS]
    every = ARR_REPORTS | OTHER_REPORTS
    before = dict(zip(names, run_all([Call(wd, every[n]) for n in names])))
    (regenerated,) = run_all([Call(wd, ("regenerate", "arr"))])
    after = dict(zip(ARR_REPORTS, run_all([Call(wd, ARR_REPORTS[n]) for n in ARR_REPORTS])))
    return {"before": before, "regenerated": regenerated, "after": after}


def test_arr_reports_refuse_until_regenerated(runs):
    for name in ARR_REPORTS:
        out = runs["before"][name]
        assert out.code == 1, (name, out.stdout, out.stderr)
        assert out.stdout == ""  # no quarter printed at all
        assert "another fiscal calendar" in out.errors and "run `revsync regenerate arr`" in out.errors, out.stderr


def test_reports_that_do_not_read_arr_rows_still_answer(runs):
    for name in OTHER_REPORTS:
        out = runs["before"][name]
        assert out.code == 0, (name, out.stderr)
    assert {r["account"] for r in runs["before"]["accounts"].json()} == {"A", "B"}


def test_after_regenerate_the_quarters_follow_the_new_calendar(runs):
    assert runs["regenerated"].code == 0, runs["regenerated"].stderr
    for name in ARR_REPORTS:
        assert runs["after"][name].code == 0, runs["after"][name].stderr
    # fiscal year from April: SPEC 7's example in quarters Jan–Mar (Q4 of fiscal 2022) … Jan–Mar 2024
    # Jan–Mar 2023: 0 → 3,000 CMRR (O-1 1,000 + O-2 2,000); Apr–Jun: O-2 lost on 04-30, O-3 +600: 3,000 → 1,600
    quarters = runs["after"]["arr"].json()
    assert [(q["period_start"], q["opening_cmrr"], q["closing_cmrr"]) for q in quarters] == [
        ("2023-01-01", "0.00", "3000.00"), ("2023-04-01", "3000.00", "1600.00"), ("2023-07-01", "1600.00", "1600.00"),
        ("2023-10-01", "1600.00", "1600.00"), ("2024-01-01", "1600.00", "0.00")]
