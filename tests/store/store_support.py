"""Helpers for the store tests: a PostgreSQL schema of their own, and the store's content."""
from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from psycopg.errors import DeadlockDetected
from sqlalchemy.exc import DBAPIError, OperationalError

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def store_url(store: str, tmp_path) -> Iterator[str]:
    """The URL of a new, empty store of this kind: "sqlite" (a file under `tmp_path`) or
    "postgresql" (a schema of its own, `postgres_schema`)."""
    if store == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        with postgres_schema() as url:
            yield url


def three_orders() -> dict:
    """An import document: three new seat lines of one account, ending 3, 6 and 9 months on."""
    return {"accounts": [{"id": "M", "name": "Multi"}],
            "products": [{"id": "SEAT", "name": "Seat", "provisioning": "subscription", "list_price": "100",
                          "price_period": "month"}],
            "orders": [{"id": f"O-{n}", "account": "M", "owner": "Ann", "booked_on": "2023-01-01",
                        "currency": "USD",
                        "lines": [{"id": f"L-{n}", "action": "new", "product": "SEAT", "subscription": f"L-{n}",
                                   "quantity": n, "unit_price": "100.50", "start": "2023-01-01",
                                   "end": f"2023-{3 * n:02d}-28"}]} for n in (1, 2, 3)]}


def schema_differences(conn) -> list:
    """Alembic's differences between this store and `connector/store/schema.py`, but the foreign
    keys PostgreSQL stores do not check by design (migration 0011's `DROPPED`)."""
    import importlib

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from connector.store.schema import metadata

    diff = compare_metadata(MigrationContext.configure(conn), metadata)
    if conn.dialect.name != "postgresql":
        return diff
    dropped = importlib.import_module("connector.store.migrations.versions.0011_activation_rows_checked_per_batch")
    by_design = {(table, column, referred) for table, column, referred, _ in dropped.DROPPED}
    return [d for d in diff if not (d[0] == "add_fk" and len(d[1].column_keys) == 1 and (
        d[1].table.name, d[1].column_keys[0], d[1].referred_table.name) in by_design)]


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL whose search_path is a new, empty schema (dropped at the end); skips without a server."""
    schema = f"revsync_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(SERVER, connect_args={"connect_timeout": 3})
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL is not reachable at {SERVER}: {exc.orig}")
    try:
        yield f"{SERVER}?options=-csearch_path%3D{schema}"
    finally:
        try:
            _drop(admin, schema)
        finally:
            admin.dispose()


def _drop(admin, schema: str, attempts: int = 10) -> None:
    """DROP SCHEMA, again after a deadlock: a process a test killed mid-job (SIGKILL) leaves its
    server backend running the statement it had sent, holding its transaction's locks, until that
    statement ends and the backend finds its client gone. The DROP can meet it (seen once in CI,
    a second after the kill); the backend then ends, and the DROP goes through."""
    for attempt in range(attempts):
        try:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            return
        except DBAPIError as exc:
            if not isinstance(exc.orig, DeadlockDetected) or attempt == attempts - 1:
                raise
            time.sleep(0.5)


@dataclass
class OwnRole:
    """A schema of its own reached through a login role of its own, whose connections can be cut."""

    url: str
    role: str
    admin: Engine

    def down(self) -> None:
        """What a server restart or a failover looks like to revsync: every connection of the role is
        dropped, and new ones are refused ("too many connections for role")."""
        with self.admin.connect() as conn:
            conn.execute(text(f'ALTER ROLE "{self.role}" CONNECTION LIMIT 0'))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :role"),
                         {"role": self.role})

    def up(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'ALTER ROLE "{self.role}" CONNECTION LIMIT -1'))


@contextmanager
def postgres_schema_of_own_role() -> Iterator[OwnRole]:
    """`postgres_schema`, owned by and reached through a new role (dropped at the end with its grants)."""
    role = f"revsync_outage_{uuid.uuid4().hex[:8]}"
    admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
            conn.execute(text(f'GRANT CREATE ON DATABASE test TO "{role}"'))  # revsync's CREATE SCHEMA IF NOT EXISTS
        with postgres_schema() as url:
            with admin.connect() as conn:
                conn.execute(text(f'ALTER SCHEMA "{url.rsplit("%3D", 1)[1]}" OWNER TO "{role}"'))
            own = OwnRole(url.replace("//postgres@", f"//{role}@"), role, admin)
            try:
                yield own
            finally:
                own.up()
                with admin.connect() as conn:
                    # what the role owns (the schema and its tables) goes back to postgres, dropped next
                    conn.execute(text(f'REASSIGN OWNED BY "{role}" TO postgres'))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))  # its grant on the database
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def drop_org_schemas(url: str, orgs) -> None:
    """Drop the schemas `--org NAME` made on the server of `url` (revsync_NAME)."""
    admin = create_engine(url.split("?")[0])
    try:
        with admin.begin() as conn:
            for name in orgs:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "revsync_{name}" CASCADE'))
    finally:
        admin.dispose()


def sqlite_content(path) -> list[str]:
    """Every schema object and row of a SQLite file, as SQL text (compares by content, not size)."""
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()
