"""Command line: the library's steps on local files and servers, without Airflow.

    python -m include.nse parse cm_bhavcopy cm05JUL2024bhav.csv.zip --out day.parquet
    python -m include.nse fetch cm_bhavcopy --date 2024-07-05
    python -m include.nse ingest cm_bhavcopy --date 2024-07-01 --to 2024-07-05
    python -m include.nse warehouse migrate
    python -m include.nse chart option-chain --underlying NIFTY
    python -m include.nse members "NIFTY 50" --date 2025-06-30

`ingest` runs the same gated chain as the DAGs (fetch, bronze, parse, silver, quality gate,
load, and the dataset's own steps after it): a day that fails a critical expectation loads
nothing. Every command prints one JSON line per result on stdout. A failure exits with status 1
and a message on stderr that names the dataset and date, or the file, line and column.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from include.nse import sources
from include.nse.config import Settings
from include.nse.dates import iso_date
from include.nse.errors import InHistory, NotPublished, NSEError


def _emit(payload: dict) -> None:
    click.echo(json.dumps(payload, default=str))


def _date(_ctx, _param, value):
    if value is None:
        return None
    try:
        return iso_date(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2024-07-05") from None


def clickhouse_settings() -> dict:
    """Where ClickHouse is for the command line: CLICKHOUSE_HOST/PORT/USER/PASSWORD."""
    return {
        "host": os.environ.get("CLICKHOUSE_HOST", "127.0.0.1"),
        "port": int(os.environ.get("CLICKHOUSE_PORT", "9000")),
        "user": os.environ.get("CLICKHOUSE_USER", "default"),
        "password": os.environ.get("CLICKHOUSE_PASSWORD", ""),
    }


@contextmanager
def clickhouse_client() -> Iterator:
    """A connected clickhouse-driver client for the command line, disconnected on exit."""
    from clickhouse_driver import Client

    client = Client(**clickhouse_settings(), client_name="nse-cli")
    try:
        yield client
    finally:
        client.disconnect()


def _database(option: str | None = None) -> str:
    """The database: `option` (--database), else CLICKHOUSE_DATABASE, else nse; a name that is
    not a plain identifier is a usage error naming where it came from."""
    from include.nse.names import identifier

    name = option or os.environ.get("CLICKHOUSE_DATABASE", "nse")
    try:
        return identifier(name)
    except ValueError as e:
        source = "--database" if option else "CLICKHOUSE_DATABASE"
        raise click.UsageError(f"{source}: {e}") from None


def _warehouse():
    from include.nse.warehouse import Warehouse

    return Warehouse(clickhouse_client, _database())


def _clickhouse_failure(exc: BaseException, what: str) -> click.ClickException:
    where = "{host}:{port}".format(**clickhouse_settings())
    reason = " ".join(str(exc).split("Stack trace:")[0].split()) or type(exc).__name__
    return click.ClickException(f"ClickHouse at {where} failed {what}: {reason}")


def _lake_failure(exc: OSError, what: str) -> click.ClickException:
    """A file the lake could not write (or read): which one, and why."""
    where = f" {exc.filename}" if exc.filename else ""
    return click.ClickException(f"{what}: cannot write the lake at{where}: {exc.strerror or exc}")


def _warehouse_errors() -> tuple[type[BaseException], ...]:
    from clickhouse_driver.errors import Error

    return (Error, OSError, EOFError, socket.timeout)


dataset_argument = click.argument("dataset", type=click.Choice(sources.names()))
item_option = click.option(
    "--item",
    "items",
    multiple=True,
    help="An index or underlying to cover (datasets that take a list); repeat for more.",
)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log requests, retries and checks to stderr.")
def cli(verbose: bool) -> None:
    """NSE market data: fetch, parse, check and load NSE's files."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        # The driver logs a refused connection with its traceback; our own message says it.
        logging.getLogger("clickhouse_driver.connection").setLevel(logging.ERROR)


@cli.command()
@dataset_argument
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--date", "trade_date", callback=_date, help="Refuse rows of any other date.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the silver rows to this Parquet file (through a temporary name).",
)
def parse(dataset: str, file: Path, trade_date: dt.date | None, out: Path | None) -> None:
    """Parse FILE (as NSE serves it, zipped or not) into silver form."""
    from polars.exceptions import PolarsError

    from include.nse.lake import write_parquet
    from include.nse.pipeline import parse_file

    try:
        df = parse_file(sources.get(dataset), file.read_bytes(), file.name, trade_date)
    except NSEError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"cannot read {file}: {e.strerror or e}") from None
    except Exception as e:  # a parser's oversight is still this file's fault, named as such
        logging.getLogger(__name__).info("unexpected failure", exc_info=True)
        raise click.ClickException(
            f"{file.name}: not readable as {dataset}: unexpected {type(e).__name__}: {e}"
        ) from None
    if out is not None:
        try:
            write_parquet(out, df)
        # polars reports a failed write of its own (a full disk, a file size limit) as its error.
        except (OSError, PolarsError) as e:
            raise click.ClickException(
                f"cannot write {out}: {getattr(e, 'strerror', None) or e}"
            ) from None
    _emit({"dataset": dataset, "rows": df.height, "path": str(out) if out else None})


def _days(dataset: str, start: dt.date, end: dt.date | None) -> list[dt.date]:
    """The dataset's trading days from `start` to `end`; every day for one not per trading day."""
    from include.nse.calendar import default_calendar

    end = end or start
    if end < start:
        raise click.BadParameter(f"--to {end} is before --date {start}")
    segment = sources.get(dataset).segment
    if segment is None or start == end:
        return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    return default_calendar().trading_days(start, end, segment)


def _settings() -> Settings:
    """Settings from NSE_* variables; one that is not a valid value is a usage error naming it."""
    try:
        return Settings.from_env()
    except ValueError as e:
        raise click.UsageError(str(e)) from None


def _context(with_warehouse: bool, run_id: str = ""):
    from include.nse.pipeline import Context

    return Context(_settings(), _warehouse() if with_warehouse else None, run_id=run_id)


@cli.command()
@dataset_argument
@click.option("--date", "start", required=True, callback=_date, help="Trade date, YYYY-MM-DD.")
@click.option("--to", "end", callback=_date, help="Last trade date of a range.")
@item_option
def fetch(dataset: str, start: dt.date, end: dt.date | None, items: tuple[str, ...]) -> None:
    """Fetch a dataset's files for a date (or each trading day of a range) into bronze."""
    from include.nse import pipeline
    from include.nse.sources.base import Request

    ctx, ds = _context(False), sources.get(dataset)
    for day in _days(dataset, start, end):
        try:
            _emit(pipeline.fetch(ctx, ds, Request(day, items)))
        except (NotPublished, InHistory) as e:
            line = {"dataset": dataset, "trade_date": day.isoformat(), "skipped": e.reason}
            _emit(line | ({"blocked": True} if getattr(e, "blocked", False) else {}))
        except NSEError as e:
            raise click.ClickException(f"{dataset} {day}: {e}") from None
        except OSError as e:
            raise _lake_failure(e, f"{dataset} {day}") from None


@cli.command()
@dataset_argument
@click.option("--date", "start", required=True, callback=_date, help="Trade date, YYYY-MM-DD.")
@click.option("--to", "end", callback=_date, help="Last trade date of a range.")
@item_option
@click.option("--reload", is_flag=True, help="Load again days already loaded from the same bronze.")
def ingest(
    dataset: str, start: dt.date, end: dt.date | None, items: tuple[str, ...], reload: bool
) -> None:
    """Fetch, parse, check and load a dataset for a date (or each trading day of a range).

    The same gated chain as the DAGs and the history backfill (`include.nse.history`), with
    fetching, parsing and loading overlapped: a day that fails a critical expectation (or cannot
    be fetched or parsed) loads nothing and is reported, the others go on, and the command then
    exits 1 naming the days that failed. Days already loaded from the same bronze are skipped
    unless --reload. On a terminal a progress bar; piped, one JSON line per day. ClickHouse
    comes from CLICKHOUSE_HOST/PORT/USER/PASSWORD/DATABASE.
    """
    from include.nse import history

    ds, days = sources.get(dataset), _days(dataset, start, end)
    if ds.publication.per_item or ds.segment is None:
        _ingest_each(ds, days, items)
        return
    finished: list = []
    with _progress(len(days)) as report:

        def on_outcome(outcome) -> None:
            finished.append(outcome)
            report(outcome)

        try:
            outcomes = history.load_days(
                _context(True, run_id="cli"),
                ds,
                days,
                items=items,
                reload=reload,
                on_outcome=on_outcome,
            )
        except _warehouse_errors() as e:
            left = _unfinished(days, finished)
            if isinstance(e, OSError) and e.filename:
                raise _lake_failure(e, f"{dataset} {left}") from None
            raise _clickhouse_failure(e, f"while loading {dataset} for {left}") from None
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        reasons = "; ".join(f"{o.trade_date}: {o.error}" for o in failed)
        raise click.ClickException(
            f"{dataset}: {len(failed)} day(s) failed and were not loaded: {reasons}"
        )


def _span(days: list[dt.date]) -> str:
    return f"{days[0]}..{days[-1]}" if len(days) > 1 else str(days[0])


def _unfinished(days: list[dt.date], finished: list) -> str:
    """The days a run that stopped left without an outcome, and how many it finished first."""
    done = {outcome.trade_date for outcome in finished}
    left = [day for day in days if day not in done] or days
    text = _span(left)
    if done:
        text += (
            f" ({len(done)} of {len(days)} days finished before it stopped; "
            "the same command resumes from there)"
        )
    return text


def _outcome_line(outcome) -> dict:
    line = {"dataset": outcome.dataset, "trade_date": outcome.trade_date.isoformat()}
    line["status"] = outcome.status
    if outcome.status == "failed":
        return line | {"failed": outcome.error}
    if outcome.status == "not_published":
        return line | {"not_published": outcome.error}
    return line | {"rows": outcome.rows, "seconds": outcome.seconds, **outcome.files}


@contextmanager
def _progress(total: int) -> Iterator:
    """A callback for each day's outcome: a progress bar (days, rows, rate, time left) on a
    terminal, one JSON line per day on stdout otherwise."""
    if not sys.stdout.isatty():
        yield lambda outcome: _emit(_outcome_line(outcome))
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    rows = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days  {task.fields[rows]:,} rows  {task.fields[rate]}"),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("loading", total=total, rows=0, rate="")

        def report(outcome) -> None:
            nonlocal rows
            rows += outcome.rows or 0
            elapsed = bar.tasks[task].elapsed or 0
            rate = f"{rows / elapsed:,.0f} rows/s" if elapsed else ""
            bar.update(task, advance=1, rows=rows, rate=rate)
            if outcome.status in ("failed", "not_published"):
                bar.console.print(f"{outcome.trade_date} {outcome.status}: {outcome.error}")

        yield report


def _ingest_each(ds, days: list[dt.date], items: tuple[str, ...]) -> None:
    """The chain day by day, for what is not loaded by trading day (lists, snapshots)."""
    from include.nse import pipeline
    from include.nse.sources.base import Request

    ctx, failed = _context(True, run_id="cli"), []
    for day in days:
        line = {"dataset": ds.name, "trade_date": day.isoformat()}
        try:
            done = pipeline.run(ctx, ds, Request(day, items))
        except NotPublished as e:
            _emit(line | {"status": "not_published", "not_published": e.reason})
            continue
        except NSEError as e:
            failed.append(f"{day}: {e}")
            _emit(line | {"status": "failed", "failed": str(e)})
            continue
        except _warehouse_errors() as e:
            raise _clickhouse_failure(e, f"while loading {ds.name} for {day}") from None
        _emit(line | {"status": "loaded", "rows": done["load"]["rows"]})
    if failed:
        raise click.ClickException(
            f"{ds.name}: {len(failed)} day(s) failed and were not loaded: {'; '.join(failed)}"
        )


@cli.group(name="warehouse")
def warehouse_group() -> None:
    """ClickHouse schema."""


@warehouse_group.command()
@click.option("--database", default=None, help="Database (default CLICKHOUSE_DATABASE or nse).")
def migrate(database: str | None) -> None:
    """Create the database and apply pending DDL from include/sql."""
    from include.nse import warehouse

    database = _database(database)
    try:
        with clickhouse_client() as client:
            applied = warehouse.migrate(client, database)
    except _warehouse_errors() as e:
        raise _clickhouse_failure(e, f"while migrating {database}") from None
    _emit({"database": database, "applied": applied})


@cli.command()
@click.argument("index_name")
@click.option("--date", "day", required=True, callback=_date, help="The day, YYYY-MM-DD.")
def members(index_name: str, day: dt.date) -> None:
    """The members of INDEX_NAME (as NSE spells it: "NIFTY 50") on a day, from the warehouse."""
    from include.nse.index_membership import members_on

    try:
        with clickhouse_client() as client:
            symbols = members_on(client, index_name, day, _database())
    except _warehouse_errors() as e:
        raise _clickhouse_failure(e, f"while reading {index_name} on {day}") from None
    _emit({"index_name": index_name, "date": day.isoformat(), "members": symbols})


@cli.group(name="chart")
def chart_group() -> None:
    """Pictures drawn from the lake into its gold layer."""


@chart_group.command(name="option-chain")
@click.option("--underlying", required=True, help="Index or stock, e.g. NIFTY.")
@click.option("--date", "trade_date", callback=_date, help="Trade date (default: latest held).")
@click.option("--expiry", callback=_date, help="Expiry, YYYY-MM-DD (default: the nearest).")
def chart_option_chain(underlying: str, trade_date: dt.date | None, expiry: dt.date | None) -> None:
    """Open interest by strike of the latest snapshot of UNDERLYING, as a PNG in gold."""
    from include.nse.chain_analytics import chart_latest
    from include.nse.lake import Lake

    lake = Lake(_settings().lake_root)
    try:
        path = chart_latest(lake, underlying, trade_date, expiry)
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from None
    _emit({"underlying": underlying, "path": str(path)})


def main() -> None:
    """The command line; what no command expected still ends in one line, not a traceback
    (which `-v` logs)."""
    try:
        cli(prog_name="python -m include.nse")
    except Exception as e:
        logging.getLogger(__name__).info("unexpected failure", exc_info=True)
        first = (str(e).strip().splitlines() or [""])[0]
        click.echo(f"Error: unexpected {type(e).__name__}: {first}", err=True)
        sys.exit(1)
