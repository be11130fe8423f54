"""Showing report rows as a table (rich), CSV or JSON."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
from decimal import Decimal
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text


def print_error(message: str, *, label: str = "error:", console: Console | None = None) -> None:
    """An error on stderr the way every revsync command prints one: `label` in red on a terminal, plain
    text in a pipe or a log and wherever NO_COLOR is set; the message never cut nor read as markup."""
    console = console or Console(stderr=True, soft_wrap=True)
    console.print(Text(label, style="red"), Text(message), highlight=False)
    console.file.flush()


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


def _cell(value: Any) -> str:
    return "" if value is None else str(_plain(value))


def _width(console: Console) -> int | None:
    """The width to fit: the terminal's, or COLUMNS when set; None (no limit) for a pipe or a file,
    where a table is written whole, as wide as its content, and never cut."""
    if console.is_terminal or os.environ.get("COLUMNS", "").strip().isdigit():
        return console.width
    return None


def _table_width(widths: Sequence[int]) -> int:
    """Characters a rich table with the default box and one space of padding takes."""
    return sum(widths) + 3 * len(widths) + 1


def print_rows(rows: Sequence[dict[str, Any]], fmt: str, *, title: str | None = None,
               console: Console | None = None, columns: Sequence[str] | None = None,
               header: Sequence[str] | None = None) -> None:
    """Print rows in the chosen format.

    `header`: the report's columns, for the CSV header when there are no rows (a CSV file always
    starts with its header, so a program reading it finds the columns it expects).

    A table that fits the terminal (or COLUMNS) is printed as a table; one that does not is printed
    vertically, one record per block (`column  value` lines), so no value (a number, a date) is ever
    cut to fit. Written to a pipe or a file without COLUMNS, a table is as wide as its content.
    """
    console = console or Console()
    if fmt == "json":
        console.file.write(to_json(rows) + "\n")
        return
    if fmt == "csv":
        console.file.write(to_csv(rows, columns or (header if not rows else None)))
        return
    if not rows:
        console.print(Text(f"{title or 'report'}: no rows", style="dim"))
        return
    columns = list(columns or _columns(rows))
    flats = [_flat(r) for r in rows]
    cells = [[_cell(f.get(c)) for c in columns] for f in flats]
    values = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    headers = list(columns)
    widths = [max(v, len(c)) for v, c in zip(values, columns)]
    limit = _width(console)
    if limit is not None and _table_width(widths) > limit:
        # second try: headers broken over lines at `_ . /`, each column as wide as its values
        headers = [_break(c, v) for c, v in zip(columns, values)]
        widths = [max(len(line) for line in h.split("\n")) for h in headers]
        widths = [max(w, v) for w, v in zip(widths, values)]
    if limit is not None and _table_width(widths) > limit:
        # third try: text values (names, categories; never a number, a date or an id) broken over lines too
        text = [all(isinstance(f.get(c), str) and not _NUMBER.fullmatch(f[c]) for f in flats if f.get(c) is not None)
                for c in columns]
        narrow = [max([_longest(headers[i])] + [_longest(_break(row[i], 1)) for row in cells]) if text[i]
                  else widths[i] for i in range(len(columns))]
        if _table_width(narrow) <= limit:
            widths = narrow
            headers = [_break(c, w) for c, w in zip(columns, widths)]
            cells = [[_break(v, widths[i]) if text[i] else v for i, v in enumerate(row)] for row in cells]
    if limit is not None and _table_width(widths) > limit:
        _print_vertical(console, columns, cells, title, limit)
        return
    if limit is None:
        console = Console(file=console.file, width=max(_table_width(widths), len(title or "")),
                          force_terminal=console.is_terminal, no_color=console.no_color)
    # every cell, header and title as text: a name such as "Beta [red] Ltd" or "[/x]" is not markup
    # (rich dropped the first's "[red]" and failed on the second)
    table = Table(title=None if title is None else Text(title), show_lines=False)
    for i, column in enumerate(columns):
        numeric = any(isinstance(f.get(column), (Decimal, int)) and not isinstance(f.get(column), bool)
                      for f in flats)
        table.add_column(Text(headers[i]), justify="right" if numeric else "left", no_wrap=True, width=widths[i])
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)


_NUMBER = re.compile(r"[-+]?\d[\d,]*(\.\d+)?")


def _longest(text: str) -> int:
    return max(len(line) for line in text.split("\n"))


def _break(header: str, width: int) -> str:
    """`header` over lines of at most `width` characters where it can break (after `_`, `.`, `/`, space)."""
    pieces = re.findall(r"[^_./ ]*[_./ ]?", header)
    lines = [""]
    for piece in filter(None, pieces):
        if lines[-1] and len(lines[-1]) + len(piece.rstrip()) > width:
            lines.append("")
        lines[-1] += piece
    return "\n".join(line.rstrip() for line in lines)


def _print_vertical(console: Console, columns: Sequence[str], cells: Sequence[Sequence[str]],
                    title: str | None, limit: int) -> None:
    """One block per record: a `── title: record n of N ──` rule, then one `column  value` line each."""
    label = max(len(c) for c in columns)
    out = console.file
    for n, row in enumerate(cells, 1):
        head = f"── {title + ': ' if title else ''}record {n} of {len(cells)} "
        out.write(head + "─" * max(0, min(limit, 80) - len(head)) + "\n")
        for column, value in zip(columns, row):
            line = f"{column.ljust(label)}  {value}".rstrip()
            if len(line) > limit and len(value) < limit:
                # a long column name: the value goes whole on the next line
                line = f"{column}\n  {value}"
            out.write(line + "\n")
    out.flush()
