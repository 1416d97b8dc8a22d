"""The steps every dataset goes through: fetch to bronze, parse to silver, load the warehouse.

Each step takes what it needs as arguments (a client, a lake, a ClickHouse client) and returns a
small dict of stats, so the same functions serve Airflow tasks, the command line and tests.
"""

from __future__ import annotations

import datetime as dt
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from include.nse import warehouse
from include.nse.client import Fetched, NSEClient
from include.nse.errors import InHistory, NotPublished, ParseError
from include.nse.lake import Lake, sha256_bytes
from include.nse.sources import Dataset

IST = ZoneInfo("Asia/Kolkata")


def fetch_to_bronze(
    client: NSEClient, lake: Lake, dataset: Dataset, trade_date: dt.date, *, history: bool = True
) -> dict:
    """Fetch the first published candidate file for the date and keep its bytes in bronze.

    Raises NotPublished when no candidate is published yet. A dataset whose archive file only
    holds the latest day (`Dataset.file_date`) is fetched from NSE's API for a date that file has
    moved past; with `history=False` that raises InHistory instead, for a caller that calls the
    API on its own terms (Airflow does, in the API's pool).
    """
    started = time.monotonic()
    try:
        response = _from_archive(client, dataset, trade_date)
    except InHistory:
        if not history:
            raise
        return fetch_history_to_bronze(client, lake, dataset, trade_date)
    return _keep(lake, dataset, trade_date, response, response.file_name, started)


def fetch_history_to_bronze(
    client: NSEClient, lake: Lake, dataset: Dataset, trade_date: dt.date
) -> dict:
    """Fetch a past date's rows from NSE's API (`Dataset.history`) and keep them in bronze."""
    if dataset.history is None:
        raise ValueError(f"{dataset.name} has no API request for past dates")
    started = time.monotonic()
    path, params = dataset.history(trade_date)
    response = client.get_api(path, params)
    return _keep(lake, dataset, trade_date, response, f"{response.file_name}.json", started)


def _from_archive(client: NSEClient, dataset: Dataset, trade_date: dt.date) -> Fetched:
    reasons = []
    for path in dataset.remote_paths(trade_date):
        try:
            response = client.get_archive(path, expect=dataset.expected_kinds)
        except NotPublished as e:
            reasons.append(f"{e.url} ({e.reason})")
            continue
        if dataset.file_date is not None:
            _check_holds(dataset, response, trade_date)
        return response
    raise NotPublished(
        "; ".join(reasons) or dataset.name, f"{dataset.name} for {trade_date} is not published"
    )


def _check_holds(dataset: Dataset, response: Fetched, trade_date: dt.date) -> None:
    """A file holding only the latest day must hold the trade date.

    An earlier day means NSE has not published the date yet; a later one, that the date is
    history. A file whose rows carry no date (a day without deals) is dated by its
    Last-Modified day in Mumbai, and taken for history when it has none.
    """
    held = dataset.file_date(response.content, response.file_name) or _published_on(response)
    if held == trade_date:
        return
    if held is not None and held < trade_date:
        raise NotPublished(response.url, f"it still holds {held}")
    raise InHistory(response.url, f"it holds {held or 'a day it does not name'}")


def _published_on(response: Fetched) -> dt.date | None:
    stamp = response.headers.get("last-modified")
    return parsedate_to_datetime(stamp).astimezone(IST).date() if stamp else None


def _keep(
    lake: Lake,
    dataset: Dataset,
    trade_date: dt.date,
    response: Fetched,
    file_name: str,
    started: float,
) -> dict:
    return {
        "dataset": dataset.name,
        "trade_date": trade_date.isoformat(),
        "attempts": response.attempts,
        **keep_response(lake, dataset.name, trade_date, file_name, response, started),
    }


def keep_response(
    lake: Lake,
    dataset_name: str,
    trade_date: dt.date,
    file_name: str,
    response: Fetched,
    started: float,
) -> dict:
    """A response's raw bytes into bronze, with what the client recorded of it; returns the
    stats every fetch step reports (where the bytes went, their digest and size, the time)."""
    record = lake.write_bronze(
        dataset_name,
        trade_date,
        file_name,
        response.content,
        url=response.url,
        status=response.status,
        content_type=response.content_type,
        fetched_at=response.fetched_at,
    )
    return {
        "path": record.path,
        "url": record.url,
        "sha256": record.sha256,
        "bytes": record.size,
        "seconds": round(time.monotonic() - started, 3),
    }


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
