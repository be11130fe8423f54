"""The daemon with `[workers] enabled` on PostgreSQL against the sandbox org: `revsync sync --once`
reads the orders and leaves them (activation and jobs) to the workers, `revsync worker` does that
work, the next `sync --once` writes it back; the org ends as the single-process daemon leaves it."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_support import postgres_store, salesforce_state, site, worked_seed  # noqa: E402

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WORKERS = "\n[workers]\nenabled = true\nclaim_seconds = 5\npoll_seconds = 0.2\n"


def test_the_daemon_leaves_engine_work_to_workers_and_the_org_ends_the_same(tmp_path):
    with postgres_store() as single_url, site(tmp_path / "single", worked_seed(), store_url=single_url) as single:
        done = single.revsync("sync", "--once")
        assert done.code == 0, done
        expected = salesforce_state(single.org, single.refs)
        orders = single.store_rows("SELECT count(*) FROM orders")[0][0]
    assert orders and expected["ArrByPeriod__b"] and expected["Subscription__c"]

    with postgres_store() as url, site(tmp_path / "workers", worked_seed(), store_url=url, extra=WORKERS) as s:
        first = s.revsync("sync", "--once")
        assert first.code in (0, 4), first  # 4: changes not yet written back (the workers have not run)
        assert s.store_rows("SELECT count(*) FROM orders")[0][0] == 0, "the daemon activated nothing itself"
        assert s.store_rows("SELECT count(*) FROM activation_queue")[0][0] == orders
        worker = s.revsync("worker", "--until-idle", "--log-format", "text")
        assert worker.code == 0, worker
        assert s.store_rows("SELECT count(*) FROM activation_queue")[0][0] == 0
        assert s.store_rows("SELECT DISTINCT status, attempts FROM jobs") == [("succeeded", 1)]
        second = s.revsync("sync", "--once")
        assert second.code == 0, second
        assert salesforce_state(s.org, s.refs) == expected
