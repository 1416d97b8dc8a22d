-- F&O bhavcopy: one row per contract and trade date (legacy and UDiFF formats).
-- Columns are exactly the silver schema of `include/nse/sources/fo_bhavcopy.py`, plus loaded_at.
--
-- One partition per trade date, replaced whole by each load like cm_bhavcopy. The natural key
-- (instrument, symbol, expiry_date, strike_price, option_type) has nullable parts (futures have
-- no strike or option type), and 18.16 refuses Nullable columns in the sorting key, so the key
-- stops at the non-nullable prefix: within a day's partition the rows of one symbol and expiry
-- (an option chain, a few hundred rows at most) sit together in one granule, which serves both
-- "the chain of a symbol and expiry on a day" and "one contract over time" (one granule read
-- per day, filtered by strike and option type).
CREATE TABLE IF NOT EXISTS {db}.fo_bhavcopy
(
    trade_date       Date,
    instrument       String,              -- FUTIDX, FUTSTK, OPTIDX, OPTSTK
    symbol           String,
    expiry_date      Date,
    strike_price     Nullable(Float64),   -- null for futures
    option_type      Nullable(String),    -- CE or PE; null for futures
    open             Nullable(Float64),   -- null when nothing traded (NSE prints 0)
    high             Nullable(Float64),
    low              Nullable(Float64),
    close            Float64,
    settle_price     Nullable(Float64),   -- legacy prints 0 for some options: null
    open_interest    Int64,               -- units of the underlying, not contracts
    change_in_oi     Int64,
    contracts        UInt64,              -- contracts (lots) traded, in both formats
    turnover         Float64,             -- rupees; notional (strike + premium) for options
    trades           Nullable(UInt64),    -- UDiFF only
    underlying_price Nullable(Float64),   -- UDiFF only
    lot_size         Nullable(UInt64),    -- UDiFF only
    source_format    String,              -- which NSE file layout the row was parsed from
    loaded_at        DateTime DEFAULT now()
)
ENGINE = MergeTree
PARTITION BY trade_date
ORDER BY (symbol, expiry_date, instrument, trade_date);
