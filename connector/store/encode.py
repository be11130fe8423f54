"""Values in the form the store keeps them, worked out without a connection (nor SQLAlchemy), so
that a process that never opens the store can make rows for it (the import's second core,
`connector.job_rows`). Money is an integer count of 10**-STORE_SCALE; dates are what SQLAlchemy's
`Date` makes of them on each dialect.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Any, Iterable, NamedTuple

from connector.engine.activation import line_tcv
from connector.engine.model import (
    Action, ActivatedLine, Activation, BillingFrequency, ChangeCategory, OrderMetric, PricePeriod, Provisioning,
    Segment,
)
from connector.engine.money import STORE_SCALE, Exact, exact_text, parse_exact, round_money


class Units(dict):
    """Money → stored integer units, remembering values already seen (rows repeat a few amounts).

    A dict with `__missing__`, so a hit is a plain subscript: `units[amount]`. The encoding is
    `Money`'s (integers of 10**-STORE_SCALE), done here without its per-value call overhead.
    """

    def __missing__(self, value: Decimal) -> int:
        scaled = value.scaleb(STORE_SCALE)
        units = int(scaled)
        if units != scaled:
            raise ValueError(f"{value} has more than {STORE_SCALE} decimal places; round it before storing")
        self[value] = units
        return units


class IsoDays(dict):
    """date → 'YYYY-MM-DD', how SQLAlchemy's Date stores it in SQLite; remembered per date."""

    def __missing__(self, day: dt.date) -> str:
        text = self[day] = day.isoformat()
        return text


class SameDays(dict):
    """date → date, for drivers that take dates as they are."""

    def __missing__(self, day: dt.date) -> dt.date:
        return day


def encoders(dialect: str) -> tuple[dict, dict]:
    """(money → stored units, date → stored date) for a store of this dialect ("sqlite", "postgresql")."""
    return Units(), IsoDays() if dialect == "sqlite" else SameDays()


def stored_order_metrics(metrics: Iterable[tuple[int, OrderMetric]], units: dict, day: dict) -> list[tuple]:
    """Order metrics (line key, metric) in their stored form, numbered per line and metric in the
    order given, through `encoders`' encodings: what `replace_stored_order_metrics` takes."""
    counter: dict[tuple[int, str], int] = {}
    rows = []
    for pk, m in metrics:
        seq = counter.get((pk, m.metric), 0)
        counter[(pk, m.metric)] = seq + 1
        rows.append((pk, m.metric, seq, units[m.amount], day[m.start], day[m.end], m.type, m.generated_reason))
    return rows


#: an order line's columns in the order `repository.save_activations` writes them (after its key)
LINE_COLUMNS = ("id", "order_id", "seq", "action", "product", "product_name", "customer_name", "item",
                "item_kind", "quantity", "unit_price", "price_period", "list_price_monthly", "start", "end",
                "billing_frequency", "credit_eligible", "change_category", "one_time_amount", "bill_cycle_day",
                "tcv", "evergreen")
#: a line segment's columns in the order `repository.save_activations` writes them
SEGMENT_COLUMNS = ("line_pk", "seq", "start", "end_excl", "mrr", "quantity")
#: an item version's columns in the order `repository.save_activations` writes them
VERSION_COLUMNS = ("line_pk", "item", "version", "start", "end", "quantity", "unit_price", "status")
#: an item's columns in the order `repository.save_activations` writes them
ITEM_COLUMNS = ("id", "kind", "account", "product", "currency", "start", "end", "term_start", "quantity",
                "unit_price", "price_period", "bill_cycle_day", "status", "version", "created_by", "last_line",
                "evergreen")


class StoredActivation(NamedTuple):
    """An order's immediate step (`Activation`) in the store's form, made without a connection:
    where the import validates it (both validating processes), so the writing pass only adds the
    keys and inserts (issue 11). `repository.save_stored_activations` writes it."""

    #: id, account, owner, booked on, currency, bill cycle day, bill to, sold to
    order: tuple
    #: its lines' rows (`LINE_COLUMNS`)
    lines: list[tuple]
    #: each line's segments' rows (`SEGMENT_COLUMNS` but the line key)
    segments: list[list[tuple]]
    #: each line's item version row (`VERSION_COLUMNS` but the line key)
    versions: list[tuple]
    #: the items it changed, as it left them (`ITEM_COLUMNS`)
    items: list[tuple]
    #: its lines' TCV as stored (each rounded to the currency), added up
    tcv: Decimal
    customer_since: dt.date | None
    #: (role, related account) of its bill-to and sold-to accounts
    links: tuple[tuple[str, str], ...]

    @property
    def order_id(self) -> str:
        return self.order[0]

    @property
    def account(self) -> str:
        return self.order[1]

    @property
    def owner(self) -> str | None:
        return self.order[2]

    @property
    def currency(self) -> str:
        return self.order[4]


#: each member of the enumerations a line or an item stores → its stored value (a plain str): a dict
#: look-up instead of `.value`, a property call (issue 11: seven a line). All are StrEnums, so two
#: members equal as text (a price period and a billing frequency "month") map to the same text.
_VALUES: dict[StrEnum, str] = {m: m.value for kind in (Action, Provisioning, PricePeriod, BillingFrequency,
                                                      ChangeCategory) for m in kind}


def stored_activation(a: Activation, customer: str, units: dict, day: dict) -> StoredActivation:
    """`a` in the store's form, with `encoders`' encodings; `customer` is its account's name."""
    o = a.order
    tcvs = [round_money(line_tcv(l), o.currency) for l in a.lines]
    value = _VALUES
    return StoredActivation(
        (o.id, o.account, o.owner, day[o.booked_on], o.currency, a.bill_cycle_day, o.bill_to, o.sold_to),
        [(l.id, o.id, l.seq, value[l.action], l.product, l.product_name, customer, l.item, value[l.item_kind],
          str(l.quantity), str(l.unit_price), value[l.price_period], exact_text(l.list_price_monthly),
          day[l.start], day[l.end], value[l.billing_frequency], l.credit_eligible, value[l.change_category],
          exact_text(l.one_time_amount), l.bill_cycle_day, units[tcv], l.evergreen)
         for l, tcv in zip(a.lines, tcvs)],
        [[(i, day[s.start], day[s.end_excl], exact_text(s.mrr), str(s.quantity)) for i, s in enumerate(l.segments)]
         for l in a.lines],
        [(l.item, l.item_version, day[l.start], day[l.end], str(l.quantity), str(l.unit_price),
          "cancelled" if l.action is Action.CANCEL else "active") for l in a.lines],
        [(i.id, value[i.kind], i.account, i.product, i.currency, day[i.start], day[i.end], day[i.term_start],
          str(i.quantity), str(i.unit_price), value[i.price_period], i.bill_cycle_day, i.status, i.version,
          i.created_by, i.last_line, i.evergreen) for i in a.items],
        sum(tcvs, Decimal(0)), a.customer_since, a.links)


class StoredDays(dict):
    """A stored date → the date: ISO text (SQLite) parsed, a date (PostgreSQL) as it is; remembered."""

    def __missing__(self, stored: "str | dt.date") -> dt.date:
        day = self[stored] = dt.date.fromisoformat(stored) if isinstance(stored, str) else stored
        return day


class StoredExacts(dict):
    """ExactDecimal's stored text → the value it reads back as (`parse_exact`); remembered."""

    def __missing__(self, text: str) -> "Decimal | Exact":
        value = self[text] = parse_exact(text)
        return value


#: each enumeration's members by their stored value: a dict look-up, not the enum's call, which
#: costs about a quarter of decoding a line (issue 11: the second core decodes every line it is sent)
_ACTIONS = {m.value: m for m in Action}
_KINDS = {m.value: m for m in Provisioning}
_PERIODS = {m.value: m for m in PricePeriod}
_FREQUENCIES = {m.value: m for m in BillingFrequency}
_CATEGORIES = {m.value: m for m in ChangeCategory}


def decoded_line(row: tuple, segments: Iterable[tuple], days: dict, exacts: dict) -> ActivatedLine:
    """An order line as the store reads it back (`repository.load_orders`), from the row and its
    segments' rows as `repository.save_activations` wrote them (`LINE_COLUMNS`, `SEGMENT_COLUMNS`),
    with `StoredDays` and `StoredExacts`: the form in which the importing process hands its lines
    to its second core, cheaper to send than the engine's objects. A value no member has raises
    ValueError, as the enumeration's own call does."""
    (line_id, order_id, seq, action, product, product_name, _customer, item, item_kind, quantity, unit_price,
     price_period, list_price_monthly, start, end, billing_frequency, credit_eligible, change_category,
     one_time_amount, bill_cycle_day, _tcv, evergreen) = row
    try:
        members = (_ACTIONS[action], _KINDS[item_kind], _PERIODS[price_period], _FREQUENCIES[billing_frequency],
                   _CATEGORIES[change_category])
    except (KeyError, TypeError):
        members = (Action(action), Provisioning(item_kind), PricePeriod(price_period),
                   BillingFrequency(billing_frequency), ChangeCategory(change_category))
    fields = dict(
        order=order_id, id=line_id, seq=seq, action=members[0], product=product, product_name=product_name,
        item=item, item_kind=members[1], quantity=exacts[quantity], unit_price=exacts[unit_price],
        price_period=members[2], list_price_monthly=exacts[list_price_monthly],
        start=days[start], end=days[end], billing_frequency=members[3],
        credit_eligible=bool(credit_eligible), change_category=members[4],
        segments=tuple(Segment(days[s[2]], days[s[3]], exacts[s[4]], exacts[s[5]]) for s in segments),
        one_time_amount=exacts[one_time_amount], bill_cycle_day=bill_cycle_day, item_version=1,
        evergreen=bool(evergreen))
    return _restored(ActivatedLine, _LINE_FIELDS, fields)


_LINE_FIELDS = frozenset(f.name for f in dataclasses.fields(ActivatedLine))
_new = object.__new__


def _restored(cls: type, names: frozenset[str], fields: dict) -> Any:
    """A frozen dataclass of values already checked (read back from the store) with every field
    given, its `__dict__` filled in one step: a frozen dataclass's `__init__` sets each field
    through `object.__setattr__`, five times the cost for a line of 22 fields (issue 11). Anything
    but exactly its fields goes through `__init__`, which says what is wrong."""
    if fields.keys() != names:
        return cls(**fields)
    out: Any = _new(cls)
    out.__dict__.update(fields)
    return out
