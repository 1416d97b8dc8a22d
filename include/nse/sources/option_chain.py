"""Option chain: every strike's calls and puts for an underlying, as NSE's API shows them live.

NSE serves the chain in two shapes, both JSON with the legs under `records.data`:

- the current API (from December 2025): `/api/option-chain-contract-info?symbol=X` lists the
  expiries (`expiryDates`, `DD-Mon-YYYY`), then `/api/option-chain-v3?type=Indices|Equity&
  symbol=X&expiry=DD-Mon-YYYY` gives one expiry: each item names it in `expiryDates` (a single
  date despite the plural) and its legs quote the best bid and ask as `buyPrice1`,
  `buyQuantity1`, `sellPrice1`, `sellQuantity1`;
- the older `/api/option-chain-indices` and `-equities?symbol=X`: every expiry in one response
  under `records` (items name theirs in `expiryDate`, legs quote `bidprice`, `bidQty`,
  `askPrice`, `askQty`), plus `filtered`, a repeat of the nearest expiry with its totals.

Either way `records.timestamp` (`23-Aug-2019 15:30:00`, Mumbai time) is when the exchange
computed the chain: it is the snapshot's time, whenever we fetched it. A strike may lack its CE
or its PE leg. Open interest and its change are in contracts, and can be fractional (NSE divides
by the current lot size after a lot size change: 16.666... in a 2019 NIFTY file); volume is in
contracts. NSE prints 0 where a leg has no implied volatility, last price, bid or ask: silver
holds null for those, so a 0 never passes for a price.

Every number is a JSON number, checked, never converted: text where a number belongs ("18"),
a bool, NaN, Infinity or a number too large for a float is refused with the field's path
(`records.data[3].CE.openInterest`), and so is a fraction or a negative number in a count
(volume, bid and ask quantities). No real response seen holds NaN or an infinity in any field,
so none is nulled: JSON null is NSE's only "no value", and it is null in silver where the
column allows one (see `COLUMNS`). Text fields (the underlying, dates) must be JSON strings.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path
from typing import ClassVar

import polars as pl

from include.nse.dates import IST, nse_date, nse_date_text, nse_datetime
from include.nse.errors import NSEError, ParseError
from include.nse.lake import read_parquet, write_json
from include.nse.payload import digest, is_number, json_object
from include.nse.sources.base import Column, Dataset, Keep, Publication, Request, Step
from include.nse.sources.checks import (
    WARNING,
    at_most,
    non_negative,
    not_null,
    one_of,
    positive,
)

log = logging.getLogger(__name__)

LEGS = ("CE", "PE")
#: Index underlyings with options on NSE; stocks come from the F&O bhavcopy.
INDEX_UNDERLYINGS = ("NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "NIFTYNXT50")
CONTRACT_INFO = "/api/option-chain-contract-info"
CHAIN = "/api/option-chain-v3"
#: Gold dataset (and ClickHouse table) of the analytics.
ANALYTICS = "option_chain_analytics"
#: A load inserts the rows of snapshots the table does not hold yet, by this key.
SNAPSHOT = ["underlying", "snapshot_ts", "expiry_date"]
_STATE = "_latest.json"

COLUMNS = (
    Column("trade_date", pl.Date, "Date", "Trading day of the snapshot (its IST date)."),
    Column(
        "snapshot_ts",
        pl.Datetime("us", "Asia/Kolkata"),
        "DateTime('Asia/Kolkata')",
        "When the exchange computed the chain (records.timestamp), IST.",
    ),
    Column(
        "fetched_at",
        pl.Datetime("us", "UTC"),
        "Nullable(DateTime('UTC'))",
        "When we received the response; null for a file parsed on its own.",
    ),
    Column("underlying", pl.String, "String", "Index (NIFTY...) or stock symbol."),
    Column("underlying_value", pl.Float64, "Float64", "Underlying's price in the snapshot."),
    Column("expiry_date", pl.Date, "Date", "Day the contract expires."),
    Column("strike_price", pl.Float64, "Float64", "Strike, rupees."),
    Column("option_type", pl.String, "String", "CE (call) or PE (put)."),
    Column(
        "open_interest",
        pl.Float64,
        "Nullable(Float64)",
        "Open contracts (lots); may be fractional.",
    ),
    Column(
        "change_in_oi", pl.Float64, "Nullable(Float64)", "Change in open interest today, contracts."
    ),
    Column("volume", pl.UInt64, "Nullable(UInt64)", "Contracts traded today."),
    Column(
        "implied_volatility",
        pl.Float64,
        "Nullable(Float64)",
        "NSE's implied volatility, percent; null where NSE prints 0.",
    ),
    Column(
        "last_price", pl.Float64, "Nullable(Float64)", "Last traded price; null where NSE prints 0."
    ),
    Column(
        "change", pl.Float64, "Nullable(Float64)", "Last price minus the previous close, rupees."
    ),
    Column("bid_qty", pl.UInt64, "Nullable(UInt64)", "Quantity at the best bid."),
    Column("bid_price", pl.Float64, "Nullable(Float64)", "Best bid; null where there is none."),
    Column("ask_price", pl.Float64, "Nullable(Float64)", "Best ask; null where there is none."),
    Column("ask_qty", pl.UInt64, "Nullable(UInt64)", "Quantity at the best ask."),
    Column("source_format", pl.String, "String", "Shape read: v3, or legacy (records+filtered)."),
)
KEY = ("underlying", "snapshot_ts", "expiry_date", "strike_price", "option_type")
_DTYPES = {column.name: column.dtype for column in COLUMNS}
#: What a sound snapshot looks like. The change in open interest and in price can be negative;
#: prices are above zero where there is one (silver holds null for NSE's 0). A bid above the
#: ask is only recorded: the two sides are quoted at slightly different moments.
#: A field NSE sends as null is null in silver: open interest must be there (the analytics rest
#: on it); a missing volume, change or quote size is recorded as a warning.
CHECKS = (
    *not_null("open_interest"),
    *not_null("change_in_oi", "volume", "change", "bid_qty", "ask_qty", severity=WARNING),
    *positive("strike_price", "underlying_value", "last_price", "bid_price", "ask_price"),
    one_of("option_type", LEGS),
    at_most("trade_date", "expiry_date"),
    *non_negative("open_interest", "volume", "implied_volatility", "bid_qty", "ask_qty"),
    at_most("bid_price", "ask_price", WARNING),
)

#: Silver column -> the leg's field, in each shape: the same names but for the best quotes.
_LEG_FIELDS = {
    "open_interest": "openInterest",
    "change_in_oi": "changeinOpenInterest",
    "volume": "totalTradedVolume",
    "implied_volatility": "impliedVolatility",
    "last_price": "lastPrice",
    "change": "change",
}
_FIELDS = {
    "legacy": _LEG_FIELDS
    | {"bid_qty": "bidQty", "bid_price": "bidprice", "ask_price": "askPrice", "ask_qty": "askQty"},
    "v3": _LEG_FIELDS
    | {
        "bid_qty": "buyQuantity1",
        "bid_price": "buyPrice1",
        "ask_price": "sellPrice1",
        "ask_qty": "sellQuantity1",
    },
}
#: The item field naming the expiry, in each shape.
_EXPIRY_FIELD = {"legacy": "expiryDate", "v3": "expiryDates"}
_ZERO_IS_NONE = ("implied_volatility", "last_price", "bid_price", "ask_price")
_NULLABLE = {column.name: column.nullable for column in COLUMNS}
#: Columns of whole numbers >= 0 (volume, quote sizes), and the largest one they hold.
_COUNTS = frozenset(c.name for c in COLUMNS if c.dtype.is_unsigned_integer())
_COUNT_MAX = 2**64 - 1


def _date(text: object, file_name: str, where: str) -> dt.date:
    try:
        return nse_date(text)
    except ValueError as exc:
        raise ParseError(file_name, str(exc), column=where) from None


def snapshot_time(text: object, file_name: str) -> dt.datetime:
    """`records.timestamp` (`23-Aug-2019 15:30:00`) as an IST datetime."""
    try:
        return nse_datetime(text)
    except ValueError as exc:
        raise ParseError(file_name, str(exc), column="records.timestamp") from None


def expiry_dates(raw: bytes, file_name: str) -> list[dt.date]:
    """The expiries an option-chain-contract-info response lists, in its order."""
    listed = json_object(raw, file_name).get("expiryDates")
    if not isinstance(listed, list) or not listed:
        raise ParseError(file_name, "expected a non-empty list", column="expiryDates")
    return [_date(text, file_name, f"expiryDates[{i}]") for i, text in enumerate(listed)]


def parse(
    raw: bytes,
    file_name: str,
    *,
    underlying: str | None = None,
    fetched_at: dt.datetime | None = None,
) -> pl.DataFrame:
    """Either shape to silver, one row per leg present.

    `underlying` is checked against the legs' own `underlying` field, and names the chain when
    no leg carries one; `fetched_at` is when the response arrived (UTC).
    """
    records = json_object(raw, file_name).get("records")
    if not isinstance(records, dict):
        raise ParseError(file_name, "expected an object of option chain records", column="records")
    items = records.get("data")
    if not isinstance(items, list):
        raise ParseError(file_name, "expected a list of strikes", column="records.data")
    snapshot_ts = snapshot_time(records.get("timestamp"), file_name)
    shape = _shape(items, file_name)
    # Checked and collected in plain Python, one pass over the legs: a response is small, and a
    # polars operation costs more to set up than the whole loop.
    fields = [
        (name, field, name in _ZERO_IS_NONE, _NULLABLE[name], name in _COUNTS)
        for name, field in _FIELDS[shape].items()
    ]
    expiry_field = _EXPIRY_FIELD[shape]
    columns: dict[str, list] = {
        name: []
        for name in ("underlying", "underlying_value", "expiry_date", "strike_price", "option_type")
    }
    columns |= {name: [] for name, *_ in fields}
    legs_seen: set[tuple] = set()
    duplicate = None
    for i, item in enumerate(items):
        where = f"records.data[{i}]"
        expiry = _date(item.get(expiry_field), file_name, f"{where}.{expiry_field}")
        strike = _number(item, "strikePrice", file_name, where)
        for option_type in LEGS:
            leg = item.get(option_type)
            if leg is None:
                continue
            leg_where = f"{where}.{option_type}"
            if not isinstance(leg, dict):
                raise ParseError(file_name, "expected an object", column=leg_where)
            _check_leg(leg, expiry, strike, file_name, leg_where)
            if (expiry, strike, option_type) in legs_seen:
                duplicate = duplicate or (expiry, strike, option_type)
            legs_seen.add((expiry, strike, option_type))
            named = leg.get("underlying", underlying)
            if named is not None and not isinstance(named, str):
                raise ParseError(
                    file_name, f"expected text, found {named!r}", column=f"{leg_where}.underlying"
                )
            columns["underlying"].append(named)
            source = leg if "underlyingValue" in leg else records
            columns["underlying_value"].append(
                _number(source, "underlyingValue", file_name, leg_where, nullable=True)
            )
            columns["expiry_date"].append(expiry)
            columns["strike_price"].append(strike)
            columns["option_type"].append(option_type)
            for name, field, zero_is_none, nullable, count in fields:
                value = _number(leg, field, file_name, leg_where, nullable=nullable, count=count)
                columns[name].append(None if zero_is_none and value == 0 else value)
    _check_underlying(columns["underlying"], file_name, underlying)
    if None in columns["underlying_value"]:
        raise ParseError(
            file_name, "no underlyingValue in a leg or in records", column="records.underlyingValue"
        )
    if duplicate:
        expiry, strike, option_type = duplicate
        raise ParseError(
            file_name,
            f"strike {float(strike)} {option_type} of {expiry} appears more than once",
            column="records.data",
        )
    frame = pl.DataFrame(columns, schema={name: _DTYPES[name] for name in columns})
    silver = frame.with_columns(
        trade_date=pl.lit(snapshot_ts.date()),
        snapshot_ts=pl.lit(snapshot_ts, dtype=_DTYPES["snapshot_ts"]),
        fetched_at=pl.lit(fetched_at, dtype=_DTYPES["fetched_at"]),
        source_format=pl.lit(shape),
    )
    return DATASET.conform(silver)


def _shape(items: list, file_name: str) -> str:
    """v3 items name their expiry in `expiryDates`, legacy ones in `expiryDate`."""
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ParseError(file_name, "expected an object", column=f"records.data[{i}]")
    if items and all("expiryDates" in item for item in items):
        return "v3"
    if all("expiryDate" in item for item in items):
        return "legacy"
    raise ParseError(
        file_name,
        "expected every strike to name its expiry in expiryDates (v3) or expiryDate (legacy)",
        column="records.data",
    )


def _number(
    obj: dict,
    field: str,
    file_name: str,
    where: str,
    *,
    nullable: bool = False,
    count: bool = False,
) -> float | int | None:
    """A JSON number (finite, not a bool or text), a whole one >= 0 for a `count`; null only
    where the column allows it."""
    value = obj.get(field)
    if value is None and nullable:
        return None
    if count:
        whole = is_number(value) and float(value).is_integer() and 0 <= value <= _COUNT_MAX
        if whole:
            return int(value)
    elif is_number(value):
        return value
    expected = "a whole number >= 0" if count else "a number"
    raise ParseError(
        file_name,
        f"expected {expected}{' or null' if nullable else ''}, found {value!r:.60}",
        column=f"{where}.{field}",
    )


def _check_leg(leg: dict, expiry: dt.date, strike: float, file_name: str, where: str) -> None:
    """A leg that repeats its strike's expiry or strike (v3 legs do: `expiryDate` as
    DD-MM-YYYY, `strikePrice`) must agree with it."""
    own = leg.get("expiryDate")
    if own is not None:
        try:
            day = dt.datetime.strptime(str(own), "%d-%m-%Y").date()
        except ValueError:
            day = _date(own, file_name, f"{where}.expiryDate")
        if day != expiry:
            raise ParseError(
                file_name, f"leg expires {own}, its strike {expiry}", column=f"{where}.expiryDate"
            )
    if "strikePrice" in leg and _number(leg, "strikePrice", file_name, where) != strike:
        raise ParseError(
            file_name,
            f"leg strike {leg['strikePrice']}, its item's {strike}",
            column=f"{where}.strikePrice",
        )


def _check_underlying(legs: list[str | None], file_name: str, expected: str | None) -> None:
    """Every leg names the same underlying, the one expected when given."""
    names = set(legs) - {None}
    if None in legs or len(names) > 1:
        raise ParseError(
            file_name,
            f"legs name the underlying {sorted(names) or 'nowhere'}; expected one name in every "
            "leg (or pass the underlying)",
            column="underlying",
        )
    if expected is not None and names != {expected}:
        raise ParseError(
            file_name, f"legs are for {sorted(names)}, expected {expected}", column="underlying"
        )


# ---- the per-refresh list of snapshots ---------------------------------------------------------
def underlyings(lake) -> list[str]:
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


def _part(underlying: str) -> str:
    return f"underlying={underlying}"


class CoverageError(NSEError):
    """Too many of a cycle's underlyings are missing."""


def coverage(expected: list[str], parsed: list[dict], max_missing_share: float) -> dict:
    """How much of a cycle landed; CoverageError when more than `max_missing_share` of the
    expected underlyings is missing (stale ones are not missing: NSE had nothing new)."""
    failed = {name: reason for batch in parsed for name, reason in batch["failed"].items()}
    landed = {name for batch in parsed for name in (*batch["stored"], *batch["stale"])}
    # A batch whose tasks failed outright reports nothing: its underlyings are missing too.
    for name in expected:
        if name not in landed and name not in failed:
            failed[name] = "no result from its batch"
    share = len(set(failed) & set(expected)) / len(set(expected)) if expected else 0.0
    summary = {
        "expected": len(expected),
        "stored": sum(len(batch["stored"]) for batch in parsed),
        "stale": sum(len(batch["stale"]) for batch in parsed),
        "failed": failed,
        "missing_share": round(share, 4),
    }
    log.info("option chain cycle: %s", json.dumps(summary))
    if share > max_missing_share:
        raise CoverageError(
            f"{len(failed)} of {len(expected)} underlyings missing ({share:.1%} > "
            f"{max_missing_share:.1%}): {', '.join(sorted(failed))}"
        )
    return summary


class Snapshots(Publication):
    """NSE serves only the current chain: a run snapshots a list of underlyings, each expiry of
    each from `option-chain-v3` after `option-chain-contract-info` lists the expiries.

    Every response is kept in bronze under `underlying=X/` named by the time it arrived, so
    nothing is ever overwritten. A response whose exchange timestamp did not move since the last
    one stored for that underlying and expiry is stale and not stored again; the rest become one
    silver Parquet file per underlying and cycle, `_latest.json` beside them remembering the last
    stored timestamp per expiry. An underlying that fails is recorded and the rest go on. Loads
    insert the rows of snapshots the table does not hold yet, so loading one twice leaves one
    copy (see `include/sql/0008_option_chain.sql`).
    """

    host: ClassVar = "api"
    per_item: ClassVar[bool] = True
    items_param: ClassVar[str] = "underlyings"

    def default_items(self, lake) -> list[str]:
        return underlyings(lake)

    def fetch(self, client, request: Request, keep: Keep) -> dict:
        snapshots, failed = [], {}
        for underlying in request.items:
            try:
                snapshots.append(self._fetch_one(client, underlying, keep))
            except NSEError as e:
                log.warning("option chain of %s not fetched: %s", underlying, e)
                failed[underlying] = str(e)
        return {"snapshots": snapshots, "failed": failed}

    @staticmethod
    def _fetch_one(client, underlying: str, keep: Keep) -> dict:
        def kept(response, label: str) -> str:
            received = response.fetched_at.astimezone(IST)
            name = f"{received:%H%M%S_%f}_{label}.json"
            return keep(response, name, part=_part(underlying)).path

        info = client.get_api(CONTRACT_INFO, {"symbol": underlying})
        kept(info, "contract-info")
        responses = []
        for expiry in expiry_dates(info.content, f"{underlying} contract info"):
            params = {"type": chain_type(underlying), "symbol": underlying}
            response = client.get_api(CHAIN, {**params, "expiry": nse_date_text(expiry)})
            path = kept(response, f"v3_{expiry.isoformat()}")
            responses.append({"path": path, "fetched_at": response.fetched_at.isoformat()})
        return {"underlying": underlying, "responses": responses}

    def to_silver(self, ctx, dataset: Dataset, fetched: dict) -> dict:
        """Each fetched underlying's new snapshots into a silver part; one that does not parse
        is recorded with the fetch's failures."""
        started = time.monotonic()
        digests = {f["path"]: f["sha256"] for f in fetched.get("files", [])}
        stored, failed = [], dict(fetched.get("failed", {}))
        for snapshot in fetched.get("snapshots", []):
            try:
                stored.append(_store(ctx.lake, snapshot, digests))
            except NSEError as e:
                log.warning("option chain of %s not stored: %s", snapshot["underlying"], e)
                failed[snapshot["underlying"]] = str(e)
        return {
            "dataset": dataset.name,
            "trade_date": fetched.get("trade_date"),
            "silver": [p for s in stored for p in s["parts"]],
            "stored": sorted(s["underlying"] for s in stored if s["parts"]),
            "stale": sorted(s["underlying"] for s in stored if s["stale"]),
            "rows": sum(s["rows"] for s in stored),
            "failed": failed,
            "seconds": round(time.monotonic() - started, 3),
        }

    def validate_parts(self, ctx, dataset: Dataset, parts: list[str]) -> list:
        """A cycle's new rows checked together, one report per trade date, kept under
        `quality/option_chain/trade_date=D/` named by the earliest response's time; row-count
        checks do not apply to a cycle."""
        from include.nse import quality

        if not parts:
            return []
        rows = pl.concat([read_parquet(part) for part in parts])
        reports = []
        for (day,), chain in sorted(rows.partition_by("trade_date", as_dict=True).items()):
            received = chain["fetched_at"].min().astimezone(IST)
            reports.append(
                quality.validate_rows(ctx.lake, dataset, chain, day, f"{received:%H%M%S_%f}")
            )
        return reports

    def load_parts(self, client, database: str, dataset: Dataset, parts: list[str]) -> dict:
        from include.nse import warehouse

        rows = 0
        if parts:
            chain = pl.concat([read_parquet(part) for part in parts])
            rows = warehouse.insert_new(client, dataset.table, chain, SNAPSHOT, database)
        return {"table": f"{database}.{dataset.table}", "rows": rows, "silver": parts}


def _state_path(lake, trade_date: dt.date, underlying: str) -> Path:
    return lake.partition("silver", DATASET.name, trade_date, _part(underlying)) / _STATE


def latest_stored(lake, trade_date: dt.date, underlying: str) -> dict[str, str]:
    """Expiry (ISO) -> exchange timestamp (ISO) of the last snapshot stored for it that day."""
    path = _state_path(lake, trade_date, underlying)
    return json.loads(path.read_text()) if path.exists() else {}


def _store(lake, snapshot: dict, digests: dict[str, str]) -> dict:
    """Parse one underlying's responses; store those whose exchange timestamp moved."""
    underlying = snapshot["underlying"]
    frames = []
    for response in snapshot["responses"]:
        path = Path(response["path"])
        raw = path.read_bytes()
        expected = digests.get(str(path))
        if expected is not None and digest(raw) != expected:
            raise ParseError(path.name, "bronze file does not match the sha256 of its fetch")
        frame = parse(
            raw,
            path.name,
            underlying=underlying,
            fetched_at=dt.datetime.fromisoformat(response["fetched_at"]),
        )
        if frame.height:
            frames.append(frame)
    parts, stale, rows = [], 0, 0
    by_date: dict[dt.date, list[pl.DataFrame]] = {}
    for frame in frames:
        by_date.setdefault(frame["trade_date"][0], []).append(frame)
    for trade_date, day_frames in sorted(by_date.items()):
        latest = latest_stored(lake, trade_date, underlying)
        fresh = []
        for frame in day_frames:
            expiry = frame["expiry_date"][0].isoformat()
            snapshot_ts = frame["snapshot_ts"][0].isoformat()
            if expiry in latest and snapshot_ts <= latest[expiry]:
                stale += 1
                continue
            fresh.append(frame)
            latest[expiry] = snapshot_ts
        if not fresh:
            continue
        chain = pl.concat(fresh)
        received = chain["fetched_at"].min().astimezone(IST)
        name = f"{received:%H%M%S_%f}.parquet"
        parts.append(
            str(lake.write_part("silver", DATASET.name, trade_date, _part(underlying), name, chain))
        )
        rows += chain.height
        write_json(_state_path(lake, trade_date, underlying), latest)
    return {
        "underlying": underlying,
        "parts": parts,
        "rows": rows,
        "stale": bool(frames) and stale == len(frames),
    }


# ---- after the load: analytics and charts -----------------------------------------------------
def _analytics(ctx, dataset: Dataset, loaded: dict) -> dict:
    """The cycle's analytics (PCR, max pain, ATM IV...) into gold and ClickHouse."""
    from include.nse import chain_analytics, warehouse

    golds = []
    for part in loaded.get("silver", []):
        chain = read_parquet(part)
        gold = chain_analytics.analytics(chain)
        day, underlying = chain["trade_date"][0], chain["underlying"][0]
        ctx.lake.write_part("gold", ANALYTICS, day, _part(underlying), Path(part).name, gold)
        golds.append(gold)
    rows = 0
    if golds:
        with ctx.database() as (client, database):
            rows = warehouse.insert_new(client, ANALYTICS, pl.concat(golds), SNAPSHOT, database)
    return {"analytics_rows": rows, "parts": len(golds)}


def _charts(ctx, dataset: Dataset, loaded: dict) -> dict:
    """The OI-by-strike chart of the chosen underlyings (the run's `chart_underlyings`, else
    the indices) that have a new snapshot this cycle."""
    from include.nse import chain_analytics

    landed = {Path(part).parent.name.removeprefix("underlying=") for part in loaded["silver"]}
    # An empty list chooses no chart; only a run that says nothing gets the indices.
    chosen = ctx.options.get("chart_underlyings", INDEX_UNDERLYINGS)
    paths = [str(chain_analytics.chart_latest(ctx.lake, name)) for name in chosen if name in landed]
    return {"charts": len(paths), "artifacts": paths}


DATASET = Dataset(
    name="option_chain",
    table="option_chain",
    columns=COLUMNS,
    key=KEY,
    parse=parse,
    publication=Snapshots(),
    doc=__doc__,
    checks=CHECKS,
    segment="FO",
    after=(
        Step("analytics", _analytics, "PCR, max pain, ATM IV and OI build-up into gold."),
        Step("charts", _charts, "Open interest by strike of the chosen underlyings, as PNGs."),
    ),
)
