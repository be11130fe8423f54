"""Reading and writing engine records in the store. Callers own the transaction (`engine.begin()`)."""
from __future__ import annotations

import datetime as dt
import functools
import json
import operator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Collection, Iterable, NamedTuple, Sequence

from sqlalchemy import (
    ARRAY, BigInteger, Boolean, Connection, Date, DateTime, Engine, Integer, Row, String, any_, bindparam,
    cast, delete, func, insert, literal, select, text, update,
)

from connector.engine.activation import line_tcv
from connector.engine.ledger import Ledger
from connector.engine.model import (
    Account, Action, ActivatedLine, Activation, ArrRow, BillingFrequency, ChangeCategory,
    Credit, Drawdown, Item, OrderMetric, PricePeriod, Product, Provisioning, Segment,
)
from connector.engine.money import round_money
from connector.store import encode, schema as t, staging
from connector.store.db import StoreError
from connector.store.staging import CopyText, SpanRows, Staged, StagedSpans

JOB_KINDS = ("credit_review", "subscription_metrics", "order_metrics", "arr_by_period")


# --- catalogue -------------------------------------------------------------------------------

def _in(conn: Connection, column, values: Sequence):
    """`column IN (values)` as one parameter and one statement text, whatever the number of values:
    on PostgreSQL `column = ANY(array)`; on SQLite `column IN (SELECT value FROM json_each(…))` for
    ids and keys (text and integers), which SQLite answers by probing the column's index as it does
    an IN list. An IN list of its own for each number of values cost SQLAlchemy a rendering of
    the statement at each execution: 0.4 ms of 1.2 ms per 500 values (issue 11)."""
    if conn.dialect.name == "postgresql":
        array = ARRAY(column.type.impl if hasattr(column.type, "impl") else column.type)
        return column == any_(cast(bindparam(None, list(values), type_=array), array))
    if values and all(type(v) is str or type(v) is int for v in values):
        return column.in_(select(func.json_each(bindparam(None, json.dumps(list(values)), type_=String))
                                 .table_valued("value").c.value).scalar_subquery())
    return column.in_(values)


#: statements with an IN list whose values are bound at each execution (`_built`), by store
#: dialect and the statement's name
_BUILT: dict[tuple[str, str], Any] = {}

#: the parameter that carries the IN list's values (`_in_values`)
_IN_VALUES = "in_values"


def _in_bound(dialect: str, column):
    """`column IN (…)` as `_in` writes it, its values left to each execution's `in_values` parameter."""
    if dialect == "postgresql":
        array = ARRAY(column.type.impl if hasattr(column.type, "impl") else column.type)
        return column == any_(cast(bindparam(_IN_VALUES, type_=array), array))
    return column.in_(select(func.json_each(bindparam(_IN_VALUES, type_=String))
                             .table_valued("value").c.value).scalar_subquery())


def _built(conn: Connection, name: str, build: Callable[[Callable[[Any], Any]], Any]):
    """The statement `build(in_)` makes, built once per store dialect and `name`: `in_(column)` is
    `column IN (…)` with the values given to each execution by `_in_values`.

    Building a statement and working out its cache key costs SQLAlchemy about 0.7 ms; the writing
    pass of an import runs a dozen of these per batch (0.4 s of 100,000 lines, on its critical
    path: issue 11). `name` must say everything `build` depends on."""
    key = (conn.dialect.name, name)
    statement = _BUILT.get(key)
    if statement is None:
        statement = _BUILT[key] = build(functools.partial(_in_bound, conn.dialect.name))
    return statement


def _in_values(conn: Connection, values: Sequence, **params: Any) -> dict[str, Any]:
    """The parameters of one execution of a `_built` statement: the IN list's values (ids or keys:
    text or integers) and `params`."""
    if conn.dialect.name == "postgresql":
        return {_IN_VALUES: list(values), **params}
    # the types told apart in C, not by a generator per value (issue 11: 690,000 values in the
    # writing pass of 100,000 lines)
    if not _ID_TYPES.issuperset(map(type, values)):
        raise TypeError("an IN list bound at execution holds ids or keys (text or integers) only")
    return {_IN_VALUES: json.dumps(list(values)), **params}


_ID_TYPES = frozenset((str, int))


def _key_range(keys: Sequence[int]) -> tuple[int, int] | None:
    """(lowest, highest) when these integer keys are every key from one to the other, each once,
    as a batch of lines or jobs just written has them; else None. A statement then names the
    range, one descent of the key's index, instead of probing it once per key (issue 11)."""
    if not keys or set(map(type, keys)) != {int}:
        return None
    low, high = min(keys), max(keys)
    if high - low + 1 != len(keys) or len(set(keys)) != len(keys):
        return None
    return low, high


#: values per statement of a `_built` statement, whose IN list is one parameter however long
#: (a JSON array on SQLite, an array on PostgreSQL): a batch of an import in one statement, not
#: one per 500 values (each statement planned and sent on its own: issue 11)
_BOUND_CHUNK = 5000


def _existing(conn: Connection, column, ids: Sequence[str]) -> set[str]:
    out: set[str] = set()
    statement = _built(conn, f"existing {column.table.name}.{column.name}", lambda in_: select(column).where(in_(column)))
    for chunk in _chunks(list(ids), _BOUND_CHUNK):
        out.update(conn.execute(statement, _in_values(conn, chunk)).scalars())
    return out


def upsert_accounts(conn: Connection, accounts: Sequence[Account]) -> None:
    """Create accounts, or update the name and bill cycle day of those that exist."""
    existing = _existing(conn, t.accounts.c.id, [a.id for a in accounts])
    fresh = [dict(id=a.id, name=a.name, bill_cycle_day=a.bill_cycle_day, tcv=Decimal(0))
             for a in accounts if a.id not in existing]
    changed = [dict(b_id=a.id, name=a.name, bill_cycle_day=a.bill_cycle_day) for a in accounts if a.id in existing]
    if fresh:
        conn.execute(insert(t.accounts), fresh)
    if changed:
        conn.execute(update(t.accounts).where(t.accounts.c.id == bindparam("b_id")), changed)


def upsert_products(conn: Connection, products: Sequence[Product]) -> None:
    """Create products, or update name and list price of those that exist (activated lines keep theirs)."""
    existing = _existing(conn, t.products.c.id, [p.id for p in products])
    rows = [dict(b_id=p.id, name=p.name, provisioning=p.provisioning.value, list_price=p.list_price,
                 price_period=p.price_period.value) for p in products]
    fresh = [{("id" if k == "b_id" else k): v for k, v in r.items()} for r in rows if r["b_id"] not in existing]
    changed = [r for r in rows if r["b_id"] in existing]
    if fresh:
        conn.execute(insert(t.products), fresh)
    if changed:
        conn.execute(update(t.products).where(t.products.c.id == bindparam("b_id")), changed)


def credit_by_id(conn: Connection, credit_id: str) -> Credit | None:
    """A credit grant by id."""
    row = conn.execute(select(t.credits).where(t.credits.c.id == credit_id)).first()
    return None if row is None else Credit(row.id, row.account, row.currency, row.amount)


def add_credit(conn: Connection, credit: Credit) -> None:
    """Record a credit grant (grants are immutable; a new grant has a new id)."""
    conn.execute(insert(t.credits).values(id=credit.id, account=credit.account,
                                          currency=credit.currency, amount=credit.amount))


def load_accounts(conn: Connection) -> dict[str, Account]:
    """Every account."""
    return {r.id: Account(r.id, r.name, r.bill_cycle_day) for r in conn.execute(select(t.accounts))}


def load_products(conn: Connection) -> dict[str, Product]:
    """Every product."""
    return {r.id: Product(r.id, r.name, Provisioning(r.provisioning), r.list_price, PricePeriod(r.price_period))
            for r in conn.execute(select(t.products))}


# --- orders and the ledger ---------------------------------------------------------------------

def order_hashes(conn: Connection, order_ids: Sequence[str]) -> dict[str, str]:
    """Content hashes of the stored orders among these ids."""
    out: dict[str, str] = {}
    statement = _built(conn, "order hashes",
                       lambda in_: select(t.orders.c.id, t.orders.c.content_hash).where(in_(t.orders.c.id)))
    for chunk in _chunks(list(order_ids)):
        out.update((r.id, r.content_hash) for r in conn.execute(statement, _in_values(conn, chunk)))
    return out


def line_ids_taken(conn: Connection, ids: Iterable[str]) -> set[str]:
    """Which of these line ids already belong to stored orders."""
    return _existing(conn, t.order_lines.c.id, list(ids))


def _item(r) -> Item:
    return Item(id=r.id, kind=Provisioning(r.kind), account=r.account, product=r.product,
                currency=r.currency, start=r.start, end=r.end, term_start=r.term_start,
                quantity=r.quantity, unit_price=r.unit_price, price_period=PricePeriod(r.price_period),
                bill_cycle_day=r.bill_cycle_day, status=r.status, version=r.version,
                created_by=r.created_by, last_line=r.last_line, evergreen=r.evergreen)


def load_ledger(conn: Connection, accounts: Sequence[str] | None = None) -> Ledger:
    """The whole ledger: every item with the contribution segments of its lines (or only the
    items of these accounts, and their orders: a worker's claim, connector.workers)."""
    ledger = Ledger()
    items = select(t.items)
    query = (select(t.order_lines.c.item, t.line_segments)
             .join(t.line_segments, t.line_segments.c.line_pk == t.order_lines.c.pk)
             .order_by(t.order_lines.c.pk, t.line_segments.c.seq))
    orders = select(t.orders.c.id)
    if accounts is not None:
        items = items.where(t.items.c.account.in_(list(accounts)))
        query = query.join(t.items, t.items.c.id == t.order_lines.c.item).where(t.items.c.account.in_(list(accounts)))
        orders = orders.where(t.orders.c.account.in_(list(accounts)))
    for r in conn.execute(items):
        ledger.add_item(_item(r), [])
    for r in conn.execute(query):
        ledger.segments[r.item].append(Segment(r.start, r.end_excl, r.mrr, r.quantity))
    ledger.activated_orders.update(conn.execute(orders).scalars())
    return ledger


def next_order_seq(conn: Connection) -> int:
    """The activation sequence number of the next order (activation order is replayed by regenerate).

    Numbers given to orders waiting in the activation queue (for the workers) are taken too.
    """
    return max(conn.execute(_LAST_ORDER_SEQ).scalar() or 0, conn.execute(_LAST_QUEUED_SEQ).scalar() or 0) + 1


# built once: an import asks before each batch it writes (issue 11)
_LAST_ORDER_SEQ = select(func.max(t.orders.c.seq))
_LAST_QUEUED_SEQ = select(func.max(t.activation_queue.c.seq))


def save_activations(conn: Connection, activations: Sequence[Activation], *, origin: str,
                     hashes: dict[str, str], customer_names: dict[str, str],
                     now: dt.datetime, seqs: dict[str, int] | None = None) -> dict[str, "StoredOrder"]:
    """Write the immediate step of several orders and enqueue their background jobs.

    Each order is all-or-nothing because the caller's transaction holds whole orders only.
    The caller queues their write-back (`connector.writers.outbox.enqueue_activation`) in the
    same transaction.
    Returns the orders as the background jobs read them, so a caller about to run the jobs
    need not read back what it has just written.
    """
    units, day = stored_encoders(conn)
    out = save_stored_activations(
        conn, [encode.stored_activation(a, customer_names[a.order.account], units, day) for a in activations],
        origin=origin, hashes=hashes, now=now, seqs=seqs)
    for a in activations:  # the jobs read the engine's lines as they are, not decoded again
        order = out[a.order.id]
        order.decoded = [(pk, line) for (pk, _, _), line in zip(order.stored or (), a.lines)]
    return out


def save_stored_activations(conn: Connection, activations: Sequence[encode.StoredActivation], *, origin: str,
                            hashes: dict[str, str], now: dt.datetime,
                            seqs: dict[str, int] | None = None) -> dict[str, "StoredOrder"]:
    """`save_activations` of orders already in the store's form (`encode.stored_activation`, made
    where the import validated them): here only their keys are added."""
    if not activations:
        return {}
    # the accounts (read for their TCV below) and products the batch names, before anything is
    # written: on PostgreSQL these are the only keys checked (migration 0011)
    current = _accounts_named(conn, activations)
    generated = seqs is None  # else numbers the daemon gave queued orders (activate_staged)
    first = 0
    if seqs is None:
        first = next_order_seq(conn)
        seqs = {a.order_id: first + i for i, a in enumerate(activations)}
    stamp = _stored(conn, t.jobs.c.created_at, now)  # encoded once, not once per row (issue 11)
    _bulk(conn, t.orders, _ORDER_COLUMNS, [
        (o[0], seqs[o[0]], *o[1:], origin, "activated", hashes[o[0]], stamp) for o in (a.order for a in activations)])
    line_rows = [row for a in activations for row in a.lines]
    fixed = _next_pks(conn, t.order_lines, len(line_rows))
    if fixed is None:
        _bulk(conn, t.order_lines, _LINE_COLUMNS, line_rows)
        by_id = line_pks(conn, [row[0] for row in line_rows])
        keys = [by_id[row[0]] for row in line_rows]
    else:  # keys known beforehand: no reading back
        _bulk(conn, t.order_lines, ("pk", *_LINE_COLUMNS), [(pk, *row) for pk, row in zip(fixed, line_rows)])
        keys = list(fixed)
    segment_rows = [[(pk, *row) for row in rows]
                    for pk, rows in zip(keys, (rows for a in activations for rows in a.segments))]
    _bulk(conn, t.line_segments, encode.SEGMENT_COLUMNS, [row for rows in segment_rows for row in rows])
    # Items: the last version an order batch leaves is the one stored.
    final: dict[str, tuple] = {}
    for a in activations:
        for item in a.items:
            final[item[0]] = item
    existing = _existing(conn, t.items.c.id, list(final))
    fresh = [item for item in final.values() if item[0] not in existing]
    changed = [(*item[1:], item[0]) for item in final.values() if item[0] in existing]
    if fresh:
        _bulk(conn, t.items, encode.ITEM_COLUMNS, fresh)
    if changed:
        _update_stored(conn, t.items, encode.ITEM_COLUMNS[1:], "id", changed)
    versions = [row for a in activations for row in a.versions]
    if fixed is not None and conn.dialect.name == "sqlite" and _versions_of_lines(versions, line_rows):
        # each version but its number is its line's row: made of the lines just written, inside
        # the store, their numbers given as one JSON array (a third of executemany's cost: issue 11)
        conn.exec_driver_sql(_VERSIONS_OF_LINES, (json.dumps([row[1] for row in versions]), fixed[0]))
    else:
        _bulk(conn, t.item_versions, encode.VERSION_COLUMNS, [(pk, *row) for pk, row in zip(keys, versions)])
    # Account metrics: TCV adds up, customer since is the earliest recurring start.
    per_account: dict[str, tuple[Decimal, dt.date | None]] = {}
    for a in activations:
        account = a.account
        tcv, since = per_account.get(account, (Decimal(0), None))
        tcv += a.tcv  # the sum of its lines' stored TCV
        if a.customer_since is not None and (since is None or a.customer_since < since):
            since = a.customer_since
        per_account[account] = (tcv, since)
    updates = []
    for account, (tcv, since) in per_account.items():
        row = current[account]
        if row.customer_since is not None and (since is None or row.customer_since < since):
            since = row.customer_since
        updates.append(dict(b_id=account, tcv=row.tcv + tcv, customer_since=since))
    if conn.dialect.name == "postgresql":
        # one statement over arrays: an executemany is a statement per account on the server
        # (0.87 s of 19,636 accounts in a 100,000-line import)
        money = t.accounts.c.tcv.type
        conn.exec_driver_sql(
            "UPDATE accounts AS a SET tcv = v.tcv, customer_since = v.since "
            "FROM unnest(%s::varchar[], %s::bigint[], %s::date[]) AS v(id, tcv, since) WHERE a.id = v.id",
            ([u["b_id"] for u in updates], [money.process_bind_param(u["tcv"], conn.dialect) for u in updates],
             [u["customer_since"] for u in updates]))
    else:
        # the driver's executemany of stored values: SQLAlchemy's processes each row's parameters
        # one by one (issue 11: 19,636 accounts in a 100,000-line import)
        units, day = stored_encoders(conn)
        conn.exec_driver_sql("UPDATE accounts SET tcv = ?, customer_since = ? WHERE id = ?", [
            (units[u["tcv"]], None if u["customer_since"] is None else day[u["customer_since"]], u["b_id"])
            for u in updates])
    _add_account_tcv(conn, activations)
    _add_links(conn, activations)
    job_ids = _next_pks(conn, t.jobs, len(activations) * len(JOB_KINDS))
    if job_ids is not None and generated and conn.dialect.name == "sqlite":
        # the orders just written, numbered first, first + 1, …: their jobs made of them inside
        # the store, key for key those of the rows below (a third of executemany's cost: issue 11)
        conn.exec_driver_sql(_JOBS_OF_ORDERS, (job_ids[0], first, t.JobStatus.PENDING.value, stamp, stamp,
                                               first, first + len(activations) - 1))
    else:
        job_columns: tuple[str, ...] = ("order_id", "kind", "status", "attempts", "created_at", "updated_at")
        jobs = [(a.order_id, kind, t.JobStatus.PENDING.value, 0, stamp, stamp)
                for a in activations for kind in JOB_KINDS]
        if job_ids is not None:  # known beforehand: the caller about to run them need not read them back
            job_columns, jobs = ("id", *job_columns), [(job_id, *job) for job_id, job in zip(job_ids, jobs)]
        _bulk(conn, t.jobs, job_columns, jobs)
    out = {}
    ids = iter(job_ids or ())
    at = 0  # the rows of each order's lines, in the order written
    for a in activations:
        order_id = a.order_id
        end = at + len(a.lines)
        stored = list(zip(keys[at:end], line_rows[at:end], segment_rows[at:end]))
        at = end
        out[order_id] = StoredOrder(order_id, a.account, a.currency, None, stored,
                                    None if job_ids is None else
                                    [PendingJob(next(ids), order_id, kind, seqs[order_id]) for kind in JOB_KINDS])
    return out


def _add_links(conn: Connection, activations: Sequence[encode.StoredActivation]) -> None:
    """Record each bill-to and sold-to link the first time a batch names it (with the batch's last
    order naming it, as always), reading the batch's accounts' links in one query, not one each."""
    links = {(a.account, role, related): a.order_id for a in activations for role, related in a.links}
    if not links:
        return
    c = t.account_links.c
    known: set[tuple[str, str, str]] = set()
    statement = _built(conn, "account links", lambda in_: select(c.account, c.role, c.related).where(in_(c.account)))
    for chunk in _chunks(list(dict.fromkeys(account for account, _, _ in links))):
        known.update(tuple(r) for r in conn.execute(statement, _in_values(conn, chunk)))
    fresh = [dict(account=account, role=role, related=related, order_id=order_id)
             for (account, role, related), order_id in links.items() if (account, role, related) not in known]
    if fresh:
        conn.execute(insert(t.account_links), fresh)


_ITEM_ACCOUNT, _ITEM_PRODUCT = encode.ITEM_COLUMNS.index("account"), encode.ITEM_COLUMNS.index("product")


def _accounts_named(conn: Connection, activations: Sequence[encode.StoredActivation]) -> dict[str, Row]:
    """The stored (id, tcv, customer_since) of the accounts these activations' orders and items
    belong to, by id, after checking that every account and product they name is in the store.

    The check a foreign key made row by row, once per batch: on PostgreSQL the keys to accounts
    and products are not declared (migration 0011); on SQLite they are, and this refuses the batch
    before its first row, with what is missing named. Either is a defect (the import and ingest
    store the catalogue first, and nothing deletes an account or a product), so the error says so.
    """
    accounts = dict.fromkeys(a.account for a in activations)
    accounts.update((item[_ITEM_ACCOUNT], None) for a in activations for item in a.items)
    current: dict[str, Row] = {}
    statement = _built(conn, "accounts' tcv", lambda in_: select(t.accounts.c.id, t.accounts.c.tcv,
                                                                 t.accounts.c.customer_since).where(in_(t.accounts.c.id)))
    for chunk in _chunks(list(accounts)):
        for r in conn.execute(statement, _in_values(conn, chunk)):
            current[r.id] = r
    products = list(dict.fromkeys(item[_ITEM_PRODUCT] for a in activations for item in a.items))
    missing = [("account", a) for a in accounts if a not in current]
    if products:
        known = _existing(conn, t.products.c.id, products)
        missing += [("product", p) for p in products if p not in known]
    if missing:
        named = ", ".join(f"{kind} {value!r}" for kind, value in missing[:5]) + (", ..." if len(missing) > 5 else "")
        orders = ", ".join(a.order_id for a in activations[:3]) + (", ..." if len(activations) > 3 else "")
        raise StoreError(f"orders {orders} name what the store does not hold: {named}; nothing of them was written",
                         hint="this is a defect in revsync, not in your data: report it with the log")
    return current


def _update_stored(conn: Connection, table, columns: Sequence[str], key: str, rows: list[tuple]) -> None:
    """UPDATE rows given in their stored form (as `_bulk` inserts them), each with its key last."""
    preparer = conn.dialect.identifier_preparer
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    conn.exec_driver_sql(
        f"UPDATE {preparer.format_table(table)} SET {', '.join(f'{preparer.quote(c)} = {marker}' for c in columns)} "
        f"WHERE {preparer.quote(key)} = {marker}", rows)


_L_ITEM, _L_START, _L_END, _L_QUANTITY, _L_PRICE, _L_ACTION = (
    encode.LINE_COLUMNS.index(c) for c in ("item", "start", "end", "quantity", "unit_price", "action"))


def _versions_of_lines(versions: list[tuple], lines: list[tuple]) -> bool:
    """Whether each item version row (`VERSION_COLUMNS` but the line key) is its line's row as
    `_VERSIONS_OF_LINES` makes it of the stored line: the same item, dates, quantity and price, and
    the status its action gives. Always so for `encode.stored_activation`'s rows; anything else is
    inserted as it is."""
    cancel = Action.CANCEL.value
    return len(versions) == len(lines) and all(
        v[0] == r[_L_ITEM] and type(v[1]) is int and v[2] == r[_L_START] and v[3] == r[_L_END]
        and v[4] == r[_L_QUANTITY] and v[5] == r[_L_PRICE]
        and v[6] == ("cancelled" if r[_L_ACTION] == cancel else "active")
        for v, r in zip(versions, lines))


#: SQLite: the item versions of the order lines keyed from ? on, the n-th with the n-th version
#: number of the JSON array ?, as `_versions_of_lines` checked them
_VERSIONS_OF_LINES = (
    'INSERT INTO item_versions (line_pk, item, version, start, "end", quantity, unit_price, status) '
    'SELECT l.pk, l.item, v.value, l.start, l."end", l.quantity, l.unit_price, '
    f"CASE WHEN l.action = '{Action.CANCEL.value}' THEN 'cancelled' ELSE 'active' END "
    "FROM json_each(?1) AS v JOIN order_lines AS l ON l.pk = ?2 + v.key ORDER BY v.key")

#: SQLite: the jobs of the orders numbered ? to ? (their `seq`), each order's `JOB_KINDS` in
#: order, keyed from ? on: the rows `save_stored_activations` would otherwise bind one by one
_JOBS_OF_ORDERS = (
    "INSERT INTO jobs (id, order_id, kind, status, attempts, created_at, updated_at) "
    f"SELECT ? + (o.seq - ?) * {len(JOB_KINDS)} + k.column1, o.id, k.column2, ?, 0, ?, ? "
    "FROM orders AS o, (VALUES " + ", ".join(f"({n}, '{kind}')" for n, kind in enumerate(JOB_KINDS)) + ") AS k "
    "WHERE o.seq BETWEEN ? AND ? ORDER BY o.seq, k.column1")

_ORDER_COLUMNS = ("id", "seq", "account", "owner", "booked_on", "currency", "bill_cycle_day", "bill_to", "sold_to",
                  "origin", "status", "content_hash", "activated_at")
_LINE_COLUMNS = encode.LINE_COLUMNS


def line_pks(conn: Connection, line_ids: Sequence[str]) -> dict[str, int]:
    """Surrogate keys of stored lines by line id."""
    out: dict[str, int] = {}
    for i in range(0, len(line_ids), 500):
        out.update((r.id, r.pk) for r in conn.execute(select(t.order_lines.c.id, t.order_lines.c.pk)
                                                       .where(_in(conn, t.order_lines.c.id,
                                                                  line_ids[i:i + 500]))))
    return out


@dataclass
class StoredOrder:
    """An activated order as the background jobs read it."""

    id: str
    account: str
    currency: str
    #: (line key, line) of its lines, as the engine has them; None: not yet decoded from `stored`
    decoded: list[tuple[int, ActivatedLine]] | None
    #: the lines as just written, when they were: (line key, line row, its segments' rows), each as
    #: `encode.decoded_line` reads them back; cheaper to hand to another process than `lines`
    stored: list[tuple[int, tuple, list[tuple]]] | None = None
    #: its jobs as just written, when their ids were known beforehand (as `pending_jobs_of` reads them)
    jobs: list["PendingJob"] | None = None

    @property
    def lines(self) -> list[tuple[int, ActivatedLine]]:
        """(line key, line) of its lines, decoded from the rows written when it has not the engine's
        own (an import's writing pass has only the rows: the jobs rarely need more than they hold)."""
        if self.decoded is None:
            days, exacts = encode.StoredDays(), encode.StoredExacts()
            self.decoded = [(pk, encode.decoded_line(row, segments, days, exacts))
                            for pk, row, segments in self.stored or ()]
        return self.decoded

    def line_keys(self) -> list[int]:
        """Its lines' keys, in line order."""
        if self.stored is not None:
            return [pk for pk, _, _ in self.stored]
        return [pk for pk, _ in self.lines]

    def items(self) -> list[str]:
        """The subscriptions, assets and entitlements its lines provision, line by line."""
        if self.stored is not None:
            return [row[_LINE_ITEM] for _, row, _ in self.stored]
        return [line.item for _, line in self.lines]

    def credit_eligible(self) -> bool:
        """Whether any of its lines may draw prepaid credit."""
        if self.stored is not None:
            return any(row[_LINE_CREDIT_ELIGIBLE] for _, row, _ in self.stored)
        return any(line.credit_eligible for _, line in self.lines)


_LINE_ITEM = encode.LINE_COLUMNS.index("item")
_LINE_CREDIT_ELIGIBLE = encode.LINE_COLUMNS.index("credit_eligible")


class PendingJob(NamedTuple):
    """A pending job as `pending_jobs_of` reads it."""

    id: int
    order_id: str
    kind: str
    seq: int


#: a pending job's place: activation order, then job order (a key in C, not a lambda per job)
_SEQ_THEN_ID = operator.itemgetter(3, 0)


def load_orders(conn: Connection, order_ids: Sequence[str]) -> dict[str, StoredOrder]:
    """Activated orders with their lines as the engine saw them, in a few queries."""
    orders: dict[str, StoredOrder] = {}
    for i in range(0, len(order_ids), 500):
        chunk = list(order_ids[i:i + 500])
        for o in conn.execute(select(t.orders.c.id, t.orders.c.account, t.orders.c.currency)
                              .where(_in(conn, t.orders.c.id, chunk))):
            orders[o.id] = StoredOrder(o.id, o.account, o.currency, [])
        rows = conn.execute(select(t.order_lines).where(_in(conn, t.order_lines.c.order_id, chunk))
                            .order_by(t.order_lines.c.order_id, t.order_lines.c.seq)).all()
        segs: dict[int, list[Segment]] = {}
        for s in conn.execute(select(t.line_segments).join(t.order_lines, t.order_lines.c.pk == t.line_segments.c.line_pk)
                              .where(_in(conn, t.order_lines.c.order_id, chunk))
                              .order_by(t.line_segments.c.line_pk, t.line_segments.c.seq)):
            segs.setdefault(s.line_pk, []).append(Segment(s.start, s.end_excl, s.mrr, s.quantity))
        for l in rows:
            orders[l.order_id].lines.append((l.pk, activated_line(l, l.order_id, segs.get(l.pk, []))))
    return orders


def activated_line(l, order_id: str, segments: Sequence[Segment]) -> ActivatedLine:
    """Rebuild the engine's view of a stored line."""
    return ActivatedLine(
        order=order_id, id=l.id, seq=l.seq, action=Action(l.action), product=l.product,
        product_name=l.product_name, item=l.item, item_kind=Provisioning(l.item_kind), quantity=l.quantity,
        unit_price=l.unit_price, price_period=PricePeriod(l.price_period),
        list_price_monthly=l.list_price_monthly, start=l.start, end=l.end,
        billing_frequency=BillingFrequency(l.billing_frequency), credit_eligible=l.credit_eligible,
        change_category=ChangeCategory(l.change_category), segments=tuple(segments),
        one_time_amount=l.one_time_amount, bill_cycle_day=l.bill_cycle_day, evergreen=l.evergreen)


# --- background job outputs ----------------------------------------------------------------------

def _chunks(values: Sequence, size: int = 500):
    for i in range(0, len(values), size):
        yield values[i:i + size]


def credit_balances(conn: Connection, accounts: Iterable[str]) -> dict[tuple[str, str], Decimal]:
    """What is left of each account's credit per currency: grants minus every drawdown."""
    out: dict[tuple[str, str], Decimal] = {}
    for chunk in _chunks(sorted(set(accounts))):
        for r in conn.execute(select(t.credits.c.account, t.credits.c.currency, t.credits.c.amount)
                              .where(_in(conn, t.credits.c.account, chunk))):
            out[(r.account, r.currency)] = out.get((r.account, r.currency), Decimal(0)) + r.amount
        for r in conn.execute(select(t.credit_drawdowns.c.account, t.credit_drawdowns.c.currency,
                                     t.credit_drawdowns.c.amount).where(_in(conn, t.credit_drawdowns.c.account, chunk))):
            out[(r.account, r.currency)] = out.get((r.account, r.currency), Decimal(0)) - r.amount
    return out


def orders_with_drawdowns(conn: Connection, order_ids: Sequence[str]) -> set[str]:
    """Orders for which credit review has already recorded drawdowns."""
    out: set[str] = set()
    for chunk in _chunks(list(order_ids)):
        out.update(conn.execute(select(t.credit_drawdowns.c.order_id)
                                .where(_in(conn, t.credit_drawdowns.c.order_id, chunk)).distinct()).scalars())
    return out


def pending_jobs_saved(store: Engine | Connection, saved: dict[str, StoredOrder]) -> list:
    """`pending_jobs_of` the orders `save_activations` has just written, without reading their jobs
    back when it gave their ids (0.8 s per 100,000 lines: issue 11); given an engine, it connects
    only when it must read them."""
    if not all(o.jobs is not None for o in saved.values()):
        if isinstance(store, Engine):
            with store.connect() as conn:
                return pending_jobs_of(conn, list(saved))
        return pending_jobs_of(store, list(saved))
    return sorted((job for o in saved.values() for job in o.jobs or ()), key=_SEQ_THEN_ID)


def pending_jobs_of(conn: Connection, order_ids: Sequence[str]) -> list:
    """The pending jobs (id, order id, kind) of these orders, in activation order and job order."""
    out: list = []
    for chunk in _chunks(list(order_ids)):
        out.extend(conn.execute(select(t.jobs.c.id, t.jobs.c.order_id, t.jobs.c.kind, t.orders.c.seq)
                                .join(t.orders, t.orders.c.id == t.jobs.c.order_id)
                                .where(t.jobs.c.status == t.JobStatus.PENDING, _in(conn, t.jobs.c.order_id, chunk))))
    out.sort(key=lambda j: (j.seq, j.id))
    return out


def any_pending_job(conn: Connection) -> bool:
    """Whether the store holds a pending job of any order."""
    return conn.execute(select(t.jobs.c.id).where(t.jobs.c.status == t.JobStatus.PENDING).limit(1)).first() is not None


def orders_with_job(conn: Connection, order_ids: Sequence[str], kind: str, status: t.JobStatus) -> set[str]:
    """Orders among these whose job of this kind has this status."""
    out: set[str] = set()
    for chunk in _chunks(list(order_ids)):
        out.update(conn.execute(select(t.jobs.c.order_id).where(
            _in(conn, t.jobs.c.order_id, chunk), t.jobs.c.kind == kind, t.jobs.c.status == status)).scalars())
    return out


def save_drawdowns(conn: Connection, drawdowns: Sequence[Drawdown], pks: dict[str, int]) -> None:
    """Record credit drawdowns (one per line at most: the primary key refuses a second)."""
    if drawdowns:
        conn.execute(insert(t.credit_drawdowns), [
            dict(line_pk=pks[d.line], order_id=d.order, account=d.account, currency=d.currency,
                 amount=d.amount, net_amount=d.net_amount) for d in drawdowns])


def replace_line_metrics(conn: Connection, rows: Sequence[tuple[int, Decimal, Decimal]]) -> None:
    """Write subscription metrics of lines as (line key, mrr, tcv), replacing earlier ones."""
    units = encode.Units()
    replace_stored_line_metrics(conn, [(pk, units[m], units[v]) for pk, m, v in rows])


def replace_stored_line_metrics(conn: Connection, rows: StoredRows) -> None:
    """`replace_line_metrics` of rows already in their stored form (line key, mrr units, tcv units)."""
    if isinstance(rows, Staged) and conn.dialect.name == "sqlite":
        # the lines named by the staged rows themselves, not read back into this process first
        # (issue 11: 100,000 keys read, then sent back as JSON, in the writing pass)
        conn.exec_driver_sql(f"DELETE FROM line_metrics WHERE line_pk IN (SELECT c0 FROM {staging.SCHEMA}.{rows.table})")
    else:
        _delete_lines(conn, t.line_metrics, line_keys(conn, rows))
    _bulk(conn, t.line_metrics, ("line_pk", "mrr", "tcv"), rows)


def record_jobs_done(conn: Connection, job_ids: Sequence[int], now: dt.datetime) -> None:
    """Mark these jobs succeeded (one more attempt, no error, nothing to retry)."""
    def done(where: Any) -> Any:
        return update(t.jobs).where(where).values(
            status=t.JobStatus.SUCCEEDED, attempts=t.jobs.c.attempts + 1, last_error=None,
            updated_at=bindparam("now", type_=t.jobs.c.updated_at.type), next_attempt_at=None)

    span = _key_range(job_ids)
    if span is not None:  # a batch's jobs, made together: consecutive keys
        statement = _built(conn, "jobs done by range", lambda _in: done(t.jobs.c.id.between(
            bindparam("low", type_=Integer), bindparam("high", type_=Integer))))
        conn.execute(statement, {"low": span[0], "high": span[1], "now": now})
        return
    statement = _built(conn, "jobs done", lambda in_: done(in_(t.jobs.c.id)))
    for chunk in _chunks(list(job_ids), 2000):
        conn.execute(statement, _in_values(conn, chunk, now=now))


def refresh_item_metrics(conn: Connection, item_ids: Iterable[str]) -> None:
    """Recompute each item's TCV as the sum of its lines' TCV (only lines whose metrics exist)."""
    ids = sorted(set(item_ids))
    # worked out and written by the store in one statement, in stored units (integers: the sum is
    # exact), rather than read into Decimals and written back (issue 11)
    lines_tcv = (select(func.coalesce(func.sum(t.line_metrics.c.tcv), literal(0, BigInteger)))
                 .select_from(t.order_lines.join(t.line_metrics, t.line_metrics.c.line_pk == t.order_lines.c.pk))
                 .where(t.order_lines.c.item == t.items.c.id).scalar_subquery())
    remove = _built(conn, "item metrics removed", lambda in_: delete(t.item_metrics).where(in_(t.item_metrics.c.item)))
    add = _built(conn, "item metrics added", lambda in_: insert(t.item_metrics).from_select(
        ["item", "tcv"], select(t.items.c.id, lines_tcv).where(in_(t.items.c.id))))
    for chunk in _chunks(ids, _BOUND_CHUNK):
        conn.execute(remove, _in_values(conn, chunk))
        conn.execute(add, _in_values(conn, chunk))


def replace_order_metrics(conn: Connection, pks: Sequence[int], metrics: Sequence[tuple[int, OrderMetric]]) -> None:
    """Write order metrics of these lines, replacing earlier ones."""
    replace_stored_order_metrics(conn, pks, encode.stored_order_metrics(metrics, *stored_encoders(conn)))


def replace_stored_order_metrics(conn: Connection, pks: Sequence[int], rows: StoredRows) -> None:
    """Write order metrics of these lines already in their stored form (`encode.stored_order_metrics`),
    replacing earlier ones."""
    _delete_lines(conn, t.order_metrics, pks)
    _bulk(conn, t.order_metrics, ("line_pk", "metric", "seq", "amount", "start", "end", "type",
                                  "generated_reason"), rows)


def lines_with_arr_rows(conn: Connection, pks: Sequence[int]) -> set[int]:
    """Which of these lines already have ARR rows (rows are written once, never changed)."""
    return _lines_having(conn, t.arr_rows, pks)


def _lines_having(conn: Connection, table, pks: Sequence[int]) -> set[int]:
    """Which of these lines have rows in `table` (keyed by `line_pk` first)."""
    out: set[int] = set()
    if conn.dialect.name == "postgresql":
        if not pks:
            return out
        name = conn.dialect.identifier_preparer.format_table(table)
        low, high = min(pks), max(pks)
        if high - low < 2 * len(pks):
            # keys close together (a batch of lines just written: consecutive keys): one range of
            # the key's index holds every row of theirs, and none when they are new (the usual
            # case), found in one descent instead of one probe per line (1.7 s of 100,000 lines)
            ranged = text(f"SELECT DISTINCT line_pk FROM {name} WHERE line_pk BETWEEN :low AND :high")
            wanted = set(pks)
            return {pk for pk in conn.execute(ranged, {"low": low, "high": high}).scalars() if pk in wanted}
        # one probe of the key's index per line, whatever the planner believes of a table an import
        # is filling (a DISTINCT over `= ANY` was planned as a scan of every row: 5 s per 100,000
        # lines), all in one statement: an array has no limit on its values
        probe = text(f"SELECT v FROM unnest(CAST(:pks AS INTEGER[])) AS v WHERE EXISTS "
                     f"(SELECT 1 FROM {name} AS r WHERE r.line_pk = v)").bindparams(bindparam("pks", type_=ARRAY(Integer)))
        return set(conn.execute(probe, {"pks": list(pks)}).scalars())
    span = _key_range(pks)
    if span is not None:  # as on PostgreSQL above: the lines of a batch just written
        ranged = _built(conn, f"lines having {table.name} by range", lambda _in: select(table.c.line_pk).where(
            table.c.line_pk.between(bindparam("low", type_=Integer), bindparam("high", type_=Integer))).distinct())
        return set(conn.execute(ranged, {"low": span[0], "high": span[1]}).scalars())
    statement = _built(conn, f"lines having {table.name}",
                       lambda in_: select(table.c.line_pk).where(in_(table.c.line_pk)).distinct())
    for chunk in _chunks(list(pks)):
        out.update(conn.execute(statement, _in_values(conn, chunk)).scalars())
    return out


def _delete_lines(conn: Connection, table, pks: Sequence[int]) -> None:
    """Delete the rows of these lines from `table`. On PostgreSQL only the lines that have rows are
    named (found by index probes): a `DELETE … = ANY` of new lines, which have none, cost 17 ms per
    500 lines on a table an import is filling."""
    if conn.dialect.name == "postgresql":
        pks = sorted(_lines_having(conn, table, pks))
    else:
        span = _key_range(pks)
        if span is not None:  # the lines of a batch just written: one range of the key's index
            ranged = _built(conn, f"lines deleted from {table.name} by range", lambda _in: delete(table).where(
                table.c.line_pk.between(bindparam("low", type_=Integer), bindparam("high", type_=Integer))))
            conn.execute(ranged, {"low": span[0], "high": span[1]})
            return
    statement = _built(conn, f"lines deleted from {table.name}", lambda in_: delete(table).where(in_(table.c.line_pk)))
    for chunk in _chunks(list(pks)):
        conn.execute(statement, _in_values(conn, chunk))


def _add_account_tcv(conn: Connection, activations: Sequence[encode.StoredActivation]) -> None:
    """Add the activated lines' TCV to their account's TCV in the order's currency (SPEC section 6)."""
    added: dict[tuple[str, str], Decimal] = {}
    for a in activations:
        key = (a.account, a.currency)
        added[key] = added.get(key, Decimal(0)) + a.tcv
    m = t.account_metrics.c
    accounts = sorted({account for account, _ in added})
    before: dict[tuple[str, str], Decimal] = {}
    statement = _built(conn, "account metrics' tcv", lambda in_: select(m.account, m.currency, m.tcv).where(in_(m.account)))
    for chunk in _chunks(accounts):
        for r in conn.execute(statement, _in_values(conn, chunk)):
            before[(r.account, r.currency)] = r.tcv
    fresh = [dict(account=a, currency=c, tcv=v) for (a, c), v in added.items() if (a, c) not in before]
    changed = [dict(b_account=a, b_currency=c, tcv=before[(a, c)] + v) for (a, c), v in added.items()
               if (a, c) in before]
    if fresh and conn.dialect.name == "postgresql":
        # one statement over arrays, as the accounts' update above
        money = m.tcv.type
        conn.exec_driver_sql("INSERT INTO account_metrics (account, currency, tcv) "
                             "SELECT * FROM unnest(%s::varchar[], %s::varchar[], %s::bigint[])",
                             ([f["account"] for f in fresh], [f["currency"] for f in fresh],
                              [money.process_bind_param(f["tcv"], conn.dialect) for f in fresh]))
    elif fresh:  # SQLite: the driver's executemany of stored values, as the accounts' update
        units, _ = stored_encoders(conn)
        conn.exec_driver_sql("INSERT INTO account_metrics (account, currency, tcv) VALUES (?, ?, ?)",
                             [(f["account"], f["currency"], units[f["tcv"]]) for f in fresh])
    if changed and conn.dialect.name == "sqlite":
        units, _ = stored_encoders(conn)
        conn.exec_driver_sql("UPDATE account_metrics SET tcv = ? WHERE account = ? AND currency = ?",
                             [(units[c["tcv"]], c["b_account"], c["b_currency"]) for c in changed])
    elif changed:
        conn.execute(update(t.account_metrics).where(m.account == bindparam("b_account"),
                                                     m.currency == bindparam("b_currency")), changed)


def insert_arr_rows(conn: Connection, rows: Iterable[tuple[int, ArrRow]]) -> int:
    """Insert ARR rows; returns how many."""
    units, day = stored_encoders(conn)
    stored = ((pk, day[r[1]], day[r[2]], units[r[3]], units[r[4]], units[r[5]], units[r[6]]) for pk, r in rows)
    if _copies(conn):
        # streamed: the server stores (and checks the keys of) rows already sent while the
        # engine computes the next ones, on the other core
        counted = _Counted(stored)
        _bulk(conn, t.arr_rows, ARR_ROW_COLUMNS, counted)
        return counted.count
    return insert_stored_arr_rows(conn, list(stored))


#: the columns of an ARR row in its stored form, in the order `insert_stored_arr_rows` takes them
ARR_ROW_COLUMNS = ("line_pk", "period_start", "period_end", "opening_cmrr", "closing_cmrr", "opening_arr",
                   "closing_arr")


def stored_encoders(conn: Connection | Engine) -> tuple[dict, dict]:
    """(money → stored units, date → stored date): the encodings `insert_stored_arr_rows` takes
    (`connector.store.encode`, for this store's dialect)."""
    return encode.encoders(conn.dialect.name)


def insert_stored_arr_rows(conn: Connection, rows: StoredRows) -> int:
    """Insert ARR rows already in their stored form, (line key, period start, period end, opening
    CMRR, closing CMRR, opening ARR, closing ARR) through `stored_encoders`; returns how many."""
    if isinstance(rows, StagedSpans):
        preparer = conn.dialect.identifier_preparer
        inserted = conn.exec_driver_sql(
            f"INSERT INTO {preparer.format_table(t.arr_rows)} "
            f"({', '.join(preparer.quote(c) for c in ARR_ROW_COLUMNS)}) {_spans_select(rows)}").rowcount
        if inserted != rows.count:  # a period missing from the staging file would drop rows unseen
            raise RuntimeError(f"{inserted} ARR rows came out of the staging file's spans, not {rows.count}")
        return inserted
    if isinstance(rows, SpanRows):
        inserted = 0
        if rows.spans:
            preparer = conn.dialect.identifier_preparer
            # Each span's periods by their place in the arrays of periods (in order of their start):
            # `generate_series` of the span's first to its last place, instead of a join on
            # `ord BETWEEN first AND last`, which PostgreSQL can only run as a nested loop testing
            # every span against every period (a third of the server's time for these rows:
            # 125 → 60 ms for 1,300 spans over 300 periods)
            periods = sorted(rows.periods)
            place = {ordinal: i for i, (ordinal, _, _) in enumerate(periods, start=1)}
            try:
                firsts, lasts = [place[s[1]] for s in rows.spans], [place[s[2]] for s in rows.spans]
            except KeyError as exc:
                raise RuntimeError(f"an ARR span reaches a period not sent with it (ordinal {exc.args[0]})") from None
            spans = list(zip(*rows.spans))
            inserted = conn.exec_driver_sql(
                f"INSERT INTO {preparer.format_table(t.arr_rows)} "
                f"({', '.join(preparer.quote(c) for c in ARR_ROW_COLUMNS)}) "
                "SELECT s.pk, p.starts[g], p.ends[g], CASE WHEN g = s.first THEN s.zc ELSE s.c END, "
                "CASE WHEN g = s.last THEN s.zc ELSE s.c END, CASE WHEN g = s.first THEN s.za ELSE s.a END, "
                "CASE WHEN g = s.last THEN s.za ELSE s.a END "
                "FROM (SELECT %s::date[] AS starts, %s::date[] AS ends) AS p, "
                "unnest(%s::integer[], %s::integer[], %s::integer[], %s::bigint[], %s::bigint[], %s::bigint[], "
                "%s::bigint[]) AS s(pk, first, last, c, zc, a, za), generate_series(s.first, s.last) AS g",
                ([p[1] for p in periods], [p[2] for p in periods], list(spans[0]), firsts, lasts,
                 *(list(column) for column in spans[3:]))).rowcount
        if inserted + len(rows.rows) != rows.count:  # a period not sent would drop rows unseen
            raise RuntimeError(f"{inserted + len(rows.rows)} ARR rows came out of the spans, not {rows.count}")
        _bulk(conn, t.arr_rows, ARR_ROW_COLUMNS, rows.rows)
        return rows.count
    _bulk(conn, t.arr_rows, ARR_ROW_COLUMNS, rows)
    return len(rows)


def _spans_select(rows: StagedSpans) -> str:
    """A SELECT of the ARR rows staged as spans (`connector.job_rows.arr_spans`): each span's
    line gets a row per period from its first to its last, opening at zero in the first and
    closing at zero in the last; then the rows staged in full."""
    parts = []
    if rows.spans is not None:
        parts.append(f"SELECT l.c0, p.start, p.\"end\", CASE WHEN p.ord = l.c1 THEN l.c4 ELSE l.c3 END, "
                     "CASE WHEN p.ord = l.c2 THEN l.c4 ELSE l.c3 END, CASE WHEN p.ord = l.c1 THEN l.c6 ELSE l.c5 END, "
                     "CASE WHEN p.ord = l.c2 THEN l.c6 ELSE l.c5 END "
                     f"FROM {staging.SCHEMA}.{rows.spans} AS l CROSS JOIN {staging.SCHEMA}.{staging.PERIODS} AS p "
                     "WHERE p.ord BETWEEN l.c1 AND l.c2")
    if rows.rows is not None:
        parts.append(f"SELECT c0, c1, c2, c3, c4, c5, c6 FROM {staging.SCHEMA}.{rows.rows}")
    return " UNION ALL ".join(parts) or "SELECT 1, 1, 1, 1, 1, 1, 1 WHERE 0"


class _Counted:
    """An iterable that counts what it yields."""

    def __init__(self, items: Iterable):
        self.items, self.count = items, 0

    def __iter__(self):
        for item in self.items:
            self.count += 1
            yield item


# --- bulk writing ------------------------------------------------------------------------------
# The high-volume tables (ARR rows, order metrics) are written with the driver's executemany on
# values already in their stored form: Money as integer units, dates as the dialect stores them.
# This skips SQLAlchemy's per-value type processing, which would otherwise cost more than the
# insert itself. The encodings are those of `Money` and SQLAlchemy's `Date` on each dialect.

def _stored(conn: Connection, column, value):
    """A value as the column's type stores it on this dialect (its bind processor, when it has one)."""
    process = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return value if process is None else process(value)


def _copies(conn: Connection) -> bool:
    """Whether `_bulk` writes by COPY here: PostgreSQL through psycopg 3 (the driver revsync installs)."""
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


#: rows in their stored form: a list, a table of the staging file, or COPY text (connector.store.staging)
StoredRows = Sequence[tuple] | Staged | StagedSpans | SpanRows | CopyText


def line_keys(conn: Connection, rows: StoredRows) -> list[int]:
    """The line key (first column) of each row, wherever the rows are."""
    if isinstance(rows, StagedSpans):
        return [r[0] for r in conn.exec_driver_sql(_spans_select(rows))]
    if isinstance(rows, Staged):
        return [r[0] for r in conn.exec_driver_sql(f"SELECT c0 FROM {staging.SCHEMA}.{rows.table}")]
    if isinstance(rows, CopyText):
        return rows.keys()
    return [r[0] for r in rows]


def without_lines(conn: Connection, rows: StoredRows, pks: Collection[int]) -> StoredRows:
    """The rows of lines other than these, wherever the rows are."""
    if isinstance(rows, CopyText):
        return rows.without(set(pks))
    if isinstance(rows, SpanRows):
        rows = rows.expanded()
    elif isinstance(rows, Staged):
        rows = [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {staging.SCHEMA}.{rows.table}")]
    elif isinstance(rows, StagedSpans):
        rows = [tuple(r) for r in conn.exec_driver_sql(_spans_select(rows))]
    return [r for r in rows if r[0] not in pks]


def _bulk(conn: Connection, table, columns: Sequence[str], rows: Iterable[tuple] | Staged | CopyText) -> None:
    """Insert rows given in their stored form: from the staging file in one statement, or COPY text
    as it is, when the second core's process made them so (`connector.store.staging`); COPY on
    PostgreSQL (any iterable); else executemany (a list)."""
    if isinstance(rows, list) and not rows:
        return
    preparer = conn.dialect.identifier_preparer
    target = f"{preparer.format_table(table)} ({', '.join(preparer.quote(c) for c in columns)})"
    if isinstance(rows, Staged):
        conn.exec_driver_sql(f"INSERT INTO {target} SELECT {', '.join(f'c{i}' for i in range(len(columns)))} "
                             f"FROM {staging.SCHEMA}.{rows.table}")
        return
    if isinstance(rows, CopyText):
        if rows.count:
            with conn.connection.dbapi_connection.cursor() as cursor:
                with cursor.copy(f"COPY {target} FROM STDIN") as copy:
                    copy.write(rows.data)
        return
    if _copies(conn):
        # PostgreSQL's bulk path, in the caller's transaction like any statement of this
        # connection: COPY in binary, 2-4x faster than executemany for the ARR rows (issue 11).
        types = _copy_types(table, tuple(columns))
        with conn.connection.dbapi_connection.cursor() as cursor:
            with cursor.copy(f"COPY {target} FROM STDIN" + (" (FORMAT BINARY)" if types else "")) as copy:
                if types:
                    copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
        return
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    conn.exec_driver_sql(f"INSERT INTO {target} VALUES ({', '.join([marker] * len(columns))})", rows)


@functools.lru_cache(maxsize=None)
def _copy_types(table, columns: tuple[str, ...]) -> list[str] | None:
    """PostgreSQL types of these columns for a binary COPY of stored-form values (None: use text COPY).

    Binary COPY sends each value in its column's own binary format, so the types must be those
    of the table (int4 for Integer, int8 for Money's BigInteger...), not of the Python values.
    """
    names = []
    for name in columns:
        kind = table.c[name].type
        kind = getattr(kind, "impl_instance", kind)  # a TypeDecorator stores its impl's values
        if isinstance(kind, BigInteger):
            names.append("int8")
        elif isinstance(kind, Integer):
            names.append("int4")
        elif isinstance(kind, Boolean):
            names.append("bool")
        elif isinstance(kind, (Date,)) and not isinstance(kind, DateTime):
            names.append("date")
        elif isinstance(kind, String):  # Text and ExactDecimal's String too
            names.append("text")
        else:
            return None
    return names


def _insert(conn: Connection, table, rows: list[dict]) -> None:
    """Insert rows of Python values (every row with the same keys): COPY on PostgreSQL, else executemany."""
    if _copies(conn) and rows:
        columns = tuple(rows[0])
        # COPY takes stored-form values: encode those whose column type has a bind processor
        # (UtcDateTime's check and conversion), as an INSERT would.
        process = [table.c[c].type.dialect_impl(conn.dialect).bind_processor(conn.dialect) for c in columns]
        if any(process):
            _bulk(conn, table, columns, [tuple(v if p is None else p(v) for p, v in zip(process, row.values()))
                                         for row in rows])
        else:
            _bulk(conn, table, columns, [tuple(row.values()) for row in rows])
    else:
        conn.execute(insert(table), rows)


def _next_pks(conn: Connection, table, count: int) -> list[int] | None:
    """The next `count` values of the table's integer key, ascending: rows given these keys get
    exactly those the store would have given them one by one, and the caller knows them without
    reading them back.

    On PostgreSQL they are taken from the key's sequence. On SQLite a key without AUTOINCREMENT
    (none of the store's is) is one more than the largest one: the caller must already have
    written in its transaction (`save_activations` has written the orders), which then holds
    SQLite's write lock, so that no other connection can take those keys first. `None` (read them
    back) outside a transaction.
    """
    if not count:
        return None
    key = next(iter(table.primary_key.columns)).name
    if conn.dialect.name == "sqlite":
        if not conn.connection.dbapi_connection.in_transaction:
            return None
        last = conn.exec_driver_sql(f'SELECT max("{key}") FROM "{table.name}"').scalar() or 0
        return list(range(last + 1, last + 1 + count))
    if conn.dialect.name != "postgresql":
        return None
    # the sequence looked up once, not once per value (`nextval(pg_get_serial_sequence(…))` over
    # the series looks it up for every row: 3.9 ms against 0.7 ms for 1,300 keys); OFFSET 0 keeps
    # the planner from putting the look-up back into every row
    return sorted(conn.execute(text("SELECT nextval(s.seq) FROM (SELECT pg_get_serial_sequence(:table, :key)::regclass "
                                    "AS seq OFFSET 0) AS s, generate_series(1, :count)"),
                               {"table": table.name, "key": key, "count": count}).scalars())


#: the tables a large import fills, whose statistics are refreshed after it
LOADED_TABLES = ("orders", "order_lines", "line_segments", "items", "item_versions", "jobs", "line_metrics",
                 "item_metrics", "order_metrics", "credit_drawdowns", "arr_rows", "accounts", "account_metrics")
#: an import of at least this many order lines refreshes their statistics
LARGE_LOAD_LINES = 10_000


def refresh_statistics(engine: Engine, lines: int) -> None:
    """After a large load on PostgreSQL, ANALYZE the tables it filled, in a transaction of its own.

    Autovacuum would do it within minutes; until then the planner knows nothing of the new rows
    (reports right after an import, the next import's look-ups). SQLite needs nothing here.
    """
    if engine.dialect.name != "postgresql" or lines < LARGE_LOAD_LINES:
        return
    # Two connections, half the tables each: the server analyzes them on two cores at the end of
    # an import, when nothing else runs (1.1 s of a 100,000-line import on one connection).
    halves = [LOADED_TABLES[0::2], LOADED_TABLES[1::2]]

    def analyze(tables: tuple[str, ...]) -> None:
        with engine.begin() as conn:
            conn.execute(text(f"ANALYZE {', '.join(tables)}"))

    with ThreadPoolExecutor(max_workers=len(halves), thread_name_prefix="revsync-analyze") as pool:
        for done in [pool.submit(analyze, tables) for tables in halves]:
            done.result()  # an error of either is raised here, as one connection's would be


def get_meta(conn: Connection, key: str) -> str | None:
    """A stored setting of the store itself."""
    return conn.execute(select(t.meta.c.value).where(t.meta.c.key == key)).scalar()


def written_by_us(conn: Connection, sobject: str, ids: Sequence[str]) -> set[str]:
    """Of these Salesforce record Ids, those the connector itself created or wrote (echo suppression)."""
    out: set[str] = set()
    for i in range(0, len(ids), 500):
        out.update(conn.execute(select(t.sf_ids.c.sf_id).where(t.sf_ids.c.object == sobject,
                                                              t.sf_ids.c.sf_id.in_(ids[i:i + 500]))).scalars())
    return out


#: meta key: when the write-back last learnt the Salesforce Id of a record it wrote (a held order
#: whose line names such an Id is then tried again)
SF_IDS_LEARNT_AT = "sf_ids_learnt_at"


def set_meta(conn: Connection, key: str, value: str) -> None:
    """Store a setting of the store itself."""
    conn.execute(delete(t.meta).where(t.meta.c.key == key))
    conn.execute(insert(t.meta).values(key=key, value=value))


# --- evergreen lines -------------------------------------------------------------------------------

def evergreen_to_extend(conn: Connection, through: dt.date) -> list[tuple[int, str]]:
    """(line key, order id) of the evergreen lines of still-evergreen items materialized short of `through`."""
    l, i = t.order_lines.c, t.items.c
    return [(r.pk, r.order_id) for r in conn.execute(
        select(l.pk, l.order_id).select_from(t.order_lines.join(t.items, i.id == l.item))
        .where(l.evergreen.is_(True), i.evergreen.is_(True), i.status == "active", l.end == i.end,
               i.end < through).order_by(l.pk))]


class ConcurrentExtension(Exception):
    """Another run extended these lines meanwhile; this transaction is rolled back."""


def save_extension(conn: Connection, extended: Sequence[tuple[int, ActivatedLine, ActivatedLine, str]]) -> None:
    """Store evergreen lines moved to a new horizon: (key, line before, line after, currency).

    Moves the pieces that reached the old horizon, the line's and its item's end, and the line's
    stored TCV, adding the change to its account's TCV (the sum of its lines' TCV), in total and in
    the line's currency (`account_metrics`).
    """
    per_account: dict[str, Decimal] = {}
    per_currency: dict[tuple[str, str], Decimal] = {}
    for pk, before, after, currency in extended:
        changed = conn.execute(update(t.order_lines).where(t.order_lines.c.pk == pk,
                                                           t.order_lines.c.end == before.end)
                               .values(end=after.end)).rowcount
        if changed != 1:
            raise ConcurrentExtension(f"line {after.id} was extended by another run; run it again")
        conn.execute(update(t.line_segments).where(t.line_segments.c.line_pk == pk,
                                                   t.line_segments.c.end_excl == before.end + dt.timedelta(days=1))
                     .values(end_excl=after.end + dt.timedelta(days=1)))
        conn.execute(update(t.items).where(t.items.c.id == after.item).values(end=after.end))
        old_tcv = conn.execute(select(t.order_lines.c.tcv).where(t.order_lines.c.pk == pk)).scalar()
        new_tcv = round_money(line_tcv(after), currency)
        if new_tcv != old_tcv:
            conn.execute(update(t.order_lines).where(t.order_lines.c.pk == pk).values(tcv=new_tcv))
            account = conn.execute(select(t.orders.c.account).join(t.order_lines, t.order_lines.c.order_id == t.orders.c.id)
                                   .where(t.order_lines.c.pk == pk)).scalar()
            per_account[account] = per_account.get(account, Decimal(0)) + new_tcv - old_tcv
            key = (account, currency)
            per_currency[key] = per_currency.get(key, Decimal(0)) + new_tcv - old_tcv
    for account, delta in per_account.items():
        current = conn.execute(select(t.accounts.c.tcv).where(t.accounts.c.id == account)).scalar()
        conn.execute(update(t.accounts).where(t.accounts.c.id == account).values(tcv=current + delta))
    m = t.account_metrics.c
    for (account, currency), delta in per_currency.items():
        conn.execute(update(t.account_metrics).where(m.account == account, m.currency == currency)
                     .values(tcv=m.tcv + delta))


def last_arr_periods(conn: Connection, pks: Sequence[int]) -> dict[int, dt.date]:
    """The start of each line's last ARR row (lines without rows are absent)."""
    out: dict[int, dt.date] = {}
    for chunk in _chunks(list(pks)):
        out.update((r[0], r[1]) for r in conn.execute(
            select(t.arr_rows.c.line_pk, func.max(t.arr_rows.c.period_start))
            .where(_in(conn, t.arr_rows.c.line_pk, chunk)).group_by(t.arr_rows.c.line_pk)))
    return out
