"""Zuora-style order metrics per line (SPEC section 6): mrr, tcv, tcb, elp and quantity."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Container, Iterable

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
    reason = generated_reason(line)
    return [OrderMetric(line.id, metric, amount, start, end, reason)
            for metric, amount, start, end in metric_amounts(line, currency, set(which), tcv)]


def metric_amounts(line: ActivatedLine, currency: str, wanted: Container[str],
                   tcv: Decimal | None = None) -> list[tuple[str, Decimal, dt.date, dt.date]]:
    """(metric, amount, start, end) of each of `order_metrics`' rows, in its order, without the
    rows themselves: what a caller that stores them in a form of its own needs (issue 11: the
    second core makes 500,000 of them per 100,000 lines)."""
    out: list[tuple[str, Decimal, dt.date, dt.date]] = []
    append = out.append
    if not line.recurring:
        amount = round_money(line.one_time_amount, currency)
        start, end = line.start, line.end
        if "tcv" in wanted:
            append(("tcv", amount, start, end))
        if "tcb" in wanted:
            append(("tcb", amount, start, end))
        if "elp" in wanted:
            append(("elp", round_money(exact(line.list_price_monthly) * line.quantity, currency), start, end))
        if "quantity" in wanted:
            append(("quantity", line.quantity, start, end))
        return out
    segments = line.segments
    single = len(segments) == 1
    for seg in segments:
        start, end = seg.start, seg.end_excl - ONE_DAY
        months = _months(seg.start, seg.end_excl)
        if "mrr" in wanted:
            append(("mrr", round_money(seg.mrr, currency), start, end))
        if "tcv" in wanted:
            # one piece: its TCV is the line's (given, or computed exactly and cached at activation)
            if single:
                append(("tcv", round_money(line.tcv, currency) if tcv is None else tcv, start, end))
            else:
                append(("tcv", round_money(exact(seg.mrr) * months, currency), start, end))
        if "elp" in wanted:
            append(("elp", round_money(exact(line.list_price_monthly) * seg.quantity * months, currency), start, end))
        if "quantity" in wanted:
            append(("quantity", seg.quantity, start, end))
    if "tcb" in wanted and segments:
        append(("tcb", billing_total(line, currency), segments[0].start,
                max(s.end_excl for s in segments) - ONE_DAY))
    return out
