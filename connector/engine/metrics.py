"""Zuora-style order metrics per line (SPEC section 6): mrr, tcv, tcb, elp and quantity."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Iterable

from connector.engine.billing import billing_total
from connector.engine.dates import ONE_DAY, months_between
from connector.engine.model import Action, ActivatedLine, ChangeCategory, OrderMetric
from connector.engine.money import Exact, exact, round_money


def generated_reason(line: ActivatedLine) -> str:
    """Why the metrics exist, in Zuora's words."""
    if line.action is Action.RENEW or (line.action is Action.TERMS
                                       and line.change_category is ChangeCategory.RENEWAL):
        return "Extension"
    if line.action in (Action.CANCEL, Action.TERMS):
        return "Contraction"
    if line.action is Action.UPDATE:
        delta = line.quantity_delta
        if delta > 0:
            return "IncreaseQuantity"
        if delta < 0:
            return "DecreaseQuantity"
        return "ChangePrice"
    return "IncreaseQuantity"


def _months(start: dt.date, end_excl: dt.date) -> Exact:
    return exact(months_between(start, end_excl))


def order_metrics(line: ActivatedLine, currency: str, which: Iterable[str],
                  tcv: Decimal | None = None) -> list[OrderMetric]:
    """Time-sliced metric rows of one line: one per piece of its contribution and metric.

    `tcv`: the line's TCV rounded to the currency, when the caller has it (the line as stored
    holds it); else worked out here, as it is for a line of several pieces."""
    wanted = set(which)
    reason = generated_reason(line)
    out: list[OrderMetric] = []

    def add(metric: str, amount: Decimal, start: dt.date, end: dt.date) -> None:
        if metric in wanted:
            out.append(OrderMetric(line.id, metric, amount, start, end, reason))

    if not line.recurring:
        amount = round_money(line.one_time_amount, currency)
        add("tcv", amount, line.start, line.end)
        add("tcb", amount, line.start, line.end)
        add("elp", round_money(exact(line.list_price_monthly) * line.quantity, currency), line.start, line.end)
        add("quantity", line.quantity, line.start, line.end)
        return out
    single = len(line.segments) == 1
    for seg in line.segments:
        end = seg.end_excl - ONE_DAY
        months = _months(seg.start, seg.end_excl)
        add("mrr", round_money(seg.mrr, currency), seg.start, end)
        # one piece: its TCV is the line's (given, or computed exactly and cached at activation)
        if single:
            add("tcv", round_money(line.tcv, currency) if tcv is None else tcv, seg.start, end)
        else:
            add("tcv", round_money(exact(seg.mrr) * months, currency), seg.start, end)
        add("elp", round_money(exact(line.list_price_monthly) * seg.quantity * months, currency), seg.start, end)
        add("quantity", seg.quantity, seg.start, end)
    if "tcb" in wanted and line.segments:
        tcb = billing_total(line, currency)
        out.append(OrderMetric(line.id, "tcb", tcb, line.segments[0].start,
                               max(s.end_excl for s in line.segments) - ONE_DAY, reason))
    return out
