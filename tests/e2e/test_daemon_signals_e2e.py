"""The looping daemon (`revsync sync`, short interval) killed mid-write loses and duplicates nothing;
SIGTERM finishes the batch in hand and exits 0."""
from __future__ import annotations

import signal
from collections import Counter

import pytest
from e2e_support import kill, large_seed, salesforce_state, site, wait_for, worked_seed

from connector.sandbox.faults import Fault

INDEX = {"ArrByPeriod__b": ("StartDate__c", "OrderProduct__c"),
         "ArrByPeriodByCustomer__b": ("Customer__c", "Subscription__c", "StartDate__c", "OrderProduct__c")}
#: where the kill lands: the collection upsert of subscriptions, or the first Bulk API 2.0 job
KILL_POINTS = {"Subscription__c": (r"/composite/sobjects/Subscription__c/", "PATCH"),
               "ArrByPeriod__b": (r"/jobs/ingest/\w+$", "GET")}


def pending(s, sobject: str) -> bool:
    rows = []
    try:
        rows = s.store_rows(f"SELECT count(*) FROM outbox WHERE state = 'PENDING' AND object = '{sobject}'")
    except Exception:  # no table yet, or the daemon holds the write lock
        return False
    return bool(rows and rows[0][0])


@pytest.fixture(scope="module")
def large_clean(tmp_path_factory):
    """The large seed synced by one `sync --once`, without faults or kills."""
    with site(tmp_path_factory.mktemp("large-clean"), large_seed()) as s:
        result = s.revsync("sync", "--once", timeout=90)
        assert result.code == 0, result
        yield salesforce_state(s.org, s.refs)


@pytest.mark.slow
@pytest.mark.parametrize("point", sorted(KILL_POINTS), ids=sorted(KILL_POINTS))
def test_kill_9_while_writing_then_restart(tmp_path, large_clean, point):
    path, method = KILL_POINTS[point]
    with site(tmp_path, large_seed(), sync="interval_seconds = 1") as s:
        # a slow answer keeps the call in flight long enough to kill the daemon in the middle of it;
        # Salesforce still completes the write the dead process never hears about
        s.org.faults.add(Fault.slow(1.5, method=method, path=path))
        daemon = s.start("sync")
        try:
            wait_for(lambda: pending(s, point), 60, f"{point} entries in flight")
        finally:
            kill(daemon, signal.SIGKILL)
        assert daemon.returncode == -signal.SIGKILL
        assert s.outbox_states().get("PENDING")

        restarted = s.revsync("sync", "--once", timeout=90)
        assert restarted.code == 0, restarted
        state = salesforce_state(s.org, s.refs)
        subs = Counter(r["ExternalId__c"] for r in s.org.records("Subscription__c"))
        assert len(subs) == 100 and set(subs.values()) == {1}
        for big, index in INDEX.items():
            rows = s.org.records(big)
            assert len({tuple(r[k] for k in index) for r in rows}) == len(rows) == 1200
        assert state == large_clean  # nothing missing, nothing extra
        assert not set(s.outbox_states()) & {"NEW", "PENDING", "FAILED"}


@pytest.mark.slow
def test_sigterm_finishes_the_batch_and_exits_zero(tmp_path, worked_run):
    with site(tmp_path, worked_seed(), sync="interval_seconds = 1") as s:
        s.org.faults.add(Fault.slow(1.0, method="PATCH", path=r"/composite/sobjects/Subscription__c/"))
        daemon = s.start("sync")
        try:
            wait_for(lambda: pending(s, "Subscription__c"), 30, "subscriptions in flight")
            out, err = kill(daemon, signal.SIGTERM)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.communicate()
        assert daemon.returncode == 0, err
        assert "stopping after the batch in hand" in err
        # the batch in hand was written whole: nothing in flight, nothing left, the clean run's state
        assert set(s.outbox_states()) == {"SUCCESS"}
        assert salesforce_state(s.org, s.refs) == worked_run["state"]
