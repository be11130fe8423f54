"""Small builders for engine tests: a catalogue, accounts, and a `Book` that activates orders in turn.

Named `engine_builders` (not `helpers`) so it cannot clash with a module of the same name in
another test folder; the test files import it by its folder being on sys.path (pytest's default
`prepend` import mode for folders without `__init__.py`).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from connector.engine.money import round_money
from connector.engine.activation import activate, line_tcv
from connector.engine.arr_by_period import arr_rows
from connector.engine.fiscal import FiscalCalendar, StandardFiscalCalendar
from connector.engine.ledger import Ledger
from connector.engine.model import (
    Account,
    Action,
    Activation,
    ActivatedLine,
    ArrRow,
    LineInput,
    OrderInput,
    PricePeriod,
    Product,
    Provisioning,
)
from connector.engine.settings import EngineSettings


def D(text: str) -> dt.date:
    """A date from ISO text."""
    return dt.date.fromisoformat(text)


def M(value: Any) -> Decimal:
    """An exact Decimal from an int or a string (never a float)."""
    assert not isinstance(value, float)
    return Decimal(str(value)) if not isinstance(value, Decimal) else value


PRODUCTS = {
    p.id: p
    for p in (
        Product("SEATS", "Seats", Provisioning.SUBSCRIPTION, M(100), PricePeriod.MONTH),
        Product("PLATFORM", "Platform", Provisioning.SUBSCRIPTION, M(2000), PricePeriod.MONTH),
        Product("ANNUAL", "Annual licence", Provisioning.SUBSCRIPTION, M(1000), PricePeriod.YEAR),
        Product("QUARTERLY", "Quarterly service", Provisioning.SUBSCRIPTION, M(300), PricePeriod.QUARTER),
        Product("SETUP", "Setup fee", Provisioning.ASSET, M(500), PricePeriod.ONE_TIME),
        Product("SUPPORT", "Premium support", Provisioning.ENTITLEMENT, M(50), PricePeriod.MONTH),
    )
}

ACCOUNTS = {
    a.id: a
    for a in (
        Account("A", "Customer A"),
        Account("B", "Customer B"),
        Account("C", "Customer C", bill_cycle_day=15),
    )
}


def line(id: str, action: Action | str = Action.NEW, product: str = "SEATS", **kw: Any) -> LineInput:
    """A LineInput; dates may be ISO strings and amounts ints or strings."""
    for key in ("start", "end", "contract_effective", "service_activation", "customer_acceptance"):
        if isinstance(kw.get(key), str):
            kw[key] = D(kw[key])
    for key in ("quantity", "unit_price"):
        if kw.get(key) is not None:
            kw[key] = M(kw[key])
    return LineInput(id=id, action=Action(action), product=product, **kw)


def order(id: str, account: str, *lines: LineInput, booked_on: str = "2023-01-01", owner: str = "Chloe",
          currency: str = "USD", **kw: Any) -> OrderInput:
    """An OrderInput with its lines."""
    return OrderInput(id=id, account=account, owner=owner, booked_on=D(booked_on), currency=currency,
                      lines=tuple(lines), **kw)


@dataclass
class Book:
    """A ledger plus everything activated into it, in activation order."""

    calendar: FiscalCalendar = field(default_factory=StandardFiscalCalendar)
    settings: EngineSettings = field(default_factory=EngineSettings)
    products: dict[str, Product] = field(default_factory=lambda: dict(PRODUCTS))
    accounts: dict[str, Account] = field(default_factory=lambda: dict(ACCOUNTS))
    ledger: Ledger = field(default_factory=Ledger)
    activations: list[Activation] = field(default_factory=list)

    def try_activate(self, o: OrderInput) -> Activation:
        """Activate against the ledger without applying (raises OrderRejected)."""
        return activate(o, self.ledger, self.products, self.accounts, self.calendar, self.settings)

    def activate(self, o: OrderInput) -> Activation:
        """Activate and apply, as the store would after saving."""
        a = self.try_activate(o)
        self.ledger.apply(a)
        self.activations.append(a)
        return a

    @property
    def lines(self) -> list[ActivatedLine]:
        return [l for a in self.activations for l in a.lines]

    def line(self, line_id: str) -> ActivatedLine:
        (found,) = [l for l in self.lines if l.id == line_id]
        return found

    def rows(self, line_id: str) -> list[ArrRow]:
        a = next(a for a in self.activations if any(l.id == line_id for l in a.lines))
        return list(arr_rows(self.line(line_id), a.order.currency, self.calendar))

    def cmrr(self, item: str, day: str | dt.date) -> Decimal:
        return self.ledger.cmrr_on(item, D(day) if isinstance(day, str) else day)


def tcv(line: ActivatedLine) -> Decimal:
    """A line's TCV rounded to cents, as shown."""
    return round_money(line_tcv(line), "USD")
