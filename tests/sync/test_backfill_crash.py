"""A `revsync backfill` process against the sandbox org over HTTPS, killed half-way and run again, ends
with exactly the store of a run that was never interrupted."""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Integer

from connector.store import schema as t
from sync_support import REPO

ORDERS = 240
OBJECTS = ["Period", "Product2", "Account", "Order", "OrderItem"]
COMPARED = (t.sf_records, t.accounts, t.products, t.fiscal_periods, t.orders, t.order_lines, t.items,
            t.item_versions, t.arr_rows, t.jobs, t.quarantine)


def big_seed() -> dict:
    """Accounts, each with an activated order of two monthly lines, and the fiscal months they touch."""
    seed: dict = {
        "Product2": [{"@ref": "seat", "Name": "Seat", "IsActive": True, "ProvisioningType__c": "Subscription",
                      "PricePeriod__c": "Month"},
                     {"@ref": "support", "Name": "Support", "IsActive": True,
                      "ProvisioningType__c": "Entitlement", "PricePeriod__c": "Month"}],
        "Pricebook2": [{"@ref": "std", "Name": "Standard Price Book", "IsActive": True, "IsStandard": True}],
        "PricebookEntry": [
            {"@ref": "seat-std", "Pricebook2Id": "@std", "Product2Id": "@seat", "UnitPrice": 100, "IsActive": True},
            {"@ref": "support-std", "Pricebook2Id": "@std", "Product2Id": "@support", "UnitPrice": 50,
             "IsActive": True}],
        "Account": [], "Order": [], "OrderItem": [], "Period": []}
    for n in range(ORDERS):
        start = dt.date(2023, 1 + n % 12, 1 + n % 28)
        end = start.replace(year=start.year + 1) - dt.timedelta(days=1)
        seed["Account"].append({"@ref": f"a{n}", "Name": f"Customer {n:03d}", "BillCycleDay__c": 1})
        seed["Order"].append({"@ref": f"o{n}", "AccountId": f"@a{n}", "Pricebook2Id": "@std",
                              "EffectiveDate": start.isoformat(), "Status": "Activated",
                              "ActivatedDate": f"{start.isoformat()}T09:{n % 60:02d}:00.000+0000"})
        for product, qty in (("seat", 1 + n % 7), ("support", 1)):
            seed["OrderItem"].append({"OrderId": f"@o{n}", "Product2Id": f"@{product}",
                                      "PricebookEntryId": f"@{product}-std", "Quantity": qty,
                                      "UnitPrice": 100 if product == "seat" else 50,
                                      "ServiceDate": start.isoformat(), "EndDate": end.isoformat()})
    day = dt.date(2023, 1, 1)
    for n in range(36):
        nxt = (day + dt.timedelta(days=32)).replace(day=1)
        seed["Period"].append({"Type": "Month", "StartDate": day.isoformat(),
                               "EndDate": (nxt - dt.timedelta(days=1)).isoformat(), "Number": n % 12 + 1,
                               "FullyQualifiedLabel": f"M{n}"})
        day = nxt
    return seed


def env(ca: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "REVSYNC_CONFIG"}
    out.update({"PYTHONPATH": str(REPO), "REQUESTS_CA_BUNDLE": str(ca),
                "REVSYNC_SF_CONSUMER_SECRET": "revsync-test-secret"})
    return out


@pytest.fixture
def sandbox(tmp_path):
    """`revsync sandbox serve` on a free port, seeded; yields (url, CA path)."""
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(big_seed()))
    ca = tmp_path / "sandbox-ca.pem"
    proc = subprocess.Popen([sys.executable, "-m", "connector.cli", "sandbox", "serve", "--seed", str(seed),
                             "--port", "0", "--ca-out", str(ca), "--batch-size", "200"],
                            env=env(ca), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("sandbox org at "):
                url = line.split()[3].replace("localhost", "127.0.0.1")
        assert url, f"the sandbox did not start: {proc.stderr.read() if proc.poll() is not None else ''}"
        yield url, ca
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def workdir(root: Path, name: str, url: str) -> Path:
    path = root / name
    path.mkdir()
    (path / "config.toml").write_text(f"""
[store]
url = "sqlite:///{path / 'store.db'}"

[fiscal]
source = "salesforce"

[salesforce]
auth = "client_credentials"
login_url = "{url}"
consumer_key = "revsync-test-client"
bulk_threshold = 30

[sync]
objects = {json.dumps(OBJECTS)}
""")
    return path


def backfill(wd: Path, ca: Path) -> subprocess.Popen:
    # No --until: the second run resumes the unfinished one with the same start and objects.
    return subprocess.Popen([sys.executable, "-m", "connector.cli", "--config", str(wd / "config.toml"),
                             "backfill", "--since", "2000-01-01"],
                            env=env(ca), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def progress(db: Path) -> dict[str, tuple]:
    if not db.exists():
        return {}
    conn = sqlite3.connect(db, timeout=5)
    try:
        return {o: (job, n, state) for o, job, n, state in
                conn.execute("select object, bulk_job_id, records, state from backfill_progress")}
    except sqlite3.OperationalError:  # tables not made yet
        return {}
    finally:
        conn.close()


def snapshot(db: Path) -> dict[str, Counter]:
    """Each compared table as a multiset of rows, without surrogate keys and wall-clock stamps."""
    conn = sqlite3.connect(db)
    try:
        out = {}
        for table in COMPARED:
            cols = [c.name for c in table.columns
                    if not c.name.endswith("_at") and c.name not in ("first_seen", "last_seen")
                    and not (c.primary_key and isinstance(c.type, Integer) and c.autoincrement is not False
                             and len(table.primary_key.columns) == 1)]
            out[table.name] = Counter(conn.execute(f"select {', '.join(cols)} from {table.name}").fetchall())
        return out
    finally:
        conn.close()


@pytest.fixture
def processes():
    """Backfill processes a test starts; any still running at its end are killed and reaped."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.mark.slow
def test_backfill_killed_half_way_then_run_again_equals_an_uninterrupted_run(tmp_path, sandbox, processes):
    url, ca = sandbox
    crashed, whole = workdir(tmp_path, "crashed", url), workdir(tmp_path, "whole", url)
    uninterrupted = backfill(whole, ca)
    processes.append(uninterrupted)
    first = backfill(crashed, ca)
    processes.append(first)
    db = crashed / "store.db"
    seen: dict[str, tuple] = {}
    deadline = time.monotonic() + 40
    # Half-way: the Order job is created and its id saved, its records not yet taken; earlier objects done.
    while time.monotonic() < deadline and first.poll() is None:
        seen = progress(db)
        if seen.get("Order", (None, 0, ""))[0] is not None and seen["Order"][2] == "running":
            break
        time.sleep(0.02)
    assert first.poll() is None, f"the backfill ended before it could be killed: {first.communicate()}"
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL
    assert seen["Account"][1:] == (ORDERS, "done") and seen["OrderItem"][2] == "pending"
    job = seen["Order"][0]

    second = backfill(crashed, ca)
    processes.append(second)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert "(resumed)" in err, err
    assert progress(db)["Order"] == (job, ORDERS, "done")  # the saved job was read, not a new one
    out, err = uninterrupted.communicate(timeout=60)
    assert uninterrupted.returncode == 0, err
    assert "(resumed)" not in err

    got, want = snapshot(db), snapshot(whole / "store.db")
    assert {k: sum(v.values()) for k, v in got.items()} == {k: sum(v.values()) for k, v in want.items()}
    assert got == want
    # nothing duplicated, everything there
    assert all(n == 1 for table in ("sf_records", "orders", "order_lines", "arr_rows") for n in got[table].values())
    assert sum(got["orders"].values()) == ORDERS and sum(got["order_lines"].values()) == 2 * ORDERS
    assert sum(got["arr_rows"].values()) > 0 and not got["quarantine"]
