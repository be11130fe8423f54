"""The second half of `revsync demo`: the whole product against the sandbox org over HTTPS.

The worked example's scenario (three orders, ARR by period, Chloe's quarters of 2023) is seeded as Salesforce records (accounts, products, a price book,
opportunities closed won with primary quotes, activated orders and their items, monthly fiscal
periods). The daemon runs until idle; then one engine-origin order is imported and the daemon
runs again, writing it as a Draft order and activating it only after the engine is done.
Everything happens in a temporary directory that is removed afterwards.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from importlib.resources import files
from pathlib import Path
from typing import Any, Callable

import requests

from connector import reports
from connector.app import App
from connector.clock import SystemClock
from connector.config import Config
from connector.daemon import Daemon
from connector.importer import import_document, parse
from connector.runtime import build

#: The sandbox's test connected app: obviously fake credentials, known to the local org only.
DEMO_CLIENT_ID = "revsync-test-client"
DEMO_CLIENT_SECRET = "revsync-test-secret"


def run(show: Callable[[str, list[dict[str, Any]]], None], say: Callable[[str], None]) -> dict[str, Any]:
    """Run the showcase; `show(title, rows)` prints a table, `say(text)` a line. Returns key figures."""
    from connector.sandbox.org import Org, OrgConfig
    from connector.sandbox.seed import load_seed
    from connector.sandbox.server import serve

    with tempfile.TemporaryDirectory(prefix="revsync-demo-sf-") as tmp:
        org = Org(OrgConfig(clients={DEMO_CLIENT_ID: DEMO_CLIENT_SECRET}))
        refs = load_seed(org, json.loads(files("connector.demo").joinpath("sandbox_seed.json").read_text()))
        server = serve(org, "127.0.0.1", 0, Path(tmp) / "sandbox-ca.pem")
        # The sandbox's own test CA, trusted the standard way (REQUESTS_CA_BUNDLE); verification stays on.
        saved = {k: os.environ.get(k) for k in ("REVSYNC_SF_CONSUMER_SECRET", "REQUESTS_CA_BUNDLE")}
        os.environ["REQUESTS_CA_BUNDLE"] = str(server.ca_path)
        os.environ["REVSYNC_SF_CONSUMER_SECRET"] = DEMO_CLIENT_SECRET
        session = requests.Session()
        try:
            config = Config.model_validate({
                "store": {"url": f"sqlite:///{Path(tmp) / 'revsync.db'}"},
                "fiscal": {"source": "salesforce"},
                "salesforce": {"auth": "client_credentials", "login_url": server.url,
                               "consumer_key": DEMO_CLIENT_ID}})
            app = App(config, SystemClock())
            runtime = build(app, session=session)
            daemon = Daemon(runtime.service, app.clock, interval=dt.timedelta(seconds=1), writer=runtime.writer,
                            after_cycle=app.refresh_calendar)
            daemon.run(once=True, install_signals=False)
            say(f"Salesforce-origin: {len(org.records('Order'))} activated orders read, "
                f"{len(org.records('Subscription__c'))} subscriptions written back.")

            # One engine-origin order, naming its account and product by their Salesforce Ids.
            order = {"orders": [{"id": "ENG-1", "account": refs["b"], "owner": "Chloe", "booked_on": "2023-05-15",
                                 "currency": "USD", "lines": [{
                                     "id": "ENG-1-1", "action": "new", "product": refs["seat"], "quantity": 5,
                                     "unit_price": "100", "start": "2023-06-01", "end": "2024-05-31"}]}]}
            import_document(app.store, parse(json.dumps(order), "engine-origin order"), "engine-origin order",
                            app.calendar, app.settings, app.clock, app.runner)
            daemon.run(once=True, install_signals=False)
            result = daemon.run(once=True, install_signals=False)  # idle: nothing new, nothing left
            engine_order = next(r for r in org.records("Order") if r.get("ExternalId__c") == "ENG-1")
            statuses = [e for e in org.request_log if "/Order" in e.path and e.method in ("PATCH", "POST")]
            say(f"Engine-origin order ENG-1: written as Draft, now {engine_order['Status']} in Salesforce "
                f"({len(statuses)} order writes in the request log).")

            subs = [{"subscription": r["ExternalId__c"], "account": r["Account__c"], "quantity": r["Quantity__c"],
                     "start": r["StartDate__c"], "end": r["EndDate__c"], "tcv": r["TCV__c"], "status": r["Status__c"]}
                    for r in org.records("Subscription__c")]
            show("Subscription__c records in Salesforce", subs)
            for big in ("ArrByPeriod__b", "ArrByPeriodByCustomer__b"):
                rows = org.records(big)
                show(f"{big}: {len(rows)} rows (first 3)", [
                    {"start": r["StartDate__c"], "order_product": r["OrderProduct__c"],
                     "category": r["ChangeCategory__c"], "opening_cmrr": r["OpeningCMRR__c"],
                     "closing_cmrr": r["ClosingCMRR__c"]} for r in rows[:3]])
            owner = refs["chloe"]
            with app.store.connect() as conn:
                quarters = reports.arr_summary(conn, app.calendar, by="quarter", owner=owner,
                                               start=dt.date(2023, 1, 1), end=dt.date(2023, 12, 31))
            show("Chloe's quarters of fiscal 2023, from the orders read from Salesforce", quarters)
            say(f"API calls used: {org.api_usage} of the daily {org.config.daily_api_limit}; "
                f"left to write: {result.left or 'nothing'}.")
            app.store.dispose()
            return {"api_calls": org.api_usage, "engine_order_status": engine_order["Status"],
                    "big_rows": {b: len(org.records(b)) for b in ("ArrByPeriod__b", "ArrByPeriodByCustomer__b")},
                    "left": result.left}
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            session.close()
            server.stop()
