"""Projections: the figures of the store that reports show and the write-back sends, as of a day.

Reports (connector.reports) present them; the outbox (connector.writers) queues them for
Salesforce. Both read them here, so neither imports the other and the store imports neither.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, select

from connector.engine.money import round_money
from connector.store import schema as t

ARR_LINES = t.arr_rows.join(t.order_lines, t.order_lines.c.pk == t.arr_rows.c.line_pk) \
    .join(t.orders, t.orders.c.id == t.order_lines.c.order_id)


def arr_rows_joined(conn: Connection, *conditions, extra: tuple = ()) -> list[dict[str, Any]]:
    """ARR rows joined with their line and order, money rounded to the currency, changes derived
    (`extra`: more columns to select, for callers that group the rows)."""
    r, l, o = t.arr_rows.c, t.order_lines.c, t.orders.c
    query = (select(o.id.label("order"), l.id.label("order_product"), o.account.label("customer"),
                    l.customer_name, o.owner, l.item.label("subscription"), l.product, l.product_name,
                    l.change_category, r.period_start, r.period_end, r.opening_cmrr, r.closing_cmrr,
                    r.opening_arr, r.closing_arr, l.quantity, o.currency,
                    t.owner_names.c.name.label("owner_name"), *extra)
             .select_from(ARR_LINES.outerjoin(t.owner_names, t.owner_names.c.id == o.owner))
             .where(and_(True, *conditions))
             .order_by(o.seq, l.seq, r.period_start))
    out = []
    for row in conn.execute(query):
        d = row._asdict()
        for key in ("opening_cmrr", "closing_cmrr", "opening_arr", "closing_arr"):
            d[key] = round_money(d[key], d["currency"])
        d["change_cmrr"] = d["closing_cmrr"] - d["opening_cmrr"]
        d["change_arr"] = d["closing_arr"] - d["opening_arr"]
        out.append(d)
    return out


def committed(conn: Connection, as_of: dt.date) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """Committed MRR and quantity of every item on a day: the sums of the pieces active that day."""
    s, l = t.line_segments.c, t.order_lines.c
    query = (select(l.item, s.mrr, s.quantity).select_from(t.line_segments.join(t.order_lines, l.pk == s.line_pk))
             .where(s.start <= as_of, s.end_excl > as_of))
    mrr_by: dict[str, Decimal] = {}
    quantity_by: dict[str, Decimal] = {}
    for item, mrr, quantity in conn.execute(query):
        mrr_by[item] = mrr_by.get(item, Decimal(0)) + mrr
        quantity_by[item] = quantity_by.get(item, Decimal(0)) + quantity
    return mrr_by, quantity_by


def cmrr_by_item(conn: Connection, as_of: dt.date) -> dict[str, Decimal]:
    return committed(conn, as_of)[0]


def own_currencies(conn: Connection) -> dict[str, str]:
    """Each account's own currency: that of its first activated order (the one its Account fields hold)."""
    out: dict[str, str] = {}
    for account, currency in conn.execute(select(t.orders.c.account, t.orders.c.currency).order_by(t.orders.c.seq)):
        out.setdefault(account, currency)
    return out


def accounts(conn: Connection, as_of: dt.date) -> list[dict[str, Any]]:
    """Accounts with TCV, customer since and ARR as of a day: one row per account and currency.

    Figures in different currencies are never added (SPEC section 6). The account's own currency
    (that of its first order) comes first; an account without orders has one row, currency None.
    """
    cmrr = cmrr_by_item(conn, as_of)
    arr: dict[tuple[str, str], Decimal] = {}
    for item_id, account, cur in conn.execute(select(t.items.c.id, t.items.c.account, t.items.c.currency)):
        arr[(account, cur)] = arr.get((account, cur), Decimal(0)) + cmrr.get(item_id, Decimal(0)) * 12
    tcv = {(a, c): v for a, c, v in conn.execute(select(t.account_metrics.c.account, t.account_metrics.c.currency,
                                                        t.account_metrics.c.tcv))}
    own = own_currencies(conn)
    currencies: dict[str, set[str]] = {}
    for account, cur in (*arr, *tcv):
        currencies.setdefault(account, set()).add(cur)
    out = []
    for a in conn.execute(select(t.accounts).order_by(t.accounts.c.id)):
        mine = currencies.get(a.id)
        if not mine:
            out.append({"account": a.id, "name": a.name, "tcv": round_money(Decimal(0), "USD"),
                        "customer_since": a.customer_since, "arr": round_money(Decimal(0), "USD"), "currency": None})
            continue
        first = own.get(a.id)
        for cur in sorted(mine, key=lambda c: (c != first, c)):
            out.append({"account": a.id, "name": a.name, "tcv": round_money(tcv.get((a.id, cur), Decimal(0)), cur),
                        "customer_since": a.customer_since,
                        "arr": round_money(arr.get((a.id, cur), Decimal(0)), cur), "currency": cur})
    return out


def arr_rows_of_line(conn: Connection, line_pk: int) -> list[dict[str, Any]]:
    """One line's ARR rows with every field the big objects take (SPEC section 10)."""
    return arr_rows_of_lines(conn, [line_pk]).get(line_pk, [])


def arr_rows_of_lines(conn: Connection, line_pks: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The ARR rows of several lines (one query per 500), by line, each as `arr_rows_of_line` gives it."""
    out: dict[int, list[dict[str, Any]]] = {}
    for k in range(0, len(line_pks), 500):
        rows = arr_rows_joined(conn, t.arr_rows.c.line_pk.in_(line_pks[k:k + 500]),
                               extra=(t.arr_rows.c.line_pk.label("line_pk"),))
        for d in rows:
            del d["owner_name"]  # the big objects take the owner's User Id (`owner`), not its name
            d["subscription_number"] = d["subscription"]
            out.setdefault(d.pop("line_pk"), []).append(d)
    return out


def item_values(conn: Connection, item_ids: list[str], as_of: dt.date) -> list[dict[str, Any]]:
    """Subscriptions, assets and entitlements as the write-back sends them: MRR/ARR as of a day, TCV."""
    cmrr = cmrr_by_item(conn, as_of)
    i, m = t.items.c, t.item_metrics.c
    out = []
    for chunk in (item_ids[k:k + 500] for k in range(0, len(item_ids), 500)):
        query = (select(t.items, m.tcv, t.products.c.name.label("product_name"))
                 .select_from(t.items.outerjoin(t.item_metrics, m.item == i.id)
                              .join(t.products, t.products.c.id == i.product))
                 .where(i.id.in_(chunk)))
        for item in conn.execute(query):
            values = {"id": item.id, "kind": item.kind, "account": item.account, "product": item.product,
                      "product_name": item.product_name, "start": item.start, "end": item.end,
                      "term_start": item.term_start, "quantity": item.quantity, "unit_price": item.unit_price,
                      "bill_cycle_day": item.bill_cycle_day, "status": item.status}
            if item.tcv is not None:  # metrics exist once the subscription-metrics job has run
                mrr = cmrr.get(item.id, Decimal(0))
                values |= {"mrr": round_money(mrr, item.currency), "arr": round_money(mrr * 12, item.currency),
                           "tcv": round_money(item.tcv, item.currency)}
            out.append(values)
    return out


def account_values(conn: Connection, account_ids: list[str], as_of: dt.date) -> list[dict[str, Any]]:
    """Account metric fields as the write-back sends them."""
    # An Account holds one set of figures: those in the account's own currency (its first order's),
    # the first of its rows. Figures in its other currencies are not written (never converted or
    # added); `revsync report accounts` shows them, and each subscription record carries its own.
    wanted = set(account_ids)
    out, done = [], set()
    for a in accounts(conn, as_of):
        if a["account"] in wanted and a["account"] not in done:
            done.add(a["account"])
            out.append({"id": a["account"], "tcv": a["tcv"], "arr": a["arr"], "customer_since": a["customer_since"],
                        "currency": a["currency"]})
    return out
