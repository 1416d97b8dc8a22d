-- NSE's holiday lists and the trading calendar they make, per segment.
-- `holidays` holds exactly the silver schema of `include/nse/sources/holidays.py`, plus
-- loaded_at: one row per day NSE lists for a segment (weekends included, as NSE lists them).
-- `trading_calendar` holds every day of every covered year for CM, FO, CD and COM with whether
-- the segment trades, so a query can join on (date, segment) instead of guessing weekdays.
--
-- Both are partitioned by year and each refresh replaces the years it computed whole, so reruns
-- leave one copy.
CREATE TABLE IF NOT EXISTS {db}.holidays
(
    date            Date,
    segment         String,              -- NSE's code: CM, FO, CD, COM, CMOT, IRD, SLBS, ...
    description     String,
    weekday         String,              -- as NSE prints it: Monday ... Sunday
    morning_session Nullable(String),    -- COM only: Open or Closed
    evening_session Nullable(String),    -- COM only: Open or Closed
    loaded_at       DateTime DEFAULT now()
)
ENGINE = MergeTree
PARTITION BY toYear(date)
ORDER BY (segment, date);

CREATE TABLE IF NOT EXISTS {db}.trading_calendar
(
    date            Date,
    segment         String,
    is_trading_day  UInt8,
    -- regular, weekend, holiday, half_day (a COM session open), or a special session's kind:
    -- budget, muhurat, special
    day_kind        String,
    description     Nullable(String),    -- NSE's holiday or special-session description
    source          String,              -- what decided: special_session, nse_list, library, weekday
    loaded_at       DateTime DEFAULT now()
)
ENGINE = MergeTree
PARTITION BY toYear(date)
ORDER BY (segment, date);
