"""Filters that match nothing say so; `--owner` in any case or by one word of the name; CSV always
has its header, and `report arr -f csv` every change category (issue 10)."""
from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from cli_support import Call, run_all, workdir, write_doc

from connector.reports import CATEGORIES

WIDTHS = ({"COLUMNS": "80"}, {"COLUMNS": "120"})


def _run(calls: list[Call]) -> list:
    """Run the commands a few at a time (two cores, shared)."""
    out = []
    for k in range(0, len(calls), 4):
        out += run_all(calls[k:k + 4])
    return out


@pytest.mark.parametrize("env", WIDTHS, ids=["80", "120"])
def test_filters_that_match_nothing_exit_2_naming_filter_value_and_known_values(worked_store, env):
    wd = worked_store["wd"]
    calls = [("report", "arr", "--owner", "NOPE"), ("report", "arr-by-period", "--owner", "NOPE"),
             ("report", "arr-movements", "--owner", "NOPE", "-f", "csv"),
             ("report", "arr", "--customer", "NOPE"), ("report", "arr-by-period", "--customer", "NOPE"),
             ("report", "arr-movements", "--customer", "NOPE"), ("report", "subscriptions", "--customer", "NOPE"),
             ("report", "credits", "--customer", "NOPE")]
    results = _run([Call(wd, args, env) for args in calls])
    for args, result in zip(calls, results):
        option = args[2]
        assert result.code == 2, (args, result.stdout, result.stderr)
        assert result.stdout == "", "nothing printed as if it were an (empty) report"
        assert result.stderr.startswith(f"error: report {args[1]}: 1 problem(s)")
        if option == "--owner":
            assert "--owner NOPE: no order owner 'NOPE' in the store" in result.errors, result.stderr
            assert "order owners in the store" in result.errors and ": Chloe" in result.errors
        else:
            assert "--customer NOPE: no account 'NOPE' in the store" in result.errors, result.stderr
            # a few known values, each id with its name, on one line whatever the width
            assert "account ids in the store (case-sensitive; `revsync report accounts`): " \
                   "A (Customer A), B (Customer B)" in result.stderr


def test_the_closest_known_value_is_suggested(worked_store):
    wd = worked_store["wd"]
    owner, customer, by_name, order = run_all([
        Call(wd, ("report", "arr", "--owner", "Chloé")), Call(wd, ("report", "arr", "--customer", "a")),
        Call(wd, ("report", "arr-by-period", "--customer", "Customer B")),
        Call(wd, ("report", "arr-by-period", "--order", "O-4"))])
    assert owner.code == customer.code == by_name.code == order.code == 2
    assert "(did you mean 'Chloe'?)" in owner.errors
    assert "no account 'a' in the store (did you mean 'A' (Customer A)?)" in customer.errors
    assert "no account 'Customer B' in the store (did you mean 'B' (Customer B)" in by_name.errors
    assert "no order 'O-4' in the store (did you mean" in order.errors and "'O-3'" in order.errors


def test_a_known_filter_with_no_rows_in_the_range_is_an_empty_report(worked_store):
    wd = worked_store["wd"]
    late = ("--from", "2030-01-01", "--to", "2030-03-31")
    movements, csv_out = run_all([
        Call(wd, ("report", "arr-by-period", "--customer", "B", "--order", "O-1", "-f", "json")),
        Call(wd, ("report", "arr-movements", "--customer", "B", "--owner", "Chloe", *late, "-f", "csv"))])
    assert movements.code == 0 and movements.json() == [], movements.stderr
    assert csv_out.code == 0, csv_out.stderr
    rows = list(csv.DictReader(io.StringIO(csv_out.stdout)))
    assert [(r["period_start"], r["opening_arr"], r["closing_arr"]) for r in rows] == [
        ("2030-01-01", "0.00", "0.00")]


def test_owner_by_name_in_any_case_or_one_word(worked_store):
    wd = worked_store["wd"]
    exact, lower, rows = run_all([Call(wd, ("report", "arr", "--owner", "Chloe", "-f", "json")),
                                  Call(wd, ("report", "arr", "--owner", " chloe ", "-f", "json")),
                                  Call(wd, ("report", "arr-by-period", "--owner", "CHLOE", "-f", "json"))])
    assert exact.json() == lower.json() and exact.json()
    by_period = rows.json()
    assert len(by_period) > 0
    # an owner given by name in the import file: the name, and no Salesforce User Id
    assert {(r["owner"], r["owner_id"]) for r in by_period} == {("Chloe", None)}
    assert list(by_period[0])[4:6] == ["owner", "owner_id"]


def _lines(text: str) -> list[str]:
    return text.splitlines()


REPORTS = {  # command → the CSV header it must print, rows or not
    ("report", "arr"): "period_start,period_end,period_label,currency,opening_cmrr,closing_cmrr,opening_arr,closing_arr,"
                       + ",".join(f"changes.{c}" for c in CATEGORIES),
    ("report", "arr-by-period"): "order,order_product,customer,customer_name,owner,owner_id,subscription,product,"
                                 "product_name,change_category,period_start,period_end,period_label,opening_cmrr,closing_cmrr,"
                                 "change_cmrr,opening_arr,closing_arr,change_arr,quantity,currency",
    ("report", "arr-movements"): "period_start,period_end,period_label,currency,opening_arr,new_arr,expansion_arr,"
                                 "contraction_arr,churn_arr,reactivation_arr,renewal_boundary_arr,closing_arr",
    ("report", "arr-movements", "--per-customer"): "period_start,period_end,period_label,customer,currency,opening_arr,new_arr,"
                                                   "expansion_arr,contraction_arr,churn_arr,reactivation_arr,"
                                                   "renewal_boundary_arr,closing_arr",
    ("report", "subscriptions", "--as-of", "2023-06-01"): "subscription,customer,product,start,end,quantity,mrr,arr,"
                                                          "tcv,bill_cycle_day,status,kind,currency",
    ("report", "accounts"): "account,name,tcv,customer_since,arr,currency",
    ("report", "credits"): "account,currency,granted,drawn,balance",
    ("report", "credits", "--entries"): "account,currency,entry,credit,order,order_product,amount,"
                                        "line_net_amount,balance",
    ("report", "order-metrics"): "order,order_product,metric,amount,start,end,type,generated_reason",
    ("report", "drafts"): "order,account,quote,start,lines,quantity,saved",
    ("jobs",): "id,order,kind,status,attempts,error,updated_at",
    ("quarantine",): "object,record_id,reason,system_modstamp,first_seen,last_seen,released_at",
    ("outbox",): "id,object,external_id,kind,order,state,attempts,last_message,sf_id,updated_at",
}


def test_csv_has_its_header_with_rows_or_without(worked_store, tmp_path):
    empty = workdir(tmp_path, "empty")  # a store with a product and no account, no order
    doc = write_doc(empty / "catalogue.json", {"products": [
        {"id": "SEAT", "name": "Seat", "provisioning": "subscription", "list_price": "100", "price_period": "month"}]})
    assert run_all([Call(empty, ("import", str(doc)))])[0].code == 0
    commands = list(REPORTS)
    results = _run([Call(wd, (*args, "-f", "csv")) for wd in (empty, worked_store["wd"]) for args in commands])
    without, with_rows = results[:len(commands)], results[len(commands):]
    for args, result in zip(commands, without):
        assert result.code == 0, (args, result.stderr)
        assert _lines(result.stdout) == [REPORTS[args]], (args, result.stdout)
    for args, result in zip(commands, with_rows):
        assert result.code == 0, (args, result.stderr)
        # the header of a report with rows is the same one: whoever adds a column adds it to both
        assert _lines(result.stdout)[0] == REPORTS[args], (args, result.stdout[:300])
    had_rows = [args for args, r in zip(commands, with_rows) if len(_lines(r.stdout)) > 1]
    assert len(had_rows) >= 8, had_rows  # the header comparison above is not only about empty reports
    empty_json = run_all([Call(empty, ("report", "arr", "-f", "json"))])[0]
    assert empty_json.json() == []


@pytest.mark.parametrize("by", ["month", "quarter", "year"])
def test_arr_csv_has_every_change_category_in_a_fixed_order(worked_store, by):
    wd = worked_store["wd"]
    as_csv, as_json = run_all([Call(wd, ("report", "arr", "--by", by, "-f", "csv")),
                               Call(wd, ("report", "arr", "--by", by, "-f", "json"))])
    assert as_csv.code == 0, as_csv.stderr
    reader = csv.DictReader(io.StringIO(as_csv.stdout))
    assert [c for c in reader.fieldnames if c.startswith("changes.")] == [f"changes.{c}" for c in CATEGORIES]
    rows, documents = list(reader), as_json.json()
    assert len(rows) == len(documents) > 0
    for row, doc in zip(rows, documents):
        for category in CATEGORIES:
            # the JSON has the categories with data; the CSV every one, 0.00 where there is none
            assert row[f"changes.{category}"] == doc["changes"].get(category, "0.00")
        assert sum(Decimal(row[f"changes.{c}"]) for c in CATEGORIES) == \
            Decimal(row["closing_cmrr"]) - Decimal(row["opening_cmrr"])
    assert any(r["changes.Cross Sell"] == "0.00" for r in rows)  # a category the example never has


def test_demo_csv_quarters_have_every_change_category(tmp_path):
    wd = workdir(tmp_path, "demo", config=None)
    [demo] = run_all([Call(wd, ("demo", "--no-sandbox", "-f", "csv"))])
    assert demo.code == 0, demo.stderr
    headers = [line for line in demo.stdout.splitlines() if "opening_cmrr" in line and "changes." in line]
    assert len(headers) == 1, demo.stdout  # Chloe's quarters: the one table with change categories
    assert [c for c in headers[0].split(",") if c.startswith("changes.")] == [f"changes.{c}" for c in CATEGORIES]
