"""`fo_daily`: each F&O contract's day, with basis, open-interest build-up, PCR and roll-over.

One row per contract and trade date of silver `fo_bhavcopy` (futures and options; a contract is
instrument, symbol, expiry_date, strike_price, option_type). Columns:

- the contract's key, close (rupees), open_interest (units of the underlying), contracts (lots
  traded);
- prev_close, prev_open_interest: the same contract's close and open interest on the previous
  trading day of the calendar; null where it had no row that day;
- price_change = close - prev_close; oi_change = open_interest - prev_open_interest;
- buildup: long_buildup (price up, OI up), short_buildup (price down, OI up), short_covering
  (price up, OI down), long_unwinding (price down, OI down); null when either change is 0 or
  null;
- underlying_price: UDiFF's underlying price where the row has one, else the close of the
  symbol's EQ row in silver `cm_bhavcopy` that day (null for an index in legacy files);
- basis = close - underlying_price and basis_pct = basis / underlying_price * 100, on futures
  only;
- pcr_oi, pcr_volume: the put-call ratio of the underlying's options of that expiry that day,
  as columns on every row of (trade_date, symbol, expiry_date): sum of put open interest / sum
  of call open interest, and sum of put contracts / sum of call contracts; null without calls
  (or a zero sum);
- rollover_pct: on every row of the underlying, in the last 5 trading days up to its near-month
  futures expiry (the expiry day and the 4 trading days before it): next-month futures open
  interest / (near-month + next-month futures open interest) * 100; null on other days. Near
  and next month are the underlying's two earliest futures expiries that day.

The trading calendar (`--calendar`, CM trading days; NSE's CM and F&O segments close on the same
days) gives the previous trading day and counts the days to expiry, so it must list the trading
days from the one before `start` to the near-month expiry of `end`. A run for [start, end] reads
F&O silver from the previous trading day before `start`, and CM silver of [start, end].
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, SparkSession, Window
from pyspark.sql import functions as F

from .common import (
    EQUITY,
    FUTURES,
    check_calendar,
    read_silver_between,
    require_calendar,
    silver_dates,
    write_gold,
)

DATASET = "fo_daily"
CONTRACT = ("instrument", "symbol", "expiry_date", "strike_price", "option_type")
#: Trading days up to and including the near-month expiry with a roll-over figure.
ROLLOVER_DAYS = 5
SILVER = {
    "trade_date": "date",
    "instrument": "string",
    "symbol": "string",
    "expiry_date": "date",
    "strike_price": "double",
    "option_type": "string",
    "close": "double",
    "open_interest": "bigint",
    "contracts": "bigint",
    "underlying_price": "double",
}
CM = {"trade_date": "date", "symbol": "string", "series": "string", "close": "double"}


def buildup(price_change: Column, oi_change: Column) -> Column:
    return (
        F.when((price_change > 0) & (oi_change > 0), "long_buildup")
        .when((price_change < 0) & (oi_change > 0), "short_buildup")
        .when((price_change > 0) & (oi_change < 0), "short_covering")
        .when((price_change < 0) & (oi_change < 0), "long_unwinding")
    )


def fo_daily(
    spark: SparkSession,
    lake_root: str,
    start: dt.date,
    end: dt.date,
    calendar: list[dt.date] | None = None,
) -> dict[dt.date, int]:
    days = require_calendar(DATASET, calendar)
    dates = silver_dates(spark, lake_root, "fo_bhavcopy", start, end)
    check_calendar(DATASET, days, dates)
    if not dates:
        return {}
    before = [d for d in days if d < dates[0]]
    first = before[-1] if before else dates[0]
    fo = read_silver_between(spark, lake_root, "fo_bhavcopy", first, end, SILVER)
    cm = read_silver_between(spark, lake_root, "cm_bhavcopy", start, end, CM)

    # Calendar position of every day from the first to the last listed: trading days in [d, e]
    # are position(e) - position(d) + 1 for a trading day d.
    position, count, listed = [], 0, set(days)
    for offset in range((days[-1] - days[0]).days + 1):
        day = days[0] + dt.timedelta(days=offset)
        count += day in listed
        position.append((day, count))
    positions = F.broadcast(spark.createDataFrame(position, "day date, position int"))
    previous = F.broadcast(
        spark.createDataFrame(
            list(zip(days[1:], days[:-1], strict=True)), "day date, prev_day date"
        )
    )

    # The contract's row before, when it is of the previous trading day: one sort by contract
    # instead of joining the F&O rows with themselves.
    by_contract = Window.partitionBy(*CONTRACT).orderBy("trade_date")
    on_previous_day = F.lag("trade_date").over(by_contract) == F.col("prev_day")
    rows = (
        fo.join(previous, F.col("trade_date") == F.col("day"), "left")
        .withColumns(
            {
                "prev_close": F.when(on_previous_day, F.lag("close").over(by_contract)),
                "prev_open_interest": F.when(
                    on_previous_day, F.lag("open_interest").over(by_contract)
                ),
            }
        )
        .filter(F.col("trade_date") >= F.lit(start))
    )
    today = fo.filter(F.col("trade_date") >= F.lit(start))
    equity_close = cm.filter(F.col("series") == EQUITY).select(
        "trade_date", "symbol", F.col("close").alias("_cm_close")
    )
    future = F.col("instrument").isin(*FUTURES)
    call, put = F.col("option_type") == "CE", F.col("option_type") == "PE"
    oi, traded = F.col("open_interest"), F.col("contracts")
    expiry = ["trade_date", "symbol", "expiry_date"]
    pcr = today.groupBy(*expiry).agg(
        F.try_divide(F.sum(F.when(put, oi)), F.sum(F.when(call, oi))).alias("pcr_oi"),
        F.try_divide(F.sum(F.when(put, traded)), F.sum(F.when(call, traded))).alias("pcr_volume"),
    )
    # Each underlying's futures by expiry: the first is the near month, the second the next.
    month = F.row_number().over(Window.partitionBy("trade_date", "symbol").orderBy("expiry_date"))
    months = (
        today.filter(future)
        .groupBy(*expiry)
        .agg(F.sum("open_interest").alias("_oi"))
        .withColumn("_month", month)
        .groupBy("trade_date", "symbol")
        .agg(
            F.min(F.when(F.col("_month") == 1, F.col("expiry_date"))).alias("_near"),
            F.max(F.when(F.col("_month") == 1, F.col("_oi"))).alias("_near_oi"),
            F.max(F.when(F.col("_month") == 2, F.col("_oi"))).alias("_next_oi"),
        )
    )
    at_day = positions.select(F.col("day").alias("trade_date"), F.col("position").alias("_at"))
    at_expiry = positions.select(F.col("day").alias("_near"), F.col("position").alias("_expiry_at"))
    in_window = F.col("_expiry_at") - F.col("_at") + 1 <= ROLLOVER_DAYS
    near, next_ = F.col("_near_oi"), F.col("_next_oi")
    rollover = (
        months.join(at_day, "trade_date", "left")
        .join(at_expiry, "_near", "left")
        .select(
            "trade_date",
            "symbol",
            F.when(in_window, F.try_divide(next_, near + next_) * 100).alias("rollover_pct"),
        )
    )
    rows = (
        rows.join(equity_close, ["trade_date", "symbol"], "left")
        .join(pcr, expiry, "left")
        .join(rollover, ["trade_date", "symbol"], "left")
        .withColumns(
            {
                "price_change": F.col("close") - F.col("prev_close"),
                "oi_change": F.col("open_interest") - F.col("prev_open_interest"),
                "underlying_price": F.coalesce("underlying_price", "_cm_close"),
            }
        )
    )
    basis = F.when(future, F.col("close") - F.col("underlying_price"))
    gold = rows.select(
        "trade_date",
        *CONTRACT,
        "close",
        "open_interest",
        "contracts",
        "prev_close",
        "prev_open_interest",
        "price_change",
        "oi_change",
        buildup(F.col("price_change"), F.col("oi_change")).alias("buildup"),
        "underlying_price",
        basis.alias("basis"),
        (F.try_divide(basis, F.col("underlying_price")) * 100).alias("basis_pct"),
        "pcr_oi",
        "pcr_volume",
        "rollover_pct",
    )
    return write_gold(gold, lake_root, DATASET, dates)
