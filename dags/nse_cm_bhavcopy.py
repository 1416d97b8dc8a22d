"""
### NSE equity bhavcopy and delivery

Lands NSE's end-of-day equity (CM) bhavcopy and the full bhavcopy with delivery quantities for
one trade date:

1. **fetch** the file from NSE's archive into bronze (bytes as served, with a sha256 manifest);
   the legacy format up to 2024-07-05, UDiFF from 2024-07-08, chosen by what NSE publishes;
2. **parse** it into a typed silver Parquet partition;
3. **load** the partition into ClickHouse (`nse.cm_bhavcopy`, `nse.cm_delivery`), replacing
   that date's rows, so reruns and backfills never duplicate.

Runs at 18:30 Asia/Kolkata on NSE's equity (CM) trading days only: no runs on holidays, and runs
on weekend sessions such as Budget Saturdays (the `TradingDayTimetable`). A date NSE has not
published yet skips the run with the reason in the fetch task's log. Trigger with a
`trade_date` to reload a day; load history with
`airflow backfill create --dag-id nse_cm_bhavcopy --from-date ... --to-date ...`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag
from nse_alerts import SlackFailureAlert
from nse_eod import DEFAULT_ARGS, dataset_chain, trade_date_param
from nse_timetable import TradingDayTimetable

DATASETS = ("cm_bhavcopy", "cm_delivery")
SCHEDULE = TradingDayTimetable(at=dt.time(18, 30), segment="CM", timezone="Asia/Kolkata")


@dag(
    dag_id="nse_cm_bhavcopy",
    schedule=SCHEDULE,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    on_failure_callback=SlackFailureAlert(),
    doc_md=__doc__,
    tags=["nse", "equity", "end-of-day"],
    params={"trade_date": trade_date_param()},
)
def nse_cm_bhavcopy():
    for name in DATASETS:
        dataset_chain(name)


nse_cm_bhavcopy()
