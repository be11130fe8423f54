"""Fiscal period labels (issue 10): `report arr`, `arr-movements` and `arr-by-period` name each
period (`period_label`: FY2023 Q1, FY2023 P04) beside its dates, in JSON, CSV and tables; a fiscal
year is named by the year it ends in unless `[fiscal] year_named_by = "start"`."""
from __future__ import annotations

import csv
import io

import pytest

from cli_support import revsync, workdir, worked_example, write_doc


def test_labels_in_json_csv_and_table(worked_store):
    wd = worked_store["wd"]
    quarters = revsync(wd, "report", "arr", "--by", "quarter", "-f", "json").json()
    assert [(r["period_start"], r["period_label"]) for r in quarters[:4]] == [
        ("2023-01-01", "FY2023 Q1"), ("2023-04-01", "FY2023 Q2"), ("2023-07-01", "FY2023 Q3"),
        ("2023-10-01", "FY2023 Q4")]
    assert all(r["currency"] == "USD" for r in quarters)
    months = revsync(wd, "report", "arr-movements", "--by", "month", "-f", "json").json()
    assert months[3]["period_start"] == "2023-04-01" and months[3]["period_label"] == "FY2023 P04"
    years = revsync(wd, "report", "arr", "--by", "year", "-f", "csv")
    assert [r["period_label"] for r in csv.DictReader(io.StringIO(years.stdout))] == ["FY2023", "FY2024"]
    lines = revsync(wd, "report", "arr-by-period", "--order", "O-2", "-f", "json").json()
    assert [(r["period_start"], r["period_label"]) for r in lines] == [
        ("2023-02-01", "FY2023 P02"), ("2023-03-01", "FY2023 P03"), ("2023-04-01", "FY2023 P04")]
    table = revsync(wd, "report", "arr", "--by", "quarter", env={"COLUMNS": "120"})
    assert table.code == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if "2023-04-01" in line)
    assert "FY2023 Q2" in row  # beside its dates, on the same line


@pytest.mark.parametrize("naming,expected", [(None, ["FY2024 Q1", "FY2024 Q2"]), ("start", ["FY2023 Q1", "FY2023 Q2"])])
def test_a_year_starting_in_february_is_named_by_its_end_year(tmp_path, naming, expected):
    fiscal = "[fiscal]\nstart_month = 2\n" + (f'year_named_by = "{naming}"\n' if naming else "")
    wd = workdir(tmp_path, "feb", fiscal)
    assert revsync(wd, "import", str(write_doc(wd / "orders.json", worked_example()))).code == 0
    rows = revsync(wd, "report", "arr", "--by", "quarter", "--from", "2023-02-01", "--to", "2023-07-31",
                   "-f", "json").json()
    # fiscal 2023-02-01..2024-01-31 ends in 2024
    assert [r["period_label"] for r in rows] == expected
    assert [r["period_start"] for r in rows] == ["2023-02-01", "2023-05-01"]


def test_a_bad_year_naming_is_refused(tmp_path):
    wd = workdir(tmp_path, "bad", '[fiscal]\nyear_named_by = "middle"\n')
    result = revsync(wd, "report", "arr")
    assert result.code == 2 and "year_named_by" in result.errors
