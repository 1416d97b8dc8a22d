"""`market_daily_summary`: one row per trade date describing the whole cash and F&O market.

For each date with silver `cm_bhavcopy`, over its EQ rows:

- advances, declines, unchanged: rows with close above, below, equal to prev_close (rows
  without both are not counted);
- top_gainers / top_gainer_returns, top_losers / top_loser_returns: the 10 highest positive and
  10 lowest negative returns (close / prev_close - 1, prev_close > 0), symbols and returns as
  arrays in rank order, ties by symbol; fewer when fewer moved;
- delivery_leaders / delivery_leader_pcts: the 10 highest delivery_pct of silver `cm_delivery`
  EQ rows with turnover of at least `DELIVERY_TURNOVER_FLOOR` rupees (1 crore: thinly traded
  shares show 100% delivery on a handful of trades), ties by symbol;
- oi_buildup_symbols / oi_buildup_expiries / oi_buildup_changes: the 10 futures of silver
  `fo_bhavcopy` (FUTIDX, FUTSTK) with the largest positive change_in_oi (NSE's change since the
  previous day, units of the underlying), ties by symbol and expiry; empty without F&O data;
- total_turnover (rupees), total_trades: sums over the EQ rows (blanks ignored);
- bulk_deals, bulk_deal_value, block_deals, block_deal_value: count of the day's deals and the
  sum of quantity x price (rupees), from silver `bulk_deals` and `block_deals`; 0 for a day
  whose partition holds no deals, null for a day without a partition (not fetched).

Arrays are never null (ClickHouse arrays cannot be): empty where nothing qualifies. A run for
[start, end] reads the silver of those dates only.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from .common import (
    EQUITY,
    FUTURES,
    read_silver,
    read_silver_between,
    silver_dates,
    write_gold,
)

DATASET = "market_daily_summary"
TOP = 10
#: Turnover (rupees) a share needs that day to rank among the delivery leaders: 1 crore.
DELIVERY_TURNOVER_FLOOR = 1e7
CM = {
    "trade_date": "date",
    "symbol": "string",
    "series": "string",
    "close": "double",
    "prev_close": "double",
    "turnover": "double",
    "trades": "bigint",
}
DELIVERY = {
    "trade_date": "date",
    "symbol": "string",
    "series": "string",
    "turnover": "double",
    "delivery_pct": "double",
}
FO = {
    "trade_date": "date",
    "instrument": "string",
    "symbol": "string",
    "expiry_date": "date",
    "change_in_oi": "bigint",
}
DEALS = {"trade_date": "date", "quantity": "bigint", "price": "double"}


def top(frame: DataFrame, order: list[Column], fields: dict[str, Column]) -> DataFrame:
    """Per trade date, the first `TOP` rows by `order` as one array column per field."""
    ranked = frame.withColumn(
        "_rank", F.row_number().over(Window.partitionBy("trade_date").orderBy(*order))
    ).filter(F.col("_rank") <= TOP)
    entries = F.struct("_rank", *(value.alias(name) for name, value in fields.items()))
    listed = ranked.groupBy("trade_date").agg(F.sort_array(F.collect_list(entries)).alias("_top"))
    return listed.select(
        "trade_date", *(F.col("_top").getField(name).alias(name) for name in fields)
    )


def _deals(
    spark: SparkSession, lake_root: str, name: str, start: dt.date, end: dt.date
) -> DataFrame:
    """Deals and their value per date with a silver partition (0 for a partition without)."""
    dates = silver_dates(spark, lake_root, name, start, end)
    deals = read_silver(spark, lake_root, name, dates, DEALS)
    counted = deals.groupBy("trade_date").agg(
        F.count(F.lit(1)).alias(name),
        F.sum(F.col("quantity") * F.col("price")).alias(f"{name[:-1]}_value"),
    )
    held = spark.createDataFrame([(d,) for d in dates], "trade_date date")
    return held.join(counted, "trade_date", "left").fillna(0, [name, f"{name[:-1]}_value"])


def market_daily_summary(
    spark: SparkSession,
    lake_root: str,
    start: dt.date,
    end: dt.date,
    calendar: list[dt.date] | None = None,
) -> dict[dt.date, int]:
    dates = silver_dates(spark, lake_root, "cm_bhavcopy", start, end)
    cm = read_silver(spark, lake_root, "cm_bhavcopy", dates, CM).filter(F.col("series") == EQUITY)
    delivery = read_silver_between(spark, lake_root, "cm_delivery", start, end, DELIVERY)
    fo = read_silver_between(spark, lake_root, "fo_bhavcopy", start, end, FO)

    close, prev = F.col("close"), F.col("prev_close")
    breadth = cm.groupBy("trade_date").agg(
        F.count(F.when(close > prev, 1)).cast("int").alias("advances"),
        F.count(F.when(close < prev, 1)).cast("int").alias("declines"),
        F.count(F.when(close == prev, 1)).cast("int").alias("unchanged"),
        F.sum("turnover").alias("total_turnover"),
        F.sum("trades").alias("total_trades"),
    )
    returns = cm.withColumn("_return", F.try_divide(close, prev) - 1).filter(prev > 0)
    gainers = top(
        returns.filter(F.col("_return") > 0),
        [F.col("_return").desc(), F.col("symbol")],
        {"top_gainers": F.col("symbol"), "top_gainer_returns": F.col("_return")},
    )
    losers = top(
        returns.filter(F.col("_return") < 0),
        [F.col("_return").asc(), F.col("symbol")],
        {"top_losers": F.col("symbol"), "top_loser_returns": F.col("_return")},
    )
    leaders = top(
        delivery.filter(
            (F.col("series") == EQUITY)
            & (F.col("turnover") >= DELIVERY_TURNOVER_FLOOR)
            & F.col("delivery_pct").isNotNull()
        ),
        [F.col("delivery_pct").desc(), F.col("symbol")],
        {"delivery_leaders": F.col("symbol"), "delivery_leader_pcts": F.col("delivery_pct")},
    )
    buildups = top(
        fo.filter(F.col("instrument").isin(*FUTURES) & (F.col("change_in_oi") > 0)),
        [F.col("change_in_oi").desc(), F.col("symbol"), F.col("expiry_date")],
        {
            "oi_buildup_symbols": F.col("symbol"),
            "oi_buildup_expiries": F.col("expiry_date"),
            "oi_buildup_changes": F.col("change_in_oi"),
        },
    )
    arrays = {
        "top_gainers": "string",
        "top_gainer_returns": "double",
        "top_losers": "string",
        "top_loser_returns": "double",
        "delivery_leaders": "string",
        "delivery_leader_pcts": "double",
        "oi_buildup_symbols": "string",
        "oi_buildup_expiries": "date",
        "oi_buildup_changes": "bigint",
    }
    summary = breadth
    for part in (gainers, losers, leaders, buildups):
        summary = summary.join(part, "trade_date", "left")
    summary = summary.join(_deals(spark, lake_root, "bulk_deals", start, end), "trade_date", "left")
    summary = summary.join(
        _deals(spark, lake_root, "block_deals", start, end), "trade_date", "left"
    )
    gold = summary.select(
        "trade_date",
        "advances",
        "declines",
        "unchanged",
        *(
            F.coalesce(F.col(name), F.array().cast(f"array<{kind}>")).alias(name)
            for name, kind in arrays.items()
        ),
        "total_turnover",
        "total_trades",
        F.col("bulk_deals").cast("int").alias("bulk_deals"),
        "bulk_deal_value",
        F.col("block_deals").cast("int").alias("block_deals"),
        "block_deal_value",
    )
    return write_gold(gold, lake_root, DATASET, dates)
