"""SOQL quoting and identifiers: a table of values and the literal each must become."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from connector.salesforce.soql import contains, identifier, quote, select, starts_with

UTC = dt.timezone.utc


@pytest.mark.parametrize(("value", "literal"), [
    ("Acme", "'Acme'"),
    ("Bob's BBQ", r"'Bob\'s BBQ'"),
    ("back\\slash", r"'back\\slash'"),
    ('say "hi"', r"""'say \"hi\"'"""),
    ("line\nbreak\r\ttab", r"'line\nbreak\r\ttab'"),
    ("bell\b form\f", r"'bell\b form\f'"),
    ("nul\x00", r"'nul\u0000'"),
    ("' OR Name != '", r"'\' OR Name != \''"),
    ("\\' OR 1=1", r"'\\\' OR 1=1'"),
    ("café ✓", "'café ✓'"),
    (None, "null"),
    (True, "true"),
    (False, "false"),
    (42, "42"),
    (Decimal("1234.50"), "1234.50"),
    (Decimal("1E+3"), "1000"),
    (dt.date(2024, 2, 29), "2024-02-29"),
    (dt.datetime(2024, 1, 1, 1, 30, 15, 999999, tzinfo=dt.timezone(dt.timedelta(hours=2))),
     "2023-12-31T23:30:15Z"),
    (["a", "b'c"], r"('a', 'b\'c')"),
    ((1, Decimal("2.5")), "(1, 2.5)"),
], ids=["plain", "single-quote", "backslash", "double-quote", "newline-cr-tab", "bell-formfeed",
        "control-char", "injection-quote", "injection-backslash", "unicode", "none", "true", "false",
        "int", "decimal", "decimal-exponent", "date", "datetime-to-utc", "list", "tuple-mixed"])
def test_quote(value, literal):
    assert quote(value) == literal


@pytest.mark.parametrize("value", [
    1.5, Decimal("NaN"), dt.datetime(2024, 1, 1), [], [[1]], object(),
], ids=["float", "nan", "naive-datetime", "empty-list", "nested-list", "object"])
def test_quote_refuses(value):
    with pytest.raises((TypeError, ValueError)):
        quote(value)


@pytest.mark.parametrize("name", [
    "Id", "Account", "ExternalId__c", "ns__Thing__c", "Account.Owner.Name", "Subscription__r.Name",
    "ArrByPeriod__b", "Order_Status__c", "OpportunityChangeEvent",
], ids=lambda n: n)
def test_identifier_accepts_api_names(name):
    assert identifier(name) == name


@pytest.mark.parametrize("name", [
    "", "1Account", "Name,Id", "Id FROM User--", "Amount__c)", "Bad__", "a__b__c__d", "_x", "x_",
    "Name; DELETE", "Account.", "Na me", "Id\n",
], ids=["empty", "digit-first", "comma", "injection", "paren", "trailing-double", "too-many-parts",
        "leading-underscore", "trailing-underscore", "semicolon", "dangling-dot", "space", "newline"])
def test_identifier_rejects(name):
    with pytest.raises(ValueError):
        identifier(name)


def test_builder_renders_a_whole_query():
    since = dt.datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
    q = (select("Id", "Name", "Account.Name", "Id").from_("Opportunity")
         .where("SystemModstamp", ">=", since)
         .where("StageName", "in", ["Closed Won", "Negotiation"])
         .where_any([("Amount", ">", Decimal("10.00")), ("Amount", "=", None)])
         .order_by("SystemModstamp", "Id").limit(2000))
    assert q.build() == (
        "SELECT Id, Name, Account.Name FROM Opportunity WHERE SystemModstamp >= 2024-05-01T00:00:00Z "
        "AND StageName IN ('Closed Won', 'Negotiation') AND (Amount > 10.00 OR Amount = null) "
        "ORDER BY SystemModstamp ASC, Id ASC LIMIT 2000")
    assert q.count().build() == (
        "SELECT COUNT() FROM Opportunity WHERE SystemModstamp >= 2024-05-01T00:00:00Z AND StageName "
        "IN ('Closed Won', 'Negotiation') AND (Amount > 10.00 OR Amount = null)")


def test_like_patterns_escape_wildcards_in_literal_text():
    q = select("Id").from_("Account")
    assert q.where("Name", "LIKE", starts_with("50%_off's")).build().endswith(
        r"WHERE Name LIKE '50\%\_off\'s%'")
    assert q.where("Name", "LIKE", contains("a\\b")).build().endswith(r"WHERE Name LIKE '%a\\b%'")
    assert q.where("Name", "LIKE", "Ter%").build().endswith("WHERE Name LIKE 'Ter%'")


@pytest.mark.parametrize(("field", "op", "value"), [
    ("Name", "= 'x' OR Name", "x"), ("Name", "IN", "x"), ("Name", "=", ["x"]), ("Name", ">", None),
    ("Name) OR (Id", "=", "x"), ("Name", "=", starts_with("x")),
], ids=["operator-injection", "in-needs-list", "eq-takes-one", "null-ordering", "field-injection",
        "like-object-with-eq"])
def test_where_refuses(field, op, value):
    with pytest.raises((TypeError, ValueError)):
        select("Id").from_("Account").where(field, op, value)
