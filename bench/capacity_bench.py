"""What the big-object capacity check and `revsync forecast` cost on a large store.

A synthetic SQLite store (tables only, no engine run): LINES monthly lines of 24 ARR rows each, a
tenth of them evergreen; half the lines already written to both big objects, the other half due.
Times `capacity.check` over every due (big object, line) pair (what the writer does once per flush
with rows due) and `capacity.forecast` over 12 months.

    .venv/bin/python bench/capacity_bench.py --lines 20000
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, insert  # noqa: E402

from connector import capacity  # noqa: E402
from connector.engine.dates import add_months  # noqa: E402
from connector.engine.fiscal import StandardFiscalCalendar  # noqa: E402
from connector.engine.settings import EngineSettings  # noqa: E402
from connector.store import schema as t  # noqa: E402


def build(url: str, lines: int) -> None:
    engine = create_engine(url)
    t.metadata.create_all(engine)
    start = dt.date(2025, 1, 1)
    zero = Decimal(0)
    with engine.begin() as conn:
        conn.execute(insert(t.accounts), [{"id": "A", "name": "A", "bill_cycle_day": 1, "tcv": zero}])
        for first in range(0, lines, 5000):
            chunk = range(first, min(first + 5000, lines))
            conn.execute(insert(t.order_lines), [dict(
                pk=n + 1, id=f"L{n}", order_id=f"O{n}", seq=1, action="new", product="P", product_name="P",
                customer_name="A", item=f"S{n}", item_kind="subscription", quantity=1, unit_price=1,
                price_period="month", list_price_monthly=1, start=start, end=add_months(start, 24) - dt.timedelta(1),
                billing_frequency="monthly", credit_eligible=False, change_category="New Business",
                one_time_amount=0, bill_cycle_day=1, tcv=zero, evergreen=n % 10 == 0) for n in chunk])
            conn.execute(insert(t.items), [dict(
                id=f"S{n}", kind="subscription", account="A", product="P", currency="USD", start=start,
                end=add_months(start, 24) - dt.timedelta(1), term_start=start, quantity=1, unit_price=1,
                price_period="month", bill_cycle_day=1, status="active", version=1, created_by=f"L{n}",
                last_line=f"L{n}", evergreen=n % 10 == 0) for n in chunk])
            conn.execute(insert(t.arr_rows), [dict(
                line_pk=n + 1, period_start=add_months(start, k), period_end=add_months(start, k + 1) - dt.timedelta(1),
                opening_cmrr=zero, closing_cmrr=zero, opening_arr=zero, closing_arr=zero)
                for n in chunk for k in range(24)])
            conn.execute(insert(t.big_object_rows), [dict(object=o, line_pk=n + 1, rows=24)
                                                     for n in chunk if n % 2 == 0 for o in capacity.BIG_OBJECTS])
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        began = time.perf_counter()
        build(url, args.lines)
        print(f"built {args.lines:,} lines, {24 * args.lines:,} ARR rows in {time.perf_counter() - began:.1f} s")
        engine = create_engine(url)
        due = [(o, n + 1) for n in range(args.lines) if n % 2 for o in capacity.BIG_OBJECTS]
        with engine.connect() as conn:
            began = time.perf_counter()
            result = capacity.check(conn, due, capacity.DEFAULT_CAPACITY)
            checked = time.perf_counter() - began
            print(f"check over {len(due):,} due pairs: {checked:.2f} s "
                  f"(held {result.held:,}, pending {result.pending:,}, exceeded {result.exceeded})")
            began = time.perf_counter()
            rows = capacity.forecast(conn, StandardFiscalCalendar(1), EngineSettings(), dt.date(2025, 6, 15), 12,
                                     capacity.DEFAULT_CAPACITY)
            print(f"forecast 12 months: {time.perf_counter() - began:.2f} s (org rows in the last month: "
                  f"{rows[-1]['org_rows']:,})")
        engine.dispose()


if __name__ == "__main__":
    main()
