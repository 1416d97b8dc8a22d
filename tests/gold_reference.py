"""The gold datasets computed plainly in polars, from the definitions in the jobs' docstrings.

An independent second reading of those definitions: whole columns and polars' own rolling and
`ewm_mean` functions where the jobs use Spark windows and a Python recursion, so one mistake is
unlikely to be made twice. No Spark, nothing imported from the jobs.
"""

from __future__ import annotations

import bisect
import datetime as dt
from pathlib import Path

import polars as pl

from include.nse import sources
from include.nse.lake import Lake

EQ = pl.col("series") == "EQ"
FUTURES = pl.col("instrument").is_in(["FUTIDX", "FUTSTK"])


def silver(root: Path, dataset: str) -> pl.DataFrame:
    """Every silver partition of a dataset, read with the library."""
    lake = Lake(root)
    parts = [lake.read_silver(dataset, day) for day in lake.silver_dates(dataset)]
    return pl.concat(parts) if parts else sources.get(dataset).schema.to_frame()


def ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """numerator / denominator, null where the denominator is 0 or either is null."""
    return pl.when(denominator != 0).then(numerator / denominator)


def total(column: str, where: pl.Expr | None = None) -> pl.Expr:
    """SQL's SUM over the rows `where` holds: blanks ignored, null when every value is."""
    values = pl.col(column) if where is None else pl.col(column).filter(where)
    return pl.when(values.is_not_null().any()).then(values.sum())


# ---- equity_eod ---------------------------------------------------------------------------------
def equity_eod(root: Path) -> pl.DataFrame:
    delivery = silver(root, "cm_delivery").select(
        "trade_date", "symbol", "series", "delivery_qty", "delivery_pct"
    )
    return (
        silver(root, "cm_bhavcopy")
        .drop("source_format")
        .join(delivery, on=["trade_date", "symbol", "series"], how="left")
        .with_columns(
            vwap=ratio(pl.col("turnover"), pl.col("volume")),
            daily_return=ratio(pl.col("close"), pl.col("prev_close")) - 1,
            gap=ratio(pl.col("open"), pl.col("prev_close")) - 1,
            day_range=ratio(pl.col("high") - pl.col("low"), pl.col("prev_close")),
        )
    )


# ---- equity_indicators --------------------------------------------------------------------------
def seeded(x: pl.Expr, n: int, alpha: float, by: list[str]) -> pl.Expr:
    """x's exponential average seeded with the mean of its first n values (null before)."""
    seen = x.is_not_null().cum_sum().over(by)
    start = pl.when(seen == n).then(x.rolling_mean(n).over(by)).when(seen > n).then(x)
    return start.ewm_mean(alpha=alpha, adjust=False).over(by)


def equity_indicators(root: Path) -> pl.DataFrame:
    by = ["symbol", "run"]
    rows = (
        silver(root, "cm_bhavcopy")
        .filter(EQ & pl.all_horizontal(pl.col("close", "high", "low").is_not_null()))
        .select("trade_date", "symbol", "high", "low", "close")
        .sort("symbol", "trade_date")
        .with_columns(
            run=(pl.col("trade_date").diff().dt.total_days() > 364)
            .fill_null(True)
            .cum_sum()
            .over("symbol")
        )
    )
    prev = pl.col("close").shift(1).over(by)
    change = pl.col("close") - prev
    true_range = pl.max_horizontal("high", prev) - pl.min_horizontal("low", prev)
    rows = rows.with_columns(
        history_rows=pl.int_range(1, pl.len() + 1).over(by).cast(pl.Int32),
        **{f"sma{n}": pl.col("close").rolling_mean(n).over(by) for n in (20, 50, 200)},
        **{f"ema{n}": seeded(pl.col("close"), n, 2 / (n + 1), by) for n in (12, 20, 26, 50, 200)},
        avg_gain14=seeded(change.clip(lower_bound=0), 14, 1 / 14, by),
        avg_loss14=seeded((-change).clip(lower_bound=0), 14, 1 / 14, by),
        atr14=seeded(pl.when(prev.is_not_null()).then(true_range), 14, 1 / 14, by),
        sd20=pl.col("close").rolling_std(20, ddof=0).over(by),
        high_52w=pl.col("high").rolling_max_by("trade_date", "364d").over(by),
        low_52w=pl.col("low").rolling_min_by("trade_date", "364d").over(by),
    )
    rows = rows.with_columns(macd=pl.col("ema12") - pl.col("ema26"))
    rows = rows.with_columns(macd_signal=seeded(pl.col("macd"), 9, 2 / 10, by))
    moved = pl.col("avg_gain14") + pl.col("avg_loss14")
    return rows.with_columns(
        macd_hist=pl.col("macd") - pl.col("macd_signal"),
        rsi14=pl.when(moved > 0).then(100 * pl.col("avg_gain14") / moved),
        bb_upper=pl.col("sma20") + 2 * pl.col("sd20"),
        bb_lower=pl.col("sma20") - 2 * pl.col("sd20"),
    ).drop("run", "sd20")


# ---- equity_bars --------------------------------------------------------------------------------
def equity_bars(root: Path, calendar: list[dt.date], period: str) -> pl.DataFrame:
    def key(day: dt.date) -> tuple[int, int]:
        return tuple(day.isocalendar())[:2] if period == "weekly" else (day.year, day.month)

    last = {key(day): day for day in sorted(calendar)}
    bar_of = pl.DataFrame({"trade_date": calendar, "bar": [last[key(day)] for day in calendar]})
    return (
        silver(root, "cm_bhavcopy")
        .filter(EQ)
        .join(bar_of, on="trade_date")
        .sort("trade_date")
        .group_by("bar", "symbol")
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            total("volume"),
            total("turnover"),
            trading_days=pl.len().cast(pl.Int32),
        )
        .rename({"bar": "trade_date"})
    )


# ---- fo_daily -----------------------------------------------------------------------------------
def fo_daily(root: Path, calendar: list[dt.date]) -> pl.DataFrame:
    contract = ["instrument", "symbol", "expiry_date", "strike_price", "option_type"]
    days = sorted(calendar)
    fo = silver(root, "fo_bhavcopy")
    previous = pl.DataFrame({"trade_date": days[1:], "prev_day": days[:-1]})
    prior = fo.select(
        pl.col("trade_date").alias("prev_day"),
        *contract,
        pl.col("close").alias("prev_close"),
        pl.col("open_interest").alias("prev_open_interest"),
    )
    cm_close = (
        silver(root, "cm_bhavcopy").filter(EQ).select("trade_date", "symbol", cm_close="close")
    )
    rows = (
        fo.join(previous, on="trade_date", how="left")
        .join(prior, on=["prev_day", *contract], how="left", nulls_equal=True)
        .join(cm_close, on=["trade_date", "symbol"], how="left")
        .with_columns(
            price_change=pl.col("close") - pl.col("prev_close"),
            oi_change=pl.col("open_interest") - pl.col("prev_open_interest"),
            underlying_price=pl.coalesce("underlying_price", "cm_close"),
        )
    )
    up, down = pl.col("price_change") > 0, pl.col("price_change") < 0
    more, less = pl.col("oi_change") > 0, pl.col("oi_change") < 0
    basis = pl.when(FUTURES).then(pl.col("close") - pl.col("underlying_price"))

    by_expiry = ["trade_date", "symbol", "expiry_date"]
    put, call = pl.col("option_type") == "PE", pl.col("option_type") == "CE"
    pcr = rows.group_by(by_expiry).agg(
        put_oi=total("open_interest", put),
        call_oi=total("open_interest", call),
        put_volume=total("contracts", put),
        call_volume=total("contracts", call),
    )
    futures = (
        rows.filter(FUTURES)
        .group_by(by_expiry)
        .agg(oi=total("open_interest"))
        .sort(by_expiry)
        .group_by("trade_date", "symbol")
        .agg(
            near=pl.col("expiry_date").first(),
            near_oi=pl.col("oi").first(),
            next_oi=pl.col("oi").get(1, null_on_oob=True),
        )
    )

    def days_to(row: dict) -> int:
        return bisect.bisect_right(days, row["near"]) - bisect.bisect_left(days, row["trade_date"])

    futures = futures.with_columns(
        to_expiry=pl.struct("trade_date", "near").map_elements(days_to, return_dtype=pl.Int64),
    )
    rollover = pl.when(pl.col("to_expiry") <= 5).then(
        ratio(pl.col("next_oi"), pl.col("near_oi") + pl.col("next_oi")) * 100
    )
    return (
        rows.join(pcr, on=by_expiry, how="left")
        .join(futures, on=["trade_date", "symbol"], how="left")
        .select(
            "trade_date",
            *contract,
            "close",
            "open_interest",
            "contracts",
            "prev_close",
            "prev_open_interest",
            "price_change",
            "oi_change",
            buildup=pl.when(up & more)
            .then(pl.lit("long_buildup"))
            .when(down & more)
            .then(pl.lit("short_buildup"))
            .when(up & less)
            .then(pl.lit("short_covering"))
            .when(down & less)
            .then(pl.lit("long_unwinding")),
            underlying_price="underlying_price",
            basis=basis,
            basis_pct=ratio(basis, pl.col("underlying_price")) * 100,
            pcr_oi=ratio(pl.col("put_oi"), pl.col("call_oi")),
            pcr_volume=ratio(pl.col("put_volume"), pl.col("call_volume")),
            rollover_pct=rollover,
        )
    )


# ---- market_daily_summary -----------------------------------------------------------------------
def top(frame: pl.DataFrame, by: list[str], descending: list[bool], fields: dict[str, str]):
    """The first 10 rows per trade date by `by`, each field as a list."""
    return (
        frame.sort(by, descending=descending)
        .group_by("trade_date", maintain_order=True)
        .agg(*(pl.col(column).head(10).alias(name) for name, column in fields.items()))
    )


def market_daily_summary(root: Path) -> pl.DataFrame:
    cm = silver(root, "cm_bhavcopy").filter(EQ)
    close, prev = pl.col("close"), pl.col("prev_close")
    summary = cm.group_by("trade_date").agg(
        advances=(close > prev).sum().cast(pl.Int32),
        declines=(close < prev).sum().cast(pl.Int32),
        unchanged=(close == prev).sum().cast(pl.Int32),
        total_turnover=total("turnover"),
        total_trades=total("trades").cast(pl.Int64),
    )
    moved = cm.filter(prev > 0).with_columns(ret=close / prev - 1)
    delivery = silver(root, "cm_delivery").filter(
        EQ & (pl.col("turnover") >= 1e7) & pl.col("delivery_pct").is_not_null()
    )
    futures = silver(root, "fo_bhavcopy").filter(FUTURES & (pl.col("change_in_oi") > 0))
    parts = [
        top(
            moved.filter(pl.col("ret") > 0),
            ["ret", "symbol"],
            [True, False],
            {"top_gainers": "symbol", "top_gainer_returns": "ret"},
        ),
        top(
            moved.filter(pl.col("ret") < 0),
            ["ret", "symbol"],
            [False, False],
            {"top_losers": "symbol", "top_loser_returns": "ret"},
        ),
        top(
            delivery,
            ["delivery_pct", "symbol"],
            [True, False],
            {"delivery_leaders": "symbol", "delivery_leader_pcts": "delivery_pct"},
        ),
        top(
            futures,
            ["change_in_oi", "symbol", "expiry_date"],
            [True, False, False],
            {
                "oi_buildup_symbols": "symbol",
                "oi_buildup_expiries": "expiry_date",
                "oi_buildup_changes": "change_in_oi",
            },
        ),
    ]
    for part in parts:
        summary = summary.join(part, on="trade_date", how="left")
    for name in ("bulk_deals", "block_deals"):
        held = pl.DataFrame(
            {"trade_date": Lake(root).silver_dates(name)}, schema={"trade_date": pl.Date}
        )
        deals = (
            silver(root, name)
            .group_by("trade_date")
            .agg(
                pl.len().cast(pl.Int32).alias(name),
                (pl.col("quantity") * pl.col("price")).sum().alias(f"{name[:-1]}_value"),
            )
        )
        deals = held.join(deals, on="trade_date", how="left").fill_null(0)
        summary = summary.join(deals, on="trade_date", how="left")
    lists = [c for c in summary.columns if summary.schema[c] == pl.List]
    return summary.with_columns(pl.col(c).fill_null(pl.lit([], summary.schema[c])) for c in lists)
