"""Migrations on an empty SQLite file, and a second open that changes nothing."""
from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect, text

from connector.store import schema as t
from connector.store.db import HEAD, MIGRATIONS, REVISIONS, VERSION_TABLE, _alembic_config, open_store


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


def test_the_revisions_revsync_knows_are_the_migration_files_chain_oldest_first():
    """A store at HEAD opens without alembic (db.REVISIONS): a migration added without its revision
    in that list, or a list out of order, fails here."""
    script = ScriptDirectory(str(MIGRATIONS))
    chain = tuple(r.revision for r in reversed(list(script.walk_revisions())))
    assert REVISIONS == chain
    assert HEAD == script.get_current_head()
    assert VERSION_TABLE == "alembic_version"  # alembic's default, which env.py keeps


def test_a_store_stamped_with_two_revisions_is_refused_and_left_as_it_is(tmp_path):
    import sqlite3

    from connector.store.db import StoreError

    url = f"sqlite:///{tmp_path / 'store.db'}"
    open_store(url).dispose()
    engine = open_store(url, migrate=False)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('0009')"))
    finally:
        engine.dispose()
    try:
        open_store(url)
    except StoreError as exc:
        assert "stamped with 2 schema revisions" in str(exc) and "'0009'" in str(exc) and f"'{HEAD}'" in str(exc)
        assert "alembic_version" in exc.hint
    else:
        raise AssertionError("a store with two schema revisions was opened")
    with sqlite3.connect(tmp_path / "store.db") as raw:
        assert sorted(r[0] for r in raw.execute("SELECT version_num FROM alembic_version")) == ["0009", HEAD]
