"""A strict SOQL subset: parse, check against the schema, evaluate over in-memory records.

Supported (SOQL and SOSL Reference, "SOQL SELECT Syntax"):

- ``SELECT`` a field list, including parent relationship paths (``Account.Name``, ``Owner.Name``,
  ``Account__r.Name``, up to 5 levels), or ``COUNT()`` alone, or ``COUNT(field)`` alone (an
  ``AggregateResult`` with ``expr0``, as in samples/query-aggregate-count.json);
- ``FROM`` one object;
- ``WHERE`` with ``AND``/``OR``/``NOT`` and parentheses (mixing AND and OR at one level without
  parentheses is rejected, as Salesforce does), ``= != <> < <= > >=``, ``IN (...)``, ``NOT IN (...)``,
  ``LIKE`` (``%``/``_``, case-insensitive), ``null``, ``TRUE``/``FALSE``, numbers, date
  (``2023-01-31``) and datetime (``2023-01-31T00:00:00Z``, ``...000+0000``, ``...+01:00``) literals and
  quoted strings with Salesforce's escapes (``\\n \\r \\t \\b \\f \\" \\' \\\\ \\uXXXX``, and ``\\_ \\%`` in LIKE);
- ``ORDER BY`` fields with ``ASC``/``DESC`` and ``NULLS FIRST``/``NULLS LAST``; ``LIMIT``; ``OFFSET`` (max 2000).

Anything else (sub-queries, GROUP BY, date functions, relative date literals such as ``TODAY``,
``FOR UPDATE``, ``USING SCOPE``, semi-joins) is rejected with ``MALFORMED_QUERY`` rather than
ignored, so a client never believes a filter was applied when it was not. Unknown objects give
``INVALID_TYPE``, unknown fields and relationships ``INVALID_FIELD``, a literal of the wrong type for
its field ``INVALID_FIELD``, a malformed Id ``INVALID_QUERY_FILTER_OPERATOR``; messages carry the
caret diagram of samples/error-query-invalid-type-400.json.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Callable

from . import ids
from .errors import ApiError
from .schema import FieldDef, ObjectDef, Schema

MAX_OFFSET = 2000  # "The maximum offset is 2,000 rows" (SOQL reference, OFFSET)
MAX_RELATIONSHIP_DEPTH = 5  # "No more than five levels of child-to-parent relationships"

_KEYWORDS = {
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "NULLS",
    "FIRST", "LAST", "LIMIT", "OFFSET", "NULL", "TRUE", "FALSE", "COUNT", "GROUP", "HAVING", "FOR",
    "USING", "WITH", "INCLUDES", "EXCLUDES", "TYPEOF",
}
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\dT]))
  | (?P<number>[+-]?(?:\d+\.\d*|\.\d+|\d+)(?![\w.]))
  | (?P<string>')
  | (?P<ident>[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*)
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


@dataclass
class Token:
    """One lexical token with its 0-based offset into the query text."""

    kind: str  # ws-free: datetime, date, number, string, ident, op, punct, eof
    text: str
    pos: int
    value: object = None
    raw: str = ""  # for strings: the body with LIKE escapes (\_ \%) kept


@dataclass
class Literal:
    """A literal value in a filter: its SOQL kind and Python value."""

    kind: str  # string, number, date, datetime, null, boolean
    value: object
    pos: int
    like_pattern: str | None = None


@dataclass
class Comparison:
    """``path op literal`` / ``path [NOT] IN (literals)`` / ``path LIKE literal``."""

    path: list[str]
    op: str
    values: list[Literal]
    pos: int
    field: FieldDef | None = None


@dataclass
class BoolOp:
    """AND / OR over sub-conditions, or NOT over one."""

    op: str
    items: list


@dataclass
class OrderItem:
    """One ORDER BY term."""

    path: list[str]
    descending: bool
    nulls_last: bool
    pos: int


@dataclass
class Query:
    """A parsed and schema-checked SOQL query, ready to run over records."""

    text: str
    obj: ObjectDef
    select: list[list[str]]  # canonical field paths
    where: object | None
    order: list[OrderItem]
    limit: int | None
    offset: int
    count: str | None = None  # None, "count()" or "count(field)"
    count_path: list[str] = field(default_factory=list)


def _error(text: str, pos: int, code: str, message: str) -> ApiError:
    # Salesforce repeats the query, draws a caret under the offending token and names row and column.
    before = text[:pos]
    row = before.count("\n") + 1
    col = pos - (before.rfind("\n") + 1) + 1
    line = text.split("\n")[row - 1]
    return ApiError(400, code, f"\n{line}\n{' ' * (col - 1)}^\nERROR at Row:{row}:Column:{col}\n{message}")


def tokenize(text: str) -> list[Token]:
    """Split SOQL into tokens; a character that starts no token is ``MALFORMED_QUERY``."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise _error(text, pos, "MALFORMED_QUERY", f"unexpected token: '{text[pos]}'")
        kind = m.lastgroup
        if kind == "ws":
            pos = m.end()
            continue
        if kind == "string":
            value, raw, end = _read_string(text, pos)
            tokens.append(Token("string", text[pos:end], pos, value, raw))
            pos = end
            continue
        tok = Token(kind, m.group(), pos)
        if kind == "ident" and "." not in tok.text and tok.text.upper() in _KEYWORDS:
            tok.kind = "kw"
            tok.value = tok.text.upper()
        tokens.append(tok)
        pos = m.end()
    tokens.append(Token("eof", "", len(text)))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, str, int]:
    out, raw = [], []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "'":
            return "".join(out), "".join(raw), i + 1
        if ch == "\\":
            if i + 1 >= len(text):
                break
            nxt = text[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                raw.append("\\" + nxt if nxt in "\\" else _ESCAPES[nxt])
                i += 2
                continue
            if nxt in "_%":
                # Only meaningful in LIKE; elsewhere Salesforce keeps the backslash and the character.
                out.append("\\" + nxt)
                raw.append("\\" + nxt)
                i += 2
                continue
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2:i + 6] or ""):
                ch = chr(int(text[i + 2:i + 6], 16))
                out.append(ch)
                raw.append(ch)
                i += 6
                continue
            raise _error(text, i, "MALFORMED_QUERY",
                         f"Invalid string literal '{text[start:i + 2]}'. Illegal character sequence '\\{nxt}' in string literal.")
        out.append(ch)
        raw.append(ch)
        i += 1
    raise _error(text, start, "MALFORMED_QUERY", "unexpected token: '<EOF>'")


class _Parser:
    def __init__(self, text: str, schema: Schema):
        self.text = text
        self.schema = schema
        self.tokens = tokenize(text)
        self.i = 0

    # --- token helpers -------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == "kw" and self.tok.value in words

    def expect_kw(self, word: str) -> Token:
        if not self.is_kw(word):
            self.unexpected()
        return self.advance()

    def expect_punct(self, ch: str) -> Token:
        if not (self.tok.kind == "punct" and self.tok.text == ch):
            self.unexpected()
        return self.advance()

    def unexpected(self):
        tok = self.tok
        shown = "<EOF>" if tok.kind == "eof" else tok.text
        raise _error(self.text, tok.pos, "MALFORMED_QUERY", f"unexpected token: '{shown}'")

    # --- grammar -------------------------------------------------------------------------------
    def parse(self) -> Query:
        self.expect_kw("SELECT")
        raw_select: list[Token] = []
        count = None
        count_tok = None
        while True:
            if self.is_kw("COUNT"):
                count_tok = self.advance()
                self.expect_punct("(")
                if self.tok.kind == "ident":
                    raw_select.append(self.advance())
                    count = "count(field)"
                else:
                    count = "count()"
                self.expect_punct(")")
            elif self.tok.kind == "ident":
                raw_select.append(self.advance())
            else:
                self.unexpected()
            if self.tok.kind == "punct" and self.tok.text == ",":
                self.advance()
                continue
            break
        if count and (len(raw_select) > (1 if count == "count(field)" else 0)):
            raise _error(self.text, count_tok.pos, "MALFORMED_QUERY",
                         "Field must be grouped or aggregated: " + raw_select[-1].text)
        self.expect_kw("FROM")
        # Object names may collide with keywords (FROM Order), so keywords are accepted here.
        if self.tok.kind not in ("ident", "kw") or "." in self.tok.text:
            self.unexpected()
        obj_tok = self.advance()
        obj = self.schema.get(obj_tok.text)
        if obj is None:
            raise _error(self.text, obj_tok.pos, "INVALID_TYPE",
                         f"sObject type '{obj_tok.text}' is not supported. If you are attempting to use a custom object, "
                         "be sure to append the '__c' after the entity name. Please reference your WSDL or the describe "
                         "call for the appropriate names.")
        self.obj = obj
        select: list[list[str]] = []
        seen = set()
        for t in raw_select:
            path, _ = self.resolve(t.text, t.pos)
            key = ".".join(path).lower()
            if key in seen:
                raise _error(self.text, t.pos, "MALFORMED_QUERY", f"duplicate field selected: {t.text}")
            seen.add(key)
            select.append(path)
        where = None
        if self.is_kw("WHERE"):
            self.advance()
            where = self.condition()
        order: list[OrderItem] = []
        if self.is_kw("ORDER"):
            self.advance()
            self.expect_kw("BY")
            while True:
                if self.tok.kind != "ident":
                    self.unexpected()
                t = self.advance()
                path, _ = self.resolve(t.text, t.pos)
                desc = False
                if self.is_kw("ASC", "DESC"):
                    desc = self.advance().value == "DESC"
                nulls_last = desc  # Salesforce default: ASC NULLS FIRST, DESC NULLS LAST
                if self.is_kw("NULLS"):
                    self.advance()
                    if not self.is_kw("FIRST", "LAST"):
                        self.unexpected()
                    nulls_last = self.advance().value == "LAST"
                order.append(OrderItem(path, desc, nulls_last, t.pos))
                if self.tok.kind == "punct" and self.tok.text == ",":
                    self.advance()
                    continue
                break
        limit = None
        offset = 0
        if self.is_kw("LIMIT"):
            self.advance()
            limit = self.integer()
        if self.is_kw("OFFSET"):
            t = self.advance()
            offset = self.integer()
            if offset > MAX_OFFSET:
                raise _error(self.text, t.pos, "NUMBER_OUTSIDE_VALID_RANGE",
                             f"Maximum SOQL offset allowed is {MAX_OFFSET}")
        if self.tok.kind != "eof":
            self.unexpected()
        count_path = select[0] if count == "count(field)" else []
        return Query(self.text, obj, [] if count else select, where, order, limit, offset, count, count_path)

    def integer(self) -> int:
        if self.tok.kind != "number" or not re.fullmatch(r"\d+", self.tok.text):
            self.unexpected()
        return int(self.advance().text)

    def condition(self):
        first = self.unary()
        items = [first]
        joiner = None
        while self.is_kw("AND", "OR"):
            word = self.tok.value
            if joiner and word != joiner:
                # "a AND b OR c" is ambiguous in SOQL and rejected; parentheses are required.
                self.unexpected()
            joiner = word
            self.advance()
            items.append(self.unary())
        return items[0] if joiner is None else BoolOp(joiner, items)

    def unary(self):
        if self.is_kw("NOT"):
            self.advance()
            return BoolOp("NOT", [self.unary()])
        if self.tok.kind == "punct" and self.tok.text == "(":
            self.advance()
            inner = self.condition()
            self.expect_punct(")")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        if self.tok.kind != "ident":
            self.unexpected()
        t = self.advance()
        path, fdef = self.resolve(t.text, t.pos)
        if self.tok.kind == "op":
            op = self.advance().text
            op = "!=" if op == "<>" else op
            values = [self.literal()]
        elif self.is_kw("NOT"):
            self.advance()
            self.expect_kw("IN")
            op = "NOT IN"
            values = self.literal_list()
        elif self.is_kw("IN"):
            self.advance()
            op = "IN"
            values = self.literal_list()
        elif self.is_kw("LIKE"):
            self.advance()
            op = "LIKE"
            values = [self.literal()]
        else:
            self.unexpected()
        cmp = Comparison(path, op, values, t.pos, fdef)
        self.check_types(cmp, t.text)
        return cmp

    def literal_list(self) -> list[Literal]:
        self.expect_punct("(")
        if self.is_kw("SELECT"):
            # Semi-joins are outside the subset: say so instead of mis-evaluating them.
            self.unexpected()
        values = [self.literal()]
        while self.tok.kind == "punct" and self.tok.text == ",":
            self.advance()
            values.append(self.literal())
        self.expect_punct(")")
        return values

    def literal(self) -> Literal:
        t = self.tok
        if t.kind == "string":
            self.advance()
            return Literal("string", t.value, t.pos, like_pattern=t.raw)
        if t.kind == "number":
            self.advance()
            num = float(t.text) if any(c in t.text for c in ".") else int(t.text)
            return Literal("number", num, t.pos)
        if t.kind == "date":
            self.advance()
            try:
                return Literal("date", dt.date.fromisoformat(t.text).isoformat(), t.pos)
            except ValueError:
                raise _error(self.text, t.pos, "MALFORMED_QUERY", f"line 1:{t.pos} no viable alternative at character ' '")
        if t.kind == "datetime":
            self.advance()
            return Literal("datetime", _parse_datetime_literal(self.text, t), t.pos)
        if self.is_kw("NULL"):
            self.advance()
            return Literal("null", None, t.pos)
        if self.is_kw("TRUE", "FALSE"):
            self.advance()
            return Literal("boolean", t.value == "TRUE", t.pos)
        self.unexpected()

    def resolve(self, dotted: str, pos: int) -> tuple[list[str], FieldDef]:
        """Resolve ``Rel.Rel.Field`` against the schema, returning canonical names and the field."""
        parts = dotted.split(".")
        if len(parts) > MAX_RELATIONSHIP_DEPTH + 1:
            raise _error(self.text, pos, "MALFORMED_QUERY",
                         "SOQL statements cannot query more than 5 levels of relationships")
        obj = self.obj
        out: list[str] = []
        # A leading "Account." that names the FROM object itself is allowed by SOQL.
        if len(parts) > 1 and parts[0].lower() == obj.name.lower() and obj.by_relationship(parts[0]) is None:
            parts = parts[1:]
        for rel in parts[:-1]:
            f = obj.by_relationship(rel)
            if f is None or f.type != "reference":
                raise _error(self.text, pos, "INVALID_FIELD",
                             f"Didn't understand relationship '{rel}' in field path. If you are attempting to use a "
                             "custom relationship, be sure to append the '__r' after the custom relationship name. "
                             "Please reference your WSDL or the describe call for the appropriate names.")
            target = self.schema.get(f.reference_to[0])
            if target is None:
                raise _error(self.text, pos, "INVALID_FIELD", f"Didn't understand relationship '{rel}' in field path.")
            out.append(f.relationship_name)
            obj = target
        fdef = obj.field(parts[-1])
        if fdef is None:
            raise _error(self.text, pos, "INVALID_FIELD",
                         f"No such column '{parts[-1]}' on entity '{obj.name}'. If you are attempting to use a custom "
                         "field, be sure to append the '__c' after the custom field name. Please reference your WSDL "
                         "or the describe call for the appropriate names.")
        out.append(fdef.name)
        return out, fdef

    def check_types(self, cmp: Comparison, shown: str) -> None:
        f = cmp.field
        ftype = f.type
        for lit in cmp.values:
            if lit.kind == "null":
                if cmp.op not in ("=", "!=", "IN", "NOT IN"):
                    raise _error(self.text, lit.pos, "MALFORMED_QUERY", "unexpected token: 'null'")
                continue
            expected = {
                "string": "string", "textarea": "string", "picklist": "string", "email": "string", "phone": "string",
                "url": "string", "id": "string", "reference": "string", "double": "number", "currency": "number",
                "percent": "number", "int": "number", "date": "date", "datetime": "datetime", "boolean": "boolean",
            }[ftype]
            if lit.kind != expected:
                sf_type = {"double": "double", "currency": "double", "percent": "double", "int": "int",
                           "date": "date", "datetime": "dateTime", "boolean": "boolean", "id": "id",
                           "reference": "id"}.get(ftype, "string")
                quoted = "should be enclosed in quotes" if expected == "string" else "should not be enclosed in quotes"
                raise _error(self.text, lit.pos, "INVALID_FIELD",
                             f"value of filter criterion for field '{shown}' must be of type {sf_type} and {quoted}")
            if f.is_id_like and cmp.op != "LIKE":
                if not ids.is_valid(lit.value):
                    raise _error(self.text, lit.pos, "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {lit.value}")
                lit.value = ids.canonical(lit.value)
            if cmp.op == "LIKE" and expected != "string":
                raise _error(self.text, lit.pos, "INVALID_FIELD",
                             f"invalid operator on {ftype} field: LIKE")
            if ftype == "boolean" and cmp.op not in ("=", "!="):
                raise _error(self.text, lit.pos, "INVALID_FIELD", f"invalid operator on boolean field: {cmp.op}")


def _parse_datetime_literal(text: str, t: Token) -> str:
    raw = t.text
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?(Z|([+-])(\d{2}):?(\d{2}))", raw)
    try:
        base = dt.datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}:{m.group(3)}:{m.group(4)}")
        ms = int((m.group(5) or "0").ljust(3, "0"))
        base = base.replace(microsecond=ms * 1000, tzinfo=dt.timezone.utc)
        if m.group(6) != "Z":
            sign = 1 if m.group(7) == "+" else -1
            base -= sign * dt.timedelta(hours=int(m.group(8)), minutes=int(m.group(9)))
    except (ValueError, AttributeError):
        raise _error(text, t.pos, "MALFORMED_QUERY", f"unexpected token: '{raw}'")
    return format_datetime(base)


def format_datetime(value: dt.datetime) -> str:
    """Salesforce's REST datetime format: ``2023-01-01T00:00:00.000+0000`` (always UTC)."""
    value = value.astimezone(dt.timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def parse(text: str, schema: Schema) -> Query:
    """Parse and check one SOQL statement; raises :class:`ApiError` with Salesforce's codes."""
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
    return _Parser(text, schema).parse()


# --- evaluation --------------------------------------------------------------------------------

#: resolves (object name, 18-char id) to a stored record dict, or None
Resolver = Callable[[str, str], "dict | None"]


def path_value(obj: ObjectDef, record: dict, path: list[str], resolve: Resolver, schema: Schema):
    """The value at ``path`` (relationship names then a field) starting from ``record``."""
    current, cur_obj = record, obj
    for rel in path[:-1]:
        f = cur_obj.by_relationship(rel)
        ref = current.get(f.name)
        if ref is None:
            return None
        target = schema.get(f.reference_to[0])
        current = resolve(target.name, ref)
        if current is None:
            return None
        cur_obj = target
    return current.get(path[-1])


def _norm(value, ftype: str):
    if isinstance(value, str) and ftype not in ("id", "reference"):
        return value.casefold()
    return value


def _like(value: str, pattern: str) -> bool:
    regex = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "_%\\":
            regex.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        regex.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.fullmatch("".join(regex), value, re.IGNORECASE | re.DOTALL) is not None


def matches(q: Query, record: dict, resolve: Resolver, schema: Schema) -> bool:
    """True when ``record`` satisfies the query's WHERE clause."""
    return q.where is None or _eval(q.where, q.obj, record, resolve, schema)


def _eval(node, obj: ObjectDef, record: dict, resolve: Resolver, schema: Schema) -> bool:
    if isinstance(node, BoolOp):
        if node.op == "AND":
            return all(_eval(n, obj, record, resolve, schema) for n in node.items)
        if node.op == "OR":
            return any(_eval(n, obj, record, resolve, schema) for n in node.items)
        return not _eval(node.items[0], obj, record, resolve, schema)
    ftype = node.field.type
    value = _norm(path_value(obj, record, node.path, resolve, schema), ftype)
    lits = [_norm(lit.value, ftype) for lit in node.values]
    op = node.op
    if op == "=":
        return value == lits[0]
    if op == "!=":
        return value != lits[0]
    if op == "IN":
        return value in lits
    if op == "NOT IN":
        return value not in lits
    if op == "LIKE":
        return value is not None and _like(str(value), node.values[0].like_pattern or "")
    if value is None or lits[0] is None:
        return False
    return {"<": value < lits[0], "<=": value <= lits[0], ">": value > lits[0], ">=": value >= lits[0]}[op]


def sort_records(q: Query, records: list[dict], resolve: Resolver, schema: Schema) -> list[dict]:
    """Records in ORDER BY order (stable; by creation order when there is no ORDER BY)."""
    out = list(records)
    for item in reversed(q.order):
        ftype = _field_at(q.obj, item.path, schema).type
        present = [r for r in out if path_value(q.obj, r, item.path, resolve, schema) is not None]
        missing = [r for r in out if path_value(q.obj, r, item.path, resolve, schema) is None]
        present.sort(key=lambda r: _norm(path_value(q.obj, r, item.path, resolve, schema), ftype),
                     reverse=item.descending)
        out = present + missing if item.nulls_last else missing + present
    return out


def _field_at(obj: ObjectDef, path: list[str], schema: Schema) -> FieldDef:
    for rel in path[:-1]:
        obj = schema.get(obj.by_relationship(rel).reference_to[0])
    return obj.field(path[-1])


def render(q: Query, record: dict, resolve: Resolver, schema: Schema, attributes: Callable[[str, dict], dict]) -> dict:
    """One query result record: ``attributes`` then the selected fields, parents nested."""
    out: dict = {"attributes": attributes(q.obj.name, record)}
    for path in q.select:
        _put(out, q.obj, record, path, resolve, schema, attributes)
    return out


def _put(out: dict, obj: ObjectDef, record: dict, path: list[str], resolve, schema, attributes) -> None:
    if len(path) == 1:
        out[path[0]] = record.get(path[0])
        return
    rel = path[0]
    f = obj.by_relationship(rel)
    target = schema.get(f.reference_to[0])
    if rel in out and out[rel] is None:
        return
    parent = resolve(target.name, record[f.name]) if record.get(f.name) else None
    if parent is None:
        # A null parent renders as null, not as an object of nulls (REST query responses).
        out[rel] = None
        return
    nested = out.setdefault(rel, {"attributes": attributes(target.name, parent)})
    _put(nested, target, parent, path[1:], resolve, schema, attributes)
