"""Change Data Capture end to end: `revsync sync` as its own process with `[sync] source = ["poll",
"cdc"]`, the sandbox org serving the Pub/Sub API over gRPC with TLS, and no Outbound Message at all.

Polling runs every 600 s in these tests, so a deal that reaches Salesforce within seconds came
through the change event stream. Each test looks at the org the way a user would: the deal's
subscription and its ARR rows in both big objects, and nothing left in the outbox."""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e_support import Site, salesforce_state, wait_for, worked_seed

pytestmark = pytest.mark.slow

CDC = 'source = ["poll", "cdc"]\ninterval_seconds = 600\ncdc_poll_interval_seconds = 3600\nlease_seconds = 5\n'
#: the channels of the default [sync] objects that have change events (Period has none)
CHANNELS = 7


def cdc_site(root: Path) -> Site:
    return Site(root, worked_seed(), sync=CDC, pubsub_keepalive=0.5)


class Daemon:
    """`revsync sync` running in the site's folder, its log in a file (never a full pipe)."""

    def __init__(self, site: Site, name: str = "daemon"):
        self.log = site.root / f"{name}.log"
        with open(self.log, "w") as out:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([sys.executable, "-m", "connector.cli", "sync"], cwd=site.root,
                                         env=site.env(), stdout=subprocess.DEVNULL, stderr=out)

    def text(self) -> str:
        return self.log.read_text()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def deal(site: Site, n: int) -> tuple[str, str]:
    """An order the org's automation created and activated: (order Id, order item Id)."""
    org, refs = site.org, site.refs
    start = f"2023-{1 + n % 12:02d}-01"
    order = org.create("Order", {"AccountId": refs["a"], "OwnerId": refs["chloe"], "Pricebook2Id": refs["std"],
                                 "EffectiveDate": start, "Status": "Activated",
                                 "ActivatedDate": f"2024-02-01T09:{n:02d}:00.000+0000"}, seed=True)
    item = org.create("OrderItem", {"OrderId": order, "Product2Id": refs["seat"], "PricebookEntryId": refs["seat-std"],
                                    "Quantity": n, "UnitPrice": 100, "ServiceDate": start,
                                    "EndDate": f"2024-{1 + n % 12:02d}-01", "LineAction__c": "Add New Product"},
                      seed=True)
    refs[f"deal{n}"], refs[f"deal{n}-item"] = order, item  # named alike in every org's state
    return order, item


def done(site: Site, item: str) -> bool:
    """The item's subscription and ARR rows (both big objects) are in the org, and nothing is left to send."""
    org = site.org
    if not any(s.get("ExternalId__c") == item for s in org.records("Subscription__c")):
        return False
    if not all(any(r.get("OrderProduct__c") == item for r in org.records(big))
               for big in ("ArrByPeriod__b", "ArrByPeriodByCustomer__b")):
        return False
    states = site.outbox_states()
    return not states.get("NEW") and not states.get("PENDING")


def meta(site: Site, like: str) -> dict[str, str]:
    try:
        return dict(site.store_rows(f"SELECT key, value FROM meta WHERE key LIKE '{like}'"))
    except Exception:  # noqa: BLE001 - the store is being created, or locked by the daemon
        return {}


def streams_ready(site: Site) -> bool:
    """Every channel has answered (its replay id is stored) and the seed's deals are in the org."""
    replays = meta(site, "cdc_replay:%")
    return len([v for v in replays.values() if v]) == CHANNELS and \
        all(done(site, site.refs[i]) for i in ("op001", "op002"))


def notifications_of(site: Site, record_id: str) -> list[str]:
    return [r[0] for r in site.store_rows(f"SELECT notification_id FROM notifications WHERE record_id = '{record_id}'")]


def polling_state(root: Path, deals: list[int]) -> dict:
    """The same scenario synced by polling alone (`sync --once` after the deals): the org's end state."""
    site = Site(root, worked_seed())
    try:
        for n in deals:
            deal(site, n)
        result = site.revsync("sync", "--once", timeout=120)
        assert result.code == 0, result
        return salesforce_state(site.org, site.refs)
    finally:
        site.stop()


def test_deals_reach_salesforce_through_change_events_alone(tmp_path):
    site = cdc_site(tmp_path / "cdc")
    daemon = Daemon(site)
    try:
        wait_for(lambda: streams_ready(site), 60, "the first sync and every change event stream")
        for n in (1, 2, 3):
            started = time.monotonic()
            _order, item = deal(site, n)
            wait_for(lambda: done(site, item), 20, f"deal {n} through change events (polling is 600 s away)")
            assert time.monotonic() - started < 20
        daemon.stop()
        assert daemon.proc.returncode == 0, daemon.text()
        assert salesforce_state(site.org, site.refs) == polling_state(tmp_path / "poll", [1, 2, 3])
    finally:
        daemon.stop()
        site.stop()


def test_killed_between_an_event_and_its_commit_the_restart_takes_it_once(tmp_path):
    site = cdc_site(tmp_path / "cdc")
    daemon = Daemon(site)
    lock = None
    try:
        wait_for(lambda: streams_ready(site), 60, "the first sync and every change event stream")
        replay_before = meta(site, "cdc_replay:/data/OrderChangeEvent")
        delivered = site.org.events.delivered("/data/OrderChangeEvent")
        lock = sqlite3.connect(site.db, timeout=30, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")  # the daemon can receive events but not commit them
        order, item = deal(site, 4)
        wait_for(lambda: site.org.events.delivered("/data/OrderChangeEvent") > delivered, 20,
                 "the order's change event to reach the daemon")
        time.sleep(0.3)
        daemon.proc.kill()
        daemon.proc.wait()
        lock.rollback()
        lock.close()
        lock = None
        # nothing of the event was committed: no notification, the replay id where it was
        assert notifications_of(site, order) == []
        assert meta(site, "cdc_replay:/data/OrderChangeEvent") == replay_before

        again = Daemon(site, "restart")
        try:
            wait_for(lambda: done(site, item), 30, "the deal after the restart")
            # the stream resumed after the stored replay id: the order's events came again, each taken once
            published = [e for e in site.org.events.events() if order in e.record_ids]
            wait_for(lambda: len(notifications_of(site, order)) == len(published), 20,
                     "one notification per event of the order")
            assert len(set(notifications_of(site, order))) == len(published)
        finally:
            again.stop()
        assert again.proc.returncode == 0, again.text()
        assert salesforce_state(site.org, site.refs) == polling_state(tmp_path / "poll", [4])
    finally:
        if lock is not None:
            lock.close()
        daemon.stop(signal.SIGKILL)
        site.stop()


def test_a_stream_reset_mid_batch_loses_nothing(tmp_path):
    site = cdc_site(tmp_path / "cdc")
    daemon = Daemon(site)
    try:
        wait_for(lambda: streams_ready(site), 60, "the first sync and every change event stream")
        site.org.events.reset_stream_after(2)
        items = [deal(site, n)[1] for n in (5, 6, 7)]
        wait_for(lambda: all(done(site, i) for i in items), 40, "every deal after the stream reset")
        daemon.stop()
        assert daemon.proc.returncode == 0, daemon.text()
        assert "change event stream failed" in daemon.text()  # it was reset, and opened again
        assert salesforce_state(site.org, site.refs) == polling_state(tmp_path / "poll", [5, 6, 7])
    finally:
        daemon.stop()
        site.stop()


def test_an_expired_replay_id_falls_back_to_polling_and_catches_up(tmp_path):
    site = cdc_site(tmp_path / "cdc")
    daemon = Daemon(site)
    try:
        wait_for(lambda: streams_ready(site), 60, "the first sync and every change event stream")
        daemon.stop()
        assert daemon.proc.returncode == 0, daemon.text()
        _order, missed = deal(site, 8)  # made while the daemon was down…
        site.org.events.expire_replay_ids()  # …and more than 72 hours ago, as far as the bus knows
        daemon = Daemon(site, "restart")
        wait_for(lambda: done(site, missed), 40, "the deal made while down, caught up by polling")
        wait_for(lambda: "no longer kept" in daemon.text(), 20, "the lost replay id to be noticed")
        # the streams listen again from the tip: the next deal comes through them
        wait_for(lambda: streams_ready(site), 30, "every stream answering again")
        _order, item = deal(site, 9)
        wait_for(lambda: done(site, item), 20, "a deal after the fallback, through change events")
        daemon.stop()
        assert daemon.proc.returncode == 0, daemon.text()
        assert salesforce_state(site.org, site.refs) == polling_state(tmp_path / "poll", [8, 9])
    finally:
        daemon.stop()
        site.stop()


def test_one_channel_for_every_object(tmp_path):
    """`[sync] cdc_channel`: one subscription carries every object's change events."""
    site = Site(tmp_path / "cdc", worked_seed(), sync=CDC + 'cdc_channel = "/data/ChangeEvents"\n',
                pubsub_keepalive=0.5)
    daemon = Daemon(site)
    try:
        wait_for(lambda: list(meta(site, "cdc_replay:%")) == ["cdc_replay:/data/ChangeEvents"]
                 and all(done(site, site.refs[i]) for i in ("op001", "op002")), 60, "the first sync and the stream")
        _order, item = deal(site, 10)
        wait_for(lambda: done(site, item), 20, "the deal through the one channel")
        status = site.revsync("status", "-f", "json")
        assert status.code == 0, status
        channels = json.loads(status.stdout)["change_events"]["channels"]
        assert [c["channel"] for c in channels] == ["/data/ChangeEvents"] and channels[0]["last_event_at"]
    finally:
        daemon.stop()
        site.stop()
