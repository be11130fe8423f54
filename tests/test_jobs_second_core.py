"""An import works its jobs' rows out on the second core (`connector.jobs.RowsAhead`): a child
process works out each batch's rows while this process writes the next batch. The store ends
exactly as when one process does everything, whichever way the file is imported, whatever happens
to the child; the child never outlives the import, nor a parent that was killed."""
from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from connector import importer, jobs as jobs_module
from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.errors import TransientError
from connector.importer import import_document, import_file, load_file, read, scan_file
from connector.jobs import JobContext, JobRunner
from connector.store import repository as repo
from connector.store import schema as t
from connector.store.db import open_store
from connector.store.staging import CopyText, SpanRows, Staged, StagedSpans

CLOCK = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
CALENDAR = StandardFiscalCalendar(4)
BATCH = 12
_spec = importlib.util.spec_from_file_location(
    "engine_bench", Path(__file__).resolve().parents[1] / "bench" / "engine_bench.py")
engine_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(engine_bench)


@pytest.fixture(scope="module")
def document(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("second-core") / "doc.json"
    path.write_text(json.dumps(engine_bench.generate(400, 11)))
    return path


@pytest.fixture
def children(monkeypatch):
    """Every `RowsAhead` an import starts, as it was when the import stopped it."""
    started: list[jobs_module.RowsAhead] = []
    real = jobs_module.RowsAhead.__init__

    def noting(self, *args, **kwargs):
        real(self, *args, **kwargs)
        started.append(self)

    monkeypatch.setattr(jobs_module.RowsAhead, "__init__", noting)
    return started


@pytest.fixture
def answers(monkeypatch):
    """Every answer of a child, as the jobs received it: {kind: rows or the staged table}."""
    got: list[dict] = []
    real = jobs_module.RowsAhead.rows

    def noting(self, future):
        prepared = real(self, future)
        got.append(prepared)
        return prepared

    monkeypatch.setattr(jobs_module.RowsAhead, "rows", noting)
    return got


def _runner(engine, second_core: bool) -> JobRunner:
    runner = JobRunner(engine, JobContext(CALENDAR, EngineSettings()), CLOCK, batch_size=BATCH)
    runner.second_core = second_core
    runner.ahead_min_orders = 0
    return runner


def _whole(engine, path: Path, second_core: bool):
    text, source = load_file(path)
    return import_document(engine, read(text, source), source, CALENDAR, EngineSettings(), CLOCK,
                           _runner(engine, second_core), batch_size=BATCH)


def _streamed(engine, path: Path, second_core: bool):
    streamed = scan_file(path)
    assert streamed is not None
    return import_file(engine, streamed, CALENDAR, EngineSettings(), CLOCK, _runner(engine, second_core),
                       batch_size=BATCH)


def _tables(engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {table.name: sorted(tuple(r) for r in conn.execute(select(table)))
                for table in t.metadata.sorted_tables}


def _one_core(tmp_path: Path, path: Path):
    engine = open_store(f"sqlite:///{tmp_path / 'one-core.db'}")
    result = _whole(engine, path, second_core=False)
    tables = _tables(engine)
    engine.dispose()
    return result, tables


@pytest.mark.parametrize("way", [_whole, _streamed], ids=["whole", "streamed"])
def test_the_child_works_out_the_rows_and_the_store_ends_the_same(tmp_path, document, children, answers, way):
    expected, expected_tables = _one_core(tmp_path, document)
    assert not children
    engine = open_store(f"sqlite:///{tmp_path / 'two-cores.db'}")
    result = way(engine, document, second_core=True)
    tables = _tables(engine)
    with engine.connect() as conn:  # the staging file is attached to no connection left in the pool
        assert "revsync_staged" not in [r[1] for r in conn.exec_driver_sql("PRAGMA database_list")]
    engine.dispose()
    # on SQLite every kind's rows came through the staging file, which is gone with the child; the
    # ARR rows as spans the store expanded
    assert answers and all(isinstance(rows, StagedSpans if kind == "arr_by_period" else Staged)
                           for answer in answers for kind, rows in answer.items())
    assert {kind for answer in answers for kind in answer} == {"subscription_metrics", "order_metrics",
                                                               "arr_by_period"}
    assert not children[0].staging.parent.exists()
    assert len(children) == 1
    (child,) = children
    batches = -(-len(result.activated) // BATCH)
    assert batches > 10 and child.batches == batches and not child.broken  # every batch's rows came from it
    assert result.activated == expected.activated
    assert list(result.jobs) == list(expected.jobs) and all(o.ok for o in result.jobs)
    assert tables == expected_tables
    assert len(tables["arr_rows"]) > 5000 and len(tables["order_metrics"]) > 1000 and tables["line_metrics"]
    assert child._process.returncode == 0  # it ended by itself once its input did


def test_a_child_that_dies_costs_time_not_rows(tmp_path, document, children, monkeypatch):
    """The child is killed after its third batch: the jobs work the rest of the rows out here."""
    expected, expected_tables = _one_core(tmp_path, document)
    real = jobs_module.RowsAhead.rows
    killed = []

    def killed_after_three(self, future):
        prepared = real(self, future)
        if self.batches == 3 and not killed:
            killed.append(True)
            os.kill(self.pid, signal.SIGKILL)
            self._process.wait()
        return prepared

    monkeypatch.setattr(jobs_module.RowsAhead, "rows", killed_after_three)
    engine = open_store(f"sqlite:///{tmp_path / 'two-cores.db'}")
    result = _streamed(engine, document, second_core=True)
    tables = _tables(engine)
    engine.dispose()
    (child,) = children
    # the batches handed to it after the third (up to `HELD_MAX` of them): their rows may have
    # come back before the kill
    assert child.broken and 3 <= child.batches <= 3 + jobs_module.HELD_MAX
    assert list(result.jobs) == list(expected.jobs) and all(o.ok for o in result.jobs)
    assert tables == expected_tables


def _commits(engine) -> list[object]:
    """Every commit of a transaction of this store's connections, from now on."""
    seen: list[object] = []
    event.listen(engine, "commit", seen.append)
    return seen


def test_each_batch_commits_once_with_the_jobs_of_the_batches_before(tmp_path, document, children):
    """The jobs of held batches whose rows have come back run in the transaction that writes the
    next batch (one commit per batch, not two), and the store ends as on one core."""
    expected, expected_tables = _one_core(tmp_path, document)
    engine = open_store(f"sqlite:///{tmp_path / 'two-cores.db'}")
    commits = _commits(engine)
    result = _streamed(engine, document, second_core=True)
    tables = _tables(engine)
    engine.dispose()
    batches = -(-len(result.activated) // BATCH)
    assert batches > 10
    # a commit per batch, the catalogue's, and the jobs of the batches still held at the end (up
    # to `HELD_MAX` + 1); two per batch before
    assert len(commits) <= batches + 1 + jobs_module.HELD_MAX + 1 + 2
    assert list(result.jobs) == list(expected.jobs) and all(o.ok for o in result.jobs)
    assert tables == expected_tables


@pytest.mark.parametrize("fails", ["once", "always"])
def test_a_job_that_fails_in_the_batchs_transaction_is_rolled_back_to_its_savepoint(tmp_path, document, children,
                                                                                    monkeypatch, fails):
    """A held batch's job fails in the transaction writing the next batch: what its jobs wrote is
    rolled back to the savepoint, the next batch's orders are committed all the same, and the
    batch's jobs run again after the commit as they always did (together, then kind by kind, then
    job by job): the store ends as on one core, or, if the job fails again, with that job failed."""
    expected, expected_tables = _one_core(tmp_path, document)
    victim = expected.activated[3 * BATCH + 1]  # in the fourth batch
    real = jobs_module.JOBS["order_metrics"]
    raised: list[str] = []

    def failing(conn, orders, ctx, prepared=None):
        # its rows written (after subscription_metrics has written the batch's), then it fails
        real(conn, orders, ctx) if prepared is None else real(conn, orders, ctx, prepared)
        if victim in orders and (fails == "always" or prepared is not None):
            raised.append("in the transaction" if prepared is not None else "after it")
            raise RuntimeError("order metrics went wrong")

    monkeypatch.setitem(jobs_module.JOBS, "order_metrics", failing)
    engine = open_store(f"sqlite:///{tmp_path / 'two-cores.db'}")
    result = _streamed(engine, document, second_core=True)
    tables = _tables(engine)
    engine.dispose()
    assert raised[0] == "in the transaction" and "after it" not in raised[:1]
    assert result.activated == expected.activated
    if fails == "once":
        assert raised == ["in the transaction"]
        assert list(result.jobs) == list(expected.jobs) and all(o.ok for o in result.jobs)
        assert tables == expected_tables
        return
    # run again after the commit: together, the kind, then the victim's job alone, which fails
    assert raised == ["in the transaction", "after it", "after it", "after it"]
    failed = [o for o in result.jobs if not o.ok]
    assert [(o.order_id, o.kind) for o in failed] == [(victim, "order_metrics")]
    assert "order metrics went wrong" in (failed[0].error or "")
    assert [(o.order_id, o.kind) for o in result.jobs] == [(o.order_id, o.kind) for o in expected.jobs]
    victim_lines = {r[0] for r in tables["order_lines"] if r[2] == victim}
    assert victim_lines and not [r for r in tables["order_metrics"] if r[0] in victim_lines]
    assert [r for r in tables["line_metrics"] if r[0] in victim_lines]  # its other jobs are done
    # every other table as on one core
    for name in ("orders", "order_lines", "line_segments", "items", "arr_rows", "line_metrics", "item_metrics"):
        assert tables[name] == expected_tables[name], name


def test_an_import_stopped_midway_stops_the_child_and_is_finished_by_importing_again(tmp_path, document, children,
                                                                                       monkeypatch):
    """Another process activates orders while the file is imported: the import stops, the child
    with it; the batches written last have their jobs pending (they run once the child's rows are
    back, up to `HELD_MAX` batches behind); importing again finishes everything as one
    uninterrupted import leaves it."""
    _, expected_tables = _one_core(tmp_path, document)
    real = repo.next_order_seq

    def moved_on_at_the_fifth_batch(conn):
        written = conn.execute(select(func.count()).select_from(t.orders)).scalar()
        return real(conn) + (1 if written == 4 * BATCH else 0)

    monkeypatch.setattr(importer.repo, "next_order_seq", moved_on_at_the_fifth_batch)
    engine = open_store(f"sqlite:///{tmp_path / 'two-cores.db'}")
    with pytest.raises(TransientError, match="other orders were activated"):
        _streamed(engine, document, second_core=True)
    assert children[0]._process.returncode == 0
    with engine.connect() as conn:
        written = set(conn.execute(select(t.orders.c.id)).scalars())
        pending = set(conn.execute(select(t.jobs.c.order_id).where(t.jobs.c.status == t.JobStatus.PENDING)).scalars())
        in_order = list(conn.execute(select(t.orders.c.id).order_by(t.orders.c.seq)).scalars())
    assert len(written) == 4 * BATCH and pending <= written
    # whole batches, the last ones written, at least the last (handed to the child just before the
    # import stopped: its rows are not back yet)
    assert len(pending) % BATCH == 0 and BATCH <= len(pending) <= jobs_module.HELD_MAX * BATCH
    assert pending == set(in_order[-len(pending):])
    monkeypatch.setattr(importer.repo, "next_order_seq", real)
    again = _streamed(engine, document, second_core=True)
    assert len(again.already_imported) == 4 * BATCH and not again.failed_jobs
    assert _tables(engine) == expected_tables
    # the second import had jobs pending: it runs every job after its last batch, and a child of
    # its own works their rows out (the first's batches left pending, then all of its own)
    with engine.connect() as conn:
        orders = conn.execute(select(func.count()).select_from(t.orders)).scalar()
    left = orders - 4 * BATCH + len(pending)  # the orders whose jobs ran after the second import's last batch
    assert len(children) == 2 and not children[1].broken
    assert children[1].batches == -(-left // BATCH) > 1
    engine.dispose()


def _all_pending(tmp_path: Path, path: Path):
    """A store with the document imported and every job left pending, as when workers are to run
    them, or the importing process stopped before it ran them."""
    engine = open_store(f"sqlite:///{tmp_path / 'pending.db'}")
    runner = _runner(engine, second_core=False)
    runner.deferred = True
    text, source = load_file(path)
    result = import_document(engine, read(text, source), source, CALENDAR, EngineSettings(), CLOCK, runner,
                             batch_size=BATCH)
    assert result.activated and not list(result.jobs)
    return engine, len(result.activated)


@pytest.mark.parametrize("run", ["run_pending", "retry_failed"])
def test_jobs_run_later_work_their_rows_out_on_the_child_too(tmp_path, document, children, run):
    """The daemon's run of the pending jobs of a large ingest (`run_pending`), and `revsync jobs
    retry` of many failed ones (`retry_failed`): the child works out every batch's rows, and the
    store ends as the import of one process leaves it."""
    expected, expected_tables = _one_core(tmp_path, document)
    engine, orders = _all_pending(tmp_path, document)
    if run == "retry_failed":
        with engine.begin() as conn:
            conn.execute(t.jobs.update().values(status=t.JobStatus.FAILED, last_error="OperationalError: disk full"))
    assert not children
    outcomes = getattr(_runner(engine, second_core=True), run)()
    tables = _tables(engine)
    engine.dispose()
    (child,) = children
    assert child.batches == -(-orders // BATCH) > 10 and not child.broken
    assert child._process.returncode == 0
    assert list(outcomes) == list(expected.jobs) and all(o.ok for o in outcomes)
    assert tables == expected_tables


def test_a_run_whose_lease_is_lost_midway_stops_the_child(tmp_path, document, children):
    """The fence says the work is another process's now, at the third batch: the run stops there,
    the child with it, and the batches not run keep their jobs pending."""
    engine, orders = _all_pending(tmp_path, document)
    runner = _runner(engine, second_core=True)
    fenced: list[int] = []

    def fence(conn) -> None:
        fenced.append(1)
        if len(fenced) == 3:
            raise jobs_module.FenceLost("another process holds the lease now")

    runner.fence = fence
    with pytest.raises(jobs_module.FenceLost):
        runner.run_pending()
    (child,) = children
    assert child._process.returncode == 0  # stopped, once its input ended
    with engine.connect() as conn:
        done = set(conn.execute(select(t.jobs.c.order_id).where(t.jobs.c.status == t.JobStatus.SUCCEEDED)).scalars())
        pending = set(conn.execute(select(t.jobs.c.order_id).where(t.jobs.c.status == t.JobStatus.PENDING)).scalars())
    engine.dispose()
    assert len(done) == 2 * BATCH and len(pending) == orders - 2 * BATCH and not done & pending


@pytest.mark.parametrize("case", ["small import", "one core"])
def test_small_imports_and_one_core_start_no_child(tmp_path, document, children, monkeypatch, case):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    runner = _runner(engine, second_core=True)
    if case == "small import":
        runner.ahead_min_orders = 10_000  # more orders than the file has
    else:
        monkeypatch.setattr(jobs_module.os, "sched_getaffinity", lambda pid: {0})
    streamed = scan_file(document)
    assert streamed is not None
    result = import_file(engine, streamed, CALENDAR, EngineSettings(), CLOCK, runner, batch_size=BATCH)
    assert result.activated and not result.failed_jobs
    engine.dispose()
    assert not children


_ORPHAN = textwrap.dedent("""
    import json
    import time
    from connector.engine.fiscal import StandardFiscalCalendar
    from connector.engine.settings import EngineSettings
    from connector.jobs import JobContext, RowsAhead

    ahead = RowsAhead(JobContext(StandardFiscalCalendar(1), EngineSettings()), "sqlite")
    assert ahead.rows(ahead.submit([], {})) == {} and ahead.batches == 1  # the child is up, and answers
    print(json.dumps([ahead.pid, str(ahead.staging)]), flush=True)
    time.sleep(600)
""")


def test_a_child_whose_parent_is_killed_exits_and_removes_the_staging_folder(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(_ORPHAN)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True, env=env) as parent:
        try:
            child_pid, staging_file = json.loads(parent.stdout.readline())
            assert _alive(child_pid) and Path(staging_file).exists()
            parent.kill()
            parent.wait()
            deadline = time.monotonic() + 20
            while _alive(child_pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not _alive(child_pid), "the child outlived its killed parent"
            assert not Path(staging_file).parent.exists(), "the killed parent's staging folder is left"
        finally:
            parent.kill()


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped by init, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def job_threads(monkeypatch):
    """The name of the thread each batch's jobs ran on."""
    names: list[str] = []
    real = JobRunner._run_held

    def noting(self, ahead, held):
        names.append(threading.current_thread().name)
        return real(self, ahead, held)

    monkeypatch.setattr(JobRunner, "_run_held", noting)
    return names


@pytest.mark.postgres
@pytest.mark.parametrize("way", [_whole, _streamed], ids=["whole", "streamed"])
def test_on_postgresql_the_child_works_out_the_same_rows(tmp_path, document, children, answers, job_threads, way):
    """PostgreSQL stores dates as dates, not text: the child encodes for the store it works for.
    Each batch's jobs run on a thread of their own while the next batch is written."""
    from store.store_support import postgres_schema

    _, expected_tables = _one_core(tmp_path, document)
    with postgres_schema() as url:
        engine = open_store(url)
        result = way(engine, document, second_core=True)
        tables = _tables(engine)
        engine.dispose()
    assert len(job_threads) == -(-len(result.activated) // BATCH)
    assert all(name.startswith("revsync-jobs") for name in job_threads)
    assert list(result.jobs) and all(o.ok for o in result.jobs)
    (child,) = children
    assert child.batches == -(-len(result.activated) // BATCH) and not child.broken
    # PostgreSQL copies the rows the child sends back in COPY's text format, as they are, and
    # expands the ARR spans sent with the periods they reach
    assert child.staging is None and answers
    assert all(isinstance(rows, SpanRows if kind == "arr_by_period" else CopyText)
               for answer in answers for kind, rows in answer.items())
    assert {kind for answer in answers for kind in answer} == {"subscription_metrics", "order_metrics",
                                                               "arr_by_period"}
    for table in ("arr_rows", "order_metrics", "line_metrics", "item_metrics", "account_metrics", "orders"):
        assert tables[table] == expected_tables[table], table


@pytest.mark.postgres
def test_on_postgresql_an_import_stopped_midway_waits_for_the_jobs_in_flight(tmp_path, document, children,
                                                                              monkeypatch):
    """The import stops while the jobs of the batch before run on their thread: they finish (none
    is cut off half-done), the batches after keep their jobs pending, and importing again finishes
    everything as one uninterrupted import leaves it."""
    from store.store_support import postgres_schema

    _, expected_tables = _one_core(tmp_path, document)
    real = repo.next_order_seq

    def moved_on_at_the_fifth_batch(conn):
        written = conn.execute(select(func.count()).select_from(t.orders)).scalar()
        return real(conn) + (1 if written == 4 * BATCH else 0)

    # each batch's jobs run a batch behind, whenever the child's rows come back: the same batches
    # done and pending at every run of the test
    monkeypatch.setattr(jobs_module, "HELD_MAX", 1)
    monkeypatch.setattr(jobs_module, "_answered", lambda held: False)
    with postgres_schema() as url:
        engine = open_store(url)
        monkeypatch.setattr(importer.repo, "next_order_seq", moved_on_at_the_fifth_batch)
        with pytest.raises(TransientError, match="other orders were activated"):
            _streamed(engine, document, second_core=True)
        with engine.connect() as conn:
            statuses = {s: set(ids) for s, ids in _job_orders_by_status(conn).items()}
        monkeypatch.setattr(importer.repo, "next_order_seq", real)
        again = _streamed(engine, document, second_core=True)
        tables = _tables(engine)
        engine.dispose()
    # batches 1-3 done (the third's run was in flight when the import stopped); the fourth's pending
    assert len(statuses["succeeded"]) == 3 * BATCH and len(statuses["pending"]) == BATCH
    assert set(statuses) == {"succeeded", "pending"}
    assert len(again.already_imported) == 4 * BATCH and not again.failed_jobs
    for table in ("arr_rows", "order_metrics", "line_metrics", "item_metrics", "account_metrics", "orders"):
        assert tables[table] == expected_tables[table], table


def _job_orders_by_status(conn) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for status, order_id in conn.execute(select(t.jobs.c.status, t.jobs.c.order_id)):
        out.setdefault(str(status.value if hasattr(status, "value") else status), []).append(order_id)
    return out


def _with_periods(engine) -> None:
    """Salesforce's monthly Period records, taken in, over the document's dates."""
    rows = []
    for n in range(12 * 30):
        year, month = 2015 + n // 12, 1 + n % 12
        start = dt.date(year, month, 1)
        end = (dt.date(year + (month == 12), month % 12 + 1, 1)) - dt.timedelta(days=1)
        rows.append({"id": f"0260000000{n:08d}", "start": start, "end": end, "fiscal_year": year,
                     "quarter": (month - 1) // 3 + 1, "label": f"{start:%B} FY{year}"})
    with engine.begin() as conn:
        conn.execute(t.fiscal_periods.insert(), rows)


def test_the_salesforce_calendar_reaches_the_child_as_the_periods_it_read(tmp_path, document, children):
    """The calendar of Period records reads them from the store when first needed: the child,
    which touches no store, gets the periods as read (a store's engine cannot be sent to it)."""
    from connector.ingest import StoreCalendar

    out = []
    for second_core in (False, True):
        engine = open_store(f"sqlite:///{tmp_path / f'{second_core}.db'}")
        _with_periods(engine)
        runner = JobRunner(engine, JobContext(StoreCalendar(engine), EngineSettings()), CLOCK, batch_size=BATCH)
        runner.second_core, runner.ahead_min_orders = second_core, 0
        streamed = scan_file(document)
        assert streamed is not None
        result = import_file(engine, streamed, StoreCalendar(engine), EngineSettings(), CLOCK, runner,
                             batch_size=BATCH)
        assert not result.failed_jobs
        out.append(_tables(engine))
        engine.dispose()
    (child,) = children
    assert child.batches > 10 and not child.broken
    assert out[1] == out[0] and len(out[0]["arr_rows"]) > 5000


def test_the_childs_process_loads_no_store():
    """It runs `connector.job_rows`, which works rows out from lines alone: no SQLAlchemy, no
    pydantic (a lighter process, about a third of the command's memory at start)."""
    loaded = subprocess.run([sys.executable, "-c", "import sys, connector.job_rows; print(sorted(sys.modules))"],
                            capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}).stdout
    for library in ("sqlalchemy", "pydantic", "connector.store.repository", "connector.jobs"):
        assert f"'{library}'" not in loaded, library


def test_the_working_directory_cannot_stand_in_for_the_childs_code(tmp_path, document, children, monkeypatch):
    """An import run from a folder that holds a `connector` package of its own still runs this
    checkout's code in the child."""
    decoy = tmp_path / "work" / "connector"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise ImportError('not the connector the import runs')\n")
    monkeypatch.chdir(decoy.parent)
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    result = _streamed(engine, document, second_core=True)
    engine.dispose()
    (child,) = children
    assert not result.failed_jobs
    assert child.batches == -(-len(result.activated) // BATCH) and not child.broken


def test_an_import_goes_on_writing_while_the_child_works_and_waits_only_when_enough_batches_are_held():
    """`SavedJobs._ready`: the held batches whose rows are back run, oldest first, up to the first
    still being worked out; beyond `HELD_MAX` held, the oldest run whatever (waiting for them)."""
    def held(name: str, back: bool | None) -> tuple:
        future = None
        if back is not None:
            future = jobs_module._Answer(0)
            if back:
                future.set_result({})
        return [name], {}, {}, future

    jobs = jobs_module.SavedJobs.__new__(jobs_module.SavedJobs)
    jobs._held = [held("a", True), held("b", None), held("c", False), held("d", True)]
    assert [h[0] for h in jobs._ready()] == [["a"], ["b"]]  # c is still being worked out: d waits behind it
    assert [h[0] for h in jobs._held] == [["c"], ["d"]]
    jobs._held = [held(str(n), False) for n in range(jobs_module.HELD_MAX + 2)]
    assert [h[0] for h in jobs._ready()] == [["0"], ["1"]]  # the two beyond HELD_MAX, oldest first
    assert len(jobs._held) == jobs_module.HELD_MAX
    jobs._held[0][3].set_result({})
    assert [h[0] for h in jobs._ready()] == [["2"]]
