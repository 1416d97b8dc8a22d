"""`equity_bars_weekly` and `equity_bars_monthly`: OHLCV bars per symbol on the EQ series.

A bar covers one period of the trading calendar: an ISO week (Monday to Sunday) or a calendar
month. Its trade_date is the period's last trading day on the calendar, so a week whose Friday is
a holiday ends on its Thursday, and a bar's date never depends on which days a symbol traded.
From the symbol's EQ rows of silver `cm_bhavcopy` in the period:

- open: the open of its first row (by trade date); close: the close of its last row;
- high, low: the max high and min low of its rows; volume (shares), turnover (rupees): sums;
- trading_days: the number of its rows (days it traded in the period).

High, low, volume and turnover ignore blanks (SQL's max, min and sum) and are null only when all
the period's values are; open and close are the first and last row's values, null if NSE left
them blank. Nothing is adjusted for corporate actions (splits, bonuses, dividends): out of scope.

The trading calendar is passed in (the runner's `--calendar`, one ISO date a line, written by
the caller from `include.nse.calendar`): it must list every CM trading day from the first day of
the first period a run touches to the last day of the last one. A run for [start, end]
recomputes the bar of every period with a trading day in [start, end], from all the silver of
that period that exists (so from the period's first trading day, and past `end` when the days
are there: a rerun never shortens a bar), and writes each under its period's last trading day,
even after `end`: a bar to date, replaced as the period goes on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from .common import EQUITY, check_calendar, read_silver, require_calendar, silver_dates, write_gold

SILVER = {
    "trade_date": "date",
    "symbol": "string",
    "series": "string",
    "open": "double",
    "high": "double",
    "low": "double",
    "close": "double",
    "volume": "bigint",
    "turnover": "double",
}
#: Period kind -> a day's period key.
PERIODS: dict[str, Callable[[dt.date], tuple[int, int]]] = {
    "weekly": lambda day: tuple(day.isocalendar())[:2],
    "monthly": lambda day: (day.year, day.month),
}


def bar_ends(calendar: list[dt.date], period: str) -> dict[dt.date, dt.date]:
    """Each trading day -> the last trading day of its period."""
    key = PERIODS[period]
    last: dict[tuple[int, int], dt.date] = {}
    for day in sorted(calendar):
        last[key(day)] = day
    return {day: last[key(day)] for day in calendar}


def _bars(
    spark: SparkSession,
    lake_root: str,
    start: dt.date,
    end: dt.date,
    calendar: list[dt.date] | None,
    period: str,
) -> dict[dt.date, int]:
    dataset = f"equity_bars_{period}"
    ends = bar_ends(require_calendar(dataset, calendar), period)
    touched = {ends[day] for day in ends if start <= day <= end}
    days = sorted(day for day, bar in ends.items() if bar in touched)
    if not days:
        return {}
    dates = silver_dates(spark, lake_root, "cm_bhavcopy", days[0], days[-1])
    check_calendar(dataset, days, dates)
    bar_of = spark.createDataFrame([(day, ends[day]) for day in days], "day date, bar date")
    rows = (
        read_silver(spark, lake_root, "cm_bhavcopy", dates, SILVER)
        .filter(F.col("series") == EQUITY)
        .join(F.broadcast(bar_of), F.col("trade_date") == F.col("day"))
    )
    bars = rows.groupBy(F.col("bar").alias("trade_date"), "symbol").agg(
        F.min_by("open", "trade_date").alias("open"),
        F.max("high").alias("high"),
        F.min("low").alias("low"),
        F.max_by("close", "trade_date").alias("close"),
        F.sum("volume").alias("volume"),
        F.sum("turnover").alias("turnover"),
        F.count(F.lit(1)).cast("int").alias("trading_days"),
    )
    return write_gold(bars, lake_root, dataset, touched)


def equity_bars_weekly(
    spark: SparkSession,
    lake_root: str,
    start: dt.date,
    end: dt.date,
    calendar: list[dt.date] | None = None,
) -> dict[dt.date, int]:
    return _bars(spark, lake_root, start, end, calendar, "weekly")


def equity_bars_monthly(
    spark: SparkSession,
    lake_root: str,
    start: dt.date,
    end: dt.date,
    calendar: list[dt.date] | None = None,
) -> dict[dt.date, int]:
    return _bars(spark, lake_root, start, end, calendar, "monthly")
