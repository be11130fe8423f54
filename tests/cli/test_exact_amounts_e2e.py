"""Issue 9 from the user's side: `revsync import`, then the reports. Amounts are rounded once from the
exact value after a round trip through the store, and a yearly-billed line's TCB is the monthly one's."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select

from cli_support import revsync, store_url, workdir, write_doc
from connector.store import schema as t

pytestmark = pytest.mark.slow

DOC = {
    "accounts": [{"id": "A", "name": "Customer A", "bill_cycle_day": 15}],
    "products": [
        {"id": "ANNUAL", "name": "Annual licence", "provisioning": "subscription", "list_price": "1000",
         "price_period": "year"},
        {"id": "TINY", "name": "Per-call", "provisioning": "subscription", "list_price": "0.000000000006",
         "price_period": "year"},
        {"id": "ODD", "name": "Odd monthly", "provisioning": "subscription", "list_price": "2.0049999995",
         "price_period": "month"},
        {"id": "SEAT", "name": "Seat", "provisioning": "subscription", "list_price": "100", "price_period": "month"},
    ],
    "orders": [{"id": "O-1", "account": "A", "owner": "Chloe", "booked_on": "2023-01-01", "currency": "USD", "lines": [
        # 1000 a year: MRR 250/3 = 83.33, ARR 1000.00, TCV 12 months = 1000.00
        {"id": "L-ANNUAL", "action": "new", "product": "ANNUAL", "subscription": "S-ANNUAL",
         "start": "2023-01-15", "end": "2024-01-14"},
        # 10^9 × 0.000000000006 a year = 0.006 a year: MRR 0.0005 → 0.00, ARR 0.006 → 0.01, TCV 0.006 → 0.01
        {"id": "L-TINY", "action": "new", "product": "TINY", "subscription": "S-TINY", "quantity": 1000000000,
         "start": "2023-01-15", "end": "2024-01-14"},
        # 2.0049999995 a month for 3 months: MRR 2.00, ARR 24.059999994 → 24.06, TCV 6.0149999985 → 6.01
        {"id": "L-ODD", "action": "new", "product": "ODD", "subscription": "S-ODD",
         "start": "2023-01-15", "end": "2023-04-14"},
        # 100 a month, billed yearly, bill cycle day 15, 2023-01-15..2023-04-14: exactly 3 months, TCB 300.00
        {"id": "L-Y", "action": "new", "product": "SEAT", "subscription": "S-Y", "billing_frequency": "year",
         "start": "2023-01-15", "end": "2023-04-14"},
        # the same billed monthly: 3 × 100 = 300.00
        {"id": "L-M", "action": "new", "product": "SEAT", "subscription": "S-M", "billing_frequency": "month",
         "start": "2023-01-15", "end": "2023-04-14"},
    ]}],
}

EXPECTED = {  # subscription: (mrr, arr, tcv) as of 2023-03-01
    "S-ANNUAL": ("83.33", "1000.00", "1000.00"),
    "S-TINY": ("0.00", "0.01", "0.01"),
    "S-ODD": ("2.00", "24.06", "6.01"),
    "S-Y": ("100.00", "1200.00", "300.00"),
    "S-M": ("100.00", "1200.00", "300.00"),
}


def test_exact_amounts_through_the_store(tmp_path):
    wd = workdir(tmp_path, "exact")
    write_doc(wd / "doc.json", DOC)
    assert revsync(wd, "import", "doc.json").code == 0
    subs = {s["subscription"]: (s["mrr"], s["arr"], s["tcv"])
            for s in revsync(wd, "report", "subscriptions", "--as-of", "2023-03-01", "-f", "json").json()}
    assert subs == EXPECTED
    tcb = {m["order_product"]: m["amount"] for m in revsync(wd, "report", "order-metrics", "-f", "json").json()
           if m["metric"] == "tcb"}
    assert (tcb["L-Y"], tcb["L-M"]) == ("300.00", "300.00")
    rows = [r for r in revsync(wd, "report", "arr-by-period", "-f", "json").json() if r["order_product"] == "L-ODD"]
    assert (rows[1]["opening_cmrr"], rows[1]["opening_arr"]) == ("2.00", "24.06")
    # the piece's monthly amount is kept exactly in the store: 1000/12 = 250/3
    engine = create_engine(store_url(wd))
    with engine.connect() as conn:
        text = conn.exec_driver_sql(
            "SELECT s.mrr FROM line_segments s JOIN order_lines l ON l.pk = s.line_pk WHERE l.id = 'L-ANNUAL'").scalar()
        mrr = conn.execute(select(t.line_segments.c.mrr).join(t.order_lines, t.order_lines.c.pk == t.line_segments.c.line_pk)
                           .where(t.order_lines.c.id == "L-ANNUAL")).scalar()
    engine.dispose()
    assert text == "250/3" and mrr * 3 == 250


def test_a_credit_is_stored_exactly_or_refused(tmp_path):
    # A grant is kept exactly (money columns hold units of 10**-4): 100.125 is stored as given, a
    # grant with more places is refused with what to do (it used to stop the import with a traceback).
    wd = workdir(tmp_path, "credit")
    write_doc(wd / "ok.json", {"accounts": [{"id": "A", "name": "A"}],
                               "credits": [{"id": "c1", "account": "A", "currency": "USD", "amount": "100.125"}]})
    assert revsync(wd, "import", "ok.json").code == 0
    engine = create_engine(store_url(wd))
    with engine.connect() as conn:
        assert str(conn.execute(select(t.credits.c.amount)).scalar()) == "100.1250"
    engine.dispose()
    write_doc(wd / "bad.json", {"credits": [{"id": "c2", "account": "A", "currency": "USD", "amount": "100.123456"}]})
    result = revsync(wd, "import", "bad.json")
    assert result.code == 2
    assert "credit c2, field amount: 100.123456 has more than 4 decimal places" in result.errors
