"""
### NSE intraday option chain

Snapshots the option chain of every F&O underlying every few minutes while the F&O market is
open (09:15 to 15:30 Asia/Kolkata, trading days only, from the trading calendar). NSE only
serves the current chain, so a missed snapshot is lost: runs do not catch up, and a run must
finish well inside its interval.

1. **plan** the underlyings (the `underlyings` param, else the `nse_option_chain_underlyings`
   Variable, else the five index underlyings plus every stock with options in the latest F&O
   bhavcopy held) and cut them into batches of `batch_size`;
2. **fetch** each batch (one mapped task per batch, named by its underlyings, in the `nse_api`
   pool that bounds every DAG's requests to NSE's API host): each underlying's expiries, then
   each expiry's chain, every response kept in bronze. An underlying that keeps failing is
   recorded and the batch goes on;
3. **parse** each batch's responses into silver; a response whose exchange timestamp has not
   moved since the last one stored is recorded as stale and not stored again;
4. **validate** the cycle's new snapshots against the dataset's expectations (a critical
   failure loads nothing), then **load** them into ClickHouse (`nse.option_chain`); a snapshot
   loaded twice stays one copy;
5. **analytics**: PCR, max pain, ATM strike and IV, put-call IV spread, OI totals and build-up
   into gold and `nse.option_chain_analytics`; **charts**: the open interest by strike of the
   `chart_underlyings` (the indices by default);
6. **check coverage**: fails the run, and so alerts, when more than `max_missing_share` of the
   underlyings are missing.

The interval is `NSE_OPTION_CHAIN_EVERY_MINUTES` in the environment (default 5), read when the
DAG file is parsed.
"""

from __future__ import annotations

import datetime as dt
import os

from nse_timetable import TradingSessionTimetable

from include.nse_airflow import nse_dag

#: Read from the environment, not a Variable: the schedule is fixed when the file is parsed,
#: and parsing must not query the metadata database.
EVERY = dt.timedelta(minutes=int(os.environ.get("NSE_OPTION_CHAIN_EVERY_MINUTES") or 5))
SCHEDULE = TradingSessionTimetable(
    every=EVERY, start=dt.time(9, 15), end=dt.time(15, 30), segment="FO", timezone="Asia/Kolkata"
)
#: A snapshot's retries and time must fit inside its interval: short waits, few of them.
RETRIES = {
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=15),
    "max_retry_delay": dt.timedelta(minutes=1),
    "execution_timeout": EVERY,
}

dag = nse_dag(
    "nse_option_chain",
    datasets=["option_chain"],
    schedule=SCHEDULE,
    doc_md=__doc__,
    tags=["nse", "derivatives", "intraday"],
    max_active_runs=1,
    default_args=RETRIES,
    dagrun_timeout=dt.timedelta(minutes=15),
)
