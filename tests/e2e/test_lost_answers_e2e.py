"""An order product written to Salesforce whose answer never comes back (held past the client's read
timeout, no kill at all) does not wedge the order: `revsync sync --once` as its own process, over
HTTPS, for both order origins."""
from __future__ import annotations

import json

import pytest
from e2e_support import site, worked_seed
from test_engine_origin_e2e import engine_order

from connector.sandbox.faults import Fault

pytestmark = pytest.mark.slow
ITEMS = "/composite/sobjects/OrderItem/"


def short_timeout(s) -> None:
    config = s.root / "config.toml"
    config.write_text(config.read_text().replace("consumer_key", "timeout_seconds = 1\nconsumer_key"))


def quote_only_seed() -> dict:
    """Two won opportunities with primary quotes and no orders: an org without automation."""
    seed = worked_seed()
    for key in ("Order", "OrderItem"):
        seed.pop(key)
    seed["Opportunity"], seed["Quote"], seed["QuoteLineItem"] = (seed["Opportunity"][:2], seed["Quote"][:2],
                                                                 seed["QuoteLineItem"][:2])
    return seed


def sync_until_quiet(s, runs: int = 4) -> None:
    for _ in range(runs):
        before = len(s.org.request_log)
        result = s.revsync("sync", "--once")
        assert result.code == 0, result
        if not [e for e in s.org.request_log[before:] if e.method == "PATCH"]:
            return
    raise AssertionError(f"still writing after {runs} runs")


def test_won_quote_orders_survive_a_lost_order_product_answer(tmp_path):
    with site(tmp_path, quote_only_seed(), sync="create_orders_from_won_quotes = true") as s:
        short_timeout(s)
        lost = s.org.faults.add(Fault.lose_answer(method="PATCH", path=ITEMS, delay=2.0))
        sync_until_quiet(s)
        assert lost.fired == 1
        orders = s.org.records("Order")
        assert len(orders) == 2 and {o["Status"] for o in orders} == {"Activated"}
        assert len(s.org.records("OrderItem")) == 2
        assert len(s.org.records("Subscription__c")) == 2
        assert set(s.outbox_states()) == {"SUCCESS"}


def test_an_imported_order_survives_a_lost_order_product_answer(tmp_path):
    with site(tmp_path, worked_seed()) as s:
        short_timeout(s)
        assert s.revsync("sync", "--once").code == 0
        (tmp_path / "eng.json").write_text(json.dumps(engine_order(s.refs)))
        imported = s.revsync("import", "eng.json")
        assert imported.code == 0, imported
        lost = s.org.faults.add(Fault.lose_answer(method="PATCH", path=ITEMS, delay=2.0))
        sync_until_quiet(s)
        assert lost.fired == 1
        order = next(r for r in s.org.records("Order") if r.get("ExternalId__c") == "ENG-1")
        assert order["Status"] == "Activated"
        assert [i["ExternalId__c"] for i in s.org.records("OrderItem") if i["OrderId"] == order["Id"]] == ["ENG-1-1"]
        assert any(r["ExternalId__c"] == "ENG-1-1" for r in s.org.records("Subscription__c"))
        assert set(s.outbox_states()) == {"SUCCESS"}
