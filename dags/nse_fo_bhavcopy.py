"""
### NSE F&O bhavcopy

Lands NSE's end-of-day futures and options (F&O) bhavcopy for one trade date: every index and
stock future and option contract's prices, contracts traded, turnover and open interest.

1. **fetch** the file from NSE's archive into bronze (bytes as served, with a sha256 manifest);
   the legacy `foDDMMMYYYYbhav.csv.zip` up to 2024-07-05, UDiFF from 2024-07-08, chosen by what
   NSE publishes;
2. **parse** it into a typed silver Parquet partition (futures carry null strike and option
   type; turnover in rupees; open interest in units of the underlying);
3. **validate** it against the dataset's expectations (a critical failure loads nothing);
4. **load** it into ClickHouse (`nse.fo_bhavcopy`), replacing that date's rows, so reruns and
   backfills never duplicate.

Runs at 19:00 Asia/Kolkata on NSE's F&O trading days only, after NSE publishes the file: no
runs on holidays, and runs on weekend sessions such as Budget Saturdays (the
`TradingDayTimetable`). A day NSE was closed or has not published yet skips the run, the reason
first in the fetch task's log. Trigger with a `trade_date` to reload a day; load history with
`airflow backfill create --dag-id nse_fo_bhavcopy --from-date ... --to-date ...`.
"""

from __future__ import annotations

import datetime as dt

from nse_timetable import TradingDayTimetable

from include.nse_airflow import nse_dag

DATASETS = ["fo_bhavcopy"]
SCHEDULE = TradingDayTimetable(at=dt.time(19, 0), segment="FO", timezone="Asia/Kolkata")
#: Due by 21:30 IST; later, Slack hears of it (NSE_DEADLINE_MINUTES_NSE_FO_BHAVCOPY).
FINISH_WITHIN = dt.timedelta(hours=2, minutes=30)

dag = nse_dag(
    "nse_fo_bhavcopy",
    datasets=DATASETS,
    schedule=SCHEDULE,
    finish_within=FINISH_WITHIN,
    doc_md=__doc__,
    tags=["nse", "derivatives", "end-of-day"],
)
