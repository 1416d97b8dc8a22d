-- Gold datasets: analytics the PySpark jobs of `include/nse_gold/` compute from silver.
-- Columns are exactly the `Column`s of `include/nse_gold/datasets.py`, plus loaded_at; the
-- formulas are defined in the job modules. One partition per trade date, loaded like silver
-- (REPLACE PARTITION from a staging table). Nullable columns stay out of the sorting keys, which
-- ClickHouse 18.16 requires.

-- Each security's day (every series) with its delivery and the day's ratios.
CREATE TABLE IF NOT EXISTS {db}.equity_eod
(
    trade_date   Date,
    symbol       String,
    series       String,
    isin         Nullable(String),
    open         Nullable(Float64),
    high         Nullable(Float64),
    low          Nullable(Float64),
    close        Nullable(Float64),
    last_price   Nullable(Float64),
    prev_close   Nullable(Float64),
    volume       Nullable(UInt64),
    turnover     Nullable(Float64),
    trades       Nullable(UInt64),
    delivery_qty Nullable(UInt64),
    delivery_pct Nullable(Float64),
    vwap         Nullable(Float64),
    daily_return Nullable(Float64),
    gap          Nullable(Float64),
    day_range    Nullable(Float64),
    loaded_at    DateTime DEFAULT now()
)
ENGINE = MergeTree
PARTITION BY trade_date
ORDER BY (symbol, series, trade_date);

-- Indicators per EQ symbol and day; the EMAs, Wilder's averages and history_rows are also
-- the state the next incremental run continues from.
CREATE TABLE IF NOT EXISTS {db}.equity_indicators
(
    trade_date   Date,
    symbol       String,
    history_rows UInt32,
    high         Float64,
    low          Float64,
    close        Float64,
    sma20        Nullable(Float64),
    sma50        Nullable(Float64),
    sma200       Nullable(Float64),
    ema12        Nullable(Float64),
    ema20        Nullable(Float64),
    ema26        Nullable(Float64),
    ema50        Nullable(Float64),
    ema200       Nullable(Float64),
    macd         Nullable(Float64),
    macd_signal  Nullable(Float64),
    macd_hist    Nullable(Float64),
    avg_gain14   Nullable(Float64),
    avg_loss14   Nullable(Float64),
    rsi14        Nullable(Float64),
    atr14        Nullable(Float64),
    bb_upper     Nullable(Float64),
    bb_lower     Nullable(Float64),
    high_52w     Float64,
    low_52w      Float64,
    loaded_at    DateTime DEFAULT now()
)
ENGINE = MergeTree
PARTITION BY trade_date
ORDER BY (symbol, trade_date);

-- Bars per EQ symbol, dated by the period's last trading day (a week's, then a month's).
CREATE TABLE IF NOT EXISTS {db}.equity_bars_weekly
(
    trade_date   Date,
    symbol       String,
    open         Nullable(Float64),
    high         Nullable(Float64),
    low          Nullable(Float64),
    close        Nullable(Float64),
    volume       Nullable(UInt64),
    turnover     Nullable(Float64),
    trading_days UInt32,
    loaded_at    DateTime DEFAULT now()
)
ENGINE = MergeTree
PARTITION BY trade_date
ORDER BY (symbol, trade_date);

CREATE TABLE IF NOT EXISTS {db}.equity_bars_monthly
(
    trade_date   Date,
    symbol       String,
    open         Nullable(Float64),
    high         Nullable(Float64),
    low          Nullable(Float64),
    close        Nullable(Float64),
    volume       Nullable(UInt64),
    turnover     Nullable(Float64),
    trading_days UInt32,
    loaded_at    DateTime DEFAULT now()
)
ENGINE = MergeTree
PARTITION BY trade_date
ORDER BY (symbol, trade_date);

-- Each F&O contract's day: change since the previous trading day, build-up, basis, PCR and
-- roll-over. strike_price and option_type are null on futures, so they stay out of the sorting key.
CREATE TABLE IF NOT EXISTS {db}.fo_daily
(
    trade_date         Date,
    instrument         String,
    symbol             String,
    expiry_date        Date,
    strike_price       Nullable(Float64),
    option_type        Nullable(String),
    close              Nullable(Float64),
    open_interest      Nullable(Int64),
    contracts          Nullable(UInt64),
    prev_close         Nullable(Float64),
    prev_open_interest Nullable(Int64),
    price_change       Nullable(Float64),
    oi_change          Nullable(Int64),
    buildup            Nullable(String),
    underlying_price   Nullable(Float64),
    basis              Nullable(Float64),
    basis_pct          Nullable(Float64),
    pcr_oi             Nullable(Float64),
    pcr_volume         Nullable(Float64),
    rollover_pct       Nullable(Float64),
    loaded_at          DateTime DEFAULT now()
)
ENGINE = MergeTree
PARTITION BY trade_date
ORDER BY (symbol, expiry_date, instrument, trade_date);

-- One row per trade date; arrays are in rank order (empty when nothing qualifies).
CREATE TABLE IF NOT EXISTS {db}.market_daily_summary
(
    trade_date           Date,
    advances             UInt32,
    declines             UInt32,
    unchanged            UInt32,
    top_gainers          Array(String),
    top_gainer_returns   Array(Float64),
    top_losers           Array(String),
    top_loser_returns    Array(Float64),
    delivery_leaders     Array(String),
    delivery_leader_pcts Array(Float64),
    oi_buildup_symbols   Array(String),
    oi_buildup_expiries  Array(Date),
    oi_buildup_changes   Array(Int64),
    total_turnover       Nullable(Float64),
    total_trades         Nullable(UInt64),
    bulk_deals           Nullable(UInt32),
    bulk_deal_value      Nullable(Float64),
    block_deals          Nullable(UInt32),
    block_deal_value     Nullable(Float64),
    loaded_at            DateTime DEFAULT now()
)
ENGINE = MergeTree
PARTITION BY trade_date
ORDER BY (trade_date);
