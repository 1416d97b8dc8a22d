"""Security-wise full bhavcopy: prices plus how much of the day's volume was taken to delivery.

`sec_bhavdata_full_DDMMYYYY.csv` separates fields with ", ", quotes turnover in lakhs, and writes
" -" for delivery where a series has none (e.g. BE, BZ); that stays null, never 0. Every column
of the file is read, so a missing or renamed one is refused and an added one read with a
warning (`_csv.check_layout`); two rows of one symbol and series are refused.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from include.nse.sources._csv import (
    LAKH,
    check_layout,
    open_csv,
    read_csv,
    require_unique,
    single_date,
    to_silver,
)
from include.nse.sources.base import Column, DailyFile, Dataset
from include.nse.sources.checks import (
    CM_SERIES,
    WARNING,
    at_most,
    between,
    non_negative,
    not_null,
    one_of,
    positive,
    price_range,
    rows_like_previous_day,
)

COLUMNS = (
    Column("trade_date", pl.Date, "Date", "Trading day the prices are for."),
    Column("symbol", pl.String, "String", "NSE trading symbol."),
    Column("series", pl.String, "String", "Series the security trades in: EQ, BE, SM, N1..."),
    Column(
        "prev_close",
        pl.Float64,
        "Nullable(Float64)",
        "Previous trading day's closing price, rupees.",
    ),
    Column("open", pl.Float64, "Nullable(Float64)", "Opening price, rupees."),
    Column("high", pl.Float64, "Nullable(Float64)", "Highest traded price, rupees."),
    Column("low", pl.Float64, "Nullable(Float64)", "Lowest traded price, rupees."),
    Column("last_price", pl.Float64, "Nullable(Float64)", "Last traded price, rupees."),
    Column("close", pl.Float64, "Nullable(Float64)", "Official closing price, rupees."),
    Column("avg_price", pl.Float64, "Nullable(Float64)", "Volume-weighted average price, rupees."),
    Column("volume", pl.UInt64, "Nullable(UInt64)", "Shares traded."),
    Column(
        "turnover",
        pl.Float64,
        "Nullable(Float64)",
        "Value traded, rupees: the file's TURNOVER_LACS x 100000.",
    ),
    Column("trades", pl.UInt64, "Nullable(UInt64)", "Number of trades."),
    Column(
        "delivery_qty",
        pl.UInt64,
        "Nullable(UInt64)",
        "Shares marked for delivery; null where the file says '-' (no delivery figure).",
    ),
    Column(
        "delivery_pct",
        pl.Float64,
        "Nullable(Float64)",
        "Delivery quantity as a percentage of volume; null where the file says '-'.",
    ),
)

#: silver column -> file column.
_SOURCE = {
    "trade_date": "DATE1",
    "symbol": "SYMBOL",
    "series": "SERIES",
    "prev_close": "PREV_CLOSE",
    "open": "OPEN_PRICE",
    "high": "HIGH_PRICE",
    "low": "LOW_PRICE",
    "last_price": "LAST_PRICE",
    "close": "CLOSE_PRICE",
    "avg_price": "AVG_PRICE",
    "volume": "TTL_TRD_QNTY",
    "turnover": "TURNOVER_LACS",
    "trades": "NO_OF_TRADES",
    "delivery_qty": "DELIV_QTY",
    "delivery_pct": "DELIV_PER",
}

KEY = ("trade_date", "symbol", "series")

#: What a sound day looks like. Turnover can be 0: the file rounds to a thousand rupees. A blank
#: number is null in silver: the close must be there; the rest may be blank for a series that
#: did not trade, and a blank is recorded as a warning.
CHECKS = (
    *not_null("close"),
    *not_null(
        "prev_close",
        "open",
        "high",
        "low",
        "last_price",
        "avg_price",
        "volume",
        "turnover",
        "trades",
        severity=WARNING,
    ),
    *price_range(),
    at_most("low", "avg_price"),
    at_most("avg_price", "high"),
    *positive("open", "high", "low", "close", "last_price", "avg_price", "prev_close"),
    *non_negative("volume", "turnover", "trades", "delivery_qty"),
    at_most("delivery_qty", "volume"),
    between("delivery_pct", 0, 100),
    one_of("series", CM_SERIES, WARNING),
    *rows_like_previous_day(),
)


def remote_paths(trade_date: dt.date) -> list[str]:
    return [f"/products/content/sec_bhavdata_full_{trade_date:%d%m%Y}.csv"]


def parse(raw: bytes, file_name: str) -> pl.DataFrame:
    """The file to silver, with turnover in rupees; one trade date per file."""
    opened = open_csv(raw, file_name)
    check_layout(opened.names, file_name, "full bhavcopy", _SOURCE.values(), _SOURCE.values())
    silver = to_silver(read_csv(opened), file_name, COLUMNS, _SOURCE)
    single_date(silver, file_name, "trade_date", file_column=_SOURCE["trade_date"])
    require_unique(silver, file_name, KEY)
    # Lakhs carry two decimals, so rounding to paise only removes the multiplication's float noise.
    return DATASET.conform(silver.with_columns(turnover=(pl.col("turnover") * LAKH).round(2)))


DATASET = Dataset(
    name="cm_delivery",
    table="cm_delivery",
    columns=COLUMNS,
    key=KEY,
    parse=parse,
    publication=DailyFile(remote_paths, expect=("csv",)),
    doc=__doc__,
    checks=CHECKS,
)
