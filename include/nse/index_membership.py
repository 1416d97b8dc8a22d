"""Index constituents day by day: which list is a given day's, and who was in an index when.

NSE's lists are "current" files: the archive's `ind_<index>list.csv` and the API always show
today's members, so a list is filed under a trade date only when it can be that day's:

- the CSV when its Last-Modified date (IST) is not after the trade date: the file has not
  changed since, so it is the list that was in force that day. Without the header, only on the
  day itself (a run on the trade date, not a backfill);
- otherwise, for the indices in NSE's monthly weightage archive (`mcwb_<mon><yy>.zip`), that
  archive when it is as of the trade date, i.e. on the month's last trading day. This is how
  history is backfilled: one snapshot a month, with weights;
- when the archive host has no list at all (a 404, or an HTML page served with 200), the API,
  when its timestamp falls on the trade date.

A backfill over a range therefore files a snapshot on each month's last trading day for NIFTY 50
and NIFTY NEXT 50, and skips the other days with the reason. Every list of a day lands in one
trade-date partition of `nse.index_constituents`; membership history and the day-to-day
inclusions and exclusions are ClickHouse views over those snapshots (`index_membership`,
`index_changes`), so loading days out of order or again changes nothing but the days loaded.

Each index is fetched on its own (its bronze folder is `bronze/index_constituents/<slug>/`, so
concurrent fetches never share a manifest); the day's lists are then parsed into one silver
partition.
"""

from __future__ import annotations

import datetime as dt
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from include.nse.client import Fetched, NSEClient
from include.nse.errors import NotPublished, ParseError
from include.nse.lake import Lake, sha256_bytes
from include.nse.pipeline import keep_response
from include.nse.sources import index_constituents as source
from include.nse.warehouse import identifier

IST = ZoneInfo("Asia/Kolkata")
DATASET = source.DATASET


def _today() -> dt.date:
    return dt.datetime.now(IST).date()


def fetch_archive(
    client: NSEClient, lake: Lake, index_name: str, trade_date: dt.date, *, today=_today
) -> dict:
    """The index's list for the trade date from the archive host, kept in bronze when found.

    Returns what was kept (`path`, `source`, `as_of`, ...) or, when the host has nothing for
    the day, `path` None with the `reason` and whether the API may still have it (`try_api`).
    """
    started = time.monotonic()
    index = source.index(index_name)
    try:
        response = client.get_archive(index.list_path, expect=("csv",))
    except NotPublished as e:
        return _missing(index, trade_date, f"{e.url}: {e.reason}", try_api=True)
    published = _last_modified(response)
    unchanged = trade_date >= today() if published is None else published <= trade_date
    if unchanged:
        return _keep(
            lake, index, trade_date, response, response.file_name, "csv", published, started
        )
    reason = f"{response.url} is the list published on {published or today()}, after {trade_date}"
    if index.mcwb_member is None:
        return _missing(index, trade_date, reason, try_api=False)
    if (trade_date + dt.timedelta(days=7)).month == trade_date.month:
        # A month's last trading day is in its last week: other days need no request.
        reason += "; the monthly archive is as of the month's last trading day only"
        return _missing(index, trade_date, reason, try_api=False)
    try:
        monthly = client.get_archive(source.mcwb_path(trade_date), expect=("zip",))
    except NotPublished as e:
        return _missing(index, trade_date, f"{reason}; {e.url}: {e.reason}", try_api=False)
    as_of = _own_rows(monthly.content, monthly.file_name, index)["as_of"][0]
    if as_of != trade_date:
        reason += f"; {monthly.url} is as of {as_of}"
        return _missing(index, trade_date, reason, try_api=False)
    return _keep(lake, index, trade_date, monthly, monthly.file_name, "mcwb", as_of, started)


def fetch_api(client: NSEClient, lake: Lake, index_name: str, trade_date: dt.date) -> dict:
    """The index's list from the API, kept in bronze when its timestamp is on the trade date."""
    started = time.monotonic()
    index = source.index(index_name)
    try:
        response = client.get_api(source.API_PATH, {"index": index.name})
    except NotPublished as e:
        return _missing(index, trade_date, f"{e.url}: {e.reason}", try_api=False)
    file_name = f"equity-stockIndices_{index.slug}.json"
    as_of = _own_rows(response.content, file_name, index)["as_of"][0]
    if as_of != trade_date:
        reason = f"{response.url} is the list as of {as_of}, not {trade_date}"
        return _missing(index, trade_date, reason, try_api=False)
    return _keep(lake, index, trade_date, response, file_name, "api", as_of, started)


def _last_modified(response: Fetched) -> dt.date | None:
    header = response.headers.get("last-modified")
    if not header:
        return None
    try:
        return parsedate_to_datetime(header).astimezone(IST).date()
    except (TypeError, ValueError):
        return None


def _own_rows(raw: bytes, file_name: str, index: source.Index) -> pl.DataFrame:
    """The file's rows of `index`: a monthly archive holds several indices."""
    rows = source.parse(raw, file_name).filter(pl.col("index_name") == index.name)
    if rows.is_empty():
        raise ParseError(file_name, f"holds no list of {index.name}")
    return rows


def _bronze_dataset(index: source.Index) -> str:
    return f"{DATASET.name}/{index.slug}"


def _keep(
    lake: Lake,
    index: source.Index,
    trade_date: dt.date,
    response: Fetched,
    file_name: str,
    kind: str,
    as_of: dt.date | None,
    started: float,
) -> dict:
    return {
        "index_name": index.name,
        "trade_date": trade_date.isoformat(),
        "source": kind,
        "as_of": as_of.isoformat() if as_of else None,
        **keep_response(lake, _bronze_dataset(index), trade_date, file_name, response, started),
    }


def _missing(index: source.Index, trade_date: dt.date, reason: str, *, try_api: bool) -> dict:
    return {
        "index_name": index.name,
        "trade_date": trade_date.isoformat(),
        "path": None,
        "reason": reason,
        "try_api": try_api,
    }


def lists_to_silver(lake: Lake, trade_date: dt.date, fetched: list[dict]) -> dict:
    """Parse the day's kept lists into its silver partition, replacing it.

    Raises NotPublished when no index has a list for the day.
    """
    started = time.monotonic()
    kept = [f for f in fetched if f["path"]]
    if not kept:
        reasons = "; ".join(f"{f['index_name']}: {f['reason']}" for f in fetched)
        raise NotPublished(DATASET.name, f"no index list for {trade_date} ({reasons})")
    frames = []
    for item in kept:
        path = Path(item["path"])
        raw = path.read_bytes()
        if sha256_bytes(raw) != item["sha256"]:
            raise ParseError(path.name, "bronze file does not match the sha256 of its fetch")
        rows = _own_rows(raw, path.name, source.index(item["index_name"]))
        as_of = dt.date.fromisoformat(item["as_of"]) if item["as_of"] else None
        frames.append(rows.with_columns(trade_date=pl.lit(trade_date), as_of=pl.lit(as_of)))
    silver = DATASET.conform(pl.concat(frames))
    written = lake.write_silver(DATASET.name, trade_date, silver)
    return {
        "dataset": DATASET.name,
        "trade_date": trade_date.isoformat(),
        "path": str(written),
        "rows": silver.height,
        "indices": {f["index_name"]: f["source"] for f in kept},
        "missing": {f["index_name"]: f["reason"] for f in fetched if not f["path"]},
        "seconds": round(time.monotonic() - started, 3),
    }


# ---- questions for the warehouse ------------------------------------------------------------
def members_on(client, index_name: str, day: dt.date, database: str = "nse") -> list[str]:
    """Symbols in the index on `day`, by the snapshots loaded so far."""
    rows = client.execute(
        f"SELECT symbol FROM {identifier(database)}.index_membership "
        "WHERE index_name = %(index)s AND valid_from <= %(day)s "
        "AND (valid_to > %(day)s OR valid_to IS NULL) ORDER BY symbol",
        {"index": index_name, "day": day},
    )
    return [symbol for (symbol,) in rows]


def changes_on(client, trade_date: dt.date, database: str = "nse") -> list[dict]:
    """Inclusions and exclusions that took effect with the day's snapshot, per index."""
    rows = client.execute(
        f"SELECT index_name, change, symbol FROM {identifier(database)}.index_changes "
        "WHERE trade_date = %(day)s ORDER BY index_name, change, symbol",
        {"day": trade_date},
    )
    return [
        {"index_name": name, "change": change, "symbol": symbol} for name, change, symbol in rows
    ]
