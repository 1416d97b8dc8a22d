"""
### NSE trading calendar

Refreshes NSE's holiday lists, which decide when every other NSE DAG runs:

1. **fetch** NSE's holiday master (`/api/holiday-master?type=trading`, the current year's lists
   for every segment) into bronze, through the API host's cookie warm-up;
2. **parse** it into a silver partition filed under the day it was fetched: `date, segment,
   description, weekday` and the COM session flags;
3. **validate** it against the dataset's expectations: a critical failure stops the run before
   ClickHouse or the timetables' file change;
4. **load** `nse.holidays`, replacing each year the lists cover;
5. **refresh_calendar**: the lists go into the lake's holiday file that the trading-day
   timetables read (no network in the scheduler), reconciled with the calendar library (BSE's
   calendar, which shares NSE's equity holidays; differences are logged), and from it into
   `nse.trading_calendar` (every date and segment with `is_trading_day`, for joins).

Runs at 06:00 Asia/Kolkata on the first day of each quarter; trigger it by hand when NSE
announces a new holiday (an election day) and the timetables pick it up on their next look.
"""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable

from include.nse_airflow import nse_dag

DATASETS = ["holidays"]
SCHEDULE = CronTriggerTimetable("0 6 1 1,4,7,10 *", timezone="Asia/Kolkata")

dag = nse_dag(
    "nse_trading_calendar",
    datasets=DATASETS,
    schedule=SCHEDULE,
    doc_md=__doc__,
    tags=["nse", "calendar", "reference"],
    max_active_runs=1,
)
