"""Issue 9, from the user's side: an account that buys in two currencies (account metrics per
currency, `report arr --currency`, what the Account fields receive), `report credits`, and
assets and entitlements with their MRR/ARR/TCV (`report subscriptions --kind`).
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cli_support import Call, run_all, store_url, workdir, write_doc

pytestmark = pytest.mark.slow

DOC = {
    "accounts": [{"id": "M", "name": "Multi"}, {"id": "K", "name": "Kredit"}, {"id": "Z", "name": "No orders"}],
    "products": [
        {"id": "SEAT", "name": "Seat", "provisioning": "subscription", "list_price": "100", "price_period": "month"},
        {"id": "BOX", "name": "Box", "provisioning": "asset", "list_price": "500", "price_period": "one_time"},
        {"id": "SUP", "name": "Support", "provisioning": "entitlement", "list_price": "1200", "price_period": "year"}],
    "credits": [{"account": "K", "currency": "USD", "amount": "500"},
                {"account": "M", "currency": "EUR", "amount": "100"}],
    "orders": [
        # M's first order is in USD: USD is M's own currency
        {"id": "O-USD", "account": "M", "owner": "Ann", "booked_on": "2023-01-01", "currency": "USD",
         "lines": [{"id": "L-1", "action": "new", "product": "SEAT", "subscription": "S-1", "quantity": 10,
                    "unit_price": "100", "start": "2023-01-01", "end": "2023-12-31"}]},
        {"id": "O-EUR", "account": "M", "owner": "Ann", "booked_on": "2023-03-01", "currency": "EUR",
         "lines": [{"id": "L-2", "action": "new", "product": "SEAT", "subscription": "S-2", "quantity": 2,
                    "unit_price": "250", "start": "2023-04-01", "end": "2023-09-30"},
                   {"id": "L-3", "action": "new", "product": "SUP", "subscription": "E-3", "quantity": 1,
                    "start": "2023-04-01", "end": "2024-03-31"},
                   {"id": "L-4", "action": "new", "product": "BOX", "subscription": "A-4", "quantity": 1,
                    "start": "2023-04-01", "end": "2023-04-01", "credit_eligible": True}]},
        {"id": "O-K1", "account": "K", "owner": "Bob", "booked_on": "2023-01-01", "currency": "USD",
         "lines": [{"id": "L-5", "action": "new", "product": "SEAT", "subscription": "S-5", "quantity": 1,
                    "unit_price": "100", "start": "2023-01-01", "end": "2023-03-31", "credit_eligible": True}]},
        {"id": "O-K2", "account": "K", "owner": "Bob", "booked_on": "2023-02-01", "currency": "USD",
         "lines": [{"id": "L-6", "action": "new", "product": "SEAT", "subscription": "S-6", "quantity": 4,
                    "unit_price": "100", "start": "2023-02-01", "end": "2023-02-28", "credit_eligible": True}]},
    ],
}

RUNS = {
    "accounts": ("report", "accounts", "--as-of", "2023-06-30", "-f", "json"),
    "subs": ("report", "subscriptions", "--as-of", "2023-06-30", "--customer", "M", "-f", "json"),
    "items": ("report", "subscriptions", "--as-of", "2023-06-30", "--kind", "all", "--customer", "M", "-f", "json"),
    "entitlements": ("report", "subscriptions", "--as-of", "2023-06-30", "--kind", "entitlement", "-f", "json"),
    "arr_mixed": ("report", "arr", "-f", "json"),
    "arr_eur": ("report", "arr", "--currency", "eur", "-f", "json"),
    "arr_usd_m": ("report", "arr", "--customer", "M", "--currency", "USD", "--by", "year", "-f", "json"),
    "arr_gbp": ("report", "arr", "--currency", "GBP", "-f", "json"),
    "moves_eur": ("report", "arr-movements", "--currency", "EUR", "-f", "json"),
    "credits": ("report", "credits", "-f", "json"),
    "entries": ("report", "credits", "--entries", "--customer", "K", "-f", "json"),
    "entries_csv": ("report", "credits", "--entries", "-f", "csv"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    wd = workdir(tmp_path_factory.mktemp("currency"), "wd")
    write_doc(wd / "doc.json", DOC)
    (imported,) = run_all([Call(wd, ("import", "doc.json"))])
    assert imported.code == 0, imported.stderr
    names = list(RUNS)
    return {"wd": wd, **dict(zip(names, run_all([Call(wd, RUNS[n]) for n in names])))}


def test_an_account_has_its_metrics_in_each_currency(runs):
    rows = runs["accounts"].json()
    # M in USD: S-1, 10 × 100 = 1,000/month for 12 months: TCV 12,000.00; ARR on 06-30 12 × 1,000 = 12,000.00
    # M in EUR: S-2 2 × 250 = 500/month × 6 months = 3,000; E-3 1,200/year × 12 months = 1,200; A-4 one-time 500:
    #   TCV 3,000 + 1,200 + 500 = 4,700.00; ARR on 06-30: 12 × (500 + 100) = 7,200.00
    # (before issue 9: one row, TCV 16,700 and ARR 19,200 "in USD")
    # K: S-5 100 × 3 = 300 and S-6 400 × 1 = 400: TCV 700.00; nothing active on 06-30
    # Z has no order: one row, no currency
    assert [(r["account"], r["currency"], r["tcv"], r["arr"]) for r in rows] == [
        ("K", "USD", "700.00", "0.00"), ("M", "USD", "12000.00", "12000.00"), ("M", "EUR", "4700.00", "7200.00"),
        ("Z", None, "0.00", "0.00")]
    assert all(list(r) == ["account", "name", "tcv", "customer_since", "arr", "currency"] for r in rows)


def test_the_account_fields_hold_the_accounts_own_currency(runs):
    """What the write-back sends to Account.TCV__c / ARR__c: the figures of the first order's currency."""
    from sqlalchemy import create_engine

    from connector.projections import account_values

    engine = create_engine(store_url(runs["wd"]))
    try:
        with engine.connect() as conn:
            values = account_values(conn, ["M", "K"], dt.date(2023, 6, 30))
    finally:
        engine.dispose()
    assert sorted((v["id"], v["currency"], v["tcv"], v["arr"]) for v in values) == [
        ("K", "USD", Decimal("700.00"), Decimal("0.00")), ("M", "USD", Decimal("12000.00"), Decimal("12000.00"))]


def test_subscriptions_show_their_currency_and_kind(runs):
    subs = runs["subs"].json()
    assert [(r["subscription"], r["kind"], r["currency"], r["arr"]) for r in subs] == [
        ("S-1", "subscription", "USD", "12000.00"), ("S-2", "subscription", "EUR", "6000.00")]


def test_assets_and_entitlements_with_their_mrr_arr_and_tcv(runs):
    items = runs["items"].json()
    # one-time 500: no MRR, TCV 500.00. E-3: 1,200/year = 100.00 MRR, 1,200.00 ARR and TCV.
    assert [(r["subscription"], r["kind"], r["mrr"], r["arr"], r["tcv"], r["status"]) for r in items] == [
        ("A-4", "asset", "0.00", "0.00", "500.00", "expired"),
        ("E-3", "entitlement", "100.00", "1200.00", "1200.00", "active"),
        ("S-1", "subscription", "1000.00", "12000.00", "12000.00", "active"),
        ("S-2", "subscription", "500.00", "6000.00", "3000.00", "active")]
    assert [r["subscription"] for r in runs["entitlements"].json()] == ["E-3"]


def test_report_arr_chooses_a_currency(runs):
    mixed = runs["arr_mixed"]
    assert mixed.code == 2 and "several currencies (EUR, USD)" in mixed.errors and "--currency" in mixed.errors
    # EUR: S-2 500 CMRR 04-01..09-30, E-3 100 CMRR 2023-04-01..2024-03-31 (A-4 one-time has no rows)
    # Q2: 0 → 600 (7,200 ARR); Q3: S-2 lost on 09-30: 600 → 100; Q4 100 → 100; Q1 2024: E-3 lost on 03-31: 100 → 0
    rows = runs["arr_eur"].json()
    assert [(r["period_start"], r["opening_arr"], r["closing_arr"]) for r in rows] == [
        ("2023-04-01", "0.00", "7200.00"), ("2023-07-01", "7200.00", "1200.00"),
        ("2023-10-01", "1200.00", "1200.00"), ("2024-01-01", "1200.00", "0.00")]
    # M in USD over 2023: S-1 1,000 CMRR added on 01-01 and lost on 12-31: 0 → 0, New Business +1,000 −1,000
    assert [(r["opening_cmrr"], r["closing_cmrr"], r["changes"]) for r in runs["arr_usd_m"].json()] == [
        ("0.00", "0.00", {"New Business": "0.00"})]
    gbp = runs["arr_gbp"]
    assert gbp.code == 2 and "--currency GBP" in gbp.errors and "EUR, USD" in gbp.errors


def test_movements_in_one_currency(runs):
    rows = runs["moves_eur"].json()
    # M in EUR: Q2 new 7,200; Q3 contraction −6,000 (S-2 ends, E-3 stays); Q1 2024 churn −1,200
    assert [(r["opening_arr"], r["new_arr"], r["contraction_arr"], r["churn_arr"], r["closing_arr"], r["currency"])
            for r in rows] == [
        ("0.00", "7200.00", "0.00", "0.00", "7200.00", "EUR"), ("7200.00", "0.00", "-6000.00", "0.00", "1200.00", "EUR"),
        ("1200.00", "0.00", "0.00", "0.00", "1200.00", "EUR"), ("1200.00", "0.00", "0.00", "-1200.00", "0.00", "EUR")]


def test_report_credits(runs):
    # K: 500 USD granted; L-5 (TCV 300) draws 300, L-6 (TCV 400) the 200 left (net 200 to pay): balance 0.
    # M: 100 EUR granted; A-4 (TCV 500, credit-eligible) draws 100, net 400: balance 0.
    assert runs["credits"].json() == [
        {"account": "K", "currency": "USD", "granted": "500.00", "drawn": "500.00", "balance": "0.00"},
        {"account": "M", "currency": "EUR", "granted": "100.00", "drawn": "100.00", "balance": "0.00"}]
    assert [(e["entry"], e["credit"], e["order"], e["order_product"], e["amount"], e["line_net_amount"], e["balance"])
            for e in runs["entries"].json()] == [
        ("grant", "K:USD", None, None, "500.00", None, "500.00"),
        ("drawdown", None, "O-K1", "L-5", "-300.00", "0.00", "200.00"),
        ("drawdown", None, "O-K2", "L-6", "-200.00", "200.00", "0.00")]
    assert runs["entries_csv"].stdout.splitlines()[0] == \
        "account,currency,entry,credit,order,order_product,amount,line_net_amount,balance"
