"""Background jobs after activation (SPEC section 3): credit review, subscription metrics, order
metrics, ARR by period. Each runs in its own transaction, is recorded with status, attempts and
error, and changes nothing when run again on an order it has already processed.
"""
from __future__ import annotations

import datetime as dt
import functools
import gc
import logging
import os
import pickle
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Iterable, Iterator, Sequence, overload

from sqlalchemy import Connection, Engine, and_, or_, select, update

from connector import job_rows
from connector.clock import Clock
from connector.engine.arr_by_period import arr_rows
from connector.engine.credits import review_credits
from connector.engine.evergreen import extend_line, horizon as evergreen_horizon
from connector.engine.fiscal import FiscalCalendar
from connector.engine.settings import EngineSettings
from connector.projections import account_values, arr_rows_of_line, item_values
from connector.store import db, repository as repo, staging
from connector.store.staging import CopyText, SpanRows, Staged, StagedSpans
from connector.writers.outbox import BIG_DELETE, BIG_OBJECTS, RECORD_OBJECTS, enqueue
from connector.store import schema as t

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class JobContext:
    """What every job needs: the calendar and settings in force, and whether results go to Salesforce."""

    calendar: FiscalCalendar
    settings: EngineSettings
    #: with an org configured, jobs put their results in the outbox in their own transaction
    write_back: bool = False
    #: the clock seam: MRR/ARR written to Salesforce are taken as of its today
    clock: Clock | None = None


Orders = dict[str, "repo.StoredOrder"]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Bulk work with CPython's cyclic garbage collector off, back on (as it was) after.

    An import allocates millions of small objects that live until it ends (lines, segments,
    rows): the collector traverses them again and again, about a fifth of a large import's
    time (issue 11), and frees almost nothing, the engine's records holding no cycles. Objects
    are still freed by reference counting as they are released; cycles wait for the next
    collection after the work. Nested uses leave it to the outermost.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


#: a job's rows worked out beforehand, in their stored form: a list, or, from the second core's
#: process, a table of the staging file (SQLite) or COPY text (PostgreSQL): `connector.store.staging`;
#: None: not worked out
Prepared = list | Staged | StagedSpans | SpanRows | CopyText | None


def credit_review(conn: Connection, orders: Orders, ctx: JobContext) -> None:
    """Draw prepaid credit for the credit-eligible lines of each order, once per order, in order."""
    # Reviewed orders are those with drawdowns, and those whose review already succeeded even
    # if it drew nothing (an empty balance): a grant imported later is not drawn by a re-run.
    eligible = [o.id for o in orders.values() if o.credit_eligible()]
    if not eligible:
        return  # most orders: nothing to review, no query
    done = repo.orders_with_drawdowns(conn, eligible) | repo.orders_with_job(conn, eligible,
                                                                             "credit_review", t.JobStatus.SUCCEEDED)
    todo = [orders[o] for o in eligible if o not in done]
    if not todo:
        return
    balances = repo.credit_balances(conn, [o.account for o in todo])
    for order in todo:
        drawdowns = review_credits(order.id, order.account, order.currency, [l for _, l in order.lines], balances)
        for d in drawdowns:
            balances[(d.account, d.currency)] -= d.amount
        repo.save_drawdowns(conn, drawdowns, {l.id: pk for pk, l in order.lines})


def _rows(kind: str, orders: Orders, ctx: JobContext, store: Engine | Connection,
          skip: Collection[int] = ()) -> list[tuple]:
    """The rows a job of this kind writes for these orders' lines (but those in `skip`), in the
    store's form: worked out by `connector.job_rows`, as the second core's process does."""
    lines = [(pk, line, o.currency) for o in orders.values() for pk, line in o.lines if pk not in skip]
    return job_rows.rows(kind, lines, ctx.calendar, ctx.settings.order_metrics, store.dialect.name)


def subscription_metrics(conn: Connection, orders: Orders, ctx: JobContext, prepared: Prepared = None) -> None:
    """Each line's MRR and TCV, and the TCV of the items they provision."""
    repo.replace_stored_line_metrics(conn, _rows("subscription_metrics", orders, ctx, conn) if prepared is None
                                     else prepared)
    items = sorted({item for o in orders.values() for item in o.items()})
    repo.refresh_item_metrics(conn, items)
    if ctx.write_back:
        enqueue_items(conn, items, sorted({o.account for o in orders.values()}), ctx)


def order_metrics_job(conn: Connection, orders: Orders, ctx: JobContext, prepared: Prepared = None) -> None:
    """Zuora-style order metrics of each line (tcb from its billing schedule)."""
    rows = _rows("order_metrics", orders, ctx, conn) if prepared is None else prepared
    repo.replace_stored_order_metrics(conn, [pk for o in orders.values() for pk in o.line_keys()], rows)


def arr_by_period(conn: Connection, orders: Orders, ctx: JobContext, prepared: Prepared = None) -> None:
    """ARR-by-period rows of each line; lines that have rows keep them untouched."""
    done = repo.lines_with_arr_rows(conn, [pk for o in orders.values() for pk in o.line_keys()])
    rows: repo.StoredRows
    if prepared is None:
        rows = _rows("arr_by_period", orders, ctx, conn, done)
    else:  # worked out for every line beforehand: those that have rows keep theirs
        rows = repo.without_lines(conn, prepared, done) if done else prepared
    repo.insert_stored_arr_rows(conn, rows)
    if ctx.write_back:
        # one entry per line and big object; the writer reads the (immutable) rows when it sends
        enqueue(conn, [(big, line.id, "big_object", o.id, {"line_pk": pk})
                       for o in orders.values() for pk, line in o.lines if pk not in done and line.recurring
                       for big in BIG_OBJECTS], _stamp(ctx))


def _clock(ctx: JobContext) -> Clock:
    if ctx.clock is None:
        raise ValueError("write-back needs JobContext.clock")
    return ctx.clock


def _today(ctx: JobContext) -> dt.date:
    return _clock(ctx).today()


def _stamp(ctx: JobContext) -> dt.datetime:
    return _clock(ctx).now()


def enqueue_items(conn: Connection, items: list[str], accounts: list[str], ctx: JobContext) -> None:
    """Outbox entries for items and account metrics, as they stand now (in the caller's transaction)."""
    as_of = _today(ctx)
    entries = [(RECORD_OBJECTS[v["kind"]], v["id"], "record", None, v)
               for v in item_values(conn, items, as_of)]
    entries += [("Account", v["id"], "record", None, v) for v in account_values(conn, accounts, as_of)]
    enqueue(conn, entries, _stamp(ctx))


#: each job: (connection, orders, context[, prepared]) → None, in the caller's transaction
JOBS: dict[str, Callable[..., None]] = {
    "credit_review": credit_review,
    "subscription_metrics": subscription_metrics,
    "order_metrics": order_metrics_job,
    "arr_by_period": arr_by_period,
}
assert tuple(JOBS) == repo.JOB_KINDS

#: the part of a job that needs nothing from the store: the rows it writes, worked out from the
#: orders alone (`connector.job_rows`), `prepared` for the job. With `JobRunner.overlap` they are
#: worked out for the next batch while the store writes this one's; in a large import, by the
#: second core's process (`RowsAhead`) while this process writes the next batch (issue 11).
PREPARE: dict[str, Callable[[Orders, JobContext, "Engine | Connection"], list]] = {
    kind: functools.partial(_rows, kind) for kind in job_rows.KINDS}


#: imports of this many orders or more work their jobs' rows out in a child process, on the
#: second core (`RowsAhead`); below it, starting the process costs more than it saves
AHEAD_MIN_ORDERS = 4_000

class RowsAhead:
    """A process of its own that works out the rows of jobs (`PREPARE`) of batches of orders while
    this process writes: the import's second core (issue 11).

    It runs `connector.job_rows` (`python -m`, the same interpreter and the same checkout of the
    code), which imports the engine and nothing of the store: the rows are the same wherever they
    are worked out, in their stored form, so this process only inserts them. Batches go to it on
    its standard input and their rows come back on its standard output, each a pickle, in order;
    a thread here writes the batches and another reads the rows, so neither side waits on a full
    pipe. What is unpickled is only what this process's own child pickled.

    Whatever goes wrong with it (it cannot start, dies, or a batch cannot be sent) only costs
    time: `rows` then gives nothing, and the jobs work their rows out here as they always did.
    It ignores Ctrl-C (this process stops it), and it ends when its input does: when `close` closes
    it, or when this process ends, however it ends.
    """

    def __init__(self, ctx: JobContext, dialect: str) -> None:
        self.broken = False
        #: batches whose rows came from the child (for tests and the benchmark)
        self.batches = 0
        #: seconds this process waited for the child's rows (it paced the writing pass meanwhile)
        self.waited = 0.0
        self._closed = self._said_gone = False
        self._pending: "queue.SimpleQueue[Future]" = queue.SimpleQueue()
        self._outbox: "queue.SimpleQueue[tuple | None]" = queue.SimpleQueue()
        self._sent = self._used = 0
        # what it works for, first: a calendar that cannot give its periods stops here, no child started
        calendar = ctx.calendar.resolved()
        #: on SQLite, the staging file the child puts the rows in (connector.store.staging), in a
        #: private folder of its own (mkdtemp: readable by this user alone), removed with the child
        self.staging: Path | None = None
        self._folder = Path(tempfile.mkdtemp(prefix="revsync-rows-")) if dialect == "sqlite" else None
        try:
            if self._folder is not None:
                self.staging = staging.create(self._folder)
            context = (calendar, tuple(ctx.settings.order_metrics), dialect,
                       None if self.staging is None else str(self.staging))
            # the code this process runs, first on the child's path; not the working directory (-P),
            # whose files could stand in for a module's
            root = str(Path(__file__).resolve().parents[1])
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
            self._process = subprocess.Popen([sys.executable, "-P", "-m", "connector.job_rows"],
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=subprocess.DEVNULL, env=env)
        except BaseException:
            self._remove_folder()
            raise
        self._outbox.put(context)
        self._writer = threading.Thread(target=self._write, name="revsync-rows-out", daemon=True)
        self._reader = threading.Thread(target=self._read, name="revsync-rows-in", daemon=True)
        self._writer.start()
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def submit(self, kinds: list[tuple[str, list[str]]], orders: Orders) -> "_Answer | None":
        """Hand a batch's orders to the child; None when the child is gone."""
        if self.broken:
            return None
        self._sent += 1
        future = _Answer(self._sent)
        self._pending.put(future)
        # with it, the last batch whose rows were used: the child may drop their staged tables
        # each order's lines in the form that pickles faster when it has them (`job_rows.OrderLines`)
        self._outbox.put((self._sent, self._used, (kinds, {
            o.id: (o.currency, (None, o.stored) if o.stored is not None else (o.lines, None))
            for o in orders.values()})))
        if self.broken:  # it stopped meanwhile, after its threads gave the waiting batches up
            self._fail(RuntimeError("it had stopped"))
        return future

    def used(self, future: "_Answer | None") -> None:
        """The jobs of this batch have run: their staged rows are no longer needed."""
        if future is not None:
            self._used = max(self._used, future.number)

    def rows(self, future: "_Answer | None") -> dict[str, Prepared]:
        """The child's rows of a batch handed to it (waiting for them), or none."""
        if future is None:
            return {}
        began = time.perf_counter()
        try:
            prepared = future.result()
        except Exception as exc:  # noqa: BLE001 - the child died, or the batch could not be sent
            self._gone(exc)
            return {}
        finally:
            self.waited += time.perf_counter() - began
        self.batches += 1
        return prepared

    def _write(self) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        try:
            while (item := self._outbox.get()) is not None:
                pickle.dump(item, stdin, protocol=pickle.HIGHEST_PROTOCOL)
                stdin.flush()
        except Exception as exc:  # noqa: BLE001 - the child is gone (a broken pipe) or a batch will not pickle
            self._fail(exc)
        finally:
            try:
                stdin.close()  # the child's input ends: it finishes what it has, and exits
            except OSError:
                pass

    def _read(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            while True:
                answer = pickle.load(stdout)
                self._pending.get_nowait().set_result(answer)
        except EOFError as exc:
            if not (self._closed and self._pending.empty()):  # else: it answered everything, and ended
                self._fail(exc)
        except Exception as exc:  # noqa: BLE001 - the child ended midway
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        """The child can answer no more: every batch still waiting gets the error."""
        self.broken = True
        while True:
            try:
                future = self._pending.get_nowait()
            except queue.Empty:
                return
            if not future.done():
                future.set_exception(RuntimeError(f"the second core's process stopped: {type(exc).__name__}: {exc}"))

    def _gone(self, exc: BaseException) -> None:
        self.broken = True
        if not self._said_gone:
            self._said_gone = True
            log.info("jobs' rows are worked out in this process from now on (%s)", exc)

    def close(self) -> None:
        """Stop the child once it has answered what it was sent, and wait for it."""
        if self._closed:
            return
        self._closed = True
        self._outbox.put(None)
        self._writer.join()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # stuck: nothing it could still give is waited for
            self._process.kill()
            self._process.wait()
        self._reader.join()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._remove_folder()
        log.info("the rows of %d batch(es) of jobs were worked out on a second core (%.2f s spent waiting for them)",
                 self.batches, self.waited)

    def _remove_folder(self) -> None:
        """Remove the staging folder: the child removes it when its input ends, which covers an
        importing process that is killed; this covers a child that never got that far."""
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


class _Answer(Future):
    """The child's answer to the batch it was sent as the `number`th."""

    def __init__(self, number: int) -> None:
        super().__init__()
        self.number = number


#: a batch handed to the child: its order ids, their jobs by order, the orders, and the child's rows to come
_Held = tuple[list[str], dict[str, list], Orders, "_Answer | None"]
#: batches an import holds, handed to the child, before it waits for the child's rows of the oldest
#: (issue 11): enough that the child working a batch slower than this process writes one, now and
#: then, costs no wait; each holds its orders (500 by default)
HELD_MAX = 4


def _answered(held: _Held) -> bool:
    """Whether the child's rows of a held batch have come back (or it was never handed over)."""
    future = held[3]
    return future is None or future.done()


class SavedJobs:
    """The jobs of each batch of orders as an import writes it (`JobRunner.run_saved`), and, with a
    `RowsAhead`, their rows worked out in the child while this process writes the next batch.

    With the child, a batch's jobs run once the child has sent its rows, after one or more later
    batches are written: `add` hands the new batch to the child, then runs the jobs of the
    batches held before it whose rows have come back, oldest first, up to the first still being
    worked out; this process writes the next batch instead of waiting for the child (it waits only
    when `HELD_MAX` batches are held, for their orders are in memory). The jobs still run in the
    same batches and the same order; only orders written later, which no job of an earlier order
    reads, are in the store sooner. `finish` runs the batches still held.

    On PostgreSQL (`JobRunner.overlap`) those jobs run on a thread of their own, one run at a time
    and in order, while this process activates and writes the next batch: the server works on
    the jobs' statements while this process works on the next orders (each waits for the server
    without the GIL). They touch different tables but for the jobs' own rows, which the import
    inserts and the jobs update, so neither waits for the other's locks. `add` returns the
    outcomes of the run before; `finish` waits for the last; `close` waits for any run in flight,
    whatever happened meanwhile.
    """

    def __init__(self, runner: "JobRunner", ahead: RowsAhead | None) -> None:
        self.runner, self.ahead = runner, ahead
        self._held: list[_Held] = []
        self._thread = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="revsync-jobs")
                        if ahead is not None and runner.overlap else None)
        self._running: "Future[list[JobOutcome]] | None" = None
        #: held batches whose jobs failed inside the import's transaction (`add` with `conn`): they
        #: run again in transactions of their own once it has committed (`after_commit`)
        self._again: list[_Held] = []
        #: batches given with `conn` whose jobs cannot run in its transaction: added after it commits
        self._later: list[Orders] = []
        #: whether the jobs run in the import's transaction (`add` with `conn`)
        self.in_transaction = ahead is not None and self._thread is None and runner.fence is None

    def add(self, saved: Orders, conn: Connection | None = None) -> list[JobOutcome]:
        """The batch just written; returns the outcomes of the jobs run now (or run since the last call).

        With `conn`, the connection whose open transaction has just written `saved`, the held
        batches whose rows have come back run in that transaction, each in a savepoint of its own,
        instead of in a transaction each after it: one commit per batch instead of two, on a
        connection already checked out (with the staging file attached), and a batch's jobs
        committed with the next batch's orders (issue 11). Not on a thread of their own
        (PostgreSQL), nor for a runner with a fence (a worker's claim: its check belongs to
        transactions of the jobs alone); then the batch is added once the caller has committed, and
        calls `after_commit`."""
        if conn is not None and not self.in_transaction:
            self._later.append(saved)
            return []
        if self.ahead is None:
            return self.runner.run_saved(saved)
        runner = self.runner
        if runner.deferred or not saved:
            return []
        todo = repo.pending_jobs_saved(runner.engine if conn is None else conn, saved)
        self._held.extend(runner._hand(self.ahead, batch, by_order, saved) for batch, by_order in runner._batches(todo))
        if conn is not None:
            return self._run_in(conn, self._ready())
        return self._run(self._ready())

    def after_commit(self) -> list[JobOutcome]:
        """The jobs of the batches that failed inside the import's transaction (`add` with `conn`),
        run as they would have been without it: all in one transaction, else kind by kind, then
        job by job, each failure recorded against its own job. Their rows are worked out here:
        the child may have dropped its copy of them."""
        again, self._again = self._again, []
        later, self._later = self._later, []
        return ([o for batch, by_order, orders, _ in again for o in self.runner._run_orders(batch, by_order, orders)]
                + [o for saved in later for o in self.add(saved)])

    def _run_in(self, conn: Connection, held: list[_Held]) -> list[JobOutcome]:
        ahead = self.ahead
        assert ahead is not None
        outcomes: list[JobOutcome] = []
        for h in held:
            batch, by_order, orders, future = h
            if self._again:  # one failed: the batches after it run after it, in order
                self._again.append(h)
                ahead.used(future)
                continue
            try:
                prepared = ahead.rows(future)
                with conn.begin_nested():
                    outcomes.extend(self.runner._run_kinds(conn, _by_kind(batch, by_order), orders, prepared))
            except Exception:  # noqa: BLE001 - rolled back to the savepoint: run again after the commit
                self._again.append(h)
            finally:
                ahead.used(future)
        return outcomes

    def _ready(self) -> list[_Held]:
        """The held batches to run now, oldest first: those whose rows the child has sent, up to the
        first it is still working on, and the oldest beyond `HELD_MAX` even so (waiting for them)."""
        held = self._held
        n = 0
        while n < len(held) and (len(held) - n > HELD_MAX or _answered(held[n])):
            n += 1
        ready, self._held = held[:n], held[n:]
        return ready

    def finish(self) -> list[JobOutcome]:
        """The jobs of the batches still held, and of any run in flight (after those that failed
        inside the import's transaction, which the caller has committed)."""
        outcomes = self.after_commit()
        held, self._held = self._held, []
        outcomes += self._run(held)
        return outcomes + self._wait()

    def close(self) -> None:
        """Wait for the run in flight, if any (its error is not raised: the caller's is on its way
        or `finish` gave it), and stop the thread."""
        if self._thread is None:
            return
        try:
            self._wait()
        except BaseException:  # noqa: BLE001 - already raised by `finish`, or another error is on its way
            pass
        finally:
            self._thread.shutdown(wait=True)

    def _run(self, held: list[_Held]) -> list[JobOutcome]:
        ahead = self.ahead
        if ahead is None or not held:
            return []

        def run() -> list[JobOutcome]:
            return [o for h in held for o in self.runner._run_held(ahead, h)]

        if self._thread is None:
            return run()
        done = self._wait()  # one run at a time, in order
        self._running = self._thread.submit(run)
        return done

    def _wait(self) -> list[JobOutcome]:
        running, self._running = self._running, None
        return [] if running is None else running.result()


def usable_cores() -> int:
    """The cores this process may run on (a container or `taskset` may allow fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def saved_jobs(runner: "JobRunner", orders: int) -> Iterator[SavedJobs]:
    """`SavedJobs` for an import of this many orders (0: its jobs do not run as it writes), with a
    child process working out their rows when `JobRunner.rows_ahead` starts one; the child is
    stopped on the way out, whatever happens."""
    with runner.rows_ahead(0 if runner.deferred else orders) as ahead:
        jobs = SavedJobs(runner, ahead)
        try:
            yield jobs
        finally:
            jobs.close()


class FenceLost(Exception):
    """Raised by a runner's fence inside a job's transaction: the work is no longer this process's
    (a worker's claim was taken over), so the transaction rolls back and nothing is recorded."""


def _by_kind(batch: list[str], by_order: dict[str, list]) -> list[tuple[str, list]]:
    """The jobs of a batch of orders, grouped by kind in job order (kinds without a job left out)."""
    grouped: dict[str, list] = {}
    for o in batch:
        for job in by_order[o]:
            of_kind = grouped.get(job.kind)
            if of_kind is None:
                of_kind = grouped[job.kind] = []
            of_kind.append(job)
    return [(kind, grouped[kind]) for kind in repo.JOB_KINDS if kind in grouped]


def _orders_of_jobs(jobs: list, orders: Orders) -> Orders:
    """The orders these jobs belong to, in the jobs' order."""
    return {j.order_id: orders[j.order_id] for j in jobs}


@dataclass
class JobOutcome:
    """How one job ended."""

    order_id: str
    kind: str
    ok: bool
    error: str | None = None


class Outcomes(Sequence[JobOutcome]):
    """The outcomes of many jobs, kept compactly (an import of 1,000,000 lines runs 1.5 million):
    one string per order, a byte per kind, the errors of failed jobs only."""

    def __init__(self) -> None:
        self._orders: list[str] = []
        self._kinds = bytearray()
        self._errors: dict[int, str | None] = {}

    def extend(self, outcomes: Iterable[JobOutcome]) -> None:
        same: dict[str, str] = {}
        for o in outcomes:
            if not o.ok:
                self._errors[len(self._orders)] = o.error
            self._orders.append(same.setdefault(o.order_id, o.order_id))
            self._kinds.append(_KIND_NUMBER[o.kind])

    def _at(self, i: int) -> JobOutcome:
        failed = i in self._errors
        return JobOutcome(self._orders[i], repo.JOB_KINDS[self._kinds[i]], not failed, self._errors.get(i))

    def __len__(self) -> int:
        return len(self._orders)

    @overload
    def __getitem__(self, i: int) -> JobOutcome: ...

    @overload
    def __getitem__(self, i: slice) -> list[JobOutcome]: ...

    def __getitem__(self, i: int | slice) -> JobOutcome | list[JobOutcome]:
        if isinstance(i, slice):
            return [self._at(k) for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._at(i)

    def __iter__(self) -> Iterator[JobOutcome]:
        return (self._at(i) for i in range(len(self)))


_KIND_NUMBER = {kind: n for n, kind in enumerate(repo.JOB_KINDS)}


class JobRunner:
    """Runs recorded jobs, recording failures instead of raising.

    The jobs of a batch of orders share a transaction, every kind in job order; if it fails, the
    jobs of each kind run again in a transaction of their own, and if that fails, each job of
    the kind in a transaction of its own, so a failing order never blocks the others and its
    failure is recorded against it alone.

    `deferred` (`[workers] enabled`, PostgreSQL): pending jobs, and the daemon's retries of failed
    ones, are left to `revsync worker` processes (connector.workers); `revsync jobs retry` still
    runs them here. `fence(conn)` is called inside every transaction that records a job, before it
    commits; it raises FenceLost when the work is no longer this process's.
    """

    def __init__(self, engine: Engine, ctx: JobContext, clock: Clock, *, max_attempts: int = 5,
                 backoff_seconds: float = 30.0, batch_size: int = 500, deferred: bool = False,
                 fence: Callable[[Connection], None] | None = None):
        self.engine = engine
        self.ctx = ctx
        self.clock = clock
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.batch_size = batch_size
        self.deferred = deferred
        self.fence = fence
        #: run each batch's transactions on a thread of their own while the next batch's rows are
        #: worked out here: on PostgreSQL, whose server works on its own core while this process
        #: waits for it (the GIL given back once per statement). Not on SQLite: its driver gives the
        #: GIL back around each row, and would wait for it once per row.
        self.overlap = engine.dialect.name == "postgresql"
        #: pending jobs read per query by `run_pending_paged`
        self.page_size = 20_000
        #: jobs of this many orders or more (`ahead_min_orders`) at once, an import's or any other
        #: run's, work their rows out in a child process (`rows_ahead`)
        self.second_core = True
        self.ahead_min_orders = AHEAD_MIN_ORDERS

    @contextmanager
    def rows_ahead(self, orders: int) -> Iterator[RowsAhead | None]:
        """A child process that works out the rows of jobs of batches of orders (`RowsAhead`), for
        a run of jobs of this many orders: when there are enough of them (`ahead_min_orders`), and a
        second core to run it on (on one core it would only add its own work); else None, and the
        rows are worked out here. The child is stopped on the way out, whatever happens."""
        ahead = None
        if self.second_core and orders > 0 and orders >= self.ahead_min_orders and usable_cores() > 1:
            try:
                ahead = RowsAhead(self.ctx, self.engine.dialect.name)
            except Exception as exc:  # noqa: BLE001 - no process to be had: one core, as before
                log.info("jobs' rows are worked out in this process (no second process: %s: %s)",
                         type(exc).__name__, exc)
        try:
            if ahead is not None and ahead.staging is not None:
                with db.attached(self.engine, ahead.staging, staging.SCHEMA):
                    yield ahead
            else:
                yield ahead
        finally:
            if ahead is not None:
                ahead.close()

    def _hand(self, ahead: RowsAhead, batch: list[str], by_order: dict[str, list], known: Orders) -> _Held:
        """Hand a batch's orders (those in hand, the others read from the store) to the child."""
        orders = self._orders_of(batch, known)
        kinds = [(kind, list(dict.fromkeys(j.order_id for j in jobs)))
                 for kind, jobs in _by_kind(batch, by_order) if kind in PREPARE]
        return batch, by_order, orders, ahead.submit(kinds, orders)

    def _run_held(self, ahead: RowsAhead, held: _Held) -> list[JobOutcome]:
        """The jobs of a batch handed to the child, with the rows it worked out."""
        batch, by_order, orders, future = held
        try:
            return self._run_orders(batch, by_order, orders, ahead.rows(future))
        finally:
            ahead.used(future)

    def _run_ahead(self, ahead: RowsAhead, batches: Iterable[tuple[list[str], dict[str, list]]],
                   known: Orders) -> Iterator[list[JobOutcome]]:
        """`_run_orders` of each batch in turn, a batch behind: batch k is handed to the child, then
        batch k-1's jobs run with the rows it worked out meanwhile. The same transactions in the
        same order as one process runs them; only batch k's orders are read from the store before
        batch k-1's jobs run, and no job writes what is read of an order (its lines and segments)."""
        held: _Held | None = None
        for batch, by_order in batches:
            handed = self._hand(ahead, batch, by_order, known)
            if held is not None:
                yield self._run_held(ahead, held)
            held = handed
        if held is not None:
            yield self._run_held(ahead, held)

    def run_pending(self, order_ids: Iterable[str] | None = None, *,
                    known: Orders | None = None) -> list[JobOutcome]:
        """Run every pending job (of these orders), in activation order and job order.

        `known` holds orders the caller has in hand as stored (from `save_activations`); the
        others are read from the store. A deferred runner runs none: the workers do.
        """
        if self.deferred:
            return []
        return self._run_where(t.jobs.c.status == t.JobStatus.PENDING, order_ids, known or {})

    def retry_failed(self, order_ids: Iterable[str] | None = None, *, due_only: bool = False) -> list[JobOutcome]:
        """Run failed jobs again (all of them, or only those whose backoff has passed; a deferred
        runner leaves the latter to the workers)."""
        if due_only and self.deferred:
            return []
        return self._run_where(self.failed_condition(due_only), order_ids, {})

    def failed_condition(self, due_only: bool):
        """The jobs `retry_failed` runs: failed ones (whose backoff has passed, with `due_only`)."""
        cond = t.jobs.c.status == t.JobStatus.FAILED
        if due_only:
            cond = cond & (t.jobs.c.attempts < self.max_attempts) & (t.jobs.c.next_attempt_at <= self.clock.now())
        return cond

    def run_accounts(self, accounts: Iterable[str]) -> list[JobOutcome]:
        """Run the pending jobs of these accounts' orders, then their failed jobs whose backoff has
        passed, in activation order (a worker's claim: connector.workers)."""
        wanted = sorted(set(accounts))
        account_cond = t.orders.c.account.in_(wanted)
        outcomes = self._run_where((t.jobs.c.status == t.JobStatus.PENDING) & account_cond, None, {})
        return outcomes + self._run_where(self.failed_condition(True) & account_cond, None, {})

    @collector_paused()
    def _run_where(self, cond, order_ids: Iterable[str] | None, known: Orders) -> list[JobOutcome]:
        query = (select(t.jobs.c.id, t.jobs.c.order_id, t.jobs.c.kind)
                 .join(t.orders, t.orders.c.id == t.jobs.c.order_id).where(cond)
                 .order_by(t.orders.c.seq, t.jobs.c.id))
        wanted = None if order_ids is None else set(order_ids)
        with self.engine.connect() as conn:
            todo = [j for j in conn.execute(query) if wanted is None or j.order_id in wanted]
        return self._run_jobs(todo, known)

    @collector_paused()
    def run_saved(self, saved: Orders) -> list[JobOutcome]:
        """Run the pending jobs of orders just written, as `save_activations` returned them.

        A streamed import runs each batch's jobs as soon as the batch is written, with the
        orders still in hand, instead of reading every order back from the store after the
        last batch (issue 11). The same batches in the same order as `run_pending` would run
        them, provided no other order's job is pending: the caller checks that first.
        """
        if self.deferred or not saved:
            return []
        todo = repo.pending_jobs_saved(self.engine, saved)
        return self._run_jobs(todo, saved)

    def _batches(self, todo: Sequence) -> list[tuple[list[str], dict[str, list]]]:
        """Jobs (in activation order) in batches of whole orders: (order ids, their jobs by order)."""
        order_seq: list[str] = []
        by_order: dict[str, list] = {}
        for job in todo:
            if job.order_id not in by_order:
                order_seq.append(job.order_id)
                by_order[job.order_id] = []
            by_order[job.order_id].append(job)
        return [(batch, {o: by_order[o] for o in batch})
                for batch in (order_seq[i:i + self.batch_size] for i in range(0, len(order_seq), self.batch_size))]

    def _run_jobs(self, todo: Sequence, known: Orders) -> list[JobOutcome]:
        """Jobs (in activation order) in batches of whole orders, kind by kind."""
        split = self._batches(todo)
        with self.rows_ahead(sum(len(batch) for batch, _ in split)) as ahead:
            if ahead is not None:
                return [o for outcomes in self._run_ahead(ahead, split, known) for o in outcomes]
        by_order = {o: jobs for _, of_batch in split for o, jobs in of_batch.items()}
        batches = [batch for batch, _ in split]
        if self.overlap and len(batches) > 1:
            return self._run_overlapped(batches, by_order, known)
        outcomes: list[JobOutcome] = []
        for batch in batches:
            outcomes.extend(self._run_orders(batch, by_order, known))
        return outcomes

    def _run_overlapped(self, batches: list[list[str]], by_order: dict[str, list], known: Orders) -> list[JobOutcome]:
        """`_run_orders` of each batch in turn on one thread of its own, the rows of the next batch
        worked out here meanwhile (`PREPARE`).

        The store sees the same transactions in the same order as when one thread runs them all:
        only rows that depend on nothing stored are worked out ahead, and a failing transaction
        runs again job by job on that thread as ever. A batch that raises (FenceLost) stops the
        batches after it; so does an error here.
        """
        outcomes: list[JobOutcome] = []
        stop = threading.Event()

        def run(batch: list[str], orders: Orders, prepared: dict[str, Prepared]) -> list[JobOutcome]:
            if stop.is_set():
                return []
            try:
                return self._run_orders(batch, by_order, orders, prepared)
            except BaseException:
                stop.set()
                raise

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="revsync-jobs") as writer:
            running = None
            try:
                for batch in batches:
                    orders = self._orders_of(batch, known)
                    after = writer.submit(run, batch, orders, self._prepare(batch, by_order, orders))
                    if running is not None:
                        outcomes.extend(running.result())
                    running = after
                if running is not None:
                    outcomes.extend(running.result())
            except BaseException:
                stop.set()
                raise
        return outcomes

    def _prepare(self, batch: list[str], by_order: dict[str, list], orders: Orders) -> dict[str, Prepared]:
        """The rows each kind of job of this batch will write (`PREPARE`), for the orders it gets."""
        prepared: dict[str, Prepared] = {}
        for kind, jobs in _by_kind(batch, by_order):
            if kind in PREPARE:
                try:
                    prepared[kind] = PREPARE[kind](_orders_of_jobs(jobs, orders), self.ctx, self.engine)
                except Exception:  # noqa: BLE001 - the job works them out itself, and fails as it would
                    pass
        return prepared

    def _orders_of(self, batch: list[str], known: Orders) -> Orders:
        """The batch's orders: those in hand, the others read from the store."""
        orders = {o: known[o] for o in batch if o in known}
        missing = [o for o in batch if o not in known]
        if missing:
            with self.engine.connect() as conn:
                orders.update(repo.load_orders(conn, missing))
        return orders

    def _run_orders(self, batch: list[str], by_order: dict[str, list], known: Orders,
                    prepared: dict[str, Prepared] | None = None) -> list[JobOutcome]:
        """The jobs of a batch of whole orders, kind by kind: all in one transaction, or, when it
        fails, each kind in a transaction of its own (`_run_batch`: then job by job)."""
        orders = self._orders_of(batch, known)
        prepared = prepared or {}
        kinds = _by_kind(batch, by_order)
        if len(kinds) > 1:
            try:
                return self._run_together(kinds, orders, prepared)
            except FenceLost:
                raise  # not a failure of the jobs: the work is another process's now
            except Exception:  # noqa: BLE001 - rolled back whole; each kind runs again on its own
                pass
        outcomes: list[JobOutcome] = []
        for kind, jobs in kinds:
            outcomes.extend(self._run_batch(kind, jobs, orders, prepared.get(kind)))
        return outcomes

    def _run_together(self, kinds: list[tuple[str, list]], orders: Orders,
                      prepared: dict[str, Prepared]) -> list[JobOutcome]:
        """Every kind of job of a batch in one transaction, in job order, recorded done with their
        results: one commit and one status update instead of one per kind (issue 11)."""
        with self.engine.begin() as conn:
            return self._run_kinds(conn, kinds, orders, prepared)

    def _run_kinds(self, conn: Connection, kinds: list[tuple[str, list]], orders: Orders,
                   prepared: dict[str, Prepared]) -> list[JobOutcome]:
        """`_run_together` in the caller's transaction."""
        for kind, jobs in kinds:
            self._run_kind(conn, kind, jobs, orders, prepared.get(kind))
        self._record_done(conn, [j.id for _, jobs in kinds for j in jobs])
        return [JobOutcome(j.order_id, kind, True) for kind, jobs in kinds for j in jobs]

    def _run_kind(self, conn: Connection, kind: str, jobs: list, orders: Orders, prepared: Prepared) -> None:
        """One kind's jobs of a batch, in the caller's transaction, with their rows if worked out."""
        if prepared is None:
            JOBS[kind](conn, _orders_of_jobs(jobs, orders), self.ctx)
        else:
            JOBS[kind](conn, _orders_of_jobs(jobs, orders), self.ctx, prepared)

    def _record_done(self, conn: Connection, job_ids: list[int]) -> None:
        """Mark these jobs succeeded, in the caller's transaction, then check the fence."""
        repo.record_jobs_done(conn, job_ids, self.clock.now())
        if self.fence is not None:
            self.fence(conn)

    @collector_paused()
    def run_pending_paged(self, order_ids: Collection[str]) -> "Outcomes":
        """`run_pending(order_ids)` in bounded memory, for imports of any size.

        The same batches in the same order (whole orders, activation order, kind by kind), but the
        pending jobs are read a page at a time, the orders of each batch are read from the store
        (nothing held from their activation), and the outcomes are kept compactly. A job's run
        changes the status of its own jobs only, so a page read after earlier batches ran holds
        what a single read at the start would have held. With jobs of enough orders (`rows_ahead`),
        their rows are worked out in a child process, a batch ahead.
        """
        outcomes = Outcomes()
        if self.deferred:
            return outcomes  # the workers run them (connector.workers)
        wanted = order_ids if isinstance(order_ids, (set, frozenset)) else set(order_ids)
        with self.rows_ahead(len(wanted)) as ahead:
            if ahead is not None:
                for done in self._run_ahead(ahead, self._pending_pages(wanted), {}):
                    outcomes.extend(done)
            else:
                for batch, by_order in self._pending_pages(wanted):
                    outcomes.extend(self._run_orders(batch, by_order, {}))
        return outcomes

    def _pending_pages(self, wanted: Collection[str]) -> Iterator[tuple[list[str], dict[str, list]]]:
        """The pending jobs of these orders in batches of whole orders, in activation order (as
        `_batches`), read a page at a time as the batches are taken."""
        page = self.page_size
        batch: list[str] = []
        by_order: dict[str, list] = {}
        last: tuple[int, int] | None = None
        while True:
            query = (select(t.jobs.c.id, t.jobs.c.order_id, t.jobs.c.kind, t.orders.c.seq)
                     .join(t.orders, t.orders.c.id == t.jobs.c.order_id)
                     .where(t.jobs.c.status == t.JobStatus.PENDING))
            if last is not None:
                query = query.where(or_(t.orders.c.seq > last[0], and_(t.orders.c.seq == last[0],
                                                                          t.jobs.c.id > last[1])))
            with self.engine.connect() as conn:
                rows = conn.execute(query.order_by(t.orders.c.seq, t.jobs.c.id).limit(page)).all()
            for job in rows:
                if job.order_id not in wanted:
                    continue
                if job.order_id not in by_order:
                    # an order's jobs are consecutive (one seq): a new order means the batch's are whole
                    if len(batch) == self.batch_size:
                        yield batch, by_order
                        batch, by_order = [], {}
                    batch.append(job.order_id)
                    by_order[job.order_id] = []
                by_order[job.order_id].append(job)
            if len(rows) < page:
                break
            last = (rows[-1].seq, rows[-1].id)
        if batch:
            yield batch, by_order

    def _run_batch(self, kind: str, jobs: list, orders: Orders, prepared: Prepared = None) -> list[JobOutcome]:
        try:
            with self.engine.begin() as conn:
                self._run_kind(conn, kind, jobs, orders, prepared)
                self._record_done(conn, [j.id for j in jobs])
            return [JobOutcome(j.order_id, kind, True) for j in jobs]
        except FenceLost:
            raise  # not a failure of the job: the work is another process's now
        except Exception as exc:  # a failing job never rolls back or blocks the activation
            if len(jobs) > 1:
                return [o for j in jobs for o in self._run_batch(kind, [j], orders)]
            return [self._failed(jobs[0], kind, exc)]

    def _failed(self, job, kind: str, exc: Exception) -> JobOutcome:
        message = f"{type(exc).__name__}: {exc}"
        log.warning("job %s for order %s failed: %s", kind, job.order_id, message)
        with self.engine.begin() as conn:
            attempts = conn.execute(select(t.jobs.c.attempts).where(t.jobs.c.id == job.id)).scalar() or 0
            delay = self.backoff_seconds * (2 ** attempts)
            conn.execute(update(t.jobs).where(t.jobs.c.id == job.id).values(
                status=t.JobStatus.FAILED, attempts=attempts + 1, last_error=message[:2000], updated_at=self.clock.now(),
                next_attempt_at=self.clock.now() + dt.timedelta(seconds=delay)))
            if self.fence is not None:
                self.fence(conn)
        return JobOutcome(job.order_id, kind, False, message)


@dataclass(frozen=True)
class Extension:
    """What one run of the evergreen extension did."""

    through: dt.date
    lines: int
    rows: int


@collector_paused()
def extend_evergreen(engine: Engine, ctx: JobContext, today: dt.date) -> Extension:
    """Materialize every evergreen line up to `today` + `[engine] evergreen_horizon_months` (SPEC section 7).

    In one transaction: the lines' pieces and ends, their subscriptions' ends, line, item and account
    TCV, order metrics (TCV, TCB, ELP over the new horizon), and ARR rows for the fiscal periods the
    horizon now covers (rows already there are never changed). With an org, the new rows go to the
    outbox like every ARR row, with the items and accounts. Running it again the same day (or
    earlier) finds nothing short of the horizon and changes nothing.
    """
    through = evergreen_horizon(today, ctx.settings)
    with engine.begin() as conn:
        todo = repo.evergreen_to_extend(conn, through)
        if not todo:
            return Extension(through, 0, 0)
        wanted = {pk for pk, _ in todo}
        stored = repo.load_orders(conn, sorted({o for _, o in todo}))
        extended: Orders = {}
        changes = []
        for o in stored.values():
            lines = []
            for pk, line in o.lines:
                after = extend_line(line, through) if pk in wanted else None
                if after is not None:
                    lines.append((pk, after))
                    changes.append((pk, line, after, o.currency))
            if lines:
                extended[o.id] = repo.StoredOrder(o.id, o.account, o.currency, lines)
        repo.save_extension(conn, changes)
        subscription_metrics(conn, extended, ctx)
        order_metrics_job(conn, extended, ctx)
        # new rows only for lines whose ARR job has made their first rows (a pending job makes them all)
        ready = repo.orders_with_job(conn, list(extended), "arr_by_period", t.JobStatus.SUCCEEDED)
        last = repo.last_arr_periods(conn, [pk for o in extended.values() for pk, _ in o.lines])
        new_rows = [(pk, row) for o in extended.values() if o.id in ready for pk, line in o.lines
                    for row in arr_rows(line, o.currency, ctx.calendar)
                    if pk not in last or row.period_start > last[pk]]
        count = repo.insert_arr_rows(conn, new_rows)
        if ctx.write_back and new_rows:
            sent = {pk for pk, _ in new_rows}
            enqueue(conn, [(big, line.id, "big_object", o.id, {"line_pk": pk})
                           for o in extended.values() for pk, line in o.lines if pk in sent
                           for big in BIG_OBJECTS], _stamp(ctx))
    log.info("evergreen lines extended", extra={"through": through.isoformat(), "lines": len(changes),
                                                "arr_rows": count})
    return Extension(through, len(changes), count)


#: meta key: the last UTC day the daemon extended evergreen lines
EVERGREEN_DAY = "evergreen_extended_on"


def evergreen_daily(app) -> Callable[[], None]:
    """The daemon's after-pass hook: extend evergreen lines at most once a (UTC) day.

    The day of the last run is kept in the store, so a restarted daemon does not run it again
    that day; a failure is logged and tried again after the next pass, never stops the daemon.
    """
    def run() -> None:
        today = app.clock.today()
        try:
            with app.store.connect() as conn:
                if repo.get_meta(conn, EVERGREEN_DAY) == today.isoformat():
                    return
            extend_evergreen(app.store, app.runner.ctx, today)
            with app.store.begin() as conn:
                repo.set_meta(conn, EVERGREEN_DAY, today.isoformat())
        except Exception as exc:  # noqa: BLE001 - the sync goes on; the next pass tries again
            log.warning("extending evergreen lines failed", extra={"reason": f"{type(exc).__name__}: {exc}"})

    return run


@collector_paused()
def regenerate_arr(engine: Engine, ctx: JobContext, batch_size: int = 500) -> int:
    """Rebuild every ARR row on the current calendar in one transaction (SPEC 7's sanctioned rewrite).

    With write-back, the same transaction queues, per line and big object, the deletion of the
    old rows the new calendar does not have (Salesforce deletes big-object rows only by their
    full index, SOAP deleteByExample), and the insert of the new rows; the writer sends the
    deletions first.
    """
    with engine.begin() as conn:
        count = 0
        order_ids = conn.execute(select(t.orders.c.id).order_by(t.orders.c.seq)).scalars().all()
        for i in range(0, len(order_ids), batch_size):
            orders = repo.load_orders(conn, order_ids[i:i + batch_size])
            lines = [(o, pk, line) for o in orders.values() for pk, line in o.lines]
            old = {pk: arr_rows_of_line(conn, pk) for _, pk, line in lines if line.recurring} \
                if ctx.write_back else {}
            pks = [pk for _, pk, _ in lines]
            for k in range(0, len(pks), batch_size):
                conn.execute(t.arr_rows.delete().where(t.arr_rows.c.line_pk.in_(pks[k:k + batch_size])))
            new = {pk: arr_rows(line, o.currency, ctx.calendar) for o, pk, line in lines}
            count += repo.insert_arr_rows(conn, ((pk, row) for pk, rows in new.items() for row in rows))
            if ctx.write_back:  # the rebuilt rows go to both big objects too, the old ones out of them
                stale = {pk: [r for r in old[pk] if r["period_start"] not in {n.period_start for n in new[pk]}]
                         for pk in old}
                enqueue(conn, [(big, line.id, BIG_DELETE, o.id, {"line_pk": pk, "rows": stale[pk]})
                               for o, pk, line in lines if stale.get(pk) for big in BIG_OBJECTS], _stamp(ctx))
                enqueue(conn, [(big, line.id, "big_object", o.id, {"line_pk": pk})
                               for o, pk, line in lines if line.recurring for big in BIG_OBJECTS], _stamp(ctx))
        conn.execute(update(t.jobs).where(t.jobs.c.kind == "arr_by_period").values(
            status=t.JobStatus.SUCCEEDED, last_error=None, next_attempt_at=None))
        repo.set_meta(conn, "fiscal_calendar", ctx.calendar.fingerprint())
    return count
