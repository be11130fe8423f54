"""Closed won → subscriptions and ARR rows in both big objects: `revsync sync --once` as its own process
against the sandbox org over HTTPS, seeded with SPEC section 7's worked example."""
from __future__ import annotations

from collections import Counter

import pytest

INDEX = {"ArrByPeriod__b": ("StartDate__c", "OrderProduct__c"),
         "ArrByPeriodByCustomer__b": ("Customer__c", "Subscription__c", "StartDate__c", "OrderProduct__c")}


@pytest.fixture
def synced(worked_run):
    return worked_run


def test_sync_once_exits_zero_with_nothing_left(synced):
    assert synced["result"].code == 0, synced["result"]
    assert set(synced["site"].outbox_states()) == {"SUCCESS"}


def test_subscriptions_are_written_with_their_tcv(synced):
    org, refs = synced["site"].org, synced["site"].refs
    subs = {r["ExternalId__c"]: r for r in org.records("Subscription__c")}
    # a subscription's external id is the Salesforce Id of the order product that created it
    assert set(subs) == {refs["op001"], refs["op002"]}
    s1, s2 = subs[refs["op001"]], subs[refs["op002"]]
    assert (s1["Account__c"], s1["Product__c"], s1["Quantity__c"], s1["StartDate__c"], s1["EndDate__c"]) == (
        refs["a"], refs["seat"], 16, "2023-01-15", "2024-01-14")
    assert s1["TCV__c"] == pytest.approx(17670.97, abs=0.005)
    assert (s2["Account__c"], s2["Quantity__c"], s2["StartDate__c"], s2["EndDate__c"]) == (
        refs["b"], 1, "2023-02-01", "2023-04-30")
    assert s2["TCV__c"] == pytest.approx(6000, abs=0.005)
    assert s1["BillCycleDay__c"] == s2["BillCycleDay__c"] == 1


def test_account_metrics_are_written(synced):
    org, refs = synced["site"].org, synced["site"].refs
    accounts = {r["Id"]: r for r in org.records("Account")}
    assert accounts[refs["a"]]["TCV__c"] == pytest.approx(17670.97, abs=0.005)
    assert accounts[refs["a"]]["CustomerSince__c"] == "2023-01-15"
    assert accounts[refs["b"]]["TCV__c"] == pytest.approx(6000, abs=0.005)
    assert accounts[refs["b"]]["CustomerSince__c"] == "2023-02-01"


def _months(first: str, count: int) -> list[str]:
    y, m = int(first[:4]), int(first[5:7])
    out = []
    for _ in range(count):
        out.append(f"{y}-{m:02d}-01")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


#: SPEC section 7's table: line -> (first month, months, CMRR, category)
WORKED = {"op001": ("2023-01", 13, 1000, "New Business"), "op002": ("2023-02", 3, 2000, "New Business"),
          "op003": ("2023-04", 10, 600, "Upsell/Expansion")}


@pytest.mark.parametrize("big", sorted(INDEX), ids=sorted(INDEX))
def test_arr_rows_land_in_both_big_objects(synced, big):
    org, refs = synced["site"].org, synced["site"].refs
    rows = org.records(big)
    assert len(rows) == 26
    assert len({tuple(r[k] for k in INDEX[big]) for r in rows}) == 26  # unique on the index
    # date-times at midnight UTC (big objects have no date type)
    assert all(r["StartDate__c"].endswith("T00:00:00.000+0000") and r["EndDate__c"].endswith("T00:00:00.000+0000")
               for r in rows)
    got = {(r["OrderProduct__c"], r["StartDate__c"][:10]): r for r in rows}
    expected = {}
    for line, (first, count, cmrr, category) in WORKED.items():
        months = _months(first, count)
        for n, month in enumerate(months):
            opening = 0 if n == 0 else cmrr
            closing = 0 if n == len(months) - 1 else cmrr
            expected[(refs[line], month)] = (opening, closing, closing - opening, 12 * opening, 12 * closing, category)
    assert {k: (r["OpeningCMRR__c"], r["ClosingCMRR__c"], r["ChangeInCMRR__c"], r["OpeningARR__c"],
                r["ClosingARR__c"], r["ChangeCategory__c"]) for k, r in got.items()} == expected
    subs = {r["ExternalId__c"]: r["Id"] for r in org.records("Subscription__c")}
    jan = got[(refs["op001"], "2023-01-01")]
    assert (jan["EndDate__c"], jan["Customer__c"], jan["CustomerName__c"], jan["Subscription__c"], jan["Order__c"],
            jan["Product__c"], jan["ProductName__c"], jan["User__c"], jan["Quantity__c"], jan["CurrencyCode__c"]) == (
        "2023-01-31T00:00:00.000+0000", refs["a"], "Customer A", subs[refs["op001"]], refs["o1"], refs["seat"],
        "Platform seat", refs["chloe"], 10, "USD")
    # the change line of O-3 belongs to S-001 (Id-valued fields hold Salesforce Ids)
    april = got[(refs["op003"], "2023-04-01")]
    assert (april["Subscription__c"], april["Order__c"], april["Quantity__c"]) == (subs[refs["op001"]], refs["o3"], 16)


def test_api_calls_are_batched(synced):
    """One token, paged reads, one collection call per written object, one Bulk API 2.0 job per big object."""
    calls = Counter((m, p.split("/jobs/ingest/")[0] + ("/jobs/ingest/…" if "/jobs/ingest/" in p else ""))
                    for m, p in synced["calls"])
    writes = {k: n for k, n in calls.items() if k[0] in ("PATCH", "POST", "PUT")}
    assert writes == {("POST", "/services/oauth2/token"): 1,
                      ("PATCH", "/services/data/v62.0/composite/sobjects/Subscription__c/ExternalId__c"): 1,
                      ("PATCH", "/services/data/v62.0/composite/sobjects/Account/Id"): 1,
                      ("POST", "/services/data/v62.0/jobs/ingest"): 2,
                      ("PUT", "/services/data/v62.0/jobs/ingest/…"): 2,
                      ("PATCH", "/services/data/v62.0/jobs/ingest/…"): 2}


def test_a_second_run_writes_nothing(synced):
    s = synced["site"]
    before = len(s.org.request_log)
    again = s.revsync("sync", "--once")
    assert again.code == 0, again
    assert not [e for e in s.org.request_log[before:] if e.method in ("PATCH", "POST", "PUT", "DELETE")
                and "oauth2" not in e.path]
    assert len(s.org.records("ArrByPeriod__b")) == 26
