"""Figures made from yearly and quarterly prices round half-up like the exact figure would."""
import datetime as dt
from decimal import Decimal

import pytest

from connector.engine.activation import activate, line_tcv
from connector.engine.arr_by_period import arr_rows
from connector.engine.billing import billing_total
from connector.engine.fiscal import StandardFiscalCalendar
from connector.engine.ledger import Ledger
from connector.engine.model import (Account, Action, BillingFrequency, LineInput, OrderInput, PricePeriod,
                                    Product, Provisioning)
from connector.engine.money import round_money
from connector.engine.settings import EngineSettings


@pytest.mark.parametrize("price,period,quantity,frequency,arr,tcv,tcb", [
    ("0.145", PricePeriod.YEAR, "1", BillingFrequency.YEAR, "0.15", "0.15", "0.15"),
    ("12.31", PricePeriod.YEAR, "0.5", BillingFrequency.YEAR, "6.16", "6.16", "6.16"),
    # four quarterly invoices of 0.035, each rounded half-up to 0.04
    ("0.035", PricePeriod.QUARTER, "1", BillingFrequency.QUARTER, "0.14", "0.14", "0.16"),
], ids=["yearly-half-cent", "half-seat-yearly", "quarterly-half-cent"])
def test_a_half_cent_rounds_up(price, period, quantity, frequency, arr, tcv, tcb):
    calendar = StandardFiscalCalendar(1)
    product = Product("P", "P", Provisioning.SUBSCRIPTION, Decimal(price), period)
    order = OrderInput("O", "A", "x", dt.date(2023, 1, 1), "USD", (LineInput(
        "L", Action.NEW, "P", quantity=Decimal(quantity), start=dt.date(2023, 1, 1), term_months=12,
        billing_frequency=frequency),))
    line = activate(order, Ledger(), {"P": product}, {"A": Account("A", "A", 1)}, calendar,
                    EngineSettings()).lines[0]
    middle = list(arr_rows(line, "USD", calendar))[5]
    assert str(middle.opening_arr) == arr == str(middle.closing_arr)
    assert str(round_money(line_tcv(line), "USD")) == tcv
    assert str(billing_total(line, "USD")) == tcb  # each invoice is rounded on its own
