"""The `revsync` command."""
from __future__ import annotations

import datetime as dt
import logging
import sys
import tempfile
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from connector import capacity
from connector import chart as chart_module
from connector import reports
from connector.app import App
from connector.clock import SystemClock
from connector.config import Config, StoreConfig, load_config, org_names
from connector.errors import ConfigError, Problem, RevsyncError, TransientError, ValidationFailed
from connector.importer import Parsed, import_document, import_file, load_file, parse, read, scan_file
from connector.jobs import JobOutcome, extend_evergreen, regenerate_arr
from connector.render import object_to_json, print_error, print_rows
from connector.store.db import store_unavailable

EXIT_ERROR = 1  # something failed; the message says what is left and what to run
EXIT_INVALID = 2  # bad input or configuration; nothing was changed
EXIT_JOBS_FAILED = 3  # orders activated, but some background jobs failed: metrics are absent

#: `-h` as well as `--help`, on every command (sub-typers inherit the context settings)
HELP = {"help_option_names": ["-h", "--help"]}


def _flags_without_type() -> None:
    """Typer's rich help shows on/off flags as taking a value (`--once <bool>`, `--help <bool>`);
    its plain help does not. Show a flag's type as nothing, as click and the plain help do."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "_revsync", False):
        return

    def display_type_rich(self, ctx):
        if self.is_flag and self.metavar is None:
            return None
        return shown(self, ctx)

    display_type_rich._revsync = True
    TyperOption.display_type_rich = display_type_rich


_flags_without_type()

app = typer.Typer(add_completion=False, no_args_is_help=True, context_settings=HELP,
                  help="Keeps a Salesforce org and the revenue engine in step.")
jobs_app = typer.Typer(help="Background jobs: list them, retry failed ones.", invoke_without_command=True,
                       context_settings=HELP)
report_app = typer.Typer(help="Reports over the engine's records.", no_args_is_help=True, context_settings=HELP)
regenerate_app = typer.Typer(help="Rebuild derived records.", no_args_is_help=True, context_settings=HELP)
app.add_typer(jobs_app, name="jobs")
app.add_typer(report_app, name="report")
app.add_typer(regenerate_app, name="regenerate")
mappings_app = typer.Typer(help="Field mappings between Salesforce and the engine.", no_args_is_help=True,
                           context_settings=HELP)
sandbox_app = typer.Typer(help="The local sandbox org (a Salesforce for the demo and tests).", no_args_is_help=True,
                          context_settings=HELP)
outbox_app = typer.Typer(help="Writes waiting for Salesforce: list, retry, ignore.", invoke_without_command=True,
                         context_settings=HELP)
app.add_typer(outbox_app, name="outbox")
app.add_typer(mappings_app, name="mappings")
app.add_typer(sandbox_app, name="sandbox")

# soft wrap: messages are not cut at 80 columns when output goes to a pipe or a log (long paths
# and error lines stay whole, so they can be searched); tables are laid out by render.print_rows
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


class LogFormat(str, Enum):
    json = "json"
    text = "text"


class By(str, Enum):
    month = "month"
    quarter = "quarter"
    year = "year"


FormatOpt = Annotated[Optional[Format], typer.Option("--format", "-f", help="table, csv or json")]
AsOfOpt = Annotated[Optional[dt.datetime], typer.Option("--as-of", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD",
                                                        help="day for MRR/ARR/status (default: today, UTC)")]
#: `report accounts` shows TCV, customer since and ARR: its --as-of says so
AccountsAsOfOpt = Annotated[Optional[dt.datetime], typer.Option(
    "--as-of", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="day whose ARR is shown (default: today, UTC)")]


def _app(ctx: typer.Context) -> App:
    return ctx.obj


def _fmt(ctx: typer.Context, fmt: Format | None) -> str:
    return fmt.value if fmt else _app(ctx).config.reports.format


def _as_of(value: dt.datetime | None, ctx: typer.Context) -> dt.date:
    return value.date() if value else _app(ctx).clock.today()


def _check_known(ctx: typer.Context, command: str, order: list[str] | str | None = None,
                 customer: str | None = None, owner: str | None = None) -> None:
    """Exit 2 naming every `--order`/`--customer`/`--owner` value that matches nothing in the store,
    with the closest known values (or a few of them).

    An unknown value is almost always a typo; an empty report for it would look like "no revenue".
    A known one with no rows (in the range asked) still gives an empty report.
    """
    import difflib

    from sqlalchemy import select

    from connector.store import schema as t

    problems, hints = [], []

    def unknown(option: str, value: str, what: str, known: dict[str, str | None], listing: str) -> None:
        """`known`: {value to give: a name to show beside it, or None}; the closest values by either."""
        show = {key: key if name in (None, "", key) else f"{key} ({name})" for key, name in known.items()}
        by_text = {(name or key).lower(): key for key, name in known.items()} | {key.lower(): key for key in known}
        close = list(dict.fromkeys(by_text[c] for c in difflib.get_close_matches(
            value.lower(), list(by_text), n=3, cutoff=0.6)))
        problems.append(Problem(f"{option} {value}", f"no {what} {value!r} in the store" + (
            f" (did you mean {', '.join(repr(c) + show[c].removeprefix(c) for c in close)}?)" if close else "")))
        shown = sorted(show.values())
        hints.append(f"{listing}: " + (", ".join(shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")
                                      if shown else "none yet"))

    orders = [order] if isinstance(order, str) else order or []
    if not (orders or customer is not None or owner is not None):
        return
    with _app(ctx).store.connect() as conn:
        for value in orders:
            if conn.execute(select(t.orders.c.id).where(t.orders.c.id == value)).first() is None:
                known = dict.fromkeys(conn.execute(select(t.orders.c.id).order_by(t.orders.c.seq)).scalars())
                unknown("--order", value, "order", known, "order ids in the store (case-sensitive; `revsync report order-metrics`)")
        if customer is not None and conn.execute(
                select(t.accounts.c.id).where(t.accounts.c.id == customer)).first() is None:
            known = {a.id: a.name for a in conn.execute(select(t.accounts.c.id, t.accounts.c.name))}
            unknown("--customer", customer, "account", known, "account ids in the store (case-sensitive; `revsync report accounts`)")
        if owner is not None:
            matched = reports.owner_names(conn, owner)
            if not matched:
                known = dict.fromkeys(reports.owner_names(conn).values())
                unknown("--owner", owner, "order owner", known,
                        "order owners in the store (give a name, one word of it, or a Salesforce User Id)")
            elif len(set(matched.values())) > 1:
                err_console.print(f"--owner {owner}: the orders of {', '.join(sorted(set(matched.values())))}",
                                  markup=False, highlight=False, style="dim")
    if problems:
        raise ValidationFailed(command, problems, hint="; ".join(hints))


def _check_objects(the_app: App, objects: list[str]) -> None:
    """Exit 2 naming every `--objects` value that has no reading mapping (with the closest one)."""
    import difflib

    from connector.mapping.loader import collect

    mapped, _ = collect(the_app.mappings_dir())
    known = sorted({m.object for m in mapped if m.direction == "read"})
    problems = []
    for sobject in objects:
        if mapped.find(sobject, "read") is None:
            close = difflib.get_close_matches(sobject, known, n=1)
            problems.append(Problem(f"--objects {sobject}", "no reading mapping for this object"
                                    + (f" (did you mean {close[0]!r}?)" if close else "")))
    if problems:
        raise ValidationFailed("backfill", problems, hint=f"objects with a reading mapping: {', '.join(known)}")


def _require_salesforce(the_app: App, command: str) -> None:
    """Exit 2, before the store is opened, when the configuration has no [salesforce] table."""
    if the_app.config.salesforce is not None:
        return
    where = the_app.config.source
    if where == "built-in defaults":
        where = "built-in defaults (no --config, no REVSYNC_CONFIG, no ./config.toml)"
    raise ConfigError(where, [Problem("[salesforce]", f"`revsync {command}` needs the org to connect to, and "
                                                      "the configuration has no [salesforce] table")],
                      hint="add a [salesforce] table to your configuration (./config.toml, or the file given "
                           "with --config); config.example.toml beside the README shows every key; for the "
                           "local sandbox org, `revsync sandbox serve` prints a table ready to paste")


def _check_range(command: str, first: tuple[str, dt.datetime | None], last: tuple[str, dt.datetime | None],
                 *, inclusive: bool) -> None:
    """Exit 2 when a range's start is after its end (or, for a half-open range, not before it)."""
    (first_opt, start), (last_opt, end) = first, last
    if start is None or end is None:
        return
    start_n, end_n = (v.replace(tzinfo=None) if v.tzinfo else v for v in (start, end))
    if start_n > end_n or (not inclusive and start_n == end_n):
        relation = "after" if start_n > end_n else "the same as"
        raise ValidationFailed(command, [Problem(f"{first_opt} {start:%Y-%m-%d}",
                                                 f"is {relation} {last_opt} {end:%Y-%m-%d}: the range is empty")],
                               hint=f"give {first_opt} before {last_opt} (swap them?)")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("revsync")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown (not installed)"


def _show_version(value: bool) -> None:
    if value:
        console.print(f"revsync {_version()}", markup=False, highlight=False)
        raise typer.Exit(0)


#: commands that read the store only: with no store yet they say so and create nothing
#: (`jobs` and `outbox` list when given no subcommand: their callbacks mark the app read-only then)
READ_ONLY = {"report", "status", "quarantine"}


@app.callback()
def main_callback(ctx: typer.Context,
                  config: Annotated[Optional[Path], typer.Option("--config", "-c", envvar="REVSYNC_CONFIG",
                                                                 help="configuration file (TOML)")] = None,
                  org: Annotated[Optional[str], typer.Option("--org", envvar="REVSYNC_ORG",
                                                             help="the org to work on, when the configuration "
                                                                  "names several (\\[orgs.NAME])")] = None,
                  verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log more")] = False,
                  version: Annotated[bool, typer.Option("--version", "-V", is_eager=True, callback=_show_version,
                                                        help="print the version and exit")] = False) -> None:
    """revsync: order activation, subscription and order metrics, ARR by fiscal period."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if ctx.invoked_subcommand == "demo":
        ctx.obj = None
        return
    ctx.meta["config_path"] = str(config) if config else None
    try:
        ctx.obj = App(load_config(str(config) if config else None, org=org),
                      read_only=ctx.invoked_subcommand in READ_ONLY)
    except ConfigError as exc:
        if ctx.invoked_subcommand != "worker" or org is not None:
            raise
        # `worker --all-orgs` needs no single org: the command decides
        ctx.obj = None
        ctx.meta["config_error"] = exc


#: what the import's progress bar says in each phase
IMPORT_PHASES = {"validating": "1/3 validating {n} order(s)", "activating": "2/3 activating orders",
                 "jobs": "3/3 running background jobs"}


@app.command("import")
def import_cmd(ctx: typer.Context, file: Annotated[Path, typer.Argument(help="import document (JSON)")]) -> None:
    """Validate a JSON file of accounts, products, credits and orders; activate its orders; run their jobs."""
    the_app = _app(ctx)
    # a file without problems is streamed (memory bounded whatever its size); any other is read
    # whole, and every problem in it listed at once
    streamed = scan_file(file)
    if streamed is None:
        text, source = load_file(file)
        doc: Parsed | None = read(text, source)
    else:
        source, doc = streamed.source, None
    orders = streamed.orders if doc is None else len(doc.doc.orders)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err_console, transient=True, disable=not err_console.is_terminal) as progress:
        task = progress.add_task(IMPORT_PHASES["validating"].format(n=orders), total=None)

        def phase(name: str, total: int | None) -> None:
            # validating and jobs have no count to show: the bar pulses; activating counts orders
            progress.update(task, description=IMPORT_PHASES[name].format(n=orders), total=total, completed=0)
            progress.refresh()  # each phase is shown as it starts, however short

        def advance(n: int) -> None:
            progress.advance(task, n)

        if doc is None:
            assert streamed is not None
            result = import_file(the_app.store, streamed, the_app.calendar, the_app.settings, the_app.clock,
                                 the_app.runner, progress=advance, phase=phase)
        else:
            result = import_document(the_app.store, doc, source, the_app.calendar, the_app.settings, the_app.clock,
                                     the_app.runner, progress=advance, phase=phase)
    console.print(f"{source}: {len(result.activated)} order(s) activated, "
                  f"{len(result.already_imported)} already imported; "
                  f"{sum(j.ok for j in result.jobs)} background job(s) done"
                  + (" (the rest are left to `revsync worker`: [workers] enabled)." if the_app.runner.deferred
                     else "."), markup=False)
    if result.failed_jobs:
        for job in result.failed_jobs:
            _say_failed(job)
        err_console.print("The orders are activated; their metrics are absent until the jobs succeed.\n"
                          "  → fix the cause, then run `revsync jobs retry`")
        raise typer.Exit(EXIT_JOBS_FAILED)


def _say_failed(outcome: JobOutcome, again: str = "") -> None:
    """A failed job on stderr, in red; its order id and error as they are (an error often holds
    brackets, `[SQL: …]`, that the console's markup would take for its own, drop or choke on:
    text, never markup)."""
    err_console.print(Text.assemble((f"job {outcome.kind} for order {outcome.order_id} failed{again}:", "red"),
                                    f" {outcome.error or ''}"))


@jobs_app.callback()
def jobs_list(ctx: typer.Context, failed: Annotated[bool, typer.Option("--failed", help="failed jobs only")] = False,
              fmt: FormatOpt = None) -> None:
    """List background jobs with status, attempts and last error."""
    if ctx.invoked_subcommand is not None:
        return
    _app(ctx).read_only = True
    with _app(ctx).store.connect() as conn:
        rows = reports.jobs(conn, failed_only=failed)
    print_rows(rows, _fmt(ctx, fmt), title="jobs", header=reports.COLUMNS["jobs"])


@jobs_app.command("retry")
def jobs_retry(ctx: typer.Context,
               order: Annotated[Optional[list[str]], typer.Option("--order", metavar="ORDER", help="only this order (repeatable)")] = None) -> None:
    """Run failed jobs again."""
    _check_known(ctx, "jobs retry", order=order)
    outcomes = _app(ctx).runner.retry_failed(order or None)
    ok = sum(o.ok for o in outcomes)
    console.print(f"{len(outcomes)} failed job(s) retried: {ok} succeeded, {len(outcomes) - ok} failed.")
    for o in outcomes:
        if not o.ok:
            _say_failed(o, " again")
    if ok < len(outcomes):
        raise typer.Exit(EXIT_JOBS_FAILED)


@jobs_app.command("extend-evergreen")
def jobs_extend_evergreen(ctx: typer.Context, as_of: Annotated[Optional[dt.datetime], typer.Option(
        "--as-of", formats=["%Y-%m-%d"], help="extend up to this day + the horizon (default: today, UTC)")] = None
                          ) -> None:
    r"""Materialize evergreen lines up to today + `\[engine] evergreen_horizon_months` (the daemon does it daily)."""
    the_app = _app(ctx)
    result = extend_evergreen(the_app.store, the_app.runner.ctx, _as_of(as_of, ctx))
    console.print(f"{result.lines} evergreen line(s) extended through {result.through}; "
                  f"{result.rows} ARR-by-period row(s) added.")


@regenerate_app.command("arr")
def regenerate_arr_cmd(ctx: typer.Context) -> None:
    """Rebuild every ARR-by-period row on the configured fiscal calendar (after a calendar change)."""
    the_app = _app(ctx)
    the_app.warn_calendar = False  # the warning says to run this very command
    store = the_app.store
    if getattr(the_app, "calendar_changed", False):
        console.print(f"The fiscal calendar of {the_app.config.source} differs from the one the ARR rows were "
                      "made on: rebuilding them.", markup=False, highlight=False)
    count = regenerate_arr(store, the_app.runner.ctx)
    console.print(f"{count} ARR-by-period row(s) regenerated on fiscal calendar "
                  f"{the_app.calendar.fingerprint()}.")


@report_app.command("arr-by-period")
def report_arr_by_period(ctx: typer.Context, order: Annotated[Optional[str], typer.Option(help="order id")] = None,
                         customer: Annotated[Optional[str], typer.Option(help="account id")] = None,
                         owner: Annotated[Optional[str], typer.Option(help="order owner")] = None,
                         fmt: FormatOpt = None) -> None:
    """ARR-by-period rows: one per order line and fiscal month."""
    _check_known(ctx, "report arr-by-period", order=order, customer=customer, owner=owner)
    _app(ctx).check_arr_rows_current()
    with _app(ctx).store.connect() as conn:
        rows = reports.arr_by_period(conn, order=order, customer=customer, owner=owner,
                                     calendar=_app(ctx).calendar)
    print_rows(rows, _fmt(ctx, fmt), title="ARR by period", header=reports.COLUMNS["arr-by-period"])


CurrencyOpt = Annotated[Optional[str], typer.Option("--currency", help="only the orders in this ISO currency "
                                                                      "(needed when the rows are in several)")]


def _check_currency(ctx: typer.Context, command: str, currency: str | None) -> str | None:
    """Exit 2 when `--currency` is not a currency any order of the store is in."""
    if currency is None:
        return None
    from sqlalchemy import select

    from connector.store import schema as t

    code = currency.strip().upper()
    with _app(ctx).store.connect() as conn:
        known = sorted(set(conn.execute(select(t.orders.c.currency).distinct()).scalars()))
    if code not in known:
        raise ValidationFailed(command, [Problem(f"--currency {currency}", "no order of the store is in this currency")],
                               hint=f"currencies in the store: {', '.join(known) or 'none (no orders yet)'}")
    return code


def _arr_report(ctx: typer.Context, command: str, by: "By", owner: str | None, customer: str | None,
                date_from: dt.datetime | None, date_to: dt.datetime | None, currency: str | None, build) -> list:
    _check_range(command, ("--from", date_from), ("--to", date_to), inclusive=True)
    _check_known(ctx, command, customer=customer, owner=owner)
    code = _check_currency(ctx, command, currency)
    the_app = _app(ctx)
    the_app.check_arr_rows_current()
    with the_app.store.connect() as conn:
        try:
            return build(conn, the_app.calendar, by=by.value, customer=customer, owner=owner,
                         start=date_from.date() if date_from else None, end=date_to.date() if date_to else None,
                         currency=code)
        except ValueError as exc:
            raise ValidationFailed(command, [Problem("--currency", str(exc))],
                                   hint="add --currency with one of them (or --customer for one account)") from None


ByOpt = Annotated[By, typer.Option("--by", help="month, quarter or year")]
OwnerOpt = Annotated[Optional[str], typer.Option(help="order owner")]
CustomerOpt = Annotated[Optional[str], typer.Option(help="account id")]
FromOpt = Annotated[Optional[dt.datetime], typer.Option("--from", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD",
                                                       help="first day: periods that end before it are left out")]
ToOpt = Annotated[Optional[dt.datetime], typer.Option("--to", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD",
                                                     help="last day (inclusive): periods that start after it are left out")]


@report_app.command("arr")
def report_arr(ctx: typer.Context, by: ByOpt = By.quarter, owner: OwnerOpt = None, customer: CustomerOpt = None,
               date_from: FromOpt = None, date_to: ToOpt = None, currency: CurrencyOpt = None,
               fmt: FormatOpt = None,
               chart: Annotated[bool, typer.Option("--chart", help="draw the ARR trend and movement waterfall")] = False) -> None:
    """Opening and closing CMRR/ARR per fiscal month, quarter or year, with changes by category."""
    rows = _arr_report(ctx, "report arr", by, owner, customer, date_from, date_to, currency, reports.arr_summary)
    if chart:
        return chart_module.print_arr(console, rows)
    style = _fmt(ctx, fmt)
    # CSV: a changes.<category> column for every category, in a fixed order, 0 where there is no change
    print_rows(reports.every_category(rows) if style == "csv" else rows, style, title=f"ARR by {by.value}",
               header=reports.COLUMNS["arr"])


@report_app.command("arr-movements")
def report_arr_movements(ctx: typer.Context, by: ByOpt = By.quarter, owner: OwnerOpt = None,
                         customer: CustomerOpt = None, date_from: FromOpt = None, date_to: ToOpt = None,
                         currency: CurrencyOpt = None,
                         per_customer: Annotated[bool, typer.Option("--per-customer",
                                                                    help="one row per customer and period")] = False,
                         fmt: FormatOpt = None,
                         chart: Annotated[bool, typer.Option("--chart", help="draw the ARR trend and the movement "
                                                                             "waterfall")] = False) -> None:
    """Opening ARR, new, expansion, contraction, churn, reactivation and closing ARR per period."""
    if chart and per_customer:
        raise ValidationFailed("report arr-movements", [Problem("--chart --per-customer", "the chart draws "
                                                                "the totals of every customer shown")],
                               hint="drop --per-customer, or chart one customer with --customer")

    def build(conn, calendar, **kw):
        return reports.arr_movements(conn, calendar, per_customer=per_customer, **kw)

    rows = _arr_report(ctx, "report arr-movements", by, owner, customer, date_from, date_to, currency, build)
    if chart:
        return chart_module.print_movements(console, rows)
    print_rows(rows, _fmt(ctx, fmt), title=f"ARR movements by {by.value}",
               header=reports.COLUMNS["arr-movements per customer" if per_customer else "arr-movements"])


class Kind(str, Enum):
    subscription = "subscription"
    asset = "asset"
    entitlement = "entitlement"
    all = "all"


@report_app.command("subscriptions")
def report_subscriptions(ctx: typer.Context, as_of: AsOfOpt = None,
                         customer: Annotated[Optional[str], typer.Option(help="account id")] = None,
                         kind: Annotated[Kind, typer.Option("--kind", help="subscription, asset, entitlement "
                                                                           "or all")] = Kind.subscription,
                         fmt: FormatOpt = None) -> None:
    """Subscriptions (or assets, entitlements) with MRR and ARR as of a day, TCV, bill cycle day, status,
    kind and currency."""
    _check_known(ctx, "report subscriptions", customer=customer)
    with _app(ctx).store.connect() as conn:
        rows = reports.subscriptions(conn, _as_of(as_of, ctx), customer=customer,
                                     kind=None if kind is Kind.all else kind.value)
    print_rows(rows, _fmt(ctx, fmt), title="subscriptions" if kind is Kind.subscription else f"items ({kind.value})",
               header=reports.COLUMNS["subscriptions"])


@report_app.command("accounts")
def report_accounts(ctx: typer.Context, as_of: AccountsAsOfOpt = None, fmt: FormatOpt = None) -> None:
    """Accounts with TCV, customer since and ARR as of a day, one row per currency they buy in."""
    with _app(ctx).store.connect() as conn:
        rows = reports.accounts(conn, _as_of(as_of, ctx))
    print_rows(rows, _fmt(ctx, fmt), title="accounts", header=reports.COLUMNS["accounts"])


@report_app.command("credits")
def report_credits(ctx: typer.Context, customer: CustomerOpt = None,
                   entries: Annotated[bool, typer.Option("--entries", help="every grant and drawdown, "
                                                                           "with the balance after it")] = False,
                   fmt: FormatOpt = None) -> None:
    """Prepaid credit per account and currency: granted, drawn down by credit review, balance."""
    _check_known(ctx, "report credits", customer=customer)
    with _app(ctx).store.connect() as conn:
        rows = reports.credits(conn, customer=customer, entries=entries)
    print_rows(rows, _fmt(ctx, fmt), title="credit entries" if entries else "credit balances",
               header=reports.COLUMNS["credit entries" if entries else "credits"])


@report_app.command("order-metrics")
def report_order_metrics(ctx: typer.Context, order: Annotated[Optional[str], typer.Option(help="order id")] = None,
                         fmt: FormatOpt = None) -> None:
    """Zuora-style order metrics: mrr, tcv, tcb, elp, quantity per order line."""
    _check_known(ctx, "report order-metrics", order=order)
    with _app(ctx).store.connect() as conn:
        rows = reports.order_metrics(conn, order=order)
    print_rows(rows, _fmt(ctx, fmt), title="order metrics", header=reports.COLUMNS["order-metrics"])


@report_app.command("drafts")
def report_drafts(ctx: typer.Context, fmt: FormatOpt = None) -> None:
    r"""Draft orders of primary quotes synced from Salesforce (\[engine] sync_draft_orders_with_primary_quotes)."""
    with _app(ctx).store.connect() as conn:
        rows = reports.drafts(conn)
    print_rows(rows, _fmt(ctx, fmt), title="draft orders", header=reports.COLUMNS["drafts"])


@app.command("quarantine")
def quarantine_cmd(ctx: typer.Context,
                   all_: Annotated[bool, typer.Option("--all", help="include released records")] = False,
                   fmt: FormatOpt = None) -> None:
    """Salesforce records held back (mapping or validation failed), with the reason.

    Fixing the record in Salesforce releases it at the next sync.
    """
    with _app(ctx).store.connect() as conn:
        rows = reports.quarantined(conn, include_released=all_)
    print_rows(rows, _fmt(ctx, fmt), title="quarantine", header=reports.COLUMNS["quarantine"])


@app.command("status")
def status_cmd(ctx: typer.Context, fmt: FormatOpt = None) -> None:
    """Cursors and lag, API usage, outbox depth, failed jobs and quarantined records."""
    the_app = _app(ctx)
    from connector.store.db import check_integrity

    integrity = check_integrity(the_app.store)  # a damaged store: StoreError, exit 2 (`sqlite3 .recover`)
    with the_app.store.connect() as conn:
        info = reports.status(conn, the_app.clock.now())
        info["big_objects"] = _big_objects_status(the_app, conn)
        from connector.sources.cdc import stream_status

        # Change Data Capture ([sync] source "cdc"): where each channel's stream will resume
        info["change_events"] = stream_status(conn)
    info["store_integrity"] = integrity
    # `api_usage` stays the text it always was (a public key); the same figures, typed, beside it
    info["api_usage_detail"] = _api_usage_detail(info.get("api_usage"))
    style = _fmt(ctx, fmt)
    if style == "json":
        console.file.write(object_to_json(info) + "\n")
        return
    if style == "csv":
        print_rows(_status_figures(info), "csv", columns=["figure", "value"])
        return
    print_rows(info["cursors"], "table", title="cursors")
    outbox = ", ".join(f"{state} {count}" for state, count in sorted(info["outbox"].items())) or "empty"
    usage = info["api_usage_detail"]
    console.print(f"outbox: {outbox}; failed jobs: {info['failed_jobs']}; "
                  f"quarantined records: {info['quarantined']}; API usage: "
                  + (f"{usage['used']} of {usage['limit']} calls (at {usage['observed_at']})" if usage
                     else info["api_usage"] or "unknown")
                  + f"; store integrity: {integrity}", markup=False, highlight=False)
    daemon = info.get("daemon")
    if daemon:
        console.print(f"sync daemon: {daemon['state']}" + (f" — {daemon['reason']}" if daemon.get("reason") else "")
                      + (f"; next try {daemon['next_attempt_at']}" if daemon.get("next_attempt_at") else "")
                      + f"; last good cycle {daemon.get('last_good_cycle_at') or 'none yet'}", markup=False)
    console.print(capacity.status_line(info["big_objects"]), markup=False, highlight=False)
    for channel in info["change_events"]["channels"]:
        console.print(f"change events {channel['channel']}: resume after replay id {channel['replay_id'] or '(the tip)'}"
                      f"; last event taken in {channel['last_event_at'] or 'none yet'}", markup=False, highlight=False)
    if info["change_events"]["polls_requested"]:
        console.print("polls asked for by gap or overflow events: "
                      + ", ".join(info["change_events"]["polls_requested"]), markup=False, highlight=False)


def _api_usage_detail(text: str | None) -> dict | None:
    """The daemon's "used/limit at ISO-time" note as {used, limit, observed_at} (None when unknown)."""
    import re

    found = re.fullmatch(r"\s*(\d+)/(\d+)(?: at (\S+))?\s*", text or "")
    if not found:
        return None
    return {"used": int(found.group(1)), "limit": int(found.group(2)), "observed_at": found.group(3)}


def _status_figures(info: dict) -> list[dict]:
    """`revsync status` as (figure, value) rows, for CSV: one figure a row, nested ones dotted."""
    rows = []
    for cursor in info["cursors"]:
        rows.append({"figure": f"cursor.{cursor['object']}", "value": cursor["cursor"]})
        rows.append({"figure": f"lag_seconds.{cursor['object']}", "value": cursor["lag_seconds"]})
    for state, count in sorted(info["outbox"].items()):
        rows.append({"figure": f"outbox.{state}", "value": count})
    for key in ("failed_jobs", "quarantined", "api_usage"):
        rows.append({"figure": key, "value": info.get(key)})
    for key, value in (info.get("api_usage_detail") or {}).items():
        rows.append({"figure": f"api_usage.{key}", "value": value})
    rows.append({"figure": "store_integrity", "value": info["store_integrity"]})
    for channel in info["change_events"]["channels"]:
        rows.append({"figure": f"change_events.{channel['channel']}.replay_id", "value": channel["replay_id"]})
        rows.append({"figure": f"change_events.{channel['channel']}.last_event_at", "value": channel["last_event_at"]})
    for key, value in (info.get("daemon") or {}).items():
        rows.append({"figure": f"daemon.{key}", "value": value})
    rows.extend(_big_objects_figures(info.get("big_objects")))
    return rows


def _big_objects_status(the_app: App, conn) -> dict:
    """`revsync status`'s `big_objects`: rows revsync holds in the org's big objects, the capacity,
    and the writer's last check (connector.capacity)."""
    return capacity.status(conn, capacity.configured_capacity(the_app.config.salesforce, the_app.config.source))


def _big_objects_figures(info: dict | None) -> list[dict]:
    if not info:
        return []
    rows = [{"figure": f"big_objects.held.{o}", "value": n} for o, n in info["held"].items()]
    rows += [{"figure": "big_objects.held_total", "value": info["held_total"]},
             {"figure": "big_objects.capacity", "value": info["capacity"]}]
    rows += [{"figure": f"big_objects.last_check.{k}", "value": v} for k, v in (info["last_check"] or {}).items()]
    return rows


@app.command("forecast")
def forecast_cmd(ctx: typer.Context,
                 months: Annotated[int, typer.Option("--months", min=1, max=240,
                                                     help="how many months ahead, this one first")] = 12,
                 as_of: Annotated[Optional[dt.datetime], typer.Option(
                     "--as-of", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD",
                     help="the forecast starts with this day's month (default: today, UTC)")] = None,
                 fmt: FormatOpt = None) -> None:
    r"""Big-object rows per month ahead for the current subscriptions (evergreen lines extended to
    their horizon), against the org's capacity (\[salesforce] big_object_capacity)."""
    the_app = _app(ctx)
    the_app.read_only = True
    limit = capacity.configured_capacity(the_app.config.salesforce, the_app.config.source)
    the_app.check_arr_rows_current()
    with the_app.store.connect() as conn:
        rows = capacity.forecast(conn, the_app.calendar, the_app.settings, _as_of(as_of, ctx), months, limit)
    style = _fmt(ctx, fmt)
    print_rows(rows, style, title="big-object rows per month", columns=list(capacity.FORECAST_KEYS))
    if style == "table":
        over = capacity.first_over(rows)
        console.print(f"capacity {limit:,} big-object records: "
                      + (f"exceeded in {over}; raise it with Salesforce before then, or keep fewer rows"
                         if over else f"enough through {rows[-1]['month']}"), markup=False, highlight=False)


@outbox_app.callback()
def outbox_list(ctx: typer.Context, failed: Annotated[bool, typer.Option("--failed", help="failed entries only")] = False,
                fmt: FormatOpt = None) -> None:
    """List outbox entries not yet written (or only the failed ones, with Salesforce's message)."""
    if ctx.invoked_subcommand is not None:
        return
    _app(ctx).read_only = True
    with _app(ctx).store.connect() as conn:
        rows = reports.outbox(conn, failed_only=failed)
    print_rows(rows, _fmt(ctx, fmt), title="outbox", header=reports.COLUMNS["outbox"])


@outbox_app.command("retry")
def outbox_retry(ctx: typer.Context, entry: Annotated[Optional[int], typer.Argument(help="entry id")] = None,
                 all_: Annotated[bool, typer.Option("--all", help="every failed entry")] = False) -> None:
    """Send a failed entry (or all of them) again at the next write-back."""
    from connector.writers.outbox import retry

    if (entry is None) == (not all_):
        raise ValidationFailed("outbox retry", [Problem("arguments", "give one entry id, or --all")],
                               hint="`revsync outbox --failed` lists the failed entries and their ids")
    the_app = _app(ctx)
    count = retry(the_app.store, the_app.clock, None if all_ else entry)
    if entry is not None and count == 0:
        raise ValidationFailed("outbox retry", [Problem(f"entry {entry}", "no failed outbox entry with this id")],
                               hint="`revsync outbox --failed` lists the failed entries")
    console.print(f"{count} entr{'y' if count == 1 else 'ies'} will be sent again at the next sync.")


@outbox_app.command("ignore")
def outbox_ignore(ctx: typer.Context, entry: Annotated[int, typer.Argument(help="entry id")]) -> None:
    """Never send this entry (it stays listed as IGNORED)."""
    from connector.writers.outbox import ignore

    the_app = _app(ctx)
    if ignore(the_app.store, the_app.clock, entry) == 0:
        raise ValidationFailed("outbox ignore", [Problem(f"entry {entry}", "no waiting or failed outbox entry "
                                                                           "with this id")],
                               hint="`revsync outbox` lists the entries still to send")
    console.print(f"outbox entry {entry} will not be sent.")


@mappings_app.command("validate")
def mappings_validate(ctx: typer.Context,
                      online: Annotated[bool, typer.Option("--online", help="also check against the org's describe")] = False,
                      directory: Annotated[Optional[Path], typer.Option("--dir", help="mapping folder")] = None) -> None:
    """Check the mapping files (every problem at once, each naming file, table and key)."""
    from connector.mapping import validate_command

    the_app = _app(ctx)
    folder = directory or the_app.mappings_dir()
    describe = None
    if online:
        client = the_app.salesforce_client()
        cache: dict[str, dict] = {}

        def describe(sobject: str) -> dict:
            if sobject not in cache:
                cache[sobject] = client.describe(sobject)
            return cache[sobject]
    problems = validate_command(folder, describe=describe)
    if problems:
        raise ValidationFailed(str(folder), problems, hint="fix the mapping files, then validate again")
    console.print(f"{folder}: the mappings are valid{' against the org' if online else ''}.", markup=False)


@sandbox_app.command("serve", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sandbox_serve(ctx: typer.Context) -> None:
    """Serve the sandbox org over HTTPS on loopback (options: see `revsync sandbox serve --help-sandbox`)."""
    from connector.sandbox.server import main as sandbox_main

    args = ["--help" if a == "--help-sandbox" else a for a in ctx.args]
    raise typer.Exit(sandbox_main(args))


@app.command("sync")
def sync_cmd(ctx: typer.Context,
             once: Annotated[bool, typer.Option("--once", help="one full cycle, then exit")] = False,
             summary: Annotated[Optional[bool], typer.Option(
                 "--summary/--no-summary", show_default=False,
                 help="with --once: print what the pass did (read, activated, written, left, API calls); "
                      "default: when stdout is a terminal")] = None,
             log_format: Annotated[Optional[LogFormat], typer.Option(
                 "--log-format", show_default=False,
                 help="json: one object a line, info and up (the daemon's default); text: warnings and errors "
                      "only (the default of --once on a terminal)")] = None) -> None:
    """Run the sync daemon: poll → ingest → activate and jobs → write-back, every sync interval."""
    from connector.runtime import run_daemon

    _require_salesforce(_app(ctx), "sync")
    if log_format is None:
        log_format = LogFormat.text if once and sys.stderr.isatty() else LogFormat.json
    if summary is None:
        summary = sys.stdout.isatty()
    code = run_daemon(_app(ctx), once=once, summary=summary and once, log_format=log_format.value)
    raise typer.Exit(code)


@app.command("worker")
def worker_cmd(ctx: typer.Context,
               until_idle: Annotated[bool, typer.Option(
                   "--until-idle", help="exit once no job is left to run (jobs other workers hold count as "
                                        "left: their claims may expire and need taking over)")] = False,
               log_format: Annotated[LogFormat, typer.Option(
                   "--log-format", help="json: one object a line, info and up; text: warnings and errors only")
                                     ] = LogFormat.json,
               all_orgs: Annotated[bool, typer.Option(
                   "--all-orgs", help="work for every org of the configuration (\\[orgs.NAME]), a claim of each "
                                      "in turn: one shared pool of workers for many orgs")] = False) -> None:
    """Run a worker on a PostgreSQL store: it activates the orders `revsync sync` leaves to the workers and
    runs the background jobs (credit review, subscription and order metrics, ARR by period), a batch of
    whole accounts at a time claimed with SELECT … FOR UPDATE SKIP LOCKED, so each account's orders stay in
    activation order. Run any number, on any number of machines, sharing only the store; set
    `workers.enabled = true` in the configuration so that `revsync sync` leaves that work to them (it keeps
    reading and writing Salesforce). A worker killed mid-job loses nothing:
    its claim expires after `workers.claim_seconds` and another worker takes the accounts over. SIGTERM stops
    it after the accounts in hand. On SQLite it exits 2: SQLite keeps the single-process mode. Exit code 3:
    jobs it ran failed (they are retried with backoff)."""
    from connector.runtime import run_worker

    if all_orgs:
        names = org_names(ctx.meta["config_path"])
        if not names:
            raise ConfigError("--all-orgs", [Problem("--all-orgs", "the configuration names no orgs ([orgs.NAME])")],
                              hint="leave out --all-orgs for a one-org configuration")
        apps = [App(load_config(ctx.meta["config_path"], org=name)) for name in names]
        raise typer.Exit(run_worker(apps, until_idle=until_idle, log_format=log_format.value))
    if ctx.obj is None:
        raise ctx.meta["config_error"]
    raise typer.Exit(run_worker(_app(ctx), until_idle=until_idle, log_format=log_format.value))


@app.command("console")
def console_cmd(ctx: typer.Context,
                host: Annotated[str, typer.Option("--host", help="address to listen on; off loopback it needs "
                                                                 "REVSYNC_CONSOLE_TOKEN")] = "127.0.0.1",
                port: Annotated[int, typer.Option("--port", min=0, max=65535, help="port (0: any free one)")] = 8788) -> None:
    """Serve the read-only web console (sync health, outbox, jobs, quarantine, ARR) for this store."""
    from connector.console.serve import serve

    raise typer.Exit(serve(_app(ctx), host, port, lambda text: console.print(text, markup=False, highlight=False)))


@app.command("backfill")
def backfill_cmd(ctx: typer.Context,
                 since: Annotated[dt.datetime, typer.Option("--since", formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"],
                                                            metavar="YYYY-MM-DD[THH:MM:SS]",
                                                            help="first day (UTC) of changes to read")],
                 until: Annotated[Optional[dt.datetime], typer.Option(
                     "--until", formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"], metavar="YYYY-MM-DD[THH:MM:SS]", help="end (exclusive, UTC); default now")] = None,
                 objects: Annotated[Optional[list[str]], typer.Option("--objects", metavar="OBJECT",
                                                                            help="an object to read, e.g. Order (repeatable)")] = None) -> None:
    r"""Read history \[since, until) without moving the daemon's cursors; resumes after a crash."""
    from connector.runtime import run_backfill

    the_app = _app(ctx)
    _check_range("backfill", ("--since", since), ("--until", until), inclusive=False)
    now = the_app.clock.now().replace(tzinfo=None)
    if until is None and since.replace(tzinfo=None) >= now:
        raise ValidationFailed("backfill", [Problem(f"--since {since:%Y-%m-%d}", "is in the future; there is "
                                                                                  "no history to read yet")],
                               hint="give a --since in the past")
    if objects:
        _check_objects(the_app, objects)
    _require_salesforce(the_app, "backfill")  # after the arguments: each says what is wrong with it
    raise typer.Exit(run_backfill(_app(ctx), since, until, objects, console=err_console))


@app.command("demo")
def demo(fmt: FormatOpt = None,
         sandbox: Annotated[bool, typer.Option("--sandbox/--no-sandbox",
                                               help="also run it through the local sandbox org")] = True) -> None:
    """Run the worked example: three orders for two accounts (a new seat subscription, a three-month plan, an
    upsell of the seats), their ARR by fiscal month and Chloe's quarters of 2023; on the engine alone, then
    through the local sandbox org, and print what landed."""
    from importlib.resources import files

    with tempfile.TemporaryDirectory(prefix="revsync-demo-") as tmp:
        config = Config(store=StoreConfig(url=f"sqlite:///{Path(tmp) / 'demo.db'}"))
        the_app = App(config, SystemClock())
        source = files("connector.demo").joinpath("worked_example.json")
        doc = parse(source.read_text(), "worked example")
        result = import_document(the_app.store, doc, "worked example", the_app.calendar, the_app.settings,
                                 the_app.clock, the_app.runner)
        style = fmt.value if fmt else "table"
        # -f json: one JSON document for the whole demo (the tables by name, the notes as a list);
        # -f csv: the tables on stdout, the prose on stderr
        document: dict = {"worked_example": {}, "sandbox": None}
        say = (lambda text: None) if style == "json" else \
            (lambda text: (err_console if style == "csv" else console).print(text, markup=False, highlight=False))
        say(f"Worked example: {len(result.activated)} orders activated, "
            f"{sum(j.ok for j in result.jobs)} background jobs done.")
        document["worked_example"].update(orders_activated=len(result.activated),
                                          background_jobs_done=sum(j.ok for j in result.jobs))
        with the_app.store.connect() as conn:
            rows = reports.arr_by_period(conn, calendar=the_app.calendar)
            quarters = reports.arr_summary(conn, the_app.calendar, by="quarter", owner="Chloe",
                                           start=dt.date(2023, 1, 1), end=dt.date(2023, 12, 31))
            subs = reports.subscriptions(conn, dt.date(2023, 4, 1))
        the_app.store.dispose()
        if style == "json":
            document["worked_example"].update(arr_by_period=rows, chloe_quarters_2023=quarters,
                                              subscriptions_2023_04_01=subs)
        else:
            print_rows(rows, style, title="ARR by period (every order line × fiscal month)",
                       columns=["order", "order_product", "customer", "owner", "subscription",
                                "change_category", "period_start", "period_end", "period_label", "opening_cmrr",
                                "closing_cmrr", "change_cmrr", "opening_arr", "closing_arr"]
                       if style == "table" else None)
            print_rows(reports.every_category(quarters) if style == "csv" else quarters, style,
                       title="Chloe's quarters of fiscal 2023")
            print_rows(subs, style, title="Subscriptions as of 2023-04-01")
    if sandbox:
        from connector.showcase import run as showcase

        say("\nThe same scenario through Salesforce: the sandbox org over HTTPS, the sync daemon, write-back.")
        tables: dict[str, list] = {}
        notes: list[str] = []

        def show(title: str, rows: list) -> None:
            if style == "json":
                tables[title] = rows
            else:
                print_rows(rows, style, title=title)

        figures = showcase(show, notes.append if style == "json" else say)
        document["sandbox"] = {"notes": notes, "tables": tables, "figures": figures}
    if style == "json":
        console.file.write(object_to_json(document) + "\n")


def main() -> None:
    """Entry point: run the command and turn our errors into a message and an exit code."""
    try:
        app(prog_name="revsync")
    except RevsyncError as exc:
        print_error(str(exc), console=err_console)  # red "error:" on a terminal, plain elsewhere and with NO_COLOR
        code = getattr(exc, "exit_code", None)  # e.g. StoreError: 2, the store is unusable
        sys.exit(code or (EXIT_INVALID if isinstance(exc, ValidationFailed) else EXIT_ERROR))
    except Exception as exc:
        # the database server down, restarting or refusing connections, a lock held too long: a
        # message and exit 1, not a traceback (anything else is a bug, and its traceback helps)
        reason = store_unavailable(exc)
        if reason is None:
            raise
        print_error(str(TransientError(
            f"the store is unavailable: {reason}; nothing more was done",
            hint="check that the database server is running and reachable at [store] url (or wait for the "
                 "process holding the store's lock), then run the command again: it goes on from where it "
                 "stopped")), console=err_console)
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":
    main()
