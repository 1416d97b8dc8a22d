"""
### NSE trading calendar

Refreshes NSE's holiday lists, which decide when every other NSE DAG runs:

1. **fetch** NSE's holiday master (`/api/holiday-master?type=trading`, the current year's lists
   for every segment) into bronze, through the API host's cookie warm-up;
2. **parse** it into a silver partition: `date, segment, description, weekday` and the COM
   session flags, and **validate** it against the dataset's expectations (a critical failure
   stops the run before the timetables' file or ClickHouse change);
3. **reconcile** the lists with the calendar library (BSE's calendar, which shares NSE's
   equity holidays): the differences are in the task's return value and log, and the lists go
   into the lake's holiday file that the trading-day timetables read (no network in the
   scheduler);
4. **load** ClickHouse: `nse.holidays` for the fetched years and `nse.trading_calendar` (every
   date and segment with `is_trading_day`, for joins), each year replaced whole.

Runs at 06:00 Asia/Kolkata on the first day of each quarter; trigger it by hand when NSE
announces a new holiday (an election day) and the timetables pick it up on their next look.
"""

from __future__ import annotations

import datetime as dt
import logging

from airflow.sdk import CronTriggerTimetable, dag, task
from nse_alerts import SlackFailureAlert
from nse_eod import API_POOL, DEFAULT_ARGS, dataset_asset

log = logging.getLogger(__name__)

SCHEDULE = CronTriggerTimetable("0 6 1 1,4,7,10 *", timezone="Asia/Kolkata")


def _lake():
    import nse_tasks

    from include.nse.lake import Lake

    return Lake(nse_tasks.settings().lake_root)


@task(pool=API_POOL)
def fetch(**context) -> dict:
    """NSE's holiday master into bronze, under the run's date."""
    import nse_tasks

    from include.nse.calendar_refresh import fetch_holiday_master
    from include.nse.client import NSEClient

    with NSEClient(nse_tasks.settings()) as client:
        return fetch_holiday_master(client, _lake(), nse_tasks.trade_date(context))


@task
def parse(fetched: dict, **context) -> dict:
    """The bronze JSON into a silver partition, one row per date and segment."""
    import nse_tasks

    from include.nse.calendar_refresh import holidays_to_silver

    return holidays_to_silver(_lake(), nse_tasks.trade_date(context))


@task
def validate(parsed: dict, **context) -> dict:
    """Check the silver partition against the holidays' expectations; a critical miss fails."""
    import nse_tasks

    return nse_tasks.validate("holidays", nse_tasks.trade_date(context), context["run_id"])


@task
def reconcile(validated: dict, **context) -> dict:
    """The lists into the timetables' holiday file; where NSE and the library disagree."""
    import nse_tasks

    from include.nse.calendar_refresh import refresh_calendar_file

    stats = refresh_calendar_file(_lake(), nse_tasks.trade_date(context))
    for difference in stats["differences"]:
        log.warning("NSE and the calendar library disagree: %s", difference)
    return stats


@task(outlets=[dataset_asset("trading_calendar")])
def load(reconciled: dict, **context) -> dict:
    """Replace the fetched years of nse.holidays and every year of nse.trading_calendar."""
    import nse_tasks

    from include.nse.calendar_refresh import load_warehouse

    with nse_tasks.warehouse_client() as (client, database):
        return load_warehouse(client, _lake(), nse_tasks.trade_date(context), database)


@dag(
    dag_id="nse_trading_calendar",
    schedule=SCHEDULE,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    on_failure_callback=SlackFailureAlert(),
    doc_md=__doc__,
    tags=["nse", "calendar", "reference"],
)
def nse_trading_calendar():
    load(reconcile(validate(parse(fetch()))))


nse_trading_calendar()
