"""The UtcDateTime column type: aware UTC datetimes back on SQLite and PostgreSQL, naive ones refused,
and the stored form of DateTime(timezone=True) unchanged (no migration)."""
from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, create_engine, func, insert, select, text
from sqlalchemy.exc import StatementError

from connector.store.repository import _insert
from connector.store.types import UtcDateTime

from store_support import postgres_schema

UTC = dt.timezone.utc
PARIS_SUMMER = dt.timezone(dt.timedelta(hours=2))
AT = dt.datetime(2026, 7, 1, 9, 30, 15, 123456, tzinfo=UTC)


def _table():
    metadata = MetaData()
    stamps = Table("stamps", metadata, Column("id", Integer, primary_key=True), Column("at", UtcDateTime),
                   Column("plain", DateTime(timezone=True)))
    return metadata, stamps


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    metadata, stamps = _table()
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'stamps.db'}")
        metadata.create_all(engine)
        yield engine, stamps
        engine.dispose()
    else:
        with postgres_schema() as url:
            engine = create_engine(url)
            metadata.create_all(engine)
            yield engine, stamps
            engine.dispose()


@pytest.mark.parametrize("given", [AT, AT.astimezone(PARIS_SUMMER)], ids=["utc", "plus-two-hours"])
def test_aware_round_trip_comes_back_utc(store, given):
    engine, stamps = store
    with engine.begin() as conn:
        conn.execute(insert(stamps), {"at": given})
        got = conn.execute(select(stamps.c.at)).scalar_one()
        # a bound comparison goes through the type too; MAX keeps the column's type
        assert conn.execute(select(func.count()).where(stamps.c.at == AT)).scalar_one() == 1
        assert conn.execute(select(func.max(stamps.c.at))).scalar_one().tzinfo == UTC
    assert got == AT and got.tzinfo == UTC and got.isoformat() == "2026-07-01T09:30:15.123456+00:00"


def test_naive_is_refused_and_nothing_written(store):
    engine, stamps = store
    with pytest.raises(StatementError) as caught, engine.begin() as conn:
        conn.execute(insert(stamps), {"at": AT.replace(tzinfo=None)})
    assert isinstance(caught.value.orig, ValueError) and "naive" in str(caught.value.orig)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(stamps)).scalar_one() == 0


def test_none_stays_none(store):
    engine, stamps = store
    with engine.begin() as conn:
        conn.execute(insert(stamps), {"at": None})
        assert conn.execute(select(stamps.c.at)).scalar_one() is None


def test_sqlite_stores_the_text_datetime_with_time_zone_stored(tmp_path):
    """Same stored text as the plain DateTime(timezone=True) columns of existing stores: the UTC wall time."""
    path = tmp_path / "stamps.db"
    metadata, stamps = _table()
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(stamps), {"at": AT.astimezone(PARIS_SUMMER), "plain": AT})
    engine.dispose()
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("SELECT at, plain FROM stamps").fetchone() == ("2026-07-01 09:30:15.123456",) * 2
    finally:
        raw.close()


def test_postgresql_column_type_and_session_time_zone():
    """timestamptz as before; UTC back even when the session's time zone is another one."""
    metadata, stamps = _table()
    with postgres_schema() as url:
        engine = create_engine(url)
        try:
            metadata.create_all(engine)
            with engine.begin() as conn:
                kinds = {name: kind for name, kind in conn.execute(text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = 'stamps' AND table_schema = current_schema()"))}
                assert kinds["at"] == kinds["plain"] == "timestamp with time zone"
                conn.execute(text("SET LOCAL TIME ZONE 'Europe/Paris'"))
                conn.execute(insert(stamps), {"at": AT, "plain": AT})
                at, plain = conn.execute(select(stamps.c.at, stamps.c.plain)).one()
            assert plain.utcoffset() == dt.timedelta(hours=2)  # what the bare type gave callers
            assert at == AT and at.tzinfo == UTC
        finally:
            engine.dispose()


def test_postgresql_copy_path_checks_and_stores_the_same():
    """`_insert` writes by COPY on PostgreSQL: same stored instant as an INSERT, naive refused there too."""
    metadata, stamps = _table()
    with postgres_schema() as url:
        engine = create_engine(url)
        try:
            metadata.create_all(engine)
            with engine.begin() as conn:
                _insert(conn, stamps, [{"id": 1, "at": AT.astimezone(PARIS_SUMMER), "plain": AT}])
                conn.execute(insert(stamps), {"id": 2, "at": AT, "plain": AT})
                rows = conn.execute(text("SELECT id, at = plain, at::text FROM stamps ORDER BY id")).all()
            assert rows[0][1:] == rows[1][1:] == (True, "2026-07-01 09:30:15.123456+00")
            with pytest.raises(ValueError, match="naive"), engine.begin() as conn:
                _insert(conn, stamps, [{"id": 3, "at": AT.replace(tzinfo=None), "plain": AT}])
        finally:
            engine.dispose()
