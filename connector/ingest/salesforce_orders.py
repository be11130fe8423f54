"""A mapped Salesforce Order and its items through the order model (connector.orders), as an import file's
orders are: its values, its problems, the engine order; and the activation queue's JSON read back."""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Sequence

from pydantic import ValidationError
from sqlalchemy import Connection, select

from connector import orders
from connector.engine import checks
from connector.engine.model import Action, OrderInput
from connector.errors import Problem, SkippableError
from connector.orders import LineDoc, OrderDoc
from connector.store import schema as t


#: mapped values that are days or times, written to the activation queue as ISO text
_DAYS = ("booked_on", "start", "end", "contract_effective", "service_activation", "customer_acceptance")


def _revive(values: dict[str, Any]) -> dict[str, Any]:
    """Mapped values read back from the activation queue's JSON: days and times as they were mapped."""
    out = dict(values)
    for key in _DAYS:
        if isinstance(out.get(key), str) and len(out[key]) == 10:
            out[key] = dt.date.fromisoformat(out[key])
    if isinstance(out.get("_modstamp"), str):
        out["_modstamp"] = dt.datetime.fromisoformat(out["_modstamp"])
    return out


def _held_uses(conn: Connection, order: dict[str, Any], items: Any) -> str:
    """What an order uses that is itself in quarantine (its account, its products), for its reason."""
    used = [("Account", order.get("account"))]
    if isinstance(items, list):
        used += [("Product2", i.get("product")) for i in items]
    found = []
    for sobject, record_id in dict.fromkeys(u for u in used if u[1]):
        reason = conn.execute(select(t.quarantine.c.reason).where(
            t.quarantine.c.object == sobject, t.quarantine.c.record_id == str(record_id),
            t.quarantine.c.released_at.is_(None))).scalar()
        if reason is not None:
            found.append(f"{sobject} {record_id} is in quarantine ({reason.splitlines()[0]})")
    if not found:
        return ""
    return "\n  because " + "; ".join(found) + ": fix it in Salesforce and the order is tried again"


def resolve_items(items: Sequence[dict[str, Any]], written: dict[str, str]) -> list[dict[str, Any]]:
    """Lines naming a written record by its Salesforce Id name the engine's item instead."""
    return [i | {"subscription": written[str(i["subscription"])]} if str(i.get("subscription")) in written else i
            for i in items]


#: Where a Salesforce order gets its currency, for the message of an order without one.
CURRENCY_HINT = ("map the order's currency in mappings/Order.toml: `currency = \"CurrencyIsoCode\"` in a "
                 "multi-currency org, or `currency = { constant = \"USD\" }` with your org's currency in a "
                 "single-currency one; the order is taken again when it changes in Salesforce")


def _given(values: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The mapped values the order model has fields for; a blank Salesforce field is a value not given."""
    return {k: values[k] for k in names if k != "lines" and values.get(k) is not None and values.get(k) != ""}


def line_values(item: dict[str, Any]) -> dict[str, Any]:
    """A mapped Salesforce order item as the order model's line (connector.orders.LineDoc) takes it."""
    values = _given(item, LineDoc.model_fields)
    # a blank quote action is Add New Product (mappings/OrderItem.toml gives it as the default too)
    values.setdefault("action", Action.NEW.value)
    return values


def order_values(order: dict[str, Any], items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A mapped Salesforce Order and its mapped items as the order model (connector.orders.OrderDoc) takes them,
    lines in Salesforce's order; a draft has no booking date yet, and takes its start instead."""
    values = _given(order, OrderDoc.model_fields)
    if "booked_on" not in values and order.get("start") not in (None, ""):
        values["booked_on"] = order["start"]
    values["lines"] = [line_values(i) for i in sorted(items, key=lambda i: (str(i.get("line_number") or ""), i["id"]))]
    return values


#: the line an order taken in before its items is checked with (the model needs one); never kept
_NO_LINE = LineDoc.model_construct(id="-", action=Action.NEW, product="-")


def checked_order(order: dict[str, Any], items: Sequence[dict[str, Any]], *,
                  check: bool = True) -> tuple[OrderInput | None, list[Problem]]:
    """An engine order from a mapped Salesforce Order and its mapped items through the order model, as an
    import file's orders are (connector.orders), or None and every problem of it (each placed `line <id>,
    field <name>` or `field <name>`). `check` adds the engine's record checks (connector.engine.checks).

    An order without items is checked without them (it is taken in before its items; activating it
    is refused). Raises SkippableError for an order whose mapping gives no currency: no currency is
    assumed for an order, and the mapping is what to fix."""
    values = order_values(order, items)
    if "currency" not in values:
        raise SkippableError(f"order {order.get('id')}: no currency: the mapping gives the order none, and "
                             "none is assumed", hint=CURRENCY_HINT)
    try:
        if values["lines"]:
            doc = OrderDoc.model_validate(values)
        else:
            doc = OrderDoc.model_validate({**values, "lines": [_NO_LINE]}).model_copy(update={"lines": []})
    except ValidationError as exc:
        return None, model_problems(values, exc)
    built = orders.order_input(doc)
    return built, checks.order_problems(built) if check else []


def order_input(order: dict[str, Any], items: Sequence[dict[str, Any]], *, check: bool = True) -> OrderInput:
    """An engine order from a mapped Salesforce Order and its mapped items; Load Original Product lines are gone.

    The order passes the model and the checks an import file's orders pass (`checked_order`): a value
    the import would refuse raises SkippableError listing every problem, and the order is held.
    """
    built, problems = checked_order(order, items, check=check)
    if problems or built is None:
        raise SkippableError(f"order {order.get('id')}: {checks.describe(problems)}",
                             hint="fix the values in Salesforce (the order is taken again when it changes)")
    return built


def model_problems(values: dict[str, Any], exc: ValidationError) -> list[Problem]:
    """The order model's problems with mapped values; a required field is one the mapping gives no value."""
    return [Problem(p.where, "the mapping gives no value" if e["type"] == "missing" else p.message)
            for e, p in zip(exc.errors(), orders.problems(values, exc))]
