"""Reading and writing engine records in the store. Callers own the transaction (`engine.begin()`)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Iterable, Sequence

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from connector.engine.activation import line_tcv
from connector.engine.ledger import Ledger
from connector.engine.model import (
    Account, Action, ActivatedLine, Activation, ArrRow, BillingFrequency, BillingPeriod, ChangeCategory,
    Credit, Drawdown, Item, OrderMetric, PricePeriod, Product, Provisioning, Segment,
)
from connector.engine.money import round_money
from connector.store import schema as t

JOB_KINDS = ("credit_review", "subscription_metrics", "order_metrics", "arr_by_period")


# --- catalogue -------------------------------------------------------------------------------

def upsert_account(conn: Connection, account: Account) -> None:
    """Create the account, or update its name and bill cycle day."""
    found = conn.execute(select(t.accounts.c.id).where(t.accounts.c.id == account.id)).first()
    values = dict(name=account.name, bill_cycle_day=account.bill_cycle_day)
    if found:
        conn.execute(update(t.accounts).where(t.accounts.c.id == account.id).values(**values))
    else:
        conn.execute(insert(t.accounts).values(id=account.id, tcv=Decimal(0), **values))


def upsert_product(conn: Connection, product: Product) -> None:
    """Create the product, or update its name and list price (activated lines keep theirs)."""
    values = dict(name=product.name, provisioning=product.provisioning.value,
                  list_price=product.list_price, price_period=product.price_period.value)
    found = conn.execute(select(t.products.c.id).where(t.products.c.id == product.id)).first()
    if found:
        conn.execute(update(t.products).where(t.products.c.id == product.id).values(**values))
    else:
        conn.execute(insert(t.products).values(id=product.id, **values))


def credit_by_id(conn: Connection, credit_id: str) -> Credit | None:
    """A credit grant by id."""
    row = conn.execute(select(t.credits).where(t.credits.c.id == credit_id)).first()
    return None if row is None else Credit(row.id, row.account, row.currency, row.amount)


def add_credit(conn: Connection, credit: Credit) -> None:
    """Record a credit grant (grants are immutable; a new grant has a new id)."""
    conn.execute(insert(t.credits).values(id=credit.id, account=credit.account,
                                          currency=credit.currency, amount=credit.amount))


def load_accounts(conn: Connection) -> dict[str, Account]:
    """Every account."""
    return {r.id: Account(r.id, r.name, r.bill_cycle_day) for r in conn.execute(select(t.accounts))}


def load_products(conn: Connection) -> dict[str, Product]:
    """Every product."""
    return {r.id: Product(r.id, r.name, Provisioning(r.provisioning), r.list_price, PricePeriod(r.price_period))
            for r in conn.execute(select(t.products))}


# --- orders and the ledger ---------------------------------------------------------------------

def order_hash(conn: Connection, order_id: str) -> str | None:
    """The content hash of an activated order, or None if it is not in the store."""
    return conn.execute(select(t.orders.c.content_hash).where(t.orders.c.id == order_id)).scalar()


def line_ids_taken(conn: Connection, ids: Iterable[str]) -> set[str]:
    """Which of these line ids already belong to stored orders."""
    ids = list(ids)
    out: set[str] = set()
    for i in range(0, len(ids), 500):
        out.update(conn.execute(select(t.order_lines.c.id).where(t.order_lines.c.id.in_(ids[i:i + 500]))).scalars())
    return out


def _item(r) -> Item:
    return Item(id=r.id, kind=Provisioning(r.kind), account=r.account, product=r.product,
                currency=r.currency, start=r.start, end=r.end, term_start=r.term_start,
                quantity=r.quantity, unit_price=r.unit_price, price_period=PricePeriod(r.price_period),
                bill_cycle_day=r.bill_cycle_day, status=r.status, version=r.version,
                created_by=r.created_by, last_line=r.last_line)


def load_ledger(conn: Connection) -> Ledger:
    """The whole ledger: every item with the contribution segments of its lines."""
    ledger = Ledger()
    for r in conn.execute(select(t.items)):
        ledger.add_item(_item(r), [])
    query = (select(t.order_lines.c.item, t.line_segments)
             .join(t.line_segments, t.line_segments.c.line_pk == t.order_lines.c.pk)
             .order_by(t.order_lines.c.pk, t.line_segments.c.seq))
    for r in conn.execute(query):
        ledger.segments[r.item].append(Segment(r.start, r.end_excl, r.mrr, r.quantity))
    ledger.activated_orders.update(conn.execute(select(t.orders.c.id)).scalars())
    return ledger


def next_order_seq(conn: Connection) -> int:
    """The activation sequence number of the next order (activation order is replayed by regenerate)."""
    return (conn.execute(select(func.max(t.orders.c.seq))).scalar() or 0) + 1


def save_activation(conn: Connection, activation: Activation, *, origin: str, content_hash: str,
                    customer_name: str, now: dt.datetime) -> list[int]:
    """Write an order's immediate step and enqueue its background jobs; returns the line keys."""
    order = activation.order
    conn.execute(insert(t.orders).values(
        id=order.id, seq=next_order_seq(conn), account=order.account, owner=order.owner,
        booked_on=order.booked_on, currency=order.currency, bill_cycle_day=activation.bill_cycle_day,
        bill_to=order.bill_to, sold_to=order.sold_to, origin=origin, status="activated",
        content_hash=content_hash, activated_at=now))
    pks = []
    for line in activation.lines:
        pk = conn.execute(insert(t.order_lines).values(
            id=line.id, order_id=order.id, seq=line.seq, action=line.action.value, product=line.product,
            product_name=line.product_name, customer_name=customer_name, item=line.item,
            item_kind=line.item_kind.value, quantity=line.quantity, unit_price=line.unit_price,
            price_period=line.price_period.value, list_price_monthly=line.list_price_monthly,
            start=line.start, end=line.end, billing_frequency=line.billing_frequency.value,
            credit_eligible=line.credit_eligible, change_category=line.change_category.value,
            one_time_amount=line.one_time_amount, bill_cycle_day=line.bill_cycle_day,
            tcv=round_money(line_tcv(line), order.currency))).inserted_primary_key[0]
        pks.append(pk)
        if line.segments:
            conn.execute(insert(t.line_segments), [
                dict(line_pk=pk, seq=i, start=s.start, end_excl=s.end_excl, mrr=s.mrr, quantity=s.quantity)
                for i, s in enumerate(line.segments)])
    by_line = {line.id: pk for line, pk in zip(activation.lines, pks)}
    for item in activation.items:
        values = dict(kind=item.kind.value, account=item.account, product=item.product,
                      currency=item.currency, start=item.start, end=item.end, term_start=item.term_start,
                      quantity=item.quantity, unit_price=item.unit_price,
                      price_period=item.price_period.value, bill_cycle_day=item.bill_cycle_day,
                      status=item.status, version=item.version, created_by=item.created_by,
                      last_line=item.last_line)
        if item.version == 1:
            conn.execute(insert(t.items).values(id=item.id, **values))
        else:
            conn.execute(update(t.items).where(t.items.c.id == item.id).values(**values))
    # every line makes a new version of the item it provisions or changes
    versions = _versions(conn, activation, by_line)
    if versions:
        conn.execute(insert(t.item_versions), versions)
    account = conn.execute(select(t.accounts.c.tcv, t.accounts.c.customer_since)
                           .where(t.accounts.c.id == order.account)).one()
    since = account.customer_since
    if activation.customer_since is not None and (since is None or activation.customer_since < since):
        since = activation.customer_since
    conn.execute(update(t.accounts).where(t.accounts.c.id == order.account).values(
        tcv=account.tcv + round_money(activation.account_tcv_delta, order.currency), customer_since=since))
    for role, related in activation.links:
        exists = conn.execute(select(t.account_links.c.account).where(and_(
            t.account_links.c.account == order.account, t.account_links.c.role == role,
            t.account_links.c.related == related))).first()
        if not exists:
            conn.execute(insert(t.account_links).values(account=order.account, role=role, related=related,
                                                        order_id=order.id))
    conn.execute(insert(t.jobs), [dict(order_id=order.id, kind=kind, status="pending", attempts=0,
                                       created_at=now, updated_at=now) for kind in JOB_KINDS])
    return pks


def _versions(conn: Connection, activation: Activation, by_line: dict[str, int]) -> list[dict]:
    seen: dict[str, int] = {}
    out = []
    final = {item.id: item for item in activation.items}
    for line in activation.lines:
        item = final[line.item]
        if line.item not in seen:
            current = conn.execute(select(func.max(t.item_versions.c.version))
                                   .where(t.item_versions.c.item == line.item)).scalar() or 0
            seen[line.item] = current
        seen[line.item] += 1
        out.append(dict(item=line.item, version=seen[line.item], line_pk=by_line[line.id],
                        start=line.start, end=item.end, quantity=line.quantity,
                        unit_price=line.unit_price, status=item.status))
    return out


def load_order_lines(conn: Connection, order_id: str) -> tuple[dict, list[tuple[int, ActivatedLine]]]:
    """An activated order's header and its lines as the engine saw them."""
    order = conn.execute(select(t.orders).where(t.orders.c.id == order_id)).one()._asdict()
    lines = conn.execute(select(t.order_lines).where(t.order_lines.c.order_id == order_id)
                         .order_by(t.order_lines.c.seq)).all()
    segs: dict[int, list[Segment]] = {}
    if lines:
        for s in conn.execute(select(t.line_segments).where(t.line_segments.c.line_pk.in_([l.pk for l in lines]))
                              .order_by(t.line_segments.c.line_pk, t.line_segments.c.seq)):
            segs.setdefault(s.line_pk, []).append(Segment(s.start, s.end_excl, s.mrr, s.quantity))
    return order, [(l.pk, activated_line(l, order_id, segs.get(l.pk, []))) for l in lines]


def activated_line(l, order_id: str, segments: Sequence[Segment]) -> ActivatedLine:
    """Rebuild the engine's view of a stored line."""
    return ActivatedLine(
        order=order_id, id=l.id, seq=l.seq, action=Action(l.action), product=l.product,
        product_name=l.product_name, item=l.item, item_kind=Provisioning(l.item_kind), quantity=l.quantity,
        unit_price=l.unit_price, price_period=PricePeriod(l.price_period),
        list_price_monthly=l.list_price_monthly, start=l.start, end=l.end,
        billing_frequency=BillingFrequency(l.billing_frequency), credit_eligible=l.credit_eligible,
        change_category=ChangeCategory(l.change_category), segments=tuple(segments),
        one_time_amount=l.one_time_amount, bill_cycle_day=l.bill_cycle_day)


# --- background job outputs ----------------------------------------------------------------------

def credit_balances(conn: Connection, account: str) -> dict[tuple[str, str], Decimal]:
    """What is left of an account's credit per currency: grants minus every drawdown."""
    out: dict[tuple[str, str], Decimal] = {}
    for r in conn.execute(select(t.credits.c.currency, t.credits.c.amount).where(t.credits.c.account == account)):
        out[(account, r.currency)] = out.get((account, r.currency), Decimal(0)) + r.amount
    for r in conn.execute(select(t.credit_drawdowns.c.currency, t.credit_drawdowns.c.amount)
                          .where(t.credit_drawdowns.c.account == account)):
        out[(account, r.currency)] = out.get((account, r.currency), Decimal(0)) - r.amount
    return out


def has_drawdowns(conn: Connection, order_id: str) -> bool:
    """True once credit review has recorded drawdowns for the order."""
    return conn.execute(select(t.credit_drawdowns.c.line_pk)
                        .where(t.credit_drawdowns.c.order_id == order_id).limit(1)).first() is not None


def save_drawdowns(conn: Connection, drawdowns: Sequence[Drawdown], pks: dict[str, int]) -> None:
    """Record credit drawdowns (one per line at most: the primary key refuses a second)."""
    if drawdowns:
        conn.execute(insert(t.credit_drawdowns), [
            dict(line_pk=pks[d.line], order_id=d.order, account=d.account, currency=d.currency,
                 amount=d.amount, net_amount=d.net_amount) for d in drawdowns])


def replace_line_metrics(conn: Connection, rows: Sequence[dict]) -> None:
    """Write subscription metrics of lines (mrr, tcv), replacing earlier ones."""
    pks = [r["line_pk"] for r in rows]
    if pks:
        conn.execute(delete(t.line_metrics).where(t.line_metrics.c.line_pk.in_(pks)))
        conn.execute(insert(t.line_metrics), list(rows))


def refresh_item_metrics(conn: Connection, item_ids: Iterable[str]) -> None:
    """Recompute each item's TCV as the sum of its lines' TCV (only lines whose metrics exist)."""
    for item_id in set(item_ids):
        total = conn.execute(select(func.sum(t.line_metrics.c.tcv))
                             .select_from(t.line_metrics.join(t.order_lines,
                                                              t.order_lines.c.pk == t.line_metrics.c.line_pk))
                             .where(t.order_lines.c.item == item_id)).scalar()
        conn.execute(delete(t.item_metrics).where(t.item_metrics.c.item == item_id))
        conn.execute(insert(t.item_metrics).values(item=item_id, tcv=total if total is not None else Decimal(0)))


def replace_order_metrics(conn: Connection, pks: Sequence[int], metrics: Sequence[tuple[int, OrderMetric]],
                          schedules: Sequence[tuple[int, BillingPeriod]]) -> None:
    """Write order metrics and billing schedules of these lines, replacing earlier ones."""
    if not pks:
        return
    conn.execute(delete(t.order_metrics).where(t.order_metrics.c.line_pk.in_(pks)))
    conn.execute(delete(t.billing_periods).where(t.billing_periods.c.line_pk.in_(pks)))
    counter: dict[tuple[int, str], int] = {}
    rows = []
    for pk, m in metrics:
        seq = counter.get((pk, m.metric), 0)
        counter[(pk, m.metric)] = seq + 1
        rows.append(dict(line_pk=pk, metric=m.metric, seq=seq, amount=m.amount, start=m.start, end=m.end,
                         type=m.type, generated_reason=m.generated_reason))
    if rows:
        conn.execute(insert(t.order_metrics), rows)
    sched = [dict(line_pk=pk, seq=i, start=p.start, end=p.end, amount=p.amount)
             for i, (pk, p) in enumerate(schedules)]
    if sched:
        conn.execute(insert(t.billing_periods), sched)


def lines_with_arr_rows(conn: Connection, pks: Sequence[int]) -> set[int]:
    """Which of these lines already have ARR rows (rows are written once, never changed)."""
    if not pks:
        return set()
    return set(conn.execute(select(t.arr_rows.c.line_pk).where(t.arr_rows.c.line_pk.in_(pks)).distinct()).scalars())


def insert_arr_rows(conn: Connection, rows: Iterable[tuple[int, ArrRow]]) -> int:
    """Insert ARR rows; returns how many."""
    batch = [dict(line_pk=pk, period_start=r.period_start, period_end=r.period_end,
                  opening_cmrr=r.opening_cmrr, closing_cmrr=r.closing_cmrr,
                  opening_arr=r.opening_arr, closing_arr=r.closing_arr) for pk, r in rows]
    if batch:
        conn.execute(insert(t.arr_rows), batch)
    return len(batch)


def get_meta(conn: Connection, key: str) -> str | None:
    """A stored setting of the store itself."""
    return conn.execute(select(t.meta.c.value).where(t.meta.c.key == key)).scalar()


def set_meta(conn: Connection, key: str, value: str) -> None:
    """Store a setting of the store itself."""
    conn.execute(delete(t.meta).where(t.meta.c.key == key))
    conn.execute(insert(t.meta).values(key=key, value=value))
