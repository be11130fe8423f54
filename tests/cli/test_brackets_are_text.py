"""What the commands print of users' data is shown as it is: brackets in a failed job's error
(SQLAlchemy's `[SQL: …]`, a value such as `[bold]` or `[/x]`) or in a report's values are text, not
the console's markup, which dropped them or failed on them."""
from __future__ import annotations

import io

import pytest
from rich.console import Console

from connector import cli
from connector.jobs import JobOutcome

ERRORS = ["(sqlite3.OperationalError) disk full [SQL: INSERT INTO arr_rows VALUES (?)]",
          "price [bold] is not a number", "closing [/x] without an opening tag", "a backslash \\[at the end\\"]


@pytest.mark.parametrize("error", ERRORS)
@pytest.mark.parametrize("again", ["", " again"])
def test_a_failed_job_s_error_is_printed_as_it_is(monkeypatch, error, again):
    out = io.StringIO()
    monkeypatch.setattr(cli, "err_console", Console(file=out, width=300, color_system=None))
    cli._say_failed(JobOutcome("O-[1]", "arr_by_period", False, error), again)
    assert out.getvalue() == f"job arr_by_period for order O-[1] failed{again}: {error}\n"


NAMES = ["Beta [red] Ltd", "Gamma [/x]", "Acme [EMEA]", "[bold]Delta[/bold]", "trailing \\"]


@pytest.mark.parametrize("width", [300, 30])  # a table, and one too wide printed record by record
def test_report_cells_are_printed_as_they_are(width, monkeypatch):
    """A report's values (account names from Salesforce, say) are text: rich's markup dropped
    "[red]" from a name and failed on "[/x]" (`revsync report accounts` ended in a traceback)."""
    from connector.render import print_rows

    monkeypatch.setenv("COLUMNS", str(width))  # the width to fit, as a terminal's
    out = io.StringIO()
    rows = [{"account": name, "customer_since": "2023-01-01", "arr": i} for i, name in enumerate(NAMES)]
    print_rows(rows, "table", console=Console(file=out, width=width, color_system=None), title="accounts [x]")
    for name in NAMES:
        assert name in out.getvalue()
    assert "accounts [x]" in out.getvalue()
    assert ("record 1 of 5" in out.getvalue()) == (width == 30)
    empty = io.StringIO()
    print_rows([], "table", console=Console(file=empty, width=width, color_system=None), title="deals [/x]")
    assert empty.getvalue() == "deals [/x]: no rows\n"
