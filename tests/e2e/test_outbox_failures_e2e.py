"""A record Salesforce rejects stays FAILED with Salesforce's message until an operator retries it."""
from __future__ import annotations

import json

from e2e_support import site, worked_seed

from connector.sandbox.faults import Fault

SUBSCRIPTIONS = "/composite/sobjects/Subscription__c/"


def test_failed_record_is_listed_retried_and_written(tmp_path):
    with site(tmp_path, worked_seed()) as s:
        # a validation rule turns down the second subscription of the collection call, once
        s.org.faults.add(Fault.partial_failure([1], path=SUBSCRIPTIONS, message="Quantity must be approved"))
        first = s.revsync("sync", "--once")
        assert first.code == 4, first  # not everything was written back
        assert "not yet written back" in first.stderr
        assert len(s.org.records("Subscription__c")) == 1

        listed = s.revsync("outbox", "--failed", "-f", "json")
        assert listed.code == 0, listed
        failed = json.loads(listed.stdout)
        # one record (its superseded entries are listed with it, all carrying Salesforce's message)
        assert {(f["object"], f["external_id"], f["kind"], f["state"], f["attempts"], f["last_message"])
                for f in failed} == {("Subscription__c", s.refs["op002"], "record", "FAILED", 1,
                                      "FIELD_CUSTOM_VALIDATION_EXCEPTION: Quantity must be approved")}
        rejected = failed[0]["external_id"]
        assert rejected not in {r["ExternalId__c"] for r in s.org.records("Subscription__c")}

        retried = s.revsync("outbox", "retry", "--all")
        assert retried.code == 0, retried
        assert f"{len(failed)} entr" in retried.stdout
        done = s.revsync("sync", "--once")
        assert done.code == 0, done
        assert {r["ExternalId__c"] for r in s.org.records("Subscription__c")} == {s.refs["op001"], s.refs["op002"]}
        assert json.loads(s.revsync("outbox", "-f", "json").stdout) == []
        # the big-object rows referencing the rejected subscription waited for it, then went through
        assert len(s.org.records("ArrByPeriodByCustomer__b")) == 26
