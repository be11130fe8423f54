"""Background jobs after activation (SPEC section 3): credit review, subscription metrics, order
metrics, ARR by period. Each runs in its own transaction, is recorded with status, attempts and
error, and changes nothing when run again on an order it has already processed.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Callable, Iterable

from sqlalchemy import Connection, Engine, select, update

from connector.clock import Clock
from connector.engine.arr_by_period import arr_rows
from connector.engine.activation import line_tcv
from connector.engine.billing import billing_schedule
from connector.engine.credits import review_credits
from connector.engine.fiscal import FiscalCalendar
from connector.engine.metrics import order_metrics
from connector.engine.money import round_money
from connector.engine.settings import EngineSettings
from connector.store import repository as repo
from connector.store import schema as t

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobContext:
    """What every job needs: the calendar and settings in force."""

    calendar: FiscalCalendar
    settings: EngineSettings


def credit_review(conn: Connection, order_id: str, ctx: JobContext) -> None:
    """Draw prepaid credit for the order's credit-eligible lines, once per order."""
    if repo.has_drawdowns(conn, order_id):
        return
    order, lines = repo.load_order_lines(conn, order_id)
    balances = repo.credit_balances(conn, order["account"])
    drawdowns = review_credits(order_id, order["account"], order["currency"], [l for _, l in lines], balances)
    repo.save_drawdowns(conn, drawdowns, {l.id: pk for pk, l in lines})


def subscription_metrics(conn: Connection, order_id: str, ctx: JobContext) -> None:
    """Each line's MRR and TCV, and the TCV of the items they provision."""
    order, lines = repo.load_order_lines(conn, order_id)
    currency = order["currency"]
    repo.replace_line_metrics(conn, [dict(line_pk=pk, mrr=round_money(l.delta_mrr, currency),
                                          tcv=round_money(line_tcv(l), currency)) for pk, l in lines])
    repo.refresh_item_metrics(conn, [l.item for _, l in lines])


def order_metrics_job(conn: Connection, order_id: str, ctx: JobContext) -> None:
    """Zuora-style order metrics and billing schedules of the order's lines."""
    order, lines = repo.load_order_lines(conn, order_id)
    currency = order["currency"]
    metrics, schedules = [], []
    for pk, line in lines:
        metrics.extend((pk, m) for m in order_metrics(line, currency, ctx.settings.order_metrics))
        schedules.extend((pk, p) for p in billing_schedule(line, currency))
    repo.replace_order_metrics(conn, [pk for pk, _ in lines], metrics, schedules)


def arr_by_period(conn: Connection, order_id: str, ctx: JobContext) -> None:
    """ARR-by-period rows of the order's lines; lines that have rows keep them untouched."""
    order, lines = repo.load_order_lines(conn, order_id)
    done = repo.lines_with_arr_rows(conn, [pk for pk, _ in lines])
    repo.insert_arr_rows(conn, ((pk, row) for pk, line in lines if pk not in done
                                for row in arr_rows(line, order["currency"], ctx.calendar)))


JOBS: dict[str, Callable[[Connection, str, JobContext], None]] = {
    "credit_review": credit_review,
    "subscription_metrics": subscription_metrics,
    "order_metrics": order_metrics_job,
    "arr_by_period": arr_by_period,
}
assert tuple(JOBS) == repo.JOB_KINDS


@dataclass
class JobOutcome:
    """How one job run ended."""

    order_id: str
    kind: str
    ok: bool
    error: str | None = None


class JobRunner:
    """Runs recorded jobs, each in its own transaction, recording failures instead of raising."""

    def __init__(self, engine: Engine, ctx: JobContext, clock: Clock, *, max_attempts: int = 5,
                 backoff_seconds: float = 30.0):
        self.engine = engine
        self.ctx = ctx
        self.clock = clock
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds

    def run(self, job_id: int, order_id: str, kind: str) -> JobOutcome:
        """Run one job; on failure record the error and when it may be tried again."""
        try:
            with self.engine.begin() as conn:
                JOBS[kind](conn, order_id, self.ctx)
                conn.execute(update(t.jobs).where(t.jobs.c.id == job_id).values(
                    status="succeeded", attempts=t.jobs.c.attempts + 1, last_error=None,
                    updated_at=self.clock.now(), next_attempt_at=None))
            return JobOutcome(order_id, kind, True)
        except Exception as exc:  # a failing job never rolls back or blocks the activation
            message = f"{type(exc).__name__}: {exc}"
            log.warning("job %s for order %s failed: %s", kind, order_id, message)
            with self.engine.begin() as conn:
                attempts = conn.execute(select(t.jobs.c.attempts).where(t.jobs.c.id == job_id)).scalar() or 0
                delay = self.backoff_seconds * (2 ** attempts)
                conn.execute(update(t.jobs).where(t.jobs.c.id == job_id).values(
                    status="failed", attempts=attempts + 1, last_error=message[:2000],
                    updated_at=self.clock.now(),
                    next_attempt_at=self.clock.now() + dt.timedelta(seconds=delay)))
            return JobOutcome(order_id, kind, False, message)

    def run_pending(self, order_ids: Iterable[str] | None = None) -> list[JobOutcome]:
        """Run every pending job (of these orders), in activation order and job order."""
        return self._run_where(t.jobs.c.status == "pending", order_ids)

    def retry_failed(self, order_ids: Iterable[str] | None = None, *, due_only: bool = False) -> list[JobOutcome]:
        """Run failed jobs again (all of them, or those whose backoff has passed)."""
        cond = t.jobs.c.status == "failed"
        if due_only:
            cond = cond & (t.jobs.c.attempts < self.max_attempts) & (t.jobs.c.next_attempt_at <= self.clock.now())
        return self._run_where(cond, order_ids)

    def _run_where(self, cond, order_ids: Iterable[str] | None) -> list[JobOutcome]:
        query = (select(t.jobs.c.id, t.jobs.c.order_id, t.jobs.c.kind)
                 .join(t.orders, t.orders.c.id == t.jobs.c.order_id).where(cond)
                 .order_by(t.orders.c.seq, t.jobs.c.id))
        if order_ids is not None:
            query = query.where(t.jobs.c.order_id.in_(list(order_ids)))
        with self.engine.connect() as conn:
            todo = conn.execute(query).all()
        return [self.run(job.id, job.order_id, job.kind) for job in todo]


def regenerate_arr(engine: Engine, ctx: JobContext) -> int:
    """Rebuild every ARR row on the current calendar in one transaction (SPEC 7's sanctioned rewrite)."""
    with engine.begin() as conn:
        conn.execute(t.arr_rows.delete())
        count = 0
        order_ids = conn.execute(select(t.orders.c.id).order_by(t.orders.c.seq)).scalars().all()
        for order_id in order_ids:
            order, lines = repo.load_order_lines(conn, order_id)
            count += repo.insert_arr_rows(conn, ((pk, row) for pk, line in lines
                                                 for row in arr_rows(line, order["currency"], ctx.calendar)))
        conn.execute(update(t.jobs).where(t.jobs.c.kind == "arr_by_period").values(
            status="succeeded", last_error=None, next_attempt_at=None))
        repo.set_meta(conn, "fiscal_calendar", ctx.calendar.fingerprint())
    return count
