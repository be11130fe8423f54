"""The engine benchmark's summary says how many rounds met each of issue 11's goals."""
from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "engine_bench", Path(__file__).resolve().parents[1] / "bench" / "engine_bench.py")
assert _spec is not None and _spec.loader is not None
engine_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(engine_bench)

# two rounds, both stores: (import seconds, raw insert of all rows, CPU floor); PostgreSQL has no raw figures
ROUNDS = [
    {("sqlite", True, "streamed"): (10.2, 5.7, 9.3), ("postgresql", True, "streamed"): (17.0, None, None)},
    {("sqlite", True, "streamed"): (11.0, 5.4, 9.9), ("postgresql", True, "streamed"): (23.0, None, None)},
]


def test_each_goal_is_counted_over_the_rounds(capsys):
    engine_bench._summary(ROUNDS, [True], ["streamed"], engine_bench.GOAL_LINES)
    out = capsys.readouterr().out
    assert "sqlite: import under 30 s: met in 2 of 2 rounds (median 10.60 s, worst 11.00 s)" in out
    # 10.2 / 5.7 = 1.79, 11.0 / 5.4 = 2.04: the second round misses it
    assert "sqlite: within 2x of the raw insert of all rows: met in 1 of 2 rounds (median 1.91 x, worst 2.04 x)" in out
    # 17.0 / 10.2 = 1.67, 23.0 / 11.0 = 2.09
    assert "postgresql within 2x of sqlite: met in 1 of 2 rounds (median 1.88 x, worst 2.09 x)" in out


def test_no_goal_is_claimed_at_other_line_counts(capsys):
    engine_bench._summary(ROUNDS, [True], ["streamed"], 10_000)
    out = capsys.readouterr().out
    assert "sqlite: import 10.20, 11.00 s" in out
    assert "goals" not in out and "met in" not in out


def test_no_goal_is_claimed_for_one_core(capsys):
    one_core = [{("sqlite", False, "streamed"): figures[("sqlite", True, "streamed")]} for figures in ROUNDS]
    engine_bench._summary(one_core, [False], ["streamed"], engine_bench.GOAL_LINES)
    assert "met in" not in capsys.readouterr().out
