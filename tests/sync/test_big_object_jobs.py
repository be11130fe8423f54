"""The writer sends ARR rows to the big objects in Bulk API 2.0 jobs of whole lines, up to BULK_ROWS
rows a job, holding one job's rows at a time (a line with more rows than that goes alone)."""
from __future__ import annotations

from sqlalchemy import func, select
from sync_support import close, connect

from connector.daemon import Daemon
from connector.store import schema as t
from connector.writers import outbox

import datetime as dt
from decimal import Decimal

BIG = ("ArrByPeriod__b", "ArrByPeriodByCustomer__b")


def jobs_expected(rows_by_line: list[int], limit: int) -> list[int]:
    """The rows of each job: whole lines in order, a job closed when the next line would pass the limit."""
    jobs: list[int] = []
    for n in rows_by_line:
        if jobs and jobs[-1] + n <= limit:
            jobs[-1] += n
        else:
            jobs.append(n)
    return jobs


def test_rows_go_in_jobs_of_whole_lines_each_row_once(tmp_path, monkeypatch):
    monkeypatch.setattr(outbox, "BULK_ROWS", 10)
    monkeypatch.setattr(outbox, "LOOKUP_SIZE", 2)  # the lines' rows read two lines a query
    c = connect(tmp_path, monkeypatch)
    try:
        uploads: list[int] = []
        real = c.runtime.client.bulk_ingest

        def counting(sobject, operation, records, **kwargs):
            uploads.append(len(records))
            header = records.csv().split(b"\n", 1)[0].split(b",")  # each row made into its CSV line as it came
            assert b"attributes" not in header and b"OrderProduct__c" in header
            return real(sobject, operation, records, **kwargs)

        monkeypatch.setattr(c.runtime.client, "bulk_ingest", counting)
        daemon = Daemon(c.service, c.clock, interval=dt.timedelta(hours=1), writer=c.runtime.writer)
        assert daemon.run(once=True, install_signals=False).error is None
        with c.app.store.connect() as conn:
            by_line = [n for _, n in conn.execute(
                select(t.arr_rows.c.line_pk, func.count()).group_by(t.arr_rows.c.line_pk)
                .order_by(t.arr_rows.c.line_pk))]
            states = set(conn.execute(select(t.outbox.c.state).where(t.outbox.c.kind == "big_object")).scalars())
        assert sum(by_line) == 26 and max(by_line) > 10  # the worked example has a line longer than a job
        assert uploads == jobs_expected(by_line, 10) * 2  # the same jobs for each big object
        assert states == {"SUCCESS"}
        for big in BIG:
            rows = c.org.records(big)
            keys = [(r["OrderProduct__c"], r["StartDate__c"]) for r in rows]
            assert len(rows) == 26 and len(set(keys)) == 26  # every row once
    finally:
        close(c)


def test_a_line_whose_row_cannot_be_sent_fails_alone_and_the_others_go(tmp_path, monkeypatch):
    """A value the CSV cannot carry (here a Decimal NaN out of the mapping) fails that line's entry
    with the reason, before any job is made; the other lines' rows all land, each once."""
    c = connect(tmp_path, monkeypatch)
    try:
        mapping_set = type(c.runtime.writer.mappings)
        real_write = mapping_set.write
        bad: dict[str, str] = {}

        def write(self, sobject, values, **kwargs):
            record = real_write(self, sobject, values, **kwargs)
            if sobject == BIG[0]:
                line = bad.setdefault("line", record["OrderProduct__c"])
                if record["OrderProduct__c"] == line:
                    record = {**record, next(k for k, v in record.items() if isinstance(v, Decimal)): Decimal("NaN")}
            return record

        monkeypatch.setattr(mapping_set, "write", write)
        daemon = Daemon(c.service, c.clock, interval=dt.timedelta(hours=1), writer=c.runtime.writer)
        assert daemon.run(once=True, install_signals=False).error is None
        with c.app.store.connect() as conn:
            entries = conn.execute(select(t.outbox.c.object, t.outbox.c.state, t.outbox.c.last_message)
                                   .where(t.outbox.c.kind == "big_object")).all()
            total = conn.execute(select(func.count()).select_from(t.arr_rows)).scalar_one()
        failed = [e for e in entries if e.state != "SUCCESS"]
        assert [(e.object, e.state) for e in failed] == [(BIG[0], "FAILED")]
        assert f"cannot be sent to {BIG[0]}" in failed[0].last_message and "NaN" in failed[0].last_message
        sent = c.org.records(BIG[0])
        assert bad["line"] not in {r["OrderProduct__c"] for r in sent}
        keys = [(r["OrderProduct__c"], r["StartDate__c"]) for r in sent]
        assert 0 < len(sent) < total and len(set(keys)) == len(sent)
        assert len(c.org.records(BIG[1])) == total  # the other big object got every row
    finally:
        close(c)


def test_lines_with_no_arr_rows_are_done_without_a_job(tmp_path, monkeypatch):
    """Entries whose lines have no ARR rows (here: every line's rows hidden from the writer) need
    no upload: they are done, with no Bulk API job and no error, and the org's big objects stay empty."""
    monkeypatch.setattr(outbox, "arr_rows_of_lines", lambda conn, pks: {})
    c = connect(tmp_path, monkeypatch)
    try:
        jobs: list[str] = []
        real = c.runtime.client.bulk_ingest

        def counting(sobject, *args, **kwargs):
            jobs.append(sobject)
            return real(sobject, *args, **kwargs)

        monkeypatch.setattr(c.runtime.client, "bulk_ingest", counting)
        daemon = Daemon(c.service, c.clock, interval=dt.timedelta(hours=1), writer=c.runtime.writer)
        assert daemon.run(once=True, install_signals=False).error is None
        with c.app.store.connect() as conn:
            entries = conn.execute(select(t.outbox.c.state, t.outbox.c.last_message)
                                   .where(t.outbox.c.kind == "big_object")).all()
        assert entries and {(e.state, e.last_message) for e in entries} == {("SUCCESS", "no ARR rows to send")}
        assert jobs == [] and all(c.org.records(big) == [] for big in BIG)
    finally:
        close(c)
