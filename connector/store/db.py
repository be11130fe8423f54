"""Opening the store: one SQLAlchemy engine per URL, migrated to the latest schema on open."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError

from connector.errors import FatalError

MIGRATIONS = Path(__file__).with_name("migrations")


def _alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (reports, status) run beside the writer; NORMAL sync is durable at each
    # checkpoint and safe against corruption (https://www.sqlite.org/wal.html).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB: large imports touch big indexes
    cursor.close()


def open_store(url: str, *, migrate: bool = True) -> Engine:
    """Connect to the store at `url` and bring its schema up to date."""
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        if migrate:
            upgrade(engine)
    except OperationalError as exc:
        raise FatalError(f"cannot open the store at {engine.url.render_as_string(hide_password=True)}: "
                         f"{exc.orig}", hint="check [store] url in the configuration") from exc
    return engine


def upgrade(engine: Engine) -> None:
    """Run every pending migration, in one transaction."""
    cfg = _alembic_config(engine.url.render_as_string(hide_password=False))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.begin() as connection:
        if MigrationContext.configure(connection).get_current_revision() == head:
            return
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
