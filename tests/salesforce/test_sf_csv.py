"""A Bulk API 2.0 upload's CSV: records made into lines as they are added (`CsvRows`, behind
`to_csv`) give the CSV of the records written at once, whatever the records' fields."""
from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest

from connector.salesforce.records import CSV_NULL, CsvRows, _csv_value, to_csv

UTC = dt.timezone.utc


def written_at_once(records: list[dict]) -> tuple[bytes, int]:
    """The oracle: all the records' columns first, then each record over all of them (empty where
    it has none), a record's line quoted as for CRLF endings and ended by LF."""
    columns = list(dict.fromkeys(k for r in records for k in r if k != "attributes"))
    lines = []
    for header, row in [(True, columns)] + [(False, r) for r in records]:
        out = io.StringIO()
        cells = row if header else [_csv_value(row[c]) if c in row else "" for c in columns]
        csv.writer(out, lineterminator="\r\n").writerow(cells)
        lines.append(out.getvalue()[:-2] + "\n")
    return "".join(lines).encode("utf-8"), len(records)


CASES = {
    "same fields": [
        {"Name": "Acme", "Amount__c": Decimal("1200.50"), "Start__c": dt.date(2026, 1, 31)},
        {"Name": "Globex", "Amount__c": Decimal("-0.0001"), "Start__c": dt.date(2026, 2, 28)},
    ],
    "a column met later stays empty before it": [
        {"Name": "first"},
        {"Name": "second", "Note__c": "later"},
        {"Note__c": "no name", "Active__c": True},
    ],
    "one empty cell, then more columns": [
        {"Name": ""},
        {"Name": "", "Note__c": ""},
        {"Name": "x", "Note__c": ""},
    ],
    "one column only, empty": [{"Name": ""}, {"Name": "y"}],
    "a record of no field first, then one column": [{"attributes": {"type": "X"}}, {"Name": "x"}],
    "a record of no field first, then two columns": [{}, {"A": "1", "B": "2"}],
    "quotes, commas, line breaks and non-ASCII": [
        {"Name": 'Société "Générale", Paris', "Note__c": "two\nlines"},
        {"Name": "carriage\rreturn", "Note__c": "windows\r\nbreak"},
        {"Name": "Łódź ✓", "Note__c": None},
    ],
    "attributes dropped, None as #N/A, timestamps in UTC": [
        {"attributes": {"type": "Account"}, "Id": "001000000000001AAA", "Closed__c": None,
         "Seen__c": dt.datetime(2026, 12, 5, 9, 30, 1, 250000, tzinfo=dt.timezone(dt.timedelta(hours=2)))},
    ],
}


@pytest.mark.parametrize("records", CASES.values(), ids=CASES.keys())
def test_rows_made_as_added_equal_records_written_at_once(records):
    rows = CsvRows()
    for record in records:
        rows.add(record)
    assert len(rows) == len(records)
    assert to_csv(rows) == to_csv(records) == written_at_once(records)


def test_the_csv_reads_back_as_the_records():
    rows = CsvRows()
    for record in CASES["a column met later stays empty before it"] + CASES["attributes dropped, None as #N/A, timestamps in UTC"]:
        rows.add(record)
    data, count = to_csv(rows)
    read = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    assert count == len(read) == 4
    assert list(read[0]) == ["Name", "Note__c", "Active__c", "Id", "Closed__c", "Seen__c"]
    assert read[0] == {"Name": "first", "Note__c": "", "Active__c": "", "Id": "", "Closed__c": "", "Seen__c": ""}
    assert read[2]["Active__c"] == "true" and read[2]["Name"] == ""
    assert read[3]["Closed__c"] == CSV_NULL
    assert read[3]["Seen__c"] == "2026-12-05T07:30:01.250Z"


def test_bad_records_are_refused_as_they_are_added():
    rows = CsvRows()
    with pytest.raises(TypeError, match="floats"):
        rows.add({"Amount__c": 1.5})
    with pytest.raises(ValueError):
        rows.add({"Bad Name": "x"})
    with pytest.raises(ValueError, match="no records"):
        CsvRows().csv()


def test_records_added_together_are_added_all_or_none():
    rows = CsvRows()
    rows.extend([{"Name": "kept"}])
    with pytest.raises(ValueError, match="NaN"):
        rows.extend([{"Name": "a", "New__c": "x"}, {"Name": "b", "Amount__c": Decimal("NaN")}])
    assert len(rows) == 1
    assert to_csv(rows) == written_at_once([{"Name": "kept"}])  # neither their lines nor their columns


def test_a_record_refused_alone_leaves_nothing_behind():
    rows = CsvRows()
    rows.add({"A": "x"})
    with pytest.raises(TypeError, match="floats"):
        rows.add({"A": "y", "B": 1.5})
    assert len(rows) == 1 and to_csv(rows) == written_at_once([{"A": "x"}])


def test_random_records_give_the_same_csv_both_ways():
    """Records of random fields in random orders, among them empty cells, no fields, line breaks,
    quotes and None: the two ways to the CSV agree on every one."""
    import random

    rng = random.Random(20261205)
    names = ["A", "B__c", "C__c", "D__c"]
    values = ["", "x", 'q"uote', "a,b", "line\nbreak", "cr\ronly", "Ł", None, True, Decimal("-1.2500"),
              dt.date(2026, 1, 1)]
    for _ in range(2000):
        records = []
        for _ in range(rng.randint(1, 5)):
            keys = rng.sample(names, rng.randint(0, len(names)))
            records.append({k: rng.choice(values) for k in keys})
        if not any(records):
            continue
        rows = CsvRows()
        rows.extend(records)
        assert to_csv(rows) == written_at_once(records), records


def test_a_cell_holding_a_line_break_of_any_kind_is_quoted_and_reads_back_whole():
    names = ["carriage\rreturn", "line\nfeed", "both\r\nbreaks", "plain"]
    data, count = to_csv([{"Name": n, "Id": str(i)} for i, n in enumerate(names)])
    assert data.count(b"\n") - sum(n.count("\n") for n in names) == count + 1  # a line per record, and the header
    assert b'"carriage\rreturn"' in data and b"plain," in data
    read = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    assert [r["Name"] for r in read] == names and [r["Id"] for r in read] == ["0", "1", "2", "3"]
