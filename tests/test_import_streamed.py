"""`revsync import` streams a file (`scan_file`, `import_file`) in bounded memory, with every result
identical to the whole-document path (`read`, `import_document`): every table of both stores row
for row, the result (activated, already imported, job outcomes), the problems of a bad file in the
same words and order, nothing imported; re-imports skip what is already imported; a crash half-way
is mended by importing the file again."""
from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import delete, select

from connector import importer
from connector.clock import FrozenClock
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.settings import EngineSettings
from connector.errors import ValidationFailed
from connector.importer import import_document, import_file, load_file, read, scan_file
from connector.jobs import JobContext, JobOutcome, JobRunner, Outcomes
from connector.store import repository as repo
from connector.store import schema as t
from connector.store.db import open_store
from test_arr_movements_properties import CALENDARS, documents

_spec = importlib.util.spec_from_file_location(
    "engine_bench", Path(__file__).resolve().parents[1] / "bench" / "engine_bench.py")
engine_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(engine_bench)

CLOCK = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
SETTINGS = settings(max_examples=12, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    folder = tmp_path_factory.mktemp("streamed")
    engines = open_store(f"sqlite:///{folder / 'whole.db'}"), open_store(f"sqlite:///{folder / 'streamed.db'}")
    yield engines
    for engine in engines:
        engine.dispose()


def _empty(engine) -> None:
    with engine.begin() as conn:
        for table in reversed(t.metadata.sorted_tables):
            if table.name != "meta":
                conn.execute(delete(table))
        conn.execute(delete(t.meta).where(t.meta.c.key == "fiscal_calendar"))


def _runner(engine, calendar, page: int = 3, jobs_batch: int = 7, write_back: bool = False) -> JobRunner:
    runner = JobRunner(engine, JobContext(calendar, EngineSettings(), write_back=write_back, clock=CLOCK), CLOCK,
                       batch_size=jobs_batch)
    runner.page_size = page  # several pages, pages ending inside an order's jobs
    return runner


def _whole(engine, path: Path, calendar, batch_size: int = 5, **runner):
    """Today's path, as the command took it before: the file read whole."""
    text, source = load_file(path)
    return import_document(engine, read(text, source), source, calendar, EngineSettings(), CLOCK,
                           _runner(engine, calendar, **runner), batch_size=batch_size)


def _streamed(engine, path: Path, calendar, monkeypatch, batch_size: int = 5, page: int = 3, **runner):
    streamed = scan_file(path)
    assert streamed is not None
    with monkeypatch.context() as m:  # the streamed path itself, not the whole-document fallback
        m.setattr(importer, "import_document", _no_fallback)
        return import_file(engine, streamed, calendar, EngineSettings(), CLOCK,
                           _runner(engine, calendar, page, **runner), batch_size=batch_size)


def _no_fallback(*args, **kwargs):
    raise AssertionError("the streamed import fell back to the whole-document path")


def _tables(engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {table.name: sorted(tuple(r) for r in conn.execute(select(table)))
                for table in t.metadata.sorted_tables}


def _same_results(a, b) -> None:
    assert a.activated == b.activated
    assert a.already_imported == b.already_imported
    assert list(a.jobs) == list(b.jobs)


def _write(tmp_path: Path, doc: dict, name: str = "doc.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


@SETTINGS
@given(seed=st.integers(0, 2**32), lines=st.integers(1, 80), batch=st.integers(1, 9), page=st.integers(1, 40))
def test_the_benchmark_mix_streams_as_it_imports_whole(stores, tmp_path_factory, monkeypatch, seed, lines, batch,
                                                       page):
    whole, streamed = stores
    calendar = StandardFiscalCalendar(1 + seed % 12)
    path = _write(tmp_path_factory.mktemp("doc"), engine_bench.generate(lines, seed))
    for engine in stores:
        _empty(engine)
    expected = _whole(whole, path, calendar, batch)
    got = _streamed(streamed, path, calendar, monkeypatch, batch, page)
    _same_results(got, expected)
    assert _tables(streamed) == _tables(whole)
    # importing the same file again: everything already imported, nothing changes
    expected = _whole(whole, path, calendar, batch)
    got = _streamed(streamed, path, calendar, monkeypatch, batch, page)
    assert got.already_imported and not got.activated and not list(got.jobs)
    _same_results(got, expected)
    assert _tables(streamed) == _tables(whole)


@SETTINGS
@given(doc=documents(), calendar=st.sampled_from(CALENDARS))
def test_drawn_documents_stream_as_they_import_whole(stores, tmp_path_factory, monkeypatch, doc, calendar):
    """Documents the engine may refuse: then both refuse them with the same problems, nothing imported."""
    whole, streamed = stores
    path = _write(tmp_path_factory.mktemp("doc"), doc)
    for engine in stores:
        _empty(engine)
    try:
        expected = _whole(whole, path, calendar)
    except ValidationFailed as exc:
        with pytest.raises(ValidationFailed) as got:
            scanned = scan_file(path)
            assert scanned is not None
            import_file(streamed, scanned, calendar, EngineSettings(), CLOCK, _runner(streamed, calendar))
        assert got.value.problems == exc.problems and got.value.hint == exc.hint
    else:
        _same_results(_streamed(streamed, path, calendar, monkeypatch), expected)
    assert _tables(streamed) == _tables(whole)


def _order(oid: str, account: str = "A1", **line) -> dict:
    return {"id": oid, "account": account, "booked_on": "2023-01-01", "currency": "USD",
            "lines": [{"id": f"L-{oid}", "action": "new", "product": "P0", "quantity": 1, "start": "2023-01-15",
                       "term_months": 12, **line}]}


GOOD = engine_bench.generate(12, 3)
BAD_FILES = {
    "a refused order": {**GOOD, "orders": GOOD["orders"] + [_order("X1", start="2023-03-01", end="2023-02-28",
                                                                   term_months=None)]},
    "a shape problem": {**GOOD, "orders": GOOD["orders"] + [_order("X1", quantity="many")]},
    "an unknown account": {**GOOD, "orders": [_order("X1", account="NOPE")] + GOOD["orders"]},
    "an order twice": {**GOOD, "orders": GOOD["orders"] + GOOD["orders"][:1]},
    "a line id twice": {**GOOD, "orders": GOOD["orders"] + [{**_order("X1"), "lines": GOOD["orders"][0]["lines"]}]},
    "an unknown top-level key": {**GOOD, "colour": "red"},
    "an account twice": {**GOOD, "accounts": GOOD["accounts"] + GOOD["accounts"][:1]},
    "orders not a list": {**GOOD, "orders": {"O": 1}},
    "an order not an object": {**GOOD, "orders": GOOD["orders"] + [7]},
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_bad_file_lists_the_same_problems_and_imports_nothing(stores, tmp_path, name):
    whole, streamed = stores
    calendar = StandardFiscalCalendar(1)
    path = _write(tmp_path, BAD_FILES[name])
    for engine in stores:
        _empty(engine)
    with pytest.raises(ValidationFailed) as expected:
        _whole(whole, path, calendar)
    scanned = scan_file(path)
    with pytest.raises(ValidationFailed) as got:
        if scanned is None:  # what the command does: the whole-document path
            _whole(streamed, path, calendar)
        else:
            import_file(streamed, scanned, calendar, EngineSettings(), CLOCK, _runner(streamed, calendar))
    assert got.value.problems == expected.value.problems and got.value.hint == expected.value.hint
    assert got.value.problems
    assert _tables(streamed) == _tables(whole)
    assert not _tables(streamed)["orders"]


@pytest.mark.parametrize("text", [
    '{"orders": [NaN]}', '{"accounts": [{"id": "\\ud800", "name": "x"}]}', '{"orders": []} trailing', "",
    '{"orders": [], "orders": []}', '[]', '{"orders": [' + "7" * 5001 + "]}", '{"orders": [' + "7" * 101 + "]}"])
def test_files_the_streaming_parser_would_read_otherwise_take_the_whole_path(tmp_path, text):
    path = tmp_path / "f.json"
    path.write_text(text)
    assert scan_file(path) is None


def test_a_long_number_across_two_reads_takes_the_whole_path(tmp_path):
    """More than 100 digits (a Decimal for `read`; over 4,300 crash the C parser), however the file's
    reads cut it."""
    path = tmp_path / "f.json"
    head = '{"accounts": [], "products": [{"id": "' + "x" * (65536 - 80) + '", "list_price": '
    path.write_text(head + "9" * 5001 + "}]}")
    assert len(head) < 65536 < len(head) + 5001
    assert scan_file(path) is None


def test_bytes_that_are_not_utf8_take_the_whole_path(tmp_path):
    path = tmp_path / "f.json"
    path.write_bytes(b'{"accounts": [{"id": "A\xff", "name": "x"}]}')
    assert scan_file(path) is None
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode())
    assert scan_file(bom) is not None and scan_file(bom).orders == len(GOOD["orders"])


@pytest.mark.parametrize("jobs_batch", [7, 10])
def test_an_interrupted_streamed_import_is_finished_by_importing_again(tmp_path, monkeypatch, jobs_batch):
    """Stopped while writing its second batch, an import has written the first whole: with the jobs'
    batches as large as the import's (10), with that batch's jobs done, else (7) with none; importing
    the file again finishes it, every table as one uninterrupted import leaves it."""
    calendar = StandardFiscalCalendar(1)
    path = _write(tmp_path, engine_bench.generate(60, 5))
    clean = open_store(f"sqlite:///{tmp_path / 'clean.db'}")
    _whole(clean, path, calendar, 10, jobs_batch=jobs_batch)
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    real = repo.save_stored_activations
    calls = {"n": 0}

    def dies_on_the_second_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("the machine went down")
        return real(*args, **kwargs)

    monkeypatch.setattr(repo, "save_stored_activations", dies_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        _streamed(store, path, calendar, monkeypatch, 10, jobs_batch=jobs_batch)
    with store.connect() as conn:
        first = set(conn.execute(select(t.orders.c.id)).scalars())
        assert len(first) == 10
        with_rows = set(conn.execute(select(t.order_lines.c.order_id).join(
            t.arr_rows, t.arr_rows.c.line_pk == t.order_lines.c.pk)).scalars())
        pending = conn.execute(select(t.jobs).where(t.jobs.c.status == t.JobStatus.PENDING)).all()
    if jobs_batch == 10:
        assert with_rows and with_rows <= first and not pending
    else:
        assert not with_rows and len(pending) == 4 * 10
    monkeypatch.setattr(repo, "save_stored_activations", real)
    result = _streamed(store, path, calendar, monkeypatch, 10, jobs_batch=jobs_batch)
    assert len(result.already_imported) == 10 and result.activated and not result.failed_jobs
    assert _tables(store) == _tables(clean)
    clean.dispose()
    store.dispose()


def _newest_payloads(engine) -> dict[tuple, str]:
    """The payload the writer sends for each outbox record: its newest entry's."""
    with engine.connect() as conn:
        rows = conn.execute(select(t.outbox.c.object, t.outbox.c.external_id, t.outbox.c.kind,
                                   t.outbox.c.payload).order_by(t.outbox.c.id)).all()
    return {(r.object, r.external_id, r.kind): r.payload for r in rows}


def _no_read_back(*args, **kwargs):
    raise AssertionError("a batch's orders were read back from the store for their jobs")


@pytest.mark.parametrize("write_back", [False, True])
def test_each_batch_s_jobs_run_as_it_is_written(stores, tmp_path, monkeypatch, write_back):
    """With the jobs' batches as large as the import's (as `revsync import` has them), each batch's jobs
    run as soon as it is written, with its orders in hand: nothing is read back, and every table (the
    outbox's snapshots of items and accounts too, with an org configured) and every outcome is as
    when the jobs all run after the last batch."""
    whole, streamed = stores
    for engine in stores:
        _empty(engine)
    calendar = StandardFiscalCalendar(4)
    path = _write(tmp_path, engine_bench.generate(90, 11))
    expected = _whole(whole, path, calendar, 7, jobs_batch=7, write_back=write_back)
    ran = []
    real = JobRunner.run_saved

    def counted(self, saved):
        with streamed.connect() as conn:  # the batch's jobs run once it is written, before the next
            ran.append((len(saved), len(conn.execute(select(t.orders.c.id)).all())))
        return real(self, saved)

    monkeypatch.setattr(repo, "load_orders", _no_read_back)
    monkeypatch.setattr(JobRunner, "run_saved", counted)
    got = _streamed(streamed, path, calendar, monkeypatch, 7, jobs_batch=7, write_back=write_back)
    assert got.activated and not got.failed_jobs
    assert [n for n, _ in ran] == [7] * (len(got.activated) // 7) + ([len(got.activated) % 7] if len(got.activated) % 7 else [])
    assert [stored for _, stored in ran] == [sum(n for n, _ in ran[:i + 1]) for i in range(len(ran))]
    _same_results(got, expected)
    streamed_tables, whole_tables = _tables(streamed), _tables(whole)
    # The outbox's payloads are snapshots of items and accounts as each job batch ran: a batch's run
    # before the next is written may snapshot an item that a later batch changes again. What reaches
    # Salesforce is the same: the writer sends the newest payload of each record only.
    assert _newest_payloads(streamed) == _newest_payloads(whole)
    assert {k: v for k, v in streamed_tables.items() if k != "outbox"} == \
        {k: v for k, v in whole_tables.items() if k != "outbox"}
    if write_back:
        with streamed.connect() as conn:
            assert conn.execute(select(t.outbox)).first() is not None


def test_a_pending_job_sends_the_jobs_after_the_last_batch(stores, tmp_path, monkeypatch):
    """An import that stopped before its jobs ran left them pending: importing the file again runs them
    first, then the new orders' (activation order), all after the last batch, as before."""
    whole, streamed = stores
    calendar = StandardFiscalCalendar(1)
    path = _write(tmp_path, engine_bench.generate(60, 5))
    half = _write(tmp_path, {**engine_bench.generate(60, 5), "orders": engine_bench.generate(60, 5)["orders"][:9]},
                  "half.json")
    for engine in stores:
        _empty(engine)
        deferred = _runner(engine, calendar, jobs_batch=7)
        deferred.deferred = True  # as if the import had stopped before its jobs
        text, source = load_file(half)
        import_document(engine, read(text, source), source, calendar, EngineSettings(), CLOCK, deferred, batch_size=7)
    expected = _whole(whole, path, calendar, 7, jobs_batch=7)
    monkeypatch.setattr(JobRunner, "run_saved", lambda *a: pytest.fail("jobs ran before the pending ones"))
    got = _streamed(streamed, path, calendar, monkeypatch, 7, jobs_batch=7)
    assert len(got.already_imported) == 9 and got.activated and not got.failed_jobs
    assert {o.order_id for o in list(got.jobs)[:4 * 7]} <= set(got.already_imported)
    _same_results(got, expected)
    assert _tables(streamed) == _tables(whole)


def test_the_collector_is_left_as_it_was(tmp_path, monkeypatch):
    """The writing pass freezes what it holds so that each batch's collection skips it: nothing stays
    frozen after the import, whether it ends or stops on an error, and the collector is on again."""
    import gc

    calendar = StandardFiscalCalendar(1)
    path = _write(tmp_path, engine_bench.generate(40, 3))
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    frozen = []
    real = repo.save_stored_activations

    def looks(*args, **kwargs):
        frozen.append(gc.get_freeze_count())
        if len(frozen) == 3:
            raise KeyboardInterrupt("stopped")
        return real(*args, **kwargs)

    monkeypatch.setattr(repo, "save_stored_activations", looks)
    with pytest.raises(KeyboardInterrupt):
        _streamed(store, path, calendar, monkeypatch, 4, jobs_batch=4)
    assert all(n > 0 for n in frozen) and gc.get_freeze_count() == 0 and gc.isenabled()
    monkeypatch.setattr(repo, "save_stored_activations", real)
    assert _streamed(store, path, calendar, monkeypatch, 4, jobs_batch=4).activated
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    store.dispose()


def test_each_order_is_activated_once_and_the_file_not_read_again_to_write_it(stores, tmp_path, monkeypatch):
    """The validating pass keeps its activations (on disk, a chunk at a time): the writing pass writes
    them as they are, with neither a second activation nor a second parse of the file's orders, and
    every table and outcome is the whole-document path's, already imported orders skipped too."""
    whole, streamed = stores
    for engine in stores:
        _empty(engine)
    calendar = StandardFiscalCalendar(4)
    doc = engine_bench.generate(90, 13)
    first = _write(tmp_path, {**doc, "orders": doc["orders"][:11]}, "first.json")
    path = _write(tmp_path, doc)
    for engine in stores:  # some orders already imported: the file's chunks and the batches differ
        _whole(engine, first, calendar, 7, jobs_batch=7)
    expected = _whole(whole, path, calendar, 7, jobs_batch=7)
    activated, parsed = [], []
    real_activate, real_orders = importer.activate, importer._orders

    def counted_activate(order, *args, **kwargs):
        activated.append(order.id)
        return real_activate(order, *args, **kwargs)

    def counted_orders(*args, **kwargs):
        parsed.append(1)
        return real_orders(*args, **kwargs)

    monkeypatch.setattr(importer, "activate", counted_activate)
    monkeypatch.setattr(importer, "_orders", counted_orders)
    got = _streamed(streamed, path, calendar, monkeypatch, 7, jobs_batch=7)
    assert len(got.already_imported) == 11 and got.activated and not got.failed_jobs
    assert activated == got.activated  # once each, in file order
    assert parsed == [1]  # the validating pass alone reads the orders
    _same_results(got, expected)
    assert _tables(streamed) == _tables(whole)


class _Spills:
    """The import's temporary files, to look at once it has ended."""

    def __init__(self, monkeypatch, fails: bool = False) -> None:
        import tempfile

        self.files = []
        real = tempfile.TemporaryFile

        def made(*args, **kwargs):
            if fails:
                raise OSError(28, "No space left on device")
            self.files.append(real(*args, **kwargs))
            return self.files[-1]

        monkeypatch.setattr(importer.tempfile, "TemporaryFile", made)


def test_the_kept_activations_are_let_go_however_the_import_ends(tmp_path, monkeypatch):
    """The temporary file is closed (and so gone) when the import ends, when it stops half-way, and
    when the file falls back to the whole-document path."""
    calendar = StandardFiscalCalendar(1)
    path = _write(tmp_path, engine_bench.generate(40, 3))
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    spills = _Spills(monkeypatch)
    real = repo.save_stored_activations

    def stops(*args, **kwargs):
        raise KeyboardInterrupt("stopped")

    monkeypatch.setattr(repo, "save_stored_activations", stops)
    with pytest.raises(KeyboardInterrupt):
        _streamed(store, path, calendar, monkeypatch, 4, jobs_batch=4)
    monkeypatch.setattr(repo, "save_stored_activations", real)
    assert _streamed(store, path, calendar, monkeypatch, 4, jobs_batch=4).activated
    doc = engine_bench.generate(40, 3)
    doc["orders"].append(doc["orders"][0])  # an order twice: found after the validating pass
    twice = _write(tmp_path, doc, "twice.json")
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    with pytest.raises(ValidationFailed):
        import_file(other, scan_file(twice), calendar, EngineSettings(), CLOCK, _runner(other, calendar),
                    batch_size=4)  # chunks kept before the second copy is met
    assert len(spills.files) == 3 and all(f.closed for f in spills.files)
    with other.connect() as conn:
        assert conn.execute(select(t.orders)).first() is None
    store.dispose()
    other.dispose()


def test_no_room_for_the_kept_activations_says_where_and_imports_nothing(tmp_path, monkeypatch):
    """A full temporary folder stops the import before anything is written, with what to do."""
    from connector.errors import TransientError

    calendar = StandardFiscalCalendar(1)
    path = _write(tmp_path, engine_bench.generate(40, 3))
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    before = _tables(store)
    _Spills(monkeypatch, fails=True)
    with pytest.raises(TransientError) as raised:
        _streamed(store, path, calendar, monkeypatch, 4, jobs_batch=4)
    said = str(raised.value) + " " + (raised.value.hint or "")
    assert "No space left on device" in said and "nothing was imported" in said and "TMPDIR" in said
    import tempfile
    assert tempfile.gettempdir() in said
    assert _tables(store) == before
    store.dispose()


def _plain(value) -> bool:
    """Only the store's plain values, in tuples and lists: nothing of the engine's objects."""
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (str, int, bool, Decimal, dt.date)


def test_the_kept_activations_are_the_store_s_rows(tmp_path):
    """The validating pass keeps each activation as the rows the writing pass inserts (made on both
    cores, not in the writing pass: issue 11): plain values only, so nothing of the ledger is pickled
    (each of its items would get a `__dict__` of its own, 90 MiB at 1,000,000 lines), in file order,
    each with its order's content hash. That they are the rows the whole-document path writes, the
    tests above compare table by table."""
    calendar = StandardFiscalCalendar(1)
    path = _write(tmp_path, engine_bench.generate(40, 3))
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    spill = importer._Spill()
    try:
        the_plan = importer._stream_plan(store, scan_file(path), calendar, EngineSettings(), 4, spill)
        kept = list(spill)
    finally:
        spill.close()
        store.dispose()
    assert len(kept) == the_plan.activations > 0
    assert [index for index, _, _ in kept] == sorted(index for index, _, _ in kept)
    text, source = load_file(path)
    by_id = {o.id: importer.content_hash(o) for o in read(text, source).doc.orders}
    for _, activation, digest in kept:
        assert type(activation) is importer.encode.StoredActivation and _plain(tuple(activation))
        assert digest == by_id[activation.order_id]
        assert len(activation.lines) == len(activation.segments) == len(activation.versions) > 0


def _spill_kinds(spill) -> list[bytes]:
    """The kind of each record of a spill's file, in order (`importer._spilled`)."""
    f = spill._file
    f.flush()
    f.seek(0)
    kinds = []
    while header := f.read(importer._HEADER.size):
        kind, size = importer._HEADER.unpack(header)
        kinds.append(kind)
        f.seek(size, 1)
    return kinds


def test_the_kept_activations_come_back_as_they_were_kept_in_either_form(tmp_path):
    """SQLite's rows are kept by marshal (text, numbers, booleans; the TCV and customer-since made
    plain and back), PostgreSQL's (dates as dates) and anything else by pickle: each comes back
    equal and of the same types, an empty chunk between them ends nothing, and the kinds are as
    said (marshal for SQLite's rows, or the validating pass would have lost the speed it is for)."""
    calendar = StandardFiscalCalendar(1)
    path = _write(tmp_path, engine_bench.generate(40, 3))
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    spill = importer._Spill()
    try:
        importer._stream_plan(store, scan_file(path), calendar, EngineSettings(), 4, spill)
        kept = list(spill)
        assert set(_spill_kinds(spill)) == {b"M"}
    finally:
        spill.close()
        store.dispose()
    assert any(a.customer_since is not None for _, a, _ in kept) and any(a.tcv % 1 for _, a, _ in kept)
    as_postgres = [(i, a._replace(order=(*a.order[:3], dt.date.fromisoformat(a.order[3]), *a.order[4:])), d)
                   for i, a, d in kept]
    again = importer._Spill()
    try:
        again.add(kept[:3])
        again.add([])
        again.add(as_postgres[3:5])
        again.add([(99, "anything else", "x")])
        again.add(kept[5:])
        assert _spill_kinds(again) == [b"M", b"M", b"P", b"P", b"M"]
        back = list(again)
    finally:
        again.close()
    expected = kept[:3] + as_postgres[3:5] + [(99, "anything else", "x")] + kept[5:]
    assert back == expected
    for (_, a, _), (_, b, _) in zip(back, expected):
        if isinstance(a, importer.encode.StoredActivation):
            assert type(a.tcv) is Decimal and str(a.tcv) == str(b.tcv)
            assert type(a.customer_since) is type(b.customer_since)
            assert [type(v) for v in a.lines[0]] == [type(v) for v in b.lines[0]]


def test_a_spill_cut_short_is_an_error_not_its_end(tmp_path):
    """A record whose bytes stop early (a full disk under the fork) is an error, never read as the
    end of what was kept."""
    spill = importer._Spill()
    try:
        spill.add([(0, "activation", "digest")])
        spill._file.truncate(spill._file.tell() - 1)
        with pytest.raises(EOFError):
            list(spill)
    finally:
        spill.close()


def test_the_smaller_page_cache_is_the_import_s_only(tmp_path, monkeypatch):
    """While a streamed import runs, SQLite connections have a smaller page cache; after it, the store's."""
    engine = open_store(f"sqlite:///{tmp_path / 's.db'}")
    with engine.connect() as conn:
        own = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    seen = []
    real = repo.save_stored_activations

    def looks(conn, *args, **kwargs):
        seen.append(conn.exec_driver_sql("PRAGMA cache_size").scalar())
        return real(conn, *args, **kwargs)

    monkeypatch.setattr(repo, "save_stored_activations", looks)
    _streamed(engine, _write(tmp_path, engine_bench.generate(20, 2)), StandardFiscalCalendar(1), monkeypatch)
    assert seen and set(seen) == {-importer.IMPORT_CACHE_KIB} != {own}
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == own
    engine.dispose()


def test_outcomes_read_back_as_a_list():
    given_ = [JobOutcome("O1", "credit_review", True), JobOutcome("O2", "credit_review", False, "boom"),
              JobOutcome("O1", "arr_by_period", True), JobOutcome("O2", "arr_by_period", True)]
    kept = Outcomes()
    kept.extend(given_[:2])
    kept.extend(given_[2:])
    assert list(kept) == given_ and len(kept) == 4
    assert kept[-1] == given_[-1] and kept[1:3] == given_[1:3]
    with pytest.raises(IndexError):
        kept[4]


#: the check before `_read_otherwise`: one regular expression (kept as the oracle)
_OTHERWISE_BEFORE = re.compile(rb"\\u[dD][89abcdefABCDEF]|[0-9]{101}")


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.sampled_from([b"\\", b"u", b"d", b"D", b"8", b"F", b"c", b"7" * 20, b"7" * 33, b"1",
                                       b'"', b" ", b"x", b"\xc3\xa9"]), max_size=40))
def test_what_the_streaming_parser_reads_otherwise_is_found_as_before(parts):
    data = b"".join(parts)
    assert importer._read_otherwise(data) == (_OTHERWISE_BEFORE.search(data) is not None)


def test_a_hundred_digits_stream_a_hundred_and_one_do_not():
    assert not importer._read_otherwise(b'{"n": ' + b"9" * 100 + b"}")
    assert importer._read_otherwise(b'{"n": ' + b"9" * 101 + b"}")
    assert importer._read_otherwise(b'{"id": "\\uDFFF"}') and not importer._read_otherwise(b'{"id": "\\u00e9"}')
