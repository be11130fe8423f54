"""The sandbox org served over HTTPS in the test process, and the real `revsync` command run against it.

The daemon is a separate process (`python -m connector.cli sync ...`); the org stays in this process,
so a test can add faults to it and read its records and request log directly.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Callable, Iterator

from connector.sandbox.org import Org, OrgConfig
from connector.sandbox.seed import load_seed
from connector.sandbox.server import SandboxServer, serve

REPO = Path(__file__).resolve().parents[2]
CLIENT_ID = "revsync-test-client"
CLIENT_SECRET = "revsync-test-secret"
#: Id-valued, timestamp and autonumber fields that differ between two orgs by construction
VOLATILE = frozenset({"CreatedDate", "LastModifiedDate", "SystemModstamp", "CreatedById", "LastModifiedById",
                      "OwnerId", "Name", "ActivatedDate", "ActivatedById", "OrderNumber", "LastActivityDate",
                      "LastViewedDate", "LastReferencedDate", "IsDeleted", "attributes"})


def worked_seed() -> dict[str, Any]:
    """SPEC section 7's worked example as Salesforce records (the demo's seed)."""
    return json.loads(files("connector.demo").joinpath("sandbox_seed.json").read_text())


@dataclass
class Result:
    """How one `revsync` run ended."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"revsync {' '.join(self.args)} exited {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


class Site:
    """A sandbox org served over HTTPS plus a working directory whose config.toml points the daemon at it."""

    def __init__(self, root: Path, seed: dict[str, Any], *, sync: str = "", extra: str = "",
                 store_url: str | None = None, pubsub_keepalive: float | None = None):
        """`pubsub_keepalive`: also serve the Pub/Sub API (Change Data Capture), with keep-alives this
        many seconds apart; the configuration then names it (`[salesforce] pubsub_url`)."""
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.org = Org(OrgConfig(clients={CLIENT_ID: CLIENT_SECRET}))
        self.refs = load_seed(self.org, seed)
        pubsub = {} if pubsub_keepalive is None else {"pubsub_port": 0, "pubsub_keepalive": pubsub_keepalive}
        self.server: SandboxServer = serve(self.org, "127.0.0.1", 0, root / "sandbox-ca.pem", **pubsub)
        self.db = root / "revsync.db"
        self.store_url = store_url or f"sqlite:///{self.db}"
        pubsub_url = f'pubsub_url = "{self.server.pubsub_target}"\n' if pubsub else ""
        (root / "config.toml").write_text(
            f'[store]\nurl = "{self.store_url}"\n\n[fiscal]\nsource = "salesforce"\n\n'
            f'[salesforce]\nauth = "client_credentials"\nlogin_url = "{self.server.url}"\n'
            f'consumer_key = "{CLIENT_ID}"\n{pubsub_url}\n[sync]\n{sync}\n{extra}')

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("REVSYNC_CONFIG", "COLUMNS")}
        env.update(PYTHONPATH=str(REPO), REVSYNC_SF_CONSUMER_SECRET=CLIENT_SECRET,
                   REQUESTS_CA_BUNDLE=str(self.server.ca_path))
        return env

    def start(self, *args: str) -> subprocess.Popen:
        """Start `revsync ARGS` in the working directory (not waiting for it)."""
        return subprocess.Popen([sys.executable, "-m", "connector.cli", *args], cwd=self.root, env=self.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def revsync(self, *args: str, timeout: float = 60) -> Result:
        """Run `revsync ARGS` to the end."""
        proc = self.start(*args)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"revsync {' '.join(args)} did not finish in {timeout}s\n{err}")
        return Result(tuple(args), proc.returncode, out, err)

    def stop(self) -> None:
        self.server.stop()

    # -- reading the store (a short-lived engine, disposed at once) ---------------------------------
    def store_rows(self, sql: str) -> list[tuple]:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.store_url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql))]
        finally:
            engine.dispose()

    def outbox_states(self) -> dict[str, int]:
        if self.store_url.startswith("sqlite") and not self.db.exists():
            return {}
        try:
            return dict(self.store_rows("SELECT state, count(*) FROM outbox GROUP BY state"))
        except Exception:  # the table is not there yet, or the daemon holds a write lock
            return {}


@contextmanager
def site(root: Path, seed: dict[str, Any], **kw) -> Iterator[Site]:
    s = Site(root, seed, **kw)
    try:
        yield s
    finally:
        s.stop()


def salesforce_state(org: Org, refs: dict[str, str]) -> dict[str, Any]:
    """What the connector wrote, comparable across orgs: Ids replaced by the seed names or external ids they stand for."""
    names = {rec_id: f"@{ref}" for ref, rec_id in refs.items()}
    rename = lambda v: names.get(v, v) if isinstance(v, str) else v  # noqa: E731
    for obj in ("Order", "OrderItem", "Subscription__c", "Asset", "Entitlement"):
        for r in org.records(obj):
            if r["Id"] not in names and r.get("ExternalId__c"):
                names[r["Id"]] = f"{obj}:{rename(r['ExternalId__c'])}"

    def plain(record: dict) -> dict:
        return {k: rename(v) for k, v in sorted(record.items()) if k not in VOLATILE}

    def by(key: Callable[[dict], Any], rows: list[dict]) -> list[dict]:
        return sorted((plain(r) for r in rows), key=lambda r: json.dumps(key(r), default=str))

    state: dict[str, Any] = {
        "Subscription__c": by(lambda r: r["ExternalId__c"], org.records("Subscription__c")),
        "Account": by(lambda r: r["Id"], [{k: r.get(k) for k in ("Id", "TCV__c", "CustomerSince__c", "ARR__c")}
                                           for r in org.records("Account")]),
        "Order": by(lambda r: r["Id"], [{k: r.get(k) for k in ("Id", "ExternalId__c", "Status", "AccountId")}
                                         for r in org.records("Order")]),
    }
    for big in ("ArrByPeriod__b", "ArrByPeriodByCustomer__b"):
        state[big] = by(lambda r: [r.get("OrderProduct__c"), r.get("StartDate__c")], org.records(big))
    return state


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> tuple[str, str]:
    proc.send_signal(sig)
    return proc.communicate(timeout=30)


def large_seed(accounts: int = 50, orders: int = 100) -> dict[str, Any]:
    """A bigger org: `accounts` accounts and `orders` activated orders of one 12-month subscription line each."""
    import datetime as dt

    base = worked_seed()
    seed: dict[str, Any] = {k: base[k] for k in ("User", "Product2", "Pricebook2", "PricebookEntry", "Period")}
    seed["Account"] = [{"@ref": f"acct{i}", "Name": f"Customer {i:03d}", "BillCycleDay__c": 1, "OwnerId": "@chloe"}
                       for i in range(accounts)]
    seed["Order"], seed["OrderItem"] = [], []
    for n in range(orders):
        start = dt.date(2023, 1 + n % 12, 1)
        end = start.replace(year=2024) - dt.timedelta(days=1)
        product = ("seat", "plan")[n % 2]
        seed["Order"].append({"@ref": f"ord{n}", "AccountId": f"@acct{n % accounts}", "OwnerId": "@chloe",
                              "Pricebook2Id": "@std", "EffectiveDate": start.isoformat(), "Status": "Activated",
                              "ActivatedDate": f"{start.isoformat()}T09:00:00.000+0000"})
        seed["OrderItem"].append({"@ref": f"item{n}", "OrderId": f"@ord{n}", "Product2Id": f"@{product}",
                                  "PricebookEntryId": f"@{product}-std", "Quantity": 1 + n % 7,
                                  "UnitPrice": (100, 2000)[n % 2], "ServiceDate": start.isoformat(),
                                  "EndDate": end.isoformat(), "LineAction__c": "Add New Product"})
    return seed


class Outage:
    """A TCP relay on loopback between revsync and the sandbox org that can be cut off.

    `down()` closes the listening socket and every open connection (new connections are refused,
    calls in flight are reset); `up()` listens on the same port again.
    """

    def __init__(self, target_port: int):
        import socket
        import threading

        self._socket, self._threading = socket, threading
        self.target = ("127.0.0.1", target_port)
        self.conns: set = set()
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self.listener.getsockname()[1]
        self._serve(self.listener)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def _serve(self, listener) -> None:
        def accept() -> None:
            while True:
                try:
                    client, _ = listener.accept()
                except OSError:
                    return  # closed by down()
                try:
                    upstream = self._socket.create_connection(self.target, timeout=5)
                except OSError:
                    client.close()
                    continue
                with self.lock:
                    self.conns.update((client, upstream))
                for a, b in ((client, upstream), (upstream, client)):
                    self._threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

        self._threading.Thread(target=accept, daemon=True).start()

    def _pump(self, src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def down(self) -> None:
        try:
            self.listener.shutdown(self._socket.SHUT_RDWR)  # wakes the accept() in progress (Linux)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for conn in self.conns:
                try:
                    conn.shutdown(self._socket.SHUT_RDWR)
                    conn.close()
                except OSError:
                    pass
            self.conns.clear()

    def up(self) -> None:
        self.listener = self._socket.create_server(("127.0.0.1", self.port), backlog=64, reuse_port=False)
        self._serve(self.listener)


def through(site: "Site", outage: Outage) -> None:
    """Point the site's revsync (login and instance URL) at the org through `outage`'s relay."""
    config = site.root / "config.toml"
    config.write_text(config.read_text().replace(site.server.url, outage.url))
    site.org.config.instance_url = outage.url


def postgres_store():
    """A fresh schema in the local PostgreSQL server (context manager yielding its URL), or a skip."""
    sys.path.insert(0, str(REPO / "tests" / "store"))
    from store_support import postgres_schema

    return postgres_schema()


def postgres_store_of_own_role():
    """A fresh schema reached through a role of its own whose connections a test can cut
    (context manager yielding store_support.OwnRole: `url`, `down()`, `up()`)."""
    sys.path.insert(0, str(REPO / "tests" / "store"))
    from store_support import postgres_schema_of_own_role

    return postgres_schema_of_own_role()


def post_outbound(port: int, org15: str, sobject: str, record_id: str, notification_id: str) -> int:
    """Post the Outbound Message Salesforce would send for one record; returns the HTTP status."""
    from connector.sandbox.outbound import send

    return send(f"http://127.0.0.1:{port}/outbound", org15, sobject, record_id, notification_id)
