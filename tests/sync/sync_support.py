"""A connector wired to an in-process sandbox org, and what the sync tests read back from its store."""
from __future__ import annotations

import copy
import datetime as dt
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from connector import reports
from connector.app import App
from connector.clock import FrozenClock
from connector.config import Config
from connector.runtime import Runtime, build
from connector.sandbox.org import Org, OrgConfig
from connector.sandbox.seed import load_seed
from connector.sandbox.transport import DEFAULT_BASE_URL, sandbox_session
from connector.store import schema as t

REPO = Path(__file__).resolve().parents[2]
WORKED_SEED = REPO / "connector" / "demo" / "sandbox_seed.json"
UTC = dt.timezone.utc
#: the seed's records are stamped at this instant (the org's clock when it was loaded)
SEEDED_AT = dt.datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
#: SPEC section 7: Chloe's 2023 quarters (opening and closing CMRR)
SPEC_QUARTERS = [(dt.date(2023, 1, 1), "0.00", "3000.00"), (dt.date(2023, 4, 1), "3000.00", "1600.00"),
                 (dt.date(2023, 7, 1), "1600.00", "1600.00"), (dt.date(2023, 10, 1), "1600.00", "1600.00")]
CLIENT = {"auth": "client_credentials", "login_url": DEFAULT_BASE_URL, "consumer_key": "revsync-test-client"}


def worked_seed() -> dict[str, Any]:
    """SPEC section 7's worked example as Salesforce records (a fresh copy to change)."""
    return copy.deepcopy(json.loads(WORKED_SEED.read_text("utf-8")))


@dataclass
class Connected:
    """An org, the connector wired to it, and the two clocks (Salesforce's and ours)."""

    org: Org
    refs: dict[str, str]
    app: App
    runtime: Runtime
    org_clock: FrozenClock
    clock: FrozenClock
    #: the test's own directory (a config file for the commands run as the user goes there)
    tmp: Path | None = None

    @property
    def service(self):
        return self.runtime.service

    @property
    def calls(self) -> int:
        return self.runtime.client.calls_made

    def later(self, minutes: float = 1) -> None:
        """Move both clocks on (a Salesforce write after this gets a newer SystemModstamp)."""
        self.org_clock.advance(dt.timedelta(minutes=minutes))
        self.clock.advance(dt.timedelta(minutes=minutes))


def connect(tmp_path: Path, monkeypatch, seed: dict[str, Any] | None = None, *,
            salesforce: dict[str, Any] | None = None, engine: dict[str, Any] | None = None,
            sync: dict[str, Any] | None = None, org: Org | None = None, store_url: str | None = None) -> Connected:
    """A sandbox org seeded with `seed` (the worked example by default) and a connector built on it
    (on a SQLite store in `tmp_path`, or the store at `store_url`)."""
    monkeypatch.setenv("REVSYNC_SF_CONSUMER_SECRET", "revsync-test-secret")
    org_clock = FrozenClock(SEEDED_AT)
    if org is None:
        org = Org(OrgConfig(), clock=org_clock)
    else:
        org_clock = org.clock
    refs = load_seed(org, worked_seed() if seed is None else seed)
    clock = FrozenClock(org_clock.now() + dt.timedelta(minutes=1))
    config = Config.model_validate({
        "store": {"url": store_url or f"sqlite:///{tmp_path / 'store.db'}"}, "fiscal": {"source": "salesforce"},
        "salesforce": CLIENT | (salesforce or {}), "engine": engine or {}, "sync": sync or {}})
    app = App(config, clock=clock)
    runtime = build(app, session=sandbox_session(org))
    return Connected(org, refs, app, runtime, org_clock, clock, tmp_path)


def close(c: Connected) -> None:
    """Release the store's connections (filterwarnings = error turns a leaked one into a failure)."""
    c.app.store.dispose()


def counts(c: Connected) -> dict[str, int]:
    """Rows of the tables a re-read must never grow."""
    with c.app.store.connect() as conn:
        return {table.name: conn.execute(select(func.count()).select_from(table)).scalar()
                for table in (t.sf_records, t.orders, t.order_lines, t.items, t.arr_rows, t.jobs,
                              t.fiscal_periods, t.accounts, t.products)}


def quarters(c: Connected, year: int = 2023) -> list[tuple[dt.date, str, str]]:
    """Opening and closing CMRR of the year's fiscal quarters, as strings."""
    with c.app.store.connect() as conn:
        rows = reports.arr_summary(conn, c.app.current_calendar(), by="quarter", owner=None,
                                   start=dt.date(year, 1, 1), end=dt.date(year, 12, 31))
    return [(r["period_start"], str(r["opening_cmrr"]), str(r["closing_cmrr"])) for r in rows]


def arr_rows(c: Connected) -> list[dict[str, Any]]:
    with c.app.store.connect() as conn:
        return reports.arr_by_period(conn)


def cursors(c: Connected) -> dict[str, dt.datetime]:
    with c.app.store.connect() as conn:
        return {r.object: r.cursor for r in conn.execute(select(t.sync_cursors))}


def mirror(c: Connected, sobject: str, record_id: str) -> tuple[dict[str, Any], bool] | None:
    """A record as the store mirrors it, and whether it is deleted."""
    with c.app.store.connect() as conn:
        row = conn.execute(select(t.sf_records.c.data, t.sf_records.c.is_deleted).where(
            t.sf_records.c.object == sobject, t.sf_records.c.id == record_id)).first()
    return None if row is None else (json.loads(row.data), row.is_deleted)


def engine_orders(c: Connected) -> list[str]:
    with c.app.store.connect() as conn:
        return list(conn.execute(select(t.orders.c.id).order_by(t.orders.c.seq)).scalars())


def held(c: Connected) -> list[dict[str, Any]]:
    with c.app.store.connect() as conn:
        return reports.quarantined(conn)


def org_with_picklist_value(sobject: str, field: str, value: str) -> Org:
    """An org whose admin added a picklist value that the shipped mappings do not know."""
    org = Org(OrgConfig(), clock=FrozenClock(SEEDED_AT))
    org.schema.get(sobject).field(field).picklist_values.append(value)
    return org


def quarantine_command(c: Connected) -> list[dict]:
    """`revsync quarantine -f json`, run as the operator would, against the connector's store."""
    path = c.tmp / "config.toml"
    path.write_text(f'[store]\nurl = "{c.app.config.store.url}"\n')
    env = {k: v for k, v in os.environ.items() if k != "REVSYNC_CONFIG"} | {"PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "connector.cli", "--config", str(path), "quarantine", "-f", "json"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
