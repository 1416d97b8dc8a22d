"""
### NSE equity bhavcopy and delivery

Lands NSE's end-of-day equity (CM) bhavcopy and the full bhavcopy with delivery quantities for
one trade date, each through the same chain:

1. **fetch** the file from NSE's archive into bronze (bytes as served, with a sha256 manifest);
   the legacy format up to 2024-07-05, UDiFF from 2024-07-08, chosen by what NSE publishes;
2. **parse** it into a typed silver Parquet partition;
3. **validate** the partition against the dataset's expectations (a critical failure loads
   nothing and alerts);
4. **load** it into ClickHouse (`nse.cm_bhavcopy`, `nse.cm_delivery`), replacing that date's
   rows, so reruns and backfills never duplicate, and publish the dataset's asset.

Runs at 18:30 Asia/Kolkata on NSE's equity (CM) trading days only: no runs on holidays, and runs
on weekend sessions such as Budget Saturdays (the `TradingDayTimetable`). A day NSE was closed or
has not published yet skips the run, the reason first in the fetch task's log. Trigger with a
`trade_date` to reload a day; load history with
`airflow backfill create --dag-id nse_cm_bhavcopy --from-date ... --to-date ...`.
"""

from __future__ import annotations

import datetime as dt

from nse_timetable import TradingDayTimetable

from include.nse_airflow import nse_dag

DATASETS = ["cm_bhavcopy", "cm_delivery"]
SCHEDULE = TradingDayTimetable(at=dt.time(18, 30), segment="CM", timezone="Asia/Kolkata")
#: Due by 21:00 IST; later, Slack hears of it (NSE_DEADLINE_MINUTES_NSE_CM_BHAVCOPY).
FINISH_WITHIN = dt.timedelta(hours=2, minutes=30)

dag = nse_dag(
    "nse_cm_bhavcopy",
    datasets=DATASETS,
    schedule=SCHEDULE,
    finish_within=FINISH_WITHIN,
    doc_md=__doc__,
    tags=["nse", "equity", "end-of-day"],
)
