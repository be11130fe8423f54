"""The checks every engine input passes, whatever its origin: an import file or a Salesforce record.

An account, a product or an order reaches the engine either from `revsync import` (connector.importer)
or from Salesforce (connector.ingest). Both must refuse the same values for the same reasons (issue 8:
a Salesforce Account with `BillCycleDay__c = 45` was stamped on subscriptions that an import file
would have refused), so the rules live here, once, on the engine's own records.

Two layers:
- value checks (`check_bill_cycle_day`, `check_currency`, ...) take one value and return it, or raise
  `ValueError` with a message that says what is wrong; they fit pydantic's `AfterValidator` and
  `field_validator`, so an import file names the field in its own way;
- record checks (`account_problems`, `product_problems`, `order_problems`) list every problem of an
  engine record at once, each with its place (`line OP-1, field quantity`), for records that arrive
  already built (Salesforce ingest quarantines the record with these as the reason).

The ranges are those the store can hold on both dialects (connector.store.types: money is a 64-bit
integer count of 10**-4 units; quantities and prices are kept as text of at most 64 characters) with
room for the amounts the engine derives from a line (a hundred years of its monthly amount).
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from connector.engine.model import Account, Action, LineInput, OrderInput, Product
from connector.engine import limits
from connector.errors import Problem

#: Active ISO 4217 currency codes (ISO 4217 list one, as published by SIX Financial Information,
#: 2024 edition, with XCG from 2025), without the codes for precious metals, bond-market units,
#: testing (XTS) and "no currency" (XXX): an order is sold in money.
ISO_CURRENCIES = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN
BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV
MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG
SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN
UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XDR XOF XPF XSU XUA YER ZAR ZMW ZWG ZWL
""".split())

# One set of ranges for every origin: the import file's (connector.engine.limits) are the ones
# Salesforce records are held to as well.
#: The largest amount a money column holds on SQLite and PostgreSQL alike.
MAX_MONEY = limits.MAX_STORED_AMOUNT
MAX_TERM_MONTHS = limits.MAX_TERM_MONTHS
#: Largest quantity of one line, and largest unit price (per its price period).
MAX_QUANTITY = limits.MAX_QUANTITY
MAX_UNIT_PRICE = limits.MAX_PRICE
#: Largest quantity × unit price of one line, for the longest price period (a year): its monthly
#: amount stays within limits.MAX_LINE_MRR, so a hundred years of it still fit a money column.
MAX_LINE_AMOUNT = limits.MAX_LINE_MRR * 12
#: Decimal places kept for a quantity or a unit price.
MAX_PLACES = limits.MAX_PLACES
#: The days the engine's calendars handle; a date outside is a typo (a year 20230, 0023).
FIRST_DAY = limits.MIN_DATE
LAST_DAY = limits.MAX_DATE


# -- value checks: return the value or raise ValueError -----------------------------------------


def check_bill_cycle_day(value: int | None) -> int | None:
    """A bill cycle day is a day of the month, 1 to 31 (SPEC section 3); None means "not given"."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 31:
        raise ValueError(f"bill cycle day {value!r} is not a day of the month (1 to 31)")
    return value


def check_currency(value: str) -> str:
    """A currency is an active ISO 4217 code in capitals (USD, EUR, JPY, ...)."""
    if not isinstance(value, str) or value not in ISO_CURRENCIES:
        hint = " (codes are in capitals)" if isinstance(value, str) and value.upper() in ISO_CURRENCIES else ""
        raise ValueError(f"currency {value!r} is not an ISO 4217 currency code{hint}")
    return value


def show(value: Decimal) -> str:
    """A number as a person writes it (1000000000000, not 1E+12), unless that would be absurdly long."""
    text = format(value, "f") if value.is_finite() else str(value)
    return text if len(text) <= 40 else str(value)


def _number(value: Decimal, what: str, maximum: Decimal) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"{what} {value!r} is not a finite number")
    if value < 0:
        raise ValueError(f"{what} {show(value)} must be at least 0")
    if value > maximum:
        raise ValueError(f"{what} {show(value)} is more than the largest the store holds ({maximum:,})")
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_PLACES:
        raise ValueError(f"{what} {show(value)} has more than {MAX_PLACES} decimal places")
    return value


def check_quantity(value: Decimal | None) -> Decimal | None:
    """A line's quantity: 0 to MAX_QUANTITY, at most MAX_PLACES decimal places; None means "not given"."""
    return None if value is None else _number(value, "quantity", MAX_QUANTITY)


def check_unit_price(value: Decimal | None) -> Decimal | None:
    """A unit price: 0 to MAX_UNIT_PRICE, at most MAX_PLACES decimal places; None means "not given"."""
    return None if value is None else _number(value, "unit price", MAX_UNIT_PRICE)


def check_amount(value: Decimal | None, what: str = "amount") -> Decimal | None:
    """An amount of money (a list price, a credit): 0 to MAX_MONEY."""
    return None if value is None else _number(value, what, MAX_MONEY)


def check_day(value: dt.date | None, what: str = "date") -> dt.date | None:
    """A date the engine's calendars handle (FIRST_DAY to LAST_DAY)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise ValueError(f"{what} {value!r} is not a date")
    if not FIRST_DAY <= value <= LAST_DAY:
        raise ValueError(f"{what} {value} is outside {FIRST_DAY.year}-{LAST_DAY.year}")
    return value


def check_period(start: dt.date | None, end: dt.date | None) -> None:
    """An inclusive end date is not before its start."""
    if start is not None and end is not None and end < start:
        raise ValueError(f"end {end} is before start {start}")


def check_line_amount(quantity: Decimal | None, unit_price: Decimal | None) -> None:
    """Quantity × unit price of one line stays under MAX_LINE_AMOUNT (its derived amounts then fit)."""
    if quantity is not None and unit_price is not None and quantity * unit_price > MAX_LINE_AMOUNT:
        amount = quantity * unit_price
        shown = f"{amount:,f}" if len(format(amount, "f")) <= 40 else str(amount)
        raise ValueError(f"quantity {show(quantity)} × unit price {show(unit_price)} = {shown} is more "
                         f"than the largest line amount the store holds ({MAX_LINE_AMOUNT:,})")


# -- record checks: every problem of one engine record ------------------------------------------


class _Collect:
    def __init__(self, prefix: str = ""):
        self.prefix = prefix
        self.problems: list[Problem] = []

    def run(self, where: str, check: Any, *args: Any) -> None:
        try:
            check(*args)
        except ValueError as exc:
            self.problems.append(Problem(", ".join(p for p in (self.prefix, where) if p), str(exc)))


def account_problems(account: Account) -> list[Problem]:
    """What is wrong with an account (empty when nothing is)."""
    out = _Collect()
    out.run("field bill_cycle_day", check_bill_cycle_day, account.bill_cycle_day)
    if not str(account.name or "").strip():
        out.problems.append(Problem("field name", "an account needs a name"))
    return out.problems


def product_problems(product: Product) -> list[Problem]:
    """What is wrong with a product (empty when nothing is)."""
    out = _Collect()
    out.run("field list_price", check_amount, product.list_price, "list price")
    return out.problems


def line_problems(line: LineInput) -> list[Problem]:
    """What is wrong with one order line, each place starting `line <id>`."""
    out = _Collect(f"line {line.id}")
    out.run("field quantity", check_quantity, line.quantity)
    out.run("field unit_price", check_unit_price, line.unit_price)
    if not out.problems:  # each within its range: their product may still be too large
        out.run("fields quantity, unit_price", check_line_amount, line.quantity, line.unit_price)
    for name in ("start", "end", "contract_effective", "service_activation", "customer_acceptance"):
        out.run(f"field {name}", check_day, getattr(line, name), name.replace("_", " "))
    out.run("field end", check_period, line.start, line.end)
    if line.term_months is not None and not 0 < line.term_months <= MAX_TERM_MONTHS:
        out.problems.append(Problem(f"line {line.id}, field term_months",
                                    f"term of {line.term_months} months is not between 1 and {MAX_TERM_MONTHS}"))
    if line.action is not Action.NEW and not line.item:
        out.problems.append(Problem(f"line {line.id}, field subscription",
                                    f"{'an' if line.action.value[0] in 'aeiou' else 'a'} {line.action.value} "
                                    "line needs the subscription it changes"))
    return out.problems


def order_problems(order: OrderInput) -> list[Problem]:
    """What is wrong with an order and its lines, every problem at once (empty when nothing is)."""
    out = _Collect()
    out.run("field currency", check_currency, order.currency)
    out.run("field bill_cycle_day", check_bill_cycle_day, order.bill_cycle_day)
    out.run("field booked_on", check_day, order.booked_on, "booking date")
    for line in order.lines:
        out.problems += line_problems(line)
    return out.problems


def describe(problems: list[Problem]) -> str:
    """Problems as one reason line (for a quarantine entry)."""
    return "; ".join(str(p) for p in problems)
