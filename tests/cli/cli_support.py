"""Running the real `revsync` command in a working directory of its own, and the documents it imports."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence


REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    """How one `revsync` run ended."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, f"revsync {' '.join(self.args)} exited {self.code}:\n{self.stderr}"
        return json.loads(self.stdout)

    @property
    def errors(self) -> str:
        """stderr with whitespace collapsed, so assertions do not depend on line wrapping."""
        return " ".join(self.stderr.split())


@dataclass
class Call:
    """One `revsync` command line: arguments, working directory, extra environment."""

    cwd: Path
    args: Sequence[str]
    env: dict[str, str] | None = None


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REVSYNC_CONFIG"}
    env["PYTHONPATH"] = str(REPO)
    env.pop("COLUMNS", None)
    env.update(extra or {})
    return env


def run_all(calls: Sequence[Call], timeout: float = 60) -> list[Result]:
    """Run several `revsync` commands at once (they must not depend on each other)."""
    procs = [subprocess.Popen([sys.executable, "-m", "connector.cli", *c.args], cwd=c.cwd, env=_env(c.env),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in calls]
    out = []
    for call, proc in zip(calls, procs):
        stdout, stderr = proc.communicate(timeout=timeout)
        out.append(Result(tuple(call.args), proc.returncode, stdout, stderr))
    return out


def revsync(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """Run one `revsync` command."""
    return run_all([Call(cwd, args, env)])[0]


def workdir(root: Path, name: str, config: str | None = "", db: str = "revsync-test.db") -> Path:
    """A working directory with a config.toml whose store is an absolute SQLite file in it."""
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (path / "config.toml").write_text(f'[store]\nurl = "sqlite:///{path / db}"\n\n{config}')
    return path


def copy_store(src: Path, dst: Path, db: str = "revsync-test.db") -> None:
    """Copy a SQLite store (and its WAL, if a writer left one) to another working directory."""
    for suffix in ("", "-wal"):
        if (src / (db + suffix)).exists():
            shutil.copy(src / (db + suffix), dst / (db + suffix))


def write_doc(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc, indent=1))
    return path


# SPEC section 7's worked example, written from the spec (fiscal year = calendar year).
ACCOUNTS = [{"id": "A", "name": "Customer A", "bill_cycle_day": 1},
            {"id": "B", "name": "Customer B", "bill_cycle_day": 1}]
PRODUCTS = [{"id": "SEAT", "name": "Platform seat", "provisioning": "subscription", "list_price": "100",
             "price_period": "month"},
            {"id": "PLAN", "name": "Enterprise plan", "provisioning": "subscription", "list_price": "2000",
             "price_period": "month"}]


def worked_example() -> dict[str, Any]:
    return {
        "accounts": ACCOUNTS,
        "products": PRODUCTS,
        "orders": [
            {"id": "O-1", "account": "A", "owner": "Chloe", "booked_on": "2023-01-01", "currency": "USD",
             "lines": [{"id": "OP-001", "action": "new", "product": "SEAT", "subscription": "S-001",
                        "quantity": 10, "unit_price": "100", "start": "2023-01-15", "end": "2024-01-14"}]},
            {"id": "O-2", "account": "B", "owner": "Chloe", "booked_on": "2023-01-20", "currency": "USD",
             "lines": [{"id": "OP-002", "action": "new", "product": "PLAN", "subscription": "S-002",
                        "quantity": 1, "unit_price": "2000", "start": "2023-02-01", "end": "2023-04-30"}]},
            {"id": "O-3", "account": "A", "owner": "Chloe", "booked_on": "2023-02-01", "currency": "USD",
             "lines": [{"id": "OP-003", "action": "update", "product": "SEAT", "subscription": "S-001",
                        "quantity": 16, "start": "2023-04-01"}]},
        ],
    }


def months(first: str, last: str) -> list[tuple[str, str]]:
    """Calendar months (start, end) from the month of `first` to that of `last`."""
    import calendar
    import datetime as dt

    y, m = int(first[:4]), int(first[5:7])
    stop = (int(last[:4]), int(last[5:7]))
    out = []
    while (y, m) <= stop:
        end = calendar.monthrange(y, m)[1]
        out.append((dt.date(y, m, 1).isoformat(), dt.date(y, m, end).isoformat()))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out




def store_url(wd: Path, db: str = "revsync-test.db") -> str:
    return f"sqlite:///{wd / db}"


def snapshot(url: str, skip: Sequence[str] = ()) -> dict[str, list]:
    """Every table of a store, row by row (sorted), to tell whether anything changed."""
    from sqlalchemy import create_engine, select

    from connector.store import schema as t

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {table.name: sorted(tuple(str(v) for v in row) for row in conn.execute(select(table)))
                    for table in t.metadata.sorted_tables if table.name not in skip}
    finally:
        engine.dispose()


def all_reports(url: str, calendar=None, as_of: str = "2023-06-30") -> dict[str, str]:
    """Every report of a store, rendered as the JSON the command prints (read in-process)."""
    import datetime as dt

    from sqlalchemy import create_engine

    from connector import reports
    from connector.engine.fiscal import StandardFiscalCalendar
    from connector.render import to_json

    calendar = calendar or StandardFiscalCalendar(1)
    day = dt.date.fromisoformat(as_of)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            out = {"arr_by_period": reports.arr_by_period(conn, calendar=calendar),
                   "subscriptions": reports.subscriptions(conn, day),
                   "accounts": reports.accounts(conn, day),
                   "order_metrics": reports.order_metrics(conn)}
            for by in ("month", "quarter", "year"):
                out[f"arr_{by}"] = reports.arr_summary(conn, calendar, by=by)
            return {k: to_json(v) for k, v in out.items()}
    finally:
        engine.dispose()
