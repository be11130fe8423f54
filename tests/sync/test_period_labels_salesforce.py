"""Issue 10: with `[fiscal] source = "salesforce"`, reports name each fiscal month as the org does
(Period.FullyQualifiedLabel) and its quarters and years by the fiscal year the org's labels name."""
from __future__ import annotations

from connector import reports
from sync_support import close, connect, worked_seed


def test_reports_use_the_orgs_period_labels(tmp_path, monkeypatch):
    seed = worked_seed()
    for period in seed["Period"]:
        # an org naming its fiscal years by the year they end in: calendar 2023 is "FY 2024"
        year = int(period["StartDate"][:4]) + 1
        period["FullyQualifiedLabel"] = f"P{period['Number']} FY {year}"
    c = connect(tmp_path, monkeypatch, seed)
    try:
        c.service.cycle()
        calendar = c.app.calendar
        with c.app.store.connect() as conn:
            months = reports.arr_summary(conn, calendar, by="month")
            quarters = reports.arr_movements(conn, calendar, by="quarter")
            years = reports.arr_summary(conn, calendar, by="year")
            lines = reports.arr_by_period(conn, calendar=calendar)
    finally:
        close(c)
    assert [(r["period_start"].isoformat(), r["period_label"]) for r in months[:3]] == [
        ("2023-01-01", "P1 FY 2024"), ("2023-02-01", "P2 FY 2024"), ("2023-03-01", "P3 FY 2024")]
    assert [r["period_label"] for r in quarters[:2]] == ["FY2024 Q1", "FY2024 Q2"]
    assert years[0]["period_label"] == "FY2024"
    assert {r["period_label"] for r in lines if r["period_start"].isoformat() == "2023-04-01"} == {"P4 FY 2024"}
