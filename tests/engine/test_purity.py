"""The engine is pure (STYLE.md): no I/O, no clock, no store or Salesforce.

What the engine may import is an import-linter contract (`pure-engine` in pyproject.toml, checked
by tests/test_import_contracts.py and `lint-imports`); this scan covers what imports cannot show:
calls that read the clock or the outside world.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import connector.engine

ENGINE_DIR = Path(connector.engine.__file__).parent
MODULES = sorted(ENGINE_DIR.rglob("*.py"))

#: Calls that read the clock or the outside world, whatever they are called on.
FORBIDDEN_ATTRIBUTE_CALLS = {"today", "now", "utcnow", "fromtimestamp", "time", "monotonic", "perf_counter"}
FORBIDDEN_NAME_CALLS = {"open", "input", "print", "exec", "eval", "__import__", "breakpoint"}


def impurities(source: str) -> list[str]:
    """What in this module's source reads the clock or the outside world, one text per finding."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            fn = node.func
            if isinstance(fn, ast.Attribute) and fn.attr in FORBIDDEN_ATTRIBUTE_CALLS:
                found.append(f"line {node.lineno}: call .{fn.attr}()")
            elif isinstance(fn, ast.Name) and fn.id in FORBIDDEN_NAME_CALLS:
                found.append(f"line {node.lineno}: call {fn.id}()")
    return found


def test_the_engine_has_modules():
    names = {p.stem for p in MODULES}
    assert {"activation", "arr_by_period", "billing", "dates", "fiscal", "ledger", "metrics", "money"} <= names


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(ENGINE_DIR)) for p in MODULES])
def test_engine_module_is_pure(path):
    assert impurities(path.read_text(encoding="utf-8")) == []


IMPURE = [
    ("import datetime\nx = datetime.date.today()", "date-today"),
    ("import datetime as dt\nx = dt.datetime.now()", "datetime-now"),
    ("from datetime import datetime\nx = datetime.utcnow()", "utcnow"),
    ("x = open('f').read()", "open"),
    ("print(1)", "print"),
]


@pytest.mark.parametrize("source", [i[0] for i in IMPURE], ids=[i[1] for i in IMPURE])
def test_the_scan_catches_impure_code(source):
    assert impurities(source)


@pytest.mark.parametrize("source", [
    "from connector.engine.dates import add_months",
    "import datetime as dt\nx = dt.date(2023, 1, 1)",
    "from decimal import Decimal, ROUND_HALF_UP",
], ids=["engine-import", "date-constructor", "decimal"])
def test_the_scan_allows_pure_code(source):
    assert impurities(source) == []
