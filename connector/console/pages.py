"""The console's pages: report rows in, HTML out (every value from the store escaped)."""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from html import escape
from typing import Any, Sequence
from urllib.parse import urlencode

from connector import reports
from connector.chart import arr_movements
from connector.console.svg import bar_chart, waterfall_chart

NAV = [("health", "Sync health"), ("outbox", "Outbox"), ("jobs", "Failed jobs"), ("quarantine", "Quarantine"),
       ("arr", "ARR")]
CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2433;background:#f6f7f9}
header{background:#1d2433;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:baseline}
header b{font-size:16px}header a{color:#cfd8ea;text-decoration:none}header a.on{color:#fff;font-weight:600}
main{padding:1em 1.2em;max-width:1200px}h1{font-size:20px;margin:.2em 0 .6em}h2{font-size:16px;margin:1.2em 0 .4em}
table{border-collapse:collapse;background:#fff;margin:.3em 0 1em}th,td{border:1px solid #d9dde5;padding:.25em .6em;
text-align:left;vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#eef0f4}
.ok{color:#1a7f37}.bad{color:#b42318}.muted{color:#667085}.cards{display:flex;gap:1em;flex-wrap:wrap}
.card{background:#fff;border:1px solid #d9dde5;padding:.6em 1em;min-width:10em}.card .v{font-size:22px}.card .t{font-size:15px}
form{margin:.4em 0 1em}select,button,input{font:inherit}svg{background:#fff;border:1px solid #d9dde5}
"""


def esc(value: Any) -> str:
    """A value as HTML text: escaped; dates ISO; amounts as exact decimals; None as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = value.isoformat(sep=" ", timespec="seconds")
    elif isinstance(value, dt.date):
        value = value.isoformat()
    return escape(str(value), quote=True)


def layout(title: str, body: str, current: str = "") -> str:
    links = "".join(f'<a href="/console/{key}"{" class=on" if key == current else ""}>{label}</a>'
                    for key, label in NAV)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)} · revsync</title>'
            f'<meta name="viewport" content="width=device-width"><style>{CSS}</style></head>'
            f'<body><header><b>revsync</b>{links}</header><main><h1>{esc(title)}</h1>{body}</main></body></html>')


def message(title: str, text: str) -> str:
    return layout(title, f"<p>{esc(text)}</p>")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, table_id: str,
          headers: Sequence[str] | None = None, empty: str = "Nothing here.") -> str:
    if not rows:
        return f'<p class="muted" id="{table_id}-empty">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in (headers or columns))
    body = []
    for row in rows:
        cells = "".join(f'<td{" class=n" if isinstance(row.get(c), (int, Decimal)) else ""} data-col="{esc(c)}">'
                        f"{esc(row.get(c))}</td>" for c in columns)
        body.append(f"<tr>{cells}</tr>")
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _lag(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _budget(usage: str | None) -> str:
    """The API budget card: used/limit as the daemon last read it from Salesforce, with a meter."""
    meter = ""
    match = re.match(r"(\d+)/(\d+)", usage or "")
    if match and int(match.group(2)) > 0:
        used, limit = int(match.group(1)), int(match.group(2))
        share = min(100.0, 100.0 * used / limit)
        colour = "#b42318" if share >= 90 else "#d97706" if share >= 75 else "#1a7f37"
        meter = (f'<div class=v>{share:.1f} %</div><div style="background:#eef0f4;height:8px;width:12em">'
                 f'<div style="background:{colour};height:8px;width:{share:.1f}%"></div></div>')
    return (f'<div class=card>API budget (daily requests used/limit){meter}'
            f'<div class=muted id="api-usage">{esc(usage) or "unknown: no sync has read it yet"}</div></div>')


def health(app, params: dict[str, str]) -> tuple[str, str]:
    with app.store.connect() as conn:
        info = reports.status(conn, app.clock.now())
    daemon = info.get("daemon")
    if daemon:
        state = esc(daemon.get("state"))
        cls = "ok" if daemon.get("state") == "ok" else "bad"
        extra = "".join(f"<br><span class=muted>{esc(label)}: {esc(daemon[key])}</span>"
                        for key, label in (("reason", "reason"), ("next_attempt_at", "next try"))
                        if daemon.get(key))
        last = esc(daemon.get("last_good_cycle_at")) or "none yet"
        daemon_card = f'<div class=card id="daemon-state">Sync daemon<div class="v {cls}">{state}</div>{extra}</div>'
    else:
        last = "none yet"
        daemon_card = ('<div class=card id="daemon-state">Sync daemon<div class="v muted">never ran</div>'
                       '<span class=muted>no sync has run on this store</span></div>')
    outbox = info["outbox"] or {}
    cards = (daemon_card
             + f'<div class=card>Last good cycle (UTC)<div class="v t" id="last-good-cycle">{last}</div></div>'
             + _budget(info["api_usage"])
             + f'<div class=card><a href="/console/outbox">Outbox</a><div class=v id="outbox-waiting">'
               f'{sum(outbox.values())}</div><span class=muted>'
               f'{esc(", ".join(f"{k}: {v}" for k, v in sorted(outbox.items())) or "empty")}</span></div>'
             + f'<div class=card><a href="/console/jobs">Failed jobs</a><div class="v{" bad" if info["failed_jobs"] else ""}"'
               f' id="failed-jobs">{info["failed_jobs"]}</div></div>'
             + f'<div class=card><a href="/console/quarantine">Quarantined</a><div class="v{" bad" if info["quarantined"] else ""}"'
               f' id="quarantined">{info["quarantined"]}</div></div>')
    cursors = [dict(c, lag=_lag(c["lag_seconds"])) for c in info["cursors"]]
    body = (f'<div class=cards>{cards}</div><h2>Lag per object</h2>'
            + table(cursors, ["object", "cursor", "lag", "lag_seconds"], table_id="cursors",
                    headers=["Object", "Read up to (UTC)", "Lag", "Lag (s)"],
                    empty="No object has been read from Salesforce yet."))
    return "200 OK", layout("Sync health", body, "health")


def outbox(app, params: dict[str, str]) -> tuple[str, str]:
    failed_only = params.get("failed") == "1"
    with app.store.connect() as conn:
        rows = reports.outbox(conn, failed_only=failed_only)
    switch = ('<p><a href="/console/outbox">all waiting</a> · failed only</p>' if failed_only else
              '<p>all waiting · <a href="/console/outbox?failed=1">failed only</a></p>')
    body = switch + table(rows, ["id", "object", "external_id", "kind", "order", "state", "attempts",
                                 "last_message", "sf_id", "updated_at"], table_id="outbox",
                          headers=["Id", "Object", "External id", "Kind", "Order", "State", "Attempts",
                                   "Salesforce's message", "Salesforce id", "Updated (UTC)"],
                          empty="Nothing is waiting to be written to Salesforce.")
    return "200 OK", layout("Outbox: writes to Salesforce", body, "outbox")


def jobs(app, params: dict[str, str]) -> tuple[str, str]:
    every = params.get("all") == "1"
    with app.store.connect() as conn:
        rows = reports.jobs(conn, failed_only=not every)
    switch = ('<p><a href="/console/jobs">failed only</a> · all jobs</p>' if every else
              '<p>failed only · <a href="/console/jobs?all=1">all jobs</a></p>')
    body = switch + table(rows, ["id", "order", "kind", "status", "attempts", "error", "updated_at"], table_id="jobs",
                          headers=["Id", "Order", "Kind", "Status", "Attempts", "Last error", "Updated (UTC)"],
                          empty="No failed job." if not every else "No job.")
    return "200 OK", layout("Background jobs" if every else "Failed jobs", body, "jobs")


def quarantine(app, params: dict[str, str]) -> tuple[str, str]:
    with app.store.connect() as conn:
        rows = reports.quarantined(conn)
    body = ("<p class=muted>Salesforce records held back; fixing the record in Salesforce releases it at the "
            "next sync.</p>"
            + table(rows, ["object", "record_id", "reason", "system_modstamp", "first_seen", "last_seen"],
                    table_id="quarantine", headers=["Object", "Record", "Reason", "SystemModstamp",
                                                    "First seen", "Last seen"],
                    empty="No record is held back."))
    return "200 OK", layout("Quarantine", body, "quarantine")


def _calendar(app):
    if app.calendar is not None:
        return app.calendar
    from connector.console.calendar import calendar_from_store

    return calendar_from_store(app.store)


def _currencies(lines: Sequence[dict[str, Any]]) -> list[str]:
    """The currencies of the ARR rows, the one most order lines are in first (then by code): the
    page's default, figures in different currencies being never added."""
    count: dict[str, int] = {}
    for line in {(r["order_product"], r["currency"]) for r in lines}:
        count[line[1]] = count.get(line[1], 0) + 1
    return sorted(count, key=lambda c: (-count[c], c))


def _currency_select(currencies: list[str], chosen: str | None) -> str:
    opts = "".join(f'<option value="{esc(c)}"{" selected" if c == chosen else ""}>{esc(c)}</option>'
                   for c in currencies)
    return f'in <select name="currency" id="filter-currency">{opts}</select>'


def arr(app, params: dict[str, str]) -> tuple[str, str]:
    by = params.get("by", "quarter")
    customer = params.get("customer") or None
    owner = params.get("owner") or None
    asked_currency = (params.get("currency") or "").strip().upper() or None
    if by not in ("month", "quarter", "year"):
        return "400 Bad Request", layout("ARR", f"<p class=bad>by={esc(by)}: give month, quarter or year.</p>", "arr")
    dates: dict[str, dt.date | None] = {}
    for key in ("from", "to"):
        try:
            dates[key] = dt.date.fromisoformat(params[key]) if params.get(key) else None
        except ValueError:
            return "400 Bad Request", layout("ARR", f"<p class=bad>{key}={esc(params[key])}: give a day as "
                                                    "YYYY-MM-DD.</p>", "arr")
    if dates["from"] and dates["to"] and dates["from"] > dates["to"]:
        return "400 Bad Request", layout("ARR", f"<p class=bad>from {dates['from']} is after to {dates['to']}: "
                                                "the range is empty.</p>", "arr")
    with app.store.connect() as conn:
        lines = reports.arr_by_period(conn)
        customers = sorted({(r["customer"], r["customer_name"] or "") for r in lines})
        # (value to filter by: the User Id, or the name an import file gave; the name shown)
        owners = sorted({(r["owner_id"] or r["owner"], r["owner"]) for r in lines if r["owner"]}, key=lambda o: o[::-1])
        # the currencies of the rows shown: a customer's own, when one is chosen
        currencies = _currencies([r for r in lines if (customer is None or r["customer"] == customer)
                                  and (owner is None or (r["owner_id"] or r["owner"]) == owner)] or lines)
        currency = asked_currency or (currencies[0] if currencies else None)
        calendar = _calendar(app)
        problem = None
        rows: list[dict[str, Any]] = []
        if asked_currency and asked_currency not in currencies:
            problem = (f"No ARR row is in {asked_currency}; the rows are in "
                       f"{', '.join(currencies) or 'no currency yet'}.")
        elif calendar is None:
            problem = ("The fiscal calendar is not known here: run `revsync console` with the configuration, "
                       "or give the daemon's server the calendar.")
        else:
            try:
                rows = reports.arr_summary(conn, calendar, by=by, customer=customer, owner=owner,
                                           start=dates["from"], end=dates["to"], currency=currency)
            except ValueError as exc:
                problem = str(exc)

    def options(name: str, values: list[tuple[str, str]], chosen: str | None) -> str:
        opts = [f'<option value="">every {name}</option>'] + [
            f'<option value="{esc(v)}"{" selected" if v == chosen else ""}>{esc(label)}</option>' for v, label in values]
        return f'<select name="{name}" id="filter-{name}">{"".join(opts)}</select>'

    by_options = "".join(f'<option{" selected" if b == by else ""}>{b}</option>' for b in ("month", "quarter", "year"))
    form = (f'<form method="get" action="/console/arr">By <select name="by" id="filter-by">{by_options}</select> '
            + options("customer", [(c, f"{n} ({c})" if n else c) for c, n in customers], customer) + " "
            + options("owner", owners, owner) + " "
            + _currency_select(currencies, currency)
            + f' from <input type="date" name="from" id="filter-from" value="{esc(dates["from"] or "")}">'
            + f' to <input type="date" name="to" id="filter-to" value="{esc(dates["to"] or "")}">'
            + ' <button type="submit">Show</button></form>')
    scope = " · ".join(x for x in (f"customer {esc(customer)}" if customer else "",
                                   f"owner {esc(dict(owners).get(owner, owner))}" if owner else "") if x) \
        or "all customers and owners"
    if dates["from"] or dates["to"]:
        scope += f", {esc(dates['from'] or 'the first period')} to {esc(dates['to'] or 'the last period')}"
    if currency:
        scope += f"; amounts in <b id=arr-currency>{esc(currency)}</b>"
        if len(currencies) > 1:
            scope += (" (the orders are in " + ", ".join(esc(c) for c in currencies)
                      + ": figures in different currencies are never added)")
    body = form + f"<p class=muted id=arr-scope>By {esc(by)}, {scope}.</p>"
    if problem:
        return "200 OK", layout("ARR by period", body + f"<p class=bad id=arr-problem>{esc(problem)}</p>", "arr")
    if not rows:
        return "200 OK", layout("ARR by period", body + '<p class=muted id="arr-empty">No ARR rows.</p>', "arr")
    body += bar_chart([(r["period_start"].isoformat(), r["closing_arr"]) for r in rows],
                      title=f"Closing ARR per period ({currency})", unit=currency)
    opening, steps, closing = arr_movements(rows, reports.CATEGORIES)
    body += "<h2>Movements</h2>" + waterfall_chart(
        (f"Opening {rows[0]['period_start']}", opening), steps, (f"Closing {rows[-1]['period_end']}", closing),
        title=f"ARR movements over the periods shown (change in CMRR × 12, {currency})", unit=currency)
    categories = [c for c in reports.CATEGORIES if any(c in r["changes"] for r in rows)]
    table_rows = []
    for r in rows:
        row = {"period_label": r["period_label"], "period_start": r["period_start"], "period_end": r["period_end"],
               "opening_arr": r["opening_arr"]}
        for c in categories:
            row[c] = r["changes"][c] * 12 if c in r["changes"] else None
        row["closing_arr"] = r["closing_arr"]
        table_rows.append(row)
    body += ("<h2>Per period</h2><p class=muted>Changes in ARR by category (change in CMRR × 12).</p>"
             + table(table_rows, ["period_label", "period_start", "period_end", "opening_arr", *categories,
                                  "closing_arr"], table_id="arr",
                     headers=["Period", "Period start", "Period end", f"Opening ARR ({currency})",
                              *(f"{c} ({currency})" for c in categories), f"Closing ARR ({currency})"]))
    links = []
    for c, n in customers:
        links.append(f'<a href="/console/arr?{esc(urlencode({"by": by, "customer": c, "currency": currency}))}">'
                     f'{esc(n or c)}</a>')
    body += "<h2>Per customer</h2><p id=per-customer>" + " · ".join(links) + "</p>"
    body += "<h2>Per owner</h2><p id=per-owner>" + " · ".join(
        f'<a href="/console/arr?{esc(urlencode({"by": by, "owner": o, "currency": currency}))}">{esc(name)}</a>'
        for o, name in owners) + "</p>"
    return "200 OK", layout("ARR by period", body, "arr")


PAGES = {"health": health, "outbox": outbox, "jobs": jobs, "quarantine": quarantine, "arr": arr}
