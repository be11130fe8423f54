"""A large file is validated by two processes, each taking the orders of half the accounts (issue 11):
the same tables, results and problems as one process, whatever the file and however the second ends."""
from __future__ import annotations

import os

import pytest
from hypothesis import given, strategies as st

from connector import importer
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.errors import ValidationFailed
from connector.importer import import_file, scan_file
from connector.store.db import open_store
from test_import_streamed import (  # noqa: F401 - `stores` is a fixture
    CLOCK, SETTINGS, _empty, _order, _runner, _same_results, _streamed, _tables, _whole, _write, engine_bench, stores,
)


class _Forks:
    """Two processes for any file (not only from `SPLIT_MIN_ORDERS` orders on, on two cores), and
    how many times the second was started."""

    def __init__(self, monkeypatch) -> None:
        self.started = 0
        real = importer._OtherHalf.start

        def start(*args, **kwargs):
            other = real(*args, **kwargs)
            self.started += other is not None
            return other

        monkeypatch.setattr(importer, "SPLIT_MIN_ORDERS", 0)
        monkeypatch.setattr(importer, "usable_cores", lambda: 2)
        monkeypatch.setattr(importer._OtherHalf, "start", start)


def _both_halves(doc: dict) -> None:
    halves = {importer._half_of(o) for o in doc["orders"]}
    assert halves == {0, 1}, "the file's accounts should fall in both halves"


@SETTINGS
@given(seed=st.integers(0, 2**32), lines=st.integers(8, 80), batch=st.integers(1, 9))
def test_two_processes_import_the_benchmark_mix_as_one_does(stores, tmp_path_factory, monkeypatch, seed, lines,
                                                            batch):
    whole, streamed = stores
    calendar = StandardFiscalCalendar(1 + seed % 12)
    doc = engine_bench.generate(lines, seed)
    path = _write(tmp_path_factory.mktemp("doc"), doc)
    for engine in stores:
        _empty(engine)
    expected = _whole(whole, path, calendar, batch)
    with monkeypatch.context() as m:
        forks = _Forks(m)
        got = _streamed(streamed, path, calendar, m, batch)
        again = _streamed(streamed, path, calendar, m, batch)  # everything already imported: skipped, in order
    assert forks.started == 2
    _same_results(got, expected)
    assert _tables(streamed) == _tables(whole)
    assert again.already_imported == expected.activated and not again.activated


def test_the_halves_are_the_accounts_and_both_are_used():
    doc = engine_bench.generate(200, 5)
    _both_halves(doc)
    by_account: dict[str, set[int]] = {}
    for order in doc["orders"]:
        by_account.setdefault(order["account"], set()).add(importer._half_of(order))
    assert all(len(halves) == 1 for halves in by_account.values())
    assert importer._half_of({"account": 7}) == importer._half_of("not an order") == 0


def _accounts_in_each_half(doc: dict) -> tuple[str, str]:
    first: dict[int, str] = {}
    for account in doc["accounts"]:
        first.setdefault(importer._half_of({"account": account["id"]}), account["id"])
    return first[0], first[1]


def _refused_as_by_one_process(stores, path, monkeypatch) -> list:
    """Import the file both ways: two processes refuse it with the whole-document path's problems,
    and nothing is imported. Returns the problems."""
    whole, streamed = stores
    calendar = StandardFiscalCalendar(1)
    for engine in stores:
        _empty(engine)
    with pytest.raises(ValidationFailed) as expected:
        _whole(whole, path, calendar)
    forks = _Forks(monkeypatch)
    with pytest.raises(ValidationFailed) as got:
        import_file(streamed, scan_file(path), calendar, EngineSettings(), CLOCK, _runner(streamed, calendar))
    assert forks.started == 1
    assert got.value.problems == expected.value.problems and got.value.problems
    assert _tables(streamed) == _tables(whole) and not _tables(streamed)["orders"]
    return got.value.problems


def test_a_subscription_made_in_both_halves_is_refused_as_by_one_process(stores, tmp_path, monkeypatch):
    """Each half's ledger sees only its own accounts' subscriptions: one id made by an order of each
    half would pass both. The ids' hashes find it, and the whole-document path says what is wrong."""
    doc = engine_bench.generate(40, 11)
    zero, one = _accounts_in_each_half(doc)
    doc["orders"] += [_order("X0", account=zero, subscription="SUB-SHARED"),
                      _order("X1", account=one, subscription="SUB-SHARED")]
    problems = _refused_as_by_one_process(stores, _write(tmp_path, doc), monkeypatch)
    assert "SUB-SHARED" in str(problems)


@pytest.mark.parametrize("half", [0, 1])
def test_a_problem_in_either_half_lists_the_same_problems_and_imports_nothing(stores, tmp_path, monkeypatch, half):
    doc = engine_bench.generate(40, 11)
    account = _accounts_in_each_half(doc)[half]
    doc["orders"].insert(3, _order("X1", account=account, start="2023-03-01", end="2023-02-28", term_months=None))
    problems = _refused_as_by_one_process(stores, _write(tmp_path, doc), monkeypatch)
    assert "order X1" in str(problems)


def test_when_the_other_process_dies_this_one_validates_its_half(stores, tmp_path, monkeypatch, caplog):
    whole, streamed = stores
    calendar = StandardFiscalCalendar(3)
    doc = engine_bench.generate(60, 17)
    _both_halves(doc)
    path = _write(tmp_path, doc)
    for engine in stores:
        _empty(engine)
    expected = _whole(whole, path, calendar, 4)
    forks = _Forks(monkeypatch)
    real = importer._Checking.orders

    def dies_half_way(self, conn, spill, half=None):
        if half == 1 and os.getpid() != parent:  # the forked process: some chunks kept, then killed
            spill.add([(0, "half-written", "x")])
            spill.flush()
            os.kill(os.getpid(), 9)
        return real(self, conn, spill, half)

    parent = os.getpid()
    monkeypatch.setattr(importer._Checking, "orders", dies_half_way)
    got = _streamed(streamed, path, calendar, monkeypatch, 4)
    assert forks.started == 1
    assert "stopped (exit code -9" in caplog.text
    _same_results(got, expected)
    assert _tables(streamed) == _tables(whole)


def test_the_other_process_is_gone_when_this_one_stops_first(stores, tmp_path, monkeypatch):
    """A problem in this process's half ends the pass at once: the other process is stopped and
    waited for, and the file takes the whole-document path."""
    whole, streamed = stores
    calendar = StandardFiscalCalendar(1)
    doc = engine_bench.generate(40, 11)
    doc["orders"].insert(0, _order("X1", account=_accounts_in_each_half(doc)[0], quantity="many"))
    path = _write(tmp_path, doc)
    for engine in stores:
        _empty(engine)
    children: list[int] = []
    real_fork = os.fork

    def fork():
        pid = real_fork()
        if pid:
            children.append(pid)
        return pid

    _Forks(monkeypatch)
    monkeypatch.setattr(importer.os, "fork", fork)
    with pytest.raises(ValidationFailed):
        import_file(streamed, scan_file(path), calendar, EngineSettings(), CLOCK, _runner(streamed, calendar))
    assert len(children) == 1
    with pytest.raises(ChildProcessError):  # already waited for: no zombie left
        os.waitpid(children[0], os.WNOHANG)


def test_a_store_connection_in_use_keeps_the_validation_in_one_process(stores, tmp_path, monkeypatch):
    """A connection checked out elsewhere would cross the fork (SQLite forbids using one on both
    sides): then this process validates every order alone, with the same result."""
    whole, streamed = stores
    calendar = StandardFiscalCalendar(2)
    path = _write(tmp_path, engine_bench.generate(30, 23))
    for engine in stores:
        _empty(engine)
    expected = _whole(whole, path, calendar, 4)
    forks = _Forks(monkeypatch)
    with streamed.connect():  # held for the whole import
        got = _streamed(streamed, path, calendar, monkeypatch, 4)
    assert forks.started == 0
    _same_results(got, expected)
    assert _tables(streamed) == _tables(whole)


def test_a_file_made_for_the_other_half_holds_only_what_the_other_process_kept():
    """The file is made here and written by the fork: nothing of this process's may be left
    buffered in it, or it would be written twice (by the fork, and here at the next seek)."""
    spill = importer._Spill()
    spill.open()
    pid = os.fork()
    if pid == 0:  # the fork keeps one chunk, as `_validate_other_half` does
        try:
            spill.add([(0, "activation", "digest")])
            spill.flush()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    written = os.pread(spill._file.fileno(), 1 << 16, 0)
    assert list(spill) == [(0, "activation", "digest")]
    assert os.pread(spill._file.fileno(), 1 << 16, 0) == written  # reading it wrote nothing more
    spill.close()


@pytest.mark.postgres
def test_on_postgresql_two_processes_import_as_one_does(tmp_path, monkeypatch):
    """The fork opens its own connection to the server (none crosses the fork), and the store ends
    as one process working alone leaves it."""
    from store.store_support import postgres_schema

    calendar = StandardFiscalCalendar(4)
    path = _write(tmp_path, engine_bench.generate(60, 29))
    with postgres_schema() as one_url, postgres_schema() as two_url:
        one, two = open_store(one_url), open_store(two_url)
        try:
            expected = _streamed(one, path, calendar, monkeypatch, 4)
            forks = _Forks(monkeypatch)
            got = _streamed(two, path, calendar, monkeypatch, 4)
            assert forks.started == 1
            _same_results(got, expected)
            assert _tables(two) == _tables(one)
        finally:
            one.dispose()
            two.dispose()
