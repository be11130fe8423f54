"""Benchmark: the jobs of N order lines run after their import, with one core and with the second.

    .venv/bin/python bench/jobs_bench.py [--lines 100000] [--runs 2]

What the daemon does after a large ingest (`run_pending`) and `revsync jobs retry` after many jobs
failed: the orders are in the store, their jobs (subscription metrics, order metrics, ARR by
period, credit review) are pending, and one run does them all. The engine benchmark's orders
(`engine_bench.generate`, the same seed) are imported once into a SQLite store with their jobs
left pending (a runner that defers them, as with workers), and the store is copied for each run.
Each run is a fresh process on a fresh copy: with one core (the rows worked out in the process
that writes them) and with the second (`JobRunner.rows_ahead`: a child process works out each
batch's rows while this one inserts the batch before), the two ways taking turns `--runs` times.
It prints each run's wall time, its CPU time, the child's CPU time, and the medians.
"""
from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import resource
import shutil
import sqlite3
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_bench import generate  # noqa: E402

from connector.clock import FrozenClock  # noqa: E402
from connector.engine.fiscal import StandardFiscalCalendar  # noqa: E402
from connector.engine.settings import EngineSettings  # noqa: E402
from connector.importer import ImportDoc, import_document  # noqa: E402
from connector.jobs import JobContext, JobRunner  # noqa: E402
from connector.store.db import open_store  # noqa: E402

CLOCK = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))


def _runner(engine, second_core: bool) -> JobRunner:
    runner = JobRunner(engine, JobContext(StandardFiscalCalendar(1), EngineSettings()), CLOCK)
    runner.second_core = second_core
    return runner


def pending_store(lines: int, path: Path) -> tuple[int, int]:
    """Import the benchmark's orders into a fresh store at `path`, every job left pending: (orders, jobs)."""
    path.unlink(missing_ok=True)
    engine = open_store(f"sqlite:///{path}")
    runner = _runner(engine, False)
    runner.deferred = True
    doc = ImportDoc.model_validate(generate(lines))
    result = import_document(engine, doc, "bench", StandardFiscalCalendar(1), EngineSettings(), CLOCK, runner)
    engine.dispose()
    with sqlite3.connect(path) as conn:  # one file to copy: the WAL folded in
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        jobs = conn.execute("SELECT count(*) FROM jobs WHERE status = 'pending'").fetchone()[0]
    return len(result.activated), jobs


def run(path: str, second_core: bool) -> tuple[float, float, float, int, int]:
    """Run every pending job of the store at `path`: (wall, CPU, the child's CPU, jobs done, batches
    whose rows the child worked out)."""
    engine = open_store(f"sqlite:///{path}")
    runner = _runner(engine, second_core)
    from connector import jobs as jobs_module

    batches: list[int] = []
    close = jobs_module.RowsAhead.close

    def noting_close(self) -> None:
        close(self)
        batches.append(self.batches)

    jobs_module.RowsAhead.close = noting_close  # type: ignore[method-assign]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started, cpu_started = time.perf_counter(), time.process_time()
    outcomes = runner.run_pending()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (children.ru_utime + children.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    assert outcomes and all(o.ok for o in outcomes), [o for o in outcomes if not o.ok][:3]
    engine.dispose()
    return wall, cpu, child_cpu, len(outcomes), sum(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=2, help="runs of each way, taking turns (default 2)")
    args = parser.parse_args()
    out = Path(__file__).with_name("out")
    out.mkdir(exist_ok=True)
    base = out / "jobs-bench-pending.db"
    orders, jobs = pending_store(args.lines, base)
    print(f"order lines           {args.lines:,} in {orders:,} orders, {jobs:,} pending jobs")
    walls: dict[bool, list[float]] = {False: [], True: []}
    for i in range(args.runs):
        for second_core in (False, True):
            copy = out / "jobs-bench-run.db"
            shutil.copyfile(base, copy)
            # a fresh process each run (spawned, not forked: a forked process would inherit this one's
            # memory, and a Pool's daemonic process could not start the child)
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                wall, cpu, child_cpu, done, batches = pool.submit(run, str(copy), second_core).result()
            assert done == jobs, (done, jobs)
            walls[second_core].append(wall)
            print(f"run {i + 1}, {'two cores' if second_core else 'one core '}  wall {wall:6.2f} s   CPU {cpu:6.2f} s"
                  + (f"   child's CPU {child_cpu:5.2f} s, {batches} batches' rows" if second_core else ""), flush=True)
            for suffix in ("", "-wal", "-shm"):
                copy.with_name(copy.name + suffix).unlink(missing_ok=True)
    one, two = statistics.median(walls[False]), statistics.median(walls[True])
    print(f"median wall           one core {one:.2f} s, two cores {two:.2f} s: {two / one:.2f} x ({two - one:+.2f} s)")
    for suffix in ("", "-wal", "-shm"):
        base.with_name(base.name + suffix).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
