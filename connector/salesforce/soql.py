"""SOQL built safely: values are quoted by type, identifiers checked against the API-name rules.

Nothing here pastes a caller's string into a query. Values go through `quote`, which follows the
SOQL "Quoted String Escape Sequences" and "Date Formats and Date Literals" pages of the SOQL and
SOSL Reference; names go through `identifier`, which accepts only valid API names (optionally a
namespace prefix and a `__c`-style suffix) and dotted relationship paths of them.

    select("Id", "Name", "Account.Name").from_("Opportunity")
        .where("SystemModstamp", ">=", since).where("StageName", "IN", ["Closed Won"])
        .order_by("SystemModstamp", "Id").limit(2000).build()
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# One API-name segment: starts with a letter; letters, digits and single underscores; no trailing
# underscore. Custom names add "__" + a suffix, and managed packages a "ns__" prefix.
_WORD = r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*"
_SUFFIX = r"(?:c|r|b|e|x|s|mdt|share|history|feed|kav|ka|xo|chn|pc|pr|dlm|dll|hd|ChangeEvent|Share|History|Feed)"
_API_NAME = re.compile(rf"(?:{_WORD}__)?{_WORD}(?:__{_SUFFIX})?")
_MAX_NAME = 255

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "LIKE", "IN", "NOT IN", "INCLUDES", "EXCLUDES")
_LIST_OPERATORS = {"IN", "NOT IN", "INCLUDES", "EXCLUDES"}

_ESCAPES = {
    "\\": "\\\\", "'": "\\'", '"': '\\"',
    "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f",
}


def identifier(name: str) -> str:
    """Return `name` if it is a valid API name or dotted relationship path; raise ValueError otherwise."""
    if not isinstance(name, str) or not name or len(name) > _MAX_NAME:
        raise ValueError(f"not a Salesforce API name: {name!r}")
    for segment in name.split("."):
        if not _API_NAME.fullmatch(segment):
            raise ValueError(f"not a Salesforce API name: {name!r}")
    return name


def sobject_name(name: str) -> str:
    """Return `name` if it is a valid sObject API name (no dots); raise ValueError otherwise."""
    if "." in str(name):
        raise ValueError(f"not a Salesforce sObject name: {name!r}")
    return identifier(name)


def quote_string(value: str) -> str:
    """A SOQL string literal: single-quoted, with backslash escapes for quotes and controls."""
    out = []
    for ch in value:
        escaped = _ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")  # SOQL accepts \uXXXX for any other control character
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


@dataclass(frozen=True)
class Like:
    """A LIKE pattern whose text matches literally, with `%` wildcards only where asked for."""

    text: str
    wildcard_before: bool = False
    wildcard_after: bool = False

    def render(self) -> str:
        """The quoted pattern; `%` and `_` in the text escaped (SOQL: LIKE expression only)."""
        body = quote_string(self.text)[1:-1].replace("%", "\\%").replace("_", "\\_")
        return "'" + ("%" if self.wildcard_before else "") + body + ("%" if self.wildcard_after else "") + "'"


def starts_with(text: str) -> Like:
    """A LIKE pattern for values beginning with `text`."""
    return Like(text, wildcard_after=True)


def ends_with(text: str) -> Like:
    """A LIKE pattern for values ending with `text`."""
    return Like(text, wildcard_before=True)


def contains(text: str) -> Like:
    """A LIKE pattern for values containing `text`."""
    return Like(text, wildcard_before=True, wildcard_after=True)


def quote(value: Any) -> str:
    """Render a Python value as a SOQL literal: str, bool, None, int, Decimal, date, datetime, list."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"SOQL has no literal for {value}")
        return format(value, "f")
    if isinstance(value, float):
        raise TypeError("floats are not quoted into SOQL; pass a Decimal (money is exact)")
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("SOQL datetimes must be timezone-aware (UTC is used)")
        # SOQL dateTime format YYYY-MM-DDThh:mm:ssZ; fractions of a second are dropped (floor).
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, str):
        return quote_string(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        if not items:
            raise ValueError("an empty list has no SOQL literal (IN () is invalid); skip the query")
        if any(isinstance(item, (list, tuple, set, frozenset)) for item in items):
            raise TypeError("nested lists have no SOQL literal")
        if isinstance(value, (set, frozenset)):
            items = sorted(items, key=repr)  # a stable query text for a set
        return "(" + ", ".join(quote(item) for item in items) + ")"
    raise TypeError(f"no SOQL literal for {type(value).__name__}")


def condition(field: str, op: str, value: Any) -> str:
    """One comparison `field op literal`, with the field checked and the value quoted."""
    operator = " ".join(op.upper().split())
    if operator not in OPERATORS:
        raise ValueError(f"unsupported SOQL operator {op!r}; use one of {', '.join(OPERATORS)}")
    is_list = isinstance(value, (list, tuple, set, frozenset))
    if operator in _LIST_OPERATORS and not is_list:
        raise TypeError(f"{operator} needs a list of values")
    if operator not in _LIST_OPERATORS and is_list:
        raise TypeError(f"{operator} takes one value; use IN for a list")
    if value is None and operator not in ("=", "!="):
        raise ValueError(f"null can only be compared with = or !=, not {operator}")
    if operator == "LIKE":
        # A plain str is a pattern: its % and _ are wildcards, every other character is escaped.
        if isinstance(value, Like):
            return f"{identifier(field)} LIKE {value.render()}"
        if not isinstance(value, str):
            raise TypeError("LIKE needs a str pattern or a Like")
        return f"{identifier(field)} LIKE {quote_string(value)}"
    if isinstance(value, Like):
        raise TypeError(f"a Like pattern only goes with LIKE, not {operator}")
    return f"{identifier(field)} {operator} {quote(value)}"


Condition = tuple[str, str, Any]


class Query:
    """A SELECT under construction; each method returns a new Query."""

    def __init__(self, fields: tuple[str, ...], sobject: str | None = None,
                 where: tuple[str, ...] = (), order: tuple[str, ...] = (),
                 limit: int | None = None):
        self._fields = fields
        self._sobject = sobject
        self._where = where
        self._order = order
        self._limit = limit

    def from_(self, sobject: str) -> Query:
        """Set the sObject queried."""
        return Query(self._fields, sobject_name(sobject), self._where, self._order, self._limit)

    def where(self, field: str, op: str, value: Any) -> Query:
        """AND one condition to the WHERE clause."""
        return Query(self._fields, self._sobject, self._where + (condition(field, op, value),),
                     self._order, self._limit)

    def where_any(self, conditions: Iterable[Condition]) -> Query:
        """AND a parenthesised OR of several conditions."""
        parts = [condition(*c) for c in conditions]
        if not parts:
            raise ValueError("where_any needs at least one condition")
        clause = parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"
        return Query(self._fields, self._sobject, self._where + (clause,), self._order, self._limit)

    def order_by(self, *fields: str, descending: bool = False) -> Query:
        """Set ORDER BY, ascending unless `descending`."""
        direction = " DESC" if descending else " ASC"
        return Query(self._fields, self._sobject, self._where,
                     tuple(identifier(f) + direction for f in fields), self._limit)

    def limit(self, n: int) -> Query:
        """Set LIMIT."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError("LIMIT must be a positive integer")
        return Query(self._fields, self._sobject, self._where, self._order, n)

    def count(self) -> Query:
        """The same query as SELECT COUNT(), without ORDER BY and LIMIT."""
        return Query(("COUNT()",), self._sobject, self._where)

    def build(self) -> str:
        """The SOQL text."""
        if self._sobject is None:
            raise ValueError("the query has no FROM; call .from_(sobject)")
        text = f"SELECT {', '.join(self._fields)} FROM {self._sobject}"
        if self._where:
            text += " WHERE " + " AND ".join(self._where)
        if self._order:
            text += " ORDER BY " + ", ".join(self._order)
        if self._limit is not None:
            text += f" LIMIT {self._limit}"
        return text

    def __str__(self) -> str:
        return self.build()


def select(*fields: str) -> Query:
    """Start a query selecting these fields (API names or relationship paths)."""
    if not fields:
        raise ValueError("select() needs at least one field")
    seen: dict[str, None] = {}
    for f in fields:
        seen.setdefault(identifier(f), None)
    return Query(tuple(seen))
