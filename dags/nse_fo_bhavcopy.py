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

Runs at 19:00 Asia/Kolkata on weekdays, after NSE publishes the F&O file. A date NSE has not
published (a holiday, or too early) skips the run with the reason in the fetch task's log.
Trigger with a `trade_date` to reload a day; load history with
`airflow backfill create --dag-id nse_fo_bhavcopy --from-date ... --to-date ...`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronTriggerTimetable, dag
from nse_eod import DEFAULT_ARGS, dataset_chain, trade_date_param

DATASET = "fo_bhavcopy"
SCHEDULE = CronTriggerTimetable("0 19 * * 1-5", timezone="Asia/Kolkata")


@dag(
    dag_id="nse_fo_bhavcopy",
    schedule=SCHEDULE,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["nse", "derivatives", "end-of-day"],
    params={"trade_date": trade_date_param()},
)
def nse_fo_bhavcopy():
    dataset_chain(DATASET)


nse_fo_bhavcopy()
