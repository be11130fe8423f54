"""Issue 9 through Salesforce: an account buying in two currencies gets the figures of its own
currency (its first order's) in its Account fields, never a sum across currencies.
`revsync sync --once` and `revsync import` run as processes against the sandbox org over HTTPS.
"""
from __future__ import annotations

import json

import pytest
from e2e_support import site, worked_seed


def test_account_fields_hold_the_first_orders_currency(tmp_path):
    with site(tmp_path, worked_seed()) as s:
        first = s.revsync("sync", "--once")
        assert first.code == 0, first
        a = s.refs["a"]
        # SPEC 7's worked example gives customer A 17,670.97 USD of TCV (12,000 + 5,670.97), in USD
        # (the seed's orders, A's first ones). A then buys in EUR: 5 seats × 100/month for 12
        # months = 6,000.00 EUR of TCV, which must not land in Account.TCV__c (23,670.97 before issue 9).
        (tmp_path / "eur.json").write_text(json.dumps({"orders": [{
            "id": "ENG-EUR", "account": a, "owner": "Chloe", "booked_on": "2023-05-15", "currency": "EUR",
            "lines": [{"id": "ENG-EUR-1", "action": "new", "product": s.refs["seat"], "quantity": 5,
                       "unit_price": "100", "start": "2023-06-01", "end": "2024-05-31"}]}]}))
        imported = s.revsync("import", "eur.json")
        assert imported.code == 0, imported
        second = s.revsync("sync", "--once")
        assert second.code == 0, second
        account = next(r for r in s.org.records("Account") if r["Id"] == a)
        assert account["TCV__c"] == pytest.approx(17670.97, abs=0.005)
        # the store keeps both, and the accounts report shows both, USD (A's own) first
        rows = json.loads(s.revsync("report", "accounts", "--as-of", "2023-07-01", "-f", "json").stdout)
        assert [(r["currency"], r["tcv"], r["arr"]) for r in rows if r["account"] == a] == [
            ("USD", "17670.97", "19200.00"), ("EUR", "6000.00", "6000.00")]
