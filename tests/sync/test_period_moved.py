"""A fiscal period that moves in Salesforce is flagged for `revsync regenerate arr`; new periods are not."""
import logging

from sync_support import close, connect


def test_a_moved_period_asks_for_regenerate(tmp_path, monkeypatch, caplog):
    c = connect(tmp_path, monkeypatch)
    try:
        c.service.cycle()
        period = next(p for p in c.org.records("Period", include_deleted=True) if p["StartDate"] == "2024-12-01")
        c.later()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="connector.ingest"):
            c.org.update("Period", period["Id"], {"EndDate": "2024-12-28"}, seed=True)
            c.service.cycle()
        assert any("regenerate arr" in r.getMessage() and "moved" in r.getMessage() for r in caplog.records)
    finally:
        close(c)


def test_a_first_read_of_periods_asks_for_nothing(tmp_path, monkeypatch, caplog):
    c = connect(tmp_path, monkeypatch)
    try:
        with caplog.at_level(logging.WARNING, logger="connector.ingest"):
            c.service.cycle()
        assert not any("regenerate" in r.getMessage() for r in caplog.records)
    finally:
        close(c)
