"""Rows the second core's process worked out, handed to the store: through a staging file on
SQLite, as COPY text on PostgreSQL.

The process that works out the jobs' rows (`connector.job_rows`, started by
`connector.jobs.RowsAhead`) writes each batch's rows of each kind, in their stored form, into a
table of a SQLite file of its own (`Writer`), and answers with a `Staged` naming it. The importing
process has that file attached to its store's connections (`connector.store.db.attached`, as
`SCHEMA`) and copies the rows with one `INSERT … SELECT` inside its job's transaction
(`connector.store.repository`). The copy runs inside SQLite, where a row costs about a third of
what the driver's `executemany` of the same row costs, and the importing process never builds the
rows as Python objects: about 4 s of its 100,000-line import (issue 11) were unpickling the child's
rows and binding them.

The file is a scratch file in a private temporary folder, removed with the child: nothing in it
outlives the import, and the store never depends on it. Nothing here imports SQLAlchemy.
"""
from __future__ import annotations

import bisect
import datetime as dt
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Iterator

from connector.store.encode import IsoDays

#: the name the staging file is attached under in the store's connections
SCHEMA = "revsync_staged"

#: the staging file's name in its folder
FILE = "rows.db"


@dataclass(frozen=True)
class Staged:
    """`count` rows in their stored form, in the staging file's table `table` (columns c0, c1, …, in
    the order of the store's columns they go to)."""

    table: str
    count: int

    def __len__(self) -> int:
        return self.count


@dataclass(frozen=True)
class StagedSpans:
    """`count` ARR rows staged mostly as spans (`connector.job_rows.arr_spans`): the table `spans`
    holds a row per line of one piece, (line key, ordinal of its first period's start, of its
    last's, CMRR, zero CMRR, ARR, zero ARR), which the store expands over the staging file's
    `PERIODS` table; the table `rows` (or None) holds the other lines' rows in full."""

    spans: str | None
    rows: str | None
    count: int

    def __len__(self) -> int:
        return self.count


#: the staging file's table of fiscal periods that spans refer to: (start's ordinal, stored
#: start, stored end)
PERIODS = "periods"


def create(folder: Path) -> Path:
    """The staging file in `folder`, empty, in WAL mode (set once, before anyone else opens it, so
    the writer and the store's connections never wait on each other)."""
    path = folder / FILE
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
    return path


def remove(path: Path) -> None:
    """Remove the staging file and its folder (which holds nothing else), whatever is left of them."""
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        (path.parent / name).unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:  # gone already, or something else is in it: left as it is
        pass


class Writer:
    """The child's side: writes each batch's rows into tables of their own, and drops them when the
    importing process says it is done with them."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("PRAGMA synchronous=OFF")  # a scratch file: a crash loses nothing of the store's
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._tables: list[tuple[int, str]] = []
        self._conn.execute(f'CREATE TABLE IF NOT EXISTS {PERIODS} (ord INTEGER PRIMARY KEY, start, "end")')

    def put(self, batch: int, kind: str, rows: list[tuple]) -> Staged | list[tuple]:
        """The rows, staged in a table of their own; no rows are given back as they are."""
        if not rows:
            return rows
        table = f"b{batch}_{kind}"
        with self._transaction():
            self._create(table, rows)
        self._tables.append((batch, table))
        return Staged(table, len(rows))

    def put_spans(self, batch: int, kind: str, spans: list[tuple], others: list[tuple],
                  periods: list[tuple], count: int) -> StagedSpans:
        """ARR spans, the other lines' rows and the periods the spans reach that the file lacks,
        staged in one transaction."""
        names: list[str | None] = [None, None]
        with self._transaction():
            if periods:
                self._conn.executemany(f"INSERT OR IGNORE INTO {PERIODS} VALUES (?, ?, ?)", periods)
            for i, (suffix, rows) in enumerate((("spans", spans), ("rows", others))):
                if rows:
                    names[i] = f"b{batch}_{kind}_{suffix}"
                    self._create(f"b{batch}_{kind}_{suffix}", rows)
        self._tables.extend((batch, table) for table in names if table is not None)
        return StagedSpans(names[0], names[1], count)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN")
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def _create(self, table: str, rows: list[tuple]) -> None:
        """A table of these rows (columns c0, c1, …), inside the caller's transaction."""
        self._conn.execute(f"CREATE TABLE {table} ({', '.join(f'c{i}' for i in range(len(rows[0])))})")
        self._conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)

    def drop_upto(self, batch: int) -> None:
        """Drop the tables of batches up to this one: the importing process has copied their rows."""
        done = [table for number, table in self._tables if number <= batch]
        if not done:
            return
        with self._transaction():
            for table in done:
                self._conn.execute(f"DROP TABLE {table}")
        self._tables = [(number, table) for number, table in self._tables if number > batch]

    def close(self) -> None:
        self._conn.close()


# --- PostgreSQL ----------------------------------------------------------------------------------
# On PostgreSQL the child sends the rows back, but in the form COPY takes them (text format): the
# importing process writes them to the server as they are, instead of unpickling every row and
# handing it to COPY value by value.

#: COPY's text format: backslash escapes for the characters that delimit fields and rows
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    return str(value)  # integers (money in units too) and dates (ISO)


@dataclass(frozen=True)
class CopyText:
    """`count` rows in their stored form as PostgreSQL's COPY text format, a line each, the line
    key first."""

    data: bytes
    count: int

    def __len__(self) -> int:
        return self.count

    def keys(self) -> list[int]:
        """Each row's line key (its first column)."""
        return [int(row.split(b"\t", 1)[0]) for row in self.data.splitlines()]

    def without(self, keys: set[int]) -> "CopyText":
        """The rows of lines other than these."""
        rows = [row for row in self.data.splitlines(keepends=True) if int(row.split(b"\t", 1)[0]) not in keys]
        return CopyText(b"".join(rows), len(rows))


def _column_text(values: tuple) -> Iterator[str]:
    """One column's values as COPY text, converted a column at a time: a column of one kind (the
    usual case: line keys, amounts in units, dates) goes through one C-level `map` instead of
    `_text`'s checks per value, and a column of dates converts each distinct date once (an ARR
    row's period bounds repeat across lines). Anything else goes value by value, as `_text` says."""
    kinds = set(map(type, values))
    if kinds == {dt.date}:
        return map(IsoDays().__getitem__, values)
    if kinds == {int}:
        return map(str, values)
    if kinds == {str}:
        return map(str.translate, values, repeat(_ESCAPES))
    return map(_text, values)


def copy_text(rows: list[tuple]) -> CopyText:
    """Rows in their stored form (integers, dates, text, None) as COPY text.

    Column by column (`_column_text`), then joined row by row: the same text as `_text` on each
    value, at about half the cost for ARR rows (issue 11: on PostgreSQL, a third of the second
    core's time went to making this text value by value)."""
    if not rows:
        return CopyText(b"", 0)
    if len(set(map(len, rows))) != 1:  # zip would cut the longer rows short without a word
        raise ValueError("rows of different lengths cannot be COPY text of one table")
    columns = [_column_text(column) for column in zip(*rows)]
    return CopyText(("\n".join(map("\t".join, zip(*columns))) + "\n").encode(), len(rows))


@dataclass(frozen=True)
class SpanRows:
    """`count` ARR rows mostly as spans (`connector.job_rows.arr_spans`), for PostgreSQL: the
    server expands `spans` (line key, ordinal of its first period's start, of its last's, CMRR,
    zero CMRR, ARR, zero ARR) over `periods` (ordinal, start, end), both sent as arrays with the
    statement that inserts the rows; `rows` holds the other lines' rows as COPY text."""

    spans: list[tuple]
    periods: list[tuple]
    rows: CopyText
    count: int

    def __len__(self) -> int:
        return self.count

    def expanded(self) -> list[tuple]:
        """Every row in its stored form, the spans expanded here as the server would."""
        ordinals = [p[0] for p in self.periods]
        bounds = {p[0]: (p[1], p[2]) for p in self.periods}
        out: list[tuple] = []
        for pk, first, last, cmrr, zero_cmrr, arr, zero_arr in self.spans:
            for ordinal in ordinals[bisect.bisect_left(ordinals, first):bisect.bisect_right(ordinals, last)]:
                start, end = bounds[ordinal]
                out.append((pk, start, end, zero_cmrr if ordinal == first else cmrr,
                            zero_cmrr if ordinal == last else cmrr, zero_arr if ordinal == first else arr,
                            zero_arr if ordinal == last else arr))
        for line in self.rows.data.splitlines():
            pk, start, end, *amounts = line.decode().split("\t")
            out.append((int(pk), dt.date.fromisoformat(start), dt.date.fromisoformat(end), *map(int, amounts)))
        return out
