"""The daemon as a revenue team runs it: `revsync sync` as its own process against the sandbox org
over HTTPS, then the state of the org.

- `sync --once` after a won opportunity in an org without automation leaves everything in Salesforce;
- refused credentials stop with exit 5, held records make `--once` exit 6, each saying what to do;
- the org unreachable for two minutes mid-run ends in the same Salesforce state as a run without it;
- a daemon frozen (SIGSTOP) past its lease writes nothing once it resumes, on SQLite and PostgreSQL;
- the PostgreSQL server dropping and refusing the daemon's connections mid-run is waited out.
"""
from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import pytest
from e2e_support import (
    Outage,
    kill,
    post_outbound,
    postgres_store,
    postgres_store_of_own_role,
    salesforce_state,
    site,
    through,
    wait_for,
    worked_seed,
)

from connector.sandbox.faults import Fault


def quote_only_seed() -> dict:
    """Closed Won opportunities with primary quotes and no orders: an org without automation."""
    seed = worked_seed()
    seed.pop("Order")
    seed.pop("OrderItem")
    seed["QuoteLineItem"] = seed["QuoteLineItem"][:2]  # the third is an upsell of an order this org lacks
    return seed


WON_QUOTES = "create_orders_from_won_quotes = true"


def add_activated_order(s, name: str, *, account: str = "a", product: str = "seat", quantity: int = 5,
                        start: str = "2024-02-01", end: str = "2024-12-31") -> None:
    """A new order activated in Salesforce (by the org's automation), as `s.refs[name]`."""
    order = s.org.create("Order", {"AccountId": s.refs[account], "OwnerId": s.refs["chloe"],
                                   "Pricebook2Id": s.refs["std"], "EffectiveDate": start, "Status": "Activated",
                                   "ActivatedDate": f"{start}T09:00:00.000+0000"}, seed=True)
    item = s.org.create("OrderItem", {"OrderId": order, "Product2Id": s.refs[product],
                                      "PricebookEntryId": s.refs[f"{product}-std"], "Quantity": quantity,
                                      "UnitPrice": 100, "ServiceDate": start, "EndDate": end,
                                      "LineAction__c": "Add New Product"}, seed=True)
    s.refs[name], s.refs[f"{name}-item"] = order, item


def writes(entries) -> list:
    return [e for e in entries if e.method in ("POST", "PATCH", "PUT", "DELETE") and "/oauth2/" not in e.path]


@pytest.mark.slow
def test_once_after_won_opportunities_leaves_everything_in_salesforce(tmp_path):
    with site(tmp_path, quote_only_seed(), sync=WON_QUOTES) as s:
        done = s.revsync("sync", "--once")
        assert done.code == 0, done
        orders = s.org.records("Order")
        assert len(orders) == 2 and {o["Status"] for o in orders} == {"Activated"}
        # ingested, activated and written in the same run: subscriptions, account metrics, ARR rows
        assert len(s.org.records("Subscription__c")) == len(s.org.records("OrderItem")) == 2
        accounts = {a["Id"]: a for a in s.org.records("Account")}
        assert accounts[s.refs["a"]]["TCV__c"] and accounts[s.refs["b"]]["TCV__c"]
        stored_rows = s.store_rows("SELECT count(*) FROM arr_rows")[0][0]
        assert stored_rows > 0
        assert len(s.org.records("ArrByPeriod__b")) == stored_rows
        assert len(s.org.records("ArrByPeriodByCustomer__b")) == stored_rows
        assert set(s.outbox_states()) == {"SUCCESS"}
        # nothing left: the next run writes nothing
        before = len(writes(s.org.request_log))
        again = s.revsync("sync", "--once")
        assert again.code == 0, again
        assert len(writes(s.org.request_log)) == before


@pytest.mark.slow
def test_refused_credentials_stop_with_exit_5_and_say_what_to_check(tmp_path):
    with site(tmp_path, worked_seed()) as s:
        env = s.env() | {"REVSYNC_SF_CONSUMER_SECRET": "not-the-secret"}
        import subprocess
        import sys

        out = subprocess.run([sys.executable, "-m", "connector.cli", "sync"], cwd=s.root, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 5, out.stderr
        assert "Traceback" not in out.stderr and "not-the-secret" not in out.stderr + out.stdout
        assert "invalid_client" in out.stderr or "authentication" in out.stderr.lower(), out.stderr


@pytest.mark.slow
def test_held_records_make_once_exit_6(tmp_path):
    with site(tmp_path, worked_seed()) as s:
        s.org.schema.get("Product2").field("ProvisioningType__c").picklist_values.append("Bundle")
        s.org.update("Product2", s.refs["plan"], {"ProvisioningType__c": "Bundle"})
        done = s.revsync("sync", "--once")
        assert done.code == 6, done
        assert "quarantine" in done.stderr and "revsync quarantine" in done.stderr
        assert "Traceback" not in done.stderr


def health(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as err:  # 503 while degraded
        return json.loads(err.read())


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_minutes_without_salesforce_end_in_the_state_of_a_run_without_them(tmp_path):
    sync = "interval_seconds = 1\nmax_backoff_seconds = 8\nlease_seconds = 30"
    # the clean run: the same org and the same late order, no outage
    with site(tmp_path / "clean", worked_seed(), sync=sync) as clean:
        add_activated_order(clean, "late")
        assert clean.revsync("sync", "--once").code == 0
        expected = salesforce_state(clean.org, clean.refs)

    port = free_port()
    server = f'[server]\nport = {port}\norg_ids = ["00D000000000001"]\n'
    with site(tmp_path / "outage", worked_seed(), sync=sync, extra=server) as s:
        relay = Outage(int(s.server.url.rsplit(":", 1)[1]))
        through(s, relay)
        cut = s.org.faults.add(Fault.call(relay.down, path="/queryAll", skip=3))  # mid-run, in the polling
        daemon = s.start("sync")
        try:
            wait_for(lambda: cut.fired == 1, 60, "the outage to start")
            started = time.monotonic()
            add_activated_order(s, "late")  # a change made while revsync cannot reach the org
            # ... and Salesforce's Outbound Message for it: stored and acknowledged all the same
            assert post_outbound(port, "00D000000000001", "Order", s.refs["late"], "04l000000000077AAA") == 200
            assert s.store_rows("SELECT count(*) FROM notifications WHERE processed_at IS NULL") == [(1,)]
            wait_for(lambda: health(port)["status"] == "degraded"
                     and any("unreachable" in r for r in health(port)["reasons"]), 90, "/health to say degraded")
            status = json.loads(s.revsync("status", "-f", "json").stdout)
            assert status["daemon"]["state"] == "degraded" and status["daemon"]["reason"], status
            time.sleep(max(0.0, 120 - (time.monotonic() - started)))
            assert daemon.poll() is None, "the daemon ended during the outage"
            relay.up()
            wait_for(lambda: salesforce_state(s.org, s.refs) == expected, 90, "the org to catch up", step=0.5)
            wait_for(lambda: health(port)["status"] == "ok", 30, "/health to be ok again")
            assert set(s.outbox_states()) == {"SUCCESS"}
            assert s.store_rows("SELECT count(*) FROM notifications WHERE processed_at IS NULL") == [(0,)]
        finally:
            out, err = kill(daemon, signal.SIGTERM)
            relay.down()
        assert daemon.returncode == 0, err
        assert "Traceback" not in err


def frozen_daemon_writes_nothing(tmp_path, store_url: str | None) -> None:
    sync = "interval_seconds = 1\nlease_seconds = 3"
    with site(tmp_path / "clean", worked_seed(), sync=sync) as clean:
        assert clean.revsync("sync", "--once").code == 0
        add_activated_order(clean, "late")
        assert clean.revsync("sync", "--once").code == 0
        expected = salesforce_state(clean.org, clean.refs)

    with site(tmp_path / "frozen", worked_seed(), sync=sync, store_url=store_url) as s:
        first = s.start("sync")
        # freeze the first daemon the moment its first subscription write arrives
        freeze = s.org.faults.add(Fault.call(lambda: os.kill(first.pid, signal.SIGSTOP), method="PATCH",
                                             path="/composite/sobjects/Subscription__c"))
        second = None
        try:
            wait_for(lambda: freeze.fired == 1, 120, "the first daemon's first write")
            time.sleep(4)  # its lease (3 s) runs out while it is frozen
            second = s.start("sync")  # takes the org over and writes everything, then a newer order
            wait_for(lambda: set(s.outbox_states()) == {"SUCCESS"}, 120, "the second daemon's writes")
            add_activated_order(s, "late")
            wait_for(lambda: salesforce_state(s.org, s.refs) == expected, 120, "the newer order's results",
                     step=0.5)
            resumed_at = len(s.org.request_log)
            os.kill(first.pid, signal.SIGCONT)
            out, err = first.communicate(timeout=120)
            assert first.returncode == 1, err
            assert "another sync daemon" in err, err
            frozen = f"(pid {first.pid})"
            assert [e for e in writes(s.org.request_log[resumed_at:]) if frozen in e.agent] == []  # nothing after it resumed
            assert any(frozen in e.agent for e in s.org.request_log[:resumed_at])  # (its requests are told apart)
            assert salesforce_state(s.org, s.refs) == expected  # nothing older written over newer
        finally:
            if first.poll() is None:
                os.kill(first.pid, signal.SIGCONT)
                kill(first)
            if second is not None:
                kill(second, signal.SIGTERM)


@pytest.mark.slow
def test_a_frozen_daemon_writes_nothing_after_its_lease_ran_out_sqlite(tmp_path):
    frozen_daemon_writes_nothing(tmp_path, None)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_frozen_daemon_writes_nothing_after_its_lease_ran_out_postgres(tmp_path):
    with postgres_store() as url:
        frozen_daemon_writes_nothing(tmp_path, url)


def long_pass_keeps_the_lease(tmp_path, store_url: str | None) -> None:
    with site(tmp_path, worked_seed(), sync="interval_seconds = 1\nlease_seconds = 3", store_url=store_url) as s:
        slow = s.org.faults.add(Fault.slow(6, path="/queryAll", skip=2))  # one pass lasts twice the lease
        first = s.start("sync")
        try:
            wait_for(lambda: slow.fired == 1, 60, "the slow call")
            time.sleep(3.5)  # past the lease the first daemon took at its start
            second = s.revsync("sync", "--once")
            assert second.code == 1, second
            assert "another sync daemon" in second.stderr, second
            assert first.poll() is None  # the first one goes on
        finally:
            out, err = kill(first, signal.SIGTERM)
        assert first.returncode == 0, err


@pytest.mark.slow
def test_a_pass_longer_than_the_lease_keeps_a_second_daemon_out_sqlite(tmp_path):
    long_pass_keeps_the_lease(tmp_path, None)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_pass_longer_than_the_lease_keeps_a_second_daemon_out_postgres(tmp_path):
    with postgres_store() as url:
        long_pass_keeps_the_lease(tmp_path, url)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_postgresql_restart_mid_run_is_waited_out_and_the_org_ends_as_without_it(tmp_path):
    sync = "interval_seconds = 1\nmax_backoff_seconds = 4\nlease_seconds = 30"
    with site(tmp_path / "clean", worked_seed(), sync=sync) as clean:
        assert clean.revsync("sync", "--once").code == 0
        expected = salesforce_state(clean.org, clean.refs)

    with postgres_store_of_own_role() as store, \
            site(tmp_path / "restart", worked_seed(), sync=sync, store_url=store.url) as s:
        # mid-run, in the polling: every connection of the daemon dropped, new ones refused
        cut = s.org.faults.add(Fault.call(store.down, path="/queryAll", skip=3))
        daemon = s.start("sync")
        try:
            wait_for(lambda: cut.fired == 1, 60, "the restart to start")
            time.sleep(8)  # a few backoffs against a server that refuses connections
            assert daemon.poll() is None, "the daemon ended while the server was restarting"
            store.up()
            wait_for(lambda: salesforce_state(s.org, s.refs) == expected, 90, "the org to catch up", step=0.5)
            wait_for(lambda: set(s.outbox_states()) == {"SUCCESS"}, 30, "every write to be recorded")
        finally:
            store.up()
            out, err = kill(daemon, signal.SIGTERM)
        assert daemon.returncode == 0, err
        assert "Traceback" not in err, err
        assert "the store is unavailable" in err, err  # the backoffs said why
