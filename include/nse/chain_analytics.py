"""What traders read off an option chain, per underlying, expiry and snapshot (gold).

- PCR: puts' total open interest (and volume) over calls'; null when calls have none.
- Max pain: the strike at which, if the underlying settled there, option writers would pay out
  the least: sum over calls of OI x max(0, K - strike) plus over puts of OI x max(0, strike - K),
  smallest over the chain's strikes (the lower strike on a tie). Computed with running sums
  over the sorted strikes, so a chain costs linear time, not strikes squared.
- ATM strike: the strike nearest the underlying's price (the lower one on a tie); ATM IV the
  mean of its call and put implied volatility (either alone when the other has none).
- Put-call IV spread: the mean of put IV minus call IV over the `SPREAD_STRIKES` strikes
  nearest the money that quote both; positive when puts are bid up (the usual skew).
- Open interest and its change summed per side, and the `BUILDUP_STRIKES` strikes whose open
  interest grew most today on each side.

The chart draws one expiry's open interest by strike, calls and puts side by side, with the
underlying's price and the max pain strike marked.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from include.nse.dates import nse_date_text
from include.nse.lake import write_png
from include.nse.sources.base import Column

#: Strikes nearest the money whose put-call IV spread is averaged.
SPREAD_STRIKES = 5
#: Strikes listed per side as the largest open interest build-up.
BUILDUP_STRIKES = 3
SNAPSHOT_KEY = ("trade_date", "underlying", "snapshot_ts", "expiry_date")
#: The silver dataset read back, and the gold folder charts are drawn into.
OPTION_CHAIN = "option_chain"
CHARTS = "option_chain_charts"

COLUMNS = (
    Column("trade_date", pl.Date, "Date", "Trading day of the snapshot."),
    Column("snapshot_ts", pl.Datetime("us", "Asia/Kolkata"), "DateTime('Asia/Kolkata')"),
    Column("underlying", pl.String, "String"),
    Column("expiry_date", pl.Date, "Date"),
    Column("underlying_value", pl.Float64, "Float64"),
    Column("pcr_oi", pl.Float64, "Nullable(Float64)", "Put OI / call OI."),
    Column("pcr_volume", pl.Float64, "Nullable(Float64)", "Put volume / call volume."),
    Column("max_pain", pl.Float64, "Float64", "Strike of least total payout to writers."),
    Column("atm_strike", pl.Float64, "Float64", "Strike nearest the underlying's price."),
    Column("atm_iv", pl.Float64, "Nullable(Float64)", "Mean call/put IV at the ATM strike."),
    Column("iv_spread", pl.Float64, "Nullable(Float64)", "Mean put minus call IV near the money."),
    Column("ce_oi", pl.Float64, "Float64", "Calls' open interest, contracts."),
    Column("pe_oi", pl.Float64, "Float64", "Puts' open interest, contracts."),
    Column("ce_oi_change", pl.Float64, "Float64", "Calls' change in open interest today."),
    Column("pe_oi_change", pl.Float64, "Float64", "Puts' change in open interest today."),
    Column("ce_volume", pl.UInt64, "UInt64", "Calls' contracts traded today."),
    Column("pe_volume", pl.UInt64, "UInt64", "Puts' contracts traded today."),
    Column("ce_buildup_strikes", pl.List(pl.Float64), "Array(Float64)", "Largest call OI adds."),
    Column("pe_buildup_strikes", pl.List(pl.Float64), "Array(Float64)", "Largest put OI adds."),
)
SCHEMA = pl.Schema({c.name: c.dtype for c in COLUMNS})
_METRICS = {
    "oi": "open_interest",
    "chg": "change_in_oi",
    "vol": "volume",
    "iv": "implied_volatility",
}


def by_strike(chain: pl.DataFrame) -> pl.DataFrame:
    """One row per snapshot, expiry and strike, with each side's figures (null: no leg)."""
    sides = [
        pl.col(column).filter(pl.col("option_type") == side.upper()).first().alias(f"{side}_{m}")
        for side in ("ce", "pe")
        for m, column in _METRICS.items()
    ]
    return (
        chain.group_by([*SNAPSHOT_KEY, "strike_price"])
        .agg(pl.col("underlying_value").first(), *sides)
        .sort([*SNAPSHOT_KEY, "strike_price"])
    )


def analytics(chain: pl.DataFrame) -> pl.DataFrame:
    """The gold figures for every snapshot and expiry in `chain` (silver rows)."""
    key = list(SNAPSHOT_KEY)
    strikes = by_strike(chain).with_columns(
        pl.col("ce_oi", "pe_oi").fill_null(0.0),
        distance=(pl.col("strike_price") - pl.col("underlying_value")).abs(),
    )
    ce_weight, pe_weight = pl.col("ce_oi"), pl.col("pe_oi")
    k = pl.col("strike_price")
    strikes = strikes.with_columns(
        pain=(
            k * ce_weight.cum_sum().over(key)
            - (ce_weight * k).cum_sum().over(key)
            + (pe_weight * k).cum_sum(reverse=True).over(key)
            - k * pe_weight.cum_sum(reverse=True).over(key)
        ),
        # Rows are in strike order, so an ordinal rank puts the lower of two equidistant first.
        nearness=pl.col("distance").rank("ordinal").over(key) - 1,
        both_iv=pl.col("ce_iv").is_not_null() & pl.col("pe_iv").is_not_null(),
    )
    atm = pl.col("nearness") == 0
    near = (pl.col("nearness") < SPREAD_STRIKES) & pl.col("both_iv")
    gold = strikes.group_by(key).agg(
        pl.col("underlying_value").first(),
        pcr_oi=_ratio(pl.col("pe_oi").sum(), pl.col("ce_oi").sum()),
        pcr_volume=_ratio(pl.col("pe_vol").sum(), pl.col("ce_vol").sum()),
        max_pain=k.sort_by(["pain", "strike_price"]).first(),
        atm_strike=k.filter(atm).first(),
        atm_iv=pl.mean_horizontal(pl.col("ce_iv").filter(atm), pl.col("pe_iv").filter(atm)).first(),
        iv_spread=(pl.col("pe_iv") - pl.col("ce_iv")).filter(near).mean(),
        ce_oi=pl.col("ce_oi").sum(),
        pe_oi=pl.col("pe_oi").sum(),
        ce_oi_change=pl.col("ce_chg").sum(),
        pe_oi_change=pl.col("pe_chg").sum(),
        ce_volume=pl.col("ce_vol").sum(),
        pe_volume=pl.col("pe_vol").sum(),
        ce_buildup_strikes=_buildup("ce_chg"),
        pe_buildup_strikes=_buildup("pe_chg"),
    )
    return gold.select([pl.col(c.name).cast(c.dtype) for c in COLUMNS]).sort(key)


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    return pl.when(denominator > 0).then(numerator / denominator)


def _buildup(change: str) -> pl.Expr:
    grew = pl.col(change) > 0
    return (
        pl.col("strike_price")
        .filter(grew)
        .sort_by(
            [pl.col(change).filter(grew), pl.col("strike_price").filter(grew)],
            descending=[True, False],
        )
        .head(BUILDUP_STRIKES)
    )


def draw_oi_chart(chain: pl.DataFrame, gold_row: dict, path: Path) -> Path:
    """A PNG of one snapshot and expiry's OI by strike, with spot and max pain marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    strikes = by_strike(chain)
    step = strikes["strike_price"].diff().drop_nulls().min() or 1.0
    width = 0.4 * step
    fig, ax = plt.subplots(figsize=(12, 5), dpi=100)
    try:
        x = strikes["strike_price"].to_numpy()
        ax.bar(x - width / 2, strikes["ce_oi"].fill_null(0).to_numpy(), width, label="Call OI")
        ax.bar(x + width / 2, strikes["pe_oi"].fill_null(0).to_numpy(), width, label="Put OI")
        ax.axvline(
            gold_row["underlying_value"],
            color="black",
            linestyle="--",
            label=f"Spot {gold_row['underlying_value']:,.2f}",
        )
        ax.axvline(
            gold_row["max_pain"],
            color="red",
            linestyle=":",
            label=f"Max pain {gold_row['max_pain']:,.0f}",
        )
        at = gold_row["snapshot_ts"]
        ax.set_title(
            f"{gold_row['underlying']} {nse_date_text(gold_row['expiry_date'])} open interest, "
            f"{nse_date_text(at)} {at:%H:%M:%S} IST (PCR {gold_row['pcr_oi'] or 0:.2f})"
        )
        ax.set_xlabel("Strike")
        ax.set_ylabel("Open interest (contracts)")
        ax.legend()
        fig.tight_layout()
        write_png(path, fig)
    finally:
        plt.close(fig)
    return path


# ---- reading back --------------------------------------------------------------------------
def latest_chain(
    lake,
    underlying: str,
    trade_date: dt.date | None = None,
    expiry: dt.date | None = None,
) -> pl.DataFrame:
    """The latest stored snapshot of one expiry (the nearest, unless given) of an underlying."""
    if trade_date is None:
        # The latest day that holds the underlying, looking back from the newest.
        for day in reversed(lake.silver_dates(OPTION_CHAIN)):
            if (chain := _stored(lake, day, underlying)) is not None:
                trade_date = day
                break
        else:
            raise FileNotFoundError(f"no option chain of {underlying} in {lake.root}")
    else:
        chain = _stored(lake, trade_date, underlying)
    if chain is None:
        raise FileNotFoundError(
            f"no option chain of {underlying} for {trade_date} in "
            f"{lake.partition('silver', OPTION_CHAIN, trade_date)}"
        )
    if expiry is None:
        expiry = chain["expiry_date"].min()
    chain = chain.filter(pl.col("expiry_date") == expiry)
    if chain.is_empty():
        raise FileNotFoundError(f"no {expiry} expiry of {underlying} on {trade_date}")
    return chain.filter(pl.col("snapshot_ts") == pl.col("snapshot_ts").max())


def _stored(lake, trade_date: dt.date, underlying: str) -> pl.DataFrame | None:
    """An underlying's snapshots of one day: its per-cycle files while the day is open, its rows
    of the day's one file once housekeeping compacted it; None when the day has neither."""
    directory = lake.partition("silver", OPTION_CHAIN, trade_date, f"underlying={underlying}")
    if any(directory.glob("*.parquet")):
        return pl.read_parquet(directory / "*.parquet")
    compacted = lake.silver_path(OPTION_CHAIN, trade_date)
    if compacted.exists():
        chain = pl.scan_parquet(compacted).filter(pl.col("underlying") == underlying).collect()
        return chain if chain.height else None
    return None


def chart_latest(
    lake,
    underlying: str,
    trade_date: dt.date | None = None,
    expiry: dt.date | None = None,
) -> Path:
    """Draw the latest snapshot's OI by strike into the gold lake; returns the PNG's path."""
    chain = latest_chain(lake, underlying, trade_date, expiry)
    gold = analytics(chain).row(0, named=True)
    at = gold["snapshot_ts"]
    path = lake.partition("gold", CHARTS, gold["trade_date"], f"underlying={underlying}") / (
        f"{gold['expiry_date'].isoformat()}_{at:%H%M%S}.png"
    )
    return draw_oi_chart(chain, gold, path)
