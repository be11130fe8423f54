"""Online validation: every mapped field against the org's describe (here, the sandbox org's describe
of the shipped Salesforce metadata, in the recorded describe shape)."""
from __future__ import annotations

import pytest
from mapping_support import SHIPPED

from connector.errors import ConfigError
from connector.mapping import load_mappings, validate_command, validate_online


def test_shipped_mappings_fit_the_shipped_metadata(shipped, describe):
    assert validate_online(shipped, describe) == []
    assert validate_command(SHIPPED, describe=describe) == []


BROKEN_READ = '''
object = "OrderItem"
direction = "read"
record = "LineInput"
[fields]
id = "Id"
order = { source = "OrderId", reference = "Quote" }
product = "Product2Id"
product_name = "Product2.Nmae"
quote_line = "QuoteLine.Name"
quantity = "Description"
start = "ServiceDat"
credit_eligible = "Quantity"
term_months = "UnitPrice"
[fields.action]
source = "LineAction__c"
default = "new"
skip_when = ["Load Original Products"]
map = { "Add New Product" = "new", "Upgrade" = "update" }
'''

BROKEN_PRODUCT = '''
object = "Product2"
direction = "read"
record = "Product"
[fields]
id = "Id"
provisioning = { source = "ProvisioningType__c", map = { Subscription = "subscription", Service = "entitlement" } }
price_period = { source = "PricePeriod__c", map = { Month = "month" } }
'''

BROKEN_WRITE = '''
object = "OrderItem"
direction = "write"
record = "LineInput"
external_id = "Description"
[fields]
Description = "id"
OrderId = { source = "order", reference = "Order" }
TotalPrice = "unit_price"
ServiceDate = { source = "start", type = "datetime" }
Product2Id = { source = "product", reference = "Account", create_only = true }
Colour__c = "product_name"
LineAction__c = { source = "action", map = { new = "Add New Product", update = "Upgrade" } }
'''

BROKEN_OBJECT = '''
object = "Invoice__c"
direction = "write"
record = "Item"
external_id = "ExternalId__c"
[fields]
ExternalId__c = "id"
'''

EXPECTED = [
    ("OrderItem.toml: [fields.order] reference", "OrderItem.OrderId points at Order, not Quote"),
    ("OrderItem.toml: [fields.product_name] source", "Product2 has no field 'Nmae' (did you mean 'Name'?)"),
    ("OrderItem.toml: [fields.quote_line] source", "OrderItem has no relationship 'QuoteLine' (did you mean 'QuoteLineItem'?)"),
    ("OrderItem.toml: [fields.quantity] type", "OrderItem.Description is a string field; it does not fit type 'decimal'"),
    ("OrderItem.toml: [fields.start] source", "OrderItem has no field 'ServiceDat' (did you mean 'ServiceDate'?)"),
    ("OrderItem.toml: [fields.credit_eligible] type", "is a double field; it does not fit type 'boolean'"),
    ("OrderItem.toml: [fields.term_months] type", "OrderItem.UnitPrice has 2 decimal places; it does not fit type 'integer'"),
    ("OrderItem.toml: [fields.action] skip_when", "'Load Original Products' is not a value of picklist OrderItem.LineAction__c"),
    ("OrderItem.toml: [fields.action] map.Upgrade", "'Upgrade' is not a value of picklist OrderItem.LineAction__c"),
    ("Product2.toml: [fields.provisioning] map.Service", "'Service' is not a value of picklist Product2.ProvisioningType__c"),
    ("OrderItem.write.toml: external_id", "OrderItem.Description is not an External ID field"),
    ("OrderItem.write.toml: [fields.OrderId]", "OrderItem.OrderId cannot be updated; add `create_only = true`"),
    ("OrderItem.write.toml: [fields.TotalPrice]", "OrderItem.TotalPrice cannot be written (not createable)"),
    ("OrderItem.write.toml: [fields.ServiceDate] type", "OrderItem.ServiceDate is a date field; type 'datetime' does not fit it"),
    ("OrderItem.write.toml: [fields.Product2Id] reference", "OrderItem.Product2Id points at Product2, not Account"),
    ("OrderItem.write.toml: [fields.Colour__c]", "OrderItem has no field 'Colour__c'"),
    ("OrderItem.write.toml: [fields.LineAction__c] map.update", "'Upgrade' is not a value of picklist OrderItem.LineAction__c"),
    ("Invoice__c.write.toml: object", "the org has no object 'Invoice__c'"),
]


def test_every_online_problem_at_once(write_files, describe):
    folder = write_files({"OrderItem.toml": BROKEN_READ, "Product2.toml": BROKEN_PRODUCT,
                          "OrderItem.write.toml": BROKEN_WRITE, "Invoice__c.write.toml": BROKEN_OBJECT})
    assert validate_command(folder) == []  # sound offline: only the org can tell
    problems = [str(p) for p in validate_command(folder, describe=describe)]
    for where, words in EXPECTED:
        full = f"{folder / where}"
        assert any(p.startswith(full) and words in p for p in problems), (where, words, problems)
    assert len(problems) == len(EXPECTED), "\n".join(problems)


def test_load_mappings_with_describe_stops_on_online_problems(write_files, describe):
    folder = write_files({"Product2.toml": BROKEN_PRODUCT})
    with pytest.raises(ConfigError, match=r"\[fields.provisioning\] map.Service"):
        load_mappings(folder, describe=describe)


def test_each_object_is_described_once(shipped, describe):
    asked: list[str] = []

    def counting(sobject: str) -> dict:
        asked.append(sobject)
        return describe(sobject)

    validate_online(shipped, counting)
    assert len(asked) == len({a.lower() for a in asked})
