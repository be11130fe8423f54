"""The one order model: what an order is before the engine activates it, whatever its origin.

An order reaches the engine from an import file (`revsync import`, connector.importer) or from
Salesforce (connector.ingest). Both validate it here, as an `OrderDoc` with its `LineDoc` lines,
and build the engine's `OrderInput` with `order_input`: a value has the same default and gets the
same check in both origins. A value with no default (an order's `currency`, `booked_on`, a line's
`action`) must be given; nothing is assumed in its place.

Import files name these fields themselves (the import format in README.md); a Salesforce order's
mapped values are handed over by the names of connector.ingest's mappings (mappings/Order.toml and
OrderItem.toml), which are the same names.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Callable

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from connector.engine import checks, limits
from connector.engine.model import Action, BillingFrequency, LineInput, OrderInput, PricePeriod
from connector.engine.money import to_decimal
from connector.errors import Problem


#: Decimals of the small integers the files hold (quantities): one object each, not one per line
#: (a Decimal is immutable, and Decimal(n) of the same n is the same to its exponent)
_SMALL_DECIMALS = {n: Decimal(n) for n in range(-1000, 10_001)}


def _decimal(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if type(value) is int and value in _SMALL_DECIMALS:
        return _SMALL_DECIMALS[value]
    try:
        return to_decimal(value)
    except (ArithmeticError, TypeError, ValueError):
        raise ValueError(f"not a decimal number: {value!r}") from None


def limited(check: Callable[..., str | None]) -> Callable[[Any], Any]:
    """A pydantic after-validator from a `connector.engine.limits` check (None passes)."""
    def validate(value: Any) -> Any:
        if value is not None:
            problem = check(value)
            if problem:
                raise ValueError(problem)
        return value
    return validate


def _limited_amount(check: Callable[[Decimal], str | None], fits: Callable[[Decimal], bool]) -> Callable[[Any], Any]:
    """`limited(check)` for a Decimal, with the values `fits` knows to pass let through at once."""
    validate = limited(check)

    def amount(value: Any) -> Any:
        if type(value) is Decimal and value.is_finite() and fits(value):
            return value
        return validate(value)
    return amount


Amount = Annotated[Decimal, BeforeValidator(_decimal)]
Quantity = Annotated[Amount, AfterValidator(_limited_amount(limits.check_quantity, limits.fits_quantity))]
Price = Annotated[Amount, AfterValidator(_limited_amount(limits.check_price, limits.fits_price))]


#: the days the files name, one object per day (a large file names few distinct days); bounded
_DAYS: dict[dt.date, dt.date] = {}


def _shared_day(value: dt.date) -> dt.date:
    day = _DAYS.get(value)
    if day is not None and type(value) is dt.date:
        return day
    if type(value) is dt.date and len(_DAYS) < 100_000:
        _DAYS[value] = value
    return value


_check_date, _check_id, _check_text = limited(limits.check_date), limited(limits.check_id), limited(limits.check_text)
_MAX_ID, _MAX_TEXT = limits.MAX_ID_LENGTH, limits.MAX_TEXT_LENGTH
assert _MAX_ID <= _MAX_TEXT


# Each of the three below is the check named in it, told in one call for the usual value (an id
# of 64 characters at most, a date already seen), the check's own call (and message) otherwise:
# a file of 100,000 lines has 380,000 ids, each checked in three calls (issue 11: a tenth of
# validating a file's orders).

def _day(value: dt.date) -> dt.date:
    """`limits.check_date`, then `_shared_day`: only a date the check passed is ever shared."""
    if type(value) is dt.date:
        day = _DAYS.get(value)
        if day is not None:
            return day
    return _shared_day(_check_date(value))


def _id(value: str) -> str:
    """`limits.check_id`: at most 64 characters (fewer than a text's limit), no NUL."""
    if len(value) <= _MAX_ID and "\x00" not in value:
        return value
    return _check_id(value)


def _text(value: str) -> str:
    """`limits.check_text`."""
    if len(value) <= _MAX_TEXT and "\x00" not in value:
        return value
    return _check_text(value)


Day = Annotated[dt.date, AfterValidator(_day)]
Id = Annotated[str, Field(min_length=1), AfterValidator(_id)]
Text = Annotated[str, AfterValidator(_text)]
Name = Annotated[str, Field(min_length=1), AfterValidator(_text)]
Term = Annotated[int, AfterValidator(limited(limits.check_term_months))]
#: an ISO 4217 code in capitals: the shape first (its message names the pattern), then the code itself
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$"), AfterValidator(checks.check_currency)]


class Doc(BaseModel):
    """A record as given: no field but its own (an unknown one is a mistake), and it does not change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LineDoc(Doc):
    id: Id
    action: Action
    product: Id
    subscription: Id | None = Field(default=None, validate_default=True)
    quantity: Quantity | None = None
    unit_price: Price | None = None
    price_period: PricePeriod | None = None
    start: Day | None = None
    end: Day | None = None
    term_months: Term | None = None
    billing_frequency: BillingFrequency = BillingFrequency.MONTH
    credit_eligible: bool = False
    contract_effective: Day | None = None
    service_activation: Day | None = None
    customer_acceptance: Day | None = None
    #: a `new` line with no `end` nor `term_months` that runs until cancelled (README); a line that
    #: simply lacks an end is an error, never evergreen by default
    evergreen: bool = False

    # field validators, not a model validator: they name the field, and they run even when other
    # fields of the same line are wrong, so every problem of the file is listed at once
    @field_validator("subscription")
    @classmethod
    def _needs_subscription(cls, value: str | None, info: ValidationInfo) -> str | None:
        action = info.data.get("action")
        if action is not None and action is not Action.NEW and not value:
            raise ValueError(f"`subscription` is required for a {action.value} line "
                             "(the subscription it changes)")
        return value

    @field_validator("evergreen")
    @classmethod
    def _evergreen_has_no_end(cls, value: bool, info: ValidationInfo) -> bool:
        if not value:
            return value
        action = info.data.get("action")
        if action is not None and action is not Action.NEW:
            raise ValueError(f"only a `new` line can be evergreen, not a {action.value} line (changes to an "
                             "evergreen subscription follow it)")
        given = [k for k in ("end", "term_months") if info.data.get(k) is not None]
        if given:
            raise ValueError(f"an evergreen line runs until cancelled: remove {' and '.join(f'`{k}`' for k in given)},"
                             " or `evergreen`")
        return value

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, value: dt.date | None, info: ValidationInfo) -> dt.date | None:
        start = info.data.get("start")
        if start and value and value < start:
            raise ValueError(f"end {value} is before start {start}")
        return value


class OrderDoc(Doc):
    id: Id
    account: Id
    owner: Text = ""
    booked_on: Day
    currency: Currency
    lines: list[LineDoc] = Field(min_length=1)
    bill_cycle_day: int | None = Field(default=None, ge=1, le=31)
    bill_to: Id | None = None
    sold_to: Id | None = None


LABELS = {"orders": "order", "lines": "line", "accounts": "account", "products": "product", "credits": "credit"}


def where(data: Any, loc: tuple) -> str:
    """Turn a pydantic error location into `order O-1, line OP-001, field quantity`."""
    parts: list[str] = []
    node = data
    i = 0
    while i < len(loc):
        key = loc[i]
        if key in LABELS and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            index = loc[i + 1]
            try:
                node = node[key][index]
                label = node.get("id") if isinstance(node, dict) else None
            except (KeyError, IndexError, TypeError):
                label = None
            name = LABELS[key]
            parts.append(f"{name} {label}" if isinstance(label, str) and label else f"{name} #{index + 1}")
            i += 2
            continue
        if isinstance(key, str) and not key.startswith(("function-", "_")):
            parts.append(f"field {key}")
        i += 1
    return ", ".join(parts) or "document"


def problems(data: Any, exc: ValidationError, prefix: tuple = ()) -> list[Problem]:
    """A validation error as Problems, each placed in `data` (the values validated) by `where`."""
    out = []
    for err in exc.errors():
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field (see the import format in README.md)"
        elif err["type"] == "finite_number":
            message = f"must be a finite number, not {err.get('input')}"
        out.append(Problem(where(data, prefix + tuple(err["loc"])), message))
    return out


def line_input(l: LineDoc) -> LineInput:
    """The engine's line from a validated one."""
    return LineInput(
        id=l.id, action=l.action, product=l.product, item=l.subscription, quantity=l.quantity,
        unit_price=l.unit_price, price_period=l.price_period, start=l.start, end=l.end,
        term_months=l.term_months, billing_frequency=l.billing_frequency,
        credit_eligible=l.credit_eligible, contract_effective=l.contract_effective,
        service_activation=l.service_activation, customer_acceptance=l.customer_acceptance,
        evergreen=l.evergreen)


def order_input(doc: OrderDoc) -> OrderInput:
    """The engine's order from a validated one: the only way either origin builds an `OrderInput`."""
    return OrderInput(
        id=doc.id, account=doc.account, owner=doc.owner, booked_on=doc.booked_on, currency=doc.currency,
        bill_cycle_day=doc.bill_cycle_day, bill_to=doc.bill_to, sold_to=doc.sold_to,
        lines=tuple(line_input(l) for l in doc.lines))
