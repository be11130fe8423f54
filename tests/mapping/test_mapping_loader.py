"""Loading mapping files: the shipped defaults load, and every problem is reported at once with its place."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mapping_support import SHIPPED

from connector.errors import ConfigError, ValidationFailed
from connector.mapping import load_mappings, validate_command
from connector.mapping.records import READ_RECORDS

READ_OBJECTS = ["Opportunity", "Quote", "QuoteLineItem", "Order", "OrderItem", "Product2", "Account", "Period"]
WRITE_OBJECTS = ["Subscription__c", "Asset", "Entitlement", "Account", "Order", "OrderItem",
                 "ArrByPeriod__b", "ArrByPeriodByCustomer__b"]


def test_shipped_mappings_load_and_validate_offline(shipped):
    assert validate_command(SHIPPED) == []
    assert sorted(m.object for m in shipped if m.direction == "read") == sorted(READ_OBJECTS)
    assert sorted(m.object for m in shipped if m.direction == "write") == sorted(WRITE_OBJECTS)


def test_shipped_read_mappings_target_engine_fields_only(shipped):
    for m in shipped:
        if m.direction == "read":
            assert set(m.fields) <= set(READ_RECORDS[m.record].fields), m.path


def test_big_objects_have_no_external_id_and_map_their_index(shipped):
    assert shipped.writing("ArrByPeriod__b").index == ("StartDate__c", "OrderProduct__c")
    assert shipped.writing("ArrByPeriodByCustomer__b").index == (
        "Customer__c", "Subscription__c", "StartDate__c", "OrderProduct__c")
    assert all(m.external_id is None for m in shipped if m.is_big_object)
    assert all(m.external_id == "ExternalId__c" for m in shipped
               if m.direction == "write" and not m.is_big_object and m.object != "Account")


def test_fields_are_what_ingest_queries(shipped):
    assert shipped.fields("OrderItem")[0] == "Id"
    assert "Product2.Name" in shipped.fields("OrderItem")
    assert "LineAction__c" in shipped.fields("QuoteLineItem")


GOOD_READ = '''
object = "OrderItem"
direction = "read"
record = "LineInput"
[fields]
id = "Id"
order = "OrderId"
product = "Product2Id"
action = { source = "LineAction__c", default = "new" }
'''

# One file per kind of mistake; each expected problem is (where, words of the message).
BROKEN = {
    "OrderItem.toml": '''
object = "OrderItem"
direction = "read"
record = "LineInput"
colour = "blue"
[fields]
id = "Id"
order = "OrderId"
product = { source = "Product2Id", refrence = "Product2" }
start = { source = "ServiceDate", type = "dat" }
billing_frequency = 12
''',
    "Product2.toml": '''
object = "Product2"
direction = "read"
record = "Product"
[fields]
id = "Id"
''',
    "Asset.write.toml": '''
object = "Asset"
direction = "write"
record = "Item"
[fields]
Name = "product_nam"
"Product2.Name" = "product"
Quantity = { source = "quantity", skip_when = ["0"] }
''',
    "ArrByPeriod__b.write.toml": '''
object = "ArrByPeriod__b"
direction = "write"
record = "ArrRow"
external_id = "ExternalId__c"
index = ["StartDate__c", "OrderProduct__c"]
[fields]
StartDate__c = { source = "period_start", type = "datetime" }
ChangeCategory__c = { source = "change_category", map = { "New Biz" = "New" } }
''',
    "Order.write.toml": '''
object = "Order"
direction = "sideways"
record = "OrderInput"
[fields]
''',
    "Quote.toml": 'object = "Quote"\ndirection = "read\n',
    "Opportunity.toml": '''
object = "Opportunity"
direction = "read"
record = "Deal"
[fields]
id = "Id"
''',
    "Account.write.toml": '''
object = "Account"
direction = "read"
record = "Account"
[fields]
id = "Id"
name = "Name"
''',
    "Account.toml": '''
object = "Account"
direction = "read"
record = "Account"
[fields]
id = "Id"
name = "Name"
bill_cycle_day = { source = "BillCycleDay__c", create_only = true }
''',
}

EXPECTED = [
    ("OrderItem.toml: colour", "unknown key (allowed: object, direction, record"),
    ("OrderItem.toml: [fields.product] refrence", "unknown key (allowed: source, constant"),
    ("OrderItem.toml: [fields.start] type", "'dat' is not one of date, datetime, decimal, integer, boolean, string"),
    ("OrderItem.toml: [fields.billing_frequency]", "must be a table, or a string naming the source field"),
    ("Product2.toml: fields", "required engine field 'price_period' of Product is not mapped"),
    ("Product2.toml: fields", "required engine field 'provisioning' of Product is not mapped"),
    ("Asset.write.toml: external_id", "is required for writing"),
    ("Asset.write.toml: [fields.Name] source", "'product_nam' is not a field of engine record Item (did you mean 'product_name'?)"),
    ('Asset.write.toml: [fields."Product2.Name"]', "is not a Salesforce field API name"),
    ("Asset.write.toml: [fields.Quantity] skip_when", "is only for reading mappings"),
    ("ArrByPeriod__b.write.toml: external_id", "big objects have no external id"),
    ("ArrByPeriod__b.write.toml: index", "index field 'OrderProduct__c' is not mapped"),
    ("ArrByPeriod__b.write.toml: [fields.ChangeCategory__c] map.\"New Biz\"",
     "'New Biz' is not a value of engine field change_category"),
    ("Order.write.toml: direction", "'sideways' is not one of read, write"),
    ("Quote.toml", "is not valid TOML"),
    ("Opportunity.toml: record", "'Deal' is not one of Account, Product, OrderInput"),
    ("Account.write.toml: object", "a read mapping of Account belongs in a file named Account.toml"),
    ("Account.write.toml: object", "Account is already mapped for read in"),
    ("Account.toml: [fields.bill_cycle_day] create_only", "is only for writing mappings"),
]

# Problems that need a sound file to be found: checked in a second, otherwise valid file.
BROKEN_FIELDS = '''
object = "OrderItem"
direction = "read"
record = "LineInput"
[fields]
id = "Id"
order = "OrderId"
product = { source = "Product2Id", reference = "Product2" }
end = { source = "EndDate", type = "decimal" }
action = { source = "LineAction__c", map = { "Add New Product" = "nwe" } }
quantity = { source = "Quantity", constant = "1" }
frobnicate = "Foo__c"
unit_price = { source = "Unit Price" }
credit_eligible = { constant = "maybe" }
start = { source = "ServiceDate", default = "someday" }
line_number = {}
'''

EXPECTED_FIELDS = [
    ("[fields.end] type", "'decimal' does not fit engine field end (date)"),
    ("[fields.action] map.\"Add New Product\"", "'nwe' is not one of new, update, renew, cancel, terms"),
    ("[fields.quantity]", "needs exactly one of `source` or `constant` (it has both)"),
    ("[fields.frobnicate]", "'frobnicate' is not a field of engine record LineInput"),
    ("[fields.unit_price] source", "'Unit Price' is not a Salesforce field or relationship path"),
    ("[fields.credit_eligible] constant", "'maybe' is not true or false (type boolean)"),
    ("[fields.start] default", "'someday' "),
    ("[fields.line_number]", "needs exactly one of `source` or `constant`"),
]


def _messages(exc: ValidationFailed) -> list[str]:
    return [str(p) for p in exc.problems]


def test_every_problem_of_every_file_at_once(write_files):
    folder = write_files(BROKEN)
    with pytest.raises(ConfigError) as caught:
        load_mappings(folder)
    messages = _messages(caught.value)
    for where, words in EXPECTED:
        path = str(folder / where)
        assert any(m.startswith(path) and words in m for m in messages), (where, words, messages)
    assert "nothing was changed" in str(caught.value)
    assert "revsync mappings validate" in str(caught.value)


def test_field_rules_name_table_and_key(write_files):
    folder = write_files({"OrderItem.toml": BROKEN_FIELDS})
    problems = [str(p) for p in validate_command(folder)]
    for where, words in EXPECTED_FIELDS:
        full = f"{folder / 'OrderItem.toml'}: {where}"
        assert any(p.startswith(full) and words in p for p in problems), (where, words, problems)
    assert len(problems) == len(EXPECTED_FIELDS), problems


def test_the_brief_example_reads_as_promised(write_files):
    folder = write_files({"OrderItem.toml": GOOD_READ + 'start = { source = "ServiceDate", type = "dat" }\n'})
    assert [str(p) for p in validate_command(folder)] == [
        f"{folder}/OrderItem.toml: [fields.start] type: "
        "'dat' is not one of date, datetime, decimal, integer, boolean, string"]


def test_a_sound_file_loads(write_files):
    mapping_set = load_mappings(write_files({"OrderItem.toml": GOOD_READ}))
    assert mapping_set.reading("OrderItem").types["action"] == "string"


def test_missing_mapping_is_a_config_error(write_files):
    mapping_set = load_mappings(write_files({"OrderItem.toml": GOOD_READ}))
    with pytest.raises(ConfigError, match="no write mapping for Asset"):
        mapping_set.writing("Asset")


def test_empty_or_absent_directory(tmp_path: Path):
    assert [p.message for p in validate_command(tmp_path)] == ["has no mapping files (*.toml)"]
    assert [p.message for p in validate_command(tmp_path / "nope")] == ["is not a directory of mapping files"]


def test_copy_of_shipped_mappings_is_independent(tmp_path: Path):
    # admins start from a copy of the defaults: the copy validates where it lives
    copy = shutil.copytree(SHIPPED, tmp_path / "mine")
    assert validate_command(copy) == []


# A typo in one key must not hide the other problems of the same file (issue 8).
TYPO_AND_MORE = {
    "OrderItem.toml": '''
object = "OrderItem"
direction = "read"
record = "LineInput"
[fields]
id = "Id"
order = "OrderId"
product = { source = "Product2Id", refrence = "Product2" }
action = "LineAction__c"
quantitee = "Quantity"
end = { source = "EndDate", type = "decimal" }
''',
    "Order.write.toml": '''
object = "Order"
direction = "write"
record = "OrderInput"
extrnal_id = "ExternalId__c"
[fields]
ExternalId__c = "id"
Status = { constant = "Activated", create_only = "maybe" }
''',
    "Quote.toml": '''
object = "Quote"
direction = "read"
recrod = "QuoteInput"
[fields]
id = "Id"
''',
}


def test_a_typo_does_not_hide_the_other_problems_of_its_file(write_files):
    folder = write_files(TYPO_AND_MORE)
    with pytest.raises(ConfigError) as caught:
        load_mappings(folder)
    messages = _messages(caught.value)
    expected = [
        ("OrderItem.toml: [fields.product] refrence", "did you mean 'reference'?"),
        ("OrderItem.toml: [fields.quantitee]", "did you mean 'quantity'?"),
        ("OrderItem.toml: [fields.end] type", "does not fit engine field end"),
        ("Order.write.toml: extrnal_id", "did you mean 'external_id'?"),
        ("Order.write.toml: [fields.Status] create_only", "must be true or false"),
        ("Quote.toml: recrod", "did you mean 'record'?"),
    ]
    for where, words in expected:
        path = str(folder / where)
        assert any(m.startswith(path) and words in m for m in messages), (where, words, messages)
    # the consequences of a typo are not reported as problems of their own
    assert not any("external_id: is required" in m for m in messages), messages
    assert not any(m.startswith(str(folder / "Quote.toml: record:")) for m in messages), messages
    assert len(messages) == len(expected), messages


def test_the_external_id_cannot_be_create_only(tmp_path: Path):
    # left out of updates, it would leave the upsert nothing to match the record on
    copy = shutil.copytree(SHIPPED, tmp_path / "mine")
    path = copy / "Subscription__c.write.toml"
    text = path.read_text()
    line = next(l for l in text.splitlines() if l.startswith("ExternalId__c"))
    path.write_text(text.replace(line, 'ExternalId__c = { source = "id", create_only = true }'))
    assert [str(p) for p in validate_command(copy)] == [
        f"{path}: [fields.ExternalId__c] create_only: cannot be set on the external id: every write, updates too, "
        "matches the record on it (remove `create_only = true`)"]
