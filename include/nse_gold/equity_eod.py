"""`equity_eod`: each security's day, the CM bhavcopy joined with its delivery figures.

One row per (trade_date, symbol, series) of silver `cm_bhavcopy` (every series), with
`delivery_qty` and `delivery_pct` from silver `cm_delivery` on the same key (null where the
delivery file has no row or prints '-'). Columns, all prices in rupees:

- trade_date, symbol, series, isin, open, high, low, close, last_price, prev_close, volume
  (shares), turnover (rupees), trades: as in the bhavcopy;
- delivery_qty (shares), delivery_pct (percent of volume): as in the delivery file;
- vwap = turnover / volume, null when volume is 0 or null;
- daily_return = close / prev_close - 1;
- gap = open / prev_close - 1;
- day_range = (high - low) / prev_close.

Each ratio is null where one of its inputs is null or prev_close is 0: NSE leaves numbers blank
for a series that did not trade, and a blank stays null, never 0. Nothing is adjusted for
corporate actions (NSE's prev_close is the exchange's, adjusted or not as NSE printed it).
A run for [start, end] reads the silver of those dates only (no look-back).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .common import read_silver, read_silver_between, silver_dates, write_gold

DATASET = "equity_eod"
KEY = ("trade_date", "symbol", "series")
BHAVCOPY = {
    "trade_date": "date",
    "symbol": "string",
    "series": "string",
    "isin": "string",
    "open": "double",
    "high": "double",
    "low": "double",
    "close": "double",
    "last_price": "double",
    "prev_close": "double",
    "volume": "bigint",
    "turnover": "double",
    "trades": "bigint",
}
DELIVERY = {
    "trade_date": "date",
    "symbol": "string",
    "series": "string",
    "delivery_qty": "bigint",
    "delivery_pct": "double",
}


def eod_frame(bhavcopy: DataFrame, delivery: DataFrame) -> DataFrame:
    """The bhavcopy rows with delivery and the day's ratios; `try_divide` makes x / 0 null."""
    close, prev = F.col("close"), F.col("prev_close")
    return bhavcopy.join(delivery, on=list(KEY), how="left").select(
        *BHAVCOPY,
        "delivery_qty",
        "delivery_pct",
        F.try_divide(F.col("turnover"), F.col("volume")).alias("vwap"),
        (F.try_divide(close, prev) - 1).alias("daily_return"),
        (F.try_divide(F.col("open"), prev) - 1).alias("gap"),
        F.try_divide(F.col("high") - F.col("low"), prev).alias("day_range"),
    )


def equity_eod(
    spark: SparkSession,
    lake_root: str,
    start: dt.date,
    end: dt.date,
    calendar: list[dt.date] | None = None,
) -> dict[dt.date, int]:
    dates = silver_dates(spark, lake_root, "cm_bhavcopy", start, end)
    bhavcopy = read_silver(spark, lake_root, "cm_bhavcopy", dates, BHAVCOPY)
    delivery = read_silver_between(spark, lake_root, "cm_delivery", start, end, DELIVERY)
    return write_gold(eod_frame(bhavcopy, delivery), lake_root, DATASET, dates)
