"""Benchmark: activated order lines synced through the sandbox org; API calls against the batching minimum.

    .venv/bin/python bench/sync_bench.py [--lines 10000]

Seeds the sandbox org (in a process of its own, served over HTTPS) with accounts, products and activated orders (4 lines each,
12–36 month terms), runs sync cycles and write-back until idle, and counts the API calls the org
served, by kind, against the minimum batching allows:

- reads: per object, one COUNT plus one call per 2,000-record page (REST), or a bulk job;
- collections: ceil(records / 200) per object written;
- Bulk API 2.0 ingest: 5 calls per job (create, upload, close, one status check, failed results).

It also prints the connector process's peak resident memory (the org's is not in it).
"""
from __future__ import annotations

import argparse
import datetime as dt
import math
import multiprocessing
import os
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.app import App  # noqa: E402
from connector.config import Config  # noqa: E402
from connector.engine.dates import end_from_term  # noqa: E402
from connector.runtime import build  # noqa: E402
from connector.sandbox.org import Org, OrgConfig  # noqa: E402
from connector.sandbox.seed import load_seed  # noqa: E402
from connector.sandbox.server import serve  # noqa: E402


def seed(lines: int, rng: random.Random) -> dict:
    """A seed with `lines` activated order items over lines/4 orders."""
    products = [{"@ref": f"p{i}", "Name": f"Product {i}", "IsActive": True, "ProvisioningType__c": "Subscription",
                 "PricePeriod__c": "Month"} for i in range(10)]
    entries = [{"@ref": f"pe{i}", "Pricebook2Id": "@std", "Product2Id": f"@p{i}", "UnitPrice": 100, "IsActive": True}
               for i in range(10)]
    accounts, orders, items = [], [], []
    for o in range(lines // 4):
        if o % 4 == 0:
            accounts.append({"@ref": f"a{o // 4}", "Name": f"Customer {o // 4}", "BillCycleDay__c": 1})
        start = dt.date(2022, 1, 1) + dt.timedelta(days=rng.randint(0, 700))
        orders.append({"@ref": f"o{o}", "AccountId": f"@a{o // 4}", "Pricebook2Id": "@std",
                       "EffectiveDate": start.isoformat(), "Status": "Activated",
                       "ActivatedDate": f"{start.isoformat()}T09:00:00.000+0000"})
        for k in range(4):
            p = rng.randrange(10)
            items.append({"OrderId": f"@o{o}", "Product2Id": f"@p{p}", "PricebookEntryId": f"@pe{p}",
                          "Quantity": rng.randint(1, 20), "UnitPrice": 100, "ServiceDate": start.isoformat(),
                          "EndDate": end_from_term(start, rng.randint(12, 36)).isoformat()})
    periods = []
    for year in range(2022, 2028):
        for month in range(1, 13):
            first = dt.date(year, month, 1)
            last = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1))
            periods.append({"Type": "Month", "StartDate": first.isoformat(), "EndDate": last.isoformat(),
                            "Number": month, "FullyQualifiedLabel": f"{first:%B} FY{year}"})
    return {"Account": accounts, "Product2": products,
            "Pricebook2": [{"@ref": "std", "Name": "Standard Price Book", "IsActive": True, "IsStandard": True}],
            "PricebookEntry": entries, "Order": orders, "OrderItem": items, "Period": periods}


def kind(method: str, path: str) -> str:
    if "/jobs/ingest" in path:
        return "bulk ingest"
    if "/jobs/query" in path:
        return "bulk query"
    if "/composite/sobjects" in path:
        return "collections"
    if "/query" in path:
        return "query"
    return f"{method} other"


def sandbox_process(lines: int, conn) -> None:
    """The sandbox org in a process of its own, served over HTTPS, so the connector's peak memory is
    measured alone; answers "mark" (the requests served so far) and "stats" (what the org holds and
    the calls since the mark), and stops on "stop"."""
    org = Org(OrgConfig(daily_api_limit=1_000_000))
    started = time.perf_counter()
    load_seed(org, seed(lines, random.Random(11)))
    seeded = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        server = serve(org, ca_path=Path(tmp) / "sandbox-ca.pem", threads=4)
        conn.send((server.url, str(server.ca_path), seeded))
        before = 0
        while True:
            message = conn.recv()
            if message == "mark":
                before = len(org.request_log)
                conn.send(before)
            elif message == "stats":
                log = org.request_log[before:]
                conn.send({
                    "calls": Counter(kind(e.method, e.path) for e in log if "/oauth2/" not in e.path),
                    "bulk_jobs": sum(1 for e in log if e.method == "POST" and e.path.endswith("/jobs/ingest")),
                    "subs": len(org.records("Subscription__c")), "accounts": len(org.records("Account")),
                    "big": {b: len(org.records(b)) for b in ("ArrByPeriod__b", "ArrByPeriodByCustomer__b")},
                    "reads": {o: len(org.records(o, include_deleted=True))
                              for o in ("Period", "Product2", "Account", "Opportunity", "Quote",
                                        "QuoteLineItem", "Order", "OrderItem")}})
            else:
                server.stop()
                return


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=10_000)
    args = parser.parse_args()
    ours, theirs = multiprocessing.Pipe()
    org_process = multiprocessing.get_context("spawn").Process(target=sandbox_process, args=(args.lines, theirs),
                                                               daemon=True)
    org_process.start()
    url, ca_path, seed_seconds = ours.recv()
    os.environ["REVSYNC_SF_CONSUMER_SECRET"] = "revsync-test-secret"
    os.environ["REQUESTS_CA_BUNDLE"] = ca_path
    try:
        with tempfile.TemporaryDirectory() as tmp:
            app = App(Config.model_validate({
                "store": {"url": f"sqlite:///{Path(tmp) / 'bench.db'}"}, "fiscal": {"source": "salesforce"},
                "salesforce": {"auth": "client_credentials", "login_url": url,
                               "consumer_key": "revsync-test-client", "bulk_threshold": 10_000}}))
            runtime = build(app)
            ours.send("mark")
            ours.recv()
            floor = peak_rss_mib()  # the connector loaded, nothing read yet
            started = time.perf_counter()
            cycles = 0
            while True:
                cycles += 1
                runtime.service.cycle()
                runtime.writer.flush()
                if not runtime.writer.left() and cycles > 1:
                    break
            elapsed = time.perf_counter() - started
            peak = peak_rss_mib()
            ours.send("stats")
            stats = ours.recv()
            app.store.dispose()
    finally:
        ours.send("stop")
        org_process.join(timeout=30)
    calls, reads, subs, accounts, big = (stats["calls"], stats["reads"], stats["subs"], stats["accounts"],
                                         stats["big"])
    bulk_jobs = stats["bulk_jobs"]
    # the minimum: first read of each object (COUNT + pages of 2,000, or a 5-call bulk query),
    # the order items fetched for activation (ceil(orders / 200)), one empty poll per object in
    # the second (idle) cycle, collections at 200 records, 5 calls per bulk ingest job
    min_reads = sum(1 + (5 if n > 10_000 else max(1, math.ceil(n / 2000))) for n in reads.values())
    min_reads += math.ceil(reads["Order"] / 200) + len(reads) * (cycles - 1)
    min_writes = math.ceil(subs / 200) + math.ceil(accounts / 200) + 5 * bulk_jobs
    used = sum(calls.values())
    minimum = min_reads + min_writes
    print(f"order lines            {args.lines:,} ({reads['Order']:,} orders, {accounts:,} accounts)")
    print(f"written                {subs:,} Subscription__c, {accounts:,} Account, "
          f"{big['ArrByPeriod__b']:,} + {big['ArrByPeriodByCustomer__b']:,} big-object rows in {bulk_jobs} bulk jobs")
    print(f"sync cycles            {cycles} (the last one idle)")
    print(f"API calls by kind      {dict(calls)}")
    print(f"API calls used         {used:,}")
    print(f"batching minimum       {minimum:,}  (reads {min_reads}, writes {min_writes})")
    print(f"over the minimum       {100 * (used - minimum) / minimum:.1f} %")
    print(f"time                   seed {seed_seconds:.1f} s (the org's process), sync {elapsed:.1f} s")
    print(f"peak RSS               {peak:,.0f} MiB (the connector's process; {floor:,.0f} MiB loaded, "
          f"before the first read; the sandbox org runs in a process of its own)")


if __name__ == "__main__":
    main()
