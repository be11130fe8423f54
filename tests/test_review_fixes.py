"""Defects found in review: duplicate credit grants in one file, Ids of records the connector creates."""
import json
import subprocess
import sys

from connector.store.db import open_store
from connector.writers.outbox import OutboxWriter


def test_two_grants_with_the_same_default_id_are_a_listed_problem(tmp_path):
    doc = {"accounts": [{"id": "A", "name": "Customer A"}],
           "credits": [{"account": "A", "currency": "USD", "amount": "100"},
                       {"account": "A", "currency": "USD", "amount": "50"}]}
    (tmp_path / "f.json").write_text(json.dumps(doc))
    (tmp_path / "config.toml").write_text(f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n')
    out = subprocess.run([sys.executable, "-m", "connector.cli", "--config", str(tmp_path / "config.toml"),
                          "import", str(tmp_path / "f.json")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "credit A:USD" in out.stderr and "more than once" in out.stderr


def test_a_record_the_connector_creates_has_no_id_until_written(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    writer = OutboxWriter(store, client=None, mappings=None, clock=None)
    order_item_id = "8028d0000Ra8G0fAQE"  # a Salesforce-origin subscription's engine id
    assert writer.resolve("Subscription__c", order_item_id) is None  # waits for its own write
    assert writer.resolve("OrderItem", order_item_id) == order_item_id  # already a Salesforce Id
    store.dispose()
