"""Faults Salesforce really produces end with the same Salesforce state as a run without them."""
from __future__ import annotations

import pytest
from e2e_support import salesforce_state, site, worked_seed

from connector.sandbox.faults import Fault

SUBSCRIPTIONS = "/composite/sobjects/Subscription__c/"
ACCOUNTS = "/composite/sobjects/Account/"


def sync_until_done(s, runs: int = 4) -> list:
    """`sync --once` until it exits 0 (a transient per-record failure waits for the next run)."""
    results = []
    for _ in range(runs):
        results.append(s.revsync("sync", "--once"))
        if results[-1].code == 0:
            return results
        assert results[-1].code == 4, results[-1]  # changes left, never a crash
    raise AssertionError(f"not done after {runs} runs:\n{results[-1]}")


@pytest.mark.slow
def test_transient_faults_end_in_the_clean_state(tmp_path, worked_run):
    with site(tmp_path, worked_seed()) as s:
        faults = [
            s.org.faults.add(Fault.server_unavailable(path="/queryAll", skip=2)),         # 503 on a read
            s.org.faults.add(Fault.session_expired(skip=6)),                              # new token mid-run
            s.org.faults.add(Fault.unable_to_lock_row(method="PATCH", path=SUBSCRIPTIONS)),  # whole call locked
            s.org.faults.add(Fault.lock_rows([1], method="PATCH", path=ACCOUNTS)),       # one record locked
            s.org.faults.add(Fault.partial_failure([2], method="PATCH", path=r"/jobs/ingest/")),  # bulk rows fail
        ]
        results = sync_until_done(s)
        assert [f for f in faults if f.fired != 1] == []
        assert len(results) > 1  # the per-record failures were left for the next run
        assert salesforce_state(s.org, s.refs) == worked_run["state"]
        assert set(s.outbox_states()) == {"SUCCESS"}
        # the Bulk API job with failed rows was sent again whole: three jobs for the first big object
        assert sum(1 for e in s.org.request_log if e.method == "POST" and e.path.endswith("/jobs/ingest")) == 3


@pytest.mark.slow
def test_request_limit_stops_cleanly_and_the_next_run_completes(tmp_path, worked_run):
    with site(tmp_path, worked_seed()) as s:
        s.org.faults.add(Fault.request_limit_exceeded(path="/queryAll", skip=4))
        stopped = s.revsync("sync", "--once")
        assert stopped.code not in (0, 4), stopped  # stopped, not "left to write"
        assert "REQUEST_LIMIT_EXCEEDED" in stopped.stderr and "cursor saved" in stopped.stderr, stopped
        assert "Traceback" not in stopped.stderr, stopped
        cursors = dict(s.store_rows("SELECT object, cursor FROM sync_cursors"))
        assert cursors and len(cursors) < 8, cursors  # what was read before the stop is kept
        assert s.org.records("Subscription__c") == []

        done = s.revsync("sync", "--once")
        assert done.code == 0, done
        assert salesforce_state(s.org, s.refs) == worked_run["state"]
