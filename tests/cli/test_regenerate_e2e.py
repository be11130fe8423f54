"""`revsync regenerate arr` after the fiscal calendar changes: rows and quarters follow the new calendar."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from cli_support import Call, all_reports, copy_store, run_all, store_url, workdir

pytestmark = pytest.mark.slow

QUARTERS = ("report", "arr", "--by", "quarter", "--owner", "Chloe", "-f", "json")


def _periods_445() -> list[tuple[dt.date, dt.date]]:
    """Two 4-4-5 fiscal years of week-based periods, from Sunday 2023-01-01."""
    out, start = [], dt.date(2023, 1, 1)
    for weeks in [4, 4, 5] * 8:
        end = start + dt.timedelta(weeks=weeks) - dt.timedelta(days=1)
        out.append((start, end))
        start = end + dt.timedelta(days=1)
    return out


@pytest.fixture(scope="module")
def runs(worked_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("regenerate")
    april = workdir(root, "april", config="[fiscal]\nstart_month = 4\n")
    weeks = workdir(root, "weeks", config='[fiscal]\nperiods_file = "periods.csv"\n')
    (weeks / "periods.csv").write_text("start,end\n" + "".join(f"{s},{e}\n" for s, e in _periods_445()))
    for wd in (april, weeks):
        copy_store(worked_store["wd"], wd)
    before = run_all([Call(april, QUARTERS), Call(weeks, QUARTERS)])
    regenerated = run_all([Call(april, ("regenerate", "arr")), Call(weeks, ("regenerate", "arr"))])
    quarters = run_all([Call(april, (*QUARTERS, "--from", "2023-01-01", "--to", "2024-03-31")),
                        Call(weeks, (*QUARTERS, "--from", "2023-01-01", "--to", "2023-12-30"))])
    return {"april": april, "weeks": weeks, "regenerated": regenerated, "quarters": quarters, "before": before}


def test_regenerate_succeeds(runs):
    for out in runs["regenerated"]:
        assert out.code == 0, out.stderr
        assert "regenerated" in out.stdout
    # the calendar the store holds differed before regenerating: a report said to regenerate...
    assert all("run `revsync regenerate arr`" in out.stderr for out in runs["before"])
    # ...and `regenerate arr` itself says what it does, without telling the user to run itself
    assert all("regenerate arr" not in out.stderr for out in runs["regenerated"])
    assert all("differs from the one the ARR rows were made on: rebuilding them" in out.stdout
               for out in runs["regenerated"])
    # and no longer does after it
    assert all("regenerate arr" not in out.stderr for out in runs["quarters"])


def test_quarters_of_a_fiscal_year_starting_in_april(runs):
    rows = runs["quarters"][0].json()
    assert [(r["period_start"], r["period_end"], r["opening_cmrr"], r["closing_cmrr"]) for r in rows] == [
        ("2023-01-01", "2023-03-31", "0.00", "3000.00"),    # Q4 of fiscal 2022
        ("2023-04-01", "2023-06-30", "3000.00", "1600.00"),
        ("2023-07-01", "2023-09-30", "1600.00", "1600.00"),
        ("2023-10-01", "2023-12-31", "1600.00", "1600.00"),
        ("2024-01-01", "2024-03-31", "1600.00", "0.00")]
    assert {k: float(v) for k, v in rows[-1]["changes"].items()} == {"New Business": -1000, "Upsell/Expansion": -600}


def test_rows_and_quarters_on_a_4_4_5_calendar(runs):
    rows = json.loads(all_reports(store_url(runs["weeks"]))["arr_by_period"])
    periods = {s.isoformat(): e.isoformat() for s, e in _periods_445()}
    assert all(periods.get(r["period_start"]) == r["period_end"] for r in rows)
    got = {(r["order_product"], r["period_start"]): (r["opening_cmrr"], r["closing_cmrr"]) for r in rows}
    # O-2 (2023-02-01..2023-04-30) touches four periods: 01-29..02-25, 02-26..04-01, 04-02..04-29, 04-30..05-27
    assert [(k[1], v) for k, v in got.items() if k[0] == "OP-002"] == [
        ("2023-01-29", ("0.00", "2000.00")), ("2023-02-26", ("2000.00", "2000.00")),
        ("2023-04-02", ("2000.00", "2000.00")), ("2023-04-30", ("2000.00", "0.00"))]
    # O-3 starts 2023-04-01, the last day of period 3: added at its close
    assert got[("OP-003", "2023-02-26")] == ("0.00", "600.00")
    assert got[("OP-001", "2023-12-31")] == ("1000.00", "0.00")
    assert len([k for k in got if k[0] == "OP-001"]) == 13
    quarters = runs["quarters"][1].json()
    assert [(q["period_start"], q["period_end"], q["opening_cmrr"], q["closing_cmrr"]) for q in quarters] == [
        ("2023-01-01", "2023-04-01", "0.00", "3600.00"), ("2023-04-02", "2023-07-01", "3600.00", "1600.00"),
        ("2023-07-02", "2023-09-30", "1600.00", "1600.00"), ("2023-10-01", "2023-12-30", "1600.00", "1600.00")]
