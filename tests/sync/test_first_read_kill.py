"""A connector process killed with SIGKILL during the first read of a large object, then `revsync sync --once`:
the read resumes the same Bulk API 2.0 job at the first page not taken, fetches only the remainder, and the store
ends as after a first sync that was never interrupted (issue 7). The org is served over HTTPS in this process."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from connector.clock import FrozenClock
from connector.ingest import FIRST_READ
from connector.sandbox.bulk import Bulk
from connector.sandbox.faults import Fault
from connector.sandbox.org import Org, OrgConfig
from connector.sandbox.seed import load_seed
from connector.sandbox.server import serve
from connector.sources.poll import Checkpoint
from sync_support import REPO, SEEDED_AT
from test_backfill_crash import ORDERS, big_seed, snapshot

OBJECTS = ["Period", "Product2", "Account", "Order", "OrderItem"]
PAGE = 50
#: the connector's cycle with result pages of PAGE records, as a process of its own
CYCLE = textwrap.dedent(f"""
    import sys
    from connector.app import App
    from connector.config import load_config
    from connector.runtime import build

    runtime = build(App(load_config(sys.argv[1])))
    runtime.service.source.bulk_page_records = {PAGE}
    runtime.service.cycle()
""")


class Site:
    """A seeded org (frozen clock: two sites from one seed are identical) served over HTTPS, and a config."""

    def __init__(self, root: Path):
        root.mkdir()
        self.root = root
        self.org = Org(OrgConfig(bulk_polls_to_complete=1), clock=FrozenClock(SEEDED_AT))
        load_seed(self.org, big_seed())
        self.server = serve(self.org, "127.0.0.1", 0, root / "ca.pem")
        self.db = root / "store.db"
        self.config = root / "config.toml"
        self.config.write_text(textwrap.dedent(f"""
            [store]
            url = "sqlite:///{self.db}"

            [fiscal]
            source = "salesforce"

            [salesforce]
            auth = "client_credentials"
            login_url = "{self.server.url}"
            consumer_key = "revsync-test-client"
            bulk_threshold = 30

            [sync]
            objects = {OBJECTS!r}
        """).replace("'", '"'))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "REVSYNC_CONFIG"}
        return env | {"PYTHONPATH": str(REPO), "REQUESTS_CA_BUNDLE": str(self.server.ca_path),
                      "REVSYNC_SF_CONSUMER_SECRET": "revsync-test-secret"}

    def sync_once(self) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "connector.cli", "--config", str(self.config), "sync", "--once"],
                              env=self.env(), capture_output=True, text=True, timeout=240)
        # 0, or 4 when write-back entries are left for the next pass (what is compared here is what was read)
        assert done.returncode in (0, 4) and "Traceback" not in done.stderr, done.stderr
        return done

    def checkpoint(self, sobject: str) -> Checkpoint | None:
        if not self.db.exists():
            return None
        conn = sqlite3.connect(self.db, timeout=5)
        try:
            row = conn.execute("select value from meta where key = ?", (FIRST_READ + sobject,)).fetchone()
        except sqlite3.OperationalError:  # not migrated yet
            return None
        finally:
            conn.close()
        return None if row is None else Checkpoint.loads(row[0])


@pytest.fixture
def sites(tmp_path):
    made: list[Site] = []

    def make(name: str) -> Site:
        made.append(Site(tmp_path / name))
        return made[-1]

    yield make
    for site in made:
        site.server.stop()


@pytest.fixture
def pages_served(monkeypatch):
    """(job id, locator asked, records served) of every bulk result page the sandbox serves."""
    served: list[tuple[str, str | None, int]] = []
    original = Bulk.query_results

    def counting(self, job_id, locator, max_records):
        data, next_locator, count = original(self, job_id, locator, max_records)
        served.append((job_id, locator, count))
        return data, next_locator, count

    monkeypatch.setattr(Bulk, "query_results", counting)
    return served


@pytest.mark.slow
def test_a_first_sync_killed_during_a_bulk_read_resumes_it_and_ends_as_an_uninterrupted_one(sites, pages_served):
    whole = sites("whole")
    whole.sync_once()

    site = sites("killed")
    # The third page of Order is held until the test lets it go: the process is killed while it waits,
    # with two pages of Order taken (result pages before it: Period 1, Account 5; Product2 is read by REST).
    release = threading.Event()
    stall = site.org.faults.add(Fault.call(lambda: release.wait(60), method="GET",
                                           path=r"/jobs/query/[^/]+/results", skip=1 + 5 + 2))
    proc = subprocess.Popen([sys.executable, "-c", CYCLE, str(site.config)], env=site.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not stall.fired:
        time.sleep(0.05)
    assert stall.fired == 1 and proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    saved = site.checkpoint("Order")
    assert saved is not None and (saved.taken, saved.locator) == (2 * PAGE, str(2 * PAGE))
    site.org.faults.clear()
    # the held page is served to nobody (its client is dead) before the resumed run starts counting
    held = len(pages_served)
    release.set()
    deadline = time.monotonic() + 30
    while len(pages_served) == held and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(pages_served) == held + 1

    before = len(pages_served)
    site.sync_once()
    after = [p for p in pages_served[before:] if p[0] == saved.job_id]
    # the same job, from the page after the last one taken: only the remainder was fetched
    assert after and after[0][1] == str(2 * PAGE)
    assert sum(n for _, _, n in after) == ORDERS - 2 * PAGE
    assert site.checkpoint("Order") is None

    got, want = snapshot(site.db), snapshot(whole.db)
    assert got == want
    assert sum(got["orders"].values()) == ORDERS and all(n == 1 for n in got["sf_records"].values())
