"""Benchmark: engine work on N generated order lines done by 1, 2, 4 … `revsync worker` processes.

    .venv/bin/python bench/workers_bench.py --lines 50000 --workers 1 --workers 2 --workers 4

For each worker count: a fresh PostgreSQL schema (`revsync_workers_bench`, dropped at the end) with
the accounts and products of bench/engine_bench.py's orders, and the orders left by the daemon's
ingest path in the activation queue, as `[workers] enabled` leaves Salesforce-activated orders
(`--source queue`, the default: the workers activate them and run their four jobs), or imported by
`revsync import` with their jobs pending (`--source import`: the workers run the jobs). Then that
many `revsync worker --until-idle` processes are started together and timed until the last one
exits: lines/s is the generated lines over that time (process start-up included). Every run must
leave every order activated and every job succeeded on its first attempt. For reference it also
times the same work done in one process, as without workers (`--no-single` to skip).
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

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_bench import PG_SERVER, _pg_schema, generate  # noqa: E402

from connector.clock import FrozenClock, SystemClock  # noqa: E402
from connector.engine.fiscal import StandardFiscalCalendar  # noqa: E402
from connector.engine.settings import EngineSettings  # noqa: E402
from connector.importer import ImportDoc, import_document  # noqa: E402
from connector.ingest import Ingestor  # noqa: E402
from connector.jobs import JobContext, JobRunner  # noqa: E402
from connector.store import schema as t  # noqa: E402
from connector.store.db import open_store  # noqa: E402

SCHEMA = "revsync_workers_bench"
REVSYNC = str(Path(sys.executable).with_name("revsync"))


def _schema(create: bool) -> str:
    _pg_schema(PG_SERVER, create=create, schema=SCHEMA)
    return f"{PG_SERVER}?options=-csearch_path%3D{SCHEMA}"


def _day(value):
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def mapped_orders(doc: dict) -> tuple[list[dict], dict[str, list[dict]]]:
    """The document's orders as the daemon holds Salesforce-activated orders after mapping (in
    activation order), and their items as its `items_of` returns them."""
    stamp = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    orders, items = [], {}
    for n, o in enumerate(doc["orders"]):
        orders.append({"id": o["id"], "account": o["account"], "owner": o["owner"],
                       "booked_on": _day(o["booked_on"]), "currency": o["currency"], "status": "activated",
                       "_modstamp": stamp + dt.timedelta(seconds=n), "_activated": f"2026-01-01T{n:08d}"})
        items[o["id"]] = [{**line, "line_number": f"{i:04d}", "start": _day(line.get("start")),
                           "quantity": str(line["quantity"]) if "quantity" in line else None}
                          for i, line in enumerate(o["lines"])]
    return orders, items


def prepare(engine, doc_json: dict, source: str, *, deferred: bool, clock=None) -> None:
    """Accounts, products and credits by import; then the orders imported (`source` "import") or
    activated as the daemon activates Salesforce-activated orders ("queue"); `deferred`: the work is
    left to workers (jobs pending; orders in the activation queue)."""
    calendar, settings = StandardFiscalCalendar(1), EngineSettings()
    clock = clock or FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    runner = JobRunner(engine, JobContext(calendar, settings), clock, deferred=deferred)
    doc = json.loads(json.dumps(doc_json))
    if source == "import":
        import_document(engine, ImportDoc.model_validate(doc), "bench", calendar, settings, clock, runner)
        return
    import_document(engine, ImportDoc.model_validate({**doc, "orders": []}), "bench", calendar, settings, clock,
                    runner)
    orders, items = mapped_orders(doc)
    outcomes = Ingestor(engine, None, settings, clock, runner, lambda: calendar).activate_orders(
        orders, lambda ids: {i: items[i] for i in ids})
    assert all(o.ok for o in outcomes)


def _imported(doc_json: dict, source: str) -> tuple[str, object]:
    """A fresh schema holding the generated orders, their work left to workers."""
    url = _schema(create=True)
    engine = open_store(url)
    prepare(engine, doc_json, source, deferred=True)
    return url, engine


def _check_done(engine, orders: int) -> int:
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.orders)).scalar() == orders
        assert conn.execute(select(func.count()).select_from(t.activation_queue)).scalar() == 0
        jobs = conn.execute(select(t.jobs.c.status, t.jobs.c.attempts, func.count())
                            .group_by(t.jobs.c.status, t.jobs.c.attempts)).all()
        arr = conn.execute(select(func.count()).select_from(t.arr_rows)).scalar()
    assert [(s, a) for s, a, _ in jobs] == [("succeeded", 1)], jobs
    return arr


def run_workers(doc_json: dict, count: int, lines: int, folder: Path, accounts_per_claim: int, source: str) -> float:
    url, engine = _imported(doc_json, source)
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
    arr = _check_done(engine, len(doc_json["orders"]))
    engine.dispose()
    print(f"{count} worker(s)   {elapsed:8.2f} s   {lines / elapsed:10,.0f} lines/s   ({arr:,} ARR rows)",
          flush=True)
    return elapsed


def run_single(doc_json: dict, lines: int, source: str) -> float:
    """The same work in one process, as without workers: the daemon's activation of every order
    with their jobs ("queue"), or the jobs of imported orders ("import")."""
    url = _schema(create=True)
    engine = open_store(url)
    if source == "import":
        prepare(engine, doc_json, source, deferred=True)
        runner = JobRunner(engine, JobContext(StandardFiscalCalendar(1), EngineSettings()), SystemClock())
        started = time.perf_counter()
        runner.run_pending()
    else:
        doc = {**doc_json, "orders": []}
        prepare(engine, doc, "queue", deferred=False)
        started = time.perf_counter()
        orders, items = mapped_orders(doc_json)
        calendar, settings = StandardFiscalCalendar(1), EngineSettings()
        runner = JobRunner(engine, JobContext(calendar, settings), SystemClock())
        Ingestor(engine, None, settings, SystemClock(), runner, lambda: calendar).activate_orders(
            orders, lambda ids: {i: items[i] for i in ids})
    elapsed = time.perf_counter() - started
    _check_done(engine, len(doc_json["orders"]))
    engine.dispose()
    print(f"single process {elapsed:8.2f} s   {lines / elapsed:10,.0f} lines/s   (no workers, no claims: "
          "the mode of SQLite and of [workers] enabled = false)", flush=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--workers", type=int, action="append", default=None,
                        help="a number of worker processes (repeatable; default 1, 2 and 4)")
    parser.add_argument("--accounts-per-claim", type=int, default=200,
                        help="[workers] accounts_per_claim (default: its default, 200)")
    parser.add_argument("--no-single", action="store_true", help="skip the single-process reference run")
    parser.add_argument("--source", choices=["queue", "import"], default="queue",
                        help="queue: the workers activate the orders and run their jobs (default); "
                             "import: the orders are imported, the workers run their jobs")
    args = parser.parse_args()
    doc_json = generate(args.lines)
    lines = sum(len(o["lines"]) for o in doc_json["orders"])
    print(f"{lines:,} order lines in {len(doc_json['orders']):,} orders of {len(doc_json['accounts']):,} accounts; "
          f"work: {'activation and jobs' if args.source == 'queue' else 'jobs'}; "
          f"{os.cpu_count()} CPU(s); PostgreSQL at {PG_SERVER.split('@')[-1]}", flush=True)
    times: dict[int, float] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="revsync-workers-bench-") as tmp:
            if not args.no_single:
                run_single(doc_json, lines, args.source)
            for count in args.workers or [1, 2, 4]:
                times[count] = run_workers(doc_json, count, lines, Path(tmp), args.accounts_per_claim, args.source)
    finally:
        _schema(create=False)
    first = next(iter(times))
    for count, seconds in times.items():
        print(f"speed-up with {count}: {times[first] / seconds:.2f} x (over {first})")


if __name__ == "__main__":
    main()
