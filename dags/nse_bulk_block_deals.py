"""
### NSE bulk and block deals

Lands the day's bulk deals (a client's trades adding up to over 0.5% of a company's shares) and
block deals (single trades of Rs 10 crore or more in the block window), each naming the client,
side, quantity and price.

1. **fetch** NSE's `/content/equities/bulk.csv` and `block.csv` into bronze. They only ever hold
   the latest day: a file still holding an earlier day skips the run (not published yet);
2. **fetch_history**, in the `nse_api` pool: when the archive file has moved past the trade
   date (a backfill, a late rerun), the date comes from NSE's historical API instead;
3. **parse** to a silver partition (two identical deals stay two rows, told apart by
   `deal_ordinal`), **validate**, and **load** into ClickHouse (`nse.bulk_deals`,
   `nse.block_deals`), replacing that date's rows, so reruns never duplicate.

A day without block deals (`NO RECORDS`) loads zero rows. Runs at 19:30 Asia/Kolkata on CM
trading days (the trading calendar's `TradingDayTimetable`). Trigger with a `trade_date` to
reload a day; load history with
`airflow backfill create --dag-id nse_bulk_block_deals --from-date ... --to-date ...`, one run
per trading day, each past day from the API.
"""

from __future__ import annotations

import datetime as dt

from nse_timetable import TradingDayTimetable

from include.nse_airflow import nse_dag

DATASETS = ["bulk_deals", "block_deals"]
SCHEDULE = TradingDayTimetable(at=dt.time(19, 30), segment="CM", timezone="Asia/Kolkata")
#: Due by 22:00 IST; later, Slack hears of it (NSE_DEADLINE_MINUTES_NSE_BULK_BLOCK_DEALS).
FINISH_WITHIN = dt.timedelta(hours=2, minutes=30)

dag = nse_dag(
    "nse_bulk_block_deals",
    datasets=DATASETS,
    schedule=SCHEDULE,
    finish_within=FINISH_WITHIN,
    doc_md=__doc__,
    tags=["nse", "equities", "deals", "end-of-day"],
)
