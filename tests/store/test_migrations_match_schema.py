"""The Alembic migrations build exactly the tables `connector/store/schema.py` declares."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from connector.store.db import open_store
from connector.store.schema import metadata


def test_migrated_store_matches_the_declared_schema(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], f"schema.py and the migrations differ; add a migration: {diff}"
    finally:
        engine.dispose()
