"""The Money column type: exact round trips on SQLite, and no silent rounding."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, func, insert, select
from sqlalchemy.exc import StatementError

from connector.store.types import ExactDecimal, Money

AMOUNTS = ["0", "0.0001", "-0.0001", "12000", "5670.9677", "-2000.50", "92233720368547.7580", "1E+3", "83.3333"]


@pytest.fixture
def table(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'money.db'}")
    metadata = MetaData()
    amounts = Table("amounts", metadata, Column("id", Integer, primary_key=True), Column("amount", Money),
                    Column("exact", ExactDecimal))
    metadata.create_all(engine)
    yield engine, amounts
    engine.dispose()


@pytest.mark.parametrize("amount", AMOUNTS, ids=AMOUNTS)
def test_round_trip(table, amount):
    engine, amounts = table
    with engine.begin() as conn:
        conn.execute(insert(amounts), {"amount": Decimal(amount)})
        stored = conn.execute(select(amounts.c.amount)).scalar_one()
    assert isinstance(stored, Decimal)
    assert stored == Decimal(amount)


def test_none_stays_none(table):
    engine, amounts = table
    with engine.begin() as conn:
        conn.execute(insert(amounts), {"amount": None})
        assert conn.execute(select(amounts.c.amount)).scalar_one() is None


@pytest.mark.parametrize("amount", ["0.00001", "1.23456", "-5670.967741935"])
def test_more_than_four_decimals_is_refused(table, amount):
    engine, amounts = table
    with pytest.raises(StatementError) as caught, engine.begin() as conn:
        conn.execute(insert(amounts), {"amount": Decimal(amount)})
    assert isinstance(caught.value.orig, ValueError) and "decimal places" in str(caught.value.orig)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(amounts)).scalar() == 0


def test_sums_in_sql_are_exact(table):
    engine, amounts = table
    values = [Decimal("0.1")] * 10 + [Decimal("5670.9677"), Decimal("-0.0001")]
    with engine.begin() as conn:
        conn.execute(insert(amounts), [{"amount": v} for v in values])
        # a SUM keeps the column's type, so it is decoded from integer units
        total = conn.execute(select(func.sum(amounts.c.amount))).scalar_one()
    assert total == sum(values) == Decimal("5671.9676")


def test_exact_decimal_keeps_every_digit(table):
    engine, amounts = table
    value = Decimal(1000) / Decimal(12)
    with engine.begin() as conn:
        conn.execute(insert(amounts), {"exact": value})
        assert conn.execute(select(amounts.c.exact)).scalar_one() == value
