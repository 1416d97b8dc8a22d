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
"""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import polars as pl

from include.nse.errors import ParseError
from include.nse.sources.base import Column, Dataset
from include.nse.sources.checks import (
    WARNING,
    at_most,
    non_negative,
    one_of,
    positive,
)

IST = ZoneInfo("Asia/Kolkata")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {name.upper(): number for number, name in enumerate(MONTHS, 1)}
LEGS = ("CE", "PE")

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
    Column("open_interest", pl.Float64, "Float64", "Open contracts (lots); may be fractional."),
    Column("change_in_oi", pl.Float64, "Float64", "Change in open interest today, contracts."),
    Column("volume", pl.UInt64, "UInt64", "Contracts traded today."),
    Column(
        "implied_volatility",
        pl.Float64,
        "Nullable(Float64)",
        "NSE's implied volatility, percent; null where NSE prints 0.",
    ),
    Column(
        "last_price", pl.Float64, "Nullable(Float64)", "Last traded price; null where NSE prints 0."
    ),
    Column("change", pl.Float64, "Float64", "Last price minus the previous close, rupees."),
    Column("bid_qty", pl.UInt64, "UInt64", "Quantity at the best bid."),
    Column("bid_price", pl.Float64, "Nullable(Float64)", "Best bid; null where there is none."),
    Column("ask_price", pl.Float64, "Nullable(Float64)", "Best ask; null where there is none."),
    Column("ask_qty", pl.UInt64, "UInt64", "Quantity at the best ask."),
    Column("source_format", pl.String, "String", "Shape read: v3, or legacy (records+filtered)."),
)
KEY = ("underlying", "snapshot_ts", "expiry_date", "strike_price", "option_type")
_DTYPES = {column.name: column.dtype for column in COLUMNS}
#: What a sound snapshot looks like. The change in open interest and in price can be negative;
#: prices are above zero where there is one (silver holds null for NSE's 0). A bid above the
#: ask is only recorded: the two sides are quoted at slightly different moments.
CHECKS = (
    *positive("strike_price", "underlying_value", "last_price", "bid_price", "ask_price"),
    one_of("option_type", LEGS),
    at_most("trade_date", "expiry_date"),
    *non_negative("open_interest", "volume", "implied_volatility", "bid_qty", "ask_qty"),
    at_most("bid_price", "ask_price", WARNING),
)

#: Silver column -> the leg's field, in each shape.
_FIELDS = {
    "legacy": {
        "open_interest": "openInterest",
        "change_in_oi": "changeinOpenInterest",
        "volume": "totalTradedVolume",
        "implied_volatility": "impliedVolatility",
        "last_price": "lastPrice",
        "change": "change",
        "bid_qty": "bidQty",
        "bid_price": "bidprice",
        "ask_price": "askPrice",
        "ask_qty": "askQty",
    },
    "v3": {
        "open_interest": "openInterest",
        "change_in_oi": "changeinOpenInterest",
        "volume": "totalTradedVolume",
        "implied_volatility": "impliedVolatility",
        "last_price": "lastPrice",
        "change": "change",
        "bid_qty": "buyQuantity1",
        "bid_price": "buyPrice1",
        "ask_price": "sellPrice1",
        "ask_qty": "sellQuantity1",
    },
}
#: The item field naming the expiry, in each shape.
_EXPIRY_FIELD = {"legacy": "expiryDate", "v3": "expiryDates"}
_ZERO_IS_NONE = ("implied_volatility", "last_price", "bid_price", "ask_price")


def nse_date(text: object, file_name: str, where: str) -> dt.date:
    """`28-Dec-2023` (any case) as a date, independent of the locale."""
    try:
        day, month, year = str(text).split("-")
        return dt.date(int(year), _MONTH_NUMBER[month.upper()], int(day))
    except (KeyError, ValueError):
        raise ParseError(
            file_name, f"expected a date like 28-Dec-2023, found {text!r}", column=where
        ) from None


def nse_date_text(day: dt.date) -> str:
    """A date as NSE writes it in the API (`28-Dec-2023`), the form `expiry=` takes."""
    return f"{day:%d}-{MONTHS[day.month - 1]}-{day:%Y}"


def snapshot_time(text: object, file_name: str) -> dt.datetime:
    """`records.timestamp` (`23-Aug-2019 15:30:00`) as an IST datetime."""
    try:
        day, clock = str(text).split(" ")
        hour, minute, second = (int(part) for part in clock.split(":"))
    except ValueError:
        raise ParseError(
            file_name,
            f"expected a time like 23-Aug-2019 15:30:00, found {text!r}",
            column="records.timestamp",
        ) from None
    date = nse_date(day, file_name, "records.timestamp")
    return dt.datetime.combine(date, dt.time(hour, minute, second), IST)


def _document(raw: bytes, file_name: str) -> dict:
    try:
        document = json.loads(raw)
    except ValueError as e:
        raise ParseError(file_name, f"not JSON: {e}") from None
    if not isinstance(document, dict):
        raise ParseError(file_name, f"expected a JSON object, found {type(document).__name__}")
    return document


def expiry_dates(raw: bytes, file_name: str) -> list[dt.date]:
    """The expiries an option-chain-contract-info response lists, in its order."""
    listed = _document(raw, file_name).get("expiryDates")
    if not isinstance(listed, list) or not listed:
        raise ParseError(file_name, "expected a non-empty list", column="expiryDates")
    return [nse_date(text, file_name, f"expiryDates[{i}]") for i, text in enumerate(listed)]


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
    records = _document(raw, file_name).get("records")
    if not isinstance(records, dict):
        raise ParseError(file_name, "expected an object of option chain records", column="records")
    items = records.get("data")
    if not isinstance(items, list):
        raise ParseError(file_name, "expected a list of strikes", column="records.data")
    snapshot_ts = snapshot_time(records.get("timestamp"), file_name)
    shape = _shape(items, file_name)
    # Checked and collected in plain Python, one pass over the legs: a response is small, and a
    # polars operation costs more to set up than the whole loop.
    fields = [(name, field, name in _ZERO_IS_NONE) for name, field in _FIELDS[shape].items()]
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
        expiry = nse_date(item.get(expiry_field), file_name, f"{where}.{expiry_field}")
        strike = _number(item, "strikePrice", file_name, where)
        for option_type in LEGS:
            leg = item.get(option_type)
            if leg is None:
                continue
            leg_where = f"{where}.{option_type}"
            if not isinstance(leg, dict):
                raise ParseError(file_name, "expected an object", column=leg_where)
            if (expiry, strike, option_type) in legs_seen:
                duplicate = duplicate or (expiry, strike, option_type)
            legs_seen.add((expiry, strike, option_type))
            columns["underlying"].append(leg.get("underlying", underlying))
            columns["underlying_value"].append(
                leg.get("underlyingValue", records.get("underlyingValue"))
            )
            columns["expiry_date"].append(expiry)
            columns["strike_price"].append(strike)
            columns["option_type"].append(option_type)
            for name, field, zero_is_none in fields:
                value = _number(leg, field, file_name, leg_where)
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


def _number(obj: dict, field: str, file_name: str, where: str) -> float | int:
    value = obj.get(field)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParseError(
            file_name, f"expected a number, found {value!r}", column=f"{where}.{field}"
        )
    return value


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


def _no_archive_file(trade_date: dt.date) -> list[str]:
    raise ValueError(
        "option chains are live API snapshots with no archive file per date; "
        "fetch them with include.nse.option_chain.fetch_snapshot"
    )


DATASET = Dataset(
    name="option_chain",
    table="option_chain",
    columns=COLUMNS,
    key=KEY,
    remote_paths=_no_archive_file,
    parse=parse,
    host="api",
    expected_kinds=("json",),
    doc=__doc__,
    checks=CHECKS,
)
