"""The gold datasets on the warehouse side: columns, key and checks, and reading a partition.

Each `GoldDataset` has what `include.nse.warehouse.load` and `include.nse.quality` use of a
silver `Dataset` (name, table, columns, key, checks, `conform`), so a gold partition is checked
and loaded by the same code: `warehouse.load(client, DATASETS[name], day, read_partition(root,
name, day))`. The tables are created by `include/sql/0013_gold.sql`, one per dataset, named as
it. The formulas are defined in the job modules (`equity_eod.py`, ...), which compute them.

Spark writes a gold partition as `gold/<dataset>/trade_date=YYYY-MM-DD/part-*.parquet` without
the trade_date column (it is the folder's), signed integers only, and lists as Parquet lists;
`read_partition` adds the date and casts to these columns' types.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from include.nse.sources.base import Column
from include.nse.sources.checks import (
    Check,
    at_most,
    between,
    non_negative,
    one_of,
    positive,
    price_range,
)

#: Open-interest build-up classes of `fo_daily.buildup`.
BUILDUPS = ("long_buildup", "short_buildup", "short_covering", "long_unwinding")


@dataclass(frozen=True)
class GoldDataset:
    """A gold dataset as the warehouse sees it; its table is named as it."""

    name: str
    columns: tuple[Column, ...]
    #: At most one row per key value.
    key: tuple[str, ...]
    checks: tuple[Check, ...] = ()
    #: Loaded one trade date at a time (`PARTITION BY trade_date`).
    warehouse_partition: Literal["date"] = "date"

    @property
    def table(self) -> str:
        return self.name

    @property
    def schema(self) -> pl.Schema:
        return pl.Schema({c.name: c.dtype for c in self.columns})

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def conform(self, df: pl.DataFrame) -> pl.DataFrame:
        """Select and cast `df` to exactly these columns, in order."""
        missing = [c for c in self.column_names if c not in df.columns]
        if missing:
            raise ValueError(f"{self.name}: gold frame lacks columns {missing}")
        return df.select([pl.col(c.name).cast(c.dtype, strict=True) for c in self.columns])


def _float(name: str, doc: str, nullable: bool = True) -> Column:
    return Column(name, pl.Float64, "Nullable(Float64)" if nullable else "Float64", doc)


DATE = Column("trade_date", pl.Date, "Date", "Trading day the row is for.")
SYMBOL = Column("symbol", pl.String, "String", "NSE trading symbol.")

EQUITY_EOD = GoldDataset(
    name="equity_eod",
    columns=(
        DATE,
        SYMBOL,
        Column("series", pl.String, "String", "Series: EQ, BE, SM, N1..."),
        Column("isin", pl.String, "Nullable(String)", "ISIN."),
        _float("open", "Opening price, rupees."),
        _float("high", "Highest price, rupees."),
        _float("low", "Lowest price, rupees."),
        _float("close", "Closing price, rupees."),
        _float("last_price", "Last traded price, rupees."),
        _float("prev_close", "Previous trading day's close, rupees."),
        Column("volume", pl.UInt64, "Nullable(UInt64)", "Shares traded."),
        _float("turnover", "Value traded, rupees."),
        Column("trades", pl.UInt64, "Nullable(UInt64)", "Number of trades."),
        Column("delivery_qty", pl.UInt64, "Nullable(UInt64)", "Shares marked for delivery."),
        _float("delivery_pct", "Delivery quantity as a percentage of volume."),
        _float("vwap", "turnover / volume, rupees."),
        _float("daily_return", "close / prev_close - 1."),
        _float("gap", "open / prev_close - 1."),
        _float("day_range", "(high - low) / prev_close."),
    ),
    key=("trade_date", "symbol", "series"),
    checks=(
        *price_range(),
        *positive("open", "high", "low", "close", "prev_close", "vwap"),
        *non_negative("volume", "turnover", "trades", "delivery_qty", "day_range"),
        at_most("delivery_qty", "volume"),
        between("delivery_pct", 0, 100),
    ),
)

_INDICATOR_DOCS = {
    "sma20": "Mean of the last 20 closes.",
    "sma50": "Mean of the last 50 closes.",
    "sma200": "Mean of the last 200 closes.",
    "ema12": "EMA 12 of close, seeded with the mean of the first 12.",
    "ema20": "EMA 20 of close, seeded with the mean of the first 20.",
    "ema26": "EMA 26 of close, seeded with the mean of the first 26.",
    "ema50": "EMA 50 of close, seeded with the mean of the first 50.",
    "ema200": "EMA 200 of close, seeded with the mean of the first 200.",
    "macd": "ema12 - ema26.",
    "macd_signal": "EMA 9 of macd, seeded with the mean of its first 9.",
    "macd_hist": "macd - macd_signal.",
    "avg_gain14": "Wilder's average gain (14), RSI's state.",
    "avg_loss14": "Wilder's average loss (14), RSI's state.",
    "rsi14": "100 * avg_gain14 / (avg_gain14 + avg_loss14).",
    "atr14": "Wilder's average true range (14), rupees.",
    "bb_upper": "sma20 + 2 population standard deviations of the last 20 closes.",
    "bb_lower": "sma20 - 2 population standard deviations of the last 20 closes.",
}
EQUITY_INDICATORS = GoldDataset(
    name="equity_indicators",
    columns=(
        DATE,
        SYMBOL,
        Column(
            "history_rows",
            pl.UInt32,
            "UInt32",
            "The row's number in the symbol's series (1 for its first EQ row).",
        ),
        _float("high", "Highest price, rupees.", nullable=False),
        _float("low", "Lowest price, rupees.", nullable=False),
        _float("close", "Closing price, rupees.", nullable=False),
        *(_float(name, doc) for name, doc in _INDICATOR_DOCS.items()),
        _float("high_52w", "Highest high of the 52 weeks to this day.", nullable=False),
        _float("low_52w", "Lowest low of the 52 weeks to this day.", nullable=False),
    ),
    key=("trade_date", "symbol"),
    checks=(
        *positive("history_rows", "close", "sma20", "sma200", "ema200"),
        *non_negative("avg_gain14", "avg_loss14", "atr14"),
        between("rsi14", 0, 100),
        at_most("low", "high"),
        at_most("bb_lower", "bb_upper"),
        at_most("low_52w", "low"),
        at_most("high", "high_52w"),
    ),
)


def _bars(period: str, most_days: int) -> GoldDataset:
    return GoldDataset(
        name=f"equity_bars_{period}",
        columns=(
            Column("trade_date", pl.Date, "Date", "The period's last trading day on the calendar."),
            SYMBOL,
            _float("open", "Open of the symbol's first day in the period, rupees."),
            _float("high", "Highest high of the period, rupees."),
            _float("low", "Lowest low of the period, rupees."),
            _float("close", "Close of the symbol's last day in the period, rupees."),
            Column("volume", pl.UInt64, "Nullable(UInt64)", "Shares traded in the period."),
            _float("turnover", "Value traded in the period, rupees."),
            Column("trading_days", pl.UInt32, "UInt32", "Days the symbol traded in the period."),
        ),
        key=("trade_date", "symbol"),
        checks=(
            *price_range(),
            *positive("open", "high", "low", "close"),
            *non_negative("volume", "turnover"),
            between("trading_days", 1, most_days),
        ),
    )


FO_DAILY = GoldDataset(
    name="fo_daily",
    columns=(
        DATE,
        Column("instrument", pl.String, "String", "FUTIDX, FUTSTK, OPTIDX or OPTSTK."),
        Column("symbol", pl.String, "String", "Underlying: an index or a stock."),
        Column("expiry_date", pl.Date, "Date", "Day the contract expires."),
        _float("strike_price", "Strike, rupees; null for futures."),
        Column("option_type", pl.String, "Nullable(String)", "CE or PE; null for futures."),
        _float("close", "Closing price, rupees."),
        Column("open_interest", pl.Int64, "Nullable(Int64)", "Open interest, units."),
        Column("contracts", pl.UInt64, "Nullable(UInt64)", "Contracts (lots) traded."),
        _float("prev_close", "The contract's close on the previous trading day."),
        Column(
            "prev_open_interest",
            pl.Int64,
            "Nullable(Int64)",
            "The contract's open interest on the previous trading day.",
        ),
        _float("price_change", "close - prev_close."),
        Column("oi_change", pl.Int64, "Nullable(Int64)", "open_interest - prev_open_interest."),
        Column(
            "buildup",
            pl.String,
            "Nullable(String)",
            "long_buildup, short_buildup, short_covering or long_unwinding.",
        ),
        _float("underlying_price", "UDiFF's underlying price, else the CM EQ close."),
        _float("basis", "Futures close - underlying_price."),
        _float("basis_pct", "basis / underlying_price * 100."),
        _float("pcr_oi", "Put OI / call OI of the underlying's options of this expiry."),
        _float("pcr_volume", "Put / call contracts traded, this underlying and expiry."),
        _float("rollover_pct", "Next-month / (near + next) futures OI * 100, expiry week."),
    ),
    key=("trade_date", "instrument", "symbol", "expiry_date", "strike_price", "option_type"),
    checks=(
        one_of("instrument", ("FUTIDX", "FUTSTK", "OPTIDX", "OPTSTK")),
        one_of("option_type", ("CE", "PE")),
        one_of("buildup", BUILDUPS),
        *positive("close", "underlying_price"),
        *non_negative("open_interest", "contracts", "pcr_oi", "pcr_volume"),
        between("rollover_pct", 0, 100),
        at_most("trade_date", "expiry_date"),
    ),
)


def _top(name: str, dtype: pl.DataType, ch_type: str, doc: str) -> Column:
    return Column(name, pl.List(dtype), f"Array({ch_type})", doc)


MARKET_DAILY_SUMMARY = GoldDataset(
    name="market_daily_summary",
    columns=(
        DATE,
        Column("advances", pl.UInt32, "UInt32", "EQ rows closing above prev_close."),
        Column("declines", pl.UInt32, "UInt32", "EQ rows closing below prev_close."),
        Column("unchanged", pl.UInt32, "UInt32", "EQ rows closing at prev_close."),
        _top("top_gainers", pl.String, "String", "10 highest positive returns: symbols."),
        _top("top_gainer_returns", pl.Float64, "Float64", "Their close / prev_close - 1."),
        _top("top_losers", pl.String, "String", "10 lowest negative returns: symbols."),
        _top("top_loser_returns", pl.Float64, "Float64", "Their close / prev_close - 1."),
        _top("delivery_leaders", pl.String, "String", "10 highest delivery_pct, liquid EQ."),
        _top("delivery_leader_pcts", pl.Float64, "Float64", "Their delivery_pct."),
        _top("oi_buildup_symbols", pl.String, "String", "10 largest futures OI increases."),
        _top("oi_buildup_expiries", pl.Date, "Date", "Their expiries."),
        _top("oi_buildup_changes", pl.Int64, "Int64", "Their change_in_oi, units."),
        _float("total_turnover", "EQ value traded, rupees."),
        Column("total_trades", pl.UInt64, "Nullable(UInt64)", "EQ trades."),
        Column("bulk_deals", pl.UInt32, "Nullable(UInt32)", "Bulk deals; null: not fetched."),
        _float("bulk_deal_value", "Sum of bulk deals' quantity x price, rupees."),
        Column("block_deals", pl.UInt32, "Nullable(UInt32)", "Block deals; null: not fetched."),
        _float("block_deal_value", "Sum of block deals' quantity x price, rupees."),
    ),
    key=("trade_date",),
    checks=tuple(
        non_negative(
            "advances",
            "declines",
            "unchanged",
            "total_turnover",
            "total_trades",
            "bulk_deals",
            "bulk_deal_value",
            "block_deals",
            "block_deal_value",
        )
    ),
)

DATASETS: dict[str, GoldDataset] = {
    d.name: d
    for d in (
        EQUITY_EOD,
        EQUITY_INDICATORS,
        _bars("weekly", 7),
        _bars("monthly", 31),
        FO_DAILY,
        MARKET_DAILY_SUMMARY,
    )
}


def partition_dir(lake_root: str | Path, name: str, day: dt.date) -> Path:
    return Path(lake_root) / "gold" / name / f"trade_date={day.isoformat()}"


def gold_dates(lake_root: str | Path, name: str) -> list[dt.date]:
    base = Path(lake_root) / "gold" / name
    return sorted(dt.date.fromisoformat(p.name.split("=", 1)[1]) for p in base.glob("trade_date=*"))


def read_partition(lake_root: str | Path, name: str, day: dt.date) -> pl.DataFrame:
    """One gold partition in its dataset's columns; empty when the date has none."""
    dataset = DATASETS[name]
    files = sorted(partition_dir(lake_root, name, day).glob("*.parquet"))
    if not files:
        return dataset.schema.to_frame()
    frame = pl.read_parquet(files).with_columns(trade_date=pl.lit(day, pl.Date))
    return dataset.conform(frame)


def read_gold(lake_root: str | Path, name: str) -> pl.DataFrame:
    """Every partition of a gold dataset, in its columns."""
    parts = [read_partition(lake_root, name, day) for day in gold_dates(lake_root, name)]
    return pl.concat(parts) if parts else DATASETS[name].schema.to_frame()
