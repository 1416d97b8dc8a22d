"""The steps every dataset goes through: fetch to bronze, parse to silver, load the warehouse.

Each step takes what it needs as arguments (a client, a lake, a ClickHouse client) and returns a
small dict of stats, so the same functions serve Airflow tasks, the command line and tests.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import polars as pl

from include.nse import warehouse
from include.nse.client import NSEClient
from include.nse.errors import NotPublished, ParseError
from include.nse.lake import Lake, sha256_bytes
from include.nse.sources import Dataset


def fetch_to_bronze(client: NSEClient, lake: Lake, dataset: Dataset, trade_date: dt.date) -> dict:
    """Fetch the first published candidate file for the date and keep its bytes in bronze.

    Raises NotPublished when no candidate is published yet.
    """
    started = time.monotonic()
    reasons = []
    for path in dataset.remote_paths(trade_date):
        try:
            response = client.get_archive(path, expect=dataset.expected_kinds)
        except NotPublished as e:
            reasons.append(f"{e.url} ({e.reason})")
            continue
        record = lake.write_bronze(
            dataset.name,
            trade_date,
            response.file_name,
            response.content,
            url=response.url,
            status=response.status,
            content_type=response.content_type,
            fetched_at=response.fetched_at,
        )
        return {
            "dataset": dataset.name,
            "trade_date": trade_date.isoformat(),
            "path": record.path,
            "url": record.url,
            "sha256": record.sha256,
            "bytes": record.size,
            "attempts": response.attempts,
            "seconds": round(time.monotonic() - started, 3),
        }
    raise NotPublished(
        "; ".join(reasons) or dataset.name, f"{dataset.name} for {trade_date} is not published"
    )


def parse_file(dataset: Dataset, path: Path, trade_date: dt.date | None = None) -> pl.DataFrame:
    """Parse one raw file into silver form, checking it holds the expected trade date."""
    df = dataset.parse(path.read_bytes(), path.name)
    if trade_date is not None and "trade_date" in df.columns and df.height:
        found = sorted(set(df["trade_date"].to_list()))
        if found != [trade_date]:
            raise ParseError(
                path.name,
                f"holds trade dates {[d.isoformat() for d in found]}, expected {trade_date}",
                column="trade_date",
            )
    return df


def bronze_to_silver(lake: Lake, dataset: Dataset, trade_date: dt.date) -> dict:
    """Parse the latest bronze file of a date and replace its silver partition."""
    started = time.monotonic()
    record = lake.latest_bronze(dataset.name, trade_date)
    path = Path(record.path)
    if sha256_bytes(path.read_bytes()) != record.sha256:
        raise ParseError(path.name, "bronze file does not match the sha256 in its manifest")
    df = parse_file(dataset, path, trade_date)
    silver = lake.write_silver(dataset.name, trade_date, df)
    return {
        "dataset": dataset.name,
        "trade_date": trade_date.isoformat(),
        "path": str(silver),
        "rows": df.height,
        "bytes": silver.stat().st_size,
        "seconds": round(time.monotonic() - started, 3),
    }


def silver_to_warehouse(
    ch_client, lake: Lake, dataset: Dataset, trade_date: dt.date, database: str = "nse"
) -> dict:
    """Replace the date's rows in ClickHouse with the silver partition."""
    df = lake.read_silver(dataset.name, trade_date)
    return warehouse.load_partition(ch_client, dataset, trade_date, df, database=database)


def ingest(
    client: NSEClient,
    lake: Lake,
    ch_client,
    dataset: Dataset,
    trade_date: dt.date,
    database: str = "nse",
) -> dict:
    """All three steps for one date; raises NotPublished if the file is not there yet."""
    fetched = fetch_to_bronze(client, lake, dataset, trade_date)
    parsed = bronze_to_silver(lake, dataset, trade_date)
    loaded = silver_to_warehouse(ch_client, lake, dataset, trade_date, database)
    return {"fetch": fetched, "parse": parsed, "load": loaded}
