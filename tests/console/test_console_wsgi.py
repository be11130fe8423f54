"""The console as a WSGI application: pages, status codes, escaping, the token off loopback, the mount."""
from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal
from html import unescape
from wsgiref.util import setup_testing_defaults

import pytest
import requests

from connector import reports
from connector.app import App
from connector.config import Config, StoreConfig
from connector.console import ConsoleApp, for_server
from connector.console.calendar import calendar_from_store
from connector.console.serve import build
from connector.clock import FrozenClock
from connector.errors import ValidationFailed
from connector.importer import import_document, parse
from connector.metrics import Metrics
from connector.server import Server, ServerSettings

import json

from console_support import (AT, HOSTILE_NAME, JOB_ERROR, QUARANTINE_REASON, SF_MESSAGE, add_trouble,
                             worked_example_doc)

TOKEN = "s3cret-token-0123456789abcdef"


@pytest.fixture(scope="module")
def the_app(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('console') / 'store.db'}"
    app = App(Config(store=StoreConfig(url=url)), FrozenClock(AT))
    doc = parse(json.dumps(worked_example_doc()), "worked example")
    import_document(app.store, doc, "worked example", app.calendar, app.settings, app.clock, app.runner)
    add_trouble(url)
    yield app
    app.store.dispose()


def get(app, path: str, *, method: str = "GET", headers: dict[str, str] | None = None):
    """(status, headers, body) of one request."""
    path, _, query = path.partition("?")
    environ = {"PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": method, "wsgi.input": io.BytesIO()}
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    setup_testing_defaults(environ)
    seen = {}

    def start_response(status, response_headers):
        seen["status"], seen["headers"] = status, response_headers

    body = b"".join(app(environ, start_response)).decode()
    return int(seen["status"].split()[0]), dict(seen["headers"]), body


def cells(body: str, table_id: str, column: str) -> list[str]:
    """The texts of one column of a table, unescaped."""
    table = re.search(rf'<table id="{table_id}">.*?</table>', body, re.S)
    assert table, f"no table {table_id}"
    return [unescape(v) for v in re.findall(rf'<td[^>]*data-col="{re.escape(column)}">(.*?)</td>', table.group(0))]


@pytest.fixture(scope="module")
def console(the_app):
    return ConsoleApp(the_app.store, the_app.clock, calendar=the_app.calendar)


@pytest.mark.parametrize("path", ["/console/", "/console/health", "/console/outbox", "/console/outbox?failed=1",
                                  "/console/jobs", "/console/jobs?all=1", "/console/quarantine",
                                  "/console/arr", "/console/arr?by=month&customer=A", "/console/arr?owner=Chloe&by=year"])
def test_every_page_answers_and_escapes_what_comes_from_the_store(console, path):
    status, headers, body = get(console, path)
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "<script" not in body and "<img" not in body and "<b>A</b>" not in body and "<i>ten" not in body
    assert "<unreachable>" not in body


def test_the_texts_are_shown_escaped(console):
    assert "ARR must be &lt;= 1,000,000 &lt;script&gt;alert(1)&lt;/script&gt;" in get(console, "/console/outbox")[2]
    assert cells(get(console, "/console/outbox?failed=1")[2], "outbox", "last_message") == [SF_MESSAGE]
    assert cells(get(console, "/console/jobs")[2], "jobs", "error") == [JOB_ERROR]
    assert cells(get(console, "/console/quarantine")[2], "quarantine", "reason") == [QUARANTINE_REASON]
    arr = get(console, "/console/arr")[2]
    assert "Customer &lt;b&gt;A&lt;/b&gt; &amp; &quot;Sons&quot;" in arr
    assert HOSTILE_NAME not in arr


def test_health_shows_lag_budget_and_last_good_cycle(console, the_app):
    body = get(console, "/console/health")[2]
    with the_app.store.connect() as conn:
        status = reports.status(conn, AT)
    assert cells(body, "cursors", "object") == [c["object"] for c in status["cursors"]] == ["Account", "Order"]
    assert cells(body, "cursors", "lag_seconds") == ["40.0", "180.0"]
    assert cells(body, "cursors", "lag") == ["40 s", "3 min"]
    assert re.search(r'id="api-usage">1234/15000 at 2023-06-30', body)
    assert "<div class=v>8.2 %</div>" in body  # 1234 of 15000
    assert re.search(r'id="last-good-cycle">2023-06-30T11:55:00', body)
    assert re.search(r'id="failed-jobs">1<', body) and re.search(r'id="quarantined">1<', body)
    assert re.search(r'id="outbox-waiting">2<', body)
    assert "degraded" in body and "Salesforce &lt;unreachable&gt;" in body


def test_arr_page_shows_the_report_figures(console, the_app):
    with the_app.store.connect() as conn:
        rows = reports.arr_summary(conn, the_app.calendar, by="month", customer="A")
    body = get(console, "/console/arr?by=month&customer=A")[2]
    assert cells(body, "arr", "closing_arr") == [str(r["closing_arr"]) for r in rows]
    assert cells(body, "arr", "opening_arr") == [str(r["opening_arr"]) for r in rows]
    assert cells(body, "arr", "Upsell/Expansion") == [str(r["changes"]["Upsell/Expansion"] * 12)
                                                      if "Upsell/Expansion" in r["changes"] else "" for r in rows]
    bars = re.findall(r'class="bar"[^>]*data-label="([^"]+)" data-value="([^"]+)"', body)
    assert bars == [(r["period_start"].isoformat(), str(r["closing_arr"])) for r in rows]
    assert Decimal(bars[3][1]) == Decimal("19200.00")  # April 2023: 16 seats at 100 a month
    # the waterfall: opening, New Business up 12,000 (10 seats × 100 × 12), Upsell up 7,200 (6 more
    # seats from April), both down when the subscription ends in January 2024, closing
    steps = re.findall(r'class="step (\w+)"[^>]*data-label="([^"]+)" data-value="([^"]+)"', body)
    assert steps == [("total", "Opening 2023-01-01", "0.00"), ("up", "New Business ↑", "12000.00"),
                     ("down", "New Business ↓", "-12000.00"), ("up", "Upsell/Expansion ↑", "7200.00"),
                     ("down", "Upsell/Expansion ↓", "-7200.00"), ("total", "Closing 2024-01-31", str(rows[-1]["closing_arr"]))]


def test_arr_page_takes_a_range(console, the_app):
    with the_app.store.connect() as conn:
        rows = reports.arr_summary(conn, the_app.calendar, by="quarter", start=dt.date(2023, 1, 1),
                                   end=dt.date(2023, 6, 30))
    body = get(console, "/console/arr?by=quarter&from=2023-01-01&to=2023-06-30")[2]
    assert cells(body, "arr", "period_start") == ["2023-01-01", "2023-04-01"]
    assert cells(body, "arr", "closing_arr") == [str(r["closing_arr"]) for r in rows] == ["36000.00", "19200.00"]
    assert 'value="2023-06-30"' in body


@pytest.mark.parametrize("path, method, status", [
    ("/console/nope", "GET", 404), ("/elsewhere", "GET", 404), ("/console/arr?by=week", "GET", 400),
    ("/console/arr?from=2023-13-01", "GET", 400), ("/console/arr?from=2023-06-01&to=2023-01-01", "GET", 400),
    ("/console/health", "POST", 405), ("/console/outbox", "DELETE", 405)])
def test_errors(console, path, method, status):
    assert get(console, path, method=method)[0] == status


def test_the_root_redirects_to_the_console(console):
    status, headers, _ = get(console, "/")
    assert status == 303 and headers["Location"] == "/console/"


def test_a_calendar_the_store_knows_is_enough(the_app):
    calendar = calendar_from_store(the_app.store)
    assert calendar is not None and calendar.fingerprint() == the_app.calendar.fingerprint()
    body = get(ConsoleApp(the_app.store, the_app.clock), "/console/arr?by=quarter")[2]
    assert cells(body, "arr", "period_start")[:2] == ["2023-01-01", "2023-04-01"]


def test_token_bearer_query_and_cookie(the_app):
    app = ConsoleApp(the_app.store, the_app.clock, calendar=the_app.calendar, token=TOKEN)
    status, headers, body = get(app, "/console/health")
    assert status == 401 and "Bearer" in headers["WWW-Authenticate"] and "token" in body
    assert get(app, "/console/health", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert get(app, "/console/health", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert get(app, "/console/arr?token=wrong")[0] == 401
    status, headers, _ = get(app, f"/console/arr?by=month&token={TOKEN}")
    assert status == 303 and headers["Location"] == "/console/arr?by=month"  # the token leaves the address bar
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    value = cookie.split(";")[0]
    assert get(app, "/console/arr?by=month", headers={"Cookie": value})[0] == 200
    assert get(app, "/console/arr", headers={"Cookie": "revsync_console=0123"})[0] == 401


def test_the_daemon_console_off_loopback_needs_a_token(the_app):
    off = for_server("0.0.0.0", the_app.store, the_app.clock, environ={})
    status, _, body = get(off, "/console/health")
    assert status == 403 and "REVSYNC_CONSOLE_TOKEN" in body
    guarded = for_server("0.0.0.0", the_app.store, the_app.clock, environ={"REVSYNC_CONSOLE_TOKEN": TOKEN})
    assert get(guarded, "/console/health")[0] == 401
    assert get(guarded, "/console/health", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    short = for_server("0.0.0.0", the_app.store, the_app.clock, environ={"REVSYNC_CONSOLE_TOKEN": "short"})
    assert get(short, "/console/health")[0] == 403
    for host in ("127.0.0.1", "::1", "localhost"):
        assert get(for_server(host, the_app.store, the_app.clock, environ={}), "/console/health")[0] == 200


def test_revsync_console_refuses_a_non_loopback_host_without_a_token(the_app):
    with pytest.raises(ValidationFailed, match=r"--host 0\.0\.0\.0.*not a loopback address"):
        build(the_app, "0.0.0.0", environ={})
    with pytest.raises(ValidationFailed, match="shorter than 16"):
        build(the_app, "127.0.0.1", environ={"REVSYNC_CONSOLE_TOKEN": "short"})
    assert build(the_app, "0.0.0.0", environ={"REVSYNC_CONSOLE_TOKEN": TOKEN}).token == TOKEN
    assert build(the_app, "127.0.0.1", environ={}).token is None


def test_the_daemon_server_mounts_the_console(the_app):
    server = Server(ServerSettings(host="127.0.0.1", port=0), store=the_app.store, clock=the_app.clock,
                    metrics=Metrics(), cycle_interval=dt.timedelta(seconds=60))
    with server:
        page = requests.get(f"{server.url}/console/quarantine", timeout=10)
        assert page.status_code == 200 and "802000000000001AAA" in page.text
        arr = requests.get(f"{server.url}/console/arr?by=quarter", timeout=10)  # calendar read from the store
        assert arr.status_code == 200 and "36000.00" in arr.text
        assert requests.get(f"{server.url}/health", timeout=10).status_code in (200, 503)
        assert requests.get(f"{server.url}/consolex", timeout=10).status_code == 404


def test_arr_page_names_periods_and_shows_each_currency_apart(tmp_path):
    """Orders in USD and EUR: the page shows the currency most lines are in, with its code beside the
    amounts; ?currency=EUR shows the EUR figures; never a sum of the two."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    app = App(Config(store=StoreConfig(url=url)), FrozenClock(AT))
    doc = worked_example_doc()
    doc["orders"].append({"id": "O-E", "account": "B", "owner": "Chloe", "booked_on": "2023-03-01",
                          "currency": "EUR", "lines": [{"id": "OP-E", "action": "new", "product": "SEAT",
                                                        "subscription": "S-E", "quantity": 5, "unit_price": "90",
                                                        "start": "2023-03-01", "end": "2024-02-29"}]})
    import_document(app.store, parse(json.dumps(doc), "two currencies"), "two currencies", app.calendar,
                    app.settings, app.clock, app.runner)
    try:
        console = ConsoleApp(app.store, app.clock, calendar=app.calendar)
        with app.store.connect() as conn:
            usd = reports.arr_summary(conn, app.calendar, by="quarter", currency="USD")
            eur = reports.arr_summary(conn, app.calendar, by="quarter", currency="EUR")
        status, _, body = get(console, "/console/arr")
        assert status == 200 and 'id=arr-currency>USD<' in body
        assert cells(body, "arr", "closing_arr") == [str(r["closing_arr"]) for r in usd]
        assert cells(body, "arr", "period_label") == [r["period_label"] for r in usd]
        assert cells(body, "arr", "period_label")[:2] == ["FY2023 Q1", "FY2023 Q2"]
        assert "Closing ARR (USD)" in body and "36,000.00 USD" in body
        status, _, body = get(console, "/console/arr?currency=eur")
        assert status == 200 and 'id=arr-currency>EUR<' in body
        assert cells(body, "arr", "closing_arr") == [str(r["closing_arr"]) for r in eur]
        assert cells(body, "arr", "closing_arr")[0] == "5400.00"  # 5 seats × 90 × 12, in EUR alone
        assert "Closing ARR (EUR)" in body and "5,400.00 EUR" in body and "USD" in body  # listed, not added
        status, _, body = get(console, "/console/arr?currency=GBP")
        assert status == 200 and "No ARR row is in GBP" in body and "USD, EUR" in body
    finally:
        app.store.dispose()
