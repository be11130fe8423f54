"""Values in the form the store keeps them, worked out without a connection (nor SQLAlchemy), so
that a process that never opens the store can make rows for it (the import's second core,
`connector.job_rows`). Money is an integer count of 10**-STORE_SCALE; dates are what SQLAlchemy's
`Date` makes of them on each dialect.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Iterable

from connector.engine.model import OrderMetric
from connector.engine.money import STORE_SCALE


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
