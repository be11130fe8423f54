"""Record payloads in and out: JSON with exact Decimals, Bulk CSV, and per-record results."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from connector.salesforce.soql import identifier

#: Bulk API 2.0 CSV: "#N/A" sets a field to null; an empty cell leaves it unchanged on update
#: (Bulk API 2.0 Developer Guide, "Prepare CSV Files").
CSV_NULL = "#N/A"


@dataclass(frozen=True)
class RecordError:
    """One error Salesforce reported for one record, as it reported it."""

    error_code: str
    message: str
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecordResult:
    """The outcome of writing one record (sObject Collections / single-record upsert)."""

    success: bool
    id: str | None = None
    created: bool | None = None
    errors: tuple[RecordError, ...] = ()
    #: the external id value the record was sent with, to match results to inputs
    external_id: Any = None

    @property
    def transient(self) -> bool:
        """True when the record failed only because of a lock and may succeed if written again."""
        return not self.success and any(e.error_code == "UNABLE_TO_LOCK_ROW" for e in self.errors)


def record_result(body: Mapping[str, Any], external_id: Any = None) -> RecordResult:
    """A RecordResult from one SaveResult/UpsertResult JSON object."""
    errors = tuple(
        RecordError(error_code=str(e.get("statusCode") or e.get("errorCode") or ""),
                    message=str(e.get("message", "")),
                    fields=tuple(str(f) for f in (e.get("fields") or ())))
        for e in (body.get("errors") or ()) if isinstance(e, Mapping))
    return RecordResult(success=bool(body.get("success")), id=body.get("id"),
                        created=body.get("created"), errors=errors, external_id=external_id)


@dataclass(frozen=True)
class IngestRow:
    """One row of a Bulk API 2.0 ingest result: the data sent, plus what Salesforce said."""

    data: dict[str, str | None]
    id: str | None = None
    created: bool | None = None
    error: str | None = None


@dataclass(frozen=True)
class IngestResult:
    """The outcome of a Bulk API 2.0 ingest job."""

    job_id: str
    state: str
    records_processed: int
    records_failed: int
    successful: list[IngestRow] = field(default_factory=list)
    failed: list[IngestRow] = field(default_factory=list)
    unprocessed: list[dict[str, str | None]] = field(default_factory=list)


# -- JSON -----------------------------------------------------------------------------------


def dumps(payload: Any) -> str:
    """JSON for Salesforce: Decimals as exact numbers, dates ISO, datetimes UTC with Z."""
    marker = f"@dec-{uuid.uuid4().hex}@"

    def default(value: Any) -> Any:
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError(f"{value} cannot be sent to Salesforce")
            return f"{marker}{format(value, 'f')}{marker}"
        if isinstance(value, dt.datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError("datetimes sent to Salesforce must be timezone-aware")
            return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + (
                f"{value.microsecond // 1000:03d}Z")
        if isinstance(value, dt.date):
            return value.isoformat()
        raise TypeError(f"{type(value).__name__} cannot be sent to Salesforce as JSON")

    text = json.dumps(payload, default=default, allow_nan=False, ensure_ascii=False)
    # json has no way to write a raw number for a Decimal; the random marker cannot occur in data
    return re.sub(rf'"{re.escape(marker)}(-?[0-9.]+){re.escape(marker)}"', r"\1", text)


def loads(content: bytes | str) -> Any:
    """Parse a Salesforce JSON body with floats as Decimal (money stays exact)."""
    return json.loads(content, parse_float=Decimal)


def check_fields(record: Mapping[str, Any]) -> None:
    """Raise ValueError unless every key is a field API name (or `attributes`)."""
    for key in record:
        if key != "attributes":
            identifier(key)


# -- CSV ------------------------------------------------------------------------------------


def _csv_value(value: Any) -> str:
    if value is None:
        return CSV_NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be sent to Salesforce")
        return format(value, "f")
    if isinstance(value, float):
        raise TypeError("floats are not sent to Salesforce; use Decimal")
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("datetimes sent to Salesforce must be timezone-aware")
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + (
            f"{value.microsecond // 1000:03d}Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


class CsvRows:
    """Records for a Bulk API 2.0 upload, each made into its CSV line as it is added: one short
    string per record instead of the record itself (a big-object job holds up to 100,000 rows, a
    dict of Decimals and dates each, about ten times the size of its line). `to_csv` makes any
    records into the upload's CSV through it.

    The columns are the records' fields in the order first met; a line made before a column was
    met gets that cell empty, as a record that does not have a column leaves it."""

    def __init__(self) -> None:
        self._columns: dict[str, int] = {}
        #: each record's line (without its line ending) and how many columns there were when it was made
        self._lines: list[tuple[str, int]] = []
        self._buffer = io.StringIO()
        # written with a CRLF ending, then trimmed (the upload's lines end in LF): the writer quotes
        # a cell holding a line break only when that character is part of its line terminator, and
        # a bare CR left unquoted may be read as the end of the record
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def extend(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Add these records, all or none: when one cannot be sent (a float, a timestamp without
        its zone, a field name that is not one), ValueError or TypeError, and nothing of them is
        added, not even a column."""
        known, lines = len(self._columns), len(self._lines)
        try:
            for record in records:
                self.add(record)
        except (ValueError, TypeError):
            del self._lines[lines:]
            self._forget_columns(known)
            raise

    def add(self, record: Mapping[str, Any]) -> None:
        """Add one record, or nothing of it (ValueError or TypeError, as `extend`)."""
        columns = self._columns
        known = len(columns)
        try:
            for key in record:
                if key not in columns and key != "attributes":
                    identifier(key)  # each column checked once
                    columns[key] = len(columns)
            cells = [""] * len(columns)
            for key, value in record.items():
                if key != "attributes":
                    cells[columns[key]] = _csv_value(value)
        except (ValueError, TypeError):
            self._forget_columns(known)
            raise
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        self._writer.writerow(cells)
        self._lines.append((buffer.getvalue()[:-2], len(cells)))

    def _forget_columns(self, known: int) -> None:
        """Drop the columns met after the first `known` (no line made since has a cell in them)."""
        for column in list(self._columns)[known:]:
            del self._columns[column]

    def __len__(self) -> int:
        return len(self._lines)

    def csv(self) -> bytes:
        """The CSV in UTF-8 with LF line endings, the header first."""
        if not self._lines or not self._columns:
            raise ValueError("no records (or no fields) to upload")
        width = len(self._columns)
        out = io.BytesIO()
        with io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True) as text:
            csv.writer(text, lineterminator="\n").writerow(list(self._columns))
            text.writelines(self._padded(width))
            text.flush()
            return out.getvalue()

    def _padded(self, width: int) -> Iterator[str]:
        """Each line with the cells of the columns met after it, empty."""
        for line, made in self._lines:
            if made == 0:
                line, made = _QUOTED_EMPTY, 1  # a record of no field, before any column was met: one empty cell
            if made == 1 and width > 1 and line == _QUOTED_EMPTY:
                # a record of one empty cell is written `""` (a blank line would be no record at
                # all); among more columns it is an empty cell like any other, as `to_csv` writes it
                line = ""
            yield f"{line}{',' * (width - made)}\n"


_QUOTED_EMPTY = '""'


def to_csv(records: "Iterable[Mapping[str, Any]] | CsvRows") -> tuple[bytes, int]:
    """(CSV in UTF-8 with LF line endings, record count) for a Bulk API 2.0 upload.

    The columns are the records' fields in the order first met; a column a record does not have
    stays empty ("leave unchanged" on update). Records are made into lines by `CsvRows` (the
    writer hands one over, made as its rows were); the CSV is written as UTF-8 bytes as it is
    made, the form it is uploaded in."""
    if not isinstance(records, CsvRows):
        rows = CsvRows()
        rows.extend(records)
        records = rows
    return records.csv(), len(records)


def from_csv(text: str) -> list[dict[str, str | None]]:
    """Rows of a Bulk API 2.0 CSV answer; empty cells become None (Bulk CSV has no null marker)."""
    if not text.strip():
        return []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return [{k: (v if v != "" else None) for k, v in row.items()} for row in reader]
