"""The rows the background jobs write, worked out from activated lines alone, in the store's form:
subscription metrics, order metrics and ARR by period (`connector.jobs.PREPARE`).

Nothing here opens the store, nor imports SQLAlchemy: the import's second core runs this module
as a process of its own (`python -m connector.job_rows`, started by `connector.jobs.RowsAhead`),
which reads batches of lines on its standard input and answers each with its rows on its standard
output, one pickled object each way per batch; on SQLite the rows themselves go into a staging
file the store reads them from (`connector.store.staging`). The same functions make the rows in the importing process
when there is no such process, so the rows are the same either way.
"""
from __future__ import annotations

import datetime as dt
import functools
import gc
import pickle
import signal
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Sequence

from connector.engine.activation import line_tcv
from connector.engine.arr_by_period import arr_rows
from connector.engine.fiscal import FiscalCalendar
from connector.engine.metrics import generated_reason, metric_amounts, order_metrics
from connector.engine.model import ActivatedLine, OrderMetric
from connector.engine.money import STORE_SCALE, round_money
from connector.store import encode, staging

#: (line key, line, currency): a line as the jobs read it
Lines = Iterable[tuple[int, ActivatedLine, str]]

_ZERO, _TWELVE = Decimal(0), Decimal(12)


#: a line key → its TCV as stored with the line (`encode.LINE_COLUMNS`: rounded, in units)
StoredTcvs = dict[int, int]

_TCV = encode.LINE_COLUMNS.index("tcv")


def line_metric_rows(lines: Lines, units: dict, tcvs: StoredTcvs | None = None) -> list[tuple]:
    """Each line's (line key, MRR, TCV) in stored units: the subscription metrics job's rows. A
    line's TCV in `tcvs` is taken as it is, not worked out again from its pieces."""
    tcvs = tcvs or {}
    return [(pk, units[round_money(line.delta_mrr, currency)],
             tcvs[pk] if pk in tcvs else units[round_money(line_tcv(line), currency)])
            for pk, line, currency in lines]


#: the type every order metric row has (`OrderMetric.type`)
_REGULAR = OrderMetric._field_defaults["type"]


def order_metric_rows(lines: Lines, which: Sequence[str], units: dict, day: dict,
                      tcvs: StoredTcvs | None = None) -> list[tuple]:
    """Each line's order metrics (`which` of them) in their stored form: the order metrics job's
    rows, as `encode.stored_order_metrics` makes them of `order_metrics`, built straight from the
    amounts (`metric_amounts`) without a metric object per row. A line's TCV in `tcvs` is taken as
    it is (`order_metrics`' `tcv`)."""
    tcvs = tcvs or {}
    lines = list(lines)
    if len({pk for pk, _, _ in lines}) != len(lines):  # a line twice: numbered across both, as ever
        return encode.stored_order_metrics(
            ((pk, m) for pk, line, currency in lines
             for m in order_metrics(line, currency, which,
                                    Decimal(tcvs[pk]).scaleb(-STORE_SCALE) if pk in tcvs else None)), units, day)
    wanted = set(which)
    rows: list[tuple] = []
    append = rows.append
    for pk, line, currency in lines:
        reason = generated_reason(line)
        amounts = metric_amounts(line, currency, wanted, Decimal(tcvs[pk]).scaleb(-STORE_SCALE) if pk in tcvs else None)
        if len(line.segments) <= 1:  # each metric once: all numbered 0
            for metric, amount, start, end in amounts:
                append((pk, metric, 0, units[amount], day[start], day[end], _REGULAR, reason))
            continue
        seqs: dict[str, int] = {}  # numbered per metric, as `stored_order_metrics` numbers them
        for metric, amount, start, end in amounts:
            seq = seqs[metric] = seqs.get(metric, -1) + 1
            append((pk, metric, seq, units[amount], day[start], day[end], _REGULAR, reason))
    return rows


def stored_arr_rows(lines: Lines, calendar: FiscalCalendar, units: dict, day: dict) -> list[tuple]:
    """The ARR rows of these (line key, line, currency), in the store's form (`encode.encoders`).

    The same rows as encoding `arr_rows(line, currency, calendar)` one by one, made without them
    for a line of one piece (most lines): its rows take four values, worked out once per line,
    and each period's stored dates once per call (issue 11: building and encoding a named tuple
    per row cost more than inserting it). Other lines go through `arr_rows`.
    """
    out: list[tuple] = []
    append = out.append
    spans: dict[dt.date, tuple] = {}  # period start → (stored start, stored end, end_excl)
    for pk, line, currency in lines:
        segments = line.segments
        if not line.recurring or not segments:
            continue
        if len(segments) != 1 or line.evergreen:
            out.extend((pk, day[r[1]], day[r[2]], units[r[3]], units[r[4]], units[r[5]], units[r[6]])
                       for r in arr_rows(line, currency, calendar))
            continue
        (s,) = segments
        start, end_excl = s.start, s.end_excl
        mrr_cmrr, mrr_arr = units[round_money(s.mrr, currency)], units[round_money(s.mrr * _TWELVE, currency)]
        zero_cmrr, zero_arr = units[round_money(_ZERO, currency)], units[round_money(_ZERO * _TWELVE, currency)]
        for period in calendar.periods_touching(start, end_excl):
            span = spans.get(period.start)
            if span is None:
                span = spans[period.start] = (day[period.start], day[period.end], period.end_excl)
            opens = start < period.start
            closes = span[2] < end_excl
            append((pk, span[0], span[1], mrr_cmrr if opens else zero_cmrr, mrr_cmrr if closes else zero_cmrr,
                    mrr_arr if opens else zero_arr, mrr_arr if closes else zero_arr))
    return out


class PeriodTable:
    """The fiscal periods ARR spans refer to, each under its start's ordinal, in stored form: a
    contiguous run of the calendar's periods that grows as lines reach beyond it. `new` holds
    those not yet handed to the store (the staging file's `periods` table)."""

    def __init__(self, calendar: FiscalCalendar, day: dict) -> None:
        self.calendar, self.day = calendar, day
        self.first: dt.date | None = None  # start of the first period held
        self.last: dt.date | None = None   # start of the last period held
        self.new: list[tuple[int, Any, Any]] = []
        #: every period held, in order
        self.held: list[tuple[int, Any, Any]] = []

    def cover(self, first: Any, last: Any) -> None:
        """Hold every period from `first` to `last` (FiscalPeriods), and those between them and what is held."""
        if self.first is not None and self.last is not None:
            if self.first <= first.start and last.start <= self.last:
                return
            held = (self.first, self.last)
            begin, end = min(first.start, self.first), max(last.start, self.last)
        else:
            held, begin, end = None, first.start, last.start
        day = self.day
        added = False
        for period in self.calendar.periods_touching(begin, self.calendar.period_of(end).end_excl):
            if held is None or not held[0] <= period.start <= held[1]:
                self.new.append((period.start.toordinal(), day[period.start], day[period.end]))
                added = True
        if added:
            self.held = sorted(set(self.held).union(self.new))
        self.first, self.last = begin, end

    def taken(self) -> list[tuple[int, Any, Any]]:
        """The periods added since the last call."""
        new, self.new = self.new, []
        return new


def arr_spans(lines: Lines, periods: PeriodTable, units: dict, day: dict) -> tuple[list[tuple], list[tuple], int]:
    """The ARR rows of these lines as `stored_arr_rows` makes them, but a line of one piece (most
    lines) given as one span instead of a row per period: (line key, ordinal of its first period's
    start, of its last's, CMRR, zero CMRR, ARR, zero ARR). Its rows are every period of `periods`
    from the first to the last, opening at zero in the first and closing at zero in the last,
    at the span's amounts otherwise: what `stored_arr_rows` works out period by period (a period
    after the first starts after the line does; one before the last ends before the line does).
    The store expands the spans itself (`repository.insert_stored_arr_rows`), so about twenty
    rows per line are neither built here nor passed through the driver (issue 11).

    Returns (spans, the rows of the other lines, how many rows in all)."""
    spans: list[tuple] = []
    others: list[tuple] = []
    count = 0
    calendar = periods.calendar
    for pk, line, currency in lines:
        segments = line.segments
        if not line.recurring or not segments:
            continue
        if len(segments) != 1 or line.evergreen:
            rows = stored_arr_rows([(pk, line, currency)], calendar, units, day)
            others.extend(rows)
            count += len(rows)
            continue
        (s,) = segments
        span = calendar.span_touching(s.start, s.end_excl)  # its ends alone: not every period between
        if span is None:
            continue
        first, last, touching = span
        periods.cover(first, last)
        count += touching
        spans.append((pk, first.start.toordinal(), last.start.toordinal(),
                      units[round_money(s.mrr, currency)], units[round_money(_ZERO, currency)],
                      units[round_money(s.mrr * _TWELVE, currency)], units[round_money(_ZERO * _TWELVE, currency)]))
    return spans, others, count


#: the reference cycles the batches leave behind are collected every this many batches (one
#: collection per batch cost about 0.7 s of 100,000 lines: issue 11)
COLLECT_EVERY = 8

#: the kinds of job whose rows are worked out here
KINDS = ("subscription_metrics", "order_metrics", "arr_by_period")


def rows(kind: str, lines: Lines, calendar: FiscalCalendar, which: Sequence[str], dialect: str,
         tcvs: StoredTcvs | None = None) -> list[tuple]:
    """The rows of one kind of job for these lines, for a store of this dialect; `tcvs`: the TCV
    stored with some of them."""
    units, day = encode.encoders(dialect)
    if kind == "subscription_metrics":
        return line_metric_rows(lines, units, tcvs)
    if kind == "order_metrics":
        return order_metric_rows(lines, which, units, day, tcvs)
    if kind == "arr_by_period":
        return stored_arr_rows(lines, calendar, units, day)
    raise ValueError(f"no rows are worked out ahead for jobs of kind {kind!r}")


#: an order's lines as the importing process sends them: either the engine's (line key, line)
#: pairs, or the lines as it has just written them (`repository.StoredOrder.stored`: line key, line
#: row, segment rows), which pickle several times faster and are read back here (`decoded`)
OrderLines = tuple[list[tuple[int, ActivatedLine]] | None, list[tuple[int, tuple, list[tuple]]] | None]
#: a batch as the importing process sends it: each kind of job with its orders, and each order's
#: currency and lines
Batch = tuple[list[tuple[str, list[str]]], dict[str, tuple[str, OrderLines]]]


def decoded(lines: OrderLines, days: dict, exacts: dict) -> list[tuple[int, ActivatedLine]]:
    """An order's (line key, line) pairs from either form of `OrderLines`."""
    pairs, stored = lines
    if pairs is not None:
        return pairs
    assert stored is not None
    return [(pk, encode.decoded_line(row, segments, days, exacts)) for pk, row, segments in stored]


@dataclass
class Spans:
    """A batch's ARR rows as `arr_spans` gives them."""

    spans: list[tuple]
    others: list[tuple]
    count: int


def batch_rows(batch: Batch, calendar: FiscalCalendar, which: Sequence[str], dialect: str,
               periods: PeriodTable | None = None) -> dict[str, Any]:
    """The rows of each kind of job of a batch; with `periods`, the ARR rows as `Spans`. A kind
    whose rows cannot be worked out is left out: its job works them out itself, and fails as it
    would have."""
    kinds, orders = batch
    days, exacts = encode.StoredDays(), encode.StoredExacts()
    lines = {o: (currency, decoded(order_lines, days, exacts)) for o, (currency, order_lines) in orders.items()}
    # the TCV each line was stored with, rather than worked out again from its decoded pieces
    # (about a third of the line metrics' time: issue 11)
    tcvs = {pk: row[_TCV] for _, (_, stored) in orders.values() if stored is not None for pk, row, _ in stored}
    out: dict[str, Any] = {}
    for kind, order_ids in kinds:
        its_lines = [(pk, line, lines[o][0]) for o in order_ids for pk, line in lines[o][1]]
        try:
            if periods is not None and kind == "arr_by_period":
                out[kind] = Spans(*arr_spans(its_lines, periods, encode.Units(), periods.day))
            else:
                out[kind] = rows(kind, its_lines, calendar, which, dialect, tcvs)
        except Exception:  # noqa: BLE001 - the job works them out itself, and fails as it would
            pass
    return out


def _copied(periods: PeriodTable | None, _kind: str, rows: Any) -> Any:
    """A kind's rows as PostgreSQL takes them: COPY text, or spans with the periods they reach."""
    if isinstance(rows, Spans):
        assert periods is not None
        periods.taken()  # sent whole with each batch (`held`): a few hundred at most
        return staging.SpanRows(rows.spans, periods.held, staging.copy_text(rows.others), rows.count)
    return staging.copy_text(rows)


def _staged(writer: staging.Writer, number: int, periods: PeriodTable | None, out: dict[str, Any]) -> dict[str, Any]:
    """Each kind's rows put in the staging file; rows that cannot be are given back as they are,
    and spans that cannot be are left out (the job works those rows out itself)."""
    answer: dict[str, Any] = {}
    for kind, kind_rows in out.items():
        if isinstance(kind_rows, Spans):
            assert periods is not None
            new = periods.taken()
            try:
                answer[kind] = writer.put_spans(number, kind, kind_rows.spans, kind_rows.others, new, kind_rows.count)
            except Exception:  # noqa: BLE001 - the periods are staged with a later batch's spans
                periods.new[:0] = new
        else:
            answer.update(converted({kind: kind_rows}, functools.partial(writer.put, number)))
    return answer


def converted(out: dict[str, list], convert: Callable[[str, list], Any]) -> dict[str, Any]:
    """Each kind's rows in the form `convert` gives them (put in the staging file, or made COPY
    text), or as they are when they cannot be (the importing process then inserts them itself:
    a full disk, a value COPY text cannot hold)."""
    answer: dict[str, Any] = {}
    for kind, kind_rows in out.items():
        try:
            answer[kind] = convert(kind, kind_rows)
        except Exception:  # noqa: BLE001 - the rows go back the other way
            if not isinstance(kind_rows, Spans):  # spans are left out: the job works those rows out itself
                answer[kind] = kind_rows
    return answer


def serve(source: BinaryIO, sink: BinaryIO) -> None:
    """The second core's process: the context first ((calendar, order metrics, dialect, staging
    file or None)), then batches ((number, the last batch whose rows the importing process has
    used, the batch)), each answered with its rows, in order, until its input ends (the importing
    process closed it, or ended). With a staging file (SQLite), the rows are put there and the
    answer names their tables; for PostgreSQL they go back as COPY text (`connector.store.staging`)."""
    calendar, which, dialect, staging_file = pickle.load(source)
    writer = staging.Writer(staging_file) if staging_file else None
    # on SQLite the ARR rows are staged as spans over a table of periods (`arr_spans`)
    # and on PostgreSQL as spans sent with the periods they reach (`staging.SpanRows`)
    periods = (PeriodTable(calendar, encode.IsoDays()) if writer is not None and dialect == "sqlite" else
               PeriodTable(calendar, encode.SameDays()) if dialect == "postgresql" else None)
    gc.disable()  # as an import (connector.jobs.collector_paused); each batch is collected after it
    gc.freeze()
    try:
        while True:
            try:
                number, used, batch = pickle.load(source)
            except EOFError:
                return
            out: dict = batch_rows(batch, calendar, which, dialect, periods)
            if dialect == "postgresql":
                out = converted(out, functools.partial(_copied, periods))
            elif writer is not None:
                try:
                    writer.drop_upto(used)
                except Exception:  # noqa: BLE001 - a table left behind costs only room in a scratch file
                    pass
                out = _staged(writer, number, periods, out)
            pickle.dump(out, sink, protocol=pickle.HIGHEST_PROTOCOL)
            sink.flush()
            del batch, out
            if number % COLLECT_EVERY == 0:  # what each batch leaves behind, every few batches
                gc.collect()
                gc.freeze()
    finally:
        if writer is not None:
            writer.close()
            # the input ended: the importing process is done with the file, or is gone (killed,
            # it could not remove it itself)
            staging.remove(Path(staging_file))


if __name__ == "__main__":
    # Ctrl-C reaches every process of the terminal: the importing process stops this one itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
    except BrokenPipeError:  # the importing process went away while a batch's rows were written
        pass
