"""Benchmark: import, activate and process N order lines on a store; compare with a raw bulk insert.

    .venv/bin/python bench/engine_bench.py [--lines 100000] [--store sqlite] [--store postgresql] [--rounds 3]

`--store` takes a SQLAlchemy URL, or `sqlite` (a fresh file in bench/out, the default) or
`postgresql` (PG_SERVER below); give it twice to measure both stores in the same run. On
PostgreSQL the benchmark works in a schema of its own, `revsync_bench`, created at the start and
dropped at the end, so it never meets the tests' schemas or anything else in the database.

`--cores 1` validates every order and works the jobs' rows out in the importing process alone;
`--cores both` measures each store both ways in the same run. The default, 2, is what the import
does: a child process works the jobs' rows out on the second core and, from
`importer.SPLIT_MIN_ORDERS` orders on, another validates the orders of half the accounts while the
importing process validates the other half's.

`--path streamed` (the default) imports the document as `revsync import` imports a file without
problems: written to a file first (not timed), then read a piece at a time, validated, kept in a
temporary file and written (`scan_file`, `import_file`). `--path whole` parses the whole document
in memory and imports it from there (`import_document`, the way of a file with problems, which
this benchmark's figures before 2026-12-02 measured); `--path both` measures each store both ways.

Generates orders with 12–36 month terms (new lines, then updates, renewals and cancellations of
them), imports them, and prints lines/s, ARR rows/s, peak memory and the ratio of its time to a
raw bulk insert of the same ARR rows into the same kind of store (driver executemany in one
transaction: the store's own limit). On SQLite it also bulk inserts every row of every table the
import wrote into a fresh store's tables, and prints the ratio to that too, in wall and in CPU time (on a shared machine, CPU time is what compares),
and the CPU floor: the CPU time of all the import's processes spread evenly over the machine's
cores, below which no scheduling can bring the import (as a ratio to the raw insert of all rows,
the best this much work can reach on this machine).
"""
from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import multiprocessing
import os
import statistics
import random
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.schema import CreateTable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.clock import FrozenClock  # noqa: E402
from connector.engine.dates import end_from_term  # noqa: E402
from connector.engine.fiscal import StandardFiscalCalendar  # noqa: E402
from connector.engine.settings import EngineSettings  # noqa: E402
from connector.importer import ImportDoc, import_document  # noqa: E402
try:  # the streamed import (absent from older checkouts, which the bench also measures)
    from connector.importer import import_file, scan_file  # noqa: E402
except ImportError:  # pragma: no cover
    import_file = scan_file = None  # type: ignore[assignment]
from connector.jobs import JobContext, JobRunner  # noqa: E402
try:  # the collector pause of issue 11 (absent from older checkouts, which the bench also measures)
    from connector.jobs import collector_paused  # noqa: E402
except ImportError:  # pragma: no cover
    from contextlib import nullcontext as collector_paused  # noqa: E402
from connector.store.db import open_store  # noqa: E402
from connector.store import schema as t  # noqa: E402


def generate(lines: int, seed: int = 7) -> dict:
    """An import document with about `lines` order lines over many accounts."""
    doc: dict[str, list] = {"accounts": [], "products": [], "orders": []}
    for key, part in parts(lines, seed):
        doc[key].append(part)
    return doc


def parts(lines: int, seed: int = 7) -> Iterator[tuple[str, dict]]:
    """`generate`'s document a part at a time ("products", "accounts" or "orders", and the part),
    for a file of any size written without holding it."""
    rng = random.Random(seed)
    products = [{"id": f"P{i}", "name": f"Product {i}", "provisioning": "subscription",
                 "list_price": str(rng.choice([50, 100, 250, 1200])), "price_period": rng.choice(["month", "year"])}
                for i in range(20)]
    for product in products:
        yield "products", product
    made = 0
    account_no = 0
    while made < lines:
        account_no += 1
        acct = f"A{account_no}"
        yield "accounts", {"id": acct, "name": f"Customer {account_no}", "bill_cycle_day": rng.randint(1, 28)}
        start = dt.date(2021, 1, 1) + dt.timedelta(days=rng.randint(0, 900))
        subs = []
        new_lines = []
        for _ in range(min(rng.randint(2, 4), lines - made)):
            product = rng.choice(products)
            term = rng.randint(12, 36)
            sub = f"S{made}"
            subs.append((sub, product["id"], start, end_from_term(start, term)))
            new_lines.append({"id": f"L{made}", "action": "new", "product": product["id"], "subscription": sub,
                              "quantity": rng.randint(1, 50), "start": start.isoformat(), "term_months": term})
            made += 1
        yield "orders", {"id": f"O{account_no}-1", "account": acct, "owner": f"U{account_no % 25}",
                         "booked_on": start.isoformat(), "currency": "USD", "lines": new_lines}
        changes = []
        for sub, product, s, e in subs:
            if made >= lines:
                break
            roll = rng.random()
            if roll < 0.4:
                when = s + dt.timedelta(days=rng.randint(30, (e - s).days - 1))
                changes.append({"id": f"L{made}", "action": "update", "product": product, "subscription": sub,
                                "quantity": rng.randint(1, 80), "start": when.isoformat()})
            elif roll < 0.6:
                changes.append({"id": f"L{made}", "action": "renew", "product": product, "subscription": sub,
                                "term_months": 12})
            elif roll < 0.7:
                when = s + dt.timedelta(days=rng.randint(30, (e - s).days))
                changes.append({"id": f"L{made}", "action": "cancel", "product": product, "subscription": sub,
                                "start": when.isoformat()})
            else:
                continue
            made += 1
        if changes:
            yield "orders", {"id": f"O{account_no}-2", "account": acct, "owner": f"U{account_no % 25}",
                             "booked_on": start.isoformat(), "currency": "USD", "lines": changes}


#: the PostgreSQL server `--store postgresql` uses (the tests' server; trust auth)
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
#: the schema of its own the benchmark works in on PostgreSQL (dropped and created at each run)
PG_SCHEMA = "revsync_bench"


def fresh_store(store: str, out: Path) -> str:
    """The URL of an empty store for `--store`: a new SQLite file, or a new schema on PostgreSQL."""
    if store == "sqlite":
        path = out / "bench.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return f"sqlite:///{path}"
    if store == "postgresql":
        store = PG_SERVER
    if not store.startswith("postgresql"):
        return store
    _pg_schema(store, create=True)
    return f"{store}{'&' if '?' in store else '?'}options=-csearch_path%3D{PG_SCHEMA}"


def _pg_schema(server: str, *, create: bool, schema: str = PG_SCHEMA) -> None:
    """Drop a benchmark's schema on this PostgreSQL server, and create it again (`create`)."""
    admin = create_engine(server)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            if create:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        admin.dispose()


def raw_copy_all(engine, path: Path) -> tuple[float, float, int, int]:
    """The store's own limit for the whole import: every row the import wrote, of every table,
    bulk inserted by the driver in one transaction into the same tables of a fresh store (same
    schema, keys, indexes, foreign keys and pragmas). Returns (seconds, CPU seconds, tables, rows); reading
    the rows out of the benchmark's store is not timed."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    raw_engine = open_store(f"sqlite:///{path}")
    with raw_engine.connect() as conn:  # tables the migrations fill (meta) start as they are
        prefilled = {tbl.name for tbl in t.metadata.sorted_tables
                     if conn.execute(text(f'SELECT 1 FROM "{tbl.name}" LIMIT 1')).first()}
    raw_conn = raw_engine.raw_connection()
    timed, cpu, tables, count = 0.0, 0.0, 0, 0
    try:
        cursor = raw_conn.cursor()
        for tbl in t.metadata.sorted_tables:  # parents before children (foreign keys are on)
            if tbl.name in prefilled:
                continue
            columns = ", ".join(f'"{c.name}"' for c in tbl.columns)
            with engine.connect() as conn:
                rows = [tuple(r) for r in conn.exec_driver_sql(f'SELECT {columns} FROM "{tbl.name}"')]
            if not rows:
                continue
            started, cpu_started = time.perf_counter(), time.process_time()
            cursor.executemany(f'INSERT INTO "{tbl.name}" ({columns}) VALUES ({", ".join("?" * len(tbl.columns))})',
                               rows)
            timed += time.perf_counter() - started
            cpu += time.process_time() - cpu_started
            tables, count = tables + 1, count + len(rows)
            del rows
        started, cpu_started = time.perf_counter(), time.process_time()
        raw_conn.commit()
        timed += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
    finally:
        raw_conn.close()
        raw_engine.dispose()
    return timed, cpu, tables, count


def _watch_second_core() -> tuple[list[int], list[float]]:
    """The peak RSS (KiB) of each child process the import starts to work out its jobs' rows, read
    from /proc just before the import stops it (not from rusage: the child's is the importing
    process's at the moment it was forked, before it ran a fresh interpreter), and the seconds the
    importing process waited for its rows (`RowsAhead.waited`, where the checkout has it)."""
    peaks: list[int] = []
    waits: list[float] = []
    try:
        from connector.jobs import RowsAhead
    except ImportError:  # pragma: no cover - checkouts before issue 11's second core
        return peaks, waits
    close = RowsAhead.close

    def noting_close(self) -> None:
        if hasattr(self, "waited"):
            waits.append(self.waited)
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
            peaks.append(int(status.split("VmHWM:")[1].split()[0]))
        except (OSError, IndexError):
            pass
        close(self)

    RowsAhead.close = noting_close  # type: ignore[method-assign]
    return peaks, waits


def run(url: str, doc: dict | Path, out: Path, second_core: bool,
        counts: tuple[int, int]) -> tuple[float, float | None, float | None]:
    """Import the document into the store at `url`, print the figures; returns the import's time,
    the raw bulk insert of all its rows and the CPU floor (SQLite; None on other stores).
    `doc`: the document itself, imported whole ("--path whole"), or the file it was written to,
    streamed as `revsync import` reads it ("--path streamed"; this process then holds no parsed
    document, as the command holds none); `counts`: its (order lines, orders)."""
    path = "whole" if isinstance(doc, dict) else "streamed"
    if path == "streamed" and scan_file is None:
        raise SystemExit("--path streamed: this checkout has no streamed import; use --path whole")
    n_lines, n_orders = counts
    engine = open_store(url)
    calendar = StandardFiscalCalendar(1)
    settings = EngineSettings()
    clock = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    runner = JobRunner(engine, JobContext(calendar, settings), clock)
    if hasattr(runner, "second_core"):  # absent from checkouts before issue 11's second core
        runner.second_core = second_core

    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_peak, child_waits = _watch_second_core()
    phases: list[tuple[str, float]] = []  # (phase, when it began) as the import announces them

    def phase(name: str, _count: object) -> None:
        phases.append((name, time.perf_counter()))

    started, cpu_started = time.perf_counter(), time.process_time()
    if isinstance(doc, Path):
        streamed = scan_file(doc)
        assert streamed is not None, "the benchmark's document takes the whole-document path"
        parsed = time.perf_counter()
        result = import_file(engine, streamed, calendar, settings, clock, runner, phase=phase)
    else:
        with collector_paused():  # as `revsync import` reads a file (importer.read)
            whole = ImportDoc.model_validate(json.loads(json.dumps(doc)))
        parsed = time.perf_counter()
        result = import_document(engine, whole, "bench", calendar, settings, clock, runner, phase=phase)
    finished, cpu = time.perf_counter(), time.process_time() - cpu_started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the second core's process, joined by now
    child_cpu = (children.ru_utime + children.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    assert not result.failed_jobs, result.failed_jobs[:3]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the raw copy below
    with engine.connect() as conn:
        arr_count = conn.execute(text("SELECT count(*) FROM arr_rows")).scalar()
        rows = conn.execute(text("SELECT line_pk, period_start, period_end, opening_cmrr, closing_cmrr, "
                                 "opening_arr, closing_arr FROM arr_rows")).all()
    total = finished - started

    # The store's own limit: the same ARR rows, bulk inserted by the driver in one transaction.
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS raw_arr_rows"))
        # same columns, key and clustering as arr_rows
        ddl = str(CreateTable(t.arr_rows).compile(dialect=engine.dialect)).replace(
            "arr_rows", "raw_arr_rows", 1)
        conn.execute(text(ddl))
    raw_conn = engine.raw_connection()
    try:
        cursor = raw_conn.cursor()
        placeholder = "?" if engine.dialect.name == "sqlite" else "%s"
        raw_started = time.perf_counter()
        cursor.executemany(f"INSERT INTO raw_arr_rows VALUES ({', '.join([placeholder] * 7)})",
                           [tuple(r) for r in rows])
        raw_conn.commit()
        raw = time.perf_counter() - raw_started
        raw_copy = None
        if engine.dialect.name == "postgresql":
            cursor.execute("TRUNCATE raw_arr_rows")
            raw_conn.commit()
            raw_started = time.perf_counter()
            with cursor.copy("COPY raw_arr_rows FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
            raw_conn.commit()
            raw_copy = time.perf_counter() - raw_started
        cursor.execute("DROP TABLE raw_arr_rows")
        raw_conn.commit()
    finally:
        raw_conn.close()
    raw_all = raw_all_cpu = raw_tables = raw_rows = floor = None
    if engine.dialect.name == "sqlite":
        raw_all, raw_all_cpu, raw_tables, raw_rows = raw_copy_all(engine, out / "raw.db")
    print(f"store                 {engine.dialect.name}")
    print(f"path                  {path}" + ("  (as `revsync import` reads a file without problems)"
                                             if path == "streamed" else "  (the whole document parsed in memory)"))
    print(f"order lines           {n_lines:,} in {n_orders:,} orders")
    print(f"ARR rows              {arr_count:,}")
    if path == "streamed":
        print(f"scan file             {parsed - started:8.2f} s  (its accounts, products and credits read; "
              "the orders are parsed as they are validated)")
    else:
        print(f"parse + validate doc  {parsed - started:8.2f} s")
    print(f"import total          {total:8.2f} s  (validate, activate, 4 background jobs per order)")
    ends = [when for _, when in phases[1:]] + [finished]
    for (name, began), end in zip(phases, ends):
        print(f"  phase {name:<14} {end - began:8.2f} s")
    print(f"import CPU time       {cpu:8.2f} s  (this process; the machine is shared)")
    if child_cpu:
        print(f"second core CPU time  {child_cpu:8.2f} s  (the processes the import starts: the one validating half "
              f"the accounts' orders, the one working out the jobs' rows (peak RSS "
              f"{max(child_peak, default=0) / 1024:.0f} MB))")
        if child_waits:
            print(f"  waited for its rows  {sum(child_waits):6.2f} s  (the importing process, for the rows of the jobs' "
                  "child: when it is slower, it paces the writing pass)")
    print(f"lines/s               {n_lines / total:10,.0f}")
    print(f"ARR rows/s            {arr_count / total:10,.0f}")
    print(f"raw bulk insert       {raw:8.2f} s  (the same ARR rows into a table like arr_rows, driver executemany)")
    print(f"ratio to raw insert   {total / raw:8.2f} x")
    if raw_all is not None:
        print(f"raw bulk insert, all  {raw_all:8.2f} s  (the same {raw_rows:,} rows of all {raw_tables} tables the import "
              "wrote, into a fresh store's tables: one transaction, driver executemany)")
        print(f"raw, all: CPU time    {raw_all_cpu:8.2f} s")
        print(f"ratio to raw, all     {total / raw_all:8.2f} x  wall time, {cpu / raw_all_cpu:.2f} x CPU time")
        # Whatever the scheduling, the import's processes cannot finish before their CPU time spread
        # evenly over the cores: the lowest ratio this much work can reach on this machine.
        cores = len(os.sched_getaffinity(0))
        floor = (cpu + child_cpu) / cores
        print(f"CPU floor             {floor:8.2f} s  (the CPU time of the import's processes, {cpu + child_cpu:.2f} s, "
              f"over this machine's {cores} cores: {floor / raw_all:.2f} x the raw insert of all rows at best)")
    if raw_copy is not None:
        print(f"raw COPY              {raw_copy:8.2f} s  (the same ARR rows by PostgreSQL's COPY; ratio "
              f"{total / raw_copy:.2f} x)")
    print(f"peak memory (RSS)     {peak_mb:8.0f} MB", flush=True)
    engine.dispose()
    return total, raw_all, floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--store", action="append", default=None,
                        help="sqlite, postgresql or a SQLAlchemy URL; twice for both stores (default: sqlite)")
    parser.add_argument("--cores", choices=["2", "1", "both"], default="2",
                        help="2: the second core used as the import uses it (half the orders validated, the jobs' "
                             "rows worked out there; default); 1: all in the importing process alone; both: each store both ways, one after the other")
    parser.add_argument("--path", choices=["streamed", "whole", "both"], default="streamed",
                        help="streamed: as `revsync import` reads a file without problems (default); whole: the "
                             "whole document parsed in memory first; both: each store both ways")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure everything this many times, the stores taking turns in each round, and "
                             "print each round's ratios and their medians (the machine's speed varies between "
                             "runs: a ratio of two runs far apart measures that too)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be 1 or more")

    out = Path(__file__).with_name("out")
    out.mkdir(exist_ok=True)
    doc_json = generate(args.lines)
    counts = (sum(len(o["lines"]) for o in doc_json["orders"]), len(doc_json["orders"]))
    ways = {"2": [True], "1": [False], "both": [False, True]}[args.cores]
    paths = ["streamed", "whole"] if args.path == "both" else [args.path]
    rounds = []
    for number in range(1, args.rounds + 1):
        if args.rounds > 1:
            print(f"round                 {number} of {args.rounds}\n")
        rounds.append(_round(args.store or ["sqlite"], ways, paths, doc_json, counts, out))
        _compare(rounds[-1], ways, paths)
    if args.rounds > 1:
        _summary(rounds, ways, paths, args.lines)


#: a round's figures: (store, second core, path) -> (import time, raw bulk insert of all its rows or
#: None, CPU floor or None)
Round = dict[tuple[str, bool, str], tuple[float, float | None, float | None]]


def _round(stores: list[str], ways: list[bool], paths: list[str], doc_json: dict, counts: tuple[int, int],
           out: Path) -> Round:
    """Each store measured each way once, one after the other."""
    times: Round = {}
    for store in stores:
        for second_core, path in itertools.product(ways, paths):
            url = fresh_store(store, out)
            if len(ways) > 1:
                print(f"cores                 {2 if second_core else 1}")
            # each store in a process of its own: its peak memory is its own (not a Pool's: its
            # daemonic process could not start the import's own child)
            doc: dict | Path = doc_json
            if path == "streamed":  # written first, untimed; the import reads it as `revsync import` does
                doc = out / "engine-bench-orders.json"
                doc.write_text(json.dumps(doc_json))
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                times[(store, second_core, path)] = pool.submit(run, url, doc, out, second_core, counts).result()
            if isinstance(doc, Path):
                doc.unlink()
            if url.startswith("postgresql"):  # the shared server keeps no 1 GB of benchmark rows
                _pg_schema(url.split("?")[0], create=False)
            print(flush=True)
    return times


def _compare(times: Round, ways: list[bool], paths: list[str]) -> None:
    """Print a round's ratios: streamed / whole, two cores / one core, each store / the first."""
    stores = list(dict.fromkeys(store for store, _, _ in times))
    for second_core, path in itertools.product(ways, paths):
        cores = ("two cores" if second_core else "one core") if len(ways) > 1 else ""
        which_path = path if len(paths) > 1 else ""
        if len(paths) > 1 and path == "streamed":
            for store in stores:
                streamed, whole = times[(store, second_core, "streamed")][0], times[(store, second_core, "whole")][0]
                print(f"{store}: streamed / whole{_said(cores)}: {streamed / whole:.2f} x ({streamed - whole:+.2f} s)")
        if len(ways) > 1 and second_core:
            for store in stores:
                one, two = times[(store, False, path)][0], times[(store, True, path)][0]
                print(f"{store}: two cores / one core{_said(which_path)}: {two / one:.2f} x ({two - one:+.2f} s)")
        for store in stores[1:]:
            ratio = times[(store, second_core, path)][0] / times[(stores[0], second_core, path)][0]
            print(f"{store} / {stores[0]}{_said(which_path, cores)}: {ratio:.2f} x")


#: issue 11's goals, for `GOAL_LINES` order lines: the import's time on SQLite (s), its ratio to the
#: raw bulk insert of all the rows it wrote, and PostgreSQL's time over SQLite's
GOAL_LINES, GOAL_SECONDS, GOAL_RAW_RATIO, GOAL_STORE_RATIO = 100_000, 30.0, 2.0, 2.0


def _summary(rounds: list[Round], ways: list[bool], paths: list[str], lines: int = 0) -> None:
    """Every round's import times and ratios (to the raw insert of all rows, to the first store),
    and their medians; then, at `GOAL_LINES` lines, for the default way (two cores, streamed), how
    many rounds met each of issue 11's goals."""
    stores = list(dict.fromkeys(store for store, _, _ in rounds[0]))
    print(f"\nsummary of {len(rounds)} rounds (each: the stores one after the other)")
    goals: list[str] = []
    for second_core, path in itertools.product(ways, paths):
        said = _said(path if len(paths) > 1 else "", ("two cores" if second_core else "one core") if len(ways) > 1 else "")
        default = second_core and path == "streamed" and lines == GOAL_LINES
        for store in stores:
            figures = [r[(store, second_core, path)] for r in rounds]
            line = f"{store}{said}: import {_listed([t for t, _, _ in figures], 's')}"
            if all(raw and floor for _, raw, floor in figures):  # SQLite: both or neither
                ratios = [t / raw for t, raw, _ in figures]
                line += (f"; / raw insert of all rows {_listed(ratios, 'x')}"
                         f"; CPU floor / raw insert of all rows "
                         f"{_listed([floor / raw for _, raw, floor in figures], 'x')}")
                if default:
                    goals.append(_goal(f"{store}: import under {GOAL_SECONDS:.0f} s", [t for t, _, _ in figures],
                                       GOAL_SECONDS, "s"))
                    goals.append(_goal(f"{store}: within {GOAL_RAW_RATIO:.0f}x of the raw insert of all rows",
                                       ratios, GOAL_RAW_RATIO, "x"))
            print(line)
        for store in stores[1:]:
            ratios = [r[(store, second_core, path)][0] / r[(stores[0], second_core, path)][0] for r in rounds]
            print(f"{store} / {stores[0]}{said}: {_listed(ratios, 'x')}")
            if default:
                goals.append(_goal(f"{store} within {GOAL_STORE_RATIO:.0f}x of {stores[0]}", ratios,
                                   GOAL_STORE_RATIO, "x"))
    if goals:
        print(f"\nissue 11's goals at {GOAL_LINES:,} lines (met in a round when its figure is under the goal):")
        for goal in goals:
            print(f"  {goal}")


def _goal(what: str, values: list[float], limit: float, unit: str) -> str:
    """"what: met in n of m rounds (median x, worst y)"."""
    met = sum(v < limit for v in values)
    return (f"{what}: met in {met} of {len(values)} rounds (median {statistics.median(values):.2f} {unit}, "
            f"worst {max(values):.2f} {unit})")


def _listed(values: list[float], unit: str) -> str:
    """"a, b, c <unit> (median m)"."""
    return f"{', '.join(f'{v:.2f}' for v in values)} {unit} (median {statistics.median(values):.2f})"


def _said(*parts: str) -> str:
    """" (a, b)" of the parts that say something; nothing when none does."""
    said = ", ".join(p for p in parts if p)
    return f" ({said})" if said else ""


if __name__ == "__main__":
    main()
