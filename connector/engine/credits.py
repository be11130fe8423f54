"""Credit review (SPEC section 9): credit-eligible lines draw the account's prepaid balance down."""
from __future__ import annotations

from decimal import Decimal
from typing import Iterable, Mapping

from connector.engine.activation import line_tcv
from connector.engine.model import ActivatedLine, Drawdown
from connector.engine.money import round_money


def review_credits(order: str, account: str, currency: str, lines: Iterable[ActivatedLine],
                   balances: Mapping[tuple[str, str], Decimal]) -> list[Drawdown]:
    """Draw the (account, currency) balance down, line by line in order, never below zero.

    Each eligible line with a positive contract value draws min(balance, its TCV); its net
    amount is what is left to pay. The caller records the drawdowns per order, and does not
    call this again for an order that has them, so nothing is drawn twice.
    """
    balance = balances.get((account, currency), Decimal(0))
    out = []
    for line in lines:
        if not line.credit_eligible:
            continue
        value = round_money(line_tcv(line), currency)
        if value <= 0 or balance <= 0:
            continue
        drawn = min(balance, value)
        balance -= drawn
        out.append(Drawdown(order, line.id, account, currency, drawn, value - drawn))
    return out
