"""Every command that prints data honours `-f table|csv|json` (issue 10): JSON with typed values
(counts as numbers, amounts as exact decimal strings, dates ISO), CSV with a header, never the
table in place of either."""
from __future__ import annotations

import csv
import io
import json

from cli_support import REPO, Call, run_all

LISTINGS = [("jobs",), ("jobs", "--failed"), ("outbox",), ("quarantine",), ("quarantine", "--all"),
            ("report", "subscriptions", "--as-of", "2023-06-30"), ("report", "order-metrics"), ("status",)]


def test_json_and_csv_are_json_and_csv(worked_store):
    wd = worked_store["wd"]
    calls = [Call(wd, (*args, "-f", fmt)) for args in LISTINGS for fmt in ("json", "csv")]
    results = iter(run_all(calls))
    for args in LISTINGS:
        as_json, as_csv = next(results), next(results)
        assert as_json.code == 0 and as_csv.code == 0, (args, as_json.stderr, as_csv.stderr)
        data = json.loads(as_json.stdout)
        for text in (as_json.stdout, as_csv.stdout):
            assert "┃" not in text and "│" not in text, (args, text)
        if data:
            rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
            assert rows, (args, as_csv.stdout)
    jobs = json.loads(next(r for r in run_all([Call(wd, ("jobs", "-f", "json"))])).stdout)
    assert jobs and all(isinstance(j["attempts"], int) for j in jobs)
    subs = json.loads(run_all([Call(wd, ("report", "subscriptions", "--as-of", "2023-06-30", "-f", "json"))])[0].stdout)
    assert all(isinstance(s["mrr"], str) and isinstance(s["bill_cycle_day"], int) for s in subs)
    assert all(len(s["start"]) == 10 and s["start"][4] == "-" for s in subs)


def test_status_json_keeps_its_keys_and_adds_api_usage_detail(worked_store):
    status = json.loads(run_all([Call(worked_store["wd"], ("status", "-f", "json"))])[0].stdout)
    assert set(status) >= {"cursors", "outbox", "failed_jobs", "quarantined", "api_usage", "daemon",
                           "store_integrity", "api_usage_detail"}
    assert status["api_usage"] is None and status["api_usage_detail"] is None  # no sync yet
    assert isinstance(status["failed_jobs"], int) and isinstance(status["outbox"], dict)


def test_no_spec_citations_for_users():
    assert "SPEC section 7" not in (REPO / "README.md").read_text()
