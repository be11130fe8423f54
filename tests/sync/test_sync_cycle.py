"""Sync cycles against the in-process sandbox org seeded with SPEC section 7's worked example."""
from __future__ import annotations

import datetime as dt

import pytest

from sync_support import (SPEC_QUARTERS, SEEDED_AT, arr_rows, close, connect, counts, cursors, engine_orders, mirror,
                          quarters, worked_seed)

OBJECTS = ["Period", "Product2", "Account", "Opportunity", "Quote", "QuoteLineItem", "Order", "OrderItem"]


@pytest.fixture
def synced(tmp_path, monkeypatch):
    """The worked example after one cycle."""
    c = connect(tmp_path, monkeypatch)
    c.first = c.service.cycle()
    c.first_calls = c.calls
    yield c
    close(c)


def test_first_cycle_gives_the_worked_example(synced):
    c = synced
    assert [(r.object, r.taken, r.skipped, r.quarantined) for r in c.first.taken] == [
        ("Period", 24, 0, []), ("Product2", 2, 0, []), ("Account", 2, 0, []), ("Opportunity", 3, 0, []),
        ("Quote", 3, 0, []), ("QuoteLineItem", 3, 0, []), ("Order", 3, 0, []), ("OrderItem", 3, 0, [])]
    # Salesforce's activation order is the engine's: O-1, O-2, then the upsell O-3.
    assert c.first.activated == [c.refs["o1"], c.refs["o2"], c.refs["o3"]]
    assert engine_orders(c) == c.first.activated
    assert all(j.ok for j in c.first.jobs), [(j.kind, j.error) for j in c.first.jobs if not j.ok]
    assert quarters(c) == SPEC_QUARTERS

    rows = arr_rows(c)
    by_line = {}
    for r in rows:
        by_line.setdefault(r["order_product"], []).append((r["period_start"], r["opening_cmrr"], r["closing_cmrr"]))
    o1, o2, o3 = (by_line[c.refs[k]] for k in ("op001", "op002", "op003"))
    assert len(o1) == 13 and o1[0][1:] == (0, 1000) and o1[-1] == (dt.date(2024, 1, 1), 1000, 0)
    assert [x[1:] for x in o2] == [(0, 2000), (2000, 2000), (2000, 0)]
    assert o3[0] == (dt.date(2023, 4, 1), 0, 600) and o3[-1] == (dt.date(2024, 1, 1), 600, 0)
    # Owner is the Salesforce User (its name, and its Id), customer the Account, subscription the line
    # that started it.
    assert {(r["owner"], r["owner_id"]) for r in rows} == {("Chloe Ng", c.refs["chloe"])}
    assert {r["customer"] for r in rows} == {c.refs["a"], c.refs["b"]}
    assert {r["subscription"] for r in rows if r["order_product"] == c.refs["op003"]} == {c.refs["op001"]}
    assert {r["change_category"] for r in rows if r["order_product"] == c.refs["op003"]} == {"Upsell/Expansion"}


def test_first_cycle_api_calls(synced):
    # A first read is a COUNT and a query per object (Bulk above the threshold), then one query for
    # the items of the orders to activate.
    assert synced.first_calls == 2 * len(OBJECTS) + 1


def test_second_cycle_reads_nothing_new_in_one_call_per_object(synced):
    c = synced
    before = counts(c)
    c.later()
    second = c.service.cycle()
    assert [(r.taken, r.deleted, r.quarantined) for r in second.taken] == [(0, 0, [])] * len(OBJECTS)
    # the lookback re-reads every record (all stamped at the seed), and dedupe drops them
    assert [r.skipped for r in second.taken] == [24, 2, 2, 3, 3, 3, 3, 3]
    assert second.activated == [] and second.jobs == []
    assert c.calls - c.first_calls == len(OBJECTS)
    assert counts(c) == before
    assert quarters(c) == SPEC_QUARTERS


def test_cursor_never_passes_the_ticks_start(tmp_path, monkeypatch):
    """Salesforce's clock runs ahead of ours: the cursor stays at our tick's start, the next window re-reads."""
    c = connect(tmp_path, monkeypatch)
    try:
        c.clock.advance(dt.timedelta(minutes=-30))  # our tick starts before the records' SystemModstamp
        tick_start = c.clock.now()
        assert tick_start < SEEDED_AT
        c.service.cycle()
        assert set(cursors(c).values()) == {tick_start}
        before = counts(c)
        c.clock.advance(dt.timedelta(minutes=40))
        second = c.service.cycle()
        assert sum(r.taken for r in second.taken) == 0 and sum(r.skipped for r in second.taken) == 43
        # now the newest change seen is older than the tick: the cursor is the newest change
        assert set(cursors(c).values()) == {SEEDED_AT}
        assert counts(c) == before
    finally:
        close(c)


def test_cursor_is_the_newest_change_and_the_window_is_closed_at_its_start(tmp_path, monkeypatch):
    """Without a lookback, a record committed at the cursor's very instant is still read (`>=`, not `>`)."""
    c = connect(tmp_path, monkeypatch, sync={"lookback_seconds": 0})
    try:
        c.service.cycle()
        assert set(cursors(c).values()) == {SEEDED_AT}
        # Salesforce's clock has not moved: the new account shares the cursor's SystemModstamp.
        late = c.org.create("Account", {"Name": "Customer C"})
        c.clock.advance(dt.timedelta(minutes=1))
        second = c.service.cycle()
        account = next(r for r in second.taken if r.object == "Account")
        assert (account.taken, account.skipped) == (1, 2)
        assert mirror(c, "Account", late)[0]["Name"] == "Customer C"
    finally:
        close(c)


def test_a_change_after_the_first_cycle_is_taken_in(synced):
    c = synced
    c.later(5)
    c.org.update("Account", c.refs["a"], {"Name": "Customer A GmbH"})
    c.later()
    second = c.service.cycle()
    assert [(r.object, r.taken) for r in second.taken if r.taken] == [("Account", 1)]
    assert mirror(c, "Account", c.refs["a"])[0]["Name"] == "Customer A GmbH"
    with c.app.store.connect() as conn:
        from connector.store import repository as repo
        assert repo.load_accounts(conn)[c.refs["a"]].name == "Customer A GmbH"
    assert cursors(c)["Account"] == c.org_clock.now() - dt.timedelta(minutes=1)
    # activated orders are never activated twice, whatever changes around them
    assert second.activated == [] and len(engine_orders(c)) == 3


def test_deletes_show_through_query_all(synced):
    c = synced
    c.later(5)
    c.org.delete("Opportunity", c.refs["opp3"])  # its quote goes with it (master-detail)
    c.later()
    second = c.service.cycle()
    deleted = {r.object: r.deleted for r in second.taken if r.deleted}
    assert deleted["Opportunity"] == 1 and deleted["Quote"] == 1
    record, deleted = mirror(c, "Opportunity", c.refs["opp3"])
    assert deleted and record["IsDeleted"] is True
    assert mirror(c, "Quote", c.refs["q3"])[1] and not mirror(c, "Quote", c.refs["q1"])[1]
    # The engine never reverses what Salesforce activated.
    assert len(engine_orders(c)) == 3 and quarters(c) == SPEC_QUARTERS


def test_only_month_periods_make_the_fiscal_calendar(tmp_path, monkeypatch):
    seed = worked_seed()
    seed["Period"] += [
        {"Type": "Quarter", "StartDate": "2023-01-01", "EndDate": "2023-03-31", "Number": 1,
         "FullyQualifiedLabel": "Q1 FY2023"},
        {"Type": "Year", "StartDate": "2023-01-01", "EndDate": "2023-12-31", "Number": 2023,
         "FullyQualifiedLabel": "FY2023"}]
    c = connect(tmp_path, monkeypatch, seed)
    try:
        first = c.service.cycle()
        assert next(r for r in first.taken if r.object == "Period").taken == 24
        calendar = c.app.current_calendar()
        period = calendar.period_of(dt.date(2023, 2, 14))
        assert (period.start, period.end) == (dt.date(2023, 2, 1), dt.date(2023, 2, 28))
        assert quarters(c) == SPEC_QUARTERS
    finally:
        close(c)


def test_periods_decide_the_quarters(tmp_path, monkeypatch):
    """A fiscal year starting in February (Salesforce's Period records) moves the quarters."""
    seed = worked_seed()
    seed["Period"] = []
    start = dt.date(2022, 2, 1)
    for n in range(36):
        end = (start + dt.timedelta(days=32)).replace(day=1)
        seed["Period"].append({"Type": "Month", "StartDate": start.isoformat(),
                               "EndDate": (end - dt.timedelta(days=1)).isoformat(),
                               "Number": n % 12 + 1, "FullyQualifiedLabel": f"P{n}"})
        start = end
    c = connect(tmp_path, monkeypatch, seed)
    try:
        c.service.cycle()
        starts = [q[0] for q in quarters(c, 2023)]
        assert starts == [dt.date(2022, 11, 1), dt.date(2023, 2, 1), dt.date(2023, 5, 1), dt.date(2023, 8, 1),
                          dt.date(2023, 11, 1)]
    finally:
        close(c)
