"""Evergreen lines (SPEC section 7): materialized up to a horizon, extended as time passes.

An evergreen `new` line has no end: it runs until cancelled. The engine materializes it up to a
horizon, `[engine] evergreen_horizon_months` months ahead: its `end` (and its subscription's) is the
horizon's last day, and the pieces that reach it run on past it. ARR rows exist up to the fiscal
period holding the horizon (its closing counts the line as running on); TCV, TCB and ELP cover the
line's start up to the horizon, inclusive.
Activation puts the first horizon that many months after the line's start, `horizon(start)`
(activation is pure: it knows no "today"); `extend_line` moves it to `horizon(today)` as time passes.

Lines that change an evergreen subscription up to its horizon (a co-termed update; a cancellation
or a `terms` line that gives it an end, whose removals run on past the horizon too) are marked
evergreen as well. A cancelled or ended subscription is no longer evergreen: its lines stay where
they are, and their rows add up to zero past the cancellation.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import replace

from connector.engine.dates import ONE_DAY, add_months
from connector.engine.model import ActivatedLine
from connector.engine.settings import EngineSettings


def horizon(day: dt.date, settings: EngineSettings) -> dt.date:
    """The last day evergreen lines are materialized to on `day`: `day` + the horizon's months.

    12 months after 2024-03-10 is 2025-03-10; after 2024-06-30 (a month end), 2025-06-30. Activation
    uses it from the line's start; the extension job from today.
    """
    return add_months(day, settings.evergreen_horizon_months)


def extend_line(line: ActivatedLine, through: dt.date) -> ActivatedLine | None:
    """The evergreen line materialized up to `through`, or None when it already reaches it.

    The pieces that reached the old horizon now reach the new one; the others are unchanged.
    """
    if not line.evergreen or through <= line.end:
        return None
    old_excl, new_excl = line.end + ONE_DAY, through + ONE_DAY
    segments = tuple(replace(s, end_excl=new_excl) if s.end_excl == old_excl else s for s in line.segments)
    return replace(line, end=through, segments=segments)
