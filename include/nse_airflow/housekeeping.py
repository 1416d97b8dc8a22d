"""The lake housekeeping DAG: compact the intraday days that are over, prune their old bronze.

`housekeeping_dag` builds it: **compact** folds each finished day's per-cycle option-chain files
(silver and gold) into one file per day (`include.nse.housekeeping.compact`); **prune_bronze**
then removes the raw responses of compacted intraday days older than the retention, when one is
set (the run's `keep_bronze_days`, else `NSE_INTRADAY_BRONZE_KEEP_DAYS`; unset keeps them all);
**drop_stale_stages** drops the ClickHouse staging tables that loads which died left behind in
the warehouse's database (each load also drops its own table's; this catches tables no load has
touched since). Each task returns and logs what it did: days, files, rows, bytes and tables.
"""

from __future__ import annotations

import datetime as dt
import logging
import os

from airflow.sdk import DAG, Param, get_current_context, task
from nse_alerts import SlackFailureAlert

from include.nse_airflow.tasks import DEFAULT_ARGS, START_DATE

log = logging.getLogger(__name__)

IST = dt.timezone(dt.timedelta(hours=5, minutes=30), "IST")
#: The market closes at 15:30; the last option-chain cycle may land a few minutes later.
DAY_OVER = dt.time(16, 0)
KEEP_ENV = "NSE_INTRADAY_BRONZE_KEEP_DAYS"


def first_open_day(now: dt.datetime) -> dt.date:
    """The first day still open to intraday writes at `now`: today until 16:00 IST, then
    tomorrow."""
    local = now.astimezone(IST)
    return local.date() + dt.timedelta(days=local.time() >= DAY_OVER)


def keep_days(value: int | None) -> int | None:
    """The bronze retention in days: the run's value, else the environment's, else None."""
    if value is not None:
        return int(value)
    configured = os.environ.get(KEEP_ENV, "").strip()
    if not configured:
        return None
    try:
        return int(configured)
    except ValueError:
        raise ValueError(f"{KEEP_ENV} must be a whole number of days, not {configured!r}") from None


def _lake():
    from include.nse.lake import Lake
    from include.nse_airflow.tasks import settings

    return Lake(settings().lake_root)


@task
def compact() -> dict:
    from include.nse import housekeeping

    before = first_open_day(dt.datetime.now(dt.UTC))
    done = housekeeping.summary(housekeeping.compact(_lake(), before), [])
    log.info(
        "compacted %d intraday days before %s: %d files into %d, %d rows, %.1f MB -> %.1f MB",
        done["compacted_days"],
        before,
        done["compacted_files"],
        done["compacted_days"],
        done["compacted_rows"],
        done["bytes_before"] / 1e6,
        done["bytes_after"] / 1e6,
    )
    return done


@task
def prune_bronze(compacted: dict) -> dict:
    from airflow.sdk.exceptions import AirflowSkipException

    from include.nse import housekeeping

    days = keep_days(get_current_context()["params"].get("keep_bronze_days"))
    if days is None:
        raise AirflowSkipException(
            f"intraday bronze is kept: no retention set (keep_bronze_days, or {KEEP_ENV})"
        )
    today = dt.datetime.now(IST).date()
    done = housekeeping.summary([], housekeeping.prune_bronze(_lake(), today, days))
    log.info(
        "pruned the bronze of %d intraday days older than %d days: %d files, %.1f MB",
        done["pruned_days"],
        days,
        done["pruned_files"],
        done["pruned_bytes"] / 1e6,
    )
    return done


@task
def drop_stale_stages() -> dict:
    from include.nse import warehouse as tables
    from include.nse_airflow.tasks import warehouse

    target = warehouse()
    with target.session() as client:
        dropped = tables.drop_stale_stages(client, target.database)
    log.info(
        "dropped %d staging tables left by loads that died in %s: %s",
        len(dropped),
        target.database,
        ", ".join(dropped) or "none",
    )
    return {"database": target.database, "dropped": dropped}


def housekeeping_dag(dag_id: str, **kwargs) -> DAG:
    from airflow.sdk import CronTriggerTimetable

    with DAG(
        dag_id,
        schedule=CronTriggerTimetable("30 16 * * *", timezone="Asia/Kolkata"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        on_failure_callback=SlackFailureAlert(),
        params={
            "keep_bronze_days": Param(
                None,
                type=["null", "integer"],
                minimum=0,
                description=(
                    "Remove intraday bronze of compacted days older than this many days; "
                    f"empty uses {KEEP_ENV}, and keeps everything when that is unset too."
                ),
            )
        },
        **kwargs,
    ) as dag:
        prune_bronze(compact())
        drop_stale_stages()
    return dag
