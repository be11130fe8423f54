"""SPEC section 7's worked example imported by the real `revsync` command, read back from its reports."""
from __future__ import annotations

import csv
import io
import json

import pytest

from cli_support import (
    Call, all_reports, copy_store, months, revsync, run_all, snapshot, store_url, workdir,
)

pytestmark = pytest.mark.slow

ARR_BY_PERIOD_KEYS = ["order", "order_product", "customer", "customer_name", "owner", "owner_id", "subscription",
                      "product", "product_name", "change_category", "period_start", "period_end", "period_label",
                      "opening_cmrr", "closing_cmrr", "change_cmrr", "opening_arr", "closing_arr", "change_arr", "quantity",
                      "currency"]
# issue 10 added period_label (FY2023 Q1) to both, and currency to report arr
ARR_KEYS = ["period_start", "period_end", "period_label", "currency", "opening_cmrr", "closing_cmrr", "opening_arr",
            "closing_arr", "changes"]
SUBSCRIPTION_KEYS = ["subscription", "customer", "product", "start", "end", "quantity", "mrr", "arr", "tcv",
                     "bill_cycle_day", "status", "kind", "currency"]  # issue 9 added kind and currency
ACCOUNT_KEYS = ["account", "name", "tcv", "customer_since", "arr", "currency"]  # issue 9 added currency
ORDER_METRIC_KEYS = ["order", "order_product", "metric", "amount", "start", "end", "type", "generated_reason"]

QUARTERS = ("report", "arr", "--by", "quarter", "--owner", "Chloe", "--from", "2023-01-01", "--to", "2023-12-31")
REPORTS = {
    "arr_by_period": ("report", "arr-by-period", "-f", "json"),
    "quarters": (*QUARTERS, "-f", "json"),
    "months": ("report", "arr", "--by", "month", "--owner", "Chloe", "--from", "2023-01-01", "--to", "2024-01-31",
               "-f", "json"),
    "years": ("report", "arr", "--by", "year", "--from", "2023-06-15", "--to", "2024-02-01", "-f", "json"),
    "subscriptions": ("report", "subscriptions", "--as-of", "2023-04-15", "-f", "json"),
    "accounts": ("report", "accounts", "--as-of", "2023-03-01", "-f", "json"),
    "order_metrics": ("report", "order-metrics", "--order", "O-3", "-f", "json"),
    "arr_by_period_csv": ("report", "arr-by-period", "-f", "csv"),
    "subscriptions_table": ("report", "subscriptions", "--as-of", "2023-04-15", "-f", "table"),
}


def _money(x: int | float | str) -> str:
    return f"{float(x):.2f}"


@pytest.fixture(scope="module")
def example(worked_store, tmp_path_factory) -> dict:
    """The worked example's store, and every report read once (with the demo run beside them)."""
    root = tmp_path_factory.mktemp("reports")
    wd, doc, first = worked_store["wd"], worked_store["doc"], worked_store["import"]
    demo_dir = root / "demo"
    demo_dir.mkdir()
    results = run_all([Call(wd, args) for args in REPORTS.values()] + [Call(demo_dir, ("demo", "-f", "json"))])
    reports = dict(zip(REPORTS, results))
    return {"root": root, "wd": wd, "doc": doc, "import": first, "reports": reports, "demo": results[-1],
            "demo_dir": demo_dir}


def _expected_rows() -> list[tuple[str, str, str, str, str]]:
    """(order line, period start, period end, opening CMRR, closing CMRR): SPEC section 7's table."""
    rows = []
    for start, end in months("2023-01", "2024-01"):
        opening = 0 if start == "2023-01-01" else 1000
        closing = 0 if start == "2024-01-01" else 1000
        rows.append(("OP-001", start, end, opening, closing))
    rows += [("OP-002", "2023-02-01", "2023-02-28", 0, 2000), ("OP-002", "2023-03-01", "2023-03-31", 2000, 2000),
             ("OP-002", "2023-04-01", "2023-04-30", 2000, 0)]
    for start, end in months("2023-04", "2024-01"):
        rows.append(("OP-003", start, end, 0 if start == "2023-04-01" else 600, 0 if start == "2024-01-01" else 600))
    return rows


def test_import_reports_what_it_did(example):
    assert "3 order(s) activated" in example["import"].stdout


def test_arr_by_period_has_every_monthly_row_of_the_spec(example):
    rows = example["reports"]["arr_by_period"].json()
    assert all(list(r) == ARR_BY_PERIOD_KEYS for r in rows)
    got = [(r["order_product"], r["period_start"], r["period_end"], r["opening_cmrr"], r["closing_cmrr"])
           for r in rows]
    expected = [(line, s, e, _money(o), _money(c)) for line, s, e, o, c in _expected_rows()]
    assert sorted(got) == sorted(expected)
    for r in rows:
        assert r["change_cmrr"] == _money(float(r["closing_cmrr"]) - float(r["opening_cmrr"]))
        assert r["opening_arr"] == _money(12 * float(r["opening_cmrr"]))
        assert r["closing_arr"] == _money(12 * float(r["closing_cmrr"]))
        assert r["change_arr"] == _money(12 * float(r["change_cmrr"]))
        assert r["currency"] == "USD" and r["owner"] == "Chloe"
    by_line = {r["order_product"]: r for r in rows}
    assert {k: by_line["OP-001"][k] for k in ("order", "customer", "customer_name", "subscription", "product",
                                              "product_name", "change_category")} == {
        "order": "O-1", "customer": "A", "customer_name": "Customer A", "subscription": "S-001",
        "product": "SEAT", "product_name": "Platform seat", "change_category": "New Business"}
    assert by_line["OP-002"]["change_category"] == "New Business"
    assert by_line["OP-003"]["change_category"] == "Upsell/Expansion"
    assert by_line["OP-003"]["subscription"] == "S-001"
    assert float(by_line["OP-003"]["quantity"]) == 16  # the new total of an update
    assert float(by_line["OP-001"]["quantity"]) == 10


def test_chloes_quarters(example):
    rows = example["reports"]["quarters"].json()
    assert all(list(r) == ARR_KEYS for r in rows)
    assert [(r["period_start"], r["period_end"], r["opening_cmrr"], r["closing_cmrr"]) for r in rows] == [
        ("2023-01-01", "2023-03-31", "0.00", "3000.00"), ("2023-04-01", "2023-06-30", "3000.00", "1600.00"),
        ("2023-07-01", "2023-09-30", "1600.00", "1600.00"), ("2023-10-01", "2023-12-31", "1600.00", "1600.00")]
    assert [(r["opening_arr"], r["closing_arr"]) for r in rows] == [
        ("0.00", "36000.00"), ("36000.00", "19200.00"), ("19200.00", "19200.00"), ("19200.00", "19200.00")]
    # changes by category add up to closing − opening
    q1, q2 = rows[0]["changes"], rows[1]["changes"]
    assert {k: float(v) for k, v in q1.items() if float(v)} == {"New Business": 3000}
    assert {k: float(v) for k, v in q2.items() if float(v)} == {"New Business": -2000, "Upsell/Expansion": 600}
    for r in rows:
        assert sum(float(v) for v in r["changes"].values()) == pytest.approx(
            float(r["closing_cmrr"]) - float(r["opening_cmrr"]))


def test_months_and_years(example):
    rows = example["reports"]["months"].json()
    expected_months = months("2023-01", "2024-01")
    assert [(r["period_start"], r["period_end"]) for r in rows] == expected_months
    closing = {"2023-01-01": 1000, "2023-02-01": 3000, "2023-03-01": 3000, "2023-04-01": 1600,
               "2024-01-01": 0}
    previous = 0.0
    for r in rows:
        assert float(r["opening_cmrr"]) == previous  # opening(m) = closing(m − 1)
        previous = float(r["closing_cmrr"])
        assert previous == closing.get(r["period_start"], 1600)
    years = example["reports"]["years"].json()
    # --from/--to inside a year widen to whole fiscal years
    assert [(r["period_start"], r["period_end"], r["opening_cmrr"], r["closing_cmrr"]) for r in years] == [
        ("2023-01-01", "2023-12-31", "0.00", "1600.00"), ("2024-01-01", "2024-12-31", "1600.00", "0.00")]
    assert {k: float(v) for k, v in years[0]["changes"].items()} == {"New Business": 1000, "Upsell/Expansion": 600}


def test_subscriptions_as_of(example):
    rows = example["reports"]["subscriptions"].json()
    assert all(list(r) == SUBSCRIPTION_KEYS for r in rows)
    by_id = {r["subscription"]: r for r in rows}
    assert set(by_id) == {"S-001", "S-002"}
    s1, s2 = by_id["S-001"], by_id["S-002"]
    assert (s1["customer"], s1["product"], s1["start"], s1["end"]) == ("A", "SEAT", "2023-01-15", "2024-01-14")
    assert (s1["mrr"], s1["arr"], s1["tcv"], s1["status"]) == ("1600.00", "19200.00", "17670.97", "active")
    assert float(s1["quantity"]) == 16 and s1["bill_cycle_day"] == 1
    assert (s2["mrr"], s2["arr"], s2["tcv"], s2["status"]) == ("2000.00", "24000.00", "6000.00", "active")


def test_accounts_as_of(example):
    rows = example["reports"]["accounts"].json()
    assert all(list(r) == ACCOUNT_KEYS for r in rows)
    by_id = {r["account"]: r for r in rows}
    assert by_id["A"] == {"account": "A", "name": "Customer A", "tcv": "17670.97", "customer_since": "2023-01-15",
                          "arr": "12000.00", "currency": "USD"}
    assert by_id["B"] == {"account": "B", "name": "Customer B", "tcv": "6000.00", "customer_since": "2023-02-01",
                          "arr": "24000.00", "currency": "USD"}


def test_order_metrics_of_the_upsell(example):
    rows = example["reports"]["order_metrics"].json()
    assert all(list(r) == ORDER_METRIC_KEYS for r in rows)
    assert {r["order"] for r in rows} == {"O-3"}
    by_metric = {r["metric"]: r for r in rows}
    assert set(by_metric) == {"mrr", "tcv", "tcb", "elp", "quantity"}
    for r in rows:
        assert (r["start"], r["end"], r["type"], r["generated_reason"]) == (
            "2023-04-01", "2024-01-14", "Regular", "IncreaseQuantity")
    assert by_metric["mrr"]["amount"] == "600.00"
    assert by_metric["tcv"]["amount"] == "5670.97"  # 600 × (9 + 14/31)
    assert float(by_metric["quantity"]["amount"]) == 6
    # monthly billing from the bill cycle day 1: nine whole months and 14 days of January
    assert by_metric["tcb"]["amount"] == "5670.97"
    # list price 100 × 6 more seats × (9 + 14/31) months
    assert by_metric["elp"]["amount"] == "5670.97"


def test_csv_header_is_the_json_keys(example):
    reports = example["reports"]
    rows = list(csv.DictReader(io.StringIO(reports["arr_by_period_csv"].stdout)))
    header = reports["arr_by_period_csv"].stdout.splitlines()[0].split(",")
    assert header == ARR_BY_PERIOD_KEYS
    as_json = reports["arr_by_period"].json()
    assert rows == [{k: "" if v is None else str(v) for k, v in r.items()} for r in as_json]


def test_table_format(example):
    out = example["reports"]["subscriptions_table"]
    assert out.code == 0, out.stderr
    assert "subscription" in out.stdout and "17670.97" in out.stdout and "S-002" in out.stdout
    # a table on a pipe is not cut to 80 columns: whole rows stay on one line
    assert any("S-001" in line and "17670.97" in line and "active" in line for line in out.stdout.splitlines())


def test_importing_the_same_file_again_changes_nothing(example, tmp_path):
    wd = workdir(tmp_path, "again")
    copy_store(example["wd"], wd)
    before_tables, before_reports = snapshot(store_url(wd)), all_reports(store_url(wd))
    again = revsync(wd, "import", str(example["doc"]))
    assert again.code == 0, again.stderr
    assert "0 order(s) activated, 3 already imported" in again.stdout
    assert snapshot(store_url(wd)) == before_tables
    assert all_reports(store_url(wd)) == before_reports
    # the in-process reading is the command's own: same rows as `revsync report arr-by-period -f json`
    assert json.loads(before_reports["arr_by_period"]) == example["reports"]["arr_by_period"].json()


def test_demo_prints_chloes_quarters(example):
    out = example["demo"]
    assert out.code == 0, out.stderr
    document = json.loads(out.stdout)  # one JSON document, no prose around it
    quarters = document["worked_example"]["chloe_quarters_2023"]
    assert document["worked_example"]["orders_activated"] == 3
    assert len(document["worked_example"]["arr_by_period"]) > 0
    sandbox = document["sandbox"]
    assert sandbox["figures"]["engine_order_status"] == "Activated" and sandbox["figures"]["left"] == {}
    # the same quarters from the orders read from Salesforce
    from_sf = sandbox["tables"]["Chloe's quarters of fiscal 2023, from the orders read from Salesforce"]
    assert [(q["opening_cmrr"], q["closing_cmrr"]) for q in from_sf] == \
        [(q["opening_cmrr"], q["closing_cmrr"]) for q in quarters]
    assert [(q["period_start"], q["opening_cmrr"], q["closing_cmrr"]) for q in quarters] == [
        ("2023-01-01", "0.00", "3000.00"), ("2023-04-01", "3000.00", "1600.00"),
        ("2023-07-01", "1600.00", "1600.00"), ("2023-10-01", "1600.00", "1600.00")]
    assert not list(example["demo_dir"].iterdir())  # the demo's store was temporary
