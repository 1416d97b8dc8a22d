"""
### NSE index constituents

Lands the members of each NIFTY index for one trade date, and keeps who was in which index
when.

1. **index_names**: the indices to load: the `indices` param, else the `nse_indices` Variable
   (a JSON list), else NIFTY 50, NEXT 50, 100, 200, 500, MIDCAP 100, BANK, IT and FINANCIAL
   SERVICES;
2. **fetch_archive**, one per index (pool `nse_archives`): the index's current list
   (`ind_nifty50list.csv`) when its Last-Modified day is not after the trade date; for a past
   date, on a month's last trading day, the monthly weightage archive (`mcwb_<mon><yy>.zip`,
   NIFTY 50 and NEXT 50, with weights);
3. **fetch_api**, one per index (pool `nse_api`): NSE's API for an index whose list the archive
   host does not have (404, or an HTML page with status 200), when the API's list is of the
   trade date;
4. **parse** the day's lists into one silver partition, **validate** it, and **load** it into
   `nse.index_constituents`, replacing that date's snapshot;
5. **changes**: log the day's inclusions and exclusions (`nse.index_changes`).

Membership history is the ClickHouse view `nse.index_membership` (valid_from, valid_to) over
the snapshots, so reruns and out-of-order backfills leave the same history. Members of NIFTY 50
on a day: `SELECT symbol FROM nse.index_membership WHERE index_name = 'NIFTY 50' AND
valid_from <= '2025-06-30' AND (valid_to > '2025-06-30' OR valid_to IS NULL)`.

Runs at 20:00 Asia/Kolkata on CM trading days. NSE's lists are current-only files, so a backfill
(`airflow backfill create --dag-id nse_index_constituents ...`) files a snapshot on each month's
last trading day from the monthly archive and skips the other days, saying why in the fetch
logs.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task
from nse_alerts import SlackFailureAlert
from nse_eod import (
    API_POOL,
    ARCHIVE_POOL,
    DEFAULT_ARGS,
    dataset_asset,
    load,
    trade_date_param,
    validate,
)
from nse_timetable import TradingDayTimetable

DATASET = "index_constituents"
SCHEDULE = TradingDayTimetable(at=dt.time(20, 0), segment="CM", timezone="Asia/Kolkata")


@task
def index_names(**context) -> list[str]:
    """The indices this run loads."""
    import nse_index_tasks

    return nse_index_tasks.index_names(context)


@task(pool=ARCHIVE_POOL, map_index_template="{{ index_name }}")
def fetch_archive(index_name: str, **context) -> dict:
    """The index's list for the trade date from NSE's archive host, into bronze."""
    import nse_index_tasks
    import nse_tasks
    from airflow.sdk import get_current_context

    get_current_context()["index_name"] = index_name
    return nse_index_tasks.fetch_archive(index_name, nse_tasks.trade_date(context))


@task(pool=API_POOL, map_index_template="{{ index_name }}")
def fetch_api(archived: dict, **context) -> dict:
    """The index's list from NSE's API where the archive host has none."""
    import nse_index_tasks
    import nse_tasks
    from airflow.sdk import get_current_context

    get_current_context()["index_name"] = archived["index_name"]
    return nse_index_tasks.fetch_api(archived, nse_tasks.trade_date(context))


@task
def parse(fetched: list[dict], **context) -> dict:
    """The day's lists into one silver partition."""
    import nse_index_tasks
    import nse_tasks

    return nse_index_tasks.parse(nse_tasks.trade_date(context), list(fetched))


@task
def changes(loaded: dict, **context) -> dict:
    """Inclusions and exclusions against each index's previous snapshot."""
    import nse_index_tasks
    import nse_tasks

    return nse_index_tasks.changes(nse_tasks.trade_date(context))


@dag(
    dag_id="nse_index_constituents",
    schedule=SCHEDULE,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    on_failure_callback=SlackFailureAlert(),
    doc_md=__doc__,
    tags=["nse", "indices", "end-of-day"],
    params={
        "trade_date": trade_date_param(),
        "indices": Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            description=(
                "Index names as NSE spells them (NIFTY 50, NIFTY BANK...); empty means the "
                "nse_indices Variable, else the default list."
            ),
        ),
    },
)
def nse_index_constituents():
    archived = fetch_archive.expand(index_name=index_names())
    parsed = parse(fetch_api.expand(archived=archived))
    validated = validate.override(task_id=f"validate_{DATASET}")(dataset=DATASET, parsed=parsed)
    loaded = load.override(task_id=f"load_{DATASET}", outlets=[dataset_asset(DATASET)])(
        dataset=DATASET, validated=validated
    )
    changes(loaded)


nse_index_constituents()
