"""Command line: the library's steps on local files and servers, without Airflow.

    python -m include.nse parse cm_bhavcopy cm05JUL2024bhav.csv.zip --out day.parquet
    python -m include.nse fetch cm_bhavcopy --date 2024-07-05
    python -m include.nse ingest cm_bhavcopy --date 2024-07-01 --to 2024-07-05
    python -m include.nse warehouse migrate
    python -m include.nse generate --from 2024-07-01 --to 2024-07-31 --out /tmp/nse
    python -m include.nse standin --root /tmp/nse --port 8765
    python -m include.nse chart option-chain --underlying NIFTY

Every command prints one JSON line per result on stdout. Bad input exits with status 1 and a
message on stderr that names the file, line or column.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path

import click

from include.nse import sources
from include.nse.config import Settings
from include.nse.errors import FetchError, NotPublished, NSEError


def _emit(payload: dict) -> None:
    click.echo(json.dumps(payload, default=str))


def _date(_ctx, _param, value):
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2024-07-05") from None


def clickhouse_client_from_env():
    """A clickhouse-driver client from CLICKHOUSE_HOST/PORT/USER/PASSWORD (defaults: local)."""
    from clickhouse_driver import Client

    return Client(
        host=os.environ.get("CLICKHOUSE_HOST", "127.0.0.1"),
        port=int(os.environ.get("CLICKHOUSE_PORT", "9000")),
        user=os.environ.get("CLICKHOUSE_USER", "default"),
        password=os.environ.get("CLICKHOUSE_PASSWORD", ""),
        client_name="nse-cli",
    )


def _database() -> str:
    return os.environ.get("CLICKHOUSE_DATABASE", "nse")


dataset_argument = click.argument("dataset", type=click.Choice(sources.names()))


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log requests and retries to stderr.")
def cli(verbose: bool) -> None:
    """NSE market data: fetch, parse and load NSE's files."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@cli.command()
@dataset_argument
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the silver rows to this Parquet file.",
)
def parse(dataset: str, file: Path, out: Path | None) -> None:
    """Parse FILE (as NSE serves it, zipped or not) into silver form."""
    from include.nse.pipeline import parse_file

    try:
        df = parse_file(sources.get(dataset), file)
    except NSEError as e:
        raise click.ClickException(str(e)) from None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        df.write_parquet(out)
    _emit({"dataset": dataset, "rows": df.height, "path": str(out) if out else None})


def _dates(start: dt.date, end: dt.date | None) -> list[dt.date]:
    end = end or start
    if end < start:
        raise click.BadParameter(f"--to {end} is before --date {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


@cli.command()
@dataset_argument
@click.option("--date", "start", required=True, callback=_date, help="Trade date, YYYY-MM-DD.")
@click.option("--to", "end", callback=_date, help="Last trade date of a range.")
def fetch(dataset: str, start: dt.date, end: dt.date | None) -> None:
    """Fetch a dataset's file for a date (or range) into bronze."""
    from include.nse.client import NSEClient
    from include.nse.lake import Lake
    from include.nse.pipeline import fetch_to_bronze

    settings = Settings.from_env()
    ds = sources.get(dataset)
    with NSEClient(settings) as client:
        for day in _dates(start, end):
            try:
                _emit(fetch_to_bronze(client, Lake(settings.lake_root), ds, day))
            except NotPublished as e:
                _emit({"dataset": dataset, "trade_date": day.isoformat(), "skipped": e.reason})
            except FetchError as e:
                raise click.ClickException(str(e)) from None


@cli.command()
@dataset_argument
@click.option("--date", "start", required=True, callback=_date, help="Trade date, YYYY-MM-DD.")
@click.option("--to", "end", callback=_date, help="Last trade date of a range.")
def ingest(dataset: str, start: dt.date, end: dt.date | None) -> None:
    """Fetch, parse and load a dataset for a date (or range), without Airflow.

    ClickHouse comes from CLICKHOUSE_HOST/PORT/USER/PASSWORD/DATABASE.
    """
    from include.nse import warehouse
    from include.nse.client import NSEClient
    from include.nse.lake import Lake
    from include.nse.pipeline import ingest as run

    settings = Settings.from_env()
    ds = sources.get(dataset)
    ch = clickhouse_client_from_env()
    try:
        warehouse.migrate(ch, _database())
        with NSEClient(settings) as client:
            for day in _dates(start, end):
                try:
                    stats = run(client, Lake(settings.lake_root), ch, ds, day, _database())
                except NotPublished as e:
                    _emit({"dataset": dataset, "trade_date": day.isoformat(), "skipped": e.reason})
                    continue
                _emit(
                    {
                        "dataset": dataset,
                        "trade_date": day.isoformat(),
                        "rows": stats["load"]["rows"],
                        "bronze": stats["fetch"]["path"],
                        "silver": stats["parse"]["path"],
                    }
                )
    except NSEError as e:
        raise click.ClickException(str(e)) from None
    finally:
        ch.disconnect()


@cli.group(name="warehouse")
def warehouse_group() -> None:
    """ClickHouse schema."""


@warehouse_group.command()
@click.option("--database", default=None, help="Database (default CLICKHOUSE_DATABASE or nse).")
def migrate(database: str | None) -> None:
    """Create the database and apply pending DDL from include/sql."""
    from include.nse import warehouse

    ch = clickhouse_client_from_env()
    try:
        applied = warehouse.migrate(ch, database or _database())
    finally:
        ch.disconnect()
    _emit({"database": database or _database(), "applied": applied})


@cli.group(name="chart")
def chart_group() -> None:
    """Pictures drawn from the lake into its gold layer."""


@chart_group.command(name="option-chain")
@click.option("--underlying", required=True, help="Index or stock, e.g. NIFTY.")
@click.option("--date", "trade_date", callback=_date, help="Trade date (default: latest held).")
@click.option("--expiry", callback=_date, help="Expiry, YYYY-MM-DD (default: the nearest).")
def chart_option_chain(underlying: str, trade_date: dt.date | None, expiry: dt.date | None) -> None:
    """Open interest by strike of the latest snapshot of UNDERLYING, as a PNG in gold."""
    from include.nse.lake import Lake
    from include.nse.option_chain import chart_latest

    lake = Lake(Settings.from_env().lake_root)
    try:
        path = chart_latest(lake, underlying, trade_date, expiry)
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from None
    _emit({"underlying": underlying, "path": str(path)})


def _register_tools() -> None:
    from include.nse.generate import generate_command
    from include.nse.standin import standin_command

    cli.add_command(generate_command, "generate")
    cli.add_command(standin_command, "standin")


_register_tools()


def main() -> None:
    cli(prog_name="python -m include.nse")
