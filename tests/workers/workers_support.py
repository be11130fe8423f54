"""Helpers for the worker tests: a generated import on a PostgreSQL schema, worker processes, and
every row of every table the engine writes, to compare two stores by."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, func, select

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "store"))
sys.path.insert(0, str(REPO / "bench"))

from engine_bench import generate  # noqa: E402
from workers_bench import prepare  # noqa: E402
from store_support import postgres_schema, postgres_schema_of_own_role  # noqa: E402,F401

from connector.store import schema as t  # noqa: E402
from connector.store.types import UtcDateTime  # noqa: E402

REVSYNC = str(Path(sys.executable).with_name("revsync"))
#: tables whose rows say when or by whom, not what: claims and the migration's own
NOT_COMPARED = {"work_claims"}


def document(lines: int) -> dict:
    """The benchmark's generated orders, with prepaid credit on every third account that its
    credit-eligible lines draw down, smaller than they need: which order of an account draws
    what depends on the account's orders being reviewed in activation order."""
    doc = generate(lines)
    credited = {a["id"] for i, a in enumerate(doc["accounts"]) if i % 3 == 0}
    doc["credits"] = [{"id": f"C-{a}", "account": a, "currency": "USD", "amount": "1500.00"} for a in sorted(credited)]
    for order in doc["orders"]:
        if order["account"] in credited:
            for line in order["lines"]:
                line["credit_eligible"] = True
    return doc


def write_config(folder: Path, url: str, *, workers: bool, claim_seconds: float = 3.0) -> Path:
    """A configuration on the store at `url`; with `workers`, jobs are left to `revsync worker`.

    A [salesforce] table makes the jobs put their results in the outbox (write-back), which the
    comparison then covers: an entry enqueued twice would show. Nothing here talks to an org.
    """
    path = folder / ("workers.toml" if workers else "single.toml")
    text = f'[store]\nurl = "{url}"\n\n[salesforce]\ninstance_url = "https://example.invalid"\n'
    if workers:
        text += (f"\n[workers]\nenabled = true\nclaim_seconds = {claim_seconds}\naccounts_per_claim = 4\n"
                 "poll_seconds = 0.2\n")
    path.write_text(text)
    return path


def revsync(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([REVSYNC, "--config", str(config), *args], capture_output=True, text=True,
                          timeout=timeout, env=_env())


def start_worker(config: Path, log: Path) -> subprocess.Popen:
    handle = log.open("w")
    try:
        return subprocess.Popen([REVSYNC, "--config", str(config), "worker", "--until-idle"], stdout=handle,
                                stderr=subprocess.STDOUT, env=_env())
    finally:
        handle.close()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("REVSYNC_CONFIG", None)
    return env


def import_file(folder: Path, config: Path, doc: dict) -> None:
    path = folder / "orders.json"
    path.write_text(json.dumps(doc))
    done = revsync(config, "import", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def _plain(value):
    if isinstance(value, Decimal):
        return str(value.normalize())
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


#: surrogate keys, numbered in the order rows were written (which workers activating accounts in
#: parallel interleave): left out, and the line keys other tables hold are given as the line's id
SURROGATE = {("order_lines", "pk"), ("jobs", "id"), ("outbox", "id")}


def content(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, timestamps and surrogate keys left out (a line's key given as its
    id), sorted: what the engine computed, whichever process computed it and in whatever order."""
    engine = create_engine(url)
    out: dict[str, list[tuple]] = {}
    try:
        with engine.connect() as conn:
            line_id = dict(conn.execute(select(t.order_lines.c.pk, t.order_lines.c.id)).all())

            def natural(name: str, value):
                if name == "line_pk":
                    return line_id.get(value, f"unknown line key {value}")
                if name == "payload" and isinstance(value, str) and '"line_pk"' in value:
                    payload = json.loads(value)
                    payload["line_pk"] = line_id.get(payload["line_pk"], "unknown")
                    return json.dumps(payload, sort_keys=True)
                return _plain(value)

            for table in t.metadata.sorted_tables:
                if table.name in NOT_COMPARED:
                    continue
                columns = [c for c in table.columns if not isinstance(c.type, UtcDateTime)
                           and (table.name, c.name) not in SURROGATE]
                rows = [tuple(natural(c.name, v) for c, v in zip(columns, r)) for r in conn.execute(select(*columns))]
                out[table.name] = sorted(rows, key=repr)
            # what the writer sends: the latest payload of each record (it sends no other)
            latest: dict = {}
            for r in conn.execute(select(t.outbox.c.object, t.outbox.c.external_id, t.outbox.c.kind,
                                         t.outbox.c.payload).order_by(t.outbox.c.id)):
                latest[(r.object, r.external_id, r.kind)] = natural("payload", r.payload)
            out["outbox, latest per record"] = sorted(latest.items())
    finally:
        engine.dispose()
    return out


def job_counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {status: count for status, count in conn.execute(
                select(t.jobs.c.status, func.count()).group_by(t.jobs.c.status))}
    finally:
        engine.dispose()


def activate_through_ingest(url: str, doc: dict, *, workers: bool) -> None:
    """Accounts, products and credits by import; then the orders as the daemon activates
    Salesforce-origin ones: left to the workers (`workers`), or activated with their jobs at once."""
    from connector.clock import FrozenClock
    from connector.store.db import open_store

    engine = open_store(url)
    try:
        prepare(engine, doc, "queue", deferred=workers,
                clock=FrozenClock(dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)))
    finally:
        engine.dispose()
