"""The fiscal calendar of the Salesforce Period records taken in (SPEC section 8)."""
from __future__ import annotations

from sqlalchemy import Engine, select

from connector.engine.fiscal import ExplicitFiscalCalendar, FiscalCalendar
from connector.errors import FiscalCalendarError
from connector.store import schema as t


class StoreCalendar(FiscalCalendar):
    """The fiscal calendar of the Period records taken in, read from the store when first needed.

    `refresh()` makes it read again (after a sync cycle took new periods in). Until periods
    arrive, using it is an error that says so, never a silent fallback.
    """

    def __init__(self, store: Engine, year_named_by: str = "end"):
        self.store = store
        self.year_named_by = year_named_by
        self._calendar: ExplicitFiscalCalendar | None = None

    def refresh(self) -> None:
        self._calendar = None

    def _get(self) -> ExplicitFiscalCalendar:
        if self._calendar is None:
            self._calendar = salesforce_calendar(self.store, self.year_named_by)
        return self._calendar

    def resolved(self) -> ExplicitFiscalCalendar:
        return self._get()

    def label(self, period, by):
        return self._get().label(period, by)

    def periods_touching(self, start, end_excl):
        return self._get().periods_touching(start, end_excl)

    def period_of(self, day):
        return self._get().period_of(day)

    def span_touching(self, start, end_excl):
        return self._get().span_touching(start, end_excl)

    def check_covers(self, first, last):
        return self._get().check_covers(first, last)

    def fingerprint(self) -> str:
        return self._get().fingerprint()

    def last_day(self):
        return self._get().last_day()

    def group_start(self, period, by):
        return self._get().group_start(period, by)

    def group_end(self, period, by):
        return self._get().group_end(period, by)


def salesforce_calendar(store: Engine, year_named_by: str = "end") -> ExplicitFiscalCalendar:
    """The fiscal calendar from Salesforce's monthly Period records taken in, with their labels
    (FullyQualifiedLabel, e.g. "January FY2023": a month's name, and its fiscal year's)."""
    with store.connect() as conn:
        rows = [(r.start, r.end, r.fiscal_year, r.quarter, r.label) for r in conn.execute(select(t.fiscal_periods))]
    if not rows:
        raise FiscalCalendarError("no fiscal periods have been read from Salesforce yet",
                                  hint="check that the org defines fiscal periods (Setup → Fiscal Year) "
                                       "and that Period is in [sync] objects")
    return ExplicitFiscalCalendar.from_rows(rows, source="Salesforce Period records", year_named_by=year_named_by)
