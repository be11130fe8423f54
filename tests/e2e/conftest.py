"""Shared runs for the e2e tests (helpers live in e2e_support: conftest is not importable across folders)."""
from __future__ import annotations

import pytest
from e2e_support import salesforce_state, site, worked_seed


@pytest.fixture(scope="session")
def worked_run(tmp_path_factory):
    """SPEC section 7's worked example synced once by `revsync sync --once`, without faults."""
    with site(tmp_path_factory.mktemp("worked-clean"), worked_seed()) as s:
        result = s.revsync("sync", "--once")
        calls = [(e.method, e.path) for e in s.org.request_log]
        yield {"site": s, "result": result, "calls": calls, "state": salesforce_state(s.org, s.refs)}
