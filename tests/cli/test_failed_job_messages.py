"""A failed job's error is shown as it is: brackets in it (SQLAlchemy's `[SQL: …]`, a value such as
`[bold]` or `[/x]`) are text, not the console's markup, which dropped them or failed on them."""
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
