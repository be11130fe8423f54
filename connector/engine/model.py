"""Engine records: what goes into the engine and what comes out of it. Plain data, no behaviour."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import NamedTuple

from connector.engine.dates import months_between
from connector.engine.money import Amount, Exact, exact_ratio, ratio_of


class Provisioning(StrEnum):
    """What an order line creates: SPEC section 3."""

    SUBSCRIPTION = "subscription"
    ASSET = "asset"
    ENTITLEMENT = "entitlement"


class PricePeriod(StrEnum):
    """The period a unit price is quoted for."""

    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"
    ONE_TIME = "one_time"


class BillingFrequency(StrEnum):
    """How often a line is billed."""

    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class Action(StrEnum):
    """Order line actions (SPEC section 4), the Zuora-style quote actions."""

    NEW = "new"
    UPDATE = "update"
    RENEW = "renew"
    CANCEL = "cancel"
    TERMS = "terms"


class ChangeCategory(StrEnum):
    """Change categories stamped on ARR rows."""

    NEW_BUSINESS = "New Business"
    CROSS_SELL = "Cross Sell"
    UPSELL = "Upsell/Expansion"
    DOWNSELL = "Downsell/Contraction"
    RENEWAL = "Renewal"
    CHURN = "Cancel/Churn"


class TriggerDate(StrEnum):
    """The three trigger dates a line may carry; a setting picks which one starts service."""

    CONTRACT_EFFECTIVE = "contract_effective"
    SERVICE_ACTIVATION = "service_activation"
    CUSTOMER_ACCEPTANCE = "customer_acceptance"


MONTHS_PER_PERIOD = {PricePeriod.MONTH: 1, PricePeriod.QUARTER: 3, PricePeriod.YEAR: 12}


@dataclass(frozen=True)
class Account:
    """A customer account."""

    id: str
    name: str
    bill_cycle_day: int | None = None


@dataclass(frozen=True)
class Product:
    """A catalogue product: how it is provisioned and its list price."""

    id: str
    name: str
    provisioning: Provisioning
    list_price: Decimal
    price_period: PricePeriod


@dataclass(frozen=True)
class Credit:
    """Prepaid credit (or financial commitment) an account holds in one currency."""

    id: str
    account: str
    currency: str
    amount: Decimal


@dataclass(frozen=True)
class LineInput:
    """An order line as submitted (import file, Salesforce order item), before activation."""

    id: str
    action: Action
    product: str
    item: str | None = None
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    price_period: PricePeriod | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    term_months: int | None = None
    billing_frequency: BillingFrequency = BillingFrequency.MONTH
    credit_eligible: bool = False
    contract_effective: dt.date | None = None
    service_activation: dt.date | None = None
    customer_acceptance: dt.date | None = None
    #: a `new` line with no end that runs until cancelled (SPEC section 7); never implied by a
    #: missing end, which is an error
    evergreen: bool = False

    # Written out rather than made by dataclass (it keeps an __init__ the class defines): a frozen
    # dataclass's own sets each field through `object.__setattr__`, a call per field, and this
    # stores each in the instance's dict (about a third of the cost; issue 11: a validating
    # process makes 50,000 of these, and as many `ActivatedLine`s and `Segment`s). The same
    # parameters, in the same order, with the same defaults (tests/engine/test_records.py).
    def __init__(self, id: str, action: Action, product: str, item: str | None = None,
                 quantity: Decimal | None = None, unit_price: Decimal | None = None,
                 price_period: PricePeriod | None = None, start: dt.date | None = None, end: dt.date | None = None,
                 term_months: int | None = None, billing_frequency: BillingFrequency = BillingFrequency.MONTH,
                 credit_eligible: bool = False, contract_effective: dt.date | None = None,
                 service_activation: dt.date | None = None, customer_acceptance: dt.date | None = None,
                 evergreen: bool = False) -> None:
        d = self.__dict__
        d["id"] = id
        d["action"] = action
        d["product"] = product
        d["item"] = item
        d["quantity"] = quantity
        d["unit_price"] = unit_price
        d["price_period"] = price_period
        d["start"] = start
        d["end"] = end
        d["term_months"] = term_months
        d["billing_frequency"] = billing_frequency
        d["credit_eligible"] = credit_eligible
        d["contract_effective"] = contract_effective
        d["service_activation"] = service_activation
        d["customer_acceptance"] = customer_acceptance
        d["evergreen"] = evergreen


@dataclass(frozen=True)
class OrderInput:
    """An order as submitted, before activation."""

    id: str
    account: str
    owner: str
    booked_on: dt.date
    currency: str
    lines: tuple[LineInput, ...]
    bill_cycle_day: int | None = None
    bill_to: str | None = None
    sold_to: str | None = None


@dataclass(frozen=True)
class Segment:
    """A piece of a line's contribution to its item: `mrr` and `quantity` added over [start, end_excl)."""

    start: dt.date
    end_excl: dt.date
    mrr: Amount
    quantity: Decimal

    def __init__(self, start: dt.date, end_excl: dt.date, mrr: Amount, quantity: Decimal) -> None:
        # each field stored in the dict, as `LineInput.__init__` says why
        d = self.__dict__
        d["start"] = start
        d["end_excl"] = end_excl
        d["mrr"] = mrr
        d["quantity"] = quantity


@dataclass
class Item:
    """A provisioned subscription, asset or entitlement, at its latest version."""

    id: str
    kind: Provisioning
    account: str
    product: str
    currency: str
    start: dt.date
    end: dt.date
    term_start: dt.date
    quantity: Decimal
    unit_price: Decimal
    price_period: PricePeriod
    bill_cycle_day: int
    status: str = "active"
    version: int = 1
    created_by: str = ""
    last_line: str = ""
    #: runs until cancelled; `end` is then the horizon its pieces are materialized to
    evergreen: bool = False


@dataclass(frozen=True)
class ActivatedLine:
    """An order line after activation: its resolved dates, its contribution, and its category."""

    order: str
    id: str
    seq: int
    action: Action
    product: str
    product_name: str
    item: str
    item_kind: Provisioning
    quantity: Decimal
    unit_price: Decimal
    price_period: PricePeriod
    list_price_monthly: Amount
    start: dt.date
    end: dt.date
    billing_frequency: BillingFrequency
    credit_eligible: bool
    change_category: ChangeCategory
    segments: tuple[Segment, ...]
    one_time_amount: Amount
    bill_cycle_day: int
    #: the item's version once this line is applied (each line makes a new version)
    item_version: int = 1
    #: the line changes an evergreen subscription up to its horizon: `end` is the horizon, not the
    #: end of service, and its pieces that reach it run on past it (engine.evergreen)
    evergreen: bool = False

    def __init__(self, order: str, id: str, seq: int, action: Action, product: str, product_name: str, item: str,
                 item_kind: Provisioning, quantity: Decimal, unit_price: Decimal, price_period: PricePeriod,
                 list_price_monthly: Amount, start: dt.date, end: dt.date, billing_frequency: BillingFrequency,
                 credit_eligible: bool, change_category: ChangeCategory, segments: tuple[Segment, ...],
                 one_time_amount: Amount, bill_cycle_day: int, item_version: int = 1,
                 evergreen: bool = False) -> None:
        # each field stored in the dict, as `LineInput.__init__` says why
        d = self.__dict__
        d["order"] = order
        d["id"] = id
        d["seq"] = seq
        d["action"] = action
        d["product"] = product
        d["product_name"] = product_name
        d["item"] = item
        d["item_kind"] = item_kind
        d["quantity"] = quantity
        d["unit_price"] = unit_price
        d["price_period"] = price_period
        d["list_price_monthly"] = list_price_monthly
        d["start"] = start
        d["end"] = end
        d["billing_frequency"] = billing_frequency
        d["credit_eligible"] = credit_eligible
        d["change_category"] = change_category
        d["segments"] = segments
        d["one_time_amount"] = one_time_amount
        d["bill_cycle_day"] = bill_cycle_day
        d["item_version"] = item_version
        d["evergreen"] = evergreen

    @cached_property
    def tcv(self) -> Exact:
        """TCV (SPEC section 5): delta MRR × months of each piece, plus one-time charges. Exact.

        Cached: activation, account metrics and subscription metrics all ask for it.
        """
        # Added up on the integers of each ratio, reduced once at the end: the same rational as
        # adding Exact products piece by piece, which reduced each product and each sum (a third
        # of the limits' check of every line activated: issue 11)
        ratio = ratio_of
        n, d = ratio(self.one_time_amount)
        for s in self.segments:
            a, b = ratio(s.mrr)
            m = months_between(s.start, s.end_excl)
            under = b * m.denominator
            if under == d:  # the usual piece: whole months, an amount to as many places as the total
                n += a * m.numerator
            else:
                n, d = n * under + a * m.numerator * d, d * under
        return exact_ratio(n, d)

    @property
    def recurring(self) -> bool:
        return self.price_period is not PricePeriod.ONE_TIME

    @property
    def delta_mrr(self) -> Amount:
        """The line's delta MRR on its first day (SPEC section 4).

        Summed over every piece active that day: a cancellation after an update removes several
        pieces from the same day, and its delta is minus their total, not minus the first one.
        """
        return sum((s.mrr for s in self._first_day_segments()), Decimal(0))

    @property
    def quantity_delta(self) -> Decimal:
        if not self.segments:
            return self.quantity
        return sum((s.quantity for s in self._first_day_segments()), Decimal(0))

    def _first_day_segments(self) -> list[Segment]:
        if not self.segments:
            return []
        first = min(s.start for s in self.segments)
        return [s for s in self.segments if s.start == first]


@dataclass(frozen=True)
class Activation:
    """The immediate step's result for one order: everything written in its one transaction."""

    order: OrderInput
    lines: tuple[ActivatedLine, ...]
    items: tuple[Item, ...]
    bill_cycle_day: int
    account_tcv_delta: Amount
    customer_since: dt.date | None
    links: tuple[tuple[str, str], ...] = field(default=())


class ArrRow(NamedTuple):
    """One ARR-by-period row (SPEC section 7): a line's CMRR at the open and close of one fiscal month.

    A named tuple rather than a dataclass: a large backfill makes millions of them.
    """

    line: str
    period_start: dt.date
    period_end: dt.date
    opening_cmrr: Decimal
    closing_cmrr: Decimal
    opening_arr: Decimal
    closing_arr: Decimal

    @property
    def change_cmrr(self) -> Decimal:
        return self.closing_cmrr - self.opening_cmrr

    @property
    def change_arr(self) -> Decimal:
        return self.closing_arr - self.opening_arr


class OrderMetric(NamedTuple):
    """A Zuora-style order metric row for one line (SPEC section 6). A named tuple: there are many."""

    line: str
    metric: str
    amount: Decimal
    start: dt.date
    end: dt.date
    generated_reason: str
    type: str = "Regular"


@dataclass(frozen=True)
class BillingPeriod:
    """One period of a line's billing schedule, inclusive end."""

    line: str
    start: dt.date
    end: dt.date
    amount: Decimal


@dataclass(frozen=True)
class Drawdown:
    """Credit drawn by one credit-eligible line during credit review."""

    order: str
    line: str
    account: str
    currency: str
    amount: Decimal
    net_amount: Decimal
