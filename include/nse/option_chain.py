"""The intraday option chain: fetch snapshots, keep them, load them, and read them back.

A cycle, for a list of underlyings:

1. `fetch_batch`: for each underlying, the expiries (`option-chain-contract-info`) and then
   each expiry's chain (`option-chain-v3`), every response kept in bronze under
   `bronze/option_chain/trade_date=D/underlying=X/` with the time we received it in its name,
   so nothing is ever overwritten, and each underlying's bronze manifest rewritten once per
   cycle (`Lake.bronze_batch`). An underlying that fails is recorded, not raised.
2. `store_batch`: each response parsed; a response whose exchange timestamp did not move since
   the last one stored for that underlying and expiry is stale and is not stored again. The
   rest become one Parquet file per fetch under `silver/option_chain/trade_date=D/underlying=X/`
   (D being the snapshot's own date), with `_latest.json` there remembering the last stored
   timestamp per expiry.
3. `validate_parts`: the cycle's new silver rows checked against the dataset's expectations
   (`include/nse/quality.py`), one validation per trade date, before anything is loaded.
4. `load_parts`: silver files into ClickHouse, and their analytics into gold and ClickHouse.
   Rows go in only for (underlying, snapshot, expiry) the table does not hold yet, so loading a
   snapshot twice leaves one copy (see `include/sql/0008_option_chain.sql`).

`missing_share` says how much of a cycle is missing, for the caller to decide whether to alarm.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path

import polars as pl

from include.nse import chain_analytics, quality, warehouse
from include.nse.errors import NSEError
from include.nse.lake import BronzeBatch, Lake, _atomic_write_bytes
from include.nse.sources.option_chain import (
    DATASET,
    IST,
    expiry_dates,
    nse_date_text,
    parse,
)

log = logging.getLogger(__name__)

#: Index underlyings with options on NSE; stocks come from the F&O bhavcopy.
INDEX_UNDERLYINGS = ("NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "NIFTYNXT50")
CONTRACT_INFO = "/api/option-chain-contract-info"
CHAIN = "/api/option-chain-v3"
#: Gold dataset (and ClickHouse table) of the analytics; charts go under their own name.
ANALYTICS = "option_chain_analytics"
CHARTS = "option_chain_charts"
_STATE = "_latest.json"


def underlyings(lake: Lake) -> list[str]:
    """The index underlyings, then every stock with options in the latest F&O bhavcopy held."""
    dates = lake.silver_dates("fo_bhavcopy")
    if not dates:
        log.warning("no F&O bhavcopy in the lake: option chains for the indices only")
        return list(INDEX_UNDERLYINGS)
    stocks = (
        lake.read_silver("fo_bhavcopy", dates[-1])
        .filter(pl.col("instrument") == "OPTSTK")
        .get_column("symbol")
        .unique()
        .sort()
        .to_list()
    )
    return [*INDEX_UNDERLYINGS, *(s for s in stocks if s not in INDEX_UNDERLYINGS)]


def batches(names: list[str], size: int) -> list[list[str]]:
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    return [names[i : i + size] for i in range(0, len(names), size)]


def chain_type(underlying: str) -> str:
    """The v3 endpoint's `type` parameter."""
    return "Indices" if underlying in INDEX_UNDERLYINGS else "Equity"


# ---- fetch ---------------------------------------------------------------------------------
def fetch_snapshot(client, bronze: BronzeBatch, underlying: str) -> dict:
    """Every expiry's chain of one underlying into bronze; returns the responses' bronze paths."""
    responses = []

    def keep(response, label: str) -> Path:
        received = response.fetched_at.astimezone(IST)
        record = bronze.write(
            DATASET.name,
            received.date(),
            f"{received:%H%M%S_%f}_{label}.json",
            response.content,
            url=response.url,
            status=response.status,
            content_type=response.content_type,
            fetched_at=response.fetched_at,
            underlying=underlying,
        )
        return Path(record.path)

    info = client.get_api(CONTRACT_INFO, {"symbol": underlying})
    info_path = bronze.written(keep(info, "contract-info"))  # kept before it is parsed
    for expiry in expiry_dates(info.content, info_path.name):
        params = {"type": chain_type(underlying), "symbol": underlying}
        response = client.get_api(CHAIN, {**params, "expiry": nse_date_text(expiry)})
        path = keep(response, f"v3_{expiry.isoformat()}")
        responses.append({"path": str(path), "fetched_at": response.fetched_at.isoformat()})
    return {"underlying": underlying, "responses": responses}


def fetch_batch(client, lake: Lake, names: list[str]) -> dict:
    """`fetch_snapshot` for each name; a failing underlying is recorded and the rest go on."""
    started = time.monotonic()
    fetched, failed = [], {}
    with lake.bronze_batch() as bronze:
        for underlying in names:
            try:
                fetched.append(fetch_snapshot(client, bronze, underlying))
            except NSEError as e:
                log.warning("option chain of %s not fetched: %s", underlying, e)
                failed[underlying] = str(e)
    return {
        "fetched": fetched,
        "failed": failed,
        "seconds": round(time.monotonic() - started, 3),
    }


# ---- store ---------------------------------------------------------------------------------
def _state_path(lake: Lake, trade_date: dt.date, underlying: str) -> Path:
    return lake.partition("silver", DATASET.name, trade_date, underlying) / _STATE


def latest_stored(lake: Lake, trade_date: dt.date, underlying: str) -> dict[str, str]:
    """Expiry (ISO) -> exchange timestamp (ISO) of the last snapshot stored for it that day."""
    path = _state_path(lake, trade_date, underlying)
    return json.loads(path.read_text()) if path.exists() else {}


def store_snapshot(lake: Lake, fetched: dict) -> dict:
    """Parse one underlying's responses; store those whose exchange timestamp moved."""
    underlying = fetched["underlying"]
    frames = [
        parse(
            Path(r["path"]).read_bytes(),
            Path(r["path"]).name,
            underlying=underlying,
            fetched_at=dt.datetime.fromisoformat(r["fetched_at"]),
        )
        for r in fetched["responses"]
    ]
    parts, stale, rows = [], 0, 0
    frames = [f for f in frames if f.height]
    by_date: dict[dt.date, list[pl.DataFrame]] = {}
    for frame in frames:
        by_date.setdefault(frame["trade_date"][0], []).append(frame)
    for trade_date, day_frames in sorted(by_date.items()):
        latest = latest_stored(lake, trade_date, underlying)
        fresh = []
        for frame in day_frames:
            expiry = frame["expiry_date"][0].isoformat()
            snapshot = frame["snapshot_ts"][0].isoformat()
            if expiry in latest and snapshot <= latest[expiry]:
                stale += 1
                continue
            fresh.append(frame)
            latest[expiry] = snapshot
        if not fresh:
            continue
        chain = pl.concat(fresh)
        received = chain["fetched_at"].min().astimezone(IST)
        name = f"{received:%H%M%S_%f}.parquet"
        parts.append(
            str(lake.write_part("silver", DATASET.name, trade_date, underlying, name, chain))
        )
        rows += chain.height
        _atomic_write_bytes(
            _state_path(lake, trade_date, underlying), json.dumps(latest, indent=1).encode()
        )
    return {
        "underlying": underlying,
        "parts": parts,
        "rows": rows,
        "responses": len(frames),
        "stale_responses": stale,
        "stale": bool(frames) and stale == len(frames),
    }


def store_batch(lake: Lake, fetched: dict) -> dict:
    """`store_snapshot` for each fetched underlying; one that does not parse is recorded."""
    stored, failed = [], dict(fetched["failed"])
    for snapshot in fetched["fetched"]:
        try:
            stored.append(store_snapshot(lake, snapshot))
        except NSEError as e:
            log.warning("option chain of %s not stored: %s", snapshot["underlying"], e)
            failed[snapshot["underlying"]] = str(e)
    return {
        "parts": [p for s in stored for p in s["parts"]],
        "stored": sorted(s["underlying"] for s in stored if s["parts"]),
        "stale": sorted(s["underlying"] for s in stored if s["stale"]),
        "rows": sum(s["rows"] for s in stored),
        "failed": failed,
    }


def missing_share(expected: list[str], failed: dict[str, str]) -> float:
    """Share of the expected underlyings that failed (stale ones are not missing)."""
    if not expected:
        return 0.0
    return len(set(failed) & set(expected)) / len(set(expected))


# ---- quality gate --------------------------------------------------------------------------
def validate_parts(lake: Lake, parts: list[str]) -> list[quality.Report]:
    """The new silver rows of a cycle validated together, one report per trade date; the result
    is kept under `quality/option_chain/trade_date=D/` named by the earliest response's time."""
    if not parts:
        return []
    rows = pl.concat([pl.read_parquet(part) for part in parts])
    reports = []
    for (trade_date,), day in rows.partition_by("trade_date", as_dict=True).items():
        received = day["fetched_at"].min().astimezone(IST)
        reports.append(
            quality.validate_rows(lake, DATASET, day, trade_date, f"{received:%H%M%S_%f}")
        )
    return reports


# ---- warehouse and gold --------------------------------------------------------------------
def insert_new_snapshots(client, table: str, frame: pl.DataFrame, database: str = "nse") -> int:
    """Insert the rows whose (underlying, snapshot, expiry) `table` does not hold yet."""
    key = ["underlying", "snapshot_ts", "expiry_date"]
    if frame.is_empty():
        return 0
    target = f"{warehouse.identifier(database)}.{warehouse.identifier(table)}"
    held = warehouse.query_polars(
        client,
        f"SELECT DISTINCT underlying, snapshot_ts, expiry_date FROM {target} "
        "WHERE trade_date IN %(dates)s AND underlying IN %(names)s",
        {
            "dates": tuple(frame["trade_date"].unique().to_list()),
            "names": tuple(frame["underlying"].unique().to_list()),
        },
    )
    new = frame.join(held.cast(frame.select(key).schema), on=key, how="anti")
    return warehouse.insert_columns(client, target, new)


def load_parts(client, lake: Lake, parts: list[str], database: str = "nse") -> dict:
    """Silver files into ClickHouse, and their analytics into gold and ClickHouse."""
    started = time.perf_counter()
    chains, golds = [], []
    for part in parts:
        chain = pl.read_parquet(part)
        gold = chain_analytics.analytics(chain)
        trade_date, underlying = chain["trade_date"][0], chain["underlying"][0]
        lake.write_part("gold", ANALYTICS, trade_date, underlying, Path(part).name, gold)
        chains.append(chain)
        golds.append(gold)
    rows = gold_rows = 0
    if parts:
        rows = insert_new_snapshots(client, DATASET.table, pl.concat(chains), database)
        gold_rows = insert_new_snapshots(client, ANALYTICS, pl.concat(golds), database)
    return {
        "parts": len(parts),
        "rows": rows,
        "analytics_rows": gold_rows,
        "seconds": round(time.perf_counter() - started, 3),
    }


# ---- reading back --------------------------------------------------------------------------
def latest_chain(
    lake: Lake,
    underlying: str,
    trade_date: dt.date | None = None,
    expiry: dt.date | None = None,
) -> pl.DataFrame:
    """The latest stored snapshot of one expiry (the nearest, unless given) of an underlying."""
    if trade_date is None:
        held = [
            d
            for d in lake.silver_dates(DATASET.name)
            if lake.partition("silver", DATASET.name, d, underlying).exists()
        ]
        if not held:
            raise FileNotFoundError(f"no option chain of {underlying} in {lake.root}")
        trade_date = held[-1]
    directory = lake.partition("silver", DATASET.name, trade_date, underlying)
    if not any(directory.glob("*.parquet")):
        raise FileNotFoundError(f"no option chain of {underlying} for {trade_date} in {directory}")
    chain = pl.read_parquet(directory / "*.parquet")
    if expiry is None:
        expiry = chain["expiry_date"].min()
    chain = chain.filter(pl.col("expiry_date") == expiry)
    if chain.is_empty():
        raise FileNotFoundError(f"no {expiry} expiry of {underlying} on {trade_date}")
    return chain.filter(pl.col("snapshot_ts") == pl.col("snapshot_ts").max())


def chart_latest(
    lake: Lake,
    underlying: str,
    trade_date: dt.date | None = None,
    expiry: dt.date | None = None,
) -> Path:
    """Draw the latest snapshot's OI by strike into the gold lake; returns the PNG's path."""
    chain = latest_chain(lake, underlying, trade_date, expiry)
    gold = chain_analytics.analytics(chain).row(0, named=True)
    at = gold["snapshot_ts"]
    path = lake.partition("gold", CHARTS, gold["trade_date"], underlying) / (
        f"{gold['expiry_date'].isoformat()}_{at:%H%M%S}.png"
    )
    return chain_analytics.draw_oi_chart(chain, gold, path)
