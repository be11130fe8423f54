"""Benchmark: the floor of a writing pass that is SQL from end to end, on SQLite.

    .venv/bin/python bench/engine_bench.py --lines 100000      # leaves bench/out/bench.db
    .venv/bin/python bench/write_floor.py [--store bench/out/bench.db] [--batch 500]

Takes the store an import left (by default the engine benchmark's), puts every row the import
wrote into a staging file (plain tables without keys, in the order the import wrote them, as a
validating process would keep them; not timed), then copies them into a fresh store batch by
batch, `--batch` orders at a time, each batch one transaction of `INSERT … SELECT` statements:
the orders, their lines, pieces, items and item versions, their jobs, and the jobs' rows (ARR
rows, order and line metrics). It prints the time of the whole and of each table's statements.

That is what the importing process's writing pass would cost if it bound no value and built no
row in Python (issue 11: the writing pass of 100,000 lines takes about 6.4 s, of which about
3.5 s is the driver). It leaves out what such a pass would still do besides (marking the jobs
done, the accounts' totals), and copies the ARR rows whole rather than expanding spans.
"""
from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.store.db import open_store  # noqa: E402

#: each copied table, the column its staged copy is ordered and sliced by, and how a batch's slice
#: is found: by the orders' numbers ("seq"), by their lines' keys ("line") or their jobs' ("job")
TABLES = (("orders", "seq", "seq"), ("order_lines", "pk", "line"), ("line_segments", "line_pk", "line"),
          ("items", "cseq", "seq"), ("item_versions", "line_pk", "line"), ("jobs", "id", "job"),
          ("arr_rows", "line_pk", "line"), ("order_metrics", "line_pk", "line"), ("line_metrics", "line_pk", "line"))
#: copied whole after the batches (a batch changes few of their rows)
AFTER = ("item_metrics", "account_metrics")


def _fresh(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def _quoted(columns: list[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def stage(source: Path, staged: Path) -> dict[str, list[str]]:
    """Every row of the copied tables into plain tables of `staged`, in the order the import wrote
    them (items with the number of the order that made them, `cseq`); returns each table's columns."""
    _fresh(staged)
    src, out = sqlite3.connect(source), sqlite3.connect(staged)
    columns: dict[str, list[str]] = {}
    try:
        for table, key, _ in TABLES + tuple((t, "rowid", "") for t in AFTER):
            columns[table] = [r[1] for r in src.execute(f'PRAGMA table_info("{table}")')]
            marks = ", ".join("?" * len(columns[table]))
            if table == "items":
                out.execute(f"CREATE TABLE items ({_quoted(columns[table])}, cseq)")
                out.executemany(f"INSERT INTO items VALUES ({marks}, ?)",
                                src.execute("SELECT i.*, o.seq FROM items AS i JOIN orders AS o ON o.id = i.created_by "
                                            "ORDER BY o.seq, i.rowid"))
            else:
                out.execute(f"CREATE TABLE {table} ({_quoted(columns[table])})")
                out.executemany(f"INSERT INTO {table} VALUES ({marks})",
                                src.execute(f'SELECT * FROM "{table}" ORDER BY "{key}"' if key != "rowid"
                                            else f'SELECT * FROM "{table}"'))
            if key != "rowid":
                out.execute(f'CREATE INDEX ix_{table} ON {table} ("{key}")')
        out.commit()
    finally:
        src.close()
        out.close()
    return columns


def batches(source: Path, size: int) -> list[dict[str, tuple[int, int]]]:
    """Each batch's slices: (first, last) order number, line key and job id."""
    src = sqlite3.connect(source)
    try:
        seqs = [r[0] for r in src.execute("SELECT seq FROM orders ORDER BY seq")]
        out = []
        for i in range(0, len(seqs), size):
            first, last = seqs[i], seqs[min(i + size, len(seqs)) - 1]
            lines = src.execute("SELECT min(l.pk), max(l.pk) FROM order_lines AS l JOIN orders AS o ON o.id = l.order_id "
                                "WHERE o.seq BETWEEN ? AND ?", (first, last)).fetchone()
            jobs = src.execute("SELECT min(j.id), max(j.id) FROM jobs AS j JOIN orders AS o ON o.id = j.order_id "
                               "WHERE o.seq BETWEEN ? AND ?", (first, last)).fetchone()
            out.append({"seq": (first, last), "line": lines, "job": jobs})
        return out
    finally:
        src.close()


def measure(source: Path, out: Path, size: int = 500) -> tuple[float, float, dict[str, float], dict[str, int]]:
    """Stage `source`'s rows in `out`, copy them into a fresh store there batch by batch (timed),
    and remove both files: (wall seconds, CPU seconds, seconds per table's statements and for the
    commits, rows per table in the fresh store)."""
    staged, target = out / "write-floor-staged.db", out / "write-floor.db"
    try:
        columns = stage(source, staged)
        slices = batches(source, size)
        _fresh(target)
        engine = open_store(f"sqlite:///{target}")  # the store's schema, keys, indexes and pragmas
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            with closing(sqlite3.connect(source)) as src:  # sqlite3's own `with` would leave it open
                for table in ("accounts", "products"):  # the catalogue, as the import writes it first (not timed)
                    rows = src.execute(f'SELECT * FROM "{table}"').fetchall()
                    if rows:
                        cursor.executemany(f'INSERT INTO "{table}" VALUES ({", ".join("?" * len(rows[0]))})', rows)
            raw.commit()
            cursor.execute(f"ATTACH '{staged}' AS staged")
            per: dict[str, float] = {}
            started, cpu_started = time.perf_counter(), time.process_time()
            for batch in slices:
                cursor.execute("BEGIN")
                for table, key, by in TABLES:
                    began = time.perf_counter()
                    names = _quoted(columns[table])
                    cursor.execute(f'INSERT INTO "{table}" ({names}) SELECT {names} FROM staged.{table} '
                                   f'WHERE "{key}" BETWEEN ? AND ? ORDER BY rowid', batch[by])
                    per[table] = per.get(table, 0.0) + time.perf_counter() - began
                began = time.perf_counter()
                raw.commit()
                per["commit"] = per.get("commit", 0.0) + time.perf_counter() - began
            cursor.execute("BEGIN")
            for table in AFTER:
                names = _quoted(columns[table])
                cursor.execute(f'INSERT INTO "{table}" ({names}) SELECT {names} FROM staged.{table}')
            raw.commit()
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            counts = {table: cursor.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
                      for table in (*(t for t, _, _ in TABLES), *AFTER)}
        finally:
            raw.close()
            engine.dispose()
    finally:
        for path in (staged, target):
            _fresh(path)
    return wall, cpu, per, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=Path(__file__).with_name("out") / "bench.db")
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    if not args.store.exists():
        parser.error(f"{args.store} does not exist: run bench/engine_bench.py first (it leaves it there)")
    out = Path(__file__).with_name("out")
    wall, cpu, per, counts = measure(args.store, out, args.batch)
    print(f"all-SQL writing pass: {wall:.2f} s wall, {cpu:.2f} s CPU, {sum(counts.values()):,} rows "
          f"in batches of {args.batch} orders")
    for table, seconds in sorted(per.items(), key=lambda item: -item[1]):
        print(f"  {table:<15} {seconds:6.2f} s" + (f"  ({counts[table]:,} rows)" if table in counts else ""))


if __name__ == "__main__":
    main()
