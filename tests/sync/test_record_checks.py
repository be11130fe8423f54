"""Records from Salesforce get the checks an import file gets (issue 8): a bill cycle day of 45, a currency that
is no ISO code, a quantity or an amount the store cannot hold, an end before its start. Each bad record is held
in the quarantine with a reason naming the field; it blocks nothing else; fixed in Salesforce, it goes through."""
from __future__ import annotations

import shutil
from decimal import Decimal

import pytest
from sqlalchemy import select

from connector.clock import FrozenClock
from connector.engine import checks
from connector.engine.model import Account, Action, LineInput, OrderInput
from connector.sandbox.org import Org, OrgConfig
from connector.store import schema as t
from sync_support import (REPO, SEEDED_AT, SPEC_QUARTERS, close, connect, engine_orders, held, quarantine_command,
                          quarters, worked_seed)


def multi_currency(tmp_path) -> tuple[Org, str]:
    """A multi-currency org (one whose admin activated a code that is no ISO currency) and mappings reading
    the order's CurrencyIsoCode, as Order.toml says to do for such an org."""
    org = Org(OrgConfig(multi_currency=True), clock=FrozenClock(SEEDED_AT))
    org.schema.get("Order").field("CurrencyIsoCode").picklist_values.append("XYZ")
    mappings = tmp_path / "mappings"
    shutil.copytree(REPO / "mappings", mappings)
    order = mappings / "Order.toml"
    text = order.read_text()
    assert 'currency = { constant = "USD" }' in text
    order.write_text(text.replace('currency = { constant = "USD" }', 'currency = "CurrencyIsoCode"'))
    return org, str(mappings)


def bad_seed() -> dict:
    """The worked example (three good orders) and, beside it, one bad value per record."""
    seed = worked_seed()
    seed["Account"].append({"@ref": "c", "Name": "Customer C", "BillCycleDay__c": 45, "OwnerId": "@chloe"})
    seed["Account"].append({"@ref": "d", "Name": "Customer D", "BillCycleDay__c": 1, "OwnerId": "@chloe"})

    def order(ref: str, account: str, **extra) -> dict:
        return {"@ref": ref, "AccountId": f"@{account}", "OwnerId": "@chloe", "Pricebook2Id": "@std",
                "EffectiveDate": "2023-03-01", "Status": "Activated",
                "ActivatedDate": "2023-03-01T09:00:00.000+0000"} | extra

    def item(ref: str, order_ref: str, **extra) -> dict:
        return {"@ref": ref, "OrderId": f"@{order_ref}", "Product2Id": "@seat", "PricebookEntryId": "@seat-std",
                "Quantity": 2, "UnitPrice": 100, "ServiceDate": "2023-03-01", "EndDate": "2023-12-31",
                "LineAction__c": "Add New Product"} | extra

    seed["Order"] += [order("o4", "c"),                              # its account is held
                      order("o5", "d", CurrencyIsoCode="XYZ"),       # no ISO currency
                      order("o6", "d"), order("o7", "d"), order("o8", "d")]
    seed["OrderItem"] += [item("op004", "o4"), item("op005", "o5"),
                          item("op006", "o6", Quantity=2_000_000_000),             # more than the store holds
                          item("op007", "o7", Quantity=1_000_000, UnitPrice=99_999_999),  # amount too large
                          item("op008", "o8", ServiceDate="2023-06-01", EndDate="2023-05-31")]  # end before start
    seed["Period"].append({"@ref": "reversed", "Type": "Month", "StartDate": "2030-02-01", "EndDate": "2030-01-31",
                           "Number": 2, "FullyQualifiedLabel": "February FY2030"})  # a typo in the fiscal year setup
    return seed


@pytest.fixture
def checked(tmp_path, monkeypatch):
    org, mappings = multi_currency(tmp_path)
    c = connect(tmp_path, monkeypatch, bad_seed(), org=org, sync={"mappings_dir": mappings})
    yield c
    close(c)


def test_each_bad_record_is_held_with_its_reason_and_the_good_ones_go_through(checked):
    c = checked
    report = c.service.cycle()
    # the good orders are activated, in Salesforce's order, and SPEC section 7's figures hold
    assert engine_orders(c) == [c.refs["o1"], c.refs["o2"], c.refs["o3"]]
    assert quarters(c) == SPEC_QUARTERS
    with c.app.store.connect() as conn:
        accounts = dict(conn.execute(select(t.accounts.c.id, t.accounts.c.bill_cycle_day)).all())
    assert c.refs["c"] not in accounts and accounts[c.refs["d"]] == 1  # 45 was never taken in

    listed = {(r["object"], r["record_id"]): r["reason"] for r in quarantine_command(c)}
    ref = c.refs
    assert "field end (Period.EndDate): end 2030-01-31 is before start 2030-02-01" in listed.pop(("Period", ref["reversed"]))
    assert set(listed) == {("Account", ref["c"]), ("Order", ref["o4"]), ("Order", ref["o5"]), ("Order", ref["o6"]),
                           ("Order", ref["o7"]), ("Order", ref["o8"]), ("OrderItem", ref["op006"]),
                           ("OrderItem", ref["op007"]), ("OrderItem", ref["op008"])}
    # taken in: the period, the account, order o5, three order products; then four orders on activation
    assert report.quarantined == 6
    assert ("field bill_cycle_day (Account.BillCycleDay__c): bill cycle day 45 is not a day of the month (1 to 31)"
            in listed[("Account", ref["c"])])
    assert f"unknown account {ref['c']!r}" in listed[("Order", ref["o4"])]
    assert "is in quarantine" in listed[("Order", ref["o4"])]
    assert ("field currency (Order.CurrencyIsoCode): currency 'XYZ' is not an ISO 4217 currency code"
            in listed[("Order", ref["o5"])])
    # the order model's check (connector.orders), in the words an import file's line gets
    assert ("field quantity (OrderItem.Quantity): quantity 2000000000 is larger than the store can hold: at most "
            "1,000,000,000" in listed[("OrderItem", ref["op006"])])
    assert f"line {ref['op006']}, field quantity: quantity 2000000000" in listed[("Order", ref["o6"])]
    assert "quantity 1000000 × unit price 99999999 = 99,999,999,000,000 is more than the largest line amount" \
        in listed[("OrderItem", ref["op007"])]
    assert "field end (OrderItem.EndDate): end 2023-05-31 is before start 2023-06-01" \
        in listed[("OrderItem", ref["op008"])]
    assert f"line {ref['op008']}, field end: end 2023-05-31 is before start 2023-06-01" in listed[("Order", ref["o8"])]


def test_a_bad_record_fixed_in_salesforce_is_released_and_its_orders_activated(checked):
    c = checked
    c.service.cycle()
    c.later(5)
    c.org.update("Account", c.refs["c"], {"BillCycleDay__c": 15})
    for order, item, values in (("o6", "op006", {"Quantity": 3}), ("o8", "op008", {"EndDate": "2023-12-31"})):
        c.org.update("Order", c.refs[order], {"Status": "Draft"})
        c.org.update("OrderItem", c.refs[item], values)
        c.org.update("Order", c.refs[order], {"Status": "Activated"})
    c.org.update("Order", c.refs["o5"], {"Status": "Draft"})
    c.org.update("Order", c.refs["o5"], {"CurrencyIsoCode": "EUR", "Status": "Activated"})
    c.later()
    c.service.cycle()
    assert sorted(engine_orders(c)) == sorted(c.refs[o] for o in ("o1", "o2", "o3", "o4", "o5", "o6", "o8"))
    assert {(r["object"], r["record_id"]) for r in held(c)} == {("Order", c.refs["o7"]),
                                                              ("OrderItem", c.refs["op007"]),
                                                              ("Period", c.refs["reversed"])}
    with c.app.store.connect() as conn:
        assert conn.execute(select(t.accounts.c.bill_cycle_day).where(t.accounts.c.id == c.refs["c"])).scalar() == 15
        bcd = conn.execute(select(t.items.c.bill_cycle_day).where(t.items.c.id == c.refs["op004"])).scalar()
        currency = conn.execute(select(t.orders.c.currency).where(t.orders.c.id == c.refs["o5"])).scalar()
    assert (bcd, currency) == (15, "EUR")


# The shared checks, as the importer and ingest both call them.

@pytest.mark.parametrize("value,ok", [(1, True), (31, True), (None, True), (0, False), (32, False), (45, False),
                                      (True, False)], ids=str)
def test_bill_cycle_day(value, ok):
    if ok:
        assert checks.check_bill_cycle_day(value) == value
    else:
        with pytest.raises(ValueError, match="not a day of the month"):
            checks.check_bill_cycle_day(value)


@pytest.mark.parametrize("code,ok", [("USD", True), ("EUR", True), ("JPY", True), ("XYZ", False), ("usd", False),
                                     ("XXX", False), ("US", False)], ids=str)
def test_currency(code, ok):
    if ok:
        assert checks.check_currency(code) == code
    else:
        with pytest.raises(ValueError, match="is not an ISO 4217 currency code"):
            checks.check_currency(code)


@pytest.mark.parametrize("value,message", [
    (Decimal("1e30"), "more than the largest"), (Decimal("-1"), "at least 0"), (Decimal("NaN"), "not a finite"),
    (Decimal("Infinity"), "not a finite"), (Decimal("0.0000000000001"), "decimal places")], ids=str)
def test_quantity_out_of_range(value, message):
    with pytest.raises(ValueError, match=message):
        checks.check_quantity(value)


def test_the_money_limit_is_what_a_64_bit_column_of_ten_thousandths_holds():
    assert checks.MAX_MONEY == Decimal("922337203685477.5807")
    # a hundred years of the largest line amount fit
    assert checks.MAX_LINE_AMOUNT * checks.MAX_TERM_MONTHS <= checks.MAX_MONEY


def test_every_problem_of_an_order_is_listed_at_once():
    import datetime as dt

    order = OrderInput("O-1", "A", "", dt.date(2023, 1, 1), "XYZ", bill_cycle_day=45, lines=(
        LineInput("L-1", Action.NEW, "P", quantity=Decimal("1e12"), unit_price=Decimal("99999999999"),
                  start=dt.date(2023, 2, 1), end=dt.date(2023, 1, 1)),
        LineInput("L-2", Action.UPDATE, "P"),
        LineInput("L-3", Action.NEW, "P", quantity=Decimal(1_000_000), unit_price=Decimal("99999999.99"))))
    problems = [str(p) for p in checks.order_problems(order)]
    assert problems == [
        "field currency: currency 'XYZ' is not an ISO 4217 currency code",
        "field bill_cycle_day: bill cycle day 45 is not a day of the month (1 to 31)",
        "line L-1, field quantity: quantity 1000000000000 is more than the largest the store holds (1,000,000,000)",
        "line L-1, field unit_price: unit price 99999999999 is more than the largest the store holds (1,000,000,000)",
        "line L-1, field end: end 2023-01-01 is before start 2023-02-01",
        "line L-2, field subscription: an update line needs the subscription it changes",
        "line L-3, fields quantity, unit_price: quantity 1000000 × unit price 99999999.99 = 99,999,999,990,000.00 "
        "is more than the largest line amount the store holds (120,000,000,000)"]
    assert checks.account_problems(Account("A", "A", 45))[0].where == "field bill_cycle_day"
