"""`revsync import FILE`: engine-origin orders from a JSON document (format in README.md).

The whole file is validated first (shape, references, and a dry-run activation of every order in
file order against the store's current state), so a file with any problem imports nothing. Then
each order is activated in its own transaction and its background jobs run. Importing the same
file again changes nothing; a crash half-way is mended by importing the file again.
"""
from __future__ import annotations

import hashlib
import heapq
import json
import codecs
import datetime as dt
import functools
import operator
from array import array
import gc
import marshal
import pickle
import struct
import os
import re
import signal
import logging
import warnings
import zlib
import tempfile
from contextlib import contextmanager
from itertools import takewhile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Iterator, Sequence

from pydantic import AfterValidator, Field, ValidationError, field_validator
from sqlalchemy import Connection, Engine

from connector.clock import Clock
from connector.engine import limits
from connector.engine.activation import OrderRejected, activate
from connector.engine.fiscal import FiscalCalendar
from connector.engine.ledger import Ledger
from connector.engine.model import Account, Activation, Credit, PricePeriod, Product, Provisioning
from connector.engine.money import STORE_SCALE
from connector.engine.settings import EngineSettings
from connector.errors import Problem, TransientError, ValidationFailed
from connector.jobs import JobOutcome, JobRunner, Outcomes, collector_paused, saved_jobs, usable_cores
# the one order model, shared with Salesforce ingest
from connector.orders import Amount, Currency, Id, LineDoc, Name, OrderDoc, Price, Doc, limited, order_input
from connector.orders import problems as _problems
from connector.store import db, encode, repository as repo
from connector.writers.outbox import ActivatedOrder, enqueue_activated, enqueue_activation


log = logging.getLogger(__name__)

CreditAmount = Annotated[Amount, AfterValidator(limited(limits.check_credit))]


class AccountDoc(Doc):
    id: Id
    name: Name
    bill_cycle_day: int | None = Field(default=None, ge=1, le=31)


class ProductDoc(Doc):
    id: Id
    name: Name
    provisioning: Provisioning
    list_price: Price
    price_period: PricePeriod


class CreditDoc(Doc):
    id: Annotated[str, AfterValidator(limited(limits.check_text))] | None = Field(default=None, max_length=128)
    account: Id
    currency: Currency
    amount: CreditAmount = Field(gt=0)

    @field_validator("amount")
    @classmethod
    def _storable(cls, value: Decimal) -> Decimal:
        # the store keeps money exactly in units of 10**-4 (engine.money): a grant is never rounded
        exponent = value.normalize().as_tuple().exponent
        if isinstance(exponent, int) and -exponent > STORE_SCALE:
            raise ValueError(f"{value} has more than {STORE_SCALE} decimal places; a credit is kept exactly, "
                             "give it in the currency's minor unit (e.g. 100.12)")
        return value


class ImportDoc(Doc):
    accounts: list[AccountDoc] = []
    products: list[ProductDoc] = []
    credits: list[CreditDoc] = []
    orders: list[OrderDoc] = []


@dataclass
class Parsed:
    """An import document read with every shape problem collected, and what they make uncertain.

    `doc` holds the parts whose shape is right (an order with a broken line keeps its other
    lines, marked in `partial`), so the store checks and the dry-run still find the problems of
    the rest of the file. Checks that depend on a broken part are skipped: a line naming a
    product, account or subscription whose definition is broken is not checked against it.
    """

    doc: ImportDoc
    problems: list[Problem] = field(default_factory=list)
    #: orders that lost lines (or their whole header) to shape problems: checked, never written
    partial: set[str] = field(default_factory=set)
    unsure_accounts: set[str] = field(default_factory=set)
    unsure_products: set[str] = field(default_factory=set)
    unsure_items: set[str] = field(default_factory=set)


def _raw_ids(node: Any, *keys: str) -> list[str]:
    return [node[k] for k in keys if isinstance(node, dict) and isinstance(node.get(k), str)]


def _int(text: str) -> int | Decimal:
    # Python refuses to turn more than 4300 digits into an int (a ValueError, not a JSON error);
    # such a number is still a number, and the range checks name its field
    return int(text) if len(text) <= 100 else Decimal(text)


_FORMAT_HINT = "fix the file (an import file is one JSON object, see the import format in README.md)"


@collector_paused()
def read(text: str, source: str) -> Parsed:
    """Parse an import document, collecting every shape problem instead of stopping at the first."""
    try:
        # NaN and Infinity are not JSON, but Python's reader takes them: let them reach the
        # range checks, which name the field
        data = json.loads(text, parse_float=Decimal, parse_constant=Decimal, parse_int=_int)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(source, [Problem(f"line {exc.lineno}, column {exc.colno} (character {exc.pos})",
                                                f"not valid JSON: {exc.msg}")],
                               hint=_FORMAT_HINT) from None
    except RecursionError:
        raise ValidationFailed(source, [Problem("document", "the JSON is nested too deeply to be an import file")],
                               hint=_FORMAT_HINT) from None
    if not isinstance(data, dict):
        raise ValidationFailed(source, [Problem("document", f"must be a JSON object with `accounts`, `products`, "
                                                            f"`credits` and `orders`, not a {type(data).__name__}")],
                               hint=_FORMAT_HINT)
    out = Parsed(ImportDoc())
    kept: dict[str, list[Any]] = {}
    for key in data:
        if key not in ImportDoc.model_fields:
            out.problems.append(Problem(f"field {key}", "unknown field (see the import format in README.md)"))
    for key, model in (("accounts", AccountDoc), ("products", ProductDoc), ("credits", CreditDoc)):
        items = data.get(key, [])
        if not isinstance(items, list):
            out.problems.append(Problem(f"field {key}", "must be a list"))
            continue
        kept[key] = []
        for index, node in enumerate(items):
            try:
                kept[key].append(model.model_validate(node))
            except ValidationError as exc:
                out.problems += _problems(data, exc, (key, index))
                unsure = out.unsure_accounts if key == "accounts" else out.unsure_products
                if key != "credits":
                    unsure.update(_raw_ids(node, "id"))
    orders = data.get("orders", [])
    kept["orders"] = []
    if not isinstance(orders, list):
        out.problems.append(Problem("field orders", "must be a list"))
        orders = []
    for index, node in enumerate(orders):
        order = _read_order(data, index, node, out)
        if order is not None:
            kept["orders"].append(order)
    out.doc = ImportDoc.model_construct(**kept)
    return out


def _read_order(data: Any, index: int, node: Any, out: Parsed) -> OrderDoc | None:
    """One order; with shape problems, what is left of it that can still be checked (or None)."""
    try:
        return OrderDoc.model_validate(node)
    except ValidationError as exc:
        out.problems += _problems(data, exc, ("orders", index))
    if not isinstance(node, dict):
        return None
    raw_lines = node.get("lines") if isinstance(node.get("lines"), list) else []
    lines: list[LineDoc] = []
    for raw in raw_lines:
        try:
            lines.append(LineDoc.model_validate(raw))
        except ValidationError:
            # what this line would have created or changed is unknown: later lines on it are not checked
            out.unsure_items.update(_raw_ids(raw, "subscription") or _raw_ids(raw, "id"))
    try:
        order = OrderDoc.model_validate({**node, "lines": [l.model_dump() for l in lines]})
    except ValidationError:
        # the order's own fields are broken: none of its lines can be checked
        out.unsure_items.update(l.subscription or l.id for l in lines)
        return None
    out.partial.add(order.id)
    return order


def parse(text: str, source: str) -> ImportDoc:
    """Parse and check the shape of an import document; every problem at once."""
    parsed = read(text, source)
    if parsed.problems:
        raise ValidationFailed(source, parsed.problems)
    return parsed.doc


def content_hash(doc: OrderDoc) -> str:
    """A fingerprint of an order's content, to tell a re-import from a conflicting order."""
    # pydantic's own serialiser: fields in declaration order, values normalised by validation
    # ("100" and 100 are the same Decimal), and much faster than dumping a dict in Python.
    # `evergreen` came later: left out when false, so orders imported before keep their fingerprint
    # The serializer's own UTF-8 bytes, as `model_dump_json` makes them before decoding them to a
    # str that was encoded back (issue 11: 6 % of validating an order)
    text = _ORDER_JSON(doc, exclude=_NOT_HASHED)
    evergreen = [l.id for l in doc.lines if l.evergreen]
    if evergreen:
        text += ("\nevergreen:" + ",".join(evergreen)).encode()
    return hashlib.sha256(text).hexdigest()


_ORDER_JSON = OrderDoc.__pydantic_serializer__.to_json
_NOT_HASHED = {"lines": {"__all__": {"evergreen"}}}


@dataclass
class ImportResult:
    """What an import did."""

    activated: list[str] = field(default_factory=list)
    already_imported: list[str] = field(default_factory=list)
    jobs: Sequence[JobOutcome] = field(default_factory=list)

    @property
    def failed_jobs(self) -> list[JobOutcome]:
        return [j for j in self.jobs if not j.ok]


@dataclass
class _Plan:
    accounts: list[Account]
    products: list[Product]
    credits: list[Credit]
    activations: list[Activation]
    hashes: dict[str, str]
    skipped: list[str]
    #: the store's next order sequence number when the plan was made: if another writer activates
    #: orders meanwhile, the plan is stale and the import stops before writing anything of it
    next_seq: int


def _catalogue_in(accounts: Sequence[AccountDoc],
                  products: Sequence[ProductDoc]) -> tuple[list[Account], list[Product]]:
    """The file's accounts and products as the engine's."""
    return ([Account(a.id, a.name, a.bill_cycle_day) for a in accounts],
            [Product(p.id, p.name, p.provisioning, p.list_price, p.price_period) for p in products])


def _catalogue(conn: Any, accounts_in: Sequence[Account],
               products_in: Sequence[Product]) -> tuple[dict[str, Account], dict[str, Product]]:
    """The stored accounts and products, with the file's laid over them."""
    accounts, products = repo.load_accounts(conn), repo.load_products(conn)
    accounts.update({a.id: a for a in accounts_in})
    products.update({p.id: p for p in products_in})
    return accounts, products


def _credit_id(c: CreditDoc) -> str:
    """A credit grant's id: its own, or account:currency for the one grant without."""
    return c.id or f"{c.account}:{c.currency}"


def _credit(conn: Any, c: CreditDoc) -> tuple[Credit, Credit | None]:
    """The file's credit grant, and the one stored under its id (None: it is new)."""
    credit = Credit(_credit_id(c), c.account, c.currency, c.amount)
    return credit, repo.credit_by_id(conn, credit.id)


def plan(engine: Engine, doc: ImportDoc | Parsed, source: str, calendar: FiscalCalendar,
         settings: EngineSettings) -> _Plan:
    """Validate the document against the store and dry-run every order; raise listing every problem.

    Given a `Parsed` document, its shape problems come first, followed by the problems of every
    part that could still be checked.
    """
    parsed = doc if isinstance(doc, Parsed) else Parsed(doc)
    doc = parsed.doc
    problems: list[Problem] = list(parsed.problems)
    unsure_items = set(parsed.unsure_items)
    accounts_in, products_in = _catalogue_in(doc.accounts, doc.products)
    for kind, ids in (("account", [a.id for a in doc.accounts]), ("product", [p.id for p in doc.products]),
                      ("order", [o.id for o in doc.orders]),
                      ("credit", [_credit_id(c) for c in doc.credits]),
                      ("line", [l.id for o in doc.orders for l in o.lines])):
        seen: set[str] = set()
        for i in ids:
            if i in seen:
                problems.append(Problem(f"{kind} {i}", f"the {kind} id {i!r} appears more than once in the file"))
            seen.add(i)
    with engine.connect() as conn:
        accounts, products = _catalogue(conn, accounts_in, products_in)
        credits = []
        for c in doc.credits:
            credit, stored = _credit(conn, c)
            where = f"credit {credit.id}"
            if c.account not in accounts and c.account not in parsed.unsure_accounts:
                problems.append(Problem(f"{where}, field account", f"unknown account {c.account!r}"))
            if stored is None:
                credits.append(credit)
            elif stored != credit:
                problems.append(Problem(where, f"a credit with this id was already imported with "
                                               f"{stored.amount} {stored.currency}; credit grants do not "
                                               "change: give a new grant its own `id`"))
        ledger = repo.load_ledger(conn)
        next_seq = repo.next_order_seq(conn)
        account_tcv = _account_tcvs(conn)
        todo: list[Activation] = []
        hashes: dict[str, str] = {}
        skipped: list[str] = []
        new_line_ids = [l.id for o in doc.orders for l in o.lines]
        taken = repo.line_ids_taken(conn, new_line_ids)
        stored_hashes = repo.order_hashes(conn, [o.id for o in doc.orders])
        for order in doc.orders:
            digest = content_hash(order)
            stored = stored_hashes.get(order.id)
            if stored == digest and order.id not in parsed.partial:
                skipped.append(order.id)
                continue
            touched = {l.subscription or l.id for l in order.lines}
            if stored is not None:
                problems.append(Problem(f"order {order.id}", "an order with this id was already imported with "
                                        "different content; activated orders do not change: express the "
                                        "change as a new order with update/renew/cancel/terms lines"))
                unsure_items |= touched
                continue
            clash = [l.id for l in order.lines if l.id in taken]
            if clash:
                problems.append(Problem(f"order {order.id}", f"line id(s) {', '.join(clash)} already belong "
                                        "to another imported order; line ids must be unique"))
                unsure_items |= touched
                continue
            # checks that depend on a part of the file that is broken are skipped (its problem is listed)
            sure = [l for l in order.lines
                    if l.product not in parsed.unsure_products and (l.subscription or l.id) not in unsure_items]
            # a copy only when some line is left out: most orders have every line checkable
            checkable = order if len(sure) == len(order.lines) else order.model_copy(update={"lines": sure})
            if order.account in parsed.unsure_accounts or not checkable.lines:
                unsure_items |= touched
                continue
            if len(checkable.lines) < len(order.lines):
                unsure_items |= touched
            try:
                activation = activate(order_input(checkable), ledger, products, accounts, calendar, settings)
            except OrderRejected as exc:
                problems.extend(exc.problems)
                # later lines on what this order would have changed are not checked against a guess
                unsure_items |= touched
                continue
            total = account_tcv.get(order.account, Decimal(0)) + activation.account_tcv_delta
            too_big = limits.total_problem([total], f"the TCV of account {order.account}")
            if too_big:
                problems.append(Problem(f"order {order.id}", too_big))
                unsure_items |= touched
                continue
            account_tcv[order.account] = total
            ledger.apply(activation)
            todo.append(activation)
            hashes[order.id] = digest
    if problems:
        raise ValidationFailed(source, problems, hint="fix the file and import it again; nothing was imported")
    return _Plan(accounts_in, products_in, credits, todo, hashes, skipped, next_seq)


def _account_tcvs(conn: Any) -> dict[str, Decimal]:
    """The TCV stored on each account, to keep its running total within a money column."""
    from sqlalchemy import select

    from connector.store import schema as t

    return {r.id: r.tcv for r in conn.execute(select(t.accounts.c.id, t.accounts.c.tcv))}


@collector_paused()
def _store_catalogue(conn: Connection, the_plan: Any, calendar: FiscalCalendar) -> None:
    """Write a plan's accounts, products and credits (both import paths, before their orders), and
    remember the fiscal calendar the store's rows are made with."""
    repo.upsert_accounts(conn, the_plan.accounts)
    repo.upsert_products(conn, the_plan.products)
    for credit in the_plan.credits:
        repo.add_credit(conn, credit)
    if repo.get_meta(conn, "fiscal_calendar") is None:
        repo.set_meta(conn, "fiscal_calendar", calendar.fingerprint())


def _still_expected(conn: Connection, expected: int, source: str, result: ImportResult) -> None:
    """Before a batch is written: no other order was activated since the import began (`expected`:
    the next order's sequence number as the validation found it)."""
    if repo.next_order_seq(conn) != expected:
        raise TransientError(
            f"{source}: other orders were activated while this file was being imported; "
            f"{len(result.activated)} of its orders are activated, the rest are not",
            hint="import the same file again: activated orders are skipped, the rest are checked anew")


def _save_batch(conn: Connection, batch: list[Activation], expected: int, source: str, result: ImportResult,
                clock: Clock, hashes: dict[str, str], accounts: dict[str, str],
                write_back: bool) -> dict[str, repo.StoredOrder]:
    """Write a batch of the file's activations in the caller's transaction: first checking that no
    other order was activated since the import began, then the orders' immediate steps, and their
    outbox entries."""
    _still_expected(conn, expected, source, result)
    now = clock.now()
    saved = repo.save_activations(conn, batch, origin="engine", hashes=hashes, customer_names=accounts, now=now)
    if write_back:
        enqueue_activation(conn, batch, "engine", now)
    return saved


def _save_stored_batch(conn: Connection, batch: list[encode.StoredActivation], expected: int, source: str,
                       result: ImportResult, clock: Clock, hashes: dict[str, str],
                       write_back: bool) -> dict[str, repo.StoredOrder]:
    """`_save_batch` of activations kept in the store's form by the validating pass."""
    _still_expected(conn, expected, source, result)
    now = clock.now()
    saved = repo.save_stored_activations(conn, batch, origin="engine", hashes=hashes, now=now)
    if write_back:
        enqueue_activated(conn, [ActivatedOrder(a.order_id, a.account, a.owner, [i[0] for i in a.items],
                                                [line for _, line in saved[a.order_id].lines]) for a in batch],
                          "engine", now)
    return saved


@collector_paused()
def import_document(engine: Engine, doc: ImportDoc | Parsed, source: str, calendar: FiscalCalendar,
                    settings: EngineSettings, clock: Clock, runner: JobRunner,
                    progress: Any = None, batch_size: int = 500, phase: Any = None) -> ImportResult:
    """Validate everything, then write the orders' immediate steps and run their background jobs.

    Orders are written in file order, several whole orders per transaction, so each order's
    immediate step is all-or-nothing; jobs then run in their own transactions.
    `phase(name, total)` is called as each phase starts: "validating" (total None), "activating"
    (the orders to activate; `progress(n)` then counts them), "jobs" (total None).
    """
    if phase is not None:
        phase("validating", None)
    the_plan = plan(engine, doc, source, calendar, settings)
    if phase is not None:
        phase("activating", len(the_plan.activations))
    result = ImportResult(already_imported=the_plan.skipped)
    accounts = {a.id: a.name for a in the_plan.accounts}
    with engine.begin() as conn:
        _store_catalogue(conn, the_plan, calendar)
        accounts.update((a.id, a.name) for a in repo.load_accounts(conn).values())
        # whether each batch's jobs run as it is written (as `import_file` runs them, and why)
        interleaved = runner.batch_size == batch_size and not repo.any_pending_job(conn)
    expected = the_plan.next_seq
    stored: dict[str, repo.StoredOrder] = {}
    outcomes: list[JobOutcome] = []
    with saved_jobs(runner, len(the_plan.activations) if interleaved else 0) as jobs:
        for i in range(0, len(the_plan.activations), batch_size):
            batch = the_plan.activations[i:i + batch_size]
            with engine.begin() as conn:
                saved = _save_batch(conn, batch, expected, source, result, clock, the_plan.hashes, accounts,
                                    runner.ctx.write_back)
            expected += len(batch)
            result.activated.extend(a.order.id for a in batch)
            if interleaved:
                outcomes.extend(jobs.add(saved))
            else:
                stored.update(saved)
            del saved
            if progress is not None:
                progress(len(batch))
        outcomes.extend(jobs.finish())
    if phase is not None:
        phase("jobs", None)
    if interleaved:
        # none of the skipped orders' jobs was pending when the import began: read again, cheaply
        outcomes.extend(runner.run_pending(result.already_imported) if result.already_imported else [])
    else:
        outcomes = runner.run_pending(result.activated + result.already_imported, known=stored)
    result.jobs = outcomes
    repo.refresh_statistics(engine, sum(len(a.lines) for a in the_plan.activations))
    return result


def load_file(path: Path) -> tuple[str, str]:
    """Read an import file (UTF-8), with a clear error when it cannot be read or decoded."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationFailed(str(path), [Problem(str(path), f"cannot read the file: {exc.strerror}")],
                               hint="check the path and its permissions") from None
    try:
        return data.decode("utf-8-sig"), str(path)
    except UnicodeDecodeError as exc:
        before = data[:exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise ValidationFailed(str(path), [Problem(
            f"byte {exc.start} (line {line}, column {column})",
            f"not UTF-8: byte 0x{data[exc.start]:02x} cannot start or continue a UTF-8 character ({exc.reason})")],
            hint="save the file as UTF-8 (JSON files are UTF-8) and import it again") from None


# --- large files, streamed ------------------------------------------------------------------------
#
# `import_file` imports a file in memory bounded by what validation must know (the ledger, the ids
# seen, the accounts), not by the file: the orders are parsed one at a time in a validating pass,
# which activates each against the ledger and keeps the activations in a temporary file
# (`_Spill`); a writing pass writes them from there a batch at a time, the written orders are not
# held, and each batch's background jobs run as `import_document` runs them.
# The streamed path handles only files in which it finds nothing wrong: at the first problem of
# any kind (not JSON, not UTF-8, a shape or store problem, a refused order) it hands the file to
# the whole-document path (`load_file`, `read`, `import_document`), which lists every problem of
# the file at once as it always has. Results are identical either way.


class _NotStreamable(Exception):
    """The streamed path cannot vouch for this file: the whole-document path takes it."""


#: What the streaming parser reads otherwise than Python's reader, so such files take the
#: whole-document path: `\uD800`-`\uDFFF` escapes (Python's reader keeps a lone surrogate, the
#: streaming parser replaces it; no valid id has one anyway), and runs of more than 100 digits
#: (`read` makes such an integer a Decimal; the C parser cannot take one of over 4,300 digits,
#: and crashes the process on it)
_SURROGATE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_LONG_NUMBER = b"0" * 101
#: every digit as "0", every other byte as " ": a run of 101 digits is then found by `in` (a fifth
#: of a second per 100,000-line file faster than a regular expression, on each of its two reads)
_DIGITS_AS_ZEROS = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))


def _read_otherwise(data: bytes) -> bool:
    """Whether these bytes hold what the streaming parser reads otherwise (above)."""
    return (b"\\u" in data and _SURROGATE.search(data) is not None) or _LONG_NUMBER in data.translate(_DIGITS_AS_ZEROS)


class _CheckedReader:
    """A binary file as the streaming parser reads it, checked on the way as `load_file` checks it:
    UTF-8 (a leading BOM skipped, as utf-8-sig does), and no surrogate escape."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._tail = b""
        self._first = True

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # the parser asks what kind of file it reads
            return b""
        data = self._file.read(size)
        if self._first:
            self._first = False
            if data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8):]
        try:
            self._decoder.decode(data, final=not data)
        except UnicodeDecodeError:
            raise _NotStreamable("not UTF-8") from None
        if _read_otherwise(self._tail + data):
            raise _NotStreamable("a surrogate escape or a long number")
        self._tail = data[-100:]
        return data

    def close(self) -> None:
        self._file.close()


def _stream(path: Path, prefix: str) -> Iterator[Any]:
    """The items of an array of the file, parsed one at a time (numbers as `read` makes them:
    decimals as Decimal; NaN, Infinity or an unparsable number make the file not streamable)."""
    import ijson  # the C backend (yajl2_c) when available

    reader = _CheckedReader(path)
    try:
        yield from ijson.items(reader, prefix, use_float=False)
    except ijson.JSONError:
        raise _NotStreamable("not JSON") from None
    finally:
        reader.close()


def _stamp(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_size, info.st_mtime_ns


_SECTIONS = {"accounts": AccountDoc, "products": ProductDoc, "credits": CreditDoc}


@dataclass
class StreamedFile:
    """An import file checked in one streamed pass: its shape at the top, its accounts, products and
    credits read and validated, its orders counted (not held)."""

    path: Path
    source: str
    orders: int
    #: size and modification time when scanned: the validating pass reads the same file again
    stamp: tuple[int, int]
    accounts: list[AccountDoc]
    products: list[ProductDoc]
    credits: list[CreditDoc]


#: the event of an order's start, and whether an event is not the end of the orders (`scan_file`)
_ORDER_STARTS = functools.partial(operator.eq, ("orders.item", "start_map", None))
_NOT_ORDERS_END = functools.partial(operator.ne, ("orders", "end_array", None))


@collector_paused()
def scan_file(path: Path) -> StreamedFile | None:
    """The file ready for `import_file`, or None for the whole-document path (an unreadable or
    malformed file, a shape problem in its accounts, products or credits, a top-level key twice)."""
    import ijson

    try:
        stamp = _stamp(path)
        reader = _CheckedReader(path)
    except OSError:
        return None
    sections: dict[str, list[Any]] = {key: [] for key in _SECTIONS}
    seen: set[str] = set()
    orders = 0
    builder: Any = None
    item_prefix = ""
    try:
        events = ijson.parse(reader, use_float=False)
        first = next(events, None)
        if first is None or first[:2] != ("", "start_map"):
            return None
        for prefix, event, value in events:
            if prefix == "orders":
                if event != "start_array":
                    return None
                # The orders are counted, not looked at: their events (nearly all of the file's)
                # go by in C, up to the array's end, where a loop here cost 0.2 s per 100,000
                # lines on the import's critical path (issue 11). An order that is not an object
                # is found by the validating pass, which sends the file the whole-document way.
                orders += sum(map(_ORDER_STARTS, takewhile(_NOT_ORDERS_END, events)))
                continue
            if builder is not None:
                builder.event(event, value)
                if prefix == item_prefix and event == "end_map":
                    key = item_prefix.split(".")[0]
                    sections[key].append(_SECTIONS[key].model_validate(builder.value))
                    builder = None
                continue
            if prefix == "":
                if event == "map_key":
                    if value not in ImportDoc.model_fields or value in seen:
                        return None
                    seen.add(value)
                continue
            key, _, rest = prefix.partition(".")
            if rest == "":
                if event not in ("start_array", "end_array"):
                    return None
            elif rest == "item" and event == "start_map":
                builder, item_prefix = ijson.ObjectBuilder(), prefix
                builder.event(event, value)
            else:
                return None  # an account, product or credit that is not an object
    except (ijson.JSONError, _NotStreamable, ValidationError, ValueError, RecursionError, OSError):
        return None
    finally:
        reader.close()
    return StreamedFile(path, str(path), orders, stamp, sections["accounts"], sections["products"], sections["credits"])


def _half_of(node: Any) -> int:
    """Which half of the accounts an order (as parsed, not yet validated) belongs to: 0 or 1, by a
    checksum of its account id, the same in every process. An order whose account is not text goes
    to half 0, which validates it and finds the problem."""
    account = node.get("account") if isinstance(node, dict) else None
    return zlib.crc32(account.encode("utf-8", "surrogatepass")) & 1 if isinstance(account, str) else 0


def _orders(streamed: StreamedFile, half: int | None = None) -> Iterator[tuple[int, OrderDoc]]:
    """The file's orders with their place in it; with `half`, only those of that half of the accounts."""
    for index, node in enumerate(_stream(streamed.path, "orders.item")):
        if half is not None and _half_of(node) != half:
            continue
        try:
            yield index, OrderDoc.model_validate(node)
        except ValidationError:
            raise _NotStreamable("an order's shape") from None


def _chunked(orders: Iterator[tuple[int, OrderDoc]], size: int) -> Iterator[list[tuple[int, OrderDoc]]]:
    chunk: list[tuple[int, OrderDoc]] = []
    for order in orders:
        chunk.append(order)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _StoredOrders(set[str]):
    """A ledger's activated orders during a streamed import: those stored before it. The file's
    own are not added as they are activated (one string fewer per order held): an order id that
    appears twice in the file is found by the ids' hashes, and sends the file the whole way."""

    def add(self, value: str) -> None:
        pass


def _ledger(conn: Any) -> Ledger:
    ledger = repo.load_ledger(conn)
    ledger.activated_orders = _StoredOrders(ledger.activated_orders)
    return ledger


#: the SQLite page cache of each connection while a streamed import runs (KiB): the store's own
#: (connector.store.db) is larger, and would be allocated beside the memory the ledger held
IMPORT_CACHE_KIB = 16_384


@contextmanager
def _small_cache(engine: Engine) -> Iterator[None]:
    """On SQLite, connections checked out meanwhile have a smaller page cache; their own after."""
    if engine.dialect.name != "sqlite":
        yield
        return

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        cursor = dbapi_connection.cursor()
        if "cache_size" not in record.info:
            record.info["cache_size"] = cursor.execute("PRAGMA cache_size").fetchone()[0]
        cursor.execute(f"PRAGMA cache_size=-{IMPORT_CACHE_KIB}")
        cursor.close()

    def checkin(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is not None and "cache_size" in record.info:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA cache_size={int(record.info.pop('cache_size'))}")
            cursor.close()

    with db.pool_hooks(engine, checkout, checkin):
        yield


@dataclass
class _StreamPlan:
    accounts: list[Account]
    products: list[Product]
    credits: list[Credit]
    #: every account and product as the orders are activated against them (as `plan` has them)
    all_accounts: dict[str, Account]
    all_products: dict[str, Product]
    skipped: list[str]
    activations: int
    next_seq: int
    order_ids: array
    line_ids: array


class _Spill:
    """The validating pass's activations and content hashes, kept on disk for the writing pass.

    The writing pass used to read and parse the file again and activate every order a second time
    against the same ledger, which gives the same activations (the engine is pure and copies what
    it changes): a fifth of `revsync import` (issue 11). Now it reads them back from here, a chunk
    at a time, so memory stays bounded by a chunk, as before. Each is kept as the rows the store
    will hold (`encode.StoredActivation`), made by the validating processes, so the writing pass
    only adds their keys.

    An unnamed temporary file (in TMPDIR, about 0.9 KB per order), written and read by this
    process alone (and the fork validating the other half, `other`), gone when closed or when the
    process ends: what is read back (`_unspilled`: by marshal or by pickle) is only ever what this
    import wrote.
    """

    def __init__(self) -> None:
        self._file: Any = None
        #: the activations of the other half of the accounts, when a second process validated them
        self.other: _Spill | None = None

    def open(self) -> None:
        """Make the file now (before a fork: the child writes it, this process reads it after),
        nothing left in this process's buffer: bytes buffered here would be written twice, by the
        child and by this process's next seek, which flushes them."""
        self.add([])
        self.flush()

    def add(self, chunk: list) -> None:
        record = _spilled(chunk)
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="revsync-import-")
            self._file.write(record)
        except OSError as exc:
            raise TransientError(
                f"could not keep the validated orders in a temporary file in {tempfile.gettempdir()}: "
                f"{exc.strerror or exc}; nothing was imported",
                hint="free some space there, or set TMPDIR to a folder with room (about 0.9 KB per order), "
                     "and import the file again") from None

    def __iter__(self) -> Iterator[tuple[int, encode.StoredActivation, str]]:
        if self._file is None:
            return
        self._file.seek(0)
        while (chunk := _unspilled(self._file)) is not None:
            yield from chunk

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def clear(self) -> None:
        """Forget what was kept (the other half's file, when its process died half-way)."""
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()

    def in_file_order(self) -> Iterator[tuple[encode.StoredActivation, str]]:
        """The kept (index in the file, activation, content hash) entries of both halves, merged
        back into file order, as (activation, content hash)."""
        entries = self if self.other is None else heapq.merge(self, self.other, key=operator.itemgetter(0))
        for _, activation, digest in entries:
            yield activation, digest

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.other is not None:
            self.other.close()
            self.other = None


_HEADER = struct.Struct("<cQ")
_StoredActivation, _Decimal, _from_ordinal = encode.StoredActivation, Decimal, dt.date.fromordinal


def _spilled(chunk: list) -> bytes:
    """A chunk of (index, activation, content hash) as a record of the spill: a kind, a length, and
    the chunk by `marshal` when it holds activations whose rows marshal can write (SQLite's: text,
    numbers, booleans), their TCV as text and customer-since as a day number; else by pickle (the
    rows of PostgreSQL, whose dates are dates). marshal writes and reads plain rows about three times
    as fast as pickle (issue 11: the two validating processes write every order, the writing pass
    reads every order, each on the critical path)."""
    if all(type(entry[1]) is _StoredActivation for entry in chunk):
        try:
            payload = marshal.dumps([
                (index, (*a[:5], str(a.tcv), None if a.customer_since is None else a.customer_since.toordinal(),
                         a.links), digest) for index, a, digest in chunk])
        except ValueError:  # a value marshal cannot write: pickled instead
            pass
        else:
            return _HEADER.pack(b"M", len(payload)) + payload
    payload = pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(b"P", len(payload)) + payload


def _unspilled(file: Any) -> list | None:
    """The next chunk of the spill (`_spilled`), or None at its end."""
    header = file.read(_HEADER.size)
    if not header:
        return None
    if len(header) < _HEADER.size:
        raise EOFError("the spill ends inside a chunk's header")
    kind, size = _HEADER.unpack(header)
    payload = file.read(size)
    if len(payload) < size:
        raise EOFError("the spill ends inside a chunk")
    if kind == b"P":
        return pickle.loads(payload)
    return [(index, _StoredActivation(order, lines, segments, versions, items, _Decimal(tcv),
                                      None if since is None else _from_ordinal(since), links), digest)
            for index, (order, lines, segments, versions, items, tcv, since, links), digest in marshal.loads(payload)]


#: the writing pass collects the reference cycles its batches leave behind every this many batches
COLLECT_EVERY = 8

#: a file of at least this many orders is validated by two processes when there is a second core,
#: each activating the orders of half the accounts (issue 11); below it, starting the second costs
#: more than it saves
SPLIT_MIN_ORDERS = 2_000


@dataclass
class _Checked:
    """What validating the orders (of one half of the accounts, or all) leaves besides the kept
    activations: the 64-bit hashes of the ids seen, checked for repeats once the ledger is gone (a
    collision of two different ids only sends the file the whole-document way), the orders
    already imported with their place in the file, and how many orders were activated."""

    order_ids: array = field(default_factory=lambda: array("q"))
    line_ids: array = field(default_factory=lambda: array("q"))
    #: the subscriptions the activations made (only counted when two processes validate: each
    #: sees only its own half's, so one made in both halves is found here)
    item_ids: array = field(default_factory=lambda: array("q"))
    skipped: list[tuple[int, str]] = field(default_factory=list)
    activations: int = 0

    def join(self, other: "_Checked") -> None:
        self.order_ids.extend(other.order_ids)
        self.line_ids.extend(other.line_ids)
        self.item_ids.extend(other.item_ids)
        self.skipped = sorted(self.skipped + other.skipped)
        self.activations += other.activations


@dataclass
class _Checking:
    """What validating the orders works against: the catalogue, the ledger and the accounts' TCVs
    as stored when the validating pass began."""

    streamed: StreamedFile
    calendar: FiscalCalendar
    settings: EngineSettings
    chunk: int
    accounts: dict[str, Account]
    products: dict[str, Product]
    ledger: Ledger
    account_tcv: dict[str, Decimal]
    #: the store's dialect, whose form the activations are kept in
    dialect: str

    def orders(self, conn: Connection, spill: _Spill, half: int | None = None) -> _Checked:
        """Validate and activate the file's orders (of one `half` of the accounts, or all) in file
        order, each against the ledger as the ones before it left it, and keep each activation
        with its place in the file and its order's content hash in `spill`. Raises _NotStreamable
        at the first problem."""
        checked = _Checked()
        ledger, account_tcv = self.ledger, self.account_tcv
        for orders in _chunked(_orders(self.streamed, half), self.chunk):
            new_line_ids = [l.id for _, o in orders for l in o.lines]
            checked.order_ids.extend(hash(o.id) for _, o in orders)
            checked.line_ids.extend(hash(i) for i in new_line_ids)
            taken = repo.line_ids_taken(conn, new_line_ids)
            stored_hashes = repo.order_hashes(conn, [o.id for _, o in orders])
            done: list[tuple[int, encode.StoredActivation, str]] = []
            # kept in the store's form: made here, on both cores, not in the writing pass (issue 11)
            units, day = encode.encoders(self.dialect)
            for index, order in orders:
                stored_hash = stored_hashes.get(order.id)
                digest = content_hash(order)
                if stored_hash is not None:
                    if stored_hash != digest:
                        raise _NotStreamable("an order changed")
                    checked.skipped.append((index, order.id))
                    continue
                if any(l.id in taken for l in order.lines):
                    raise _NotStreamable("a line id taken")
                try:
                    activation = activate(order_input(order), ledger, self.products, self.accounts, self.calendar,
                                          self.settings)
                except OrderRejected:
                    raise _NotStreamable("an order refused") from None
                total = account_tcv.get(order.account, Decimal(0)) + activation.account_tcv_delta
                if limits.total_problem([total], f"the TCV of account {order.account}"):
                    raise _NotStreamable("a TCV too big")
                account_tcv[order.account] = total
                ledger.apply(activation)
                if half is not None:
                    checked.item_ids.extend(hash(i.id) for i in activation.items if i.created_by == order.id)
                done.append((index, encode.stored_activation(activation, self.accounts[order.account].name, units,
                                                             day), digest))
                checked.activations += 1
            spill.add(done)
        return checked


def _stream_plan(engine: Engine, streamed: StreamedFile, calendar: FiscalCalendar,
                 settings: EngineSettings, chunk: int, spill: _Spill, split: bool = False) -> _StreamPlan:
    """`plan` for a file without problems, streamed: keeps the ids seen, the ledger, the TCV of the
    accounts, and which orders are already imported, and puts each activation with its order's
    content hash in `spill`, in file order. Raises _NotStreamable at the first problem.

    With `split` (a large file, a second core), a second process validates the orders of half the
    accounts (`_OtherHalf`): an account's orders depend on each other, never on another account's.
    Whatever could tie two halves together is a problem the whole-document path reports: a
    subscription of another account (refused by the engine: unknown in this half), and an id that
    both halves use (found by the ids' hashes)."""
    accounts_in, products_in = _catalogue_in(streamed.accounts, streamed.products)
    streamed.accounts = []  # consumed: the validated documents are not kept beside what is made of them
    streamed.products = []
    for ids in ([a.id for a in accounts_in], [p.id for p in products_in],
                [_credit_id(c) for c in streamed.credits]):
        if len(set(ids)) < len(ids):
            raise _NotStreamable("an id twice")
    with engine.connect() as conn:
        accounts, products = _catalogue(conn, accounts_in, products_in)
        credits = []
        for c in streamed.credits:
            credit, stored = _credit(conn, c)
            if c.account not in accounts:
                raise _NotStreamable("an unknown account")
            if stored is None:
                credits.append(credit)
            elif stored != credit:
                raise _NotStreamable("a credit changed")
        checking = _Checking(streamed, calendar, settings, chunk, accounts, products, _ledger(conn),
                             _account_tcvs(conn), engine.dialect.name)
        next_seq = repo.next_order_seq(conn)
    other = _OtherHalf.start(engine, checking, spill) if split else None
    try:
        with engine.connect() as conn:
            checked = checking.orders(conn, spill, None if other is None else 0)
            if other is not None:
                theirs = other.result()
                if theirs is None:  # its process died: this one validates that half too
                    assert spill.other is not None
                    spill.other.clear()
                    theirs = checking.orders(conn, spill.other, 1)
                else:
                    log.info("the orders were validated on two cores: %d and %d activated by each process, "
                             "half the accounts each", checked.activations, theirs.activations)
                checked.join(theirs)
    finally:
        if other is not None:
            other.stop()
    if _repeats(checked.item_ids):
        raise _NotStreamable("a subscription made in both halves")
    return _StreamPlan(accounts_in, products_in, credits, accounts, products, [oid for _, oid in checked.skipped],
                       checked.activations, next_seq, checked.order_ids, checked.line_ids)


class _OtherHalf:
    """A forked process that validates the orders of the accounts of half 1 while this one validates
    half 0's: the validating pass on both cores (issue 11). It starts from this process's state as
    it is (the catalogue, the ledger, the accounts' TCVs: nothing is sent), keeps its activations in
    a temporary file this process made for it (`spill.other`), and says what it found, pickled, on
    a pipe; what is unpickled here is only ever what this process's own fork pickled.

    No connection to the store crosses the fork (the pool is emptied first: a SQLite connection
    must not be used on both sides of one, https://www.sqlite.org/howtocorrupt.html section 2.6);
    each side opens its own. If the process dies, this one validates that half itself; it is
    killed when the pass ends however it ends."""

    def __init__(self, pid: int, answers: int) -> None:
        self._pid: int | None = pid
        self._answers: int | None = answers

    @classmethod
    def start(cls, engine: Engine, checking: _Checking, spill: _Spill) -> "_OtherHalf | None":
        in_use = getattr(engine.pool, "checkedout", lambda: 0)()
        if in_use:  # a connection held elsewhere in this process would cross the fork
            log.info("the orders are validated in this process alone (%s store connection(s) in use)", in_use)
            return None
        engine.dispose()  # and none of the pool's
        spill.other = _Spill()
        spill.other.open()
        read_end, write_end = os.pipe()
        try:
            with warnings.catch_warnings():
                # Python 3.12+ warns of a fork beside threads (a lock held by another thread stays
                # held in the child). The only other thread an import may have is the progress
                # bar's, whose lock the child never takes: it writes nothing to the terminal.
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError as exc:
            os.close(read_end)
            os.close(write_end)
            log.info("the orders are validated in this process alone (no second process: %s)", exc)
            return None
        if pid == 0:  # the child: never returns
            os.close(read_end)
            _validate_other_half(engine, checking, spill.other, write_end)
        os.close(write_end)
        return cls(pid, read_end)

    def result(self) -> _Checked | None:
        """Wait for the other half's answer: what it found, or None if its process died. Raises
        _NotStreamable if it met a problem."""
        assert self._answers is not None and self._pid is not None
        with os.fdopen(self._answers, "rb") as answers:
            self._answers = None
            data = answers.read()
        _, status = os.waitpid(self._pid, 0)
        self._pid = None
        if status != 0 or not data:
            log.warning("the process validating half of the orders stopped (exit code %d: a negative one is the "
                        "signal that ended it); this one validates them", os.waitstatus_to_exitcode(status))
            return None
        kind, value = pickle.loads(data)
        if kind == "problem":
            raise _NotStreamable(value)
        return value

    def stop(self) -> None:
        if self._answers is not None:
            os.close(self._answers)
            self._answers = None
        if self._pid is not None:
            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self._pid, 0)
            self._pid = None


def _validate_other_half(engine: Engine, checking: _Checking, spill: Any, answers: int) -> None:
    """The forked child's whole life: validate half 1's orders into `spill`, say what was found on
    `answers`, and exit without running anything of the parent's (no atexit, no finalizers, no
    flush of its buffers)."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it at once; the parent says what happened
        engine.dispose(close=False)  # the parent's pool is not this process's (it was empty anyway)
        try:
            with engine.connect() as conn:
                answer: tuple[str, Any] = ("checked", checking.orders(conn, spill, 1))
        except _NotStreamable as exc:
            answer = ("problem", str(exc))
        finally:
            engine.dispose()  # its own connection closed as a client should (PostgreSQL logs one that vanishes)
        spill.flush()
        with os.fdopen(answers, "wb") as out:
            pickle.dump(answer, out, protocol=pickle.HIGHEST_PROTOCOL)
        code = 0
    except BaseException:  # noqa: BLE001 - the parent sees the status and validates this half itself
        pass
    finally:
        os._exit(code)


def _repeats(hashes: array) -> bool:
    return len(set(hashes)) < len(hashes)


@collector_paused()
def import_file(engine: Engine, streamed: StreamedFile, calendar: FiscalCalendar, settings: EngineSettings,
                clock: Clock, runner: JobRunner, progress: Any = None, batch_size: int = 500,
                phase: Any = None) -> ImportResult:
    """`import_document` for a file from `scan_file`, streamed: the same writes, jobs, result,
    phases and progress, in memory bounded by what validation keeps rather than by the file.

    A file with any problem goes the whole-document way (`read`, `import_document`), which raises
    ValidationFailed listing every problem, nothing imported.
    """
    spill = _Spill()
    try:
        with _small_cache(engine):
            return _import_file(engine, streamed, calendar, settings, clock, runner, progress, batch_size, phase,
                                spill)
    finally:
        spill.close()


def _import_file(engine: Engine, streamed: StreamedFile, calendar: FiscalCalendar, settings: EngineSettings,
                 clock: Clock, runner: JobRunner, progress: Any, batch_size: int, phase: Any,
                 spill: _Spill) -> ImportResult:
    source = streamed.source
    if phase is not None:
        phase("validating", None)
    try:
        split = runner.second_core and streamed.orders >= SPLIT_MIN_ORDERS and usable_cores() > 1 and hasattr(os, "fork")
        the_plan = _stream_plan(engine, streamed, calendar, settings, batch_size, spill, split)
        # No collection here: the validating pass's ledger was freed as it was released (it holds
        # no cycles); what cycles are left are the store's few thousand objects of its start
        # (SQLAlchemy's, the same number at 20,000 lines as at 100,000), frozen with the rest below
        # and left to the collector once the import is done, while a collection here looked at
        # every object alive
        # (0.09 s of a 100,000-line import, on its critical path: issue 11)
        if _repeats(the_plan.order_ids) or _repeats(the_plan.line_ids):
            raise _NotStreamable("an id twice")
        the_plan.order_ids = the_plan.line_ids = array("q")
    except _NotStreamable:
        spill.close()
        gc.collect()  # what the streamed pass held, before the whole file is read
        text, source = load_file(streamed.path)
        return import_document(engine, read(text, source), source, calendar, settings, clock, runner,
                               progress=progress, batch_size=batch_size, phase=phase)
    if phase is not None:
        phase("activating", the_plan.activations)
    result = ImportResult(already_imported=the_plan.skipped)
    with engine.begin() as conn:
        _store_catalogue(conn, the_plan, calendar)
        # see `write` below: whether each batch's jobs run as soon as it is written
        interleaved = runner.batch_size == batch_size and not repo.any_pending_job(conn)
    # the activations were kept with their accounts' names (the stored ones, and the file's as
    # just written): the catalogue is not needed any more
    the_plan.accounts = the_plan.products = []
    the_plan.all_accounts, the_plan.all_products = {}, {}
    if _stamp(streamed.path) != streamed.stamp:
        # what is written is what was validated (read back from the spill, not from the file), but
        # a file written to while it is read may have been read half old, half new
        raise TransientError(f"{source}: the file changed while it was being imported; nothing of it is activated",
                             hint="import it again once it is written")
    skipped = set(the_plan.skipped)
    expected = the_plan.next_seq
    lines = 0
    outcomes = Outcomes()
    # Each batch's jobs run as soon as it is written, with its orders in hand: the batches and
    # the order `run_pending_paged` would run after the last batch, without reading every order
    # back (a tenth of the import's time). Not when some job is already pending (an import that
    # stopped before its jobs ran, orders waiting for the workers): those go first, in
    # activation order, so the jobs then all run after the last batch, as they always did
    # (`interleaved`, read above in the catalogue's transaction).

    def write(batch: list[encode.StoredActivation], hashes: dict[str, str]) -> None:
        nonlocal expected, lines, written
        with conn.begin():
            saved = _save_stored_batch(conn, batch, expected, source, result, clock, hashes, runner.ctx.write_back)
            if interleaved:
                # the jobs of the batches before, whose rows the child has sent, commit with this one
                outcomes.extend(jobs.add(saved, conn))
        committed()
        if interleaved:
            outcomes.extend(jobs.after_commit())
        expected += len(batch)
        lines += sum(len(a.lines) for a in batch)
        result.activated.extend(a.order_id for a in batch)
        del saved
        written += 1
        if written % COLLECT_EVERY == 0:
            # The collector is paused, and a transaction leaves reference cycles behind (SQLAlchemy's
            # connection and result objects, about 840 objects a batch): collected every few
            # batches, or 1,000,000 lines would keep 150 MiB of them. What is alive then is frozen
            # after each collection, so the next looks only at what the batches since made; a
            # collection after every batch cost 5 ms each, mostly looking at the held batches
            # again (0.4 s of 100,000 lines, on the import's critical path: issue 11).
            gc.collect()
            gc.freeze()
        if progress is not None:
            progress(len(batch))

    batch: list[encode.StoredActivation] = []
    hashes: dict[str, str] = {}
    written = 0
    # what is alive now (the accounts, the plan) is never looked at by the collections above
    gc.freeze()
    # one connection writes every batch, each batch a transaction of its own
    try:
        with saved_jobs(runner, the_plan.activations if interleaved else 0) as jobs, engine.connect() as conn, \
                db.checkpoints_behind(engine, conn) as committed:
            # the validating pass's activations, in file order: made against the ledger as stored
            # when it began, which is still the store's (`expected`, checked with each batch)
            for activation, digest in spill.in_file_order():
                batch.append(activation)
                hashes[activation.order_id] = digest
                if len(batch) == batch_size:
                    write(batch, hashes)
                    batch, hashes = [], {}
            if batch:
                write(batch, hashes)
            outcomes.extend(jobs.finish())
    finally:
        gc.unfreeze()
    del batch, hashes
    spill.close()
    # What the batches since the last collection left behind: the youngest generation alone.
    # Everything older was collected, then frozen, batch after batch (and is now back in the
    # oldest generation, unfrozen): a full collection here looked at all of it again and found
    # nothing (0.09 s of a 100,000-line import, 116,000 objects).
    gc.collect(0)
    if phase is not None:
        phase("jobs", None)
    if interleaved:
        # none of the skipped orders' jobs was pending when the import began: read again, cheaply
        outcomes.extend(runner.run_pending_paged(skipped) if skipped else [])
    else:
        outcomes = runner.run_pending_paged(set(result.activated) | skipped)
    result.jobs = outcomes
    repo.refresh_statistics(engine, lines)
    return result
