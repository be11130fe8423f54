"""The lines an import has just written, handed to its second core in their stored form
(`repository.StoredOrder.stored`) and read back there (`encode.decoded_line`), are the lines the
store reads back (`repository.load_orders`): the same values of the same types, on both stores."""
from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from fractions import Fraction

import pytest
from sqlalchemy import event

from connector import job_rows
from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.importer import ImportDoc, _store_catalogue, plan
from connector.store import encode, repository as repo, schema
from connector.store.db import open_store
from store_support import postgres_schema

from test_staging import engine_bench

CLOCK = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
CALENDAR = StandardFiscalCalendar(1)


def _document() -> dict:
    doc = engine_bench.generate(400, 11)
    doc["accounts"].append({"id": "AE", "name": "Evergreen Co", "bill_cycle_day": 5})
    doc["orders"].append({"id": "OE-1", "account": "AE", "owner": "U1", "booked_on": "2022-03-01",
                          "currency": "EUR", "lines": [
                              {"id": "LE-1", "action": "new", "product": "P1", "subscription": "SE-1",
                               "quantity": 7, "start": "2022-03-01", "evergreen": True}]})
    doc["orders"].append({"id": "OE-2", "account": "AE", "owner": "U1", "booked_on": "2022-06-10",
                          "currency": "EUR", "lines": [
                              {"id": "LE-2", "action": "update", "product": "P1", "subscription": "SE-1",
                               "quantity": 9, "start": "2022-06-10"}]})
    return doc


def _types(obj) -> list[type]:
    return [type(getattr(obj, f.name)) for f in dataclasses.fields(obj)]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
        yield engine
        engine.dispose()
    else:
        with postgres_schema() as url:
            engine = open_store(url)
            yield engine
            engine.dispose()


def test_the_lines_handed_over_as_written_are_the_lines_the_store_reads_back(store):
    the_plan = plan(store, ImportDoc.model_validate(_document()), "doc", CALENDAR, EngineSettings())
    with store.begin() as conn:
        _store_catalogue(conn, the_plan, CALENDAR)
        names = {a.id: a.name for a in repo.load_accounts(conn).values()}
        saved = repo.save_activations(conn, the_plan.activations, origin="engine", hashes=the_plan.hashes,
                                      customer_names=names, now=CLOCK.now())
    with store.connect() as conn:
        read_back = repo.load_orders(conn, list(saved))
        # the jobs as written are the pending jobs the store reads back, in the same order
        assert all(o.jobs is not None for o in saved.values())
        pending = [tuple(j) for j in repo.pending_jobs_of(conn, list(saved))]
        assert repo.pending_jobs_saved(conn, saved) == pending and len(pending) == 4 * len(saved)
        unknown = {o.id: dataclasses.replace(o, jobs=None) for o in saved.values()}  # ids not given: read back
        assert [tuple(j) for j in repo.pending_jobs_saved(conn, unknown)] == pending
    # given the engine, it connects only when it must read the jobs back
    checkouts: list[object] = []
    count = checkouts.append
    event.listen(store, "engine_connect", count)
    try:
        assert repo.pending_jobs_saved(store, saved) == pending and checkouts == []
        assert [tuple(j) for j in repo.pending_jobs_saved(store, unknown)] == pending and len(checkouts) == 1
    finally:
        event.remove(store, "engine_connect", count)
    days, exacts = encode.StoredDays(), encode.StoredExacts()
    lines = 0
    kinds = set()
    for order_id, order in saved.items():
        assert order.stored is not None
        handed = job_rows.decoded((None, order.stored), days, exacts)
        expected = read_back[order_id].lines
        assert handed == expected
        for (_, got), (_, want) in zip(handed, expected):  # equal values of the same types, piece by piece
            assert _types(got) == _types(want)
            assert [_types(s) for s in got.segments] == [_types(s) for s in want.segments]
            kinds.add((got.action, got.evergreen, isinstance(got.list_price_monthly, Fraction)))
        lines += len(handed)
    assert lines == sum(len(a.lines) for a in the_plan.activations)
    # the document's variety reached the check: every action, an evergreen line, a yearly price / 12
    assert {k[0].value for k in kinds} == {"new", "update", "renew", "cancel"}
    assert any(k[1] for k in kinds) and any(k[2] for k in kinds)


def test_the_stored_form_is_the_order_of_the_tables_columns():
    from connector.store import schema as t

    assert repo._LINE_COLUMNS == encode.LINE_COLUMNS
    assert encode.LINE_COLUMNS == tuple(c.name for c in t.order_lines.columns if c.name != "pk")
    assert encode.SEGMENT_COLUMNS == tuple(c.name for c in t.line_segments.columns)


def test_sqlite_line_keys_are_known_before_the_insert_and_no_other_writer_can_take_them(tmp_path):
    path = tmp_path / "store.db"
    store = open_store(f"sqlite:///{path}")
    doc = engine_bench.generate(40, 3)
    the_plan = plan(store, ImportDoc.model_validate(doc), "doc", CALENDAR, EngineSettings())
    with store.begin() as conn:
        _store_catalogue(conn, the_plan, CALENDAR)
        names = {a.id: a.name for a in repo.load_accounts(conn).values()}
        first, rest = the_plan.activations[:3], the_plan.activations[3:]
        repo.save_activations(conn, first, origin="engine", hashes=the_plan.hashes, customer_names=names,
                              now=CLOCK.now())
    with store.begin() as conn:
        largest = conn.exec_driver_sql("SELECT max(pk) FROM order_lines").scalar()
        assert repo._next_pks(conn, schema.order_lines, 2) is None  # nothing written yet: no lock held
        conn.exec_driver_sql("INSERT INTO meta (key, value) VALUES ('a write', 'takes the lock')")
        keys = repo._next_pks(conn, schema.order_lines, 3)
        assert keys == [largest + 1, largest + 2, largest + 3]  # what SQLite gives: one more than the largest
        other = sqlite3.connect(path, timeout=0.1)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("INSERT INTO meta (key, value) VALUES ('another', 'writer')")
        other.close()
        conn.rollback()
    with store.begin() as conn:
        saved = repo.save_activations(conn, rest, origin="engine", hashes=the_plan.hashes, customer_names=names,
                                      now=CLOCK.now())
        given = sorted(pk for o in saved.values() for pk, _ in o.lines)
        assert given == list(range(largest + 1, largest + 1 + len(given)))
    with store.connect() as conn:
        read_back = repo.load_orders(conn, list(saved))
    assert {o.id: [(pk, l.id) for pk, l in o.lines] for o in saved.values()} == {
        o.id: [(pk, l.id) for pk, l in o.lines] for o in read_back.values()}
    store.dispose()


def test_sqlite_in_takes_one_parameter_and_probes_the_index(tmp_path):
    from sqlalchemy import select

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    the_plan = plan(store, ImportDoc.model_validate(engine_bench.generate(40, 3)), "doc", CALENDAR, EngineSettings())
    with store.begin() as conn:
        _store_catalogue(conn, the_plan, CALENDAR)
        names = {a.id: a.name for a in repo.load_accounts(conn).values()}
        repo.save_activations(conn, the_plan.activations, origin="engine", hashes=the_plan.hashes,
                              customer_names=names, now=CLOCK.now())
    with store.connect() as conn:
        ids = [l.id for a in the_plan.activations for l in a.lines][::3] + ["no such line"]
        statement = select(schema.order_lines.c.id).where(repo._in(conn, schema.order_lines.c.id, ids))
        compiled = statement.compile(conn)
        assert len(compiled.params) == 1 and "json_each" in str(compiled)
        assert sorted(conn.execute(statement).scalars()) == sorted(ids[:-1])
        query_plan = " ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled),
                                                                   tuple(compiled.params.values())))
        assert "SEARCH order_lines USING" in query_plan and "SCAN order_lines" not in query_plan
        keys = [pk for (pk,) in conn.exec_driver_sql("SELECT pk FROM order_lines LIMIT 5")]
        assert sorted(conn.execute(select(schema.order_lines.c.pk).where(
            repo._in(conn, schema.order_lines.c.pk, keys))).scalars()) == sorted(keys)
    store.dispose()


def test_item_tcv_is_the_sum_of_its_lines_tcv_to_the_unit(store):
    from sqlalchemy import select

    from connector import jobs
    from connector.importer import import_document

    runner = jobs.JobRunner(store, jobs.JobContext(CALENDAR, EngineSettings()), CLOCK)
    runner.second_core = False
    result = import_document(store, ImportDoc.model_validate(_document()), "doc", CALENDAR, EngineSettings(), CLOCK,
                             runner)
    assert result.activated and not result.failed_jobs
    with store.begin() as conn:
        lines = conn.execute(select(schema.order_lines.c.pk, schema.order_lines.c.item)).all()
        tcv = dict(conn.execute(select(schema.line_metrics.c.line_pk, schema.line_metrics.c.tcv)).all())
        # an item one of whose lines has no metrics yet: only the lines that have them count
        gone = lines[0].pk
        conn.execute(schema.line_metrics.delete().where(schema.line_metrics.c.line_pk == gone))
        tcv.pop(gone)
        items = sorted({l.item for l in lines})
        repo.refresh_item_metrics(conn, items + items[:3])
        stored = dict(conn.execute(select(schema.item_metrics.c.item, schema.item_metrics.c.tcv)).all())
    expected: dict = {}
    for l in lines:
        expected[l.item] = expected.get(l.item, 0) + tcv.get(l.pk, 0)
    assert stored == expected and len(stored) == len(items)
    assert any(v != int(v) for v in stored.values())  # cents and below reach the check


def test_the_child_takes_each_lines_tcv_as_stored_and_makes_the_same_rows(tmp_path):
    """The jobs' child takes a line's TCV from its stored row (`job_rows.batch_rows`) rather than
    working it out again from the decoded pieces: the same line and order metric rows as from the
    engine's lines; and it is the stored value that is used (a changed one shows up)."""
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    the_plan = plan(store, ImportDoc.model_validate(_document()), "doc", CALENDAR, EngineSettings())
    with store.begin() as conn:
        _store_catalogue(conn, the_plan, CALENDAR)
        names = {a.id: a.name for a in repo.load_accounts(conn).values()}
        saved = repo.save_activations(conn, the_plan.activations, origin="engine", hashes=the_plan.hashes,
                                      customer_names=names, now=CLOCK.now())
    store.dispose()
    which = EngineSettings().order_metrics
    kinds = [(kind, list(saved)) for kind in ("subscription_metrics", "order_metrics")]
    as_engine = {o.id: (o.currency, (o.decoded, None)) for o in saved.values()}
    as_stored = {o.id: (o.currency, (None, o.stored)) for o in saved.values()}
    want = job_rows.batch_rows((kinds, as_engine), CALENDAR, which, "sqlite")
    got = job_rows.batch_rows((kinds, as_stored), CALENDAR, which, "sqlite")
    assert got == want and len(got["subscription_metrics"]) > 400 and len(got["order_metrics"]) > 1000
    # a one-piece recurring line's stored TCV, changed by a cent: both rows follow it
    order = next(o for o in saved.values() for _, line in o.decoded if line.recurring and len(line.segments) == 1)
    pk, line = next((pk, line) for pk, line in order.decoded if line.recurring and len(line.segments) == 1)
    at = encode.LINE_COLUMNS.index("tcv")
    changed = [(k, row[:at] + (row[at] + 100,) + row[at + 1:] if k == pk else row, segments)
               for k, row, segments in order.stored]
    as_stored[order.id] = (order.currency, (None, changed))
    got = job_rows.batch_rows((kinds, as_stored), CALENDAR, which, "sqlite")
    line_metric = {r[0]: r for r in want["subscription_metrics"]}[pk]
    assert {r[0]: r for r in got["subscription_metrics"]}[pk] == (pk, line_metric[1], line_metric[2] + 100)
    tcv_rows = {(r[0], r[1]): r[3] for r in got["order_metrics"]}
    assert tcv_rows[(pk, "tcv")] == {(r[0], r[1]): r[3] for r in want["order_metrics"]}[(pk, "tcv")] + 100


def test_jobs_and_versions_made_inside_the_store_are_the_rows_bound_one_by_one(tmp_path, monkeypatch):
    """On SQLite the jobs of orders numbered here are inserted by one `INSERT … SELECT` over the
    orders just written, and the item versions by one over the lines just written; orders numbered
    by the daemon (`seqs`) bind their jobs row by row, and versions that are not their lines' rows
    are bound as they are. Both ways give the same rows, key for key, and the same pending jobs back."""
    the_plan = plan(open_store(f"sqlite:///{tmp_path / 'plan.db'}"), ImportDoc.model_validate(_document()), "doc",
                    CALENDAR, EngineSettings())
    tables, returned = [], []
    for name, numbered in (("inside.db", False), ("bound.db", True)):
        if numbered:
            monkeypatch.setattr(repo, "_versions_of_lines", lambda versions, lines: False)
        engine = open_store(f"sqlite:///{tmp_path / name}")
        statements: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        with engine.begin() as conn:
            _store_catalogue(conn, the_plan, CALENDAR)
            names = {a.id: a.name for a in repo.load_accounts(conn).values()}
            half = len(the_plan.activations) // 2
            got = {}
            for batch in (the_plan.activations[:half], the_plan.activations[half:]):  # keys go on across batches
                first = repo.next_order_seq(conn)
                seqs = {a.order.id: first + i for i, a in enumerate(batch)} if numbered else None
                got.update(repo.save_activations(conn, batch, origin="engine", hashes=the_plan.hashes,
                                                 customer_names=names, now=CLOCK.now(), seqs=seqs))
        with engine.connect() as conn:
            tables.append([conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY {key}").all()
                           for table, key in (("jobs", "id"), ("item_versions", "line_pk"))])
        returned.append({o: [tuple(j) for j in order.jobs] for o, order in got.items()})
        made_inside = [s for s in statements if s.startswith(("INSERT INTO jobs", "INSERT INTO item_versions"))
                       and "SELECT" in s]
        assert len(made_inside) == (0 if numbered else 4), name
        engine.dispose()
    (jobs, versions), (bound_jobs, bound_versions) = tables
    assert jobs == bound_jobs and len(jobs) == 4 * len(the_plan.activations)
    assert versions == bound_versions and len(versions) == sum(len(a.lines) for a in the_plan.activations)
    assert {row[-1] for row in versions} == {"active", "cancelled"}
    assert returned[0] == returned[1]
    assert [row[0] for row in jobs] == list(range(1, len(jobs) + 1))


def test_versions_that_are_not_their_lines_rows_are_bound_as_they_are():
    line = encode.LINE_COLUMNS
    row = tuple({"item": "S-1", "start": "2024-01-01", "end": "2024-12-31", "quantity": "3", "unit_price": "9.5",
                 "action": "cancel"}.get(c, None) for c in line)
    version = ("S-1", 2, "2024-01-01", "2024-12-31", "3", "9.5", "cancelled")
    assert repo._versions_of_lines([version], [row])
    for i, other in ((0, "S-2"), (1, "2"), (2, "2024-01-02"), (4, "4"), (5, "9.50"), (6, "active")):
        assert not repo._versions_of_lines([version[:i] + (other,) + version[i + 1:]], [row]), i
    assert not repo._versions_of_lines([version], [row, row])
    renewed = tuple("renew" if c == "action" else value for c, value in zip(line, row))
    assert repo._versions_of_lines([version[:6] + ("active",)], [renewed])
    assert not repo._versions_of_lines([version], [renewed])
    assert repo._versions_of_lines([], [])


def test_stored_activations_hold_plain_text_not_enum_members(tmp_path):
    """The rows the validating processes keep and the writing pass binds hold each enumeration's
    value as plain text (cheaper to pickle than a member, and what the store reads back)."""
    the_plan = plan(open_store(f"sqlite:///{tmp_path / 'plan.db'}"), ImportDoc.model_validate(_document()), "doc",
                    CALENDAR, EngineSettings())
    units, day = encode.encoders("sqlite")
    kinds = set()
    for a in the_plan.activations:
        stored = encode.stored_activation(a, "Customer", units, day)
        for row in [*stored.lines, *stored.items]:
            kinds.update(type(v) for v in row if isinstance(v, str))
        assert [r[3] for r in stored.lines] == [line.action.value for line in a.lines]
        assert [r[1] for r in stored.items] == [item.kind.value for item in a.items]
    assert kinds == {str}
