"""Issue 11's faster import writes exactly what the previous one wrote, row for row, to the cent.

The previous background jobs are kept here as the oracle: the same generated documents are
imported into two stores, one through today's jobs, one through the oracle's, and every table of
both stores is compared whole. Documents come from the benchmark's generator (its mix of new,
update, renew and cancel lines, with a drawn seed and size) and from the ARR-movements property
test's strategy (orders starting on 1sts, right after another ends, month-end ends, renewals at
new prices), on standard and 4-4-5 calendars.
"""
from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, reject, settings, strategies as st
from sqlalchemy import delete, select, update

from connector import jobs
from connector.clock import FrozenClock
from connector.engine.arr_by_period import arr_rows
from connector.engine.fiscal import ExplicitFiscalCalendar, FiscalPeriod, StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.errors import ValidationFailed
from connector.importer import import_document, parse
from connector.jobs import JobContext, JobRunner
from connector.store import repository as repo
from connector.store import schema as t
from connector.store.db import open_store
from test_arr_movements_properties import CALENDARS, documents

_spec = importlib.util.spec_from_file_location(
    "engine_bench", Path(__file__).resolve().parents[1] / "bench" / "engine_bench.py")
engine_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(engine_bench)


def oracle_arr_by_period(conn, orders, ctx) -> None:
    """jobs.arr_by_period before issue 11: every row an ArrRow, encoded one by one."""
    done = repo.lines_with_arr_rows(conn, [pk for o in orders.values() for pk, _ in o.lines])
    repo.insert_arr_rows(conn, ((pk, row) for o in orders.values() for pk, line in o.lines if pk not in done
                                for row in arr_rows(line, o.currency, ctx.calendar)))


def _calendar_445_from_2020() -> ExplicitFiscalCalendar:
    """4-4-5 years over the benchmark's dates (2021 to 2028 and the renewals after)."""
    periods, start = [], dt.date(2019, 12, 29)
    for year in range(2020, 2032):
        for n, weeks in enumerate([4, 4, 5] * 4, start=1):
            end = start + dt.timedelta(weeks=weeks, days=-1)
            periods.append(FiscalPeriod(start, end, year, (n - 1) // 3 + 1, n))
            start = end + dt.timedelta(days=1)
    return ExplicitFiscalCalendar(periods, "4-4-5 test calendar")


BENCH_CALENDARS = [StandardFiscalCalendar(1), StandardFiscalCalendar(7), _calendar_445_from_2020()]
ORACLE_JOBS = {**jobs.JOBS, "arr_by_period": oracle_arr_by_period}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speed-oracle")
    engines = open_store(f"sqlite:///{folder / 'new.db'}"), open_store(f"sqlite:///{folder / 'old.db'}")
    yield engines
    for engine in engines:
        engine.dispose()


def _import(engine, doc: dict, calendar, monkeypatch, job_table) -> None:
    with engine.begin() as conn:
        for table in reversed(t.metadata.sorted_tables):
            if table.name != "meta":
                conn.execute(delete(table))
        conn.execute(delete(t.meta).where(t.meta.c.key == "fiscal_calendar"))
    clock = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    runner = JobRunner(engine, JobContext(calendar, EngineSettings()), clock, batch_size=7)
    with monkeypatch.context() as m:
        m.setattr(jobs, "JOBS", job_table)
        result = import_document(engine, parse(json.dumps(doc), "doc"), "doc", calendar, EngineSettings(), clock,
                                 runner, batch_size=5)
    assert result.activated and not result.failed_jobs


def _tables(engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {table.name: sorted(tuple(r) for r in conn.execute(select(table)))
                for table in t.metadata.sorted_tables}


def _same(stores, doc, calendar, monkeypatch) -> None:
    new, old = stores
    try:
        _import(new, doc, calendar, monkeypatch, jobs.JOBS)
    except ValidationFailed:
        reject()  # a drawn change the engine refuses
    _import(old, doc, calendar, monkeypatch, ORACLE_JOBS)
    _compare(new, old)


def _compare(new, old) -> None:
    got, expected = _tables(new), _tables(old)
    assert expected["arr_rows"] and expected["order_metrics"]
    for name in expected:
        assert got[name] == expected[name], name


ORACLE_SETTINGS = settings(max_examples=15, deadline=None,
                           suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@ORACLE_SETTINGS
@given(seed=st.integers(0, 2**32), lines=st.integers(1, 60), calendar=st.sampled_from(BENCH_CALENDARS))
def test_the_benchmark_mix_imports_as_before(stores, monkeypatch, seed, lines, calendar):
    new, old = stores
    doc = engine_bench.generate(lines, seed)
    _import(new, doc, calendar, monkeypatch, jobs.JOBS)  # never refused: the benchmark's documents are valid
    _import(old, doc, calendar, monkeypatch, ORACLE_JOBS)
    _compare(new, old)


@ORACLE_SETTINGS
@given(doc=documents(), calendar=st.sampled_from(CALENDARS))
def test_drawn_documents_import_as_before(stores, monkeypatch, doc, calendar):
    _same(stores, doc, calendar, monkeypatch)


def test_jobs_are_stored_as_sqlalchemy_stores_their_times(stores, monkeypatch):
    """save_activations writes jobs with their time encoded once (issue 11): the same text as
    SQLAlchemy's own DateTime writes for the same instant."""
    new, _ = stores
    _import(new, engine_bench.generate(5, 1), BENCH_CALENDARS[0], monkeypatch, jobs.JOBS)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)  # the import's frozen clock
    with new.begin() as conn:
        first = conn.exec_driver_sql("SELECT min(id) FROM jobs").scalar()
        created = conn.exec_driver_sql("SELECT created_at FROM jobs WHERE id = ?", (first,)).scalar()
        conn.execute(update(t.jobs).where(t.jobs.c.id == first).values(updated_at=now))
        written = conn.exec_driver_sql("SELECT updated_at FROM jobs WHERE id = ?", (first,)).scalar()
        assert isinstance(created, str) and created == written
        kinds = conn.exec_driver_sql("SELECT kind, status, attempts, last_error FROM jobs ORDER BY id").all()
    assert [k for k, *_ in kinds[:4]] == list(repo.JOB_KINDS)
    assert {tuple(rest) for _, *rest in kinds} == {("succeeded", 1, None)}


def _oracle_content_hash(doc) -> str:
    """`importer.content_hash` before issue 11 took the serializer's bytes as they are."""
    import hashlib
    text = doc.model_dump_json(exclude={"lines": {"__all__": {"evergreen"}}})
    evergreen = [l.id for l in doc.lines if l.evergreen]
    if evergreen:
        text += "\nevergreen:" + ",".join(evergreen)
    return hashlib.sha256(text.encode()).hexdigest()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), lines=st.integers(1, 40), owner=st.text(max_size=12),
       evergreen=st.booleans())
def test_content_hashes_are_the_fingerprints_orders_were_stored_with(seed, lines, owner, evergreen):
    """An order imported before must match its stored fingerprint, or importing the file again
    would say it changed: the same hash as before, with any owner text (accents, emoji, escapes)
    and with evergreen lines."""
    from connector.importer import content_hash
    from connector.orders import OrderDoc
    raw = engine_bench.generate(lines, seed)["orders"]
    for node in raw:
        node = {**node, "owner": owner.replace("\x00", "")}
        if evergreen and node["lines"][0]["action"] == "new":
            node["lines"] = [{**{k: v for k, v in node["lines"][0].items() if k not in ("end", "term_months")},
                              "evergreen": True}] + node["lines"][1:]
        doc = OrderDoc.model_validate(node)
        assert content_hash(doc) == _oracle_content_hash(doc)
