"""
### NSE F&O bhavcopy

Lands NSE's end-of-day futures and options (F&O) bhavcopy for one trade date: every index and
stock future and option contract's prices, contracts traded, turnover and open interest.

1. **fetch** the file from NSE's archive into bronze (bytes as served, with a sha256 manifest);
   the legacy `foDDMMMYYYYbhav.csv.zip` up to 2024-07-05, UDiFF from 2024-07-08, chosen by what
   NSE publishes;
2. **parse** it into a typed silver Parquet partition (futures carry null strike and option
   type; turnover in rupees; open interest in units of the underlying);
3. **load** the partition into ClickHouse (`nse.fo_bhavcopy`), replacing that date's rows, so
   reruns and backfills never duplicate.

Runs at 19:00 Asia/Kolkata on NSE's F&O trading days only, after NSE publishes the file: no
runs on holidays, and runs on weekend sessions such as Budget Saturdays (the
`TradingDayTimetable`). A date NSE has not published yet skips the run with the reason in the
fetch task's log. Trigger with a `trade_date` to reload a day; load history with
`airflow backfill create --dag-id nse_fo_bhavcopy --from-date ... --to-date ...`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag
from nse_alerts import SlackFailureAlert
from nse_eod import DEFAULT_ARGS, dataset_chain, trade_date_param
from nse_timetable import TradingDayTimetable

DATASET = "fo_bhavcopy"
SCHEDULE = TradingDayTimetable(at=dt.time(19, 0), segment="FO", timezone="Asia/Kolkata")


@dag(
    dag_id="nse_fo_bhavcopy",
    schedule=SCHEDULE,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    on_failure_callback=SlackFailureAlert(),
    doc_md=__doc__,
    tags=["nse", "derivatives", "end-of-day"],
    params={"trade_date": trade_date_param()},
)
def nse_fo_bhavcopy():
    dataset_chain(DATASET)


nse_fo_bhavcopy()
