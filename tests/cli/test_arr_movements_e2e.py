"""`revsync report arr-movements` (issue 9): new, expansion, contraction, churn, reactivation and
renewal across a period boundary, per quarter, per month and per customer, worked out by hand;
`report arr` unchanged beside it. The README's worked example uses these figures.
"""
from __future__ import annotations

import pytest

from cli_support import ACCOUNTS, PRODUCTS, Call, run_all, workdir, write_doc

pytestmark = pytest.mark.slow


def _order(oid, account, booked, *lines, owner="Chloe"):
    return {"id": oid, "account": account, "owner": owner, "booked_on": booked, "currency": "USD", "lines": list(lines)}


def _line(lid, action, sub, **kw):
    return {"id": lid, "action": action, "product": "SEAT", "subscription": sub, **kw}


# SPEC section 7's worked example (A, B) and two more customers, R and X; every seat is 100/month.
DOC = {
    "accounts": ACCOUNTS + [{"id": "R", "name": "Customer R"}, {"id": "X", "name": "Customer X"}],
    "products": PRODUCTS,
    "orders": [
        _order("O-1", "A", "2023-01-01", _line("OP-001", "new", "S-001", quantity=10, unit_price="100",
                                               start="2023-01-15", end="2024-01-14")),
        _order("O-2", "B", "2023-01-20", {"id": "OP-002", "action": "new", "product": "PLAN", "subscription": "S-002",
                                          "quantity": 1, "unit_price": "2000", "start": "2023-02-01",
                                          "end": "2023-04-30"}),
        _order("O-3", "A", "2023-02-01", _line("OP-003", "update", "S-001", quantity=16, start="2023-04-01")),
        _order("O-R1", "R", "2023-01-01", _line("R-1", "new", "S-R", quantity=1, unit_price="100",
                                                start="2023-01-01", end="2023-06-30")),
        _order("O-X1", "X", "2023-01-01", _line("X-1", "new", "S-X", quantity=10, unit_price="100",
                                                start="2023-01-01", end="2023-12-31")),
        _order("O-X2", "X", "2023-04-20", _line("X-2", "update", "S-X", quantity=6, start="2023-05-01")),
        _order("O-R2", "R", "2023-06-01", _line("R-2", "renew", "S-R", term_months=6, unit_price="120")),
        _order("O-X3", "X", "2023-10-01", _line("X-3", "cancel", "S-X", start="2023-10-16")),
        _order("O-4", "A", "2023-12-01", _line("OP-004", "renew", "S-001", term_months=12, unit_price="75")),
        _order("O-R3", "R", "2024-03-01", _line("R-3", "new", "S-R3", quantity=1, unit_price="50",
                                                start="2024-03-10", end="2024-06-09")),
    ],
}
RANGE = ("--from", "2023-01-01", "--to", "2024-06-30")
RUNS = {
    "quarters": ("report", "arr-movements", "--by", "quarter", *RANGE, "-f", "json"),
    "arr": ("report", "arr", "--by", "quarter", *RANGE, "-f", "json"),
    "customers": ("report", "arr-movements", "--by", "quarter", "--per-customer", "--from", "2023-04-01",
                  "--to", "2023-06-30", "-f", "json"),
    "months_r": ("report", "arr-movements", "--by", "month", "--customer", "R", "-f", "json"),
    "year": ("report", "arr-movements", "--by", "year", "-f", "json"),
    "csv": ("report", "arr-movements", "--by", "year", "-f", "csv"),
}
KEYS = ["period_start", "period_end", "period_label", "currency", "opening_arr", "new_arr", "expansion_arr",
        "contraction_arr", "churn_arr", "reactivation_arr", "renewal_boundary_arr", "closing_arr"]
MOVES = KEYS[4:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    wd = workdir(tmp_path_factory.mktemp("movements"), "wd")
    write_doc(wd / "doc.json", DOC)
    (imported,) = run_all([Call(wd, ("import", "doc.json"))])
    assert imported.code == 0, imported.stderr
    return dict(zip(RUNS, run_all([Call(wd, args) for args in RUNS.values()])))


def _table(rows, *lead):
    return [tuple(r[k] for k in lead) + tuple(r[k] for k in MOVES) for r in rows]


# Monthly ARR per customer (12 × CMRR):
#   A: Jan 0 → 12,000 (new); Apr +600 CMRR: 12,000 → 19,200 (expansion 7,200);
#      Jan 2024: S-001 ends 01-14, renewed from 01-15 at 16 × 75 = 1,200/month: 19,200 → 14,400 (contraction −4,800).
#   B: Feb 0 → 24,000 (new); ends 04-30: Apr 24,000 → 0 (churn).
#   R: Jan 0 → 1,200 (new); ends 06-30, the last day of June, and is renewed from 07-01 at 120/month:
#      June closes at 0 (SPEC: what is lost on a period's last day is not in its closing), so the
#      1,200 lapses only at the boundary: June −1,200 renewal_boundary; July +1,200 renewal_boundary
#      and 1,200 → 1,440 expansion 240. The renewal ends 12-31 with no renewal: Dec churn −1,440.
#      March 2024: S-R3 at 50/month from 03-10: 0 → 600, a returning customer (reactivation); it
#      ends 06-09: June 2024 churn −600.
#   X: Jan 0 → 12,000 (new); May down to 6 seats: 12,000 → 7,200 (contraction −4,800);
#      cancelled from 10-16: Oct 7,200 → 0 (churn).
QUARTERS = [
    # period,     opening,   new,       expansion, contraction, churn,     reactiv., boundary,  closing
    ("2023-01-01", "0.00", "49200.00", "0.00", "0.00", "0.00", "0.00", "0.00", "49200.00"),
    # 49,200 + 7,200 − 4,800 − 24,000 − 1,200 = 26,400
    ("2023-04-01", "49200.00", "0.00", "7200.00", "-4800.00", "-24000.00", "0.00", "-1200.00", "26400.00"),
    # 26,400 + 240 + 1,200 = 27,840
    ("2023-07-01", "26400.00", "0.00", "240.00", "0.00", "0.00", "0.00", "1200.00", "27840.00"),
    # 27,840 − 7,200 (X) − 1,440 (R) = 19,200
    ("2023-10-01", "27840.00", "0.00", "0.00", "0.00", "-8640.00", "0.00", "0.00", "19200.00"),
    # 19,200 − 4,800 + 600 = 15,000
    ("2024-01-01", "19200.00", "0.00", "0.00", "-4800.00", "0.00", "600.00", "0.00", "15000.00"),
    ("2024-04-01", "15000.00", "0.00", "0.00", "0.00", "-600.00", "0.00", "0.00", "14400.00"),
]


def test_quarters_explain_every_change(runs):
    rows = runs["quarters"].json()
    assert all(list(r) == KEYS for r in rows)
    assert {r["currency"] for r in rows} == {"USD"}
    assert _table(rows, "period_start") == QUARTERS


def test_opening_and_closing_are_report_arrs(runs):
    arr = runs["arr"].json()
    moves = runs["quarters"].json()
    assert [(a["period_start"], a["opening_arr"], a["closing_arr"]) for a in arr] == \
        [(m["period_start"], m["opening_arr"], m["closing_arr"]) for m in moves]
    # report arr itself keeps its keys (issue 10 added period_label and currency): the literal
    # change categories of SPEC section 7
    assert list(arr[0]) == ["period_start", "period_end", "period_label", "currency", "opening_cmrr", "closing_cmrr",
                            "opening_arr", "closing_arr", "changes"]


def test_per_customer(runs):
    rows = runs["customers"].json()
    assert _table(rows, "customer") == [
        ("A", "12000.00", "0.00", "7200.00", "0.00", "0.00", "0.00", "0.00", "19200.00"),
        ("B", "24000.00", "0.00", "0.00", "0.00", "-24000.00", "0.00", "0.00", "0.00"),
        ("R", "1200.00", "0.00", "0.00", "0.00", "0.00", "0.00", "-1200.00", "0.00"),
        ("X", "12000.00", "0.00", "0.00", "-4800.00", "0.00", "0.00", "0.00", "7200.00")]


def test_months_of_one_customer(runs):
    rows = {r["period_start"]: r for r in runs["months_r"].json()}
    assert _table([rows["2023-06-01"], rows["2023-07-01"], rows["2023-12-01"], rows["2024-03-01"]], "period_start") == [
        ("2023-06-01", "1200.00", "0.00", "0.00", "0.00", "0.00", "0.00", "-1200.00", "0.00"),
        ("2023-07-01", "0.00", "0.00", "240.00", "0.00", "0.00", "0.00", "1200.00", "1440.00"),
        ("2023-12-01", "1440.00", "0.00", "0.00", "0.00", "-1440.00", "0.00", "0.00", "0.00"),
        ("2024-03-01", "0.00", "0.00", "0.00", "0.00", "0.00", "600.00", "0.00", "600.00")]
    # the months between hold no change: 1,440 from August to November, 0 in January and February 2024
    assert all(rows[m]["opening_arr"] == rows[m]["closing_arr"] for m in
               ("2023-08-01", "2023-09-01", "2023-10-01", "2023-11-01", "2024-01-01", "2024-02-01"))


def test_years_and_csv(runs):
    years = runs["year"].json()
    # 2023: new 49,200, expansion 7,440, contraction −4,800, churn −32,640 (B, X, R): 0 → 19,200;
    # the boundary renewal (−1,200 in June, +1,200 in July) cancels out within the year.
    # 2024: −4,800 + 600 − 600 = −4,800: 19,200 → 14,400. 2025: A's renewal ends 2025-01-14: churn.
    assert _table(years, "period_start") == [
        ("2023-01-01", "0.00", "49200.00", "7440.00", "-4800.00", "-32640.00", "0.00", "0.00", "19200.00"),
        ("2024-01-01", "19200.00", "0.00", "0.00", "-4800.00", "-600.00", "600.00", "0.00", "14400.00"),
        ("2025-01-01", "14400.00", "0.00", "0.00", "0.00", "-14400.00", "0.00", "0.00", "0.00")]
    assert runs["csv"].stdout.splitlines()[0] == ",".join(KEYS)
