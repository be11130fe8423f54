"""Benchmark: from an Outbound Message to every result of the deal in Salesforce, with the daemon running.

    .venv/bin/python bench/push_latency.py [--deals 20] [--interval 120] [--source push|cdc|both]

Serves the sandbox org over HTTPS on loopback, starts `revsync sync` as its own process with
`interval_seconds = 120` and its Outbound Message endpoint, lets it finish the first sync, then
makes `--deals` deals one after another in each org mode and, for each, posts the Outbound Message
Salesforce would send and times how long it takes until the deal's subscription and all of its
ARR-by-period rows (in both big objects) are in the org:

- ``automation``: the org's own automation has created and activated the order; the message
  names the Order;
- ``no-automation`` (`create_orders_from_won_quotes`): the opportunity is Closed Won with a primary
  quote; the message names the Opportunity, and the connector creates, activates, reads back,
  activates in the engine and writes the results, all in one pass.

With `--source cdc` no Outbound Message is posted: the daemon runs with `[sync] source = ["poll",
"cdc"]` and hears of the deal through Change Data Capture, the sandbox serving the Pub/Sub API over
gRPC with TLS on loopback (its events are published when the org's transaction commits).

"Done" means: the subscription of the deal's order item exists, both big objects hold rows for it,
and the store's outbox has nothing left to send (so every ARR row of the line is written). The floor
is one pass of the daemon: reading the notified record, one poll per object, activation and jobs,
and the write-back calls. Prints p50, p95 and max per mode.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib.resources import files
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from connector.sandbox.org import Org, OrgConfig  # noqa: E402
from connector.sandbox.seed import load_seed  # noqa: E402
from connector.sandbox.server import serve  # noqa: E402
from connector.sandbox.outbound import send  # noqa: E402

CLIENT_ID, CLIENT_SECRET = "revsync-test-client", "revsync-test-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed(mode: str) -> dict:
    data = json.loads(files("connector.demo").joinpath("sandbox_seed.json").read_text())
    if mode == "no-automation":
        data.pop("Order")
        data.pop("OrderItem")
        data["QuoteLineItem"] = data["QuoteLineItem"][:2]
    return data


class Deals:
    """Makes deals in the org the way each mode's org would, and says when one is done."""

    def __init__(self, org: Org, refs: dict[str, str], db: Path):
        self.org, self.refs, self.db = org, refs, db
        self.n = 0

    def with_automation(self) -> tuple[str, str, str]:
        """An order the org's automation created and activated: (message object, record Id, item Id)."""
        self.n += 1
        start = f"2023-{1 + self.n % 12:02d}-01"
        order = self.org.create("Order", {"AccountId": self.refs["a"], "OwnerId": self.refs["chloe"],
                                          "Pricebook2Id": self.refs["std"], "EffectiveDate": start,
                                          "Status": "Activated",
                                          "ActivatedDate": f"2024-02-01T09:{self.n:02d}:00.000+0000"}, seed=True)
        item = self.org.create("OrderItem", {"OrderId": order, "Product2Id": self.refs["seat"],
                                             "PricebookEntryId": self.refs["seat-std"], "Quantity": self.n,
                                             "UnitPrice": 100, "ServiceDate": start,
                                             "EndDate": f"2024-{1 + self.n % 12:02d}-01",
                                             "LineAction__c": "Add New Product"}, seed=True)
        return "Order", order, item

    def won_quote(self) -> tuple[str, str, str]:
        """A Closed Won opportunity with a primary quote: (message object, record Id, quote line Id)."""
        self.n += 1
        opp = self.org.create("Opportunity", {"Name": f"Deal {self.n}", "AccountId": self.refs["b"],
                                              "OwnerId": self.refs["chloe"], "StageName": "Closed Won",
                                              "CloseDate": "2023-03-01", "Pricebook2Id": self.refs["std"]},
                              seed=True)
        quote = self.org.create("Quote", {"Name": f"Q-D{self.n}", "OpportunityId": opp,
                                          "Pricebook2Id": self.refs["std"], "Status": "Accepted"}, seed=True)
        line = self.org.create("QuoteLineItem", {"QuoteId": quote, "Product2Id": self.refs["plan"],
                                                 "PricebookEntryId": self.refs["plan-std"], "Quantity": self.n,
                                                 "UnitPrice": 2000, "ServiceDate": "2023-03-01",
                                                 "EndDate__c": "2024-02-29", "LineAction__c": "Add New Product"},
                               seed=True)
        self.org.update("Opportunity", opp, {"SyncedQuoteId": quote}, seed=True)
        return "Opportunity", opp, line

    def item_of(self, line_or_item: str) -> str | None:
        for item in self.org.records("OrderItem"):
            if line_or_item in (item["Id"], item.get("QuoteLineItemId")):
                return item["Id"]
        return None

    def done(self, line_or_item: str) -> bool:
        item = self.item_of(line_or_item)
        if item is None:
            return False
        if not any(s.get("ExternalId__c") == item for s in self.org.records("Subscription__c")):
            return False
        for big in ("ArrByPeriod__b", "ArrByPeriodByCustomer__b"):
            if not any(r.get("OrderProduct__c") == item for r in self.org.records(big)):
                return False
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as conn:
            left = conn.execute("SELECT count(*) FROM outbox WHERE state IN ('NEW', 'PENDING')").fetchone()[0]
        return left == 0


def post(port: int, org_id: str, sobject: str, record: str, n: int) -> None:
    status = send(f"http://127.0.0.1:{port}/outbound", org_id, sobject, record, f"04l{n:012d}AAA")
    assert status == 200, status


def wait(predicate, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def run_mode(mode: str, deals: int, interval: float, source: str = "push") -> list[float]:
    with tempfile.TemporaryDirectory(prefix=f"revsync-{source}-{mode}-") as tmp:
        root = Path(tmp)
        org = Org(OrgConfig(clients={CLIENT_ID: CLIENT_SECRET}))
        refs = load_seed(org, seed(mode))
        server = serve(org, "127.0.0.1", 0, root / "ca.pem", pubsub_port=0 if source == "cdc" else None)
        cdc = ('source = ["poll", "cdc"]\n' if source == "cdc" else "")
        port = free_port()
        db = root / "revsync.db"
        (root / "config.toml").write_text(
            f'[store]\nurl = "sqlite:///{db}"\n[fiscal]\nsource = "salesforce"\n'
            f'[salesforce]\nauth = "client_credentials"\nlogin_url = "{server.url}"\nconsumer_key = "{CLIENT_ID}"\n'
            + (f'pubsub_url = "{server.pubsub_target}"\n' if source == "cdc" else "")
            + f'[sync]\ninterval_seconds = {interval}\n{cdc}'
            f'create_orders_from_won_quotes = {"true" if mode == "no-automation" else "false"}\n'
            f'[server]\nport = {port}\norg_ids = ["{org.config.org_id[:15]}"]\n')
        env = os.environ | {"REVSYNC_SF_CONSUMER_SECRET": CLIENT_SECRET, "REQUESTS_CA_BUNDLE": str(server.ca_path),
                            "PYTHONPATH": str(REPO)}
        daemon = subprocess.Popen([sys.executable, "-m", "connector.cli", "sync"], cwd=root, env=env,
                                  stdout=subprocess.DEVNULL, stderr=open(root / "daemon.log", "w"), text=True)
        timings = []
        try:
            make = Deals(org, refs, db)
            if not wait(lambda: db.exists() and _first_cycle_done(port), 120):
                raise SystemExit(f"{mode}: the daemon's first sync did not finish")
            for n in range(deals):
                sobject, record, line = make.with_automation() if mode == "automation" else make.won_quote()
                started = time.monotonic()
                if source == "push":
                    post(port, org.config.org_id, sobject, record, n + 1 + (1000 if mode == "automation" else 0))
                if not wait(lambda: make.done(line), interval + 60):
                    raise SystemExit(f"{mode}: deal {n + 1} did not reach Salesforce")
                timings.append(time.monotonic() - started)
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
            server.stop()
        return timings


def _first_cycle_done(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            return json.loads(answer.read()).get("last_cycle_at") is not None
    except Exception:  # noqa: BLE001 - not listening yet, or 503 before the first cycle
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=20)
    parser.add_argument("--interval", type=float, default=120.0)
    parser.add_argument("--source", choices=("push", "cdc", "both"), default="both",
                        help="how the daemon hears of a deal: an Outbound Message, or Change Data Capture")
    args = parser.parse_args()
    print(f"{args.deals} deals per mode, interval_seconds = {args.interval:g}, goal: every deal under 10 s")
    sources = ("push", "cdc") if args.source == "both" else (args.source,)
    for source, mode in ((s, m) for s in sources for m in ("automation", "no-automation")):
        timings = run_mode(mode, args.deals, args.interval, source)
        ordered = sorted(timings)
        p95 = ordered[max(0, -(-len(ordered) * 95 // 100) - 1)]
        print(f"{source:>4} {mode:>14}: p50 {statistics.median(ordered):.2f} s  p95 {p95:.2f} s  max {ordered[-1]:.2f} s  "
              f"(n={len(ordered)}, over 10 s: {sum(t > 10 for t in ordered)})")


if __name__ == "__main__":
    main()
