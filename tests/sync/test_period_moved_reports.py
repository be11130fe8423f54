"""Issue 9: with the calendar read from Salesforce Period records, a period that moves makes the
reports built from ARR rows refuse until `revsync regenerate arr`; added periods do not."""
from __future__ import annotations

import pytest

from connector.errors import FatalError
from connector.jobs import regenerate_arr
from sync_support import close, connect


def test_a_moved_period_refuses_arr_reports_until_regenerated(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch)
    try:
        c.service.cycle()
        c.app.check_arr_rows_current()  # rows made on the Period records as read: nothing to refuse
        periods = {p["StartDate"]: p for p in c.org.records("Period", include_deleted=True)}
        c.later()
        # April 2023 now ends on the 29th and May starts on the 30th (a 4-4-5-like shift)
        c.org.update("Period", periods["2023-04-01"]["Id"], {"EndDate": "2023-04-29"}, seed=True)
        c.org.update("Period", periods["2023-05-01"]["Id"], {"StartDate": "2023-04-30"}, seed=True)
        c.service.cycle()
        with pytest.raises(FatalError) as refused:
            c.app.check_arr_rows_current()
        message = str(refused.value)
        assert "2023-04-01..2023-04-30" in message and "2023-04-01..2023-04-29" in message
        assert "revsync regenerate arr" in message
        c.app.refresh_calendar()
        regenerate_arr(c.app.store, c.app.runner.ctx)
        c.app.check_arr_rows_current()  # the rows follow the moved period now
    finally:
        close(c)
