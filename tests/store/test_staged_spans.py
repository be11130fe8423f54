"""ARR rows staged as spans (`job_rows.arr_spans`, `staging.Writer.put_spans`) and expanded by the
store (`repository.insert_stored_arr_rows`) are exactly the rows `stored_arr_rows` makes, stored as
the driver stores them: on random orders of every action, over standard and 4-4-5 calendars, in
batches whose lines reach periods before and after those already staged."""
from __future__ import annotations

import sqlite3
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from connector import job_rows
from connector.engine.model import Action
from connector.job_rows import PeriodTable, arr_spans, stored_arr_rows
from connector.store import repository as repo, staging
from connector.store.db import attached, open_store
from connector.store.encode import IsoDays, SameDays, Units
from connector.store.staging import SpanRows, StagedSpans

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from engine_builders import Book, D, line, order  # noqa: E402
from test_properties import PROPERTY_SETTINGS, random_orders  # noqa: E402
from test_speed_oracle import CALENDARS, _calendar_445  # noqa: E402

CALENDAR_445 = _calendar_445()


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Two stores reused by every example (emptied each time): one the driver fills, one from spans."""
    folder = tmp_path_factory.mktemp("spans")
    pair = open_store(f"sqlite:///{folder / 'driver.db'}"), open_store(f"sqlite:///{folder / 'spans.db'}")
    yield pair
    for engine in pair:
        engine.dispose()


def _lines(book: Book) -> list[tuple]:
    """Every line the book activated as the jobs see it: (line key, line, currency), keys from 1."""
    return [(pk, ln, a.order.currency) for pk, (a, ln) in enumerate(
        ((a, ln) for a in book.activations for ln in a.lines), start=1)]


def _stored(engine) -> list[tuple]:
    """Every ARR row, with the storage class SQLite keeps each value in."""
    columns = repo.ARR_ROW_COLUMNS
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.exec_driver_sql(
            f"SELECT {', '.join(f'{c}, typeof({c})' for c in columns)} FROM arr_rows"))


@PROPERTY_SETTINGS
@given(data=st.data(), calendar=CALENDARS, count=st.integers(1, 12), batches=st.integers(1, 4),
       latest_first=st.booleans())
def test_spans_expand_to_the_rows_of_every_line(stores, data, calendar, count, batches, latest_first):
    by_driver, by_spans = stores
    book = Book(calendar=calendar)
    random_orders(data, book, count)
    lines = _lines(book)
    expected = stored_arr_rows(lines, calendar, Units(), IsoDays())
    # batches given latest lines first make the table of periods grow backwards too
    ordered = sorted(lines, key=lambda l: l[1].start, reverse=latest_first)
    size = max(1, -(-len(ordered) // batches))
    for engine in stores:
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM arr_rows")
    with by_driver.begin() as conn:
        repo.insert_stored_arr_rows(conn, expected)
    with tempfile.TemporaryDirectory() as folder:
        path = staging.create(Path(folder))
        writer = staging.Writer(str(path))
        periods = PeriodTable(calendar, IsoDays())
        staged = []
        for number, k in enumerate(range(0, len(ordered), size), start=1):
            spans, others, rows = arr_spans(ordered[k:k + size], periods, Units(), periods.day)
            staged.append(writer.put_spans(number, "arr_by_period", spans, others, periods.taken(), rows))
        writer.close()
        with attached(by_spans, path, staging.SCHEMA), by_spans.begin() as conn:
            counted = sum(repo.insert_stored_arr_rows(conn, put) for put in staged)
    assert counted == len(expected) == sum(len(put) for put in staged)
    assert _stored(by_spans) == _stored(by_driver)


def test_most_lines_are_spans_and_a_missing_period_is_an_error_not_fewer_rows(tmp_path):
    book = Book()
    book.activate(order("O-1", "A", line("L-1", item="S-1", quantity=2, start=D("2024-01-15"), term_months=12)))
    book.activate(order("O-2", "A", line("L-2", item="S-2", quantity=1, start=D("2024-03-01"), term_months=24)))
    lines = _lines(book)
    periods = PeriodTable(book.calendar, IsoDays())
    spans, others, count = arr_spans(lines, periods, Units(), periods.day)
    assert len(spans) == 2 and not others and count == 13 + 24
    path = staging.create(tmp_path)
    writer = staging.Writer(str(path))
    put = writer.put_spans(1, "arr_by_period", spans, others, periods.taken(), count)
    writer.close()
    assert isinstance(put, StagedSpans) and put.rows is None
    with sqlite3.connect(path) as conn:  # a period the spans reach, lost
        conn.execute(f"DELETE FROM {staging.PERIODS} WHERE ord = (SELECT max(ord) FROM {staging.PERIODS})")
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    with pytest.raises(RuntimeError, match="ARR rows came out of the staging file's spans, not 37"):
        with attached(engine, path, staging.SCHEMA), engine.begin() as conn:
            repo.insert_stored_arr_rows(conn, put)
    with engine.connect() as conn:  # rolled back whole
        assert conn.exec_driver_sql("SELECT count(*) FROM arr_rows").scalar() == 0
    engine.dispose()


def _spans_for_postgresql(lines, calendar, batches: int, latest_first: bool) -> list[SpanRows]:
    """The ARR rows of these lines as the child sends them to a PostgreSQL store, batch by batch."""
    ordered = sorted(lines, key=lambda l: l[1].start, reverse=latest_first)
    size = max(1, -(-len(ordered) // batches))
    periods = PeriodTable(calendar, SameDays())
    out = []
    for k in range(0, len(ordered), size):
        spans, others, count = arr_spans(ordered[k:k + size], periods, Units(), periods.day)
        out.append(job_rows._copied(periods, "arr_by_period", job_rows.Spans(spans, others, count)))
    return out


@PROPERTY_SETTINGS
@given(data=st.data(), calendar=CALENDARS, count=st.integers(1, 12), batches=st.integers(1, 4),
       latest_first=st.booleans())
def test_spans_for_postgresql_are_the_rows_of_every_line(data, calendar, count, batches, latest_first):
    """What the server expands is checked on a server below; here, the same expansion done in Python
    (`SpanRows.expanded`, which a re-run of the job uses) against `stored_arr_rows`."""
    book = Book(calendar=calendar)
    random_orders(data, book, count)
    lines = _lines(book)
    expected = stored_arr_rows(lines, calendar, Units(), SameDays())
    sent = _spans_for_postgresql(lines, calendar, batches, latest_first)
    assert all(isinstance(put, SpanRows) for put in sent)
    assert sorted(row for put in sent for row in put.expanded()) == sorted(expected)
    assert sum(len(put) for put in sent) == len(expected)


@pytest.mark.postgres
def test_postgresql_expands_the_spans_into_the_rows_the_driver_would_store(tmp_path):
    from store_support import postgres_schema

    book = Book(calendar=CALENDAR_445)
    for n, (start, months, quantity) in enumerate([("2021-01-15", 12, 2), ("2020-06-01", 36, 1),
                                                   ("2022-03-31", 13, 5), ("2021-07-04", 1, 3)], start=1):
        book.activate(order(f"O-{n}", "A", line(f"L-{n}", item=f"S-{n}", quantity=quantity, start=D(start),
                                                term_months=months)))
    book.activate(order("O-5", "A", line("L-5", Action.UPDATE, item="S-2", quantity=4, start=D("2021-02-10"))))
    book.activate(order("O-6", "B", line("L-6", item="S-6", quantity=3, start=D("2021-05-15"), evergreen=True)))
    lines = _lines(book)
    expected = sorted(stored_arr_rows(lines, CALENDAR_445, Units(), SameDays()))
    sent = _spans_for_postgresql(lines, CALENDAR_445, 3, True)
    assert any(put.spans for put in sent) and any(put.rows.count for put in sent)  # spans and rows in full
    with postgres_schema() as url:
        engine = open_store(url)
        try:
            with engine.begin() as conn:
                assert sum(repo.insert_stored_arr_rows(conn, put) for put in sent) == len(expected)
            with engine.connect() as conn:
                stored = sorted(tuple(r) for r in conn.exec_driver_sql(
                    f"SELECT {', '.join(repo.ARR_ROW_COLUMNS)} FROM arr_rows"))
            # the periods in any order: each span's are found by their place once in order
            shuffled = [SpanRows(put.spans, put.periods[::-1], put.rows, put.count) for put in sent]
            with engine.begin() as conn:
                conn.exec_driver_sql("DELETE FROM arr_rows")
                assert sum(repo.insert_stored_arr_rows(conn, put) for put in shuffled) == len(expected)
                again = sorted(tuple(r) for r in conn.exec_driver_sql(
                    f"SELECT {', '.join(repo.ARR_ROW_COLUMNS)} FROM arr_rows"))
            # a period a span starts in, missing: an error, not fewer rows
            first = next(put for put in sent if put.spans)
            starts = {span[1] for span in first.spans}
            broken = SpanRows(first.spans, [p for p in first.periods if p[0] not in starts], first.rows, first.count)
            with pytest.raises(RuntimeError, match="a period not sent with it"):
                with engine.begin() as conn:
                    conn.exec_driver_sql("DELETE FROM arr_rows")
                    repo.insert_stored_arr_rows(conn, broken)
            # a period inside a span, missing: the count says so
            ends = starts | {span[2] for span in first.spans}
            inside = next(p[0] for p in first.periods for span in first.spans
                          if span[1] < p[0] < span[2] and p[0] not in ends)
            holed = SpanRows(first.spans, [p for p in first.periods if p[0] != inside], first.rows, first.count)
            with pytest.raises(RuntimeError, match="ARR rows came out of the spans"):
                with engine.begin() as conn:
                    conn.exec_driver_sql("DELETE FROM arr_rows")
                    repo.insert_stored_arr_rows(conn, holed)
        finally:
            engine.dispose()
    assert stored == expected and again == expected
