"""The clock seam: the only place that reads the wall clock, so tests can freeze it."""
from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    """Tells the time in UTC."""

    def now(self) -> dt.datetime: ...

    def today(self) -> dt.date: ...


class SystemClock:
    """The real clock, always UTC."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)

    def today(self) -> dt.date:
        return self.now().date()


class FrozenClock:
    """A clock that stays where it is put; for tests and reproducible runs."""

    def __init__(self, at: dt.datetime):
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs an aware UTC datetime")
        self._at = at.astimezone(dt.timezone.utc)

    def now(self) -> dt.datetime:
        return self._at

    def today(self) -> dt.date:
        return self._at.date()

    def advance(self, delta: dt.timedelta) -> None:
        self._at += delta
