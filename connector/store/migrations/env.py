"""Alembic environment: runs the store's migrations on the connection the product hands it."""
from __future__ import annotations

from alembic import context

from connector.store.schema import metadata


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # `alembic` command line (and `command.upgrade`/`downgrade` given a URL): a connection of its own
    from sqlalchemy import create_engine

    engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as own:
            _run(own)
            own.commit()
    finally:
        engine.dispose()
