"""`revsync worker`: engine work taken from a PostgreSQL store by any number of processes.

The work is the activation of the Salesforce-activated orders the daemon leaves in the activation
queue (`[workers] enabled`: connector.ingest.Ingestor.stage_activations, each with the activation
number the daemon gave it), and the background jobs of activated orders (credit review,
subscription metrics, order metrics, ARR by period: connector.jobs), pending or failed and due
again. It is partitioned by account: a worker claims a batch of whole accounts, activates their
queued orders in the daemon's order, runs every job of their orders in activation order, and
releases them. Two workers never hold the same account, so one account's orders stay in
activation order (an update needs the subscription its account's earlier order made; credit
review draws an account's credit order by order); different accounts share nothing the
activation or the jobs write (lines, items and account figures all belong to one account).

A claim is a row of `work_claims` per account, taken with SELECT … FOR UPDATE SKIP LOCKED (workers
never wait for each other's claims) and stamped with the worker, a fresh token and an expiry on
the database's clock (workers on other machines need not agree on the time). Every transaction
that records work ends with the fence (`Claim.fence`): it renews the claim's expiry only where the
token is still this worker's, and rolls the transaction back otherwise. So:

- a worker killed mid-job loses nothing: its open transaction dies with its connection, what it
  had committed is done (an activation takes its orders off the queue, and a job is recorded done,
  in the transaction that writes their results), and its claim expires after
  `[workers] claim_seconds`, when another worker takes it over;
- a worker paused past its expiry whose accounts were taken over writes nothing more for them:
  its fence finds another token, and its transaction rolls back. Nothing is done twice.

The sync daemon keeps the one Salesforce reader and the one writer per org (connector.lease):
it reads the orders to activate and their items, and sends what the workers put in the outbox.
SQLite keeps the single-process mode: there the daemon activates and runs the jobs itself.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import Connection, Engine, exists, func, or_, select, union, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import make_url

from connector.errors import ConfigError, Problem
from connector.jobs import FenceLost, JobOutcome, JobRunner
from connector.store import schema as t
from connector.store.db import store_unavailable

log = logging.getLogger(__name__)


def require_postgresql(store: Engine | str) -> None:
    """ConfigError (exit 2) unless the store (or store URL) is PostgreSQL: workers share nothing but it."""
    dialect = store.dialect.name if isinstance(store, Engine) else make_url(store).get_backend_name()
    if dialect != "postgresql":
        raise ConfigError("[store] url", [Problem(
            "[store] url", f"`revsync worker` needs a PostgreSQL store; this one is {dialect}")],
            hint="SQLite keeps the single-process mode: `revsync sync` (or `revsync import`) runs the "
                 "background jobs itself; to run workers, move the store to PostgreSQL")


@dataclass
class Claim:
    """Accounts one worker holds, under one token, until the fence finds the token changed."""

    accounts: list[str]
    token: str
    seconds: float

    def fence(self, conn: Connection) -> None:
        """Inside a job's transaction, before it commits: renew the claim if it is still ours, else
        raise FenceLost (the transaction rolls back; another worker has these accounts now).

        The UPDATE locks the claim rows until the commit, so a takeover cannot slip in between.
        """
        renewed = conn.execute(update(t.work_claims)
                               .where(t.work_claims.c.account.in_(self.accounts),
                                      t.work_claims.c.token == self.token)
                               .values(expires_at=func.clock_timestamp() + dt.timedelta(seconds=self.seconds))).rowcount
        if renewed != len(self.accounts):
            raise FenceLost(f"{len(self.accounts) - renewed} of {len(self.accounts)} claimed account(s) "
                            "were taken over by another worker")


#: the longest a worker waits between tries while the store is unavailable
MAX_OUTAGE_WAIT_SECONDS = 60.0


@dataclass
class WorkerReport:
    """What one worker did."""

    claims: int = 0
    accounts: int = 0
    jobs: int = 0
    failed: int = 0
    lost: int = 0
    #: tries that met the store unavailable and waited
    store_outages: int = 0
    outcomes: list[JobOutcome] = field(default_factory=list)


class Worker:
    """Claims accounts with engine work, runs their jobs, releases them; see the module's notes."""

    def __init__(self, store: Engine, runner: JobRunner, *, claim_seconds: float = 60.0,
                 accounts_per_claim: int = 200, poll_seconds: float = 2.0, name: str | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 activate: Callable[[list[str], Callable[[Connection], None]], int] | None = None):
        require_postgresql(store)
        self.store = store
        self.runner = runner
        self.claim_seconds = claim_seconds
        self.accounts_per_claim = accounts_per_claim
        self.poll_seconds = poll_seconds
        #: the org whose part of the store this worker serves (None: a one-org configuration)
        self.org: str | None = None
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._sleep = sleep
        #: activates the queued orders of claimed accounts, fenced (connector.ingest.Ingestor.activate_staged)
        self.activate = activate
        #: called before each claim (e.g. the app's calendar refresh: Period records the daemon took in)
        self.before_claim: Callable[[], None] = lambda: None
        self._outages = 0  # failed tries in a row while the store is unavailable
        self._in_hand: Claim | None = None  # a claim a failure left unreleased

    # -- what there is to do ------------------------------------------------------------------------

    def _work(self):
        """Jobs a worker may run now: pending, or failed with their backoff passed."""
        return or_(t.jobs.c.status == t.JobStatus.PENDING, self.runner.failed_condition(due_only=True))

    def _accounts_with_work(self):
        with_jobs = select(t.orders.c.account).join(t.jobs, t.jobs.c.order_id == t.orders.c.id).where(self._work())
        if self.activate is None:
            return with_jobs.distinct()
        return union(with_jobs, select(t.activation_queue.c.account))  # UNION: distinct

    def work_left(self) -> bool:
        """Whether any order is left to activate or job to run now, claimed or not."""
        with self.store.connect() as conn:
            if self.activate is not None and conn.execute(select(t.activation_queue.c.order_id).limit(1)).first():
                return True
            return bool(conn.execute(select(exists().where(self._work()))).scalar())

    # -- claims ------------------------------------------------------------------------------------

    def claim(self) -> Claim | None:
        """Claim up to `accounts_per_claim` accounts with work that no live claim holds (None: none)."""
        claim = self._take()
        if claim is None:
            # accounts with new work get their row (rows stay: an account's next orders reuse it)
            with self.store.begin() as conn:
                work = self._accounts_with_work().subquery()
                conn.execute(pg_insert(t.work_claims).from_select(
                    ["account"], select(work.c.account).order_by(work.c.account))
                    .on_conflict_do_nothing(index_elements=["account"]))
            claim = self._take()
        return claim

    def _take(self) -> Claim | None:
        token = uuid.uuid4().hex
        with self.store.begin() as conn:
            free = (select(t.work_claims.c.account)
                    .where(t.work_claims.c.account.in_(self._accounts_with_work()),
                           or_(t.work_claims.c.expires_at.is_(None), t.work_claims.c.expires_at < func.clock_timestamp()))
                    .order_by(t.work_claims.c.account).limit(self.accounts_per_claim)
                    .with_for_update(skip_locked=True))
            accounts = list(conn.execute(free).scalars())
            if not accounts:
                return None
            taken_over = conn.execute(select(t.work_claims.c.account, t.work_claims.c.claimed_by).where(
                t.work_claims.c.account.in_(accounts), t.work_claims.c.claimed_by.is_not(None))).all()
            for account, holder in taken_over:
                log.warning("taking over account %s from worker %s, whose claim expired", account, holder)
            conn.execute(update(t.work_claims).where(t.work_claims.c.account.in_(accounts)).values(
                claimed_by=self.name, token=token,
                expires_at=func.clock_timestamp() + dt.timedelta(seconds=self.claim_seconds)))
        return Claim(accounts, token, self.claim_seconds)

    def release(self, claim: Claim) -> None:
        """Give the accounts back (a claim another worker took over is left alone)."""
        with self.store.begin() as conn:
            conn.execute(update(t.work_claims).where(t.work_claims.c.account.in_(claim.accounts),
                                                     t.work_claims.c.token == claim.token)
                         .values(claimed_by=None, token=None, expires_at=None))

    # -- running -----------------------------------------------------------------------------------

    def process(self, claim: Claim) -> list[JobOutcome]:
        """Run the claimed accounts' jobs, every commit fenced by the claim; FenceLost if taken over."""
        if self.activate is not None:
            self.activate(claim.accounts, claim.fence)  # first: their jobs are run below
        runner = JobRunner(self.runner.engine, self.runner.ctx, self.runner.clock,
                           max_attempts=self.runner.max_attempts, backoff_seconds=self.runner.backoff_seconds,
                           batch_size=self.runner.batch_size, fence=claim.fence)
        return runner.run_accounts(claim.accounts)

    def run_once(self, report: WorkerReport) -> bool:
        """Claim, run and release one batch of accounts; False when there was nothing to claim."""
        self.before_claim()
        if self._in_hand is not None:  # held when the store went away: given back now that it answers
            self.release(self._in_hand)
            self._in_hand = None
        claim = self.claim()
        self._outages = 0  # the store answers
        if claim is None:
            return False
        report.claims += 1
        try:
            outcomes = self.process(claim)
        except FenceLost as exc:
            report.lost += 1
            log.warning("worker %s dropped its claim of %d account(s): %s", self.name, len(claim.accounts), exc)
            return True
        except Exception:
            self._in_hand = claim  # e.g. the store unavailable: released once it is back (or it expires)
            raise
        report.accounts += len(claim.accounts)
        report.jobs += len(outcomes)
        report.failed += sum(not o.ok for o in outcomes)
        report.outcomes.extend(o for o in outcomes if not o.ok)
        try:
            self.release(claim)
        except Exception:
            self._in_hand = claim
            raise
        return True

    def run(self, *, until_idle: bool = False, stopping: Callable[[], bool] = lambda: False) -> WorkerReport:
        """Work until `stopping()` (between claims), or, with `until_idle`, until no job is left to run
        now (jobs other workers hold count as left: their claims may expire and need taking over).
        A store that is unavailable for a while (a server restart, a failover) is waited out."""
        report = WorkerReport()
        while not stopping():
            try:
                if self.run_once(report):
                    continue
                if until_idle and not self.work_left():
                    break
            except Exception as exc:  # noqa: BLE001 - sorted by wait_out
                if not self.wait_out(exc, report):
                    raise
                continue
            self._sleep(self.poll_seconds)
        return report

    def wait_out(self, exc: BaseException, report: WorkerReport) -> bool:
        """Back off when `exc` is the store being unavailable (True), as the sync daemon does; False
        for anything else. The transaction in hand was rolled back: the claim's accounts are worked
        again once the store is back, by this worker or, after the claim expires, another."""
        reason = store_unavailable(exc)
        if reason is None:
            return False
        self._outages += 1
        report.store_outages += 1
        wait = min(MAX_OUTAGE_WAIT_SECONDS, self.poll_seconds * 2 ** min(self._outages - 1, 16))
        log.warning("worker %s: the store is unavailable (%s); trying again in %.0f s", self.name, reason, wait,
                    extra={"org": self.org})
        self._sleep(wait)
        return True
