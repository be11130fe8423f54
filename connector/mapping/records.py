"""The engine-side records that mapping files may name, with each field's type and allowed values.

Fields of engine dataclasses are read from `connector.engine.model`, so a renamed engine field
shows up here (and in every mapping that names it) at once. Records the engine has no dataclass
for (Opportunity, Quote, FiscalPeriod, AccountMetrics, ArrRow context) and the context fields
ingest and the writers add around the dataclasses (a line's order, a subscription's MRR) are
declared here, in one place.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import types
import typing
from dataclasses import dataclass
from decimal import Decimal

from connector.engine import model

#: the coercion types a mapping field may declare
TYPES = ("date", "datetime", "decimal", "integer", "boolean", "string")


@dataclass(frozen=True)
class EngineField:
    """One engine field: its coercion type and, for enumerations, the values it accepts."""

    name: str
    type: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class EngineRecord:
    """An engine record a mapping file targets (read) or takes its values from (write)."""

    name: str
    fields: dict[str, EngineField]
    required: frozenset[str] = frozenset()
    doc: str = ""


def _type_of(annotation: object) -> tuple[str, tuple[str, ...]] | None:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return _type_of(args[0]) if len(args) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "string", tuple(str(m.value) for m in annotation)
    simple = {dt.datetime: "datetime", dt.date: "date", Decimal: "decimal", bool: "boolean",
              int: "integer", str: "string"}
    return (simple[annotation], ()) if annotation in simple else None


def _from_dataclass(cls: type, *, exclude: tuple[str, ...] = (), **extra: str | tuple[str, tuple[str, ...]]
                    ) -> dict[str, EngineField]:
    hints = typing.get_type_hints(cls)
    out: dict[str, EngineField] = {}
    for f in dataclasses.fields(cls):
        kind = _type_of(hints[f.name])
        if kind is not None and f.name not in exclude:  # tuples of lines etc. are assembled, not mapped
            out[f.name] = EngineField(f.name, *kind)
    return out | _fields(**extra)


def _fields(**spec: str | tuple[str, tuple[str, ...]]) -> dict[str, EngineField]:
    out = {}
    for name, kind in spec.items():
        out[name] = EngineField(name, kind) if isinstance(kind, str) else EngineField(name, *kind)
    return out


def _choices(enum_cls: type[enum.Enum]) -> tuple[str, tuple[str, ...]]:
    return "string", tuple(str(m.value) for m in enum_cls)


#: Records a reading mapping may target. `required` fields must be mapped (by source or constant).
READ_RECORDS: dict[str, EngineRecord] = {r.name: r for r in (
    EngineRecord("Account", _from_dataclass(model.Account), frozenset({"id", "name"}),
                 "a customer account"),
    # list_price is not required: Product2 has no price of its own (prices live on PricebookEntry),
    # and ingest takes 0 when no mapping gives one.
    EngineRecord("Product", _from_dataclass(model.Product), frozenset({"id", "provisioning", "price_period"}),
                 "a catalogue product"),
    EngineRecord("OrderInput", _from_dataclass(
        model.OrderInput, exclude=("lines",), status="string", start="date", opportunity="string",
        quote="string", number="string", name="string", owner_name="string"),
        frozenset({"id", "account", "status", "start"}),
        "an order; `status` decides activation, `start` stands in for `booked_on` when that is blank; "
        "`owner_name` is the name reports show for the owner"),
    EngineRecord("LineInput", _from_dataclass(
        model.LineInput, order="string", quote="string", line_number="string", subscription="string",
        product_name="string", quote_line="string"),
        frozenset({"id", "action", "product"}),
        "an order or quote line; `subscription` is the Salesforce subscription a change line changes"),
    EngineRecord("Opportunity", _fields(
        id="string", name="string", account="string", owner="string", stage="string", is_won="boolean",
        is_closed="boolean", close_date="date", synced_quote="string", amount="decimal", currency="string",
        type="string"), frozenset({"id", "account", "is_won", "synced_quote"}),
        "an opportunity: Closed Won with a synced quote makes a Salesforce-origin order"),
    EngineRecord("Quote", _fields(
        id="string", name="string", number="string", opportunity="string", account="string", owner="string",
        status="string", is_syncing="boolean", expires_on="date", currency="string",
        bill_cycle_day="integer"), frozenset({"id", "opportunity"}),
        "a quote; its lines become an order's lines"),
    EngineRecord("FiscalPeriod", _fields(
        id="string", type="string", start="date", end="date", fiscal_year="integer", quarter="integer",
        number="integer", label="string"), frozenset({"id", "type", "start", "end"}),
        "a fiscal period; only `type` Month periods make the calendar"),
)}

#: Extra required fields per Salesforce object: the parent ingest files a record under.
READ_PARENT = {"OrderItem": "order", "QuoteLineItem": "quote", "Quote": "opportunity", "Order": "account"}

_ITEM_STATUS = ("active", "cancelled")

#: Records a writing mapping may take its values from.
WRITE_RECORDS: dict[str, EngineRecord] = {r.name: r for r in (
    EngineRecord("Item", _from_dataclass(
        model.Item, status=("string", _ITEM_STATUS), kind=_choices(model.Provisioning),
        product_name="string", mrr="decimal", arr="decimal", tcv="decimal"),
        doc="a subscription, asset or entitlement at its latest version, with its metrics"),
    EngineRecord("AccountMetrics", _fields(
        id="string", tcv="decimal", arr="decimal", mrr="decimal", customer_since="date",
        bill_cycle_day="integer"), doc="an account's metrics (SPEC section 3 and 6)"),
    EngineRecord("OrderInput", _from_dataclass(
        model.OrderInput, exclude=("lines",), status=("string", ("draft", "activated")), start="date",
        pricebook="string", name="string", opportunity="string", quote="string"),
        doc="an order the connector writes: engine-origin orders, written as Draft and set to Activated "
            "once the engine confirms, and orders made from a won opportunity's primary quote"),
    EngineRecord("LineInput", _from_dataclass(
        model.LineInput, order="string", pricebook_entry="string", product_name="string", quote_line="string"),
        doc="a line of an order the connector writes"),
    EngineRecord("ArrRow", _fields(
        order="string", order_product="string", customer="string", customer_name="string", owner="string",
        subscription="string", subscription_number="string", product="string", product_name="string",
        change_category=_choices(model.ChangeCategory), period_start="date", period_end="date",
        opening_cmrr="decimal", closing_cmrr="decimal", change_cmrr="decimal", opening_arr="decimal",
        closing_arr="decimal", change_arr="decimal", quantity="decimal", currency="string"),
        doc="one ARR-by-period row (SPEC section 7) with its order, customer, owner and product"),
)}


def engine_record(direction: str, name: str) -> EngineRecord | None:
    """The engine record called `name` for a `read` or `write` mapping, or None."""
    return (READ_RECORDS if direction == "read" else WRITE_RECORDS).get(name)
