"""Opening the store: one SQLAlchemy engine per URL, checked, and migrated to the latest schema on open.

Start-up is atomic. The first start creates every table and stamps the schema revision in ONE
transaction, so a `kill -9` at any point leaves either an empty store or a complete one:

- SQLite: Python's sqlite3 module opens a transaction only before INSERT/UPDATE/DELETE, so CREATE
  TABLE statements would commit one by one
  (https://docs.python.org/3/library/sqlite3.html#sqlite3-controlling-transactions). Migrations
  therefore run on a connection whose transactions we begin ourselves, with ``BEGIN IMMEDIATE``,
  as SQLAlchemy documents for transactional DDL on pysqlite
  (https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl).
  ``BEGIN IMMEDIATE`` also takes SQLite's write lock: concurrent first starts wait for it.
- PostgreSQL: DDL is transactional; concurrent first starts serialise on
  ``pg_advisory_xact_lock``, released with the migration's commit.

Whoever gets the lock second finds the schema at its head and migrates nothing. Stores left half
built by an older revsync (tables, no revision, no rows) are rebuilt; anything else that is not
ours, is damaged or is newer than this program ends in a `StoreError` that says what to do.
"""
from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator

from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from connector.errors import FatalError, TransientError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
#: Every schema revision in migrations/versions, oldest first; the last is the head. A store at the
#: head opens without loading alembic, which took about a fifth of every command's start-up (issue
#: 11); alembic runs only to migrate. tests/store/test_migrations.py checks this against the files.
REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010", "0011")
HEAD = REVISIONS[-1]
#: alembic's table of the store's schema revision (its default name)
VERSION_TABLE = "alembic_version"
SQLITE_HEADER = b"SQLite format 3\x00"
#: `PRAGMA quick_check` runs at every open of a SQLite store up to this size (about 40 ms at 32 MB
#: on a warm cache); bigger stores get the cheap checks at every open and the full check in
#: `revsync status` (0.4 s warm, 2.1 s cold for a 322 MB store of 100,000 order lines).
FULL_CHECK_MAX_BYTES = 32 * 1024 * 1024
#: how long an open waits for another process that is creating, migrating or closing the store
MIGRATION_WAIT_SECONDS = 120.0
#: how long one SQLite statement waits for another connection's lock before it is refused
BUSY_TIMEOUT_MS = 10_000
#: the key of the PostgreSQL advisory lock held while migrating (any constant bigint)
PG_MIGRATION_LOCK = 0x7265_7673_796E_63  # "revsync"


class StoreError(FatalError):
    """The store cannot be used as it is: damaged, not a revsync store, newer than this program, disk full.

    Nothing was changed by the command that met it.
    """

    exit_code = 2


def _alembic_config(url: str) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # first: a concurrent first start may hold the lock that switching to WAL needs
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # WAL lets readers (reports, status) run beside the writer; NORMAL sync is durable at each
    # checkpoint and safe against corruption (https://www.sqlite.org/wal.html).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB: large imports touch big indexes
    cursor.close()


def _postgresql_session(dbapi_connection, _record) -> None:
    # Plan every statement with its parameters' values. psycopg prepares a statement after its
    # fifth run, and PostgreSQL may then keep one generic plan for it, made while the tables were
    # small or without statistics: a sequential scan it keeps as they grow (issue 11: 380 of 696 s
    # of a 100,000-line import went to id look-ups planned so). Our statements are few and
    # batched, so planning each run costs little.
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_custom_plan")
    dbapi_connection.commit()  # a SET undone by the pool's rollback would not last


class _Checkpoints:
    """A thread that copies a SQLite store's write-ahead log into its file (a passive checkpoint:
    it copies what no reader still needs, and waits for no one and blocks no one,
    https://www.sqlite.org/c3ref/wal_checkpoint_v2.html) each time it is told a transaction was
    committed, on a connection of its own (`conn`, made for it): `checkpoints_behind`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._wanted = threading.Event()
        self._done = False
        #: set when a checkpoint failed: the thread has stopped
        self.failed = False
        self._thread = threading.Thread(target=self._run, name="revsync-checkpoints", daemon=True)
        #: checkpoints run, and the seconds they took
        self.runs = 0
        self.seconds = 0.0

    def _run(self) -> None:
        try:
            while True:
                self._wanted.wait()
                self._wanted.clear()
                if self._done:
                    return
                began = time.perf_counter()
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.seconds += time.perf_counter() - began
                self.runs += 1
        except sqlite3.Error as exc:
            log.debug("the checkpoints beside the writer stopped: %s; it makes them itself again", exc)
            self.failed = True
        finally:
            self._conn.close()

    def committed(self) -> None:
        self._wanted.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done = True
        self._wanted.set()
        if self._thread.ident is None:  # never started: its connection is closed here
            self._conn.close()
        else:
            self._thread.join()


@contextmanager
def checkpoints_behind(engine: Engine, conn: Connection) -> Iterator[Callable[[], None]]:
    """While `conn` (of `engine`) commits transaction after transaction (an import's batches), its
    commits only append to SQLite's write-ahead log: a thread copies the log into the store's file
    beside them. Yields what to call after each commit, to say there is more to copy.

    A commit in WAL mode copies the log into the file itself once the log passes a thousand pages
    (`wal_autocheckpoint`), and waits for the disk to have it (`synchronous=NORMAL` syncs at each
    checkpoint): about 2 of the 3 s that a 100,000-line import's commits took, on its critical
    path, were those checkpoints, 1.5 s of it waiting for the disk (issue 11). Done beside, the
    waiting overlaps with the next batch. The same checkpoints happen, on another connection, so
    the log stays short (43 MiB at most for 100,000 lines: the thread starts after each commit, and
    the log starts over once copied). `conn` makes its checkpoints itself again when the block
    ends, however it ends, and as soon as one of the thread's fails.

    On PostgreSQL, or an in-memory SQLite store, nothing changes."""
    path = sqlite_path(engine)
    beside = None
    try:
        if path is not None:
            beside = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            beside.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # a lock held a moment is waited for
    except sqlite3.Error as exc:
        log.debug("no checkpoints beside the writer (%s): its commits make them", exc)
        if beside is not None:
            beside.close()
        beside = None
    if beside is None:
        yield lambda: None
        return
    # set on the driver's connection: through SQLAlchemy it would begin a transaction
    driver = conn.connection.driver_connection
    try:
        (pages,) = driver.execute("PRAGMA wal_autocheckpoint").fetchone()
    except BaseException:
        beside.close()
        raise
    checkpoints = _Checkpoints(beside)

    def restore() -> None:
        driver.execute(f"PRAGMA wal_autocheckpoint={int(pages)}")

    restored = False

    def committed() -> None:
        nonlocal restored
        if not checkpoints.failed:
            checkpoints.committed()
        elif not restored:  # the thread stopped: the writer's own commits checkpoint again
            restore()
            restored = True

    try:
        driver.execute("PRAGMA wal_autocheckpoint=0")
        checkpoints.start()
        yield committed
    finally:
        checkpoints.stop()
        try:
            restore()
        except sqlite3.Error:  # not back in the pool without its checkpoints
            conn.invalidate()
        log.debug("checkpoints beside the writer: %d, %.2f s", checkpoints.runs, checkpoints.seconds)


def sqlite_path(engine: Engine) -> Path | None:
    """The file of a SQLite store (None for PostgreSQL or an in-memory store)."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return None
    return Path(engine.url.database).resolve()


@contextmanager
def attached(engine: Engine, path: Path, schema: str) -> Iterator[None]:
    """A SQLite file attached, as `schema`, to every connection of the store checked out meanwhile
    (`connector.store.staging`); detached as each is checked in, after the pool has ended its
    transaction (a connection that will not detach is closed, not pooled again)."""
    # ATTACH takes a file name as a value, not SQL: the name is bound, never spliced in
    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if record.info.pop(schema, False):
                # checked out in an earlier such context and checked in after it ended (a thread of
                # the daemon's server, say): still attached, to that context's file
                cursor.execute(f"DETACH DATABASE {schema}")
            cursor.execute(f"ATTACH DATABASE ? AS {schema}", (str(path),))
        finally:
            cursor.close()
        record.info[schema] = True

    def checkin(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is None or not record.info.pop(schema, False):
            return
        try:
            dbapi_connection.execute(f"DETACH DATABASE {schema}")
        except sqlite3.Error:
            record.invalidate()

    with pool_hooks(engine, checkout, checkin):
        yield


@contextmanager
def pool_hooks(engine: Engine, checkout: Callable[[Any, Any, Any], None],
               checkin: Callable[[Any, Any], None]) -> Iterator[None]:
    """`checkout` and `checkin` called for each connection of the store's pool checked out and in
    meanwhile (SQLAlchemy's pool events), and no more after."""
    event.listen(engine, "checkout", checkout)
    event.listen(engine, "checkin", checkin)
    try:
        yield
    finally:
        event.remove(engine, "checkout", checkout)
        event.remove(engine, "checkin", checkin)


def where(engine: Engine) -> str:
    """The store, as the user can find it: the file of a SQLite store, the URL (no password) otherwise."""
    path = sqlite_path(engine)
    return str(path) if path is not None else engine.url.render_as_string(hide_password=True)


def _restore_hint(engine: Engine) -> str:
    path = sqlite_path(engine)
    if path is None:
        return ("stop every revsync on this database, then restore it from your last backup "
                "(PostgreSQL: pg_restore) and run the command again")
    return (f"stop every revsync on it, then restore {path} from your last backup; or keep a copy and salvage "
            f"what SQLite can still read: `sqlite3 {path} .recover | sqlite3 {path}.recovered`, "
            f"then set [store] url to the recovered file")


# -- turning the database's own errors into messages -------------------------------------------------
#: every write is a transaction: the one in progress is undone, the store stays consistent
ROLLED_BACK = "the write in progress was rolled back (what the command had committed before stays)"
SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 10, 11, 13, 14, 26


def explain(engine: Engine, exc: BaseException) -> StoreError | None:
    """A StoreError for a database error that means the store is unusable or the disk is full, else None."""
    orig = getattr(exc, "orig", exc)
    name = where(engine)
    if isinstance(orig, sqlite3.Error):
        code = (getattr(orig, "sqlite_errorcode", 0) or 0) & 0xFF
        if code == SQLITE_CORRUPT:
            return StoreError(f"the store {name} is damaged: SQLite says \"{orig}\"",
                              hint=_restore_hint(engine))
        if code == SQLITE_NOTADB:
            return StoreError(f"{name} is not a SQLite database (SQLite says \"{orig}\"), so not a revsync store",
                              hint=f"check [store] url; if this file was the store, restore {name} from your last "
                                   f"backup")
        if code == SQLITE_FULL:
            return StoreError(f"the disk holding the store {name} is full (SQLite says \"{orig}\"); {ROLLED_BACK}",
                              hint="free space on that disk (or move the store and change [store] url), "
                                   "then run the command again: it goes on from where it stopped")
        if code == SQLITE_IOERR:
            return StoreError(f"the store {name} could not be written or read (SQLite says \"{orig}\": "
                              f"disk full, a size limit, or a failing disk); {ROLLED_BACK}",
                              hint="check the disk's free space and health, then run the command again: "
                                   "it goes on from where it stopped")
        if code == SQLITE_CANTOPEN:
            return StoreError(f"cannot open the store {name} (SQLite says \"{orig}\")",
                              hint="check [store] url: the folder must exist and be writable")
        return None
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == "53100":
        return StoreError(f"the disk of the PostgreSQL server holding {name} is full ({orig}); "
                          f"{ROLLED_BACK}", hint="free space on the database server, then run the command again")
    if sqlstate in ("XX001", "XX002"):
        return StoreError(f"the store {name} is damaged: PostgreSQL says \"{orig}\"", hint=_restore_hint(engine))
    return None


#: PostgreSQL's SQLSTATEs of a server that is going away, restarting, overloaded or resolving a
#: conflict: the same statement may succeed in a moment
#: (https://www.postgresql.org/docs/current/errcodes-appendix.html)
PG_TRANSIENT_STATES = {"57P01": "the server was shut down by an administrator",
                       "57P02": "the server crashed", "57P03": "the server is starting up or not accepting connections",
                       "53300": "too many connections", "40001": "a serialization failure",
                       "40P01": "a deadlock", "55P03": "a lock it could not take"}


def store_unavailable(exc: BaseException) -> str | None:
    """Why the store cannot be used at this moment, when a wait can fix it; None for anything else.

    A lost or refused connection (a PostgreSQL server restarting, a failover, a network blip), a
    SQLite lock held past the busy timeout, PostgreSQL's deadlock and serialization failures: the
    transaction was rolled back whole, and the same work done again later succeeds. A daemon waits
    these out as it waits out Salesforce's outages; damage, a full disk or a bug are not among them.
    """
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:  # the store's error may be the cause of ours
        seen.add(id(exc))
        if isinstance(exc, PoolTimeout):
            return "no connection to the store came free in time"
        if isinstance(exc, DBAPIError):
            orig = exc.orig
            if exc.connection_invalidated:
                return f"the connection to the store was lost ({_first_line(orig)})"
            if isinstance(orig, sqlite3.Error) and _locked(exc):
                return f"another process held the store's lock too long ({_first_line(orig)})"
            sqlstate = str(getattr(orig, "sqlstate", "") or "")
            if not sqlstate and isinstance(exc, OperationalError) and not isinstance(orig, sqlite3.Error):
                # the driver's own: no connection made (refused, reset, timed out, a name that does not
                # resolve, or the server's FATAL at start-up), so no SQLSTATE
                return f"the store could not be reached ({_first_line(orig)})"
            if sqlstate.startswith("08"):
                return f"the connection to the store failed ({_first_line(orig)})"
            if sqlstate in PG_TRANSIENT_STATES:
                return f"{PG_TRANSIENT_STATES[sqlstate]} ({_first_line(orig)})"
            return None
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


def _first_line(exc: BaseException | None) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _handle_error(context) -> BaseException | None:
    engine = context.engine
    if engine is None:
        return None
    return explain(engine, context.original_exception)


# -- many orgs in one store ------------------------------------------------------------------------------
#: the PostgreSQL schema that holds one org's tables: revsync_<org>
ORG_SCHEMA_PREFIX = "revsync_"
_SEARCH_PATH = re.compile(r"-c\s*search_path\s*=\s*([A-Za-z_][A-Za-z0-9_]*)")


def org_store_url(url: str, org: str) -> str:
    """One org's part of the store at `url`: its own schema (`revsync_<org>`, created at first open) on
    PostgreSQL, its own file beside the named one on SQLite (`revsync.db` → `revsync.<org>.db`). Each
    org's records, cursors, lease, outbox and jobs are apart; the server, its backups and the workers
    are shared."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        options = str(parsed.query.get("options", "")).strip()
        options = (_SEARCH_PATH.sub("", options).strip() + f" -csearch_path={ORG_SCHEMA_PREFIX}{org}").strip()
        return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)
    if parsed.database in (None, "", ":memory:"):
        return url
    path = Path(parsed.database)
    return parsed.set(database=str(path.with_name(f"{path.stem}.{org}{path.suffix or '.db'}"))) \
        .render_as_string(hide_password=False)


def _search_path_schema(engine: Engine) -> str | None:
    """The schema a PostgreSQL URL's `options=-csearch_path=NAME` puts first, if any."""
    found = _SEARCH_PATH.search(str(engine.url.query.get("options", "")))
    return found.group(1) if found else None


# -- opening --------------------------------------------------------------------------------------------
def open_store(url: str, *, migrate: bool = True, full_check: bool | None = None) -> Engine:
    """Connect to the store at `url`, check it, and bring its schema up to date.

    Raises StoreError (exit code 2) for a store that is damaged, not ours, or newer than this
    program. `full_check`: run `PRAGMA quick_check` (SQLite) now; by default only for stores of up
    to FULL_CHECK_MAX_BYTES.
    """
    # PostgreSQL: a pooled connection is checked before use (one round trip), so one that a server
    # restart or a failover closed is replaced instead of failing the next statement
    engine = create_engine(url, future=True, pool_pre_ping=make_url(url).get_backend_name() == "postgresql")
    try:
        if engine.dialect.name == "sqlite":
            check_sqlite_file(engine)
            event.listen(engine, "connect", _sqlite_pragmas)
        elif engine.dialect.name == "postgresql":
            event.listen(engine, "connect", _postgresql_session)
        event.listen(engine, "handle_error", _handle_error)
        deadline = time.monotonic() + MIGRATION_WAIT_SECONDS
        while True:
            try:
                _check_and_migrate(engine, migrate, full_check, deadline)
                break
            except StoreError:
                raise
            except DBAPIError as exc:
                known = explain(engine, exc)
                if known is not None:
                    raise known from exc
                if not _locked(exc):
                    unreachable = store_unavailable(exc) is not None
                    raise FatalError(f"cannot open the store at {where(engine)}: {exc.orig}",
                                     hint="check [store] url in the configuration"
                                          + (", and that the database server is running and reachable; then run "
                                             "the command again" if unreachable else "")) from exc
                # Another revsync is starting, migrating or closing the store at this moment: SQLite
                # may refuse a read outright (SQLITE_BUSY without its busy handler: a WAL being
                # recovered or reset, https://www.sqlite.org/wal.html#sometimes_queries_return_sqlite_busy_in_wal_mode)
                # or after busy_timeout on a loaded machine. Neither is about the configuration.
                if time.monotonic() > deadline:
                    raise _stayed_locked(engine, "open it") from exc
                log.info("waiting for another revsync that holds the store's lock (%s)", _error_name(exc))
                engine.dispose()  # the next try opens a fresh connection
                time.sleep(0.25)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _check_and_migrate(engine: Engine, migrate: bool, full_check: bool | None, deadline: float) -> None:
    if migrate:
        upgrade(engine, deadline)
    else:
        with engine.connect() as conn:
            _check_revision(engine, conn)
    path = sqlite_path(engine)
    if full_check or (full_check is None and path is not None and path.exists()
                      and path.stat().st_size <= FULL_CHECK_MAX_BYTES):
        check_integrity(engine)


#: SQLite's primary result codes for a lock held by another connection
SQLITE_BUSY, SQLITE_LOCKED = 5, 6


def _locked(exc: DBAPIError) -> bool:
    """The database refused because another connection holds a lock (SQLite's BUSY or LOCKED)."""
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        return (getattr(orig, "sqlite_errorcode", 0) or 0) & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)
    return False


def _error_name(exc: DBAPIError) -> str:
    return str(getattr(exc.orig, "sqlite_errorname", "") or exc.orig)


def _stayed_locked(engine: Engine, doing: str) -> TransientError:
    return TransientError(f"the store {where(engine)} stayed locked for {MIGRATION_WAIT_SECONDS:.0f} s while "
                          f"this revsync waited to {doing}",
                          hint="another revsync is using it: wait for it to finish or stop it, then run the "
                               "command again")


def check_sqlite_file(engine: Engine) -> None:
    """Cheap checks of a SQLite file before SQLite touches it: its header, and that it is not cut short."""
    path = sqlite_path(engine)
    if path is None or not path.exists():
        return
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not a SQLite store", hint="check [store] url")
    try:
        with path.open("rb") as f:
            header = f.read(100)
            # the size after the read, from the same file: another revsync starting at the same
            # moment may be writing the file's first page, and a size taken before the read (or
            # by name) would pair a grown file with the empty header read before it grew
            size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise StoreError(f"cannot read the store {path}: {exc.strerror}",
                         hint="check the file's permissions and [store] url") from exc
    if not header:
        return  # a new, empty file (when read): the first start builds it
    if not header.startswith(SQLITE_HEADER):
        raise StoreError(f"{path} is not a SQLite database (it does not start with \"SQLite format 3\"), "
                         f"so not a revsync store; nothing was changed",
                         hint="check [store] url (a new file name starts an empty store); if this file was the "
                              f"store, it was overwritten: restore {path} from your last backup")
    if len(header) < 100:
        raise StoreError(f"the store {path} is cut short ({size} bytes, less than its header)",
                         hint=_restore_hint(engine))
    # the page count in the header is valid when its change counter matches "version valid for"
    # (https://www.sqlite.org/fileformat2.html#in_header_database_size)
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    if header[24:28] == header[92:96] and pages and size < pages * page_size and not _checks_out(path):
        raise StoreError(f"the store {path} is cut short: {size} bytes where its header says "
                         f"{pages} pages of {page_size} bytes ({pages * page_size} bytes); nothing was changed",
                         hint=_restore_hint(engine))
    _check_tables_read_only(engine, path)


def _checks_out(path: Path) -> bool:
    """SQLite's own check of a file whose header promises more pages than it has.

    A checkpoint that is growing the file writes page 1 before the pages past the old end, so a
    live store can look short for a moment; SQLite, reading through its locks and WAL, tells.
    """
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            return conn.execute("PRAGMA quick_check(1)").fetchall() == [("ok",)]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF not in (SQLITE_CORRUPT, SQLITE_NOTADB, SQLITE_IOERR)


def _check_tables_read_only(engine: Engine, path: Path) -> None:
    """Refuse a database of another program before our connection touches it (switching it to WAL would)."""
    from connector.store.schema import metadata

    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                                  "AND name NOT LIKE 'sqlite_%'")}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB):
            raise explain(engine, exc) from exc
        return  # e.g. a lock, or a WAL file read-only cannot use: the open that follows says what it meets
    foreign = sorted(present - set(metadata.tables) - {"alembic_version"})
    if foreign and "alembic_version" not in present:
        listed = ", ".join(foreign[:8]) + (", ..." if len(foreign) > 8 else "")
        raise StoreError(f"{path} is not a revsync store: it holds tables ({listed}) but no revsync schema "
                         f"revision; nothing was changed",
                         hint="check [store] url: give revsync a new file of its own")


def check_integrity(engine: Engine) -> str:
    """`PRAGMA quick_check` on SQLite (PostgreSQL checks its pages itself): StoreError naming the damage."""
    if engine.dialect.name != "sqlite":
        return "not checked (PostgreSQL checks its own pages)"
    with engine.connect() as conn:
        rows = [r[0] for r in conn.exec_driver_sql("PRAGMA quick_check(20)")]
    if rows == ["ok"]:
        return "ok"
    shown = "; ".join(rows[:5]) + (f"; and {len(rows) - 5} more" if len(rows) > 5 else "")
    raise StoreError(f"the store {where(engine)} is damaged: SQLite's integrity check found {shown}",
                     hint=_restore_hint(engine))


def _stored_revision(engine: Engine, conn: Connection) -> str | None:
    """The schema revision stamped in the store (None: none yet), read as alembic reads it."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    stamped = [row[0] for row in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))]
    if len(stamped) > 1:
        raise StoreError(f"the store {where(engine)} is stamped with {len(stamped)} schema revisions "
                         f"({', '.join(map(repr, stamped))}) where revsync keeps one; nothing was changed",
                         hint=f"keep only the newest one this revsync knows (up to {HEAD!r}) in its "
                              f"{VERSION_TABLE} table, or restore the store from your last backup")
    return stamped[0] if stamped else None


def _check_revision(engine: Engine, conn: Connection) -> str | None:
    """The store's schema revision; StoreError when this program does not know it (a newer revsync)."""
    current = _stored_revision(engine, conn)
    if current is not None and current not in REVISIONS:
        raise StoreError(f"the store {where(engine)} was written by a newer revsync (schema revision "
                         f"{current!r}; this revsync knows up to {HEAD!r}); nothing was changed",
                         hint="upgrade revsync to the version that wrote this store (an older revsync must "
                              "not write to it); if the store belongs to another program, check [store] url")
    return current


def upgrade(engine: Engine, deadline: float | None = None) -> None:
    """Run every pending migration, in one transaction, holding the store's migration lock.

    `deadline` (time.monotonic()): how long to wait for another process's lock on SQLite; by
    default MIGRATION_WAIT_SECONDS from now.
    """
    head = HEAD
    with engine.connect() as conn:  # the common case: nothing to do, no lock taken
        if _check_revision(engine, conn) == head:
            return
    if engine.dialect.name == "sqlite":
        _upgrade_sqlite(engine, head, time.monotonic() + MIGRATION_WAIT_SECONDS if deadline is None else deadline)
    else:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
                schema = _search_path_schema(engine)
                if schema is not None:  # an org's own schema (org_store_url), made at its first open
                    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            _migrate(engine, conn, head)


def _upgrade_sqlite(engine: Engine, head: str, deadline: float) -> None:
    # A connection of its own whose transactions we begin ourselves (isolation_level None
    # stops the driver's implicit BEGIN/COMMIT): every CREATE is inside BEGIN IMMEDIATE.
    migrator = create_engine(engine.url, poolclass=NullPool)
    event.listen(migrator, "handle_error", lambda ctx: explain(engine, ctx.original_exception))

    @event.listens_for(migrator, "connect")
    def _connect(dbapi_connection, record):
        _sqlite_pragmas(dbapi_connection, record)
        dbapi_connection.isolation_level = None

    @event.listens_for(migrator, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        while True:
            try:
                with migrator.begin() as conn:
                    _migrate(engine, conn, head)
                return
            except OperationalError as exc:
                if not _locked(exc):
                    raise
                if time.monotonic() > deadline:
                    raise _stayed_locked(engine, "create or migrate it") from exc
                log.info("waiting for another revsync that is creating or migrating the store")
    finally:
        migrator.dispose()


def _migrate(engine: Engine, conn: Connection, head: str) -> None:
    """Under the migration lock: look again, rebuild a half-built store, and migrate to `head`."""
    current = _check_revision(engine, conn)
    if current == head:
        return  # another process migrated while we waited for the lock
    if current is None:
        _clear_half_built(engine, conn)
    from alembic import command

    cfg = _alembic_config(engine.url.render_as_string(hide_password=False))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")
    log.info("store %s migrated from %s to %s", where(engine), current or "empty", head)


def _clear_half_built(engine: Engine, conn: Connection) -> None:
    """A store with no schema revision: empty (go on), half built by an older revsync (rebuild), or foreign."""
    from connector.store.schema import metadata

    ours = set(metadata.tables) | {"alembic_version"}
    present = set(inspect(conn).get_table_names())
    if not present:
        return
    foreign = sorted(present - ours) if engine.dialect.name == "sqlite" else []
    filled = sorted(name for name in present & ours
                    if conn.execute(text(f'SELECT 1 FROM "{name}" LIMIT 1')).first() is not None)
    if foreign or filled:
        listed = ", ".join((foreign + filled)[:8]) + (", ..." if len(foreign + filled) > 8 else "")
        raise StoreError(f"{where(engine)} is not a revsync store: it holds tables ({listed}) but no revsync "
                         f"schema revision; nothing was changed",
                         hint="check [store] url: give revsync a new file (or an empty PostgreSQL schema) "
                              "of its own")
    # tables and no rows: a first start of an older revsync stopped half-way; build it again
    log.warning("the store %s was left half built by an interrupted first start; building it again",
                where(engine))
    for table in reversed(metadata.sorted_tables):
        if table.name in present:
            conn.execute(text(f'DROP TABLE "{table.name}"'))
    if "alembic_version" in present:
        conn.execute(text('DROP TABLE "alembic_version"'))
