"""Benchmark: background jobs of N generated order lines run by 1, 2, 4 … `revsync worker` processes.

    .venv/bin/python bench/workers_bench.py --lines 50000 --workers 1 --workers 2 --workers 4

For each worker count: a fresh PostgreSQL schema (`revsync_workers_bench`, dropped at the end), the
orders of bench/engine_bench.py imported with the jobs left to workers (`[workers] enabled`; the
import is not timed), then that many `revsync worker --until-idle` processes started together and
timed until the last one exits: lines/s is the generated lines over that time (process start-up
included). Each run must leave every job succeeded on its first attempt. For reference it also
times the same jobs run in one process by the single-process runner (`--no-single` to skip).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_bench import PG_SERVER, generate  # noqa: E402

from connector.clock import FrozenClock, SystemClock  # noqa: E402
from connector.engine.fiscal import StandardFiscalCalendar  # noqa: E402
from connector.engine.settings import EngineSettings  # noqa: E402
from connector.importer import ImportDoc, import_document  # noqa: E402
from connector.jobs import JobContext, JobRunner  # noqa: E402
from connector.store import schema as t  # noqa: E402
from connector.store.db import open_store  # noqa: E402

SCHEMA = "revsync_workers_bench"
REVSYNC = str(Path(sys.executable).with_name("revsync"))


def _schema(create: bool) -> str:
    admin = create_engine(PG_SERVER)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
            if create:
                conn.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
    finally:
        admin.dispose()
    return f"{PG_SERVER}?options=-csearch_path%3D{SCHEMA}"


def _imported(doc_json: dict) -> tuple[str, object]:
    """A fresh schema holding the generated orders, activated, their jobs pending."""
    url = _schema(create=True)
    engine = open_store(url)
    calendar, settings = StandardFiscalCalendar(1), EngineSettings()
    clock = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    runner = JobRunner(engine, JobContext(calendar, settings), clock, deferred=True)
    import_document(engine, ImportDoc.model_validate(json.loads(json.dumps(doc_json))), "bench", calendar,
                    settings, clock, runner)
    return url, engine


def _check_done(engine) -> int:
    with engine.connect() as conn:
        jobs = conn.execute(select(t.jobs.c.status, t.jobs.c.attempts, func.count())
                            .group_by(t.jobs.c.status, t.jobs.c.attempts)).all()
        arr = conn.execute(select(func.count()).select_from(t.arr_rows)).scalar()
    assert [(s, a) for s, a, _ in jobs] == [("succeeded", 1)], jobs
    return arr


def run_workers(doc_json: dict, count: int, lines: int, folder: Path, accounts_per_claim: int) -> float:
    url, engine = _imported(doc_json)
    config = folder / "bench.toml"
    config.write_text(f'[store]\nurl = "{url}"\n\n[workers]\nenabled = true\naccounts_per_claim = '
                      f'{accounts_per_claim}\npoll_seconds = 0.2\n')
    env = {k: v for k, v in os.environ.items() if k != "REVSYNC_CONFIG"}
    started = time.perf_counter()
    procs = [subprocess.Popen([REVSYNC, "--config", str(config), "worker", "--until-idle", "--log-format", "text"],
                              env=env) for _ in range(count)]
    codes = [p.wait() for p in procs]
    elapsed = time.perf_counter() - started
    assert codes == [0] * count, codes
    arr = _check_done(engine)
    engine.dispose()
    print(f"{count} worker(s)   {elapsed:8.2f} s   {lines / elapsed:10,.0f} lines/s   ({arr:,} ARR rows)",
          flush=True)
    return elapsed


def run_single(doc_json: dict, lines: int) -> float:
    url, engine = _imported(doc_json)
    runner = JobRunner(engine, JobContext(StandardFiscalCalendar(1), EngineSettings()), SystemClock())
    started = time.perf_counter()
    runner.run_pending()
    elapsed = time.perf_counter() - started
    _check_done(engine)
    engine.dispose()
    print(f"single process {elapsed:8.2f} s   {lines / elapsed:10,.0f} lines/s   (JobRunner.run_pending, "
          "no claims: the mode of SQLite and of [workers] enabled = false)", flush=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--workers", type=int, action="append", default=None,
                        help="a number of worker processes (repeatable; default 1, 2 and 4)")
    parser.add_argument("--accounts-per-claim", type=int, default=200,
                        help="[workers] accounts_per_claim (default: its default, 200)")
    parser.add_argument("--no-single", action="store_true", help="skip the single-process reference run")
    args = parser.parse_args()
    doc_json = generate(args.lines)
    lines = sum(len(o["lines"]) for o in doc_json["orders"])
    print(f"{lines:,} order lines in {len(doc_json['orders']):,} orders of {len(doc_json['accounts']):,} accounts; "
          f"{os.cpu_count()} CPU(s); PostgreSQL at {PG_SERVER.split('@')[-1]}", flush=True)
    times: dict[int, float] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="revsync-workers-bench-") as tmp:
            if not args.no_single:
                run_single(doc_json, lines)
            for count in args.workers or [1, 2, 4]:
                times[count] = run_workers(doc_json, count, lines, Path(tmp), args.accounts_per_claim)
    finally:
        _schema(create=False)
    first = next(iter(times))
    for count, seconds in times.items():
        print(f"speed-up with {count}: {times[first] / seconds:.2f} x (over {first})")


if __name__ == "__main__":
    main()
