"""Configuration: TOML file → validated settings, every problem named by key and file at once.

Where it comes from: `--config PATH`, else `REVSYNC_CONFIG`, else `./config.toml` if present,
else built-in defaults (a SQLite file `revsync.db` in the working directory, calendar fiscal year).
Secrets never live here; see the `[salesforce]` table in config.example.toml.
"""
from __future__ import annotations

import csv
import datetime as dt
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from connector.engine.fiscal import ExplicitFiscalCalendar, FiscalCalendar, StandardFiscalCalendar
from connector.engine.model import TriggerDate
from connector.engine.settings import ALL_ORDER_METRICS, EngineSettings
from connector.errors import ConfigError, FiscalCalendarError, Problem
from connector.server_settings import ServerSettings

DEFAULT_FILE = "config.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreConfig(_Section):
    """[store]: where the engine keeps its records."""

    url: str = "sqlite:///revsync.db"

    @field_validator("url")
    @classmethod
    def _supported(cls, value: str) -> str:
        # checked here, so that a wrong URL is a configuration error naming the key, not a driver's
        # traceback at the first connection
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(f"{value!r} is not a database URL (e.g. sqlite:///revsync.db or "
                             "postgresql+psycopg://user@host/db)") from None
        if url.get_backend_name() not in _DIALECTS:
            raise ValueError(f"the store must be SQLite or PostgreSQL, not {url.get_backend_name()!r}")
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            folder = Path(url.database).parent
            if not folder.is_dir():
                raise ValueError(f"the folder {str(folder)!r} of the SQLite file does not exist; create it or "
                                 "change the path")
        return value


_DIALECTS = ("sqlite", "postgresql")


class FiscalConfig(_Section):
    """[fiscal]: a standard year by start month, an explicit periods file, or Salesforce's Period records."""

    source: Literal["config", "salesforce"] = "config"
    start_month: int = Field(default=1, ge=1, le=12)
    periods_file: str | None = None
    #: how reports name a fiscal year (FY2024): by the calendar year it ends in, or starts in.
    #: Only names change; a periods file's `fiscal_year` column and Salesforce's labels name their own.
    year_named_by: Literal["end", "start"] = "end"


class EngineConfig(_Section):
    """[engine]: activation and metric settings."""

    service_start_trigger: TriggerDate = TriggerDate.SERVICE_ACTIVATION
    default_bill_cycle_day: int = Field(default=1, ge=1, le=31)
    order_metrics: list[Literal["mrr", "tcv", "tcb", "elp", "quantity"]] = list(ALL_ORDER_METRICS)
    sync_draft_orders_with_primary_quotes: bool = False
    #: evergreen lines (no end) get rows and metrics up to this many months ahead (SPEC section 7)
    evergreen_horizon_months: int = Field(default=12, ge=1, le=120)


class JobsConfig(_Section):
    """[jobs]: background job retries."""

    max_attempts: int = Field(default=5, ge=1)
    backoff_seconds: float = Field(default=30.0, ge=0)


class SyncConfig(_Section):
    """[sync]: the daemon's loop and what it reads."""

    interval_seconds: float = Field(default=60.0, gt=0)
    lookback_seconds: float = Field(default=300.0, ge=0)
    objects: list[Literal["Period", "Product2", "Account", "Opportunity", "Quote", "QuoteLineItem",
                          "Order", "OrderItem"]] = ["Period", "Product2", "Account", "Opportunity", "Quote",
                                                    "QuoteLineItem", "Order", "OrderItem"]
    mappings_dir: str = "mappings"
    #: for orgs without automation of their own: the connector creates and activates the order of
    #: a Closed Won opportunity's primary quote (SPEC section 2)
    create_orders_from_won_quotes: bool = False
    #: the writer lease's time to live: a daemon silent this long (killed, frozen) is taken over
    lease_seconds: float = Field(default=300.0, ge=1)
    #: the longest wait between two tries while Salesforce is unreachable or failing
    max_backoff_seconds: float = Field(default=300.0, ge=1)
    #: how the daemon hears of changes besides polling, which always runs: "push" (Outbound Messages
    #: to [server]) and "cdc" (Change Data Capture through the Pub/Sub API)
    source: list[Literal["poll", "push", "cdc"]] = ["poll", "push"]
    #: one custom channel (e.g. "/data/RevsyncChanges__chn") instead of one channel per object
    cdc_channel: str = Field(default="", pattern=r"^(/data/\w+)?$")
    #: while every change event stream is healthy, polling runs this often (the safety net)
    cdc_poll_interval_seconds: float = Field(default=3600.0, gt=0)
    #: events a stream asks for at a time (flow control)
    cdc_batch_size: int = Field(default=100, ge=1, le=1000)

    @field_validator("source", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class WorkersConfig(_Section):
    """[workers]: `revsync worker` processes on a PostgreSQL store (connector.workers)."""

    #: the daemon (and `revsync import`) leave background jobs to the workers; PostgreSQL only
    enabled: bool = False
    #: a worker silent this long (killed, frozen, cut off) loses its accounts to another worker
    claim_seconds: float = Field(default=60.0, ge=1)
    #: accounts a worker claims at a time (each processed whole, its orders in activation order)
    accounts_per_claim: int = Field(default=200, ge=1, le=10_000)
    #: how long an idle worker waits before looking for work again
    poll_seconds: float = Field(default=2.0, gt=0)


class ReportsConfig(_Section):
    """[reports]: defaults for report commands."""

    format: Literal["table", "csv", "json"] = "table"


class Config(_Section):
    """The whole configuration."""

    store: StoreConfig = StoreConfig()
    fiscal: FiscalConfig = FiscalConfig()
    engine: EngineConfig = EngineConfig()
    jobs: JobsConfig = JobsConfig()
    reports: ReportsConfig = ReportsConfig()
    sync: SyncConfig = SyncConfig()
    workers: WorkersConfig = WorkersConfig()
    #: the health, metrics and Outbound Message endpoint of `revsync sync`; off without the table
    server: ServerSettings | None = None
    #: validated by connector.salesforce.settings.load_settings when a command needs the org
    salesforce: dict[str, Any] | None = None

    #: the org this configuration is for, when the file names several (`[orgs.NAME]`, `--org NAME`):
    #: its data lives apart in the shared store (connector.store.db.org_store)
    org: str | None = Field(default=None, exclude=True)
    #: where the configuration came from, for messages ("built-in defaults" when no file)
    source: str = Field(default="built-in defaults", exclude=True)
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    def engine_settings(self) -> EngineSettings:
        """The engine's view of these settings."""
        return EngineSettings(service_start_trigger=self.engine.service_start_trigger,
                              default_bill_cycle_day=self.engine.default_bill_cycle_day,
                              order_metrics=tuple(self.engine.order_metrics),
                              evergreen_horizon_months=self.engine.evergreen_horizon_months)

    def fiscal_calendar(self) -> FiscalCalendar:
        """The fiscal calendar this configuration describes."""
        if self.fiscal.periods_file is None:
            return StandardFiscalCalendar(self.fiscal.start_month, self.fiscal.year_named_by)
        return load_periods_file(self.base_dir / self.fiscal.periods_file, self.fiscal.year_named_by)

    def store_url(self) -> str:
        """The store URL, with a relative SQLite path taken from the working directory; with an org,
        that org's part of the store (its own PostgreSQL schema, or its own SQLite file)."""
        if self.org is None:
            return self.store.url
        from connector.store.db import org_store_url

        return org_store_url(self.store.url, self.org)


def load_periods_file(path: Path, year_named_by: str = "end") -> ExplicitFiscalCalendar:
    """Read a CSV of fiscal month periods: `start,end` (inclusive), optional `fiscal_year,quarter`."""
    problems: list[Problem] = []
    rows = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"start", "end"} - set(reader.fieldnames or ())
            if missing:
                raise ConfigError(str(path), [Problem(str(path), f"missing column(s) {sorted(missing)}; "
                                                      "the header must be start,end[,fiscal_year,quarter]")],
                                  hint="add the header line start,end to the periods file")
            for n, row in enumerate(reader, start=2):
                try:
                    start = dt.date.fromisoformat(row["start"].strip())
                    end = dt.date.fromisoformat(row["end"].strip())
                    year = int(row["fiscal_year"]) if row.get("fiscal_year") else None
                    quarter = int(row["quarter"]) if row.get("quarter") else None
                except (ValueError, AttributeError) as exc:
                    problems.append(Problem(f"{path}:{n}", f"not a period ({exc}); use YYYY-MM-DD dates"))
                    continue
                rows.append((start, end, year, quarter))
    except FileNotFoundError:
        raise ConfigError("fiscal.periods_file", [Problem("fiscal.periods_file", f"file {path} does not exist")],
                          hint="fix [fiscal] periods_file, or remove it to use start_month") from None
    except OSError as exc:
        raise ConfigError("fiscal.periods_file", [Problem("fiscal.periods_file",
                                                          f"cannot read {path}: {exc.strerror or exc}")],
                          hint="fix [fiscal] periods_file, or remove it to use start_month") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [Problem(str(path), f"not UTF-8 at byte {exc.start} ({exc.reason})")],
                          hint="save the periods file as UTF-8") from None
    try:
        # the rows that could be read are checked too, so a bad row does not hide a gap or overlap
        calendar = ExplicitFiscalCalendar.from_rows(rows, source=str(path), year_named_by=year_named_by)
    except FiscalCalendarError as exc:
        problems.append(Problem(str(path), str(exc).removeprefix(f"{path}: ")))
    if problems:
        raise ConfigError(str(path), problems, hint="fix the periods file: one row per fiscal month, start,end "
                                                    "as YYYY-MM-DD, no gaps or overlaps")
    return calendar


def _problems(exc: ValidationError, source: str) -> list[Problem]:
    out = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        message = "unknown key (check its spelling against config.example.toml)" \
            if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        out.append(Problem(f"{source}: {key}", message))
    return out


def find_config_path(explicit: str | None) -> Path | None:
    """Which file to read: --config, else REVSYNC_CONFIG, else ./config.toml if present."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("REVSYNC_CONFIG")
    if env:
        return Path(env)
    default = Path.cwd() / DEFAULT_FILE
    return default if default.exists() else None


#: an org's name in `[orgs.NAME]` and `--org`: it names a PostgreSQL schema and a file suffix
ORG_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
#: the sections an `[orgs.NAME]` table may override (the store is shared by every org)
ORG_SECTIONS = ("fiscal", "engine", "jobs", "reports", "sync", "server", "salesforce", "workers")


def _for_org(data: dict[str, Any], org: str | None, source: str) -> dict[str, Any]:
    """The configuration of one org: the top-level tables, with its `[orgs.NAME]` tables laid over them."""
    orgs = data.pop("orgs", None)
    if orgs is None:
        if org is not None:
            raise ConfigError(source, [Problem(source, f"--org {org}: this file names no orgs (no [orgs.{org}] table)")],
                              hint=f"add an [orgs.{org}] table, or leave out --org (REVSYNC_ORG) for a one-org "
                                   "configuration")
        return data
    problems = []
    if not isinstance(orgs, dict) or not orgs:
        problems.append(Problem(f"{source}: orgs", "must hold one [orgs.NAME] table per org"))
    else:
        for name, table in orgs.items():
            if not ORG_NAME.match(name):
                problems.append(Problem(f"{source}: orgs.{name}", "an org's name is lower-case letters, digits and _ "
                                                                  "(at most 31, starting with a letter)"))
            elif not isinstance(table, dict):
                problems.append(Problem(f"{source}: orgs.{name}", "must be a table"))
            else:
                problems += [Problem(f"{source}: orgs.{name}.{key}",
                                     "not a section an org can have; the store is shared by every org"
                                     if key == "store" else "unknown section (check its spelling against "
                                     "config.example.toml)")
                             for key in table if key not in ORG_SECTIONS]
    if problems:
        raise ConfigError(source, problems, hint="see \"Many orgs\" in config.example.toml")
    names = sorted(orgs)
    if org is None:
        if len(names) > 1:
            raise ConfigError(source, [Problem(source, f"this file configures {len(names)} orgs ({', '.join(names)}): "
                                                       "say which one")],
                              hint=f"run with --org NAME (or set REVSYNC_ORG), e.g. --org {names[0]}")
        org = names[0]
    if org not in orgs:
        raise ConfigError(source, [Problem(source, f"--org {org}: no [orgs.{org}] table; the orgs are "
                                                   f"{', '.join(names)}")],
                          hint="use one of those names, or add the table")
    merged = dict(data)
    for key, table in orgs[org].items():
        base = data.get(key)
        merged[key] = {**base, **table} if isinstance(base, dict) and isinstance(table, dict) else table
    merged["org"] = org
    return merged


def org_names(explicit: str | None = None) -> list[str]:
    """The orgs a configuration file names (`[orgs.NAME]`), sorted; [] for a one-org file or none."""
    path = find_config_path(explicit)
    if path is None:
        return []
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        load_config(explicit)  # raises the same ConfigError every command gives
        return []
    orgs = data.get("orgs")
    return sorted(orgs) if isinstance(orgs, dict) else []


def load_config(explicit: str | None = None, org: str | None = None) -> Config:
    """Load and validate the configuration (of `org`, when the file names several); raise ConfigError
    listing every problem."""
    path = find_config_path(explicit)
    if path is None:
        if org is not None:
            raise ConfigError("--org", [Problem("--org", f"--org {org} needs a configuration file with [orgs.{org}]")],
                              hint="pass --config FILE (or REVSYNC_CONFIG), or leave out --org")
        return Config()
    source = str(path)
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(source, [Problem(source, "file not found")],
                          hint="pass an existing file to --config or REVSYNC_CONFIG") from None
    except OSError as exc:
        raise ConfigError(source, [Problem(source, f"cannot read the file: {exc.strerror or exc}")],
                          hint="pass a readable file to --config or REVSYNC_CONFIG") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [Problem(source, f"not UTF-8: byte 0x{exc.object[exc.start]:02x} at byte "
                                                   f"{exc.start} ({exc.reason})")],
                          hint="save the file as UTF-8 (TOML files are UTF-8)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [Problem(source, f"not valid TOML: {exc}")],
                          hint="fix the file (config.example.toml shows every key)") from None
    data = _for_org(data, org, source)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc, source),
                          hint="see config.example.toml for every key and its default") from None
    config.source = source
    config.base_dir = path.resolve().parent
    if config.workers.enabled and make_url(config.store.url).get_backend_name() != "postgresql":
        raise ConfigError(source, [Problem(f"{source}: workers.enabled", "workers share a PostgreSQL store; "
                                           "this [store] url is SQLite, which keeps the single-process mode")],
                          hint="set [workers] enabled = false (the daemon then runs the background jobs "
                               "itself), or move the store to PostgreSQL")
    if config.fiscal.periods_file is not None:
        config.fiscal_calendar()  # a broken periods file fails at start-up, not half-way
    return config
