"""Applying mappings: Salesforce records (REST JSON and Bulk CSV shapes) to engine values and back."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from connector.engine.model import Action, ChangeCategory
from connector.errors import SkippableError
from connector.mapping import MappingError, UnresolvedReference, load_mappings, read_record, write_record

UTC = dt.timezone.utc
D = Decimal

COERCE = '''
object = "Quote"
direction = "read"
record = "Quote"
[fields]
id = "Id"
opportunity = { source = "OpportunityId", reference = "Opportunity" }
expires_on = "ExpirationDate"
bill_cycle_day = { source = "Day__c", type = "integer" }
is_syncing = "IsSyncing"
name = { source = "Name", default = "(no name)" }
status = { source = "Status", map = { Draft = "draft", Accepted = "accepted" } }
owner = "Opportunity.OwnerId"
'''

OPP = "006000000000001AAA"
USER = "005000000000001AAA"

# (id, field, REST value, Bulk CSV value, engine value)
READ_CASES = [
    ("date", "expires_on", "2023-01-15", "2023-01-15", dt.date(2023, 1, 15)),
    ("date-blank", "expires_on", None, "", None),
    ("integer", "bill_cycle_day", D("15"), "15", 15),
    ("integer-from-decimal-text", "bill_cycle_day", D("15.0"), "15.0", 15),
    ("boolean-true", "is_syncing", True, "true", True),
    ("boolean-false", "is_syncing", False, "false", False),
    ("default-when-blank", "name", None, "", "(no name)"),
    ("string-trimmed", "name", " Q-1 ", " Q-1 ", "Q-1"),
    ("map", "status", "Accepted", "Accepted", "accepted"),
    ("map-blank-no-default", "status", None, "", None),
    ("reference", "opportunity", OPP, OPP, OPP),
]


def _rest(field_values: dict) -> dict:
    base = {"attributes": {"type": "Quote"}, "Id": "0Q0000000000001AAA", "OpportunityId": OPP,
            "ExpirationDate": None, "Day__c": None, "IsSyncing": False, "Name": "Q", "Status": "Draft",
            "Opportunity": {"attributes": {"type": "Opportunity"}, "OwnerId": USER}}
    return base | field_values


def _csv(field_values: dict) -> dict:
    base = {"Id": "0Q0000000000001AAA", "OpportunityId": OPP, "ExpirationDate": "", "Day__c": "",
            "IsSyncing": "false", "Name": "Q", "Status": "Draft", "Opportunity.OwnerId": USER}
    return base | field_values


SOURCE = {"expires_on": "ExpirationDate", "bill_cycle_day": "Day__c", "is_syncing": "IsSyncing", "name": "Name",
          "status": "Status", "opportunity": "OpportunityId"}


@pytest.fixture(scope="module")
def quote(tmp_path_factory) -> object:
    folder: Path = tmp_path_factory.mktemp("mappings")
    (folder / "Quote.toml").write_text(COERCE)
    return load_mappings(folder).reading("Quote")


@pytest.mark.parametrize("field, rest, csv, expected", [c[1:] for c in READ_CASES], ids=[c[0] for c in READ_CASES])
@pytest.mark.parametrize("shape", ["rest", "csv"])
def test_read_coercions(quote, shape, field, rest, csv, expected):
    record = _rest({SOURCE[field]: rest}) if shape == "rest" else _csv({SOURCE[field]: csv})
    values = read_record(quote, record)
    assert values[field] == expected
    assert type(values[field]) is type(expected)


@pytest.mark.parametrize("record, expected", [
    (_rest({}), USER),
    (_rest({"Opportunity": None}), None),
    (_csv({}), USER),
    (_csv({"Opportunity.OwnerId": ""}), None),
], ids=["rest", "rest-null-parent", "csv", "csv-blank"])
def test_relationship_paths(quote, record, expected):
    assert read_record(quote, record)["owner"] == expected


BAD_READS = [
    ("not-a-date", "ExpirationDate", "15/01/2023", "ExpirationDate → expires_on: '15/01/2023'"),
    ("not-whole", "Day__c", "15.5", "is not a whole number"),
    ("not-boolean", "IsSyncing", "yes", "'yes' is not true or false"),
    ("not-in-map", "Status", "Denied", "'Denied' is not in the value map (known: Draft, Accepted)"),
    ("not-an-id", "OpportunityId", "Acme deal", "is not a Salesforce Id (of an Opportunity record)"),
]


@pytest.mark.parametrize("source, value, words", [c[1:] for c in BAD_READS], ids=[c[0] for c in BAD_READS])
def test_bad_values_are_skippable_and_say_where(quote, source, value, words):
    with pytest.raises(MappingError) as caught:
        read_record(quote, _csv({source: value}))
    assert isinstance(caught.value, SkippableError)
    message = str(caught.value)
    assert message.startswith("Quote 0Q0000000000001AAA: field ") and words in message
    assert caught.value.record_id == "0Q0000000000001AAA" and caught.value.value == value
    assert "Quote.toml" in caught.value.hint


def test_a_field_left_out_of_the_query_is_an_error(quote):
    record = _csv({})
    del record["Status"]
    with pytest.raises(MappingError, match="Status.*is not in the record"):
        read_record(quote, record)


# -- the shipped OrderItem mapping -------------------------------------------------------------

ITEM_REST = {
    "attributes": {"type": "OrderItem"}, "Id": "802000000000001AAA", "OrderId": "801000000000001AAA",
    "OrderItemNumber": "0000000001", "QuoteLineItemId": None, "Product2Id": "01t000000000001AAA",
    "Product2": {"attributes": {"type": "Product2"}, "Name": "Seats"}, "Quantity": D("10.00"),
    "UnitPrice": D("100.00"), "ServiceDate": "2023-01-15", "EndDate": "2024-01-14", "Subscription__c": None,
    "LineAction__c": None, "BillingFrequency__c": None, "Evergreen__c": False,
}
ITEM_CSV = {k: ("" if v is None else str(v).lower() if isinstance(v, bool) else str(v)) for k, v in ITEM_REST.items() if k not in ("attributes", "Product2")}
ITEM_CSV["Product2.Name"] = "Seats"

ACTIONS = [
    ("blank-is-new", None, "new"),
    ("add", "Add New Product", "new"),
    ("update", "Update Original Product", "update"),
    ("renew", "Renew Subscription", "renew"),
    ("remove", "Remove Original Product", "cancel"),
    ("terms", "Terms And Conditions Change", "terms"),
]


@pytest.mark.parametrize("record", [ITEM_REST, ITEM_CSV], ids=["rest", "csv"])
@pytest.mark.parametrize("picklist, action", [a[1:] for a in ACTIONS], ids=[a[0] for a in ACTIONS])
def test_line_actions(shipped, record, picklist, action):
    values = shipped.read("OrderItem", record | {"LineAction__c": picklist if picklist else ("" if record is ITEM_CSV else None)})
    assert Action(values["action"]) is Action(action)


@pytest.mark.parametrize("record", [ITEM_REST, ITEM_CSV], ids=["rest", "csv"])
@pytest.mark.parametrize("sobject", ["OrderItem", "QuoteLineItem"])
def test_load_original_product_is_skipped(shipped, record, sobject):
    if sobject == "QuoteLineItem":
        record = {"Id": record["Id"], "QuoteId": "0Q0000000000001AAA", "LineNumber": "1", "Product2Id": record["Product2Id"],
                  "Product2.Name": "Seats", "Quantity": "1", "UnitPrice": "1", "ServiceDate": "", "EndDate__c": "",
                  "Subscription__c": "", "BillingFrequency__c": "", "Evergreen__c": "false"}
    assert shipped.read(sobject, record | {"LineAction__c": "Load Original Product"}) is None


@pytest.mark.parametrize("record", [ITEM_REST, ITEM_CSV], ids=["rest", "csv"])
def test_order_item_reads_the_same_from_both_shapes(shipped, record):
    assert shipped.read("OrderItem", record) == {
        "id": "802000000000001AAA", "order": "801000000000001AAA", "line_number": "0000000001",
        "quote_line": None, "product": "01t000000000001AAA", "product_name": "Seats", "quantity": D("10.00"),
        "unit_price": D("100.00"), "start": dt.date(2023, 1, 15), "end": dt.date(2024, 1, 14),
        "subscription": None, "action": "new", "billing_frequency": "month", "evergreen": False,
    }


@pytest.mark.parametrize("record", [
    {"Id": "01t000000000001AAA", "Name": "Seats", "ProvisioningType__c": "Asset", "PricePeriod__c": "One-Time"},
], ids=["csv"])
def test_product_picklists(shipped, record):
    assert shipped.read("Product2", record) == {"id": "01t000000000001AAA", "name": "Seats",
                                                "provisioning": "asset", "price_period": "one_time"}


def test_order_booking_date_is_the_utc_day_of_activation(shipped):
    record = {"Id": "801000000000001AAA", "OrderNumber": "00000100", "AccountId": "001000000000001AAA",
              "OwnerId": USER, "Owner": {"attributes": {"type": "User"}, "Name": "Chloe Ng"},
              "OpportunityId": None, "QuoteId": None, "Status": "Activated",
              "EffectiveDate": "2023-01-15", "ActivatedDate": "2023-01-01T23:30:00.000-0200"}
    values = shipped.read("Order", record)
    assert values["booked_on"] == dt.date(2023, 1, 2) and values["start"] == dt.date(2023, 1, 15)
    assert values["currency"] == "USD" and values["status"] == "Activated"
    assert values["owner"] == USER and values["owner_name"] == "Chloe Ng"


# -- writing ---------------------------------------------------------------------------------

ROW = {"order": "801000000000001AAA", "order_product": "802000000000001AAA", "customer": "001000000000001AAA",
       "customer_name": "A", "owner": USER, "subscription": "a01000000000001AAA", "subscription_number": "S-001",
       "product": "01t000000000001AAA", "product_name": "Seats", "change_category": ChangeCategory.NEW_BUSINESS,
       "period_start": dt.date(2023, 1, 1), "period_end": dt.date(2023, 1, 31), "opening_cmrr": D("0"),
       "closing_cmrr": D("1000"), "change_cmrr": D("1000"), "opening_arr": D("0"), "closing_arr": D("12000"),
       "change_arr": D("12000"), "quantity": D("10"), "currency": "USD"}

WRITE_CASES = [
    ("datetime-at-midnight-utc", "ArrByPeriod__b", ROW, "StartDate__c", dt.datetime(2023, 1, 1, tzinfo=UTC)),
    ("decimal-stays-exact", "ArrByPeriod__b", ROW, "ClosingARR__c", D("12000")),
    ("enum-as-text", "ArrByPeriod__b", ROW, "ChangeCategory__c", "New Business"),
    ("blank-is-null", "ArrByPeriod__b", ROW | {"subscription_number": None}, "SubscriptionNumber__c", None),
    ("map", "OrderItem", {"id": "L-1", "action": Action.UPDATE}, "LineAction__c", "Update Original Product"),
    ("default-on-blank", "Order", {"id": "O-1", "status": None}, "Status", "Draft"),
    ("map-activated", "Order", {"id": "O-1", "status": "activated"}, "Status", "Activated"),
    ("date", "Account", {"id": "001000000000001AAA", "customer_since": dt.date(2023, 1, 15)}, "CustomerSince__c",
     dt.date(2023, 1, 15)),
    ("decimal-from-int", "Account", {"id": "001000000000001AAA", "tcv": 12000}, "TCV__c", D("12000")),
]


@pytest.mark.parametrize("sobject, values, field, expected", [c[1:] for c in WRITE_CASES], ids=[c[0] for c in WRITE_CASES])
def test_write_coercions(shipped, sobject, values, field, expected):
    payload = shipped.write(sobject, values)
    assert payload["attributes"] == {"type": sobject}
    assert payload[field] == expected
    assert type(payload[field]) is type(expected)


def test_write_never_sends_floats(shipped):
    with pytest.raises(MappingError, match="float"):
        shipped.write("Account", {"id": "001000000000001AAA", "tcv": 0.1})


@pytest.mark.parametrize("bad", [D("NaN"), D("Infinity"), D("-Infinity"), 0.5, {"1.5"}, b"1.5", [D("1.5")]])
def test_write_refuses_a_number_salesforce_cannot_take_in_a_field_of_no_declared_type(shipped, bad):
    values = {"id": "S-1", "account": "001000000000001AAA", "product": "01t000000000001AAA", "arr": bad}
    assert shipped.writing("Subscription__c").types["ARR__c"] is None
    with pytest.raises(MappingError, match=r"Subscription__c.*arr → ARR__c.*(finite|float|cannot take)"):
        shipped.write("Subscription__c", values)
    assert shipped.write("Subscription__c", values | {"arr": D("1.50")})["ARR__c"] == D("1.50")
    assert shipped.write("Subscription__c", values | {"arr": 2})["ARR__c"] == 2


def test_a_timestamp_in_a_field_of_no_declared_type_is_sent_in_utc(shipped):
    values = {"id": "S-1", "account": "001000000000001AAA", "product": "01t000000000001AAA"}
    paris = dt.timezone(dt.timedelta(hours=1))
    assert shipped.writing("Subscription__c").types["StartDate__c"] is None
    sent = shipped.write("Subscription__c", values | {"start": dt.datetime(2023, 1, 1, 1, 0, tzinfo=paris)})
    assert sent["StartDate__c"] == dt.datetime(2023, 1, 1, 0, 0, tzinfo=UTC)
    assert sent["StartDate__c"].tzinfo is UTC
    naive = shipped.write("Subscription__c", values | {"start": dt.datetime(2023, 1, 1, 1, 0)})
    assert naive["StartDate__c"] == dt.datetime(2023, 1, 1, 1, 0, tzinfo=UTC)
    assert shipped.write("Subscription__c", values | {"start": dt.date(2023, 1, 1)})["StartDate__c"] == dt.date(2023, 1, 1)


def test_write_rejects_values_outside_the_engine_enumeration(shipped):
    with pytest.raises(MappingError, match="'upgrade' is not one of new, update, renew, cancel, terms"):
        shipped.write("OrderItem", {"id": "L-1", "action": "upgrade"})


def test_references_resolve_to_salesforce_ids(shipped):
    known = {("Order", "O-1"): "801000000000001AAA", ("Product2", "P-1"): "01t000000000001AAA"}
    values = {"id": "L-1", "order": "O-1", "product": "P-1", "pricebook_entry": None, "action": Action.NEW}
    payload = shipped.write("OrderItem", values, resolve=lambda obj, ref: known.get((obj, ref)))
    assert payload["OrderId"] == "801000000000001AAA" and payload["Product2Id"] == "01t000000000001AAA"
    with pytest.raises(UnresolvedReference, match="names a Product2 record that has no Salesforce Id yet"):
        shipped.write("OrderItem", values | {"product": "P-2"}, resolve=lambda obj, ref: known.get((obj, ref)))


def test_create_only_fields_are_left_out_of_updates(shipped):
    values = {"id": "L-1", "order": "801000000000001AAA", "product": "01t000000000001AAA", "action": Action.NEW}
    created = shipped.write("OrderItem", values)
    updated = shipped.write("OrderItem", values, creating=False)
    assert {"OrderId", "Product2Id", "PricebookEntryId"} <= set(created)
    assert not {"OrderId", "Product2Id", "PricebookEntryId"} & set(updated)
    assert updated["ExternalId__c"] == "L-1"


def test_write_record_is_the_function_behind_mapping_set_write(shipped):
    assert write_record(shipped.writing("ArrByPeriod__b"), ROW) == shipped.write("ArrByPeriod__b", ROW)
    assert read_record(shipped.reading("OrderItem"), ITEM_CSV) == shipped.read("OrderItem", ITEM_CSV)
