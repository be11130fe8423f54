"""The writer sends ARR rows to the big objects in Bulk API 2.0 jobs of whole lines, up to BULK_ROWS
rows a job, holding one job's rows at a time (a line with more rows than that goes alone)."""
from __future__ import annotations

from sqlalchemy import func, select
from sync_support import close, connect

from connector.daemon import Daemon
from connector.store import schema as t
from connector.writers import outbox

import datetime as dt

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
