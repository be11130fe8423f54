"""Wiring: configuration → store, calendar, settings, clock and job runner, for the commands."""
from __future__ import annotations

import logging
from pathlib import Path
from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import Engine

from connector.clock import Clock, SystemClock
from connector.config import Config
from connector.errors import FatalError, FiscalCalendarError
from connector.engine.fiscal import FiscalCalendar
from connector.engine.settings import EngineSettings
from connector.jobs import JobContext, JobRunner
from connector.store import repository as repo
from connector.store.db import open_store

log = logging.getLogger(__name__)


@dataclass
class App:
    """Everything a command needs, built lazily from the configuration."""

    config: Config
    clock: Clock = SystemClock()
    #: a command that only reads (report, status, quarantine, outbox, jobs): a store that does not
    #: exist yet is not created, the command says so instead (StoreError, exit 2)
    read_only: bool = False
    #: warn when the fiscal calendar differs from the ARR rows' (off for `regenerate arr`, which fixes it)
    warn_calendar: bool = True

    @cached_property
    def store(self) -> Engine:
        if self.read_only:
            self._require_store()
        engine = open_store(self.config.store_url())
        # cached before the calendar check: a calendar read from Period records needs the store
        self.__dict__["store"] = engine
        self._check_calendar(engine)
        return engine

    @cached_property
    def calendar(self) -> FiscalCalendar:
        return self.current_calendar()

    def current_calendar(self) -> FiscalCalendar:
        """The fiscal calendar: from configuration, or from the Period records taken in (read lazily)."""
        if self.config.fiscal.source == "salesforce":
            from connector.ingest import StoreCalendar

            return StoreCalendar(self.store, self.config.fiscal.year_named_by)
        return self.config.fiscal_calendar()

    def refresh_calendar(self) -> None:
        """Look again at the Period records taken in (when Salesforce is the calendar's source)."""
        refresh = getattr(self.calendar, "refresh", None)
        if refresh is not None:
            refresh()

    @cached_property
    def settings(self) -> EngineSettings:
        return self.config.engine_settings()

    @cached_property
    def runner(self) -> JobRunner:
        return JobRunner(self.store, JobContext(self.calendar, self.settings,
                                                write_back=self.config.salesforce is not None,
                                                clock=self.clock), self.clock,
                         max_attempts=self.config.jobs.max_attempts,
                         backoff_seconds=self.config.jobs.backoff_seconds,
                         # `revsync worker` processes run the jobs (PostgreSQL only: Config checks it)
                         deferred=self.config.workers.enabled)

    def salesforce_settings(self):
        """The validated [salesforce] settings with their secrets (ConfigError when missing or wrong)."""
        from connector.salesforce.settings import load_settings

        return load_settings(self.config.salesforce, source=self.config.source, base_dir=self.config.base_dir)

    def salesforce_client(self, session=None):
        """A Salesforce client for the configured org."""
        from connector.salesforce.client import SalesforceClient

        return SalesforceClient(self.salesforce_settings(), session=session, clock=self.clock)

    def mappings_dir(self) -> Path:
        """The folder of field mapping files: [sync] mappings_dir, relative to the configuration file.

        Without a configuration that names one, the `mappings/` shipped beside the package is used
        when the working directory has none.
        """
        folder = self.config.base_dir / self.config.sync.mappings_dir
        shipped = Path(__file__).resolve().parent.parent / "mappings"
        if not folder.exists() and self.config.sync.mappings_dir == "mappings" and shipped.exists():
            return shipped
        return folder

    @cached_property
    def mappings(self):
        """The field mappings, validated offline (ConfigError listing every problem)."""
        from connector.mapping import load_mappings

        return load_mappings(self.mappings_dir())

    def _require_store(self) -> None:
        """Raise StoreError (exit 2) when the configured store holds no revsync data yet; create nothing."""
        from sqlalchemy import create_engine, inspect

        from connector.store.db import StoreError, sqlite_path, where

        probe = create_engine(self.config.store_url())
        try:
            path = sqlite_path(probe)
            if path is not None:
                missing = not path.exists()
            elif probe.dialect.name == "sqlite":
                missing = True  # an in-memory store is always empty
            else:
                with probe.connect() as conn:
                    missing = not inspect(conn).has_table("orders")
            place = where(probe)
        finally:
            probe.dispose()
        if missing:
            whose = f" for org {self.config.org}" if self.config.org else ""
            raise StoreError(f"no store yet{whose} at {place} ({self.config.source}): nothing has been imported or "
                             "synced with this configuration",
                             hint="run `revsync import FILE` or `revsync sync --once` first, or point "
                                  "--config (REVSYNC_CONFIG) at the configuration whose [store] url holds "
                                  "your data")

    def _check_calendar(self, engine: Engine) -> None:
        """Note (and warn) when the ARR rows were made on another fiscal calendar than the configured one."""
        self.__dict__["calendar_mismatch"] = None
        if self.config.fiscal.source == "salesforce":
            return  # new Period records only extend it; ingest warns when a period moves
        with engine.connect() as conn:
            stored = repo.get_meta(conn, "fiscal_calendar")
        try:
            current = self.calendar.fingerprint()
        except FiscalCalendarError:
            return  # no Salesforce Period records yet: nothing to compare with
        #: True when the ARR rows were made on another fiscal calendar than the configured one
        self.calendar_changed = stored is not None and stored != current
        if self.calendar_changed:
            self.__dict__["calendar_mismatch"] = (stored, current)
        if self.calendar_changed and self.warn_calendar:
            log.warning("the fiscal calendar in %s differs from the one the ARR rows were made on; "
                        "run `revsync regenerate arr` to rebuild them", self.config.source)

    def check_arr_rows_current(self) -> None:
        """Refuse (FatalError, exit 1) while the ARR rows are on another fiscal calendar than the
        configured one: reports built from them would show periods that are not the calendar's.

        A calendar from the configuration is compared by fingerprint (free). A calendar of
        Salesforce Period records grows as periods are added, so there every period the rows use
        must still be a period of the calendar, with the same start and end (one scan of the rows).
        """
        self.store  # opening the store compares the calendars
        mismatch = self.__dict__.get("calendar_mismatch")
        if mismatch is not None:
            problem = (f"the ARR-by-period rows were made on another fiscal calendar ({mismatch[0]}) than the one "
                       f"{self.config.source} configures ({mismatch[1]})")
        elif self.config.fiscal.source == "salesforce":
            problem = self._rows_off_calendar()
        else:
            problem = None
        if problem is not None:
            raise FatalError(f"{problem}; reports over them would show wrong periods",
                             hint="run `revsync regenerate arr` to rebuild the rows on the current fiscal calendar, "
                                  "then run the report again")

    def _rows_off_calendar(self) -> str | None:
        """The first period of the ARR rows that is not a period of the calendar, described; else None."""
        from sqlalchemy import select

        from connector.store import schema as t

        with self.store.connect() as conn:
            spans = conn.execute(select(t.arr_rows.c.period_start, t.arr_rows.c.period_end).distinct()
                                 .order_by(t.arr_rows.c.period_start)).all()
        if not spans:
            return None
        self.refresh_calendar()
        for start, end in spans:
            try:
                period = self.calendar.period_of(start)
            except FiscalCalendarError:
                return (f"the ARR-by-period rows use the fiscal period {start}..{end}, which the Salesforce "
                        "Period records no longer define")
            if (period.start, period.end) != (start, end):
                return (f"the ARR-by-period rows use the fiscal period {start}..{end}, but the Salesforce Period "
                        f"records now define {period.start}..{period.end}")
        return None
