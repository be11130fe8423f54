"""Showing report rows as a table (rich), CSV or JSON."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def object_to_json(obj: dict[str, Any]) -> str:
    """One JSON object; amounts as exact decimal strings, dates as YYYY-MM-DD."""
    return json.dumps(_plain(obj), indent=2)


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    """A JSON list of objects; amounts as exact decimal strings, dates as YYYY-MM-DD."""
    return json.dumps([_plain(r) for r in rows], indent=2)


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                out[f"{key}.{sub}"] = v
        else:
            out[key] = value
    return out


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        for key in _flat(row):
            if key not in columns:
                columns.append(key)
    return columns


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """CSV with a header; nested objects (e.g. `changes`) become `changes.<key>` columns."""
    columns = list(columns or _columns(rows))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        flat = _flat(row)
        writer.writerow({c: "" if flat.get(c) is None else _plain(flat.get(c)) for c in columns})
    return buffer.getvalue()


def print_rows(rows: Sequence[dict[str, Any]], fmt: str, *, title: str | None = None,
               console: Console | None = None, columns: Sequence[str] | None = None) -> None:
    """Print rows in the chosen format."""
    console = console or Console()
    if fmt == "json":
        console.file.write(to_json(rows) + "\n")
        return
    if fmt == "csv":
        console.file.write(to_csv(rows, columns))
        return
    if not console.is_terminal:
        console = Console(file=console.file, width=max(console.width, 240))
    columns = list(columns or _columns(rows))
    table = Table(title=title, show_lines=False)
    for column in columns:
        numeric = any(isinstance(_flat(r).get(column), (Decimal, int)) for r in rows)
        table.add_column(column, justify="right" if numeric else "left", no_wrap=True)
    for row in rows:
        flat = _flat(row)
        table.add_row(*["" if flat.get(c) is None else str(_plain(flat.get(c))) for c in columns])
    if not rows:
        console.print(f"[dim]{title or 'report'}: no rows[/dim]")
        return
    console.print(table)
