"""Building blocks of the end-of-day DAGs: one fetch -> parse -> load chain per dataset.

A DAG file picks its datasets and schedule and calls `dataset_chain` for each; the tasks here
are a few lines that hand the run's trade date to `nse_tasks`, which calls the library.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, Param, task

#: Shared by every NSE DAG: retried with backoff, owned by the data team.
DEFAULT_ARGS = {
    "owner": "nse-data",
    "retries": 3,
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": dt.timedelta(minutes=30),
}

#: NSE's archive host is shared by every DAG; the pool bounds concurrent downloads.
ARCHIVE_POOL = "nse_archives"


def trade_date_param() -> Param:
    return Param(
        None,
        type=["null", "string"],
        format="date",
        description="Trade date to load (YYYY-MM-DD); empty means the run's own date.",
    )


def dataset_asset(name: str) -> Asset:
    """Published when a date's rows of `name` are in ClickHouse, for downstream DAGs."""
    return Asset(name=f"nse_{name}", uri=f"clickhouse://nse/{name}")


@task(pool=ARCHIVE_POOL)
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


def dataset_chain(name: str):
    """fetch_<name> >> parse_<name> >> load_<name>, the load publishing the dataset's asset."""
    fetched = fetch.override(task_id=f"fetch_{name}")(dataset=name)
    parsed = parse.override(task_id=f"parse_{name}")(dataset=name, fetched=fetched)
    return load.override(task_id=f"load_{name}", outlets=[dataset_asset(name)])(
        dataset=name, parsed=parsed
    )
