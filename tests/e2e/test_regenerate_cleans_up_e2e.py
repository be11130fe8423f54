"""`revsync regenerate arr` after the org's fiscal calendar changes: once synced, both big objects hold
exactly the new calendar's rows (the old ones deleted by SOAP deleteByExample), as if the org had
always had the new calendar."""
from __future__ import annotations

import datetime as dt

import pytest
from e2e_support import salesforce_state, site, worked_seed

from connector.sandbox.faults import Fault

pytestmark = pytest.mark.slow
BIG = ("ArrByPeriod__b", "ArrByPeriodByCustomer__b")


def periods_445() -> list[tuple[str, str]]:
    """Two 4-4-5 fiscal years of week-based periods, from Sunday 2023-01-01."""
    out, start = [], dt.date(2023, 1, 1)
    for weeks in [4, 4, 5] * 8:
        end = start + dt.timedelta(weeks=weeks) - dt.timedelta(days=1)
        out.append((start.isoformat(), end.isoformat()))
        start = end + dt.timedelta(days=1)
    return out


def seed_445() -> dict:
    seed = worked_seed()
    months = sorted(seed["Period"], key=lambda p: p["StartDate"])
    for period, (start, end) in zip(months, periods_445()):
        period.update(StartDate=start, EndDate=end)
    return seed


def big_rows(state: dict) -> dict:
    return {big: state[big] for big in BIG}


def test_old_calendar_rows_leave_both_big_objects(tmp_path):
    with site(tmp_path / "always-445", seed_445()) as s:
        assert s.revsync("sync", "--once").code == 0
        expected = big_rows(salesforce_state(s.org, s.refs))
    with site(tmp_path / "changed", worked_seed()) as s:
        config = s.root / "config.toml"  # a short read timeout, so that a held answer is lost
        config.write_text(config.read_text().replace("consumer_key", "timeout_seconds = 1\nconsumer_key"))
        first = s.revsync("sync", "--once")
        assert first.code == 0, first
        monthly = big_rows(salesforce_state(s.org, s.refs))
        assert len(monthly["ArrByPeriod__b"]) == 26
        # the admin moves the org to a 4-4-5 calendar: every monthly Period changes
        months = sorted(s.org.records("Period"), key=lambda p: p["StartDate"])
        for period, (start, end) in zip(months, periods_445()):
            s.org.update("Period", period["Id"], {"StartDate": start, "EndDate": end}, seed=True)
        taken = s.revsync("sync", "--once")
        assert taken.code == 0, taken
        assert "regenerate arr" in taken.stderr
        regenerated = s.revsync("regenerate", "arr")
        assert regenerated.code == 0, regenerated
        # the first deleteByExample calls meet an unavailable org (503), then one's answer is lost
        # after the rows were deleted: the deletions are sent again, and deleting rows already gone
        # is fine
        s.org.faults.add(Fault.server_unavailable(path="/Soap/", times=2))
        lost = s.org.faults.add(Fault.lose_answer(path="/Soap/", delay=2.0))
        done = s.revsync("sync", "--once")
        assert done.code == 0, done
        got = big_rows(salesforce_state(s.org, s.refs))
        soap = [e for e in s.org.request_log if "/Soap/" in e.path]
    assert got == expected
    assert got != monthly  # the calendar did change the rows
    starts = {start for start, _ in periods_445()}
    assert all(r["StartDate__c"][:10] in starts for big in BIG for r in got[big])
    assert {e.status for e in soap} == {503, 200}
    assert lost.fired == 1
