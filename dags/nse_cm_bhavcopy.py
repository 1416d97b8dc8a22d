"""
### NSE equity bhavcopy and delivery

Lands NSE's end-of-day equity (CM) bhavcopy and the full bhavcopy with delivery quantities for
one trade date:

1. **fetch** the file from NSE's archive into bronze (bytes as served, with a sha256 manifest);
   the legacy format up to 2024-07-05, UDiFF from 2024-07-08, chosen by what NSE publishes;
2. **parse** it into a typed silver Parquet partition;
3. **load** the partition into ClickHouse (`nse.cm_bhavcopy`, `nse.cm_delivery`), replacing
   that date's rows, so reruns and backfills never duplicate.

A date NSE has not published yet (a holiday, or too early) skips the run with the reason in the
fetch task's log. Trigger with a `trade_date` to reload a day; load history with
`airflow backfill create --dag-id nse_cm_bhavcopy --from-date ... --to-date ...`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, CronTriggerTimetable, Param, dag, task

DATASETS = ("cm_bhavcopy", "cm_delivery")
#: Published when a date's rows are in ClickHouse, for downstream DAGs to schedule on.
ASSETS = {name: Asset(name=f"nse_{name}", uri=f"clickhouse://nse/{name}") for name in DATASETS}
SCHEDULE = CronTriggerTimetable("30 18 * * 1-5", timezone="Asia/Kolkata")
DEFAULT_ARGS = {
    "owner": "nse-data",
    "retries": 3,
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": dt.timedelta(minutes=30),
}


@task(pool="nse_archives")
def fetch(dataset: str, **context) -> dict:
    """Fetch the day's file into bronze; skipped when NSE has not published it."""
    import nse_tasks

    return nse_tasks.fetch(dataset, nse_tasks.trade_date(context))


@task
def parse(dataset: str, fetched: dict, **context) -> dict:
    """Parse the bronze file into a silver partition."""
    import nse_tasks

    return nse_tasks.parse(dataset, nse_tasks.trade_date(context))


@task
def load(dataset: str, parsed: dict, **context) -> dict:
    """Replace the date's rows in ClickHouse with the silver partition."""
    import nse_tasks

    return nse_tasks.load(dataset, nse_tasks.trade_date(context))


@dag(
    dag_id="nse_cm_bhavcopy",
    schedule=SCHEDULE,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["nse", "equity", "end-of-day"],
    params={
        "trade_date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Trade date to load (YYYY-MM-DD); empty means the run's own date.",
        )
    },
)
def nse_cm_bhavcopy():
    for name in DATASETS:
        fetched = fetch.override(task_id=f"fetch_{name}")(dataset=name)
        parsed = parse.override(task_id=f"parse_{name}")(dataset=name, fetched=fetched)
        load.override(task_id=f"load_{name}", outlets=[ASSETS[name]])(dataset=name, parsed=parsed)


nse_cm_bhavcopy()
