"""Alembic environment: runs the store's migrations on the connection the product hands it."""
from __future__ import annotations

from alembic import context

from connector.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` command line during development
    from sqlalchemy import create_engine

    engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
    connection = engine.connect()

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
