"""The fiscal calendar as the store knows it, for a console started without the configuration."""
from __future__ import annotations

from sqlalchemy import Engine

from connector.engine.fiscal import FiscalCalendar, StandardFiscalCalendar
from connector.errors import FiscalCalendarError
from connector.store import repository as repo


def calendar_from_store(store: Engine) -> FiscalCalendar | None:
    """The calendar the ARR rows were made on, when the store can tell: a standard calendar's start
    month (its fingerprint `standard:<month>`), or the Salesforce Period records taken in; else None
    (periods defined in the configuration are only known from it)."""
    with store.connect() as conn:
        fingerprint = repo.get_meta(conn, "fiscal_calendar") or ""
    if fingerprint.startswith("standard:"):
        return StandardFiscalCalendar(int(fingerprint.split(":", 1)[1]))
    from connector.ingest import salesforce_calendar

    try:
        return salesforce_calendar(store)
    except FiscalCalendarError:
        return None
