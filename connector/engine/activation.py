"""The immediate activation step (SPEC section 3): provision items and resolve every line.

`activate` turns one submitted order into an `Activation` against a ledger; it never changes the
ledger itself (the caller applies the result once it is stored), and it reports every problem of
the order at once rather than the first.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import replace
from functools import lru_cache
from decimal import Decimal
from typing import Mapping

from connector.engine.dates import ONE_DAY, end_from_term, months_between
from connector.engine.evergreen import horizon as evergreen_horizon
from connector.engine.fiscal import FiscalCalendar
from connector.engine.ledger import ZERO, Ledger
from connector.engine.limits import (
    check_date, check_price, check_quantity, check_term_months, fits_price, fits_quantity, line_amount_problems,
)
from connector.engine.money import Amount, Exact, exact
from connector.engine.model import (
    MONTHS_PER_PERIOD,
    Account,
    Action,
    ActivatedLine,
    Activation,
    ChangeCategory,
    Item,
    LineInput,
    OrderInput,
    PricePeriod,
    Product,
    Segment,
    TriggerDate,
)
from connector.engine.settings import EngineSettings
from connector.errors import FiscalCalendarError, Problem, ValidationFailed


class OrderRejected(ValidationFailed):
    """The order cannot be activated; every problem names the order, line and field."""


def monthly_price(price: Decimal, period: PricePeriod) -> Exact:
    """The monthly equivalent of a recurring price: yearly / 12, quarterly / 3, exactly.

    1000 / 12 does not terminate as a decimal: it is kept as a rational (engine.money.Exact), so
    every later sum and difference of contributions is exact (a cancellation brings CMRR back to
    exactly zero) and amounts made from it are rounded once, at the edge.
    """
    if period is PricePeriod.ONE_TIME:
        return exact(0)
    return exact(price) / MONTHS_PER_PERIOD[period]


def service_start(line: LineInput, trigger: TriggerDate) -> dt.date | None:
    """The day service starts: the chosen trigger date, else contract effective, else `start`."""
    chosen = getattr(line, trigger.value)
    return chosen or line.contract_effective or line.start


def _where(order: OrderInput, line: LineInput | None = None, fld: str | None = None) -> str:
    where = f"order {order.id}"
    if line is not None:
        where += f", line {line.id}"
    if fld is not None:
        where += f", field {fld}"
    return where


def activate(order: OrderInput, ledger: Ledger, products: Mapping[str, Product],
             accounts: Mapping[str, Account], calendar: FiscalCalendar,
             settings: EngineSettings) -> Activation:
    """Activate one order against the ledger; raise OrderRejected listing every problem."""
    account = accounts.get(order.account)
    problems = _order_problems(order, account, ledger, accounts)
    if order.id in ledger.activated_orders or not order.lines:
        raise OrderRejected(f"order {order.id}", problems)
    # Account problems do not stop here: the lines are checked too, so every problem is reported at once.

    account_bcd = account.bill_cycle_day if account is not None else None
    bcd = order.bill_cycle_day or account_bcd or settings.default_bill_cycle_day
    # An overlay, so that several lines of one order changing the same item see each other
    # while the caller's ledger stays untouched until the activation is stored.
    work = ledger.overlay()
    activated: list[ActivatedLine] = []
    touched: dict[str, Item] = {}
    for seq, line in enumerate(order.lines, start=1):
        try:
            result = _activate_line(order, line, seq, work, products, bcd, settings)
        except _LineProblem as exc:
            problems.extend(exc.problems)
            continue
        activated_line, item = result
        too_big = line_amount_problems(activated_line)
        if too_big:
            for fld, message in too_big:
                problems.append(Problem(_where(order, line, fld), message))
            continue
        uncovered = _calendar_problem(order, line, activated_line, calendar)
        if uncovered is not None:
            problems.append(uncovered)
            continue
        work.record(item, activated_line.segments)
        activated.append(activated_line)
        touched[item.id] = item
    if problems:
        raise OrderRejected(f"order {order.id}", problems)

    tcv = sum((line_tcv(line) for line in activated), ZERO)
    recurring_starts = [l.start for l in activated
                        if l.recurring and l.action in (Action.NEW, Action.UPDATE, Action.RENEW)]
    links = tuple((role, ref) for role, ref in (("bill_to", order.bill_to), ("sold_to", order.sold_to))
                  if ref is not None)
    return Activation(order=order, lines=tuple(activated), items=tuple(touched.values()),
                      bill_cycle_day=bcd, account_tcv_delta=tcv,
                      customer_since=min(recurring_starts) if recurring_starts else None,
                      links=links)


def _order_problems(order: OrderInput, account: Account | None, ledger: Ledger,
                    accounts: Mapping[str, Account]) -> list[Problem]:
    """The problems of the order itself (its accounts, whether it is new, whether it has lines)."""
    problems: list[Problem] = []
    if account is None:
        problems.append(Problem(_where(order, fld="account"),
                                f"unknown account {order.account!r}; add it to `accounts` first"))
    for role in ("bill_to", "sold_to"):
        ref = getattr(order, role)
        if ref is not None and ref not in accounts:
            problems.append(Problem(_where(order, fld=role), f"unknown account {ref!r}"))
    if order.id in ledger.activated_orders:
        problems.append(Problem(_where(order), "this order is already activated"))
    if not order.lines:
        problems.append(Problem(_where(order, fld="lines"), "an order needs at least one line"))
    return problems


def _calendar_problem(order: OrderInput, line: LineInput, activated_line: ActivatedLine,
                      calendar: FiscalCalendar) -> Problem | None:
    """The problem when the fiscal calendar does not cover the activated line's dates, else None."""
    try:
        # an evergreen line's end is its horizon, not a day it must have rows for yet
        calendar.check_covers(activated_line.start,
                              activated_line.start if activated_line.evergreen else activated_line.end)
    except FiscalCalendarError as exc:
        # Name the field that holds the date: a terms line only gives its end.
        fld = "end" if line.action is Action.TERMS or _inside(calendar, activated_line.start) else "start"
        return Problem(_where(order, line, fld), str(exc).split("\n")[0] + "; define fiscal periods that cover it")
    return None


def _inside(calendar: FiscalCalendar, day: dt.date) -> bool:
    try:
        calendar.period_of(day)
    except FiscalCalendarError:
        return False
    return True


class _LineProblem(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems


def _line_problem(order: OrderInput, line: LineInput, message: str, fld: str | None = None) -> _LineProblem:
    """The exception that rejects one line with one problem."""
    return _LineProblem([Problem(_where(order, line, fld), message)])


class _Line:
    """An order line on its way to activation, with its product and what every step reads of them."""

    __slots__ = ("order", "line", "seq", "product", "period", "list_monthly")

    def __init__(self, order: OrderInput, line: LineInput, seq: int, product: Product):
        self.order = order
        self.line = line
        self.seq = seq
        self.product = product
        self.period = line.price_period or product.price_period
        # A one-time product has no monthly price (monthly_price gives 0); carry its list price as is, so
        # the ELP of a one-time line (list price × quantity, metrics.order_metrics) is not always zero.
        self.list_monthly = _list_monthly(product.list_price, product.price_period)

    def bad(self, message: str, fld: str | None = None) -> _LineProblem:
        """The exception that rejects this line with `message` about its field `fld`."""
        return _line_problem(self.order, self.line, message, fld)


def _activate_line(order: OrderInput, line: LineInput, seq: int, ledger: Ledger,
                   products: Mapping[str, Product], bcd: int,
                   settings: EngineSettings) -> tuple[ActivatedLine, Item]:
    """The activated line and the item it creates or changes; raise _LineProblem if it cannot be."""
    product = _checked_product(order, line, products)
    start = service_start(line, settings.service_start_trigger)
    ln = _Line(order, line, seq, product)
    if line.action is Action.NEW:
        return _new(ln, start, ledger, bcd, settings)
    # Every other action changes an existing recurring item.
    item = _existing_item(ln, ledger)
    if line.action is Action.UPDATE:
        return _update(ln, item, start, ledger)
    if line.action is Action.RENEW:
        return _renew(ln, item, start, settings)
    if line.action is Action.CANCEL:
        return _cancel(ln, item, start, ledger)
    return _terms(ln, item, ledger)


def _checked_product(order: OrderInput, line: LineInput, products: Mapping[str, Product]) -> Product:
    """The line's product, once the line's values are within the store's ranges and not negative."""
    product = products.get(line.product)
    if product is None:
        raise _line_problem(order, line, f"unknown product {line.product!r}; add it to `products` first",
                            "product")
    # The store's ranges (engine.limits), checked here too so that orders from every origin (a
    # Salesforce order item, not only the import file) are held to them before any arithmetic.
    out_of_range = _range_problems(line, product)
    if out_of_range:
        raise _LineProblem([Problem(_where(order, line, fld), problem) for fld, problem in out_of_range])
    if line.quantity is not None and line.quantity < 0:
        raise _line_problem(order, line, "quantity cannot be negative", "quantity")
    if line.unit_price is not None and line.unit_price < 0:
        raise _line_problem(order, line, "unit_price cannot be negative; use a cancel or update line to "
                            "reduce revenue", "unit_price")
    return product


@lru_cache(maxsize=1024)  # per product, not per line (issue 11): exact values, immutable, shared
def _list_monthly(list_price: Decimal, period: PricePeriod) -> Exact:
    """A product's monthly list price: its list price as it is for a one-time product (`_Line`)."""
    return exact(list_price) if period is PricePeriod.ONE_TIME else monthly_price(list_price, period)


def _check_end_agrees(ln: _Line, begin: dt.date) -> None:
    """Reject a line whose `end` and `term_months` (counted from `begin`) name different days."""
    line = ln.line
    if line.end is not None and line.term_months is not None \
            and end_from_term(begin, line.term_months) != line.end:
        raise ln.bad(f"end {line.end} and term_months {line.term_months} disagree "
                     f"({line.term_months} months from {begin} ends {end_from_term(begin, line.term_months)})",
                     "end")


def _resolve_end(ln: _Line, begin: dt.date, settings: EngineSettings) -> dt.date:
    """The last day of a term starting on `begin`: the line's `end`, its `term_months`, or the horizon."""
    line = ln.line
    _check_end_agrees(ln, begin)
    if line.evergreen and (line.end is not None or line.term_months is not None):
        raise ln.bad("an evergreen line has no end: remove `end` and `term_months`, or `evergreen`", "evergreen")
    if line.end is not None:
        end = line.end
    elif line.term_months is not None:
        if line.term_months <= 0:
            raise ln.bad("term_months must be a positive whole number", "term_months")
        end = end_from_term(begin, line.term_months)
    elif line.evergreen:
        end = evergreen_horizon(begin, settings)  # the first horizon (engine.evergreen)
    else:
        raise ln.bad("give `end` or `term_months`, or mark a line that runs until cancelled as "
                     "evergreen (`\"evergreen\": true`)", "end")
    if end < begin:
        raise ln.bad(f"end {end} is before start {begin}", "end")
    return end


def _activated(ln: _Line, item: Item, action: Action, category: ChangeCategory, begin: dt.date,
               end: dt.date, quantity: Decimal, unit_price: Decimal, segments: list[Segment],
               one_time: Amount = ZERO, evergreen: bool = False) -> tuple[ActivatedLine, Item]:
    """The activated line for `item` as the line leaves it (pieces that span no day left out)."""
    order, line, product = ln.order, ln.line, ln.product
    return ActivatedLine(
        order=order.id, id=line.id, seq=ln.seq, action=action, product=product.id,
        product_name=product.name, item=item.id, item_kind=item.kind, quantity=quantity,
        unit_price=unit_price, price_period=ln.period, list_price_monthly=ln.list_monthly,
        start=begin, end=end, billing_frequency=line.billing_frequency,
        credit_eligible=line.credit_eligible, change_category=category,
        segments=tuple(s for s in segments if s.end_excl > s.start), one_time_amount=one_time,
        bill_cycle_day=item.bill_cycle_day, item_version=item.version, evergreen=evergreen), item


def _new(ln: _Line, start: dt.date | None, ledger: Ledger, bcd: int,
         settings: EngineSettings) -> tuple[ActivatedLine, Item]:
    """A new line: provision its item (named by the line, else the line's id) from `start`."""
    order, line, product, period = ln.order, ln.line, ln.product, ln.period
    if start is None:
        raise ln.bad("a new line needs a `start` (or a trigger date)", "start")
    item_id = line.item or line.id
    if item_id in ledger.items:
        raise ln.bad(f"{item_id!r} already exists; use an update, renew, cancel or terms line to change it",
                     "subscription")
    end = _resolve_end(ln, start, settings)
    quantity = line.quantity if line.quantity is not None else Decimal(1)
    price = line.unit_price if line.unit_price is not None else product.list_price
    before = ledger.account_cmrr_on(order.account, start - ONE_DAY)
    category = ChangeCategory.CROSS_SELL if before != 0 else ChangeCategory.NEW_BUSINESS
    item = Item(id=item_id, kind=product.provisioning, account=order.account, product=product.id,
                currency=order.currency, start=start, end=end, term_start=start,
                quantity=quantity, unit_price=price, price_period=period, bill_cycle_day=bcd,
                created_by=order.id, last_line=line.id, evergreen=line.evergreen)
    if period is PricePeriod.ONE_TIME:
        if line.evergreen:
            raise ln.bad("a one-time charge cannot be evergreen", "evergreen")
        return _activated(ln, item, Action.NEW, category, start, end, quantity, price, [], exact(quantity) * price)
    mrr = quantity * monthly_price(price, period)
    return _activated(ln, item, Action.NEW, category, start, end, quantity, price,
                      [Segment(start, end + ONE_DAY, mrr, quantity)], evergreen=line.evergreen)


def _existing_item(ln: _Line, ledger: Ledger) -> Item:
    """The subscription a change line (update, renew, cancel, terms) names, if the line may change it."""
    order, line, product = ln.order, ln.line, ln.product
    if line.evergreen:
        raise ln.bad("only a `new` line can be evergreen; changes to an evergreen subscription follow it",
                     "evergreen")
    if not line.item:
        raise ln.bad(f"a {line.action.value} line must name the subscription it changes", "subscription")
    item = ledger.items.get(line.item)
    if item is None:
        raise ln.bad(f"subscription {line.item!r} does not exist (it must be created by an earlier order)",
                     "subscription")
    if item.account != order.account:
        raise ln.bad(f"subscription {item.id!r} belongs to account {item.account!r}, not {order.account!r}",
                     "subscription")
    if item.product != product.id:
        raise ln.bad(f"subscription {item.id!r} is for product {item.product!r}, not {product.id!r}", "product")
    if item.price_period is PricePeriod.ONE_TIME:
        raise ln.bad(f"{item.id!r} is a one-time item; it cannot be changed", "subscription")
    if item.currency != order.currency:
        raise ln.bad(f"subscription {item.id!r} is in {item.currency}, the order in {order.currency}",
                     "currency")
    if item.status == "cancelled":
        raise ln.bad(f"subscription {item.id!r} was cancelled (service ended {item.end})", "subscription")
    return item


def _update_end(ln: _Line, item: Item, start: dt.date) -> dt.date:
    """An update's last day: co-termed with the item unless the line gives an earlier end."""
    line = ln.line
    _check_end_agrees(ln, start)
    end = line.end if line.end is not None else item.end  # co-termed unless an end is given
    if line.term_months is not None and line.end is None:
        end = end_from_term(start, line.term_months)
    if end < start:
        raise ln.bad(f"end {end} is before start {start}", "end")
    if end > item.end:
        raise ln.bad(f"end {end} is after the subscription's end {item.end}; extend it with a terms "
                     "or renew line first", "end")
    return end


def _update(ln: _Line, item: Item, start: dt.date | None, ledger: Ledger) -> tuple[ActivatedLine, Item]:
    """An update: bring the item to the line's quantity and price from `start` to the update's end."""
    line, period = ln.line, ln.period
    if start is None:
        raise ln.bad("an update line needs a `start` (or a trigger date)", "start")
    if not item.start <= start <= item.end:
        raise ln.bad(f"subscription {item.id!r} has no service on {start} (it runs {item.start}..{item.end})",
                     "start")
    end = _update_end(ln, item, start)
    quantity = line.quantity if line.quantity is not None else item.quantity
    price = line.unit_price if line.unit_price is not None else item.unit_price
    if period is PricePeriod.ONE_TIME:
        raise ln.bad("an update line cannot have a one-time price period", "price_period")
    old_quantity = ledger.quantity_on(item.id, start)
    pieces = _to_total(ledger, item.id, start, end + ONE_DAY, quantity * monthly_price(price, period),
                       quantity)
    delta = pieces[0].mrr
    if delta > 0 or (delta == 0 and quantity >= old_quantity):
        category = ChangeCategory.UPSELL
    else:
        category = ChangeCategory.DOWNSELL
    new_item = replace(item, quantity=quantity, unit_price=price, price_period=period,
                       version=item.version + 1, last_line=line.id)
    # co-termed with an evergreen subscription: the change runs on with it past the horizon
    return _activated(ln, new_item, Action.UPDATE, category, start, end, quantity, price, pieces,
                      evergreen=item.evergreen and end == item.end)


def _renew(ln: _Line, item: Item, start: dt.date | None,
           settings: EngineSettings) -> tuple[ActivatedLine, Item]:
    """A renewal: a new term from the day after the item's end, as long as the current one by default."""
    line, period = ln.line, ln.period
    if item.evergreen:
        raise ln.bad(f"subscription {item.id!r} is evergreen: it runs until cancelled and has nothing to "
                     "renew (a `terms` line gives it an end)", "subscription")
    begin = item.end + ONE_DAY
    if start is not None and start != begin:
        raise ln.bad(f"a renewal starts the day after the current end ({begin}), not {start}", "start")
    if line.end is None and line.term_months is None:
        current_term = months_between(item.term_start, item.end + ONE_DAY)
        end = end_from_term(begin, max(1, round(current_term)))
    else:
        end = _resolve_end(ln, begin, settings)
    quantity = line.quantity if line.quantity is not None else item.quantity
    price = line.unit_price if line.unit_price is not None else item.unit_price
    mrr = quantity * monthly_price(price, period)
    new_item = replace(item, end=end, term_start=begin, quantity=quantity, unit_price=price,
                       price_period=period, version=item.version + 1, last_line=line.id)
    return _activated(ln, new_item, Action.RENEW, ChangeCategory.RENEWAL, begin, end, quantity, price,
                      [Segment(begin, end + ONE_DAY, mrr, quantity)])


def _cancel(ln: _Line, item: Item, start: dt.date | None, ledger: Ledger) -> tuple[ActivatedLine, Item]:
    """A cancellation: remove every piece of the item from `start`, its first day without service."""
    if start is None:
        raise ln.bad("a cancel line needs a `start`: the first day without service", "start")
    if not item.start <= start <= item.end:
        raise ln.bad(f"cancellation date {start} is outside the subscription's service "
                     f"{item.start}..{item.end}", "start")
    removed = _removed(ledger, item.id, start)
    new_item = replace(item, end=start - ONE_DAY, status="cancelled", quantity=ZERO, evergreen=False,
                       version=item.version + 1, last_line=ln.line.id)
    # on an evergreen subscription what is removed runs on past the horizon: so does its removal
    return _activated(ln, new_item, Action.CANCEL, ChangeCategory.CHURN, start, item.end, ZERO,
                      item.unit_price, removed, evergreen=item.evergreen)


def _terms_end(ln: _Line, item: Item) -> dt.date:
    """A terms line's new end for the item: its `end`, or `term_months` from the current term's start."""
    line = ln.line
    if line.end is None and line.term_months is None:
        raise ln.bad("a terms line needs the new `end`", "end")
    _check_end_agrees(ln, item.term_start)  # a terms line's term_months count from the current term's start
    new_end = line.end if line.end is not None else end_from_term(item.term_start, line.term_months or 0)
    if item.evergreen and new_end >= item.end:
        raise ln.bad(f"subscription {item.id!r} is evergreen and materialized up to {item.end} "
                     f"(`[engine] evergreen_horizon_months`); give it an end before that day, or cancel it",
                     "end")
    if new_end == item.end:
        raise ln.bad(f"the new end {new_end} is the current end; nothing would change", "end")
    if new_end < item.start:
        raise ln.bad(f"the new end {new_end} is before the subscription starts ({item.start})", "end")
    return new_end


def _terms(ln: _Line, item: Item, ledger: Ledger) -> tuple[ActivatedLine, Item]:
    """A terms line: move the item's end, extending its last day's CMRR or removing what follows."""
    new_end = _terms_end(ln, item)
    if new_end > item.end:
        last_day = item.end
        cmrr = ledger.cmrr_on(item.id, last_day)
        quantity = ledger.quantity_on(item.id, last_day)
        segments = [Segment(item.end + ONE_DAY, new_end + ONE_DAY, cmrr, quantity)]
        category, begin, end = ChangeCategory.RENEWAL, item.end + ONE_DAY, new_end
    else:
        quantity = ledger.quantity_on(item.id, new_end)
        segments = _removed(ledger, item.id, new_end + ONE_DAY)
        category, begin, end = ChangeCategory.CHURN, new_end + ONE_DAY, item.end
    new_item = replace(item, end=new_end, evergreen=False, version=item.version + 1, last_line=ln.line.id)
    # giving an evergreen subscription an end: the pieces removed run on past the horizon, so does this
    return _activated(ln, new_item, Action.TERMS, category, begin, end, quantity, item.unit_price, segments,
                      evergreen=item.evergreen)


def _removed(ledger: Ledger, item_id: str, day: dt.date) -> list[Segment]:
    """Pieces that take back every piece of the item from `day` on."""
    return [replace(s, mrr=-s.mrr, quantity=-s.quantity) for s in ledger.segments_from(item_id, day)]


def _to_total(ledger: Ledger, item_id: str, start: dt.date, end_excl: dt.date, mrr: Amount,
              quantity: Decimal) -> list[Segment]:
    """The pieces that bring the item to `mrr` and `quantity` on every day of [start, end_excl).

    An update sets a new total (SPEC section 4). The item may already change inside the interval
    (a later-dated update activated earlier, a renewal with another price), so each stretch between
    such changes gets its own delta; one delta from the first day would stack on the later change
    and could even drive the CMRR below zero. Later pieces that change nothing are left out.
    """
    cuts = sorted({start, end_excl} | {day for s in ledger.segments.get(item_id, ())
                                       for day in (s.start, s.end_excl) if start < day < end_excl})
    pieces: list[Segment] = []
    for begin, stop in zip(cuts, cuts[1:]):
        piece = Segment(begin, stop, mrr - ledger.cmrr_on(item_id, begin),
                        quantity - ledger.quantity_on(item_id, begin))
        last = pieces[-1] if pieces else None
        if last is not None and last.end_excl == begin and (last.mrr, last.quantity) == (piece.mrr, piece.quantity):
            pieces[-1] = replace(last, end_excl=stop)
        elif last is None or piece.mrr or piece.quantity:
            pieces.append(piece)
    return pieces


def _range_problems(line: LineInput, product: Product) -> list[tuple[str, str]]:
    """(field, message) for each value of the line (and its product's list price) outside the limits."""
    out = []
    for fld, value, fits, check in (("quantity", line.quantity, fits_quantity, check_quantity),
                                    ("unit_price", line.unit_price, fits_price, check_price)):
        if value is not None and (not value.is_finite() or value >= 0):  # negatives: their own message below
            if value.is_finite() and fits(value):
                continue
            problem = check(value)
            if problem:
                out.append((fld, problem))
    price = product.list_price
    if not (price.is_finite() and fits_price(price)):
        problem = check_price(price, f"the list price of product {product.id!r}")
        if problem:
            out.append(("product", problem))
    for fld in ("start", "end", "contract_effective", "service_activation", "customer_acceptance"):
        day = getattr(line, fld)
        if day is not None and (problem := check_date(day, fld)):
            out.append((fld, problem))
    if line.term_months is not None and line.term_months > 0 and (problem := check_term_months(line.term_months)):
        out.append(("term_months", problem))
    return out


def line_tcv(line: ActivatedLine) -> Exact:
    """TCV of a line (SPEC section 5): delta MRR × months of each piece, plus one-time charges. Exact."""
    return line.tcv
