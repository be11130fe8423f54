"""Fixtures for the mapping tests: the shipped mappings, a describe of the shipped metadata, a scratch directory."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
from mapping_support import REPO, SHIPPED

from connector.mapping import MappingSet, load_mappings
from connector.sandbox.schema import load_schema


@pytest.fixture(scope="session")
def shipped() -> MappingSet:
    return load_mappings(SHIPPED)


@pytest.fixture(scope="session")
def describe() -> Callable[[str], dict[str, Any]]:
    """Describe JSON of the shipped Salesforce metadata, as the sandbox org serves it."""
    schema = load_schema(REPO / "salesforce")
    cache: dict[str, dict[str, Any]] = {}

    def describe(sobject: str) -> dict[str, Any]:
        obj = schema.get(sobject)
        if obj is None:
            raise LookupError(f"NOT_FOUND: The requested resource does not exist ({sobject})")
        if obj.name not in cache:
            cache[obj.name] = obj.describe("60.0", schema)
        return cache[obj.name]

    return describe


@pytest.fixture
def write_files(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """Write mapping files (name -> TOML text) into a fresh directory and return it."""

    def write(files: dict[str, str]) -> Path:
        folder = tmp_path / "mappings"
        folder.mkdir(exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text, "utf-8")
        return folder

    return write
