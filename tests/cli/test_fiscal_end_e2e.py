"""Reports up to the last period of an explicit fiscal calendar (issue 9): a 4-4-5 year and a
13-period year whose data reaches their last period, by month, quarter and year, with and without
`--to` inside the calendar. Before the fix, every one of these exited 1 with "the date ... is
outside every fiscal period": the loop over groups stepped one day past the calendar's end.
"""
from __future__ import annotations

import datetime as dt

import pytest

from cli_support import Call, run_all, workdir, write_doc

pytestmark = pytest.mark.slow


def _445() -> list[tuple[dt.date, dt.date]]:
    """One 4-4-5 year of week periods from Sunday 2023-01-01 to Saturday 2023-12-30 (no year or
    quarter columns: 12 periods make fiscal 2023, every 3 a quarter)."""
    out, start = [], dt.date(2023, 1, 1)
    for weeks in [4, 4, 5] * 4:
        end = start + dt.timedelta(weeks=weeks, days=-1)
        out.append((start, end))
        start = end + dt.timedelta(days=1)
    return out


def _thirteen() -> list[tuple[dt.date, dt.date, int, int]]:
    """Thirteen 4-week periods from 2023-01-01 to 2023-12-30; quarters 3, 3, 3 and 4 periods."""
    return [(dt.date(2023, 1, 1) + dt.timedelta(days=28 * k), dt.date(2023, 1, 1) + dt.timedelta(days=28 * k + 27),
             2023, min(k // 3 + 1, 4)) for k in range(13)]


def _doc(start: str, end: str) -> dict:
    # one subscription of 10 seats × 100/month = 1,000 CMRR = 12,000 ARR, ending on the calendar's last day
    return {"accounts": [{"id": "C", "name": "Customer C"}],
            "products": [{"id": "SEAT", "name": "Seat", "provisioning": "subscription", "list_price": "100",
                          "price_period": "month"}],
            "orders": [{"id": "O-1", "account": "C", "owner": "Olga", "booked_on": start, "currency": "USD",
                        "lines": [{"id": "OP-1", "action": "new", "product": "SEAT", "subscription": "S-1",
                                   "quantity": 10, "unit_price": "100", "start": start, "end": end}]}]}


def _arr(by: str, *extra: str) -> tuple[str, ...]:
    return ("report", "arr", "--by", by, *extra, "-f", "json")


def _moves(by: str, *extra: str) -> tuple[str, ...]:
    return ("report", "arr-movements", "--by", by, *extra, "-f", "json")


RUNS = {
    "month": _arr("month"), "quarter": _arr("quarter"), "year": _arr("year"),
    "quarter_to_inside": _arr("quarter", "--from", "2023-01-01", "--to", "2023-11-01"),
    "year_to_inside": _arr("year", "--to", "2023-06-01"),
    "moves_quarter": _moves("quarter"), "moves_month_to_inside": _moves("month", "--to", "2023-12-01"),
    "by_period": ("report", "arr-by-period", "-f", "json"),
}


@pytest.fixture(scope="module")
def calendars(tmp_path_factory):
    root = tmp_path_factory.mktemp("fiscal-end")
    weeks = workdir(root, "445", config='[fiscal]\nperiods_file = "periods.csv"\n')
    (weeks / "periods.csv").write_text("start,end\n" + "".join(f"{s},{e}\n" for s, e in _445()))
    thirteen = workdir(root, "13", config='[fiscal]\nperiods_file = "periods.csv"\n')
    (thirteen / "periods.csv").write_text("start,end,fiscal_year,quarter\n"
                                          + "".join(f"{s},{e},{y},{q}\n" for s, e, y, q in _thirteen()))
    write_doc(weeks / "doc.json", _doc("2023-02-01", "2023-12-30"))
    write_doc(thirteen / "doc.json", _doc("2023-01-01", "2023-12-30"))
    imported = run_all([Call(weeks, ("import", "doc.json")), Call(thirteen, ("import", "doc.json"))])
    assert all(r.code == 0 for r in imported), [r.stderr for r in imported]
    names = list(RUNS)
    out = run_all([Call(weeks, RUNS[n]) for n in names] + [Call(thirteen, RUNS[n]) for n in names])
    return {"445": dict(zip(names, out[:len(names)])), "13": dict(zip(names, out[len(names):])),
            "dirs": {"445": weeks, "13": thirteen}}


def _spans(rows) -> list[tuple]:
    return [(r["period_start"], r["period_end"], r["opening_arr"], r["closing_arr"]) for r in rows]


def test_4_4_5_every_report_reaches_the_last_period(calendars):
    runs = calendars["445"]
    # The line 2023-02-01..2023-12-30 starts inside P2 (01-29..02-25): added there (0 → 12,000 ARR);
    # it is lost on the last day of P12 (11-26..12-30), the calendar's last day: 12,000 → 0 there.
    months = runs["month"].json()
    assert len(months) == 11  # P2 … P12
    assert _spans(months)[0] == ("2023-01-29", "2023-02-25", "0.00", "12000.00")
    assert _spans(months)[-1] == ("2023-11-26", "2023-12-30", "12000.00", "0.00")
    # quarters of 3 periods: Q1 01-01..04-01 (4+4+5 weeks), Q2 04-02..07-01, Q3 07-02..09-30, Q4 10-01..12-30
    quarters = [("2023-01-01", "2023-04-01", "0.00", "12000.00"), ("2023-04-02", "2023-07-01", "12000.00", "12000.00"),
                ("2023-07-02", "2023-09-30", "12000.00", "12000.00"), ("2023-10-01", "2023-12-30", "12000.00", "0.00")]
    assert _spans(runs["quarter"].json()) == quarters
    # Q4's change: the New Business line loses its 1,000 CMRR
    assert runs["quarter"].json()[-1]["changes"] == {"New Business": "-1000.00"}
    # --to 2023-11-01 lies in P11; its quarter ends with P12, the calendar's last period
    assert _spans(runs["quarter_to_inside"].json()) == quarters
    # the year: opening of P1 (0), closing of P12 (0); +1,000 then −1,000 CMRR of New Business
    year = runs["year"].json()
    assert _spans(year) == [("2023-01-01", "2023-12-30", "0.00", "0.00")]
    assert year[0]["changes"] == {"New Business": "0.00"}
    assert _spans(runs["year_to_inside"].json()) == [("2023-01-01", "2023-12-30", "0.00", "0.00")]
    assert runs["by_period"].code == 0 and len(runs["by_period"].json()) == 11


def test_4_4_5_movements_reach_the_last_period(calendars):
    runs = calendars["445"]
    q = runs["moves_quarter"].json()
    # Q1: new 12,000; Q4: churn −12,000 (it expires with no renewal: the calendar ends there)
    assert [(r["period_start"], r["new_arr"], r["churn_arr"], r["closing_arr"]) for r in q] == [
        ("2023-01-01", "12000.00", "0.00", "12000.00"), ("2023-04-02", "0.00", "0.00", "12000.00"),
        ("2023-07-02", "0.00", "0.00", "12000.00"), ("2023-10-01", "0.00", "-12000.00", "0.00")]
    months = runs["moves_month_to_inside"].json()
    assert (months[-1]["period_start"], months[-1]["period_end"], months[-1]["churn_arr"]) == (
        "2023-11-26", "2023-12-30", "-12000.00")


def test_13_period_year_every_report_reaches_the_last_period(calendars):
    runs = calendars["13"]
    # 13 periods of 28 days: P1 01-01..01-28, …, P10 09-10..10-07, P13 12-03..12-30.
    # The line 2023-01-01..2023-12-30 is added on P1's first day (0 → 12,000 within P1) and lost on
    # P13's last day (12,000 → 0 within P13).
    months = runs["month"].json()
    assert len(months) == 13
    assert _spans(months)[0] == ("2023-01-01", "2023-01-28", "0.00", "12000.00")
    assert _spans(months)[-1] == ("2023-12-03", "2023-12-30", "12000.00", "0.00")
    # quarters of 3, 3, 3 and 4 periods (the CSV's quarter column)
    quarters = [("2023-01-01", "2023-03-25", "0.00", "12000.00"), ("2023-03-26", "2023-06-17", "12000.00", "12000.00"),
                ("2023-06-18", "2023-09-09", "12000.00", "12000.00"), ("2023-09-10", "2023-12-30", "12000.00", "0.00")]
    assert _spans(runs["quarter"].json()) == quarters
    assert _spans(runs["quarter_to_inside"].json()) == quarters
    assert _spans(runs["year"].json()) == [("2023-01-01", "2023-12-30", "0.00", "0.00")]
    assert _spans(runs["year_to_inside"].json()) == [("2023-01-01", "2023-12-30", "0.00", "0.00")]
    q = runs["moves_quarter"].json()
    assert [(r["new_arr"], r["churn_arr"]) for r in q] == [
        ("12000.00", "0.00"), ("0.00", "0.00"), ("0.00", "0.00"), ("0.00", "-12000.00")]


def test_a_day_past_the_calendar_is_still_an_error_that_names_it(calendars):
    from cli_support import revsync

    # --to after the calendar's last day names the day (SPEC section 8: never a silent fallback)
    out = revsync(calendars["dirs"]["445"], "report", "arr", "--to", "2023-12-31", "-f", "json")
    assert out.code != 0 and "2023-12-31" in out.errors and "outside every fiscal period" in out.errors
