"""The daemon's loop: one pass to quiescence, no lost trigger, outages and the API budget survived,
errors that need a person stop it, and the writer lease fences every request."""
from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest
from sync_support import close, connect, engine_orders, worked_seed

from connector.daemon import Daemon
from connector.errors import FatalError
from connector.lease import LeaseHeld, LeaseLost, WriterLease
from connector.salesforce.retry import RetryPolicy
from connector.sandbox.faults import Fault
from connector.store.repository import get_meta


def quote_only_seed() -> dict:
    """Two Closed Won opportunities with primary quotes and no orders (an org without automation)."""
    seed = worked_seed()
    seed.pop("Order", None)
    seed.pop("OrderItem", None)
    seed["QuoteLineItem"] = seed["QuoteLineItem"][:2]
    return seed


def no_wait(c) -> None:
    """Client retries without sleeping, two attempts (the daemon's own backoff is what is tested)."""
    policy = RetryPolicy(max_attempts=2, sleep=lambda _s: None)
    c.runtime.client._retry = policy
    c.runtime.client._auth._retry = policy


def state(c) -> dict:
    with c.app.store.connect() as conn:
        raw = get_meta(conn, "daemon_state")
    return json.loads(raw) if raw else {}


def test_one_pass_takes_in_the_orders_it_created_and_writes_their_results(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch, quote_only_seed(), sync={"create_orders_from_won_quotes": True})
    try:
        daemon = Daemon(c.service, c.clock, interval=dt.timedelta(hours=1), writer=c.runtime.writer)
        result = daemon.run(once=True, install_signals=False)
        assert result.cycles == 1 and not result.unfinished_rounds
        orders = c.org.records("Order")
        assert len(orders) == 2 and all(o["Status"] == "Activated" for o in orders)
        # read back and activated in the engine in the same pass, its results written
        assert sorted(engine_orders(c)) == sorted(o["Id"] for o in orders)
        subscriptions = c.org.records("Subscription__c")
        assert len(subscriptions) == 2
        assert c.org.records("ArrByPeriod__b") and c.org.records("ArrByPeriodByCustomer__b")
        assert result.left == {}
        # a second pass has nothing to do: nothing created, nothing written
        calls = c.calls
        Daemon(c.service, c.clock, interval=dt.timedelta(hours=1), writer=c.runtime.writer).run(
            once=True, install_signals=False)
        assert len(c.org.records("Order")) == 2 and len(c.org.records("Subscription__c")) == 2
        assert c.calls - calls == len(c.service.objects)  # one poll per object, nothing read back
    finally:
        close(c)


def test_a_trigger_that_arrives_during_a_cycle_starts_another_at_once(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch)
    try:
        daemon = Daemon(c.service, c.clock, interval=dt.timedelta(hours=1), writer=c.runtime.writer)
        passes = []
        real_cycle = c.service.cycle

        def cycle(**kw):
            passes.append(time.monotonic())
            if len(passes) == 1:
                daemon.notified("Opportunity", ["006000000000001AAA"])  # a message lands mid-cycle
            return real_cycle(**kw)

        c.service.cycle = cycle
        runner = threading.Thread(target=daemon.run, kwargs={"install_signals": False})
        runner.start()
        deadline = time.monotonic() + 30
        while len(passes) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        daemon.stopper.event.set()
        runner.join(timeout=30)
        assert len(passes) == 2, "the trigger that arrived during the first cycle was lost"
        assert passes[1] - passes[0] < 20  # not an hour's interval later
    finally:
        close(c)


def test_triggered_cycles_are_rate_limited():
    daemon = Daemon.__new__(Daemon)
    daemon.max_triggered_per_minute = 2
    import collections
    daemon._triggered = collections.deque([time.monotonic() - 70, time.monotonic() - 10, time.monotonic() - 5])
    hold = daemon._trigger_hold()
    assert 49 < hold <= 50  # the oldest of the two within the minute frees a slot in about 50 s
    daemon._triggered = collections.deque([time.monotonic() - 10])
    assert daemon._trigger_hold() == 0


def test_an_outage_is_waited_out_with_backoff_and_shown_as_degraded(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch)
    no_wait(c)
    try:
        from connector.metrics import Metrics

        metrics = Metrics()
        daemon = Daemon(c.service, c.clock, interval=dt.timedelta(hours=1), writer=c.runtime.writer,
                        metrics=metrics, max_backoff=dt.timedelta(seconds=40))
        c.org.faults.add(Fault.server_unavailable(times=None))
        waits, seen = [], []

        def sleep(seconds):
            waits.append(seconds)
            seen.append((state(c).get("state"), metrics.trouble))
            if len(waits) == 5:
                c.org.faults.clear()
            c.clock.advance(dt.timedelta(seconds=seconds))

        daemon._sleep = sleep
        orig_wait = daemon._wait_for_next
        daemon._wait_for_next = lambda: daemon.stopper.event.set() or orig_wait()
        daemon.run(install_signals=False)
        assert len(waits) == 5
        # 5 s, 10 s, 20 s, 40 s, 40 s (capped), each with jitter of × 0.5–1
        for wait, base in zip(waits, [5, 10, 20, 40, 40]):
            assert base * 0.5 <= wait <= base
        assert all(s == "degraded" and "503" in (t or "") for s, t in seen), seen
        assert state(c)["state"] == "ok" and metrics.trouble is None
        assert len(c.org.records("Subscription__c")) == 2  # caught up once Salesforce was back
        assert c.runtime.writer.left() == {}
    finally:
        close(c)


def test_the_api_limit_pauses_the_daemon_until_calls_free_up(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch)
    no_wait(c)
    try:
        daemon = Daemon(c.service, c.clock, interval=dt.timedelta(hours=1), writer=c.runtime.writer)
        c.org.faults.add(Fault.request_limit_exceeded(path="/queryAll", skip=1))
        waits = []

        def sleep(seconds):
            waits.append((seconds, state(c)))
            c.clock.advance(dt.timedelta(seconds=seconds))

        daemon._sleep = sleep
        daemon._wait_for_next = lambda: daemon.stopper.event.set()
        daemon.run(install_signals=False)
        (seconds, paused), = waits
        assert seconds == pytest.approx(3600, abs=1)
        assert paused["state"] == "paused" and "REQUEST_LIMIT_EXCEEDED" in paused["reason"]
        assert paused["next_attempt_at"] is not None
        assert state(c)["state"] == "ok" and len(c.org.records("Subscription__c")) == 2
    finally:
        close(c)


def test_a_spent_budget_lets_one_call_through_once_its_figure_is_old(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch, salesforce={"api_budget_share": "0.5"})
    try:
        client = c.runtime.client
        client.budget.observe("api-usage=9000/10000")
        from connector.salesforce.errors import ApiBudgetExhausted

        with pytest.raises(ApiBudgetExhausted):
            client.budget.check()
        c.clock.advance(dt.timedelta(hours=1, seconds=1))
        client.budget.check()  # an hour-old figure no longer blocks: the next answer refreshes it
    finally:
        close(c)


def test_a_refused_permission_stops_the_daemon(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch)
    no_wait(c)
    try:
        daemon = Daemon(c.service, c.clock, interval=dt.timedelta(hours=1), writer=c.runtime.writer)
        c.org.faults.add(Fault.error(403, "INSUFFICIENT_ACCESS_OR_READONLY", "no access", path="/queryAll"))
        daemon._sleep = lambda s: pytest.fail("a refused permission is not waited out")
        with pytest.raises(FatalError, match="INSUFFICIENT_ACCESS"):
            daemon.run(install_signals=False)
    finally:
        close(c)


class Ticks:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_lapsed_lease_taken_over_by_another_daemon_fences_every_request(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch)
    try:
        ticks = Ticks()
        mine = WriterLease(c.app.store, c.clock, dt.timedelta(seconds=60), monotonic=ticks)
        mine.hold()
        c.runtime.client.fence_with(mine.check)
        c.service.cycle()  # requests go while the lease is ours
        # this daemon is frozen for two minutes; another takes the lease over meanwhile
        ticks.now += 120
        c.clock.advance(dt.timedelta(seconds=120))
        other = WriterLease(c.app.store, c.clock, dt.timedelta(seconds=60))
        other.me = "elsewhere.example:4242"
        other.hold()
        calls = len(c.org.request_log)
        with pytest.raises(LeaseLost):
            c.runtime.writer.flush()
        with pytest.raises(LeaseLost):
            list(c.runtime.client.query("SELECT Id FROM Account"))
        assert len(c.org.request_log) == calls  # nothing reached Salesforce
        with pytest.raises(LeaseHeld):
            mine.hold()  # and it cannot take the lease back while the other daemon lives
    finally:
        close(c)


def test_a_lapsed_lease_nobody_took_goes_on(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch)
    try:
        ticks = Ticks()
        mine = WriterLease(c.app.store, c.clock, dt.timedelta(seconds=60), monotonic=ticks)
        mine.hold()
        ticks.now += 600  # frozen for ten minutes, but no other daemon came
        c.clock.advance(dt.timedelta(minutes=10))
        mine.check()  # the stored value is still this daemon's own: renewed, and it goes on
        assert mine.held
    finally:
        close(c)


def test_only_triggered_passes_that_take_nothing_in_count_against_the_limit(tmp_path, monkeypatch):
    from connector.sources.outbound import Notified, store_notifications

    c = connect(tmp_path, monkeypatch)
    try:
        daemon = Daemon(c.service, c.clock, interval=dt.timedelta(hours=1), writer=c.runtime.writer)
        daemon.run(once=True, install_signals=False)

        def triggered_pass(record_id: str, note: str) -> None:
            with c.app.store.begin() as conn:
                store_notifications(conn, [Notified(note, "Opportunity", record_id)], c.clock.now())
            daemon._trigger_at = time.monotonic()
            daemon.run(once=True, install_signals=False)

        c.later()
        c.org.update("Opportunity", c.refs["opp2"], {"Name": "Customer B plan (renewal talks)"})
        triggered_pass(c.refs["opp2"], "04l000000000001AAA")  # a real change: taken in
        assert daemon.taken_from_notifications == 1 and len(daemon._triggered) == 0
        triggered_pass(c.refs["opp2"], "04l000000000002AAA")  # replayed: nothing new
        triggered_pass("006000000000000AAA", "04l000000000003AAA")  # forged: no such record
        assert daemon.taken_from_notifications == 0 and len(daemon._triggered) == 2
    finally:
        close(c)
