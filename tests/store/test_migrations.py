"""Migrations on an empty SQLite file, and a second open that changes nothing."""
from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect, text

from connector.store import schema as t
from connector.store.db import MIGRATIONS, _alembic_config, open_store


def _schema(engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(text("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name")).all()


def test_migrations_build_every_table_then_are_a_no_op(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(url)
    try:
        head = ScriptDirectory.from_config(_alembic_config(url)).get_current_head()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
        tables = set(inspect(engine).get_table_names())
        assert {table.name for table in t.metadata.sorted_tables} <= tables
        before = _schema(engine)
    finally:
        engine.dispose()

    statements: list[str] = []
    again = open_store(url)
    try:
        event.listen(again, "before_cursor_execute",
                     lambda conn, cursor, statement, *args: statements.append(statement))
        # listening starts after open_store's own migration check: run the check again, watched
        from connector.store.db import upgrade

        upgrade(again)
        assert not [s for s in statements if s.lstrip().upper().startswith(("CREATE", "ALTER", "DROP", "INSERT",
                                                                            "UPDATE"))]
        assert _schema(again) == before
        with again.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    finally:
        again.dispose()


def test_every_migration_file_is_in_one_chain():
    script = ScriptDirectory(str(MIGRATIONS))
    revisions = list(script.walk_revisions())
    assert len(script.get_heads()) == 1
    assert sum(r.down_revision is None for r in revisions) == 1
