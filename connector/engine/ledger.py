"""The engine's working state: provisioned items and every activated line's contribution.

A ledger is plain in-memory data. The store loads one for the accounts an import touches;
the engine reads it to activate an order and `apply` adds the result, so the next order in the
same file sees it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, MutableMapping

from connector.engine.model import Activation, Item, Segment
from connector.engine.money import Amount

ZERO = Decimal(0)


class Layer(dict):  # type: ignore[type-arg]
    """A dict of changes over a read-only base mapping (a cheaper ChainMap of two: lookups stay in C).

    `collections.ChainMap` answers `in` and `get` with a Python-level scan of its maps; an import
    asks the ledger that millions of times.
    """

    def __init__(self, base: MutableMapping[Any, Any]):
        super().__init__()
        self.base = base

    def __missing__(self, key: Any) -> Any:
        return self.base[key]

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self.base

    def get(self, key: Any, default: Any = None) -> Any:
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        return self.base.get(key, default)


@dataclass
class Ledger:
    """Items by id, the contribution segments of each item, and which items each account holds."""

    items: MutableMapping[str, Item] = field(default_factory=dict)
    segments: MutableMapping[str, list[Segment]] = field(default_factory=dict)
    account_items: MutableMapping[str, set[str]] = field(default_factory=dict)
    activated_orders: set[str] = field(default_factory=set)

    def add_item(self, item: Item, segments: list[Segment]) -> None:
        """Load an item with its segments (from the store)."""
        self.items[item.id] = item
        self.segments[item.id] = list(segments)
        self.account_items.setdefault(item.account, set()).add(item.id)

    def cmrr_on(self, item_id: str, day: dt.date) -> Amount:
        """The item's committed MRR on `day`: the sum of the contributions active that day."""
        return sum((s.mrr for s in self.segments.get(item_id, ()) if s.start <= day < s.end_excl), ZERO)

    def quantity_on(self, item_id: str, day: dt.date) -> Decimal:
        """The item's committed quantity on `day`."""
        return sum((s.quantity for s in self.segments.get(item_id, ()) if s.start <= day < s.end_excl), ZERO)

    def account_cmrr_on(self, account: str, day: dt.date) -> Amount:
        """The account's committed MRR on `day` over all its items."""
        return sum((self.cmrr_on(i, day) for i in self.account_items.get(account, ())), ZERO)

    def segments_from(self, item_id: str, day: dt.date) -> list[Segment]:
        """The item's contributions cut to [day, ∞): what a cancellation from `day` removes."""
        out = []
        for s in self.segments.get(item_id, ()):
            if s.end_excl > day:
                out.append(replace(s, start=max(s.start, day)))
        return out

    def overlay(self) -> "Ledger":
        """A ledger that reads through to this one and keeps its own changes apart (no copying)."""
        return Ledger(items=Layer(self.items), segments=Layer(self.segments),
                      account_items=Layer(self.account_items), activated_orders=self.activated_orders)

    def record(self, item: Item, segments: tuple[Segment, ...]) -> None:
        """Add one provisioned item version and a line's contribution to it."""
        self.items[item.id] = item
        self.account_items[item.account] = self.account_items.get(item.account, set()) | {item.id}
        self.segments[item.id] = [*self.segments.get(item.id, ()), *segments]

    def apply(self, activation: Activation) -> None:
        """Add an order's activation so that later orders see its items and contributions."""
        for item in activation.items:
            self.items[item.id] = item
            self.account_items.setdefault(item.account, set()).add(item.id)
        for line in activation.lines:
            self.segments.setdefault(line.item, []).extend(line.segments)
        self.activated_orders.add(activation.order.id)
