"""Helpers for the store tests: a PostgreSQL schema of their own, and the store's content."""
from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text
from psycopg.errors import DeadlockDetected
from sqlalchemy.exc import DBAPIError, OperationalError

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


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
