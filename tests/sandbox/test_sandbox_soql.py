"""The strict SOQL subset: what it accepts, what it rejects (with Salesforce's codes), how it evaluates."""
from __future__ import annotations

import pytest

from connector.sandbox import soql
from connector.sandbox.errors import ApiError
from connector.sandbox.schema import load_schema

SCHEMA = load_schema()

ACCEPTED = [
    ("plain", "SELECT Id, Name FROM Account"),
    ("lowercase-keywords", "select id, name from account where name = 'x'"),
    ("parent-field", "SELECT Id, Account.Name, Owner.Name FROM Opportunity"),
    ("two-level-parent", "SELECT Id, Opportunity.Account.Name FROM Quote"),
    ("custom-relationship", "SELECT Id, Account__r.Name FROM Subscription__c"),
    ("count", "SELECT COUNT() FROM Account"),
    ("count-field", "SELECT COUNT(Id) FROM Account"),
    ("and-or-parens", "SELECT Id FROM Opportunity WHERE (StageName = 'Closed Won' OR IsWon = TRUE) AND Amount > 0"),
    ("not", "SELECT Id FROM Opportunity WHERE NOT (StageName = 'Closed Lost')"),
    ("in-not-in", "SELECT Id FROM Order WHERE Status IN ('Draft', 'Activated') AND Type NOT IN ('Renewal')"),
    ("like", "SELECT Id FROM Account WHERE Name LIKE 'Ac%'"),
    ("null", "SELECT Id FROM Order WHERE EndDate = null AND ActivatedDate != NULL"),
    ("date-literal", "SELECT Id FROM Period WHERE Type = 'Month' AND StartDate >= 2023-01-01"),
    ("datetime-z", "SELECT Id FROM Account WHERE SystemModstamp >= 2023-01-01T00:00:00Z"),
    ("datetime-offset-ms", "SELECT Id FROM Account WHERE SystemModstamp > 2023-01-01T00:00:00.000+0000"),
    ("datetime-colon-offset", "SELECT Id FROM Account WHERE LastModifiedDate < 2023-01-01T01:00:00+01:00"),
    ("escapes", r"SELECT Id FROM Account WHERE Name = 'O\'Brien \\ \"x\" \n'"),
    ("order-by-full", "SELECT Id FROM Account ORDER BY Name DESC NULLS LAST, Id ASC NULLS FIRST LIMIT 10 OFFSET 5"),
    ("id-15", "SELECT Id FROM Account WHERE Id = '0037e00001WZ30q'"),
    ("negative-number", "SELECT Id FROM OrderItem WHERE Quantity > -1.5"),
    ("object-prefix-path", "SELECT Account.Name FROM Account"),
    ("big-object", "SELECT StartDate__c, OrderProduct__c FROM ArrByPeriod__b WHERE StartDate__c = 2023-01-01T00:00:00Z"),
]


@pytest.mark.parametrize("text", [t for _, t in ACCEPTED], ids=[i for i, _ in ACCEPTED])
def test_accepted(text):
    q = soql.parse(text, SCHEMA)
    assert q.obj is not None


REJECTED = [
    ("empty", "", "MALFORMED_QUERY"),
    ("no-from", "SELECT Id", "MALFORMED_QUERY"),
    ("unknown-object", "SELECT Id FROM Xyzzy", "INVALID_TYPE"),
    ("unknown-field", "SELECT Foo FROM Account", "INVALID_FIELD"),
    ("unknown-field-in-where", "SELECT Id FROM Account WHERE Foo = 'x'", "INVALID_FIELD"),
    ("unknown-relationship", "SELECT Foo.Name FROM Account", "INVALID_FIELD"),
    ("custom-rel-without-r", "SELECT Account__c.Name FROM Subscription__c", "INVALID_FIELD"),
    ("mixed-and-or", "SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'", "MALFORMED_QUERY"),
    ("subquery", "SELECT Id, (SELECT Id FROM Opportunities) FROM Account", "MALFORMED_QUERY"),
    ("semi-join", "SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Opportunity)", "MALFORMED_QUERY"),
    ("group-by", "SELECT Name FROM Account GROUP BY Name", "MALFORMED_QUERY"),
    ("relative-date", "SELECT Id FROM Account WHERE CreatedDate = TODAY", "MALFORMED_QUERY"),
    ("quoted-date", "SELECT Id FROM Opportunity WHERE CloseDate = '2023-01-01'", "INVALID_FIELD"),
    ("date-for-datetime", "SELECT Id FROM Account WHERE SystemModstamp > 2023-01-01", "INVALID_FIELD"),
    ("unquoted-string", "SELECT Id FROM Account WHERE Name = 5", "INVALID_FIELD"),
    ("string-for-number", "SELECT Id FROM Opportunity WHERE Amount > '5'", "INVALID_FIELD"),
    ("string-for-boolean", "SELECT Id FROM Opportunity WHERE IsWon = 'true'", "INVALID_FIELD"),
    ("bad-id", "SELECT Id FROM Account WHERE Id = 'nope'", "INVALID_QUERY_FILTER_OPERATOR"),
    ("bad-escape", r"SELECT Id FROM Account WHERE Name = 'a\q'", "MALFORMED_QUERY"),
    ("unterminated-string", "SELECT Id FROM Account WHERE Name = 'a", "MALFORMED_QUERY"),
    ("trailing-garbage", "SELECT Id FROM Account LIMIT 5 banana", "MALFORMED_QUERY"),
    ("offset-too-big", "SELECT Id FROM Account OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE"),
    ("count-with-fields", "SELECT COUNT(), Name FROM Account", "MALFORMED_QUERY"),
    ("duplicate-field", "SELECT Name, name FROM Account", "MALFORMED_QUERY"),
    ("for-update", "SELECT Id FROM Account FOR UPDATE", "MALFORMED_QUERY"),
    ("bad-char", "SELECT Id FROM Account WHERE Name = 'a' ; DROP", "MALFORMED_QUERY"),
    ("like-on-number", "SELECT Id FROM Opportunity WHERE Amount LIKE '5%'", "INVALID_FIELD"),
    ("less-than-boolean", "SELECT Id FROM Opportunity WHERE IsWon < TRUE", "INVALID_FIELD"),
    ("nulls-without-side", "SELECT Id FROM Account ORDER BY Name NULLS", "MALFORMED_QUERY"),
    ("limit-not-int", "SELECT Id FROM Account LIMIT 1.5", "MALFORMED_QUERY"),
]


@pytest.mark.parametrize("text, code", [(t, c) for _, t, c in REJECTED], ids=[i for i, _, _ in REJECTED])
def test_rejected(text, code):
    with pytest.raises(ApiError) as info:
        soql.parse(text, SCHEMA)
    assert info.value.status == 400
    assert info.value.error_code == code


def test_error_message_has_caret_diagram_like_salesforce():
    # Same query as samples/error-query-invalid-type-400.json, which reports Row:1:Column:19.
    with pytest.raises(ApiError) as info:
        soql.parse("SELECT Xyzzy FROM Xyzzy", SCHEMA)
    assert info.value.message.startswith("\nSELECT Xyzzy FROM Xyzzy\n                  ^\nERROR at Row:1:Column:19\n")
    assert "sObject type 'Xyzzy' is not supported." in info.value.message


def test_string_escapes_decode():
    q = soql.parse(r"SELECT Id FROM Account WHERE Name = 'O\'Brien\\\u00e9'", SCHEMA)
    assert q.where.values[0].value == "O'Brien\\é"


def _run(org_records, text):
    q = soql.parse(text, SCHEMA)
    rows = [r for r in org_records if soql.matches(q, r, lambda *_: None, SCHEMA)]
    return [r["Name"] for r in soql.sort_records(q, rows, lambda *_: None, SCHEMA)]


ACCOUNTS = [
    {"Id": "001000000000001AAA", "Name": "beta", "AccountNumber": None},
    {"Id": "001000000000002AAA", "Name": "Alpha", "AccountNumber": "2"},
    {"Id": "001000000000003AAA", "Name": "100% gamma_x", "AccountNumber": "1"},
]


@pytest.mark.parametrize(
    "where, expected",
    [
        ("Name = 'ALPHA'", ["Alpha"]),  # text comparison is case-insensitive
        ("Name != 'alpha'", ["beta", "100% gamma_x"]),
        ("AccountNumber = null", ["beta"]),
        ("AccountNumber != null", ["Alpha", "100% gamma_x"]),
        ("AccountNumber != '1'", ["beta", "Alpha"]),  # null != 'x' is true in SOQL
        ("AccountNumber > '1'", ["Alpha"]),  # null never compares greater
        ("Name LIKE 'a%'", ["Alpha"]),
        (r"Name LIKE '100\% gamma\_%'", ["100% gamma_x"]),
        (r"Name LIKE '100\% gammaa%'", []),
        ("Name LIKE '_eta'", ["beta"]),
        ("Name IN ('beta', 'ALPHA')", ["beta", "Alpha"]),
        ("Name NOT IN ('beta')", ["Alpha", "100% gamma_x"]),
        ("NOT Name = 'beta' AND (AccountNumber = '1' OR AccountNumber = '2')", ["Alpha", "100% gamma_x"]),
    ],
    ids=["eq-ci", "ne", "is-null", "not-null", "null-ne", "null-gt", "like-prefix", "like-escaped", "like-escaped-miss",
         "like-underscore", "in", "not-in", "not-and-or"],
)
def test_where_evaluation(where, expected):
    assert _run(ACCOUNTS, f"SELECT Id FROM Account WHERE {where}") == expected


@pytest.mark.parametrize(
    "order, expected",
    [
        ("AccountNumber", ["beta", "100% gamma_x", "Alpha"]),  # ASC puts nulls first by default
        ("AccountNumber DESC", ["Alpha", "100% gamma_x", "beta"]),  # DESC puts nulls last by default
        ("AccountNumber ASC NULLS LAST", ["100% gamma_x", "Alpha", "beta"]),
        ("AccountNumber DESC NULLS FIRST", ["beta", "Alpha", "100% gamma_x"]),
        ("Name", ["100% gamma_x", "Alpha", "beta"]),  # case-insensitive collation
    ],
    ids=["asc-default-nulls-first", "desc-default-nulls-last", "asc-nulls-last", "desc-nulls-first", "ci-sort"],
)
def test_order_by(order, expected):
    assert _run(ACCOUNTS, f"SELECT Id FROM Account ORDER BY {order}") == expected


def test_datetime_literals_normalise_to_utc():
    q = soql.parse("SELECT Id FROM Account WHERE SystemModstamp >= 2023-01-01T01:30:00+01:00", SCHEMA)
    assert q.where.values[0].value == "2023-01-01T00:30:00.000+0000"
