"""The import's progress bar shows its phases (validating, activating, jobs) rather than sitting at
0/N while it validates and at N/N while jobs run (issue 10)."""
from __future__ import annotations

import re

from cli_support import ACCOUNTS, PRODUCTS, revsync, workdir, write_doc


def _orders(n: int) -> dict:
    return {"accounts": ACCOUNTS, "products": PRODUCTS, "orders": [
        {"id": f"O-{i}", "account": "A", "owner": "Chloe", "booked_on": "2023-01-01", "currency": "USD",
         "lines": [{"id": f"OP-{i}", "action": "new", "product": "SEAT", "subscription": f"S-{i}", "quantity": 1,
                    "unit_price": "100", "start": "2023-01-15", "end": "2024-01-14"}]} for i in range(n)]}


def test_phases_in_order_on_a_terminal(tmp_path):
    wd = workdir(tmp_path, "wd")
    doc = write_doc(wd / "orders.json", _orders(120))
    result = revsync(wd, "import", str(doc), env={"FORCE_COLOR": "1", "TERM": "xterm", "COLUMNS": "100"})
    assert result.code == 0, result.stderr
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stderr)
    shown = re.findall(r"([123])/3 (validating 120 order\(s\)|activating orders|running background jobs)", screen)
    phases = list(dict.fromkeys(n for n, _ in shown))
    assert phases == ["1", "2", "3"], screen
    # the activating phase counts the orders to activate: 0/120 when it starts
    assert re.search(r"2/3 activating orders\s.*\b0/120\b", screen), screen
    assert "120 order(s) activated" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stdout)


def test_no_progress_bar_in_a_pipe(tmp_path):
    wd = workdir(tmp_path, "wd")
    doc = write_doc(wd / "orders.json", _orders(3))
    result = revsync(wd, "import", str(doc))
    assert result.code == 0 and result.stderr == ""
