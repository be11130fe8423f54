"""The engine is pure (STYLE.md): no I/O, no clock, no store or Salesforce; only pure stdlib modules."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import connector.engine

ENGINE_DIR = Path(connector.engine.__file__).parent
MODULES = sorted(ENGINE_DIR.rglob("*.py"))

#: Standard-library modules with no I/O, no clock and no process state.
PURE_STDLIB = {
    "__future__", "abc", "bisect", "calendar", "collections", "copy", "dataclasses", "datetime", "decimal",
    "enum", "fractions", "functools", "hashlib", "heapq", "itertools", "math", "numbers", "operator", "re",
    "string", "textwrap", "types", "typing", "typing_extensions",
}
ALLOWED_PACKAGES = ("connector.engine", "connector.errors")
#: Calls that read the clock or the outside world, whatever they are called on.
FORBIDDEN_ATTRIBUTE_CALLS = {"today", "now", "utcnow", "fromtimestamp", "time", "monotonic", "perf_counter"}
FORBIDDEN_NAME_CALLS = {"open", "input", "print", "exec", "eval", "__import__", "breakpoint"}


def _allowed(module: str) -> bool:
    if module in PURE_STDLIB or module.split(".")[0] in PURE_STDLIB:
        return True
    return any(module == p or module.startswith(p + ".") for p in ALLOWED_PACKAGES)


def impurities(source: str, package: str = "connector.engine") -> list[str]:
    """What in this module's source breaks the engine's purity, one text per finding."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if not _allowed(a.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the engine package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if not _allowed(module):
                found.append(f"line {node.lineno}: from {module} import ...")
        elif isinstance(node, ast.Call):
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
    ("import requests", "requests"),
    ("import simple_salesforce", "simple-salesforce"),
    ("from sqlalchemy import select", "sqlalchemy"),
    ("import psycopg", "psycopg"),
    ("import sqlite3", "sqlite3"),
    ("import time", "time"),
    ("import os.path", "os"),
    ("from connector.store import repository", "store"),
    ("from connector import salesforce", "connector-package-itself"),
    ("from connector.salesforce.client import Client", "salesforce"),
    ("from connector.sources import poll", "sources"),
    ("from connector.writers.records import write", "writers"),
    ("from connector.sandbox import org", "sandbox"),
    ("from ..store import repository", "relative-store"),
    ("import datetime\nx = datetime.date.today()", "date-today"),
    ("import datetime as dt\nx = dt.datetime.now()", "datetime-now"),
    ("from datetime import datetime\nx = datetime.utcnow()", "utcnow"),
    ("x = open('f').read()", "open"),
]


@pytest.mark.parametrize("source", [i[0] for i in IMPURE], ids=[i[1] for i in IMPURE])
def test_the_scan_catches_impure_code(source):
    assert impurities(source)


@pytest.mark.parametrize("source", [
    "from connector.engine.dates import add_months",
    "from .dates import add_months",
    "from connector.errors import FatalError",
    "import datetime as dt\nx = dt.date(2023, 1, 1)",
    "from decimal import Decimal, ROUND_HALF_UP",
], ids=["engine-absolute", "engine-relative", "errors", "date-constructor", "decimal"])
def test_the_scan_allows_pure_code(source):
    assert impurities(source) == []
