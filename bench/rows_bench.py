"""Benchmark: the second core's work during an import (`connector.job_rows.batch_rows`), by an
earlier commit and by this checkout, in alternation.

    .venv/bin/python bench/rows_bench.py --base REV [--lines 100000] [--runs 3]
    .venv/bin/python bench/rows_bench.py --base REV --instructions [--lines 5000]

During `revsync import` a child process works out the jobs' rows of each batch of 500 orders the
importing process has written (order lines and their pieces, sent as stored rows), while the
importing process writes the next: when the child is slower, the importing process waits for it
(issue 11). This measures that work alone, on the stored lines of the engine benchmark's orders
(`engine_bench.generate`, the same seed), imported once into a SQLite store with this checkout
(bench/out/rows/store-N.db, kept for the next run). Each run is a fresh process that reads the
lines of each batch of 500 orders (by activation order) as the importing process sends them, and
times `batch_rows` over every batch: the decoding of the lines and every kind's rows (subscription
metrics, order metrics, ARR spans), not the staging file's inserts nor the pipes. Base and this
checkout take turns (the base from a worktree of REV, `bench/ab.py`'s, with PYTHONPATH pointing
there); it prints each run's process time and the medians. With `--instructions` each run is
counted by valgrind's callgrind instead (the same count whatever else the machine does; about 50
times slower: keep `--lines` small), start-up and reading included, and the start-up and reading
alone are counted too (`--floor`), as the floor.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "rows"
BATCH = 500


def prepare(lines: int) -> Path:
    """The store of the benchmark's orders, imported with this checkout (made once)."""
    path = OUT / f"store-{lines}.db"
    if path.exists():
        return path
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT))
    import datetime as dt

    from engine_bench import generate

    from connector.clock import FrozenClock
    from connector.engine.fiscal import StandardFiscalCalendar
    from connector.engine.settings import EngineSettings
    from connector.importer import ImportDoc, import_document
    from connector.jobs import JobContext, JobRunner
    from connector.store.db import open_store

    OUT.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    for suffix in ("", "-wal", "-shm"):
        Path(str(partial) + suffix).unlink(missing_ok=True)
    engine = open_store(f"sqlite:///{partial}")
    clock = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    runner = JobRunner(engine, JobContext(StandardFiscalCalendar(1), EngineSettings()), clock)
    runner.deferred = True  # the lines are what is measured: their jobs are not needed
    import_document(engine, ImportDoc.model_validate(generate(lines)), "bench", StandardFiscalCalendar(1),
                    EngineSettings(), clock, runner)
    engine.dispose()
    with sqlite3.connect(partial) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    partial.rename(path)
    return path


def batches(store: Path) -> list:
    """Each batch of orders as the importing process sends it to the child (`job_rows.Batch`)."""
    from connector.job_rows import KINDS
    from connector.store.encode import LINE_COLUMNS

    conn = sqlite3.connect(store)
    columns = ", ".join(f'l."{c}"' for c in LINE_COLUMNS)
    segments: dict[int, list[tuple]] = {}
    for row in conn.execute("SELECT line_pk, seq, start, end_excl, mrr, quantity FROM line_segments "
                            "ORDER BY line_pk, seq"):
        segments.setdefault(row[0], []).append(row)
    orders: dict[str, tuple[str, list]] = {}
    for row in conn.execute(f"SELECT o.id, o.currency, l.pk, {columns} FROM orders AS o "
                            "JOIN order_lines AS l ON l.order_id = o.id ORDER BY o.seq, l.seq"):
        order_id, currency, pk, line = row[0], row[1], row[2], row[3:]
        orders.setdefault(order_id, (currency, []))[1].append((pk, line, segments.get(pk, [])))
    conn.close()
    ids = list(orders)
    out = []
    for i in range(0, len(ids), BATCH):
        chunk = ids[i:i + BATCH]
        out.append(([(kind, chunk) for kind in KINDS],
                    {o: (orders[o][0], (None, orders[o][1])) for o in chunk}))
    return out


def measure(store: Path, floor: bool) -> None:
    """One run (in the process of the code measured): print the work's process time as JSON."""
    import gc

    from connector import job_rows
    from connector.engine.fiscal import StandardFiscalCalendar
    from connector.engine.settings import EngineSettings
    from connector.store.encode import IsoDays

    work = batches(store)
    lines = sum(len(stored) for _, orders in work for _, (_, stored) in orders.values())
    calendar = StandardFiscalCalendar(1)
    which = tuple(EngineSettings().order_metrics)
    periods = job_rows.PeriodTable(calendar, IsoDays())
    gc.disable()  # as the child runs (its collections are every few batches, outside what is timed)
    started = time.process_time()
    rows = 0
    if not floor:
        for batch in work:
            out = job_rows.batch_rows(batch, calendar, which, "sqlite", periods)
            rows += sum(v.count if isinstance(v, job_rows.Spans) else len(v) for v in out.values())
    print(json.dumps({"cpu": time.process_time() - started, "lines": lines, "rows": rows}))


def run(code: Path, store: Path, instructions: bool, floor: bool = False) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--measure", str(store)] + (["--floor"] if floor else [])
    env = {**os.environ, "PYTHONPATH": str(code)}
    if instructions:
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={os.devnull}", *command]
        env["PYTHONHASHSEED"] = "0"
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the run with {code} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if instructions:
        counted = re.findall(r"Collected : (\d+)", done.stderr)
        if not counted:
            raise SystemExit(f"callgrind printed no count:\n{done.stderr[-3000:]}")
        result["instructions"] = int(counted[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="the commit to compare with (a hash, a tag, HEAD~1)")
    parser.add_argument("--lines", type=int, default=None, help="order lines (100,000; 5,000 with --instructions)")
    parser.add_argument("--runs", type=int, default=None, help="runs of each side (3; 1 with --instructions)")
    parser.add_argument("--instructions", action="store_true", help="count instructions with callgrind")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(Path(args.measure), args.floor)
        return
    if not args.base:
        parser.error("--base REV is required")
    sys.path.insert(0, str(ROOT / "bench"))
    from ab import worktree

    lines = args.lines or (5_000 if args.instructions else 100_000)
    runs = args.runs or (1 if args.instructions else 3)
    store = prepare(lines)
    sha, base = worktree(args.base)
    sides = {"base": base, "this": ROOT}
    print(f"base {sha[:12]} ({args.base}) against this checkout; the rows of {lines:,} lines' jobs; "
          f"{runs} run(s) each, in turn; load average {os.getloadavg()[0]:.2f}", flush=True)
    results: dict[str, list[dict]] = {side: [] for side in sides}
    for n in range(runs):
        for side, code in sides.items():
            r = run(code, store, args.instructions)
            results[side].append(r)
            counted = f"  {r['instructions']:>16,} instructions" if args.instructions else ""
            print(f"  run {n + 1} {side:<4}  CPU {r['cpu']:7.2f} s{counted}  ({r['lines']:,} lines, {r['rows']:,} rows)",
                  flush=True)
    if {r["rows"] for r in results["base"]} != {r["rows"] for r in results["this"]}:
        print("  the two sides made different numbers of rows")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    key = "instructions" if args.instructions else "cpu"
    median = {side: statistics.median(r[key] for r in rs) for side, rs in results.items()}
    for side in sides:
        print(f"{side} median {key} {median[side]:,.2f}")
    print(f"this checkout against the base: {100 * (median['this'] / median['base'] - 1):+.1f} % {key}")
    if args.instructions:
        floor = {side: run(code, store, True, floor=True)["instructions"] for side, code in sides.items()}
        print(f"start-up and reading alone: base {floor['base']:,}, this {floor['this']:,}; beyond them: "
              f"{100 * ((median['this'] - floor['this']) / (median['base'] - floor['base']) - 1):+.1f} %")


if __name__ == "__main__":
    main()
