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
reload a day; set `history_from` to backfill every weekday from that date up to the trade date
through the API (`load_history_*`), or use
`airflow backfill create --dag-id nse_bulk_block_deals --from-date ... --to-date ...`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag
from nse_alerts import SlackFailureAlert
from nse_eod import DEFAULT_ARGS, dataset_chain, history_from_param, trade_date_param
from nse_timetable import TradingDayTimetable

DATASETS = ("bulk_deals", "block_deals")
SCHEDULE = TradingDayTimetable(at=dt.time(19, 30), segment="CM", timezone="Asia/Kolkata")


@dag(
    dag_id="nse_bulk_block_deals",
    schedule=SCHEDULE,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    on_failure_callback=SlackFailureAlert(),
    doc_md=__doc__,
    tags=["nse", "equities", "deals", "end-of-day"],
    params={"trade_date": trade_date_param(), "history_from": history_from_param()},
)
def nse_bulk_block_deals():
    for name in DATASETS:
        dataset_chain(name, history=True)


nse_bulk_block_deals()
