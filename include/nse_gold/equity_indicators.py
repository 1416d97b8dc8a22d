"""`equity_indicators`: technical indicators per symbol on the EQ series, exact and incremental.

**The series.** A symbol's series is its EQ rows of silver `cm_bhavcopy` that have a close, a
high and a low (a row NSE left blank is not part of it), in trade-date order. A gap of more than
364 days between two rows (a suspension of over a year, a relisting) ends a series: the next row
starts a new one and every indicator starts afresh. `history_rows` is the row's number in its
series, 1 for the first. Columns high, low, close are the row's, in rupees.

**Window indicators**, null until the series has n rows:

- sma{n}, n = 20, 50, 200: the mean of the last n closes, this row's included;
- bb_upper, bb_lower: sma20 + 2 sd20 and sma20 - 2 sd20, sd20 the population standard deviation
  (divided by n) of the last 20 closes (Bollinger bands 20, 2; the middle band is sma20);
- high_52w, low_52w: the max high and min low of the series' rows with trade_date > this day -
  364 days (52 weeks, this row included); from the first row on, so a stock listed less than a
  year ago shows its high and low since listing.

**Recursive indicators**, seeded as TA-Lib seeds them:

- ema{n}, n = 12, 20, 26, 50, 200: null for rows 1..n-1; at row n the mean of the first n closes
  (`math.fsum` / n); then ema = a * close + (1 - a) * previous ema, a = 2 / (n + 1);
- macd = ema12 - ema26 (from row 26); macd_signal: the same EMA (n = 9) of macd, seeded at row 34
  with the mean of the first 9 macd values; macd_hist = macd - macd_signal. (TA-Lib's MACD
  function starts its fast EMA later, so its first values differ; these are plain EMAs.)
- Wilder's averages: from row 2, change = close - previous close, gain = max(change, 0),
  loss = max(-change, 0), true range = max(high, previous close) - min(low, previous close).
  avg_gain14, avg_loss14, atr14 are null for rows 1..14; at row 15 the mean of the 14 values of
  rows 2..15; then avg = (13 * previous avg + value) / 14;
- rsi14 = 100 * avg_gain14 / (avg_gain14 + avg_loss14); null where both are 0 (no movement).

Nothing is adjusted for corporate actions (splits, bonuses, dividends): a split shows as a
price jump. Adjusting history is out of scope.

**Incremental runs, exact to the bit.** The recursive state is in the gold rows themselves
(close, the EMAs, macd_signal, avg_gain14, avg_loss14, atr14, history_rows). A run for
[start, end] reads gold for the silver dates of the 364 days before `start`, and takes each
symbol's last row there as the state to continue from; every recursive indicator is seeded by
row 200, so a symbol with 200 rows continues from its state, and a younger one is recomputed
from its series' first row, which is then within the rows read. It reads silver from 364 days
before `start` (the 52-week window), further back when a symbol's last 199 rows (SMA 200) reach
beyond that (a thinly traded symbol), doubling the look-back until they are all in. The windows
are computed by Spark over each row's own frame (a fixed set of rows, summed in date order), the
recursions by one pass per symbol in date order: so a run over [start, end] gives the values one
run over the whole history gives, bit for bit.

When gold does not cover every silver date of the 364 days before `start` (the first run, or a
gap), the run computes from history start: it reads silver from the first date and replays every
series from its first row. It still writes only [start, end]. Gold continues from the silver it
was computed from: after a past date's silver changes, rerun from that date.
"""

from __future__ import annotations

import datetime as dt
import math

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from .common import EQUITY, partition_dates, read_gold, read_silver, write_gold

DATASET = "equity_indicators"
#: A gap longer than this (days) between two rows starts a new series.
RESTART_DAYS = 364
#: The 52-week window, in days.
YEAR_DAYS = 364
SMAS = (20, 50, 200)
EMAS = (12, 20, 26, 50, 200)
SIGNAL = 9
WILDER = 14
BOLLINGER = (20, 2.0)
#: Every recursive indicator is seeded by this row (EMA 200 is the last).
SEEDED_ROWS = 200
#: Gold columns a run continues from.
STATE = (
    "close",
    "ema12",
    "ema20",
    "ema26",
    "ema50",
    "ema200",
    "macd_signal",
    "avg_gain14",
    "avg_loss14",
    "atr14",
)
SILVER = {
    "trade_date": "date",
    "symbol": "string",
    "series": "string",
    "high": "double",
    "low": "double",
    "close": "double",
}
WINDOWED = ("sma20", "sma50", "sma200", "bb_upper", "bb_lower", "high_52w", "low_52w")
RECURSIVE = (
    "ema12",
    "ema20",
    "ema26",
    "ema50",
    "ema200",
    "macd",
    "macd_signal",
    "macd_hist",
    "avg_gain14",
    "avg_loss14",
    "rsi14",
    "atr14",
)
COLUMNS = {
    "trade_date": "date",
    "symbol": "string",
    "history_rows": "int",
    "high": "double",
    "low": "double",
    "close": "double",
    **dict.fromkeys(WINDOWED[:3], "double"),
    **dict.fromkeys(RECURSIVE, "double"),
    **dict.fromkeys(WINDOWED[3:], "double"),
}


# ---- the recursion, one symbol at a time ---------------------------------------------------------
class _Ema:
    """An EMA seeded with the mean of its first n values."""

    def __init__(self, n: int, value: float | None = None) -> None:
        self.n, self.alpha, self.value, self.seed = n, 2.0 / (n + 1), value, []

    def update(self, x: float) -> float | None:
        if self.value is None:
            self.seed.append(x)
            if len(self.seed) == self.n:
                self.value = math.fsum(self.seed) / self.n
        else:
            self.value = self.alpha * x + (1.0 - self.alpha) * self.value
        return self.value


class _Wilder(_Ema):
    """Wilder's average: the mean of the first n values, then (prev * (n - 1) + x) / n."""

    def update(self, x: float) -> float | None:
        if self.value is None:
            return super().update(x)
        self.value = (self.value * (self.n - 1) + x) / self.n
        return self.value


class _Recursion:
    """A series' recursive indicators, fresh or continued from its last gold row (`g_*`)."""

    def __init__(self, gold: dict | None = None) -> None:
        value = (lambda name: gold[f"g_{name}"]) if gold else (lambda name: None)
        self.emas = {n: _Ema(n, value(f"ema{n}")) for n in EMAS}
        self.signal = _Ema(SIGNAL, value("macd_signal"))
        self.gain = _Wilder(WILDER, value(f"avg_gain{WILDER}"))
        self.loss = _Wilder(WILDER, value(f"avg_loss{WILDER}"))
        self.range = _Wilder(WILDER, value(f"atr{WILDER}"))
        self.prev_close = value("close")

    def step(self, close: float, high: float, low: float) -> dict:
        out = {f"ema{n}": ema.update(close) for n, ema in self.emas.items()}
        macd = signal = None
        if out["ema26"] is not None:
            macd = out["ema12"] - out["ema26"]
            signal = self.signal.update(macd)
        gain = loss = atr = None
        if self.prev_close is not None:
            prev, change = self.prev_close, close - self.prev_close
            gain = self.gain.update(max(change, 0.0))
            loss = self.loss.update(max(-change, 0.0))
            atr = self.range.update(max(high, prev) - min(low, prev))
        self.prev_close = close
        moved = None if gain is None else gain + loss
        return out | {
            "macd": macd,
            "macd_signal": signal,
            "macd_hist": None if signal is None else macd - signal,
            f"avg_gain{WILDER}": gain,
            f"avg_loss{WILDER}": loss,
            f"rsi{WILDER}": 100.0 * gain / moved if moved else None,
            f"atr{WILDER}": atr,
        }


def _fold(rows):
    """Rows sorted by symbol and date -> gold rows of the days to write.

    A symbol's first row here either continues its gold state (`from_gold`) or starts its
    series (history_rows 1); a later row with history_rows 1 starts a new series.
    """
    symbol, recursion = None, None
    for row in rows:
        fields = row.asDict()
        if fields["symbol"] != symbol or fields["history_rows"] == 1:
            if fields["symbol"] != symbol and fields["from_gold"]:
                recursion = _Recursion(fields)
            elif fields["history_rows"] == 1:
                recursion = _Recursion()
            else:
                raise RuntimeError(
                    f"{fields['symbol']} on {fields['trade_date']}: row {fields['history_rows']} "
                    "of its series has neither gold state nor earlier rows to continue from"
                )
            symbol = fields["symbol"]
        fields |= recursion.step(fields["close"], fields["high"], fields["low"])
        if fields["emit"]:
            yield tuple(fields[name] for name in COLUMNS)


# ---- Spark ---------------------------------------------------------------------------------------
def _series(silver: DataFrame) -> DataFrame:
    """EQ rows with close, high and low, numbered within their series (`seg`, `rn`)."""
    by_symbol = Window.partitionBy("symbol").orderBy("day")
    previous = F.lag("day").over(by_symbol)
    rows = (
        silver.filter(
            (F.col("series") == EQUITY)
            & F.col("close").isNotNull()
            & F.col("high").isNotNull()
            & F.col("low").isNotNull()
        )
        .select("trade_date", "symbol", "high", "low", "close")
        .withColumn("day", F.unix_date("trade_date"))
        .withColumn(
            "new", (previous.isNull() | (F.col("day") - previous > RESTART_DAYS)).cast("int")
        )
    )
    rows = rows.withColumn(
        "seg", F.sum("new").over(by_symbol.rowsBetween(Window.unboundedPreceding, 0))
    )
    return rows.withColumn(
        "rn", F.row_number().over(Window.partitionBy("symbol", "seg").orderBy("day"))
    )


def _last_gold(
    spark: SparkSession, lake_root: str, silver: list[dt.date], start: dt.date
) -> DataFrame | None:
    """Each symbol's last gold row in the 364 days before `start` (as `g_*`); None unless gold
    covers every silver date there."""
    window = [d for d in silver if start - dt.timedelta(days=RESTART_DAYS) <= d < start]
    if not window or not set(window) <= set(partition_dates(spark, lake_root, "gold", DATASET)):
        return None
    gold = read_gold(spark, lake_root, DATASET, window)
    latest = Window.partitionBy("symbol").orderBy(F.col("trade_date").desc())
    return (
        gold.withColumn("_latest", F.row_number().over(latest))
        .filter(F.col("_latest") == 1)
        .select(
            "symbol",
            F.col("trade_date").alias("g_date"),
            F.col("history_rows").alias("g_rows"),
            *(F.col(name).alias(f"g_{name}") for name in STATE),
        )
    )


def _continued(series: DataFrame, last: DataFrame) -> DataFrame:
    """Rows numbered on from the gold state: the series holding the symbol's gold row
    continues its history_rows; `from_gold` marks rows whose series is seeded there."""
    by_symbol = Window.partitionBy("symbol")
    at_gold = F.col("trade_date") == F.col("g_date")
    rows = (
        series.join(F.broadcast(last), "symbol", "left")
        .withColumn("g_seg", F.max(F.when(at_gold, F.col("seg"))).over(by_symbol))
        .withColumn("g_rn", F.max(F.when(at_gold, F.col("rn"))).over(by_symbol))
    )
    in_gold_series = F.coalesce(F.col("seg") == F.col("g_seg"), F.lit(False))
    return rows.withColumns(
        {
            "history_rows": F.col("rn")
            + F.when(in_gold_series, F.col("g_rows") - F.col("g_rn")).otherwise(0),
            "from_gold": in_gold_series & (F.col("g_rows") >= SEEDED_ROWS),
            "replay": in_gold_series & (F.col("g_rows") < SEEDED_ROWS),
        }
    )


def _short(rows: DataFrame, start: dt.date) -> bool:
    """Whether a symbol trading in the run lacks rows it needs before `start`: its last
    min(199, rows) rows; or gold that silver no longer agrees with (a gold row silver lacks,
    silver rows of the 364 days before `start` without gold)."""
    by_symbol = Window.partitionBy("symbol")
    recent = (F.col("trade_date") < F.lit(start)) & (
        F.col("trade_date") >= F.lit(start - dt.timedelta(days=RESTART_DAYS))
    )
    needed = F.least(F.col("g_rows"), F.lit(SEEDED_ROWS - 1))
    lacking = F.when(F.col("g_date").isNull(), F.max(recent).over(by_symbol)).otherwise(
        F.col("g_rn").isNull() | (F.col("g_rn") < needed)
    )
    in_run = F.max("trade_date").over(by_symbol) >= F.lit(start)
    return not rows.withColumn("_short", in_run & lacking).filter(F.col("_short")).isEmpty()


def _fresh(series: DataFrame) -> DataFrame:
    return series.withColumns(
        {
            "history_rows": F.col("rn"),
            "from_gold": F.lit(False),
            "replay": F.lit(True),
            **{f"g_{name}": F.lit(None).cast("double") for name in STATE},
        }
    )


def _windowed(rows: DataFrame) -> DataFrame:
    """SMA, Bollinger and 52-week columns, each over its own frame of the series' rows."""
    by_series = Window.partitionBy("symbol", "seg").orderBy("day")

    def last_rows(n: int):
        return by_series.rowsBetween(-(n - 1), 0)

    def once(n: int, value: Column) -> Column:
        return F.when(F.col("history_rows") >= n, value)

    n, width = BOLLINGER
    rows = rows.withColumns(
        {
            **{f"sma{k}": once(k, F.avg("close").over(last_rows(k))) for k in SMAS},
            "_sd": once(n, F.stddev_pop("close").over(last_rows(n))),
            "high_52w": F.max("high").over(by_series.rangeBetween(-(YEAR_DAYS - 1), 0)),
            "low_52w": F.min("low").over(by_series.rangeBetween(-(YEAR_DAYS - 1), 0)),
        }
    )
    return rows.withColumns(
        {
            "bb_upper": F.col(f"sma{n}") + width * F.col("_sd"),
            "bb_lower": F.col(f"sma{n}") - width * F.col("_sd"),
        }
    )


def equity_indicators(
    spark: SparkSession,
    lake_root: str,
    start: dt.date,
    end: dt.date,
    calendar: list[dt.date] | None = None,
) -> dict[dt.date, int]:
    silver = [d for d in partition_dates(spark, lake_root, "silver", "cm_bhavcopy") if d <= end]
    run_dates = [d for d in silver if d >= start]
    if not run_dates:
        return {}

    def read(first: dt.date) -> DataFrame:
        dates = [d for d in silver if d >= first]
        return _series(read_silver(spark, lake_root, "cm_bhavcopy", dates, SILVER))

    last = _last_gold(spark, lake_root, silver, start)
    lookback = dt.timedelta(days=RESTART_DAYS)
    while last is not None:
        rows = _continued(read(start - lookback), last)
        if not _short(rows, start):
            break
        if start - lookback <= silver[0]:
            last = None  # gold that silver does not agree with: replay from history start
        lookback *= 2
    if last is None:
        rows = _fresh(read(silver[0]))

    emit = F.col("trade_date") >= F.lit(start)
    carried = [name for name in COLUMNS if name not in RECURSIVE]
    folded = (
        _windowed(rows)
        .filter(emit | F.col("replay"))
        .select(*carried, "from_gold", emit.alias("emit"), *(f"g_{name}" for name in STATE))
        .repartition("symbol")
        .sortWithinPartitions("symbol", "trade_date")
    )
    schema = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
    gold = spark.createDataFrame(folded.rdd.mapPartitions(_fold), schema)
    return write_gold(gold, lake_root, DATASET, run_dates)
