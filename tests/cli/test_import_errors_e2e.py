"""Bad import files: nothing is imported, exit 2, and stderr names every problem by order, line and field."""
from __future__ import annotations

import datetime as dt

import pytest

from cli_support import ACCOUNTS, PRODUCTS, Call, run_all, snapshot, store_url, workdir, write_doc

pytestmark = pytest.mark.slow


def _order(oid: str, *lines: dict, account: str = "A") -> dict:
    return {"id": oid, "account": account, "owner": "Chloe", "booked_on": "2023-01-01", "currency": "USD",
            "lines": list(lines)}


def _line(lid: str, **fields) -> dict:
    return {"id": lid, "action": "new", "product": "SEAT", "quantity": 1, **fields}


def _periods_csv() -> str:
    """Calendar months of 2023 and 2024 only, as an explicit periods file."""
    rows = ["start,end"]
    for year in (2023, 2024):
        for month in range(1, 13):
            start = dt.date(year, month, 1)
            end = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1))
            rows.append(f"{start},{end}")
    return "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    wd = workdir(tmp_path_factory.mktemp("bad"), "wd", config='[fiscal]\nperiods_file = "periods.csv"\n')
    (wd / "periods.csv").write_text(_periods_csv())
    base = {"accounts": ACCOUNTS, "products": PRODUCTS}
    shape = {**base, "colour": "red", "orders": [
        _order("X-1", _line("XL-1", start="2023-03-01", end="2023-02-28"),
               _line("XL-2", start="2023-01-01", end="2023-12-31", discount="10%"),
               _line("XL-3", start="2023-01-01", end="2023-12-31", unit_price="abc")),
        _order("X-2", _line("XL-4", action="update", start="2023-01-01")),
        _order("X-3", _line("XL-5", start="2023-05-01", end="2023-04-30", seats=3)),
    ]}
    semantic = {**base, "orders": [
        _order("Y-1", _line("YL-1", product="NOPE", subscription="S-Y1", start="2023-01-01", end="2023-12-31")),
        _order("Y-2", _line("YL-2", action="update", subscription="S-404", quantity=3, start="2023-03-01")),
        _order("Y-3", _line("YL-3", subscription="S-9", start="2023-01-01", end="2023-06-30")),
        _order("Y-4", _line("YL-4", action="update", subscription="S-9", quantity=3, start="2023-09-01")),
        _order("Y-5", _line("YL-5", subscription="S-10", start="2024-06-01", end="2025-05-31")),
        _order("Y-6", _line("YL-6", subscription="S-11", start="2023-01-01", end="2023-12-31"), account="ZZ"),
    ]}
    files = {"shape": write_doc(wd / "shape.json", shape), "semantic": write_doc(wd / "semantic.json", semantic)}
    (wd / "broken.json").write_text('{"orders": [\n  {"id": "O-1",\n')
    files["broken"] = wd / "broken.json"
    # the store is created first: every import now reads it (to check what a broken order does not
    # hide), and several commands creating one new SQLite store at once race (see the report);
    # `status` only reads, and creates no store: it is made here, empty
    from connector.store.db import open_store

    open_store(store_url(wd)).dispose()
    results = run_all([Call(wd, ("import", str(path))) for path in files.values()])
    return {"wd": wd, **dict(zip(files, results))}


def _problem_lines(result) -> list[str]:
    return [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("- ")]


def test_shape_errors_are_all_listed_with_order_line_and_field(runs):
    out = runs["shape"]
    assert out.code == 2
    lines = _problem_lines(out)
    expected = [("order X-1, line XL-1, field end", "before"),
                ("order X-1, line XL-2, field discount", "unknown field"),
                ("order X-1, line XL-3, field unit_price", "abc"),
                ("order X-2, line XL-4, field subscription", "required"),
                ("order X-3, line XL-5, field seats", "unknown field"),
                ("order X-3, line XL-5, field end", "before"),
                ("field colour", "unknown field")]
    for where, what in expected:
        assert any(line.startswith(f"- {where}:") and what in line for line in lines), (where, out.stderr)
    assert len(lines) == len(expected)
    assert "nothing was changed" in out.stderr


def test_reference_and_activation_errors_are_all_listed(runs):
    out = runs["semantic"]
    assert out.code == 2
    lines = _problem_lines(out)
    expected = [("order Y-1, line YL-1, field product", "NOPE"),
                ("order Y-2, line YL-2, field subscription", "S-404"),
                ("order Y-4, line YL-4, field start", "2023-09-01"),
                ("order Y-5, line YL-5", "2025-05-31"),
                ("order Y-6, field account", "ZZ")]
    for where, what in expected:
        assert any(line.startswith(f"- {where}") and what in line for line in lines), (where, out.stderr)
    # the date outside the explicit calendar is named, and the admin is told to define the periods
    outside = next(line for line in lines if "Y-5" in line)
    assert "period" in outside
    assert len(lines) == len(expected)


def test_bad_json_says_where(runs):
    out = runs["broken"]
    assert out.code == 2
    assert "broken.json" in out.stderr and "not valid JSON" in out.stderr and "line 3" in out.stderr


def test_nothing_was_imported(runs):
    tables = snapshot(store_url(runs["wd"]))
    assert tables["orders"] == [] and tables["accounts"] == [] and tables["products"] == []
    assert not any(rows for name, rows in tables.items() if name != "alembic_version")
