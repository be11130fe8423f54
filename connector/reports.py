"""Reports over the store. Each returns a list of plain dicts with exactly the documented keys."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, func, literal, or_, select

from connector.engine.fiscal import FiscalCalendar, FiscalPeriod
from connector.engine.money import round_money
from connector.projections import ARR_LINES, arr_rows_joined, committed
from connector.projections import accounts as accounts  # `report accounts` shows the projection as it is
from connector.salesforce.ids import salesforce_id_18
from connector.store import schema as t

ARR_BY_PERIOD_KEYS = ("order", "order_product", "customer", "customer_name", "owner", "subscription",
                      "product", "product_name", "change_category", "period_start", "period_end",
                      "period_label", "opening_cmrr", "closing_cmrr", "change_cmrr", "opening_arr", "closing_arr",
                      "change_arr", "quantity", "currency")
#: `report arr-by-period`'s columns: `owner` is the owner's name, `owner_id` its Salesforce User Id
#: (empty for an order imported from a file, whose owner is a name)
ARR_BY_PERIOD_REPORT_KEYS = ARR_BY_PERIOD_KEYS[:5] + ("owner_id",) + ARR_BY_PERIOD_KEYS[5:]
CATEGORIES = ("New Business", "Cross Sell", "Upsell/Expansion", "Downsell/Contraction", "Renewal",
              "Cancel/Churn")


def plain_quantity(value: Decimal) -> Decimal:
    """A quantity without trailing zeros: 10, 2.5 (never 1E+1)."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def _filters(order: str | None, customer: str | None, owner: str | None) -> list:
    conds = []
    if order:
        conds.append(t.orders.c.id == order)
    if customer:
        conds.append(t.orders.c.account == customer)
    if owner:
        conds.append(owner_condition(owner))
    return conds


def _is_user_id(value: str | None) -> bool:
    """A Salesforce User Id (005…, 15 or 18 characters), as Salesforce-origin orders hold their owner."""
    return bool(value) and value.startswith("005") and salesforce_id_18(value) is not None


def _name_matches(column, value: str):
    """`column` (a name) is `value`, or has it as a whole word: `Chloe` matches `Chloe Ng`. Any case."""
    wanted = " ".join(value.split()).lower()
    escaped = wanted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    padded = literal(" ").concat(func.lower(column)).concat(" ")
    return or_(func.lower(column) == wanted, padded.like(f"% {escaped} %", escape="\\"))


def owner_condition(value: str):
    """Orders owned by `value`: a Salesforce User Id (15 or 18 characters), or a name, whole or one of
    its words, in any case: the name of a Salesforce user (read with its orders), or the owner an
    import file gives."""
    o, n = t.orders.c, t.owner_names.c
    value = value.strip()
    if _is_user_id(value):  # Ids are case-sensitive: never matched as a name
        return o.owner.in_(sorted({value, salesforce_id_18(value)}))
    return or_(o.owner == value, _name_matches(o.owner, value),
               o.owner.in_(select(n.id).where(_name_matches(n.name, value)).scalar_subquery()))


def owner_names(conn: Connection, value: str | None = None) -> dict[str, str]:
    """Owners of the store's orders (those `value` matches, when given): {owner as stored: name shown}."""
    o, n = t.orders.c, t.owner_names.c
    query = (select(o.owner, n.name).distinct()
             .select_from(t.orders.outerjoin(t.owner_names, n.id == o.owner)))
    if value is not None:
        query = query.where(owner_condition(value))
    return {owner: name or owner for owner, name in conn.execute(query)}


def arr_by_period(conn: Connection, *, order: str | None = None, customer: str | None = None,
                  owner: str | None = None, calendar: FiscalCalendar | None = None) -> list[dict[str, Any]]:
    """Every ARR-by-period row, with its line's order, customer, owner, subscription and product, and
    the fiscal month's label (`period_label`, from `calendar`; None without one).

    `owner` is the owner's name (the User Id until its name has been read), `owner_id` the
    Salesforce User Id (None for an owner given by name in an import file).
    """
    out = []
    labels: dict[dt.date, str] = {}
    for d in arr_rows_joined(conn, *_filters(order, customer, owner)):
        start = d["period_start"]
        if calendar is not None and start not in labels:
            labels[start] = calendar.label(calendar.period_of(start), "month")
        d["period_label"] = labels.get(start)
        d["owner_id"] = d["owner"] if _is_user_id(d["owner"]) else None
        d["owner"] = d["owner_name"] or d["owner"]
        out.append({k: d[k] for k in ARR_BY_PERIOD_REPORT_KEYS})
    return out


def _arr_months(conn: Connection, *, customer: str | None, owner: str | None,
                currency: str | None) -> tuple[dict, set[str]]:
    """ARR rows summed per fiscal month, with the currencies they are in.

    Returns ({month start: {opening/closing CMRR/ARR, changes by category}}, currencies).
    Row amounts are stored rounded to their currency, so these sums are exact.
    """
    r, l, o = t.arr_rows.c, t.order_lines.c, t.orders.c
    conds = _filters(None, customer, owner)
    if currency is not None:
        conds.append(o.currency == currency)
    query = (select(r.period_start, l.change_category, o.currency, func.sum(r.opening_cmrr),
                    func.sum(r.closing_cmrr), func.sum(r.opening_arr), func.sum(r.closing_arr))
             .select_from(ARR_LINES).where(and_(True, *conds)).group_by(r.period_start, l.change_category, o.currency))
    months: dict[dt.date, dict[str, Any]] = {}
    currencies: set[str] = set()
    for period_start, category, cur, o_cmrr, c_cmrr, o_arr, c_arr in conn.execute(query):
        currencies.add(cur)
        m = months.setdefault(period_start, {"opening_cmrr": Decimal(0), "closing_cmrr": Decimal(0),
                                             "opening_arr": Decimal(0), "closing_arr": Decimal(0), "changes": {}})
        # SUM keeps the Money type: the integers were added exactly in SQL, then decoded
        m["opening_cmrr"] += o_cmrr
        m["closing_cmrr"] += c_cmrr
        m["opening_arr"] += o_arr
        m["closing_arr"] += c_arr
        m["changes"][category] = m["changes"].get(category, Decimal(0)) + (c_cmrr - o_cmrr)
    return months, currencies


def _one_currency(currencies: set[str], currency: str | None) -> str:
    if currency is not None:
        return currency
    if len(currencies) > 1:
        raise ValueError(f"the rows are in several currencies ({', '.join(sorted(currencies))}); "
                         "choose one with --currency (figures in different currencies are never added)")
    return currencies.pop() if currencies else "USD"


def arr_summary(conn: Connection, calendar: FiscalCalendar, *, by: str = "quarter",
                customer: str | None = None, owner: str | None = None,
                start: dt.date | None = None, end: dt.date | None = None,
                currency: str | None = None) -> list[dict[str, Any]]:
    """Opening and closing CMRR/ARR per fiscal month, quarter or year (named by `period_label`: FY2023
    Q1), in one currency (`currency`), and change by category.

    A group's opening is the opening of its first month, its closing that of its last month;
    `changes` sums change in CMRR over every month of the group, per change category. With
    `currency`, only the orders in that currency count; without it, the rows must be in one.
    """
    months, currencies = _arr_months(conn, customer=customer, owner=owner, currency=currency)
    if not months and (start is None or end is None):
        return []
    currency = _one_currency(currencies, currency)
    zero = {"opening_cmrr": Decimal(0), "closing_cmrr": Decimal(0), "opening_arr": Decimal(0),
            "closing_arr": Decimal(0), "changes": {}}
    out = []
    for group, group_end in calendar.groups(start or min(months), end or max(months), by):
        inside = calendar.periods_touching(group.start, group_end.end_excl)
        opening = months.get(inside[0].start, zero)
        closing = months.get(inside[-1].start, zero)
        changes: dict[str, Decimal] = {}
        for p in inside:
            for category, amount in months.get(p.start, zero)["changes"].items():
                changes[category] = changes.get(category, Decimal(0)) + amount
        out.append({"period_start": group.start, "period_end": group_end.end,
                    "period_label": calendar.label(group, by), "currency": currency,
                    "opening_cmrr": round_money(opening["opening_cmrr"], currency),
                    "closing_cmrr": round_money(closing["closing_cmrr"], currency),
                    "opening_arr": round_money(opening["opening_arr"], currency),
                    "closing_arr": round_money(closing["closing_arr"], currency),
                    "changes": {c: round_money(changes[c], currency) for c in CATEGORIES if c in changes}})
    return out


MOVEMENTS = ("new_arr", "expansion_arr", "contraction_arr", "churn_arr", "reactivation_arr",
             "renewal_boundary_arr")


def _boundary_amounts(conn: Connection, conds: list) -> tuple[dict, dict]:
    """Per (period start, customer): ARR that starts on the period's first day, and ARR (at the
    period's opening) of lines that end on its last day."""
    r, l, o = t.arr_rows.c, t.order_lines.c, t.orders.c
    fresh = {(p, c): amount for p, c, amount in conn.execute(
        select(r.period_start, o.account, func.sum(r.closing_arr)).select_from(ARR_LINES)
        .where(and_(l.start == r.period_start, *conds)).group_by(r.period_start, o.account))}
    ending = {(p, c): amount for p, c, amount in conn.execute(
        select(r.period_start, o.account, func.sum(r.opening_arr)).select_from(ARR_LINES)
        .where(and_(l.end == r.period_end, *conds)).group_by(r.period_start, o.account))}
    return fresh, ending


def _classify(before: Decimal, after: Decimal, seen: bool) -> str | None:
    """The movement that takes a customer's ARR from `before` to `after` within one fiscal month."""
    if before == after:
        return None
    if before == 0:
        return "reactivation_arr" if seen else "new_arr"
    if after == 0:
        return "churn_arr"
    return "expansion_arr" if after > before else "contraction_arr"


def arr_movements(conn: Connection, calendar: FiscalCalendar, *, by: str = "quarter",
                  customer: str | None = None, owner: str | None = None,
                  start: dt.date | None = None, end: dt.date | None = None,
                  currency: str | None = None, per_customer: bool = False) -> list[dict[str, Any]]:
    """Opening ARR, its movements (new, expansion, contraction, churn, reactivation, renewal at a
    period boundary) and closing ARR per fiscal month, quarter or year (README: ARR movements).

    Each customer's ARR is followed fiscal month by fiscal month from the same rows `report arr`
    adds up; the month's change is one movement, chosen by comparing the customer's opening and
    closing. Quarters and years add up their months. Opening + movements = closing exactly, per
    customer and in total, and the totals' opening and closing are `report arr`'s.
    """
    r, o = t.arr_rows.c, t.orders.c
    conds = _filters(None, customer, owner)
    currencies = set(conn.execute(select(o.currency).distinct().select_from(ARR_LINES).where(and_(True, *conds)))
                     .scalars())
    if currency is not None:
        currencies &= {currency}
    if not currencies and (start is None or end is None):
        return []
    currency = _one_currency(currencies, currency)
    conds.append(o.currency == currency)
    # only ARR is needed here (no categories, no CMRR): one row per month and customer
    months = {(p, c): {"opening_arr": opening, "closing_arr": closing} for p, c, opening, closing in conn.execute(
        select(r.period_start, o.account, func.sum(r.opening_arr), func.sum(r.closing_arr))
        .select_from(ARR_LINES).where(and_(True, *conds)).group_by(r.period_start, o.account))}
    if not months and (start is None or end is None):
        return []
    fresh, ending = _boundary_amounts(conn, conds)
    zero = Decimal(0)
    keys = ("opening_arr", *MOVEMENTS, "closing_arr")
    groups = calendar.groups(start or min(p for p, _ in months), end or max(p for p, _ in months), by)
    # month start → (group index, first month of its group?, last month?)
    place: dict[dt.date, tuple[int, bool, bool]] = {}
    for gi, (group, group_end) in enumerate(groups):
        inside = calendar.periods_touching(group.start, group_end.end_excl)
        for k, p in enumerate(inside):
            place[p.start] = (gi, k == 0, k == len(inside) - 1)
    sums: dict[tuple[int, str | None], dict[str, Decimal]] = {}  # (group, customer or None for totals)
    by_customer: dict[str, list[dt.date]] = {}
    for period_start, c in sorted(months):
        by_customer.setdefault(c, []).append(period_start)
    after_of: dict[dt.date, FiscalPeriod | None] = {}
    for c, starts in by_customer.items():
        seen = False
        carry_to, carry = None, zero  # ARR renewed across the boundary into the month starting carry_to
        for period_start in starts:
            m = months[(period_start, c)]
            opening, closing = m["opening_arr"], m["closing_arr"]
            carried = carry if carry_to == period_start else zero
            if period_start not in after_of:
                after_of[period_start] = calendar.next_period(calendar.period_of(period_start))
            following = after_of[period_start]
            renewed = zero
            if following is not None:
                # lost on the month's last day and taken up again on the next month's first day
                drop = opening + carried - closing
                renewed = max(zero, min(drop, ending.get((period_start, c), zero),
                                        fresh.get((following.start, c), zero)))
                carry_to, carry = following.start, renewed
            before, after = opening + carried, closing + renewed
            kind = _classify(before, after, seen)
            seen = seen or bool(opening or closing or before or after)
            where = place.get(period_start)
            if where is None:
                continue  # outside --from/--to: it only told whether the customer had ARR before
            gi, first, last = where
            for acc in ([sums.setdefault((gi, c), dict.fromkeys(keys, zero))] if per_customer else []) + \
                    [sums.setdefault((gi, None), dict.fromkeys(keys, zero))]:
                if first:
                    acc["opening_arr"] += opening
                if last:
                    acc["closing_arr"] += closing
                acc["renewal_boundary_arr"] += carried - renewed
                if kind is not None:
                    acc[kind] += after - before
    out = []
    for gi, (group, group_end) in enumerate(groups):
        head = {"period_start": group.start, "period_end": group_end.end, "period_label": calendar.label(group, by)}
        if per_customer:
            for c in sorted(by_customer):
                acc = sums.get((gi, c))
                if acc is not None and any(acc.values()):
                    out.append(head | {"customer": c, "currency": currency}
                               | {k: round_money(v, currency) for k, v in acc.items()})
        else:
            acc = sums.get((gi, None)) or dict.fromkeys(keys, zero)
            out.append(head | {"currency": currency} | {k: round_money(v, currency) for k, v in acc.items()})
    return out


def _status(item, as_of: dt.date) -> str:
    if item.status == "cancelled" and as_of > item.end:
        return "cancelled"
    if as_of < item.start:
        return "pending"
    if as_of > item.end:
        return "expired"
    return "active"


KINDS = ("subscription", "asset", "entitlement")


def subscriptions(conn: Connection, as_of: dt.date, *, customer: str | None = None,
                  kind: str | None = "subscription") -> list[dict[str, Any]]:
    """Subscriptions (or assets, entitlements; every kind with None) with quantity, MRR and ARR as
    of a day, TCV, and the item's kind and currency.

    The quantity is the one in service that day (the latest one outside the service period).
    MRR, ARR and TCV are absent (None) until the order's subscription-metrics job has run.
    """
    i, m = t.items.c, t.item_metrics.c
    query = (select(t.items, m.tcv).select_from(t.items.outerjoin(t.item_metrics, m.item == i.id))
             .order_by(i.account, i.id))
    if kind is not None:
        query = query.where(i.kind == kind)
    if customer:
        query = query.where(i.account == customer)
    cmrr, quantity = committed(conn, as_of)
    out = []
    for item in conn.execute(query):
        has_metrics = item.tcv is not None
        mrr = round_money(cmrr.get(item.id, Decimal(0)), item.currency) if has_metrics else None
        out.append({"subscription": item.id, "customer": item.account, "product": item.product,
                    "start": item.start, "end": item.end,
                    "quantity": plain_quantity(quantity[item.id] if item.start <= as_of <= item.end
                                               and item.id in quantity else item.quantity),
                    "mrr": mrr,
                    "arr": round_money(cmrr.get(item.id, Decimal(0)) * 12, item.currency) if has_metrics else None,
                    "tcv": round_money(item.tcv, item.currency) if has_metrics else None,
                    "bill_cycle_day": item.bill_cycle_day, "status": _status(item, as_of),
                    "kind": item.kind, "currency": item.currency})
    return out


def credits(conn: Connection, *, customer: str | None = None, entries: bool = False) -> list[dict[str, Any]]:
    """Prepaid credit per account and currency: granted, drawn down, balance (SPEC section 9).

    With `entries`, every grant and drawdown instead, in the order credit review applies them
    (grants, then drawdowns in activation order), each with the balance after it.
    """
    c, d, l, o = t.credits.c, t.credit_drawdowns.c, t.order_lines.c, t.orders.c
    grants = select(c.id, c.account, c.currency, c.amount).order_by(c.account, c.currency, c.id)
    draws = (select(d.account, d.currency, d.amount, d.net_amount, d.order_id, l.id.label("line"))
             .select_from(t.credit_drawdowns.join(t.order_lines, l.pk == d.line_pk)
                          .join(t.orders, o.id == d.order_id))
             .order_by(o.seq, l.seq))
    if customer:
        grants = grants.where(c.account == customer)
        draws = draws.where(d.account == customer)
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for g in conn.execute(grants):
        rows.setdefault((g.account, g.currency), []).append(
            {"entry": "grant", "credit": g.id, "order": None, "order_product": None, "amount": g.amount,
             "line_net_amount": None})
    for x in conn.execute(draws):
        rows.setdefault((x.account, x.currency), []).append(
            {"entry": "drawdown", "credit": None, "order": x.order_id, "order_product": x.line,
             "amount": -x.amount, "line_net_amount": x.net_amount})
    out = []
    for (account, currency), items in sorted(rows.items()):
        balance = Decimal(0)
        granted = sum((e["amount"] for e in items if e["entry"] == "grant"), Decimal(0))
        drawn = -sum((e["amount"] for e in items if e["entry"] == "drawdown"), Decimal(0))
        if not entries:
            out.append({"account": account, "currency": currency, "granted": round_money(granted, currency),
                        "drawn": round_money(drawn, currency), "balance": round_money(granted - drawn, currency)})
            continue
        for e in items:
            balance += e["amount"]
            out.append({"account": account, "currency": currency, "entry": e["entry"], "credit": e["credit"],
                        "order": e["order"], "order_product": e["order_product"],
                        "amount": round_money(e["amount"], currency),
                        "line_net_amount": None if e["line_net_amount"] is None
                        else round_money(e["line_net_amount"], currency),
                        "balance": round_money(balance, currency)})
    return out


def order_metrics(conn: Connection, *, order: str | None = None) -> list[dict[str, Any]]:
    """Zuora-style order metric rows."""
    m, l, o = t.order_metrics.c, t.order_lines.c, t.orders.c
    query = (select(o.id.label("order"), l.id.label("order_product"), m.metric, m.amount, m.start, m.end,
                    m.type, m.generated_reason, o.currency)
             .select_from(t.order_metrics.join(t.order_lines, l.pk == m.line_pk)
                          .join(t.orders, o.id == l.order_id))
             .order_by(o.seq, l.seq, m.metric, m.seq))
    if order:
        query = query.where(o.id == order)
    out = []
    for row in conn.execute(query):
        d = row._asdict()
        currency = d.pop("currency")
        if d["metric"] != "quantity":
            d["amount"] = round_money(d["amount"], currency)
        else:
            d["amount"] = plain_quantity(d["amount"])
        out.append(d)
    return out


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A listed row with its timestamps as these lists have always shown them: the UTC wall time
    without an offset ("2026-01-01T09:30:00"). The store gives aware UTC datetimes (UtcDateTime);
    SQLite stores used to give them naive, and those lists' text stays what it was."""
    return {k: v.replace(tzinfo=None) if isinstance(v, dt.datetime) else v for k, v in row.items()}


def jobs(conn: Connection, *, failed_only: bool = False) -> list[dict[str, Any]]:
    """Background jobs with status, attempts and last error."""
    j = t.jobs.c
    query = (select(j.id, j.order_id.label("order"), j.kind, j.status, j.attempts, j.last_error.label("error"),
                    j.updated_at)
             .select_from(t.jobs.join(t.orders, t.orders.c.id == j.order_id))
             .order_by(t.orders.c.seq, j.id))
    if failed_only:
        query = query.where(j.status == t.JobStatus.FAILED)
    return [_shown(row._asdict()) for row in conn.execute(query)]


def quarantined(conn: Connection, *, include_released: bool = False) -> list[dict[str, Any]]:
    """Salesforce records held back because they could not be mapped or activated, with the reason."""
    q = t.quarantine.c
    query = select(q.object, q.record_id, q.reason, q.system_modstamp, q.first_seen, q.last_seen,
                   q.released_at).order_by(q.first_seen, q.object, q.record_id)
    if not include_released:
        query = query.where(q.released_at.is_(None))
    return [_shown(row._asdict()) for row in conn.execute(query)]


def drafts(conn: Connection) -> list[dict[str, Any]]:
    """Draft orders of primary quotes synced from Salesforce (not activated), with their lines."""
    activated = select(t.orders.c.id)
    out = []
    for row in conn.execute(select(t.sf_records.c.id, t.sf_records.c.system_modstamp, t.sf_records.c.data)
                            .where(t.sf_records.c.object == t.DRAFT, t.sf_records.c.id.not_in(activated))
                            .order_by(t.sf_records.c.id)):
        data = json.loads(row.data)
        order = data["order"]
        out.append({"order": row.id, "account": order.get("account"), "quote": order.get("quote"),
                    "start": order.get("start"), "lines": len(data["lines"]),
                    "quantity": sum(Decimal(str(line.get("quantity") or 0)) for line in data["lines"]),
                    "saved": row.system_modstamp.replace(tzinfo=None)})  # as _shown
    return out


def status(conn: Connection, now: dt.datetime) -> dict[str, Any]:
    """Cursors and their lag, outbox depth, failed jobs and quarantined records, from the store."""
    cursors = []
    for row in conn.execute(select(t.sync_cursors).order_by(t.sync_cursors.c.object)):
        cursors.append({"object": row.object, "cursor": row.cursor,
                        "lag_seconds": round((now - row.cursor).total_seconds(), 1)})
    outbox = {state: count for state, count in conn.execute(
        select(t.outbox.c.state, func.count()).group_by(t.outbox.c.state))}
    failed_jobs = conn.execute(select(func.count()).select_from(t.jobs)
                               .where(t.jobs.c.status == t.JobStatus.FAILED)).scalar()
    held = conn.execute(select(func.count()).select_from(t.quarantine)
                        .where(t.quarantine.c.released_at.is_(None))).scalar()
    usage = conn.execute(select(t.meta.c.value).where(t.meta.c.key == "api_usage")).scalar()
    daemon = conn.execute(select(t.meta.c.value).where(t.meta.c.key == "daemon_state")).scalar()
    return {"cursors": cursors, "outbox": outbox, "failed_jobs": failed_jobs, "quarantined": held,
            "api_usage": usage,
            # the sync daemon's state as it last recorded it: ok, degraded (with the reason and the
            # next try) or paused (the API budget), and its last good cycle
            "daemon": json.loads(daemon) if daemon else None}


def outbox(conn: Connection, *, failed_only: bool = False, limit: int = 500) -> list[dict[str, Any]]:
    """Outbox entries: what is waiting to be written to Salesforce, and what failed, with Salesforce's message."""
    o = t.outbox.c
    query = (select(o.id, o.object, o.external_id, o.kind, o.order_id.label("order"), o.state, o.attempts,
                    o.last_message, o.sf_id, o.updated_at).order_by(o.id.desc()).limit(limit))
    if failed_only:
        query = query.where(o.state == t.OutboxState.FAILED)
    else:
        query = query.where(o.state != t.OutboxState.SUCCESS)
    return [_shown(row._asdict()) for row in conn.execute(query)]


# -- the columns of each report, for a CSV header when a report has no rows -------------------------

SUMMARY_KEYS = ("period_start", "period_end", "period_label", "currency", "opening_cmrr", "closing_cmrr",
                "opening_arr", "closing_arr")
#: `report arr -f csv`: every change category, in this order, whether or not it has data
ARR_SUMMARY_CSV_COLUMNS = SUMMARY_KEYS + tuple(f"changes.{c}" for c in CATEGORIES)
COLUMNS = {
    "arr-by-period": ARR_BY_PERIOD_REPORT_KEYS,
    "arr": ARR_SUMMARY_CSV_COLUMNS,
    "arr-movements": ("period_start", "period_end", "period_label", "currency", "opening_arr", *MOVEMENTS,
                      "closing_arr"),
    "arr-movements per customer": ("period_start", "period_end", "period_label", "customer", "currency", "opening_arr",
                                   *MOVEMENTS, "closing_arr"),
    "subscriptions": ("subscription", "customer", "product", "start", "end", "quantity", "mrr", "arr", "tcv",
                      "bill_cycle_day", "status", "kind", "currency"),
    "accounts": ("account", "name", "tcv", "customer_since", "arr", "currency"),
    "credits": ("account", "currency", "granted", "drawn", "balance"),
    "credit entries": ("account", "currency", "entry", "credit", "order", "order_product", "amount",
                       "line_net_amount", "balance"),
    "order-metrics": ("order", "order_product", "metric", "amount", "start", "end", "type", "generated_reason"),
    "drafts": ("order", "account", "quote", "start", "lines", "quantity", "saved"),
    "jobs": ("id", "order", "kind", "status", "attempts", "error", "updated_at"),
    "quarantine": ("object", "record_id", "reason", "system_modstamp", "first_seen", "last_seen", "released_at"),
    "outbox": ("id", "object", "external_id", "kind", "order", "state", "attempts", "last_message", "sf_id",
               "updated_at"),
}


def every_category(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`report arr` rows with `changes` holding every change category, in CATEGORIES order: a category
    without data is 0, to the places of the row's other amounts (0.00 in USD, 0 in JPY)."""
    out = []
    for row in rows:
        zero = Decimal(0).quantize(row["opening_cmrr"]) if isinstance(row.get("opening_cmrr"), Decimal) \
            else Decimal(0)
        changes = row.get("changes") or {}
        out.append(row | {"changes": {c: changes.get(c, zero) for c in CATEGORIES}})
    return out
