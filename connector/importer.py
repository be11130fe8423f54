"""`revsync import FILE`: engine-origin orders from a JSON document (format in README.md).

The whole file is validated first (shape, references, and a dry-run activation of every order in
file order against the store's current state), so a file with any problem imports nothing. Then
each order is activated in its own transaction and its background jobs run. Importing the same
file again changes nothing; a crash half-way is mended by importing the file again.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from sqlalchemy import Engine

from connector.clock import Clock
from connector.engine.activation import OrderRejected, activate
from connector.engine.fiscal import FiscalCalendar
from connector.engine.model import (
    Account, Activation, Action, BillingFrequency, Credit, LineInput, OrderInput, PricePeriod, Product, Provisioning,
)
from connector.engine.money import to_decimal
from connector.engine.settings import EngineSettings
from connector.errors import Problem, TransientError, ValidationFailed
from connector.jobs import JobContext, JobOutcome, JobRunner
from connector.store import repository as repo


def _decimal(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    try:
        return to_decimal(value)
    except (ArithmeticError, TypeError, ValueError):
        raise ValueError(f"not a decimal number: {value!r}") from None


Amount = Annotated[Decimal, BeforeValidator(_decimal)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccountDoc(_Doc):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    bill_cycle_day: int | None = Field(default=None, ge=1, le=31)


class ProductDoc(_Doc):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    provisioning: Provisioning
    list_price: Amount = Field(ge=0)
    price_period: PricePeriod


class CreditDoc(_Doc):
    id: str | None = None
    account: str
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    amount: Amount = Field(gt=0)


class LineDoc(_Doc):
    id: str = Field(min_length=1)
    action: Action
    product: str
    subscription: str | None = Field(default=None, validate_default=True)
    quantity: Amount | None = Field(default=None, ge=0)
    unit_price: Amount | None = Field(default=None, ge=0)
    price_period: PricePeriod | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    term_months: int | None = Field(default=None, gt=0)
    billing_frequency: BillingFrequency = BillingFrequency.MONTH
    credit_eligible: bool = False
    contract_effective: dt.date | None = None
    service_activation: dt.date | None = None
    customer_acceptance: dt.date | None = None

    # field validators, not a model validator: they name the field, and they run even when other
    # fields of the same line are wrong, so every problem of the file is listed at once
    @field_validator("subscription")
    @classmethod
    def _needs_subscription(cls, value: str | None, info: ValidationInfo) -> str | None:
        action = info.data.get("action")
        if action is not None and action is not Action.NEW and not value:
            raise ValueError(f"`subscription` is required for a {action.value} line "
                             "(the subscription it changes)")
        return value

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, value: dt.date | None, info: ValidationInfo) -> dt.date | None:
        start = info.data.get("start")
        if start and value and value < start:
            raise ValueError(f"end {value} is before start {start}")
        return value


class OrderDoc(_Doc):
    id: str = Field(min_length=1)
    account: str
    owner: str = ""
    booked_on: dt.date
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    lines: list[LineDoc] = Field(min_length=1)
    bill_cycle_day: int | None = Field(default=None, ge=1, le=31)
    bill_to: str | None = None
    sold_to: str | None = None


class ImportDoc(_Doc):
    accounts: list[AccountDoc] = []
    products: list[ProductDoc] = []
    credits: list[CreditDoc] = []
    orders: list[OrderDoc] = []


def _where(data: Any, loc: tuple) -> str:
    """Turn a pydantic error location into `order O-1, line OP-001, field quantity`."""
    parts: list[str] = []
    node = data
    i = 0
    names = {"orders": "order", "lines": "line", "accounts": "account", "products": "product",
             "credits": "credit"}
    while i < len(loc):
        key = loc[i]
        if key in names and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            index = loc[i + 1]
            try:
                node = node[key][index]
                label = node.get("id") if isinstance(node, dict) else None
            except (KeyError, IndexError, TypeError):
                label = None
            parts.append(f"{names[key]} {label}" if label else f"{names[key]} #{index + 1}")
            i += 2
            continue
        if isinstance(key, str) and not key.startswith(("function-", "_")):
            parts.append(f"field {key}")
        i += 1
    return ", ".join(parts) or "document"


def parse(text: str, source: str) -> ImportDoc:
    """Parse and check the shape of an import document; every problem at once."""
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(source, [Problem(f"line {exc.lineno}, column {exc.colno}",
                                                f"not valid JSON: {exc.msg}")]) from None
    try:
        return ImportDoc.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown field (see the import format in README.md)"
            problems.append(Problem(_where(data, err["loc"]), message))
        raise ValidationFailed(source, problems) from None


def _order_input(doc: OrderDoc) -> OrderInput:
    return OrderInput(
        id=doc.id, account=doc.account, owner=doc.owner, booked_on=doc.booked_on, currency=doc.currency,
        bill_cycle_day=doc.bill_cycle_day, bill_to=doc.bill_to, sold_to=doc.sold_to,
        lines=tuple(LineInput(
            id=l.id, action=l.action, product=l.product, item=l.subscription, quantity=l.quantity,
            unit_price=l.unit_price, price_period=l.price_period, start=l.start, end=l.end,
            term_months=l.term_months, billing_frequency=l.billing_frequency,
            credit_eligible=l.credit_eligible, contract_effective=l.contract_effective,
            service_activation=l.service_activation, customer_acceptance=l.customer_acceptance)
            for l in doc.lines))


def content_hash(doc: OrderDoc) -> str:
    """A fingerprint of an order's content, to tell a re-import from a conflicting order."""
    # pydantic's own serialiser: fields in declaration order, values normalised by validation
    # ("100" and 100 are the same Decimal), and much faster than dumping a dict in Python.
    return hashlib.sha256(doc.model_dump_json().encode()).hexdigest()


@dataclass
class ImportResult:
    """What an import did."""

    activated: list[str] = field(default_factory=list)
    already_imported: list[str] = field(default_factory=list)
    jobs: list[JobOutcome] = field(default_factory=list)

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


def plan(engine: Engine, doc: ImportDoc, source: str, calendar: FiscalCalendar,
         settings: EngineSettings) -> _Plan:
    """Validate the document against the store and dry-run every order; raise listing every problem."""
    problems: list[Problem] = []
    accounts_in = [Account(a.id, a.name, a.bill_cycle_day) for a in doc.accounts]
    products_in = [Product(p.id, p.name, p.provisioning, p.list_price, p.price_period) for p in doc.products]
    for kind, ids in (("account", [a.id for a in doc.accounts]), ("product", [p.id for p in doc.products]),
                      ("order", [o.id for o in doc.orders]),
                      ("credit", [c.id or f"{c.account}:{c.currency}" for c in doc.credits]),
                      ("line", [l.id for o in doc.orders for l in o.lines])):
        seen: set[str] = set()
        for i in ids:
            if i in seen:
                problems.append(Problem(f"{kind} {i}", f"the {kind} id {i!r} appears more than once in the file"))
            seen.add(i)
    with engine.connect() as conn:
        accounts = repo.load_accounts(conn)
        products = repo.load_products(conn)
        accounts.update({a.id: a for a in accounts_in})
        products.update({p.id: p for p in products_in})
        credits = []
        for c in doc.credits:
            credit = Credit(c.id or f"{c.account}:{c.currency}", c.account, c.currency, c.amount)
            where = f"credit {credit.id}"
            if c.account not in accounts:
                problems.append(Problem(f"{where}, field account", f"unknown account {c.account!r}"))
            stored = repo.credit_by_id(conn, credit.id)
            if stored is None:
                credits.append(credit)
            elif stored != credit:
                problems.append(Problem(where, f"a credit with this id was already imported with "
                                               f"{stored.amount} {stored.currency}; credit grants do not "
                                               "change: give a new grant its own `id`"))
        ledger = repo.load_ledger(conn)
        next_seq = repo.next_order_seq(conn)
        todo: list[Activation] = []
        hashes: dict[str, str] = {}
        skipped: list[str] = []
        new_line_ids = [l.id for o in doc.orders for l in o.lines]
        taken = repo.line_ids_taken(conn, new_line_ids)
        stored_hashes = repo.order_hashes(conn, [o.id for o in doc.orders])
        for order in doc.orders:
            digest = content_hash(order)
            stored = stored_hashes.get(order.id)
            if stored == digest:
                skipped.append(order.id)
                continue
            if stored is not None:
                problems.append(Problem(f"order {order.id}", "an order with this id was already imported with "
                                        "different content; activated orders do not change: express the "
                                        "change as a new order with update/renew/cancel/terms lines"))
                continue
            clash = [l.id for l in order.lines if l.id in taken]
            if clash:
                problems.append(Problem(f"order {order.id}", f"line id(s) {', '.join(clash)} already belong "
                                        "to another imported order; line ids must be unique"))
                continue
            try:
                activation = activate(_order_input(order), ledger, products, accounts, calendar, settings)
            except OrderRejected as exc:
                problems.extend(exc.problems)
                continue
            ledger.apply(activation)
            todo.append(activation)
            hashes[order.id] = digest
    if problems:
        raise ValidationFailed(source, problems, hint="fix the file and import it again; nothing was imported")
    return _Plan(accounts_in, products_in, credits, todo, hashes, skipped, next_seq)


def import_document(engine: Engine, doc: ImportDoc, source: str, calendar: FiscalCalendar,
                    settings: EngineSettings, clock: Clock, runner: JobRunner,
                    progress: Any = None, batch_size: int = 500) -> ImportResult:
    """Validate everything, then write the orders' immediate steps and run their background jobs.

    Orders are written in file order, several whole orders per transaction, so each order's
    immediate step is all-or-nothing; jobs then run in their own transactions.
    """
    the_plan = plan(engine, doc, source, calendar, settings)
    result = ImportResult(already_imported=the_plan.skipped)
    accounts = {a.id: a.name for a in the_plan.accounts}
    with engine.begin() as conn:
        repo.upsert_accounts(conn, the_plan.accounts)
        repo.upsert_products(conn, the_plan.products)
        for credit in the_plan.credits:
            repo.add_credit(conn, credit)
        if repo.get_meta(conn, "fiscal_calendar") is None:
            repo.set_meta(conn, "fiscal_calendar", calendar.fingerprint())
        accounts.update((a.id, a.name) for a in repo.load_accounts(conn).values())
    expected = the_plan.next_seq
    stored: dict[str, repo.StoredOrder] = {}
    for i in range(0, len(the_plan.activations), batch_size):
        batch = the_plan.activations[i:i + batch_size]
        with engine.begin() as conn:
            if repo.next_order_seq(conn) != expected:
                raise TransientError(
                    f"{source}: other orders were activated while this file was being imported; "
                    f"{len(result.activated)} of its orders are activated, the rest are not",
                    hint="import the same file again: activated orders are skipped, the rest are checked anew")
            stored.update(repo.save_activations(conn, batch, origin="engine", hashes=the_plan.hashes,
                                                customer_names=accounts, now=clock.now(),
                                                write_back=runner.ctx.write_back))
        expected += len(batch)
        result.activated.extend(a.order.id for a in batch)
        if progress is not None:
            progress(len(batch))
    result.jobs = runner.run_pending(result.activated + result.already_imported, known=stored)
    return result


def load_file(path: Path) -> tuple[str, str]:
    """Read an import file, with a clear error when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except OSError as exc:
        raise ValidationFailed(str(path), [Problem(str(path), f"cannot read the file: {exc.strerror}")]) from None
