"""Big-object capacity from the user's side (issue 12): `revsync sync --once` against an org whose
big objects cannot hold the ARR rows sends none of them, says what is wrong and what to do, exits 5,
and `revsync status` and `revsync forecast` show it; once the capacity is raised, the rows are
written, once, and a later pass sends nothing again.

The worked example has 26 ARR rows, written to both big objects: 52 records.
"""
from __future__ import annotations

import json

import pytest
from e2e_support import site, worked_seed

pytestmark = pytest.mark.slow
BIG = ("ArrByPeriod__b", "ArrByPeriodByCustomer__b")


def set_capacity(s, records: int) -> None:
    config = s.root / "config.toml"
    text = config.read_text()
    if "big_object_capacity" in text:
        text = "\n".join(line for line in text.splitlines() if not line.startswith("big_object_capacity"))
    config.write_text(text.replace("consumer_key", f"big_object_capacity = {records}\nconsumer_key", 1))


def big_jobs(s) -> list[str]:
    """The objects of the Bulk API ingest jobs the org received for big objects."""
    return sorted(j.object for j in s.org.bulk_jobs.values() if getattr(j, "object", "").endswith("__b"))


def test_rows_that_do_not_fit_are_held_back_then_written_once_the_capacity_is_raised(tmp_path):
    with site(tmp_path, worked_seed()) as s:
        set_capacity(s, 51)
        held = s.revsync("sync", "--once")
        assert held.code == 5, held
        message = " ".join(held.stderr.split())
        assert "ARR rows held back" in message
        assert "52 records in the org's big objects (0 written by revsync + 52 to write)" in message
        assert "over its capacity of 51 ([salesforce] big_object_capacity)" in message
        assert "Raise the org's big-object capacity with Salesforce" in message
        # nothing reached the big objects, no job was even opened; the records were written
        assert all(s.org.records(big) == [] for big in BIG)
        assert big_jobs(s) == []
        assert len(s.org.records("Subscription__c")) == 2
        # nothing lost: every big-object entry waits, never tried
        assert s.store_rows("SELECT state, attempts, count(*) FROM outbox WHERE kind = 'big_object' "
                            "GROUP BY state, attempts") == [("NEW", 0, 6)]

        status = s.revsync("status")
        assert status.code == 0, status
        shown = " ".join(status.stdout.split())
        assert "big objects: 0 of 51 records held (revsync's rows)" in shown
        assert "ARR rows held back" in shown
        assert "sync daemon: degraded — ARR rows held back" in shown
        info = json.loads(s.revsync("status", "-f", "json").stdout)
        assert info["big_objects"]["last_check"]["state"] == "exceeded"
        assert (info["big_objects"]["last_check"]["held"], info["big_objects"]["last_check"]["pending"]) == (0, 52)
        assert info["daemon"]["state"] == "degraded"

        ahead = json.loads(s.revsync("forecast", "-f", "json", "--months", "1").stdout)
        assert [(r["big_object"], r["new_rows"], r["total_rows"]) for r in ahead] == [(b, 26, 26) for b in BIG]
        assert {(r["org_rows"], r["capacity"], r["headroom"]) for r in ahead} == {(52, 51, -1)}

        set_capacity(s, 52)  # the admin bought capacity: exactly enough
        done = s.revsync("sync", "--once")
        assert done.code == 0, done
        assert [len(s.org.records(big)) for big in BIG] == [26, 26]
        assert big_jobs(s) == sorted(BIG)  # one job each: every row sent once
        again = s.revsync("sync", "--once")
        assert again.code == 0, again
        assert big_jobs(s) == sorted(BIG)  # nothing sent twice
        info = json.loads(s.revsync("status", "-f", "json").stdout)
        assert info["big_objects"]["held"] == {big: 26 for big in BIG}
        assert info["big_objects"]["last_check"]["state"] == "ok"
        assert info["daemon"]["state"] == "ok"
